// One delivery: what it is, its attempt timeline, and a redeliver button. While it is pending
// or in flight the page refreshes itself every second.
import { api } from '../api.js';
import { errorBox, h, stateBadge, table, time } from '../dom.js';

const REFRESH_MS = 1000;

export async function deliveryPage(id, context) {
  let delivery;
  try {
    delivery = await api('GET', `/v1/callbacks/${encodeURIComponent(id)}`);
  } catch (error) {
    return h('section', { class: 'page delivery' }, h('h1', {}, 'Delivery'), errorBox(error));
  }
  const message = h('p', { id: 'action-result', role: 'status' });
  const finished = delivery.state === 'delivered' || delivery.state === 'dead';
  const redeliver = h('button', {
    id: 'redeliver', type: 'button', disabled: !finished,
    title: finished ? 'Back to pending with a fresh retry budget' : 'Only a delivered or dead delivery can be redelivered',
    onclick: async () => {
      redeliver.disabled = true;
      try {
        await api('POST', `/v1/callbacks/${encodeURIComponent(id)}/redeliver`);
        context.rerender();
      } catch (error) {
        message.replaceWith(errorBox(error));
      }
    },
  }, 'Redeliver');
  if (!finished) context.refreshIn(REFRESH_MS);

  return h('section', { class: 'page delivery' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/deliveries' }, 'Deliveries'), ' / ', delivery.delivery_id),
    h('div', { class: 'title-row' },
      h('h1', { class: 'mono' }, delivery.delivery_id),
      h('span', { id: 'delivery-state' }, stateBadge(delivery.state)),
      redeliver),
    message,
    h('dl', { class: 'facts' },
      fact('App', h('a', { class: 'mono', href: `#/deliveries?app_id=${encodeURIComponent(delivery.app_id)}` }, delivery.app_id)),
      fact('Task', h('span', { class: 'mono' }, delivery.task_id)),
      fact('Callback URL', h('span', { class: 'mono' }, delivery.callback_url)),
      fact('Created', time(delivery.created_at)),
      fact('Next attempt', delivery.next_attempt_at ? time(delivery.next_attempt_at) : '—')),
    h('h2', {}, `Attempts (${delivery.attempts.length})`),
    table(['#', 'Started', 'Status', 'Error', 'Error detail', 'Duration', 'Response head'],
      delivery.attempts.slice().reverse().map(attemptRow), 'No attempt yet.'));
}

function fact(label, value) {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function attemptRow(a) {
  const ok = a.error === null;
  return h('tr', { class: ok ? 'attempt ok' : 'attempt failed', 'data-attempt': a.n },
    h('td', { class: 'num' }, a.n),
    h('td', { class: 'nowrap' }, time(a.started_at)),
    h('td', { class: 'num' }, a.http_status ?? '—'),
    h('td', {}, ok ? h('span', { class: 'badge state-delivered' }, 'ok') : h('span', { class: 'badge state-dead' }, a.error)),
    h('td', {}, a.error_detail ?? ''),
    h('td', { class: 'num nowrap' }, `${a.duration_ms} ms`),
    h('td', {}, a.response_head ? h('pre', { class: 'head' }, a.response_head) : '—'));
}
