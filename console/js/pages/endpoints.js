// Endpoint health: each host's circuit breaker as the daemon sees it now.
import { api, query } from '../api.js';
import { errorBox, h, percent, stateBadge, table, time } from '../dom.js';

export async function endpointsPage(params) {
  const state = params.get('state') || '';
  const select = h('select', { id: 'endpoint-state', onchange: () => { location.hash = `#/endpoints${query({ state: select.value })}`; } },
    ['', 'open', 'half_open', 'closed'].map((value) => h('option', { value, selected: value === state },
      value ? value.replace('_', ' ') : 'any state')));
  const page = h('section', { class: 'page endpoints' }, h('h1', {}, 'Endpoints'),
    h('p', { class: 'hint' }, 'Hosts seen by this daemon since it started, most failures first; rates are over the breaker window. An open breaker holds attempts to its host until the next probe; waiting counts its pending deliveries.'),
    h('form', { class: 'filters' }, h('label', {}, 'Breaker', select)));
  let result;
  try {
    result = await api('GET', `/v1/endpoints${query({ state, limit: 1000 })}`);
  } catch (error) {
    page.append(errorBox(error));
    return page;
  }
  page.append(table(['Host', 'State', 'Attempts', 'Failures', 'Success rate', 'Last error', 'Last failure', 'Opened', 'Next probe', 'In flight', 'Waiting'],
    result.items.map((e) => h('tr', { 'data-endpoint': e.endpoint },
      h('td', { class: 'mono' }, e.endpoint),
      h('td', {}, stateBadge(e.state)),
      h('td', { class: 'num' }, e.attempts),
      h('td', { class: 'num' }, e.failures),
      h('td', { class: 'num' }, percent(e.success_rate)),
      h('td', {}, e.last_error ?? '—'),
      h('td', { class: 'nowrap' }, time(e.last_failure_at)),
      h('td', { class: 'nowrap' }, time(e.opened_at)),
      h('td', { class: 'nowrap' }, time(e.next_probe_at)),
      h('td', { class: 'num' }, e.in_flight),
      h('td', { class: 'num' }, e.waiting))),
    'No endpoint seen yet.'));
  return page;
}
