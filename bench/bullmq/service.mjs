// The ingest side a Node shop would write in front of BullMQ: the same two calls of callbackd's
// API that callbackd-load uses (POST /v1/apps, POST /v1/callbacks), checking the fields and
// adding one job per task (job id app:task, so a repeated task is not queued twice).
// 202 once Redis has the job. worker.mjs serve delivers them.
//   node service.mjs <redis-port> <listen-port>
import { Queue } from 'bullmq';
import IORedis from 'ioredis';
import crypto from 'node:crypto';
import http from 'node:http';
import { jobOptions } from './worker-options.mjs';

const [redisPort, listenPort] = process.argv.slice(2);
const connection = { host: '127.0.0.1', port: Number(redisPort), maxRetriesPerRequest: null };
const redis = new IORedis(connection);
const queue = new Queue('callbacks', { connection });
const apps = new Set();

function reply(res, status, value) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(value));
}
const invalid = (res, message) => reply(res, 400, { error: { code: 'invalid_field', message } });

async function handle(req, res, raw) {
  let input;
  try { input = JSON.parse(raw || '{}'); } catch { return reply(res, 400, { error: { code: 'malformed_json', message: 'body: not JSON' } }); }
  if (req.method === 'POST' && req.url === '/v1/apps') {
    const app = `app_${crypto.randomUUID()}`;
    const secret = crypto.randomBytes(32).toString('hex');
    await redis.hset('apps', app, secret);
    apps.add(app);
    return reply(res, 201, { app_id: app, name: input.name ?? '', signing_secret: secret, signature_scheme: 'hex' });
  }
  if (req.method === 'POST' && req.url === '/v1/callbacks') {
    const { app_id, callback_url, task_id, status, results, error } = input;
    if (!apps.has(app_id) && !(await redis.hexists('apps', app_id))) return reply(res, 404, { error: { code: 'not_found', message: 'app_id: unknown app' } });
    if (typeof callback_url !== 'string' || !/^https?:\/\//.test(callback_url)) return invalid(res, 'callback_url: not an http(s) URL');
    if (typeof task_id !== 'string' || task_id === '' || task_id.length > 256) return invalid(res, 'task_id: missing or too long');
    if (status !== 'completed' && status !== 'failed') return invalid(res, 'status: not completed or failed');
    const body = JSON.stringify(status === 'completed' ? { task_id, status, results } : { task_id, status, error });
    const id = `dlv_${crypto.randomUUID()}`;
    await queue.add('callback', { id, app: app_id, url: callback_url, body }, { ...jobOptions, jobId: `${app_id}:${task_id}` });
    return reply(res, 202, { delivery_id: id, state: 'pending' });
  }
  return reply(res, 404, { error: { code: 'not_found', message: 'no such route' } });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => handle(req, res, Buffer.concat(chunks).toString()).catch((e) =>
    reply(res, 503, { error: { code: 'unavailable', message: String(e.message) } })));
});
server.keepAliveTimeout = 30000;
server.listen(Number(listenPort), '127.0.0.1');
