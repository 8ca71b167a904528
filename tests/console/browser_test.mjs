// The web console in a real browser (headless Debian chromium via puppeteer-core) against the
// real daemon: a store seeded with many delivered callbacks, a few hundred more sent through
// the HTTP API to a real receiver that fails some of them until told to succeed. Walks what an
// operator does — sign in (a wrong token first), read the overview, filter to dead, open one,
// see why it failed, redeliver it and see it delivered, create an app and see its secret once,
// look at endpoint health — and writes a screenshot of each page.
//
//   node browser_test.mjs --daemon BIN --seed-store BIN --seed-count N --screenshots DIR
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

// The daemon reads CALLBACKD_* variables as configuration (and refuses unknown ones): start it from
// a clean callbackd environment, as tests/support/daemon_process.cc does (the test run exports
// CALLBACKD_TEST_POSTGRES).
function withoutCallbackdVariables() {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('CALLBACKD_')));
}

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, value, i, all) => {
  if (i % 2 === 0) pairs.push([value.replace(/^--/, ''), all[i + 1]]);
  return pairs;
}, []));
for (const required of ['daemon', 'seed-store', 'seed-count', 'screenshots']) {
  if (!args[required]) throw new Error(`--${required} is required`);
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOKEN = 'console-test-token-7f3a';
const SEED_COUNT = Number(args['seed-count']);
const API_OK = 240; // sent through the API, delivered at once
const API_BROKEN = 60; // sent through the API, dead after six 500s

const work = mkdtempSync(join(tmpdir(), 'callbackd-console-'));
const dataDir = join(work, 'data');
mkdirSync(args.screenshots, { recursive: true });
const cleanups = [];
const step = (text) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${text}`);

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function run(command, commandArgs) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => { out += chunk; });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} exited ${code}`))));
  });
}

async function poll(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

// The customer's endpoint: tasks named broken-* get a 500 until `brokenFails` is cleared.
let brokenFails = true;
const receiver = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    if (brokenFails && body.includes('"task_id":"broken-')) {
      res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end('{"error":"receiver down for maintenance"}');
    } else {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"ok":true}');
    }
  });
});

