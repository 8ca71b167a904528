// The console's shell: the login form, hash routing (#/page?query) and page rendering.
import { api, clearToken, onUnauthorized, setToken, token } from './api.js';
import { errorBox, h } from './dom.js';
import { appsPage } from './pages/apps.js';
import { deliveriesPage } from './pages/deliveries.js';
import { deliveryPage } from './pages/delivery.js';
import { endpointsPage } from './pages/endpoints.js';
import { overviewPage } from './pages/overview.js';

const el = (id) => document.getElementById(id);
let renderId = 0;
let refreshTimer = null;

function showLogin(message) {
  clearToken();
  clearTimeout(refreshTimer);
  el('nav').hidden = true;
  el('logout').hidden = true;
  el('page').replaceChildren();
  el('login').hidden = false;
  el('login-error').hidden = !message;
  el('login-error').textContent = message || '';
  el('token').value = '';
  el('token').focus();
}

async function render() {
  const id = ++renderId;
  clearTimeout(refreshTimer);
  if (!token()) {
    showLogin('');
    return;
  }
  el('login').hidden = true;
  el('nav').hidden = false;
  el('logout').hidden = false;
  const [path, search] = (location.hash.slice(1) || '/overview').split('?');
  const params = new URLSearchParams(search || '');
  const parts = path.split('/').filter(Boolean);
  const context = {
    rerender: () => (id === renderId ? render() : Promise.resolve()),
    refreshIn: (ms) => {
      refreshTimer = setTimeout(() => { if (id === renderId) render(); }, ms);
    },
  };
  for (const link of el('nav').querySelectorAll('a')) {
    link.classList.toggle('active', link.dataset.page === (parts[0] || 'overview'));
  }
  let view;
  try {
    if (parts[0] === 'deliveries' && parts[1]) view = await deliveryPage(decodeURIComponent(parts[1]), context);
    else if (parts[0] === 'deliveries') view = await deliveriesPage(params, context);
    else if (parts[0] === 'apps') view = await appsPage(params, context);
    else if (parts[0] === 'endpoints') view = await endpointsPage(params, context);
    else view = await overviewPage(params, context);
  } catch (error) {
    view = h('section', { class: 'page' }, errorBox(error));
  }
  // A newer navigation or a 401 (back to the login form) wins over this one.
  if (id !== renderId || !token()) return;
  el('page').replaceChildren(view);
  document.body.dataset.page = parts[0] || 'overview';
  document.body.dataset.rendered = String(id);
}

onUnauthorized((error) => {
  renderId += 1;
  showLogin(error.message);
});

el('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const candidate = el('token').value;
  const button = event.target.querySelector('button');
  button.disabled = true;
  try {
    await api('GET', '/v1/stats', undefined, candidate);  // checks the token before keeping it
    setToken(candidate);
    el('token').value = '';
    await render();
  } catch (error) {
    el('login-error').hidden = false;
    el('login-error').replaceChildren(error.message);
    el('token').select();  // typing again replaces the wrong token
  } finally {
    button.disabled = false;
  }
});

el('logout').addEventListener('click', () => showLogin(''));
window.addEventListener('hashchange', render);
render();
