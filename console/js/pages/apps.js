// Apps: the list (never a secret), creation and secret rotation. A new secret is shown once,
// here, with a copy button; it cannot be fetched again.
import { api, query } from '../api.js';
import { errorBox, h, table, time } from '../dom.js';

export async function appsPage(params, context) {
  const cursor = params.get('cursor') || '';
  const page = h('section', { class: 'page apps' }, h('h1', {}, 'Apps'));
  const secretSlot = h('div', { id: 'secret-slot' });
  page.append(createForm(secretSlot, context), secretSlot);
  let result;
  try {
    result = await api('GET', `/v1/apps${query({ limit: 100, cursor })}`);
  } catch (error) {
    page.append(errorBox(error));
    return page;
  }
  page.append(table(['App', 'Name', 'Signature scheme', 'Created', ''],
    result.items.map((app) => appRow(app, secretSlot)), 'No app yet: create one above.'));
  if (cursor || result.next_cursor) {
    page.append(h('div', { class: 'pager' },
      h('a', { class: `button${cursor ? '' : ' disabled'}`, href: '#/apps' }, 'First page'),
      result.next_cursor
        ? h('a', { class: 'button', href: `#/apps${query({ cursor: result.next_cursor })}` }, 'Next page')
        : h('span', { class: 'button disabled' }, 'Next page')));
  }
  return page;
}

function createForm(secretSlot, context) {
  const name = h('input', { name: 'name', id: 'app-name', required: true, maxlength: 200, placeholder: 'acme' });
  const scheme = h('select', { name: 'signature_scheme', id: 'app-scheme' },
    h('option', { value: 'hex' }, 'hex (X-Signature)'),
    h('option', { value: 'standard' }, 'standard (Standard Webhooks)'));
  return h('form', {
    class: 'filters',
    id: 'create-app',
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const app = await api('POST', '/v1/apps', { name: name.value, signature_scheme: scheme.value });
        await context.rerender();
        showSecret(document.getElementById('secret-slot'), `App ${app.name} (${app.app_id}) created.`, app.signing_secret);
      } catch (error) {
        secretSlot.replaceChildren(errorBox(error));
      }
    },
  },
  h('label', {}, 'Name', name),
  h('label', {}, 'Signature scheme', scheme),
  h('button', { type: 'submit' }, 'Create app'));
}

function appRow(app, secretSlot) {
  const rotate = h('button', {
    type: 'button',
    class: 'secondary',
    'data-rotate': app.app_id,
    onclick: async () => {
      // Two clicks: the old secret stops working at once (hex apps), so make it deliberate.
      if (rotate.dataset.armed !== 'yes') {
        rotate.dataset.armed = 'yes';
        rotate.textContent = 'Click again to rotate';
        return;
      }
      rotate.disabled = true;
      try {
        const rotated = await api('POST', `/v1/apps/${encodeURIComponent(app.app_id)}/rotate-secret`);
        showSecret(secretSlot, `New secret for ${app.name} (${app.app_id}).`, rotated.signing_secret);
      } catch (error) {
        secretSlot.replaceChildren(errorBox(error));
      }
      rotate.textContent = 'Rotate secret';
      rotate.dataset.armed = '';
      rotate.disabled = false;
    },
  }, 'Rotate secret');
  return h('tr', { 'data-app': app.app_id },
    h('td', { class: 'mono' }, h('a', { href: `#/deliveries?app_id=${encodeURIComponent(app.app_id)}` }, app.app_id)),
    h('td', {}, app.name),
    h('td', {}, app.signature_scheme),
    h('td', { class: 'nowrap' }, time(app.created_at)),
    h('td', { class: 'actions' }, rotate));
}

function showSecret(slot, title, secret) {
  const value = h('code', { id: 'new-secret', class: 'secret' }, secret);
  const status = h('span', { class: 'hint', role: 'status' });
  const copy = h('button', {
    type: 'button',
    id: 'copy-secret',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(secret);
        status.textContent = 'Copied.';
      } catch {
        // No clipboard permission: select it so Ctrl+C copies it.
        const range = document.createRange();
        range.selectNodeContents(value);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        status.textContent = 'Selected: press Ctrl+C to copy.';
      }
    },
  }, 'Copy');
  slot.replaceChildren(h('div', { class: 'secret-box', role: 'alert' },
    h('p', {}, h('strong', {}, title), ' Store the signing secret now: it is shown only this once.'),
    h('div', { class: 'secret-row' }, value, copy, status),
    h('button', { type: 'button', class: 'link', onclick: () => slot.replaceChildren() }, 'Done, hide it')));
}
