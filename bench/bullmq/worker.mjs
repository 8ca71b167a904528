// The callback job done the usual Node way: jobs in a BullMQ queue on Redis, a worker that
// signs each body (HMAC-SHA256, hex, with the app's secret) and POSTs it with the headers
// callbackd sends, 32 at a time (callbackd's per-host cap); failures retried by BullMQ.
//   node worker.mjs drain <redis-port> <sink-url> [N=20000]
//       queues N jobs, then times the worker draining them; prints delivered/s
//   node worker.mjs serve <redis-port> <metrics-port>
//       works the queue service.mjs fills, and serves its delivered count as
//       callbackd_deliveries_finished_total{state="delivered"} on /metrics (for callbackd-load)
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';
import crypto from 'node:crypto';
import http from 'node:http';
import { jobOptions } from './worker-options.mjs';

const [mode, redisPort, ...rest] = process.argv.slice(2);
const connection = { host: '127.0.0.1', port: Number(redisPort), maxRetriesPerRequest: null };
const secrets = new Map();  // app id -> signing secret, read once from Redis
const redis = new IORedis(connection);
async function secretOf(app) {
  if (!secrets.has(app)) secrets.set(app, await redis.hget('apps', app));
  return secrets.get(app);
}

async function deliver(job) {
  const { id, app, url, body } = job.data;
  const signature = crypto.createHmac('sha256', await secretOf(app)).update(body).digest('hex');
  const response = await fetch(url, {
    method: 'POST', body, signal: AbortSignal.timeout(10000),
    headers: { 'Content-Type': 'application/json', 'X-Signature': signature,
               'X-Callback-Id': id, 'X-Callback-Attempt': String(job.attemptsMade + 1) },
  });
  if (response.status < 200 || response.status >= 300) throw new Error(`HTTP ${response.status}`);
}


if (mode === 'drain') {
  const [sinkUrl, total = '20000'] = rest;
  const n = Number(total);
  await redis.hset('apps', 'app_bench', 'a'.repeat(64));
  const queue = new Queue('callbacks', { connection });
  await queue.obliterate({ force: true });
  for (let i = 0; i < n; i += 1000) {
    const jobs = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const body = JSON.stringify({
        task_id: `task_${j}`, status: 'completed',
        results: [{ id: `clip_${j}`, audio_url: 'https://cdn.example/a.mp3',
                    image_url: 'https://cdn.example/a.jpg', title: 'Night Drive', duration: 182.5,
                    tags: 'synthwave', prompt: 'p'.repeat(600), expire_at: 1767225600000 }],
      });
      jobs.push({ name: 'callback', data: { id: `dlv_${j}`, app: 'app_bench', url: sinkUrl, body },
                  opts: { ...jobOptions, jobId: `app_bench:task_${j}` } });
    }
    await queue.addBulk(jobs);
  }
  let done = 0;
  let finished;
  const allDone = new Promise((resolve) => { finished = resolve; });
  const start = process.hrtime.bigint();
  const worker = new Worker('callbacks', deliver, { connection, concurrency: 32 });
  worker.on('completed', () => { if (++done === n) finished(); });
  await allDone;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`bullmq delivered=${n} seconds=${seconds.toFixed(2)} rate=${(n / seconds).toFixed(0)}/s`);
  await worker.close();
  await queue.close();
  redis.disconnect();
} else if (mode === 'serve') {
  const [metricsPort] = rest;
  let delivered = 0;
  const worker = new Worker('callbacks', deliver, { connection, concurrency: 32 });
  worker.on('completed', () => { delivered++; });
  http.createServer((req, res) => {
    res.end(`callbackd_deliveries_finished_total{state="delivered"} ${delivered}\n`);
  }).listen(Number(metricsPort), '127.0.0.1');
} else {
  console.error('usage: node worker.mjs drain <redis-port> <sink-url> [N] | serve <redis-port> <metrics-port>');
  process.exit(2);
}
