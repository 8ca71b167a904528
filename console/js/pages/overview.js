// Deliveries by state, attempts per minute and success rate over the last hour, and the
// hosts with the most failures.
import { api } from '../api.js';
import { attemptsChart } from '../chart.js';
import { errorBox, h, percent, stateBadge, table, time } from '../dom.js';

const STATES = ['pending', 'in_flight', 'delivered', 'dead'];

export async function overviewPage() {
  const [stats, endpoints] = await Promise.allSettled([
    api('GET', '/v1/stats'),
    api('GET', '/v1/endpoints?limit=5'),
  ]);
  const page = h('section', { class: 'page overview' }, h('h1', {}, 'Overview'));
  if (stats.status === 'rejected') {
    page.append(errorBox(stats.reason));
  } else {
    page.append(...statsPanels(stats.value));
  }
  page.append(h('h2', {}, 'Hosts with the most failures'));
  page.append(endpoints.status === 'rejected'
    ? errorBox(endpoints.reason)
    : failingHosts(endpoints.value.items.filter((e) => e.failures > 0)));
  return page;
}

function statsPanels(stats) {
  const minutes = stats.attempts_per_minute;
  const attempts = minutes.reduce((sum, m) => sum + m.attempts, 0);
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
  return [
    h('div', { class: 'cards' }, STATES.map((state) => h('a', {
      class: `card state-${state}`, href: `#/deliveries?state=${state}`, 'data-state': state,
    }, h('span', { class: 'card-label' }, state.replace('_', ' ')),
    h('span', { class: 'card-value' }, stats.deliveries[state].toLocaleString('en-US'))))),
    h('h2', {}, 'Attempts over the last hour'),
    h('div', { class: 'chart-box' },
      h('p', { class: 'chart-summary' },
        h('span', {}, 'Success rate ', h('strong', { id: 'success-rate' }, percent(stats.success_rate))),
        h('span', {}, `${attempts.toLocaleString('en-US')} attempts, ${failed.toLocaleString('en-US')} failed`),
        h('span', { class: 'legend' }, h('i', { class: 'ok' }), 'succeeded', h('i', { class: 'fail' }), 'failed')),
      attemptsChart(minutes),
      h('p', { class: 'hint' }, 'Counted by this daemon process since it started.')),
  ];
}

function failingHosts(items) {
  return table(['Host', 'State', 'Failures', 'Failure rate', 'Last error', 'Last failure'],
    items.map((e) => h('tr', {},
      h('td', { class: 'mono' }, e.endpoint),
      h('td', {}, stateBadge(e.state)),
      h('td', { class: 'num' }, e.failures),
      h('td', { class: 'num' }, percent(e.failure_rate)),
      h('td', {}, e.last_error ?? '—'),
      h('td', {}, time(e.last_failure_at)))),
    'No host has failed since the daemon started.');
}