async function startDaemon() {
  const config = join(work, 'callbackd.toml');
  writeFileSync(config, [
    'listen = "127.0.0.1:0"',
    `data_dir = "${dataDir}"`,
    `api_token = "${TOKEN}"`,
    // Deliveries to a failing receiver are dead within a second.
    'retry_schedule = ["50ms", "50ms", "50ms", "50ms", "50ms"]',
    'attempt_timeout = "2s"',
    'poll_interval = "20ms"',
    // Every failure here is on purpose and the test waits for them to die on the schedule; the
    // breaker would hold them back (the endpoints page still shows the host's failures).
    'breaker_enabled = false',
    'allow_networks = ["127.0.0.0/8"]',
    '',
  ].join('\n'));
  const daemon = spawn(args.daemon, ['serve', '--config', config], { env: withoutCallbackdVariables(), stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => daemon.kill('SIGTERM'));
  let log = '';
  daemon.stderr.on('data', (chunk) => { log += chunk; });
  const exited = new Promise((resolve) => daemon.on('exit', (code) => resolve(code)));
  const port = await Promise.race([
    poll('the daemon to listen', () => (log.match(/event=listening address=[^ ]*:(\d+)/) || [])[1], 60000),
    exited.then((code) => { throw new Error(`daemon exited ${code}:\n${log}`); }),
  ]);
  return { base: `http://127.0.0.1:${port}`, log: () => log };
}

async function apiCall(base, method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function main() {
  step(`seeding ${SEED_COUNT} delivered callbacks into the store`);
  // Its last line is the summary (the engine logs before it).
  const seedOut = await run(args['seed-store'], ['--data-dir', dataDir, '--count', String(SEED_COUNT)]);
  const seeded = JSON.parse(seedOut.trim().split('\n').pop());
  step(`seeded ${seeded.count} in ${seeded.seconds.toFixed(1)} s`);

  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => receiver.close());
  const hook = `http://127.0.0.1:${receiver.address().port}/hooks/music`;
  const daemon = await startDaemon();
  step(`daemon at ${daemon.base}`);

  const app = await apiCall(daemon.base, 'POST', '/v1/apps', { name: 'acme' });
  check(app.status === 201, `create app: ${JSON.stringify(app.body)}`);
  const appId = app.body.app_id;
  const send = (task) => apiCall(daemon.base, 'POST', '/v1/callbacks', {
    app_id: appId, callback_url: hook, task_id: task, status: 'completed', endpoint: 'generate',
    results: [{ id: 'clip_1', audio_url: 'https://cdn.example/1.mp3', image_url: 'https://cdn.example/1.jpg',
      title: 'Night Drive', duration: 182.5, tags: 'synthwave', prompt: '[Verse] neon', expire_at: 1767225600000 }],
  });
  const tasks = [];
  for (let i = 0; i < API_OK; ++i) tasks.push(`order-${i}`);
  for (let i = 0; i < API_BROKEN; ++i) tasks.push(`broken-${i}`);
  for (let i = 0; i < tasks.length; i += 20) {
    const replies = await Promise.all(tasks.slice(i, i + 20).map(send));
    for (const r of replies) check(r.status === 202, `enqueue: ${JSON.stringify(r.body)}`);
  }
  const expectDelivered = SEED_COUNT + API_OK;
  const settled = await poll('the API deliveries to settle', async () => {
    const stats = (await apiCall(daemon.base, 'GET', '/v1/stats')).body;
    const d = stats.deliveries;
    return d.dead === API_BROKEN && d.delivered === expectDelivered && d.pending === 0 && d.in_flight === 0 && stats;
  });
  step(`settled: ${JSON.stringify(settled.deliveries)}, success rate ${settled.success_rate}`);
  for (const path of ['/v1/stats', '/v1/callbacks?state=dead&limit=50', '/v1/callbacks?limit=50']) {
    const times = [];
    for (let i = 0; i < 5; ++i) {
      const started = performance.now();
      check((await apiCall(daemon.base, 'GET', path)).status === 200, `GET ${path}`);
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    step(`GET ${path}: median ${times[2].toFixed(1)} ms of 5 with ${SEED_COUNT + tasks.length} deliveries stored`);
  }

  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...(process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
  });
  cleanups.push(() => browser.close());
  const page = await browser.newPage();
  failurePage = page;
  await page.setViewport({ width: 1366, height: 900 });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A 401 or 404 answer is logged by chromium as a failed resource; those are expected here.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  const shot = async (name) => {
    await page.mouse.move(0, 0);  // no hover highlight left where the last click was
    await page.screenshot({ path: join(args.screenshots, `${name}.png`), fullPage: true });
    step(`screenshot ${name}.png`);
  };
  const text = (selector) => page.$eval(selector, (el) => el.textContent.trim());
  const waitRendered = async (pageName) => {
    await page.waitForFunction((name) => document.body.dataset.page === name && document.querySelector('#page section'), {}, pageName);
  };

  step('login: a wrong token first');
  await page.goto(daemon.base + '/', { waitUntil: 'networkidle0' });
  check(page.url() === `${daemon.base}/console/`, `/ leads to the console (at ${page.url()})`);
  await page.type('#token', 'not-the-token');
  await page.click('#login-form button');
  await page.waitForSelector('#login-error:not([hidden])');
  const loginError = await text('#login-error');
  check(loginError === 'missing or wrong Authorization: Bearer <api_token>', `401 message shown: "${loginError}"`);
  await shot('login-wrong-token');

  await page.$eval('#token', (input) => { input.value = ''; });
  await page.type('#token', TOKEN);
  await page.click('#login-form button');
  await waitRendered('overview');
  step('overview');
  const cardValue = (state) => text(`.card[data-state="${state}"] .card-value`);
  check(await cardValue('dead') === API_BROKEN.toLocaleString('en-US'), 'overview: dead count');
  check(await cardValue('delivered') === expectDelivered.toLocaleString('en-US'), `overview: delivered count ${await cardValue('delivered')}`);
  check(await page.$$eval('svg.chart rect.fail', (r) => r.length) > 0, 'overview: the chart shows failed attempts');
  const rate = await text('#success-rate');
  check(/^\d+(\.\d)? %$/.test(rate), `overview: success rate shown (${rate})`);
  await overviewHostsPanel(page, daemon, hook);
  await shot('overview');

  step('deliveries: filter to dead');
  await page.click('nav a[data-page="deliveries"]');
  await waitRendered('deliveries');
  await page.select('#filter-state', 'dead');
  await page.click('#apply-filters');
  await page.waitForFunction(() => location.hash.includes('state=dead') && document.querySelectorAll('tr[data-delivery]').length > 0
    && [...document.querySelectorAll('tr[data-delivery] .badge')].every((b) => b.textContent === 'dead'));
  check(await page.$$eval('tr[data-delivery]', (rows) => rows.length) === 50, 'a full first page of dead deliveries');
  await shot('deliveries-dead');
  await page.click('#next-page');
  await page.waitForFunction(() => location.hash.includes('cursor=') && document.querySelectorAll('tr[data-delivery]').length === 10);
  await page.click('#first-page');
  await page.waitForFunction(() => !location.hash.includes('cursor=') && document.querySelectorAll('tr[data-delivery]').length === 50);
  // The task-id filter narrows to one delivery (an API error is shown instead where the
  // daemon does not filter by task id yet).
  await page.type('#filter-task', 'broken-7');
  await page.click('#apply-filters');
  await page.waitForFunction(() => location.hash.includes('task_id=broken-7') && (document.querySelector('#page .error')
    || [...document.querySelectorAll('tr[data-delivery]')].length === 1));
  const taskFilterError = await page.$('#page .error');
  if (taskFilterError) {
    const direct = await apiCall(daemon.base, 'GET', '/v1/callbacks?state=dead&task_id=broken-7');
    check(await text('#page .error') === direct.body.error?.message, 'the task-id filter shows the API error message');
    step(`task_id filter: the API says "${direct.body.error?.message}"`);
  } else {
    check((await text('tr[data-delivery] td:nth-child(4)')) === 'broken-7', 'the task-id filter finds the task');
  }

  step('open a dead delivery');
  await page.goto(`${daemon.base}/console/#/deliveries?state=dead`);
  await page.waitForFunction(() => !location.hash.includes('task_id') && document.body.dataset.page === 'deliveries'
    && document.querySelectorAll('tr[data-delivery] a').length === 50);
  const deliveryId = await text('tr[data-delivery] a');
  await page.click('tr[data-delivery] a');
  await page.waitForFunction((id) => document.querySelector('#page h1')?.textContent === id, {}, deliveryId);
  check(await text('#delivery-state') === 'dead', 'the delivery is dead');
  const attempts = await page.$$eval('tr.attempt', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
  check(attempts.length === 6, `six attempts shown (${attempts.length})`);
  for (const cells of attempts) {
    check(cells[2] === '500' && cells[3] === 'status', `attempt shows status 500: ${cells}`);
    check(cells[6] === '{"error":"receiver down for maintenance"}', `attempt shows the response head: ${cells[6]}`);
    check(/^\d+ ms$/.test(cells[5]), `attempt shows its duration: ${cells[5]}`);
  }
  await shot('delivery-dead');

  step('redeliver it to a receiver that now succeeds');
  brokenFails = false;
  await page.click('#redeliver');
  await page.waitForFunction(() => document.querySelector('#delivery-state')?.textContent === 'delivered', { timeout: 20000 });
  const newest = await page.$eval('tr.attempt', (r) => [...r.cells].map((c) => c.textContent.trim()));
  check(newest[0] === '7' && newest[2] === '200' && newest[3] === 'ok', `the seventh attempt succeeded: ${newest}`);
  await shot('delivery-redelivered');

  step('apps: create one, its secret shown once');
  await page.click('nav a[data-page="apps"]');
  await waitRendered('apps');
  check(await page.$(`tr[data-app="${appId}"]`) !== null, 'the API-created app is listed');
  await page.type('#app-name', 'console-made');
  await page.click('#create-app button[type="submit"]');
  await page.waitForSelector('#new-secret');
  const secret = await text('#new-secret');
  check(/^[0-9a-f]{64}$/.test(secret), `a hex secret shown (${secret.length} chars)`);
  check(await page.$$eval('tr[data-app]', (rows) => rows.some((r) => r.textContent.includes('console-made'))), 'the new app is listed');
  await page.click('#copy-secret');
  await shot('apps-created');
  await page.reload({ waitUntil: 'networkidle0' });
  await waitRendered('apps');
  check(!(await page.content()).includes(secret), 'the secret is not shown again');
  check(await page.$$eval('tr[data-app]', (rows) => rows.length) === 3, 'three apps listed (seeded, acme, console-made)');
  await shot('apps');

  step('endpoints');
  await page.click('nav a[data-page="endpoints"]');
  await waitRendered('endpoints');
  await endpointsPage(page, daemon, hook);
  await shot('endpoints');

  step('the token stays in session storage, out of URLs and localStorage');
  check(!page.url().includes(TOKEN), 'no token in the URL');
  check(await page.evaluate(() => localStorage.length) === 0, 'nothing in localStorage');
  check(await page.evaluate(() => sessionStorage.getItem('callbackd.api_token')) === TOKEN, 'the token in sessionStorage');

  step('a token that stops working returns to the login form with the message');
  await page.evaluate(() => sessionStorage.setItem('callbackd.api_token', 'revoked'));
  await page.goto(`${daemon.base}/console/#/deliveries`);
  await page.waitForSelector('#login:not([hidden]) #login-error:not([hidden])');
  check((await text('#login-error')).includes('missing or wrong Authorization'), 'the 401 message on the login form');

  check(problems.length === 0, `no script errors or CSP violations in the page:\n${problems.join('\n')}`);
  check(!daemon.log().includes(TOKEN), 'the token is not logged');
  step('PASS');
}

// The endpoint-health panel on the overview: the failing host, or the API's error message.
async function overviewHostsPanel(page, daemon, hook) {
  const direct = await apiCall(daemon.base, 'GET', '/v1/endpoints?limit=5');
  if (direct.status !== 200) {
    const shown = await page.$$eval('#page .error', (els) => els.map((e) => e.textContent));
    check(shown.includes(direct.body.error.message), `overview shows the endpoints error "${direct.body.error.message}"`);
    step(`overview hosts panel: the API says "${direct.body.error.message}"`);
    return;
  }
  const host = new URL(hook);
  check((await page.content()).includes(`${host.protocol}//${host.host}`), 'overview lists the failing receiver host');
}

async function endpointsPage(page, daemon, hook) {
  const direct = await apiCall(daemon.base, 'GET', '/v1/endpoints?limit=1000');
  if (direct.status !== 200) {
    check(await page.$eval('#page .error', (e) => e.textContent) === direct.body.error.message,
      'the endpoints page shows the API error message');
    step(`endpoints: the API says "${direct.body.error.message}"`);
    return;
  }
  const host = new URL(hook);
  await page.waitForSelector('tr[data-endpoint]');
  const endpoints = await page.$$eval('tr[data-endpoint]', (rows) => rows.map((r) => r.dataset.endpoint));
  check(endpoints.some((e) => e.startsWith(`${host.protocol}//${host.hostname}`)), `the receiver's host is listed: ${endpoints}`);
  // The row shows what the API says about it: state, success rate and what waits for it.
  const listed = direct.body.items.find((e) => e.endpoint.startsWith(`${host.protocol}//${host.hostname}`));
  const cells = await page.$eval(`tr[data-endpoint="${listed.endpoint}"]`, (row) => [...row.cells].map((c) => c.textContent));
  check(cells[1] === listed.state.replace('_', ' ') && cells[10] === String(listed.waiting), `the endpoint row shows its state and waiting count: ${cells}`);
}

let failurePage = null;  // screenshotted as failure.png when a check fails
try {
  await main();
} catch (e) {
  console.error(e.stack || e.message);
  process.exitCode = 1;
  if (failurePage) {
    await failurePage.screenshot({ path: join(args.screenshots, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(`page at failure: ${join(args.screenshots, 'failure.png')}`);
  }
} finally {
  for (const cleanup of cleanups.reverse()) {
    try { await cleanup(); } catch { /* already gone */ }
  }
  rmSync(work, { recursive: true, force: true });
}
