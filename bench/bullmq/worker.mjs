// The callback job done the usual Node way: jobs in a BullMQ queue on Redis, a worker that
// signs each body (HMAC-SHA256, hex) and POSTs it with the same headers callbackd sends,
// 32 at a time (callbackd's per-host cap). Prints delivered/s for draining N queued jobs.
//   node worker.mjs <redis-port> <sink-url> [N=20000]
import { Queue, Worker } from 'bullmq';
import crypto from 'node:crypto';

const [redisPort, sinkUrl, total = '20000'] = process.argv.slice(2);
const n = Number(total);
const connection = { host: '127.0.0.1', port: Number(redisPort) };
const secret = 'a'.repeat(64);
const body = JSON.stringify({
  task_id: 'task_0', status: 'completed',
  results: [{ id: 'clip_0', audio_url: 'https://cdn.example/a.mp3',
              image_url: 'https://cdn.example/a.jpg', title: 'Night Drive', duration: 182.5,
              tags: 'synthwave', prompt: 'p'.repeat(600), expire_at: 1767225600000 }],
});

const queue = new Queue('callbacks', { connection });
await queue.obliterate({ force: true });
for (let i = 0; i < n; i += 1000) {
  const jobs = [];
  for (let j = i; j < Math.min(n, i + 1000); j++) {
    jobs.push({ name: 'callback', data: { id: `dlv_${j}`, url: sinkUrl, body },
                opts: { attempts: 6, backoff: { type: 'exponential', delay: 30000 },
                        removeOnComplete: true } });
  }
  await queue.addBulk(jobs);
}

let done = 0;
let finished;
const allDone = new Promise((resolve) => { finished = resolve; });
const start = process.hrtime.bigint();
const worker = new Worker('callbacks', async (job) => {
  const { id, url, body } = job.data;
  const signature = crypto.createHmac('sha256', secret).update(body).digest('hex');
  const response = await fetch(url, {
    method: 'POST', body, signal: AbortSignal.timeout(10000),
    headers: { 'Content-Type': 'application/json', 'X-Signature': signature,
               'X-Callback-Id': id, 'X-Callback-Attempt': String(job.attemptsMade + 1) },
  });
  if (response.status < 200 || response.status >= 300) throw new Error(`HTTP ${response.status}`);
}, { connection, concurrency: 32 });
worker.on('completed', () => { if (++done === n) finished(); });
await allDone;
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`bullmq delivered=${n} seconds=${seconds.toFixed(2)} rate=${(n / seconds).toFixed(0)}/s`);
await worker.close();
await queue.close();
