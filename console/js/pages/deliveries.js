// Deliveries, filtered by state, app and task id, a page at a time (the API's next_cursor).
import { api, query } from '../api.js';
import { errorBox, h, stateBadge, table, time } from '../dom.js';

const PAGE_SIZE = 50;

export async function deliveriesPage(params) {
  const filter = {
    state: params.get('state') || '',
    app_id: params.get('app_id') || '',
    task_id: params.get('task_id') || '',
  };
  const cursor = params.get('cursor') || '';
  const page = h('section', { class: 'page deliveries' }, h('h1', {}, 'Deliveries'), filterForm(filter));
  let result;
  try {
    result = await api('GET', `/v1/callbacks${query({ ...filter, limit: PAGE_SIZE, cursor })}`);
  } catch (error) {
    page.append(errorBox(error));
    return page;
  }
  page.append(table(['Delivery', 'State', 'App', 'Task', 'Callback URL', 'Attempts', 'Last result', 'Created'],
    result.items.map(row), cursor ? 'No more deliveries.' : 'No delivery matches.'));
  page.append(h('div', { class: 'pager' },
    h('a', { class: `button${cursor ? '' : ' disabled'}`, href: `#/deliveries${query(filter)}`, id: 'first-page' }, 'First page'),
    h('span', { class: 'hint' }, `${result.items.length} shown`),
    result.next_cursor
      ? h('a', { class: 'button', id: 'next-page', href: `#/deliveries${query({ ...filter, cursor: result.next_cursor })}` }, 'Next page')
      : h('span', { class: 'button disabled' }, 'Next page')));
  return page;
}

function filterForm(filter) {
  const state = h('select', { name: 'state', id: 'filter-state' },
    ['', 'pending', 'in_flight', 'delivered', 'dead'].map((value) => h('option', {
      value, selected: value === filter.state,
    }, value ? value.replace('_', ' ') : 'any state')));
  const app = h('input', { name: 'app_id', id: 'filter-app', placeholder: 'app_…', value: filter.app_id });
  const task = h('input', { name: 'task_id', id: 'filter-task', placeholder: 'task id', value: filter.task_id });
  return h('form', {
    class: 'filters',
    onsubmit: (event) => {
      event.preventDefault();
      location.hash = `#/deliveries${query({ state: state.value, app_id: app.value.trim(), task_id: task.value.trim() })}`;
    },
  },
  h('label', {}, 'State', state),
  h('label', {}, 'App', app),
  h('label', {}, 'Task id', task),
  h('button', { type: 'submit', id: 'apply-filters' }, 'Filter'));
}

function lastResult(delivery) {
  const last = delivery.attempts[delivery.attempts.length - 1];
  if (!last) return '—';
  if (last.error === null) return `${last.http_status}`;
  return last.http_status ? `${last.http_status} ${last.error}` : last.error;
}

function row(d) {
  return h('tr', { 'data-delivery': d.delivery_id },
    h('td', { class: 'mono' }, h('a', { href: `#/deliveries/${encodeURIComponent(d.delivery_id)}` }, d.delivery_id)),
    h('td', {}, stateBadge(d.state)),
    h('td', { class: 'mono' }, d.app_id),
    h('td', { class: 'mono' }, d.task_id),
    h('td', { class: 'mono url', title: d.callback_url }, d.callback_url),
    h('td', { class: 'num' }, d.attempts.length),
    h('td', { class: 'nowrap' }, lastResult(d)),
    h('td', { class: 'nowrap' }, time(d.created_at)));
}
