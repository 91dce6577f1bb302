// Creates real queue data with the real libraries for redline's tests and benchmarks, and reads
// the ground truth back through the libraries' own APIs.
// usage: node bull.js <lib: bullmq|bullmq5|bull> <action> [json options]
//   add:    {port, queue, prefix, count, delay, priority, attempts, backoff, lifo, timestamp,
//            removeOnComplete, removeOnFail, spacing, maxLenEvents}
//           -> adds jobs (addBulk, or one by one `spacing` ms apart), prints "ok"
//   work:   {port, queue, prefix, ms, failEvery, failAttempts, seconds, until, concurrency,
//            metrics, lockDuration, stalledInterval}
//           -> processes jobs until `until` jobs finished for good or `seconds` passed; prints
//              {"completed", "failed", "retried"} as the worker saw them
//   truth:  {port, queue, prefix} -> prints what the library itself reports (counts, paused,
//           workers, oldest ready job, metrics counts, retries of the finished jobs still kept)
//   add and truth also take {batches: [{queue, ...options}, ...]}: one process for many queues
//   (truth then prints an object keyed by queue); add's batches may set {pause: true}
//   pause / resume: {port, queue, prefix}
//   take:   {port, queue, prefix, lockDuration}                     -> leaves one job active
//   seed:   {port, queues, prefix, perState}                        -> many queues (benchmark)
//   produce: {port, queue, prefix, rate, seconds}                 -> adds `rate` jobs a second
//   times:  {port, queue, prefix}  -> prints {"wait": [timestamp…], "active": [processedOn…]}, oldest first
//   counts: {port|cluster, queue, prefix}                           -> prints getJobCounts() as JSON
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
const sleep = ms => new Promise(r => setTimeout(r, ms));

// Job options shared by both libraries.
function jobOpts(b) {
  const opts = {};
  for (const k of ['delay', 'priority', 'attempts', 'lifo', 'removeOnComplete', 'removeOnFail', 'timestamp']) {
    if (b[k] !== undefined) opts[k] = b[k];
  }
  if (b.backoff) opts.backoff = { type: 'fixed', delay: b.backoff };
  return opts;
}

// `add` and `truth` take one queue, or a list: {batches: [{queue, ...}, ...]} runs each in turn
// (one node process for a whole scenario), the top-level options as defaults.
const batches = () => (o.batches || [{}]).map(b => Object.assign({}, o, b));

// A processor that fails every `failEvery`-th call and the first `failAttempts` attempts of each
// job, counting what it did: the worker's own view of completions, failures and retries.
function processor(seen) {
  let n = 0;
  return async job => {
    n += 1;
    await sleep(o.ms);
    const attempts = (job.opts && job.opts.attempts) || 1;
    const fail = (o.failEvery && n % o.failEvery === 0) || (o.failAttempts && job.attemptsMade < o.failAttempts);
    if (!fail) { seen.completed += 1; return 'ok'; }
    if (job.attemptsMade + 1 >= attempts) seen.failed += 1; else seen.retried += 1;
    throw new Error('boom');
  };
}

async function runUntil(seen) {
  const deadline = Date.now() + o.seconds * 1000;
  while (Date.now() < deadline && !(o.until && seen.completed + seen.failed >= o.until)) await sleep(20);
}

// The oldest job that could run now, from the library's own job lists: added at timestamp +
// delay, or back after an attempt that started at processedOn (a retried job keeps its
// timestamp). A delayed job promoted to wait has delay 0 in its hash: its due time is not
// here; tests/queues_bull.rs checks that case against the schedule it set.
function oldestReady(ready, delayed, now) {
  let oldest = null;
  const older = t => { if (oldest === null || t < oldest) oldest = t; };
  for (const j of ready) if (j) older(Math.max(j.timestamp + (j.delay || 0), j.processedOn || 0));
  for (const j of delayed) if (j && j.timestamp + (j.delay || 0) <= now) older(j.timestamp + (j.delay || 0));
  return oldest;
}

