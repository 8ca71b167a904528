// A small element builder. Text is always set as text (never parsed as HTML): delivery data,
// response heads and error messages come from customers and stay inert.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

// A visible error box with the API's message.
export function errorBox(error) {
  return h('p', { class: 'error', role: 'alert' }, error.message || String(error));
}

// "2026-11-30T09:50:01.123Z" -> "2026-11-30 09:50:01 UTC"
export function time(ts) {
  if (!ts) return '—';
  return `${ts.replace('T', ' ').replace(/\.\d+Z$/, '').replace(/Z$/, '')} UTC`;
}

export function stateBadge(state) {
  return h('span', { class: `badge state-${state}` }, state.replace('_', ' '));
}

export function percent(rate) {
  if (rate === null || rate === undefined) return '—';
  return `${(rate * 100).toFixed(rate === 1 || rate === 0 ? 0 : 1)} %`;
}

export function table(headers, rows, emptyText) {
  if (rows.length === 0) return h('p', { class: 'empty' }, emptyText);
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, headers.map((text) => h('th', {}, text)))),
    h('tbody', {}, rows)));
}
