// BullMQ side of the scale benchmark (bench/scale.py), with the real library from tests/producers.
// usage: node bench/bullmq.js <serve|big> '<json options>'
//   serve: {port, queues, listen}  BullMQ's own exporter as a user would serve it: every GET
//          /metrics runs Queue.exportPrometheusMetrics() for queues seed-0..seed-(queues-1), one
//          after the other, on one shared connection. Prints "listening" when ready.
//   big:   {port, queue, mb, small} adds one job whose data is `mb` MiB, then `small` ordinary
//          jobs, so the big one is the oldest waiting job. Prints "ok".
const http = require('http');
const path = require('path');
const from = { paths: [path.join(__dirname, '..', 'tests', 'producers')] };
const { Queue } = require(require.resolve('bullmq', from));
const IORedis = require(require.resolve('ioredis', from));

const [action, raw] = process.argv.slice(2);
const o = Object.assign({ port: 6379, queues: 1, listen: 0, queue: 'big', mb: 50, small: 3 }, JSON.parse(raw || '{}'));

async function serve() {
  // Named, so its SLOWLOG entries can be told apart from redline's and the application's.
  const shared = new IORedis({ host: '127.0.0.1', port: o.port, maxRetriesPerRequest: null, connectionName: 'bench-bullmq-exporter' });
  const queues = Array.from({ length: o.queues }, (_, i) => new Queue(`seed-${i}`, { connection: shared }));
  await queues[0].waitUntilReady();
  const server = http.createServer(async (req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    try {
      const parts = [];
      for (const q of queues) parts.push(await q.exportPrometheusMetrics());
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(parts.join('\n'));
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  server.listen(o.listen, '127.0.0.1', () => console.log('listening'));
}

async function big() {
  const q = new Queue(o.queue, { connection: { host: '127.0.0.1', port: o.port, maxRetriesPerRequest: null } });
  await q.add('big', { blob: 'x'.repeat(o.mb * 1024 * 1024) });
  for (let i = 0; i < o.small; i++) await q.add('small', { i });
  await q.close();
  console.log('ok');
  process.exit(0);
}

({ serve, big })[action]().catch(e => { console.error(e); process.exit(1); });
