// Creates real queue data with the real libraries for redline's tests and benchmarks.
// usage: node bull.js <lib: bullmq|bullmq5|bull> <add|work|seed> [json options]
//   add:  {port, queue, prefix, count, delay, priority}            -> adds jobs, prints "ok"
//   work: {port, queue, prefix, ms, failEvery, seconds, attempts,
//          lockDuration, stalledInterval}                       -> processes jobs for `seconds`
//   take: {port, queue, prefix, lockDuration}                       -> leaves one job active
//   produce: {port, queue, prefix, rate, seconds}                   -> adds `rate` jobs a second
//   times: {port, queue, prefix}  -> prints {"wait": [timestamp…], "active": [processedOn…]}, oldest first
//   seed: {port, queues, prefix, perState}                          -> many queues (benchmark)
//   counts: {port|cluster, queue, prefix}                        -> prints getJobCounts() as JSON
// Any action takes {"cluster": [port, …]} instead of port to go through a Redis Cluster.
const [lib, action, raw] = process.argv.slice(2);
const o = Object.assign({ port: 6379, queue: 'q', prefix: 'bull', count: 1, ms: 5, seconds: 3 }, JSON.parse(raw || '{}'));
// Cluster mode ({"cluster": [ports]}): BullMQ through ioredis' Cluster client, as production
// BullMQ on Redis Cluster runs (queue prefixes then need a {hash-tag}).
const connection = o.cluster
  ? new (require('ioredis').Cluster)(o.cluster.map(port => ({ host: '127.0.0.1', port })),
      { redisOptions: { maxRetriesPerRequest: null } })
  : { host: '127.0.0.1', port: o.port, maxRetriesPerRequest: null };
// Short locks and stalled checks let a test kill a worker and see its job stall and recover.
const lockOpts = {};
if (o.lockDuration) lockOpts.lockDuration = o.lockDuration;
if (o.stalledInterval) lockOpts.stalledInterval = o.stalledInterval;

async function bullmq(pkg) {
  const { Queue, Worker } = require(pkg);
  if (action === 'add') {
    const q = new Queue(o.queue, { connection, prefix: o.prefix });
    const opts = {};
    if (o.delay) opts.delay = o.delay;
    if (o.priority) opts.priority = o.priority;
    if (o.attempts) opts.attempts = o.attempts;
    await q.addBulk(Array.from({ length: o.count }, (_, i) => ({ name: 'job', data: { i }, opts })));
    await q.close();
  } else if (action === 'work') {
    let n = 0;
    const w = new Worker(o.queue, async () => {
      n += 1;
      await new Promise(r => setTimeout(r, o.ms));
      if (o.failEvery && n % o.failEvery === 0) throw new Error('boom');
    }, { connection, prefix: o.prefix, name: 'redline-test', ...lockOpts });
    await new Promise(r => setTimeout(r, o.seconds * 1000));
    await w.close();
  } else if (action === 'counts') {
    // The library's own numbers, to check redline's against.
    const q = new Queue(o.queue, { connection, prefix: o.prefix });
    console.log(JSON.stringify(await q.getJobCounts()));
    await q.close();
  } else if (action === 'produce') {
    // A steady producer: one job every 1/rate s for `seconds` (SLO burn tests).
    const q = new Queue(o.queue, { connection, prefix: o.prefix });
    const end = Date.now() + o.seconds * 1000;
    for (let i = 0; Date.now() < end; i++) {
      await q.add('job', { i });
      await new Promise(r => setTimeout(r, 1000 / o.rate));
    }
    await q.close();
  } else if (action === 'times') {
    // The library's own view of job times, to check redline's timestamps against.
    const q = new Queue(o.queue, { connection, prefix: o.prefix });
    const wait = (await q.getJobs(['wait'], 0, -1, true)).map(j => j.timestamp).sort((a, b) => a - b);
    const active = (await q.getJobs(['active'], 0, -1, true)).map(j => j.processedOn).sort((a, b) => a - b);
    console.log(JSON.stringify({ wait, active }));
    await q.close();
  } else if (action === 'take') {
    // Moves one job to active by manual processing and leaves it there, as a worker that
    // died mid-job would (its lock expires after lockDuration).
    const w = new Worker(o.queue, null, { connection, prefix: o.prefix, ...lockOpts });
    await w.getNextJob('redline-take');
    await w.close();
  } else if (action === 'seed-one') {
    // One queue with jobs in every state, finished by manual processing (no worker loop).
    const { Worker } = require(pkg);
    const q = new Queue(o.queue, { connection, prefix: o.prefix });
    const k = o.perState || 5;
    const many = (n, opts) => Array.from({ length: n }, (_, i) => ({ name: 'j', data: { i }, opts }));
    await q.addBulk(many(2 * k, {}));
    const w = new Worker(o.queue, null, { connection, prefix: o.prefix });
    for (let i = 0; i < 2 * k; i++) {
      const job = await w.getNextJob('tok');
      if (i < k) await job.moveToCompleted('ok', 'tok', false);
      else await job.moveToFailed(new Error('seeded failure'), 'tok', false);
    }
    await w.close();
    await q.addBulk([...many(k, {}), ...many(k, { delay: 3600e3 }), ...many(k, { priority: 5 })]);
    await q.close();
  } else if (action === 'export') {
    // BullMQ's own exporter over many queues, timed by the caller.
    // One shared connection, as a careful BullMQ user would set it up.
    const IORedis = require('ioredis');
    const shared = new IORedis({ host: '127.0.0.1', port: o.port, maxRetriesPerRequest: null });
    const names = Array.from({ length: o.queues }, (_, i) => `seed-${i}`);
    const queues = names.map(name => new Queue(name, { connection: shared, prefix: o.prefix }));
    await queues[0].waitUntilReady();
    const t0 = process.hrtime.bigint();
    let bytes = 0;
    for (const q of queues) bytes += (await q.exportPrometheusMetrics()).length;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(JSON.stringify({ ms, bytes }));
    process.exit(0);
  } else if (action === 'seed') {
    // Many queues with jobs in every state, written in bulk for speed.
    for (let i = 0; i < o.queues; i++) {
      const q = new Queue(`seed-${i}`, { connection, prefix: o.prefix });
      const k = o.perState;
      await q.addBulk([
        ...Array.from({ length: k }, () => ({ name: 'w', data: {} })),
        ...Array.from({ length: k }, () => ({ name: 'd', data: {}, opts: { delay: 3600e3 } })),
        ...Array.from({ length: k }, () => ({ name: 'p', data: {}, opts: { priority: 5 } })),
      ]);
      await q.close();
    }
  }
}

async function bull() {
  const Queue = require('bull');
  const q = new Queue(o.queue, { redis: { host: '127.0.0.1', port: o.port }, prefix: o.prefix, settings: lockOpts });
  if (action === 'add') {
    const opts = {};
    if (o.delay) opts.delay = o.delay;
    if (o.priority) opts.priority = o.priority;
    for (let i = 0; i < o.count; i++) await q.add({ i }, opts);
  } else if (action === 'work') {
    let n = 0;
    q.process(async () => {
      n += 1;
      await new Promise(r => setTimeout(r, o.ms));
      if (o.failEvery && n % o.failEvery === 0) throw new Error('boom');
    });
    await new Promise(r => setTimeout(r, o.seconds * 1000));
  }
  await q.close();
}

(lib === 'bull' ? bull() : bullmq(lib === 'bullmq5' ? 'bullmq5' : 'bullmq'))
  .then(() => { console.log('ok'); process.exit(0); })
  .catch(e => { console.error(e); process.exit(1); });