async function bullmq(pkg) {
  const { Queue, Worker } = require(pkg);
  const qopts = { connection, prefix: o.prefix };
  if (o.maxLenEvents) qopts.streams = { events: { maxLen: o.maxLenEvents } };
  if (action === 'add') {
    for (const b of batches()) {
      const q = new Queue(b.queue, { ...qopts, prefix: b.prefix });
      const opts = jobOpts(b);
      if (b.spacing) {
        for (let i = 0; i < b.count; i++) {
          await q.add('job', { i }, opts);
          if (i + 1 < b.count) await sleep(b.spacing);
        }
      } else {
        await q.addBulk(Array.from({ length: b.count }, (_, i) => ({ name: 'job', data: { i }, opts })));
      }
      if (b.pause) await q.pause();
      await q.close();
    }
  } else if (action === 'work') {
    const seen = { completed: 0, failed: 0, retried: 0 };
    const wopts = { connection, prefix: o.prefix, name: 'redline-test', concurrency: o.concurrency || 1, ...lockOpts };
    if (o.metrics) wopts.metrics = { maxDataPoints: 60 };
    const w = new Worker(o.queue, processor(seen), wopts);
    await runUntil(seen);
    await w.close();
    console.log(JSON.stringify(seen));
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
  } else if (action === 'truth') {
    const all = {};
    for (const b of batches()) {
      const q = new Queue(b.queue, { ...qopts, prefix: b.prefix, skipMetasUpdate: true });
      const now = Date.now();
      const counts = await q.getJobCounts();
      const ready = await q.getJobs(['waiting', 'prioritized', 'paused'], 0, -1);
      const delayed = await q.getJobs(['delayed'], 0, -1);
      const finished = await q.getJobs(['completed', 'failed'], 0, -1);
      const metrics = async t => (await q.getMetrics(t, 0, 0)).meta.count;
      all[b.queue] = {
        now, counts, paused: await q.isPaused(), workers: (await q.getWorkers()).length,
        oldestReady: oldestReady(ready, delayed, now),
        metrics: { completed: await metrics('completed'), failed: await metrics('failed') },
        retriesKept: finished.filter(Boolean).reduce((s, j) => s + Math.max(0, (j.attemptsMade || 0) - 1), 0),
      };
      await q.close();
    }
    console.log(JSON.stringify(o.batches ? all : all[o.queue]));
  } else if (action === 'pause' || action === 'resume') {
    const q = new Queue(o.queue, qopts);
    await q[action]();
    await q.close();
  } else if (action === 'take') {
    // Moves one job to active by manual processing and leaves it there, as a worker that
    // died mid-job would (its lock expires after lockDuration).
    const w = new Worker(o.queue, null, { connection, prefix: o.prefix, ...lockOpts });
    await w.getNextJob('redline-take');
    await w.close();
  } else if (action === 'seed-one') {
    // One queue with jobs in every state, finished by manual processing (no worker loop).
    const q = new Queue(o.queue, qopts);
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
  const settings = { ...lockOpts };
  const queue = b => {
    const qopts = { redis: { host: '127.0.0.1', port: o.port }, prefix: b.prefix, settings };
    if (b.metrics) qopts.metrics = { maxDataPoints: 60 };
    return new Queue(b.queue, qopts);
  };
  if (action === 'add') {
    for (const b of batches()) {
      const q = queue(b);
      const opts = jobOpts(b);
      for (let i = 0; i < b.count; i++) {
        await q.add({ i }, opts);
        if (b.spacing && i + 1 < b.count) await sleep(b.spacing);
      }
      if (b.pause) await q.pause();
      await q.close();
    }
    return;
  }
  if (action === 'truth') {
    const all = {};
    for (const b of batches()) {
      const q = queue(b);
      const now = Date.now();
      const counts = await q.getJobCounts();
      const ready = await q.getJobs(['waiting', 'paused'], 0, -1);
      const delayed = await q.getJobs(['delayed'], 0, -1);
      const finished = await q.getJobs(['completed', 'failed'], 0, -1);
      const metrics = async t => (await q.getMetrics(t, 0, 0)).meta.count;
      // Bull counts failed attempts: a completed job retried attemptsMade times, a failed one once less.
      const retries = j => (j.finishedOn && j.failedReason !== undefined && j.failedReason !== null && j.attemptsMade >= ((j.opts && j.opts.attempts) || 1))
        ? Math.max(0, j.attemptsMade - 1) : (j.attemptsMade || 0);
      all[b.queue] = {
        now, counts, paused: await q.isPaused(), workers: (await q.getWorkers()).length,
        oldestReady: oldestReady(ready, delayed, now),
        metrics: { completed: await metrics('completed'), failed: await metrics('failed') },
        retriesKept: finished.filter(Boolean).reduce((s, j) => s + retries(j), 0),
      };
      await q.close();
    }
    console.log(JSON.stringify(o.batches ? all : all[o.queue]));
    return;
  }
  const q = queue(o);
  if (action === 'work') {
    const seen = { completed: 0, failed: 0, retried: 0 };
    q.process(o.concurrency || 1, processor(seen));
    await runUntil(seen);
    console.log(JSON.stringify(seen));
  } else if (action === 'pause' || action === 'resume') {
    await q[action]();
  }
  await q.close();
}

(lib === 'bull' ? bull() : bullmq(lib === 'bullmq5' ? 'bullmq5' : 'bullmq'))
  .then(() => { if (action !== 'work' && action !== 'truth') console.log('ok'); process.exit(0); })
  .catch(e => { console.error(e); process.exit(1); });
