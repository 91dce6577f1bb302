//! Job queues stored in Redis. Each queue system knows its key layout and adds a fixed number
//! of commands per queue to the Redis collector's pipeline, so N queues still cost one round
//! trip. Discovery (SCAN) runs in its own background task and never on the collection path.

pub mod bull;
pub mod bullmq;
mod bullmq_snapshot;
pub mod celery;
pub mod discovery;
mod histogram;
mod rank;
pub mod reply;
pub mod rq;
mod script;
pub mod sidekiq;
pub mod streams;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use redis::{RedisResult, Value};

use crate::metrics::{label, FamilySet, Label, MetricDef};
use crate::names as n;

pub use crate::config::queues::{QueueSource, System};
pub use histogram::Histogram;

/// One queue: system, prefix and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueRef {
    /// System.
    pub system: System,
    /// Key prefix.
    pub prefix: String,
    /// Queue name.
    pub name: String,
}

/// Why a queue (or part of one) could not be read; the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueError {
    /// A key had the wrong type or a job hash had missing or garbage fields.
    BadData,
    /// The server rejected the read (script error, refused command).
    ReadFailed,
    /// The reply did not have the expected shape.
    BadReply,
}

impl QueueError {
    fn as_str(self) -> &'static str {
        match self {
            QueueError::BadData => "bad_data",
            QueueError::ReadFailed => "read_failed",
            QueueError::BadReply => "bad_reply",
        }
    }
}

/// What one collection learned about one queue.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reading {
    /// Jobs per state; only states the system has.
    pub states: Vec<(&'static str, f64)>,
    /// Age of the oldest job ready to run, seconds (0 when none).
    pub oldest_ready_age: f64,
    /// When the oldest job ready to run became ready, ms since the epoch (`None` when none).
    pub oldest_ready_ms: Option<f64>,
    /// Paused flag.
    pub paused: Option<bool>,
    /// Lifetime counters that the keys hold (e.g. BullMQ's id counter).
    pub added_total: Option<f64>,
    /// Completed total from the queue's own metrics keys, when present.
    pub completed_total: Option<f64>,
    /// Failed total from the queue's own metrics keys, when present.
    pub failed_total: Option<f64>,
    /// Jobs seen completing since the previous collection.
    pub completed_new: f64,
    /// Jobs seen failing since the previous collection.
    pub failed_new: f64,
    /// Retries made by the jobs that finished since the previous collection.
    pub retries_new: f64,
    /// (wait, processing) durations in seconds of jobs finished since the previous collection.
    pub durations: Vec<(f64, f64)>,
    /// Bad keys or job hashes skipped.
    pub bad_data: u64,
    /// Workers serving the queue, where the system records them.
    pub workers: Option<f64>,
    /// Whether the system keeps finished jobs, so completion counters and durations exist.
    pub tracks_finished: bool,
    /// The system keeps no record of retries: no retried counter rather than a false 0.
    pub retries_unknown: bool,
    /// Jobs seen being added since the previous collection, for systems that count adds as
    /// events rather than keep a lifetime total.
    pub added_new: Option<f64>,
    /// Events (or finished jobs) the source dropped before redline read them, since the previous
    /// collection: the counters miss up to this many.
    pub events_lost: f64,
    /// Events written but not read yet (the counters are behind by this many, caught up later).
    pub events_backlog: Option<f64>,
    /// Finished jobs counted but not timed (their start or ready time is unknown).
    pub untimed_new: f64,
    /// Whether the completed/failed counters come from a source that sees every job.
    pub counters_exact: Option<bool>,
    /// Whether `oldest_ready_age` is only a lower bound (a bounded read stopped short).
    pub oldest_lower_bound: Option<bool>,
    /// System-specific samples: definition, labels beyond target/system/queue, value.
    pub extra: Vec<(&'static MetricDef, Vec<Label>, f64)>,
}

impl Reading {
    /// Records when the longest-running active job started (ms since the epoch). Its age is
    /// `time() - timestamp` in PromQL: one series instead of two (the series budget).
    fn running_since(&mut self, started_ms: f64) {
        self.extra.push((&n::QUEUE_OLDEST_ACTIVE_TIMESTAMP, vec![], started_ms / 1000.0));
    }

    /// Records how many active jobs their worker no longer holds (lock or heartbeat expired).
    fn stalled(&mut self, jobs: f64) {
        self.extra.push((&n::QUEUE_JOBS_STALLED, vec![], jobs));
    }

    /// Whether the system's keys let redline count finished jobs and time them.
    fn counts_jobs(&self) -> bool {
        self.completed_total.is_some()
            || self.counters_exact.is_some()
            || self.completed_new > 0.0
            || self.failed_new > 0.0
            || self.tracks_finished
    }
}

/// Where a counter's value comes from; chosen when the counter first has one and kept for the
/// series' life, so a counter never jumps when a key appears or disappears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A lifetime total the queue keeps (`completed_total`, `added_total`: Bull's id counter).
    Totals,
    /// Jobs redline saw finishing, added up since it started.
    Deltas,
}

/// A counter fed by lifetime totals: a total that goes down (key deleted, queue obliterated) is a
/// reset of the source, not of the counter, which stays monotonic.
#[derive(Debug, Default, Clone, Copy)]
struct Total {
    last: f64,
    offset: f64,
}

impl Total {
    /// The counter value after the source reported `total` (or nothing this time).
    fn update(&mut self, total: Option<f64>) -> f64 {
        if let Some(t) = total.filter(|t| t.is_finite() && *t >= 0.0) {
            if t < self.last {
                self.offset += self.last;
            }
            self.last = t;
        }
        self.offset + self.last
    }
}

/// Series that stay 0 on a queue that never uses what they count: the job states of features a
/// queue may never use (pre-v5 pause lists, priorities, flows), the pause flag and
/// `redline_queue_jobs_stalled`. Each appears the first time it is not 0 and stays from then
/// (absent means 0; the `> 0` alerts read the same), which keeps a queue within its series
/// budget; the states every queue uses are always there.
const SPARSE: [&str; 5] =
    ["paused", "prioritized", "waiting-children", n::QUEUE_JOBS_STALLED.name, n::QUEUE_PAUSED.name];

impl QueueState {
    /// Whether sparse series `name` (a state, or a family name) is shown now that it reads `v`.
    fn shows(&mut self, name: &str, v: f64) -> bool {
        let Some(i) = SPARSE.iter().position(|s| *s == name) else { return true };
        if v != 0.0 {
            self.sparse_seen |= 1 << i;
        }
        self.sparse_seen & (1 << i) != 0
    }
}

/// Per-queue memory between collections (cursors and counters).
#[derive(Debug, Default)]
pub struct QueueState {
    /// System-specific cursors (e.g. last finished score seen).
    pub cursors: [Option<f64>; 2],
    /// BullMQ/Bull: events-stream and finished-set cursors, jobs in flight.
    pub(crate) jobs: Option<Box<bullmq::Tracker>>,
    source: Option<Source>,
    added_source: Option<Source>,
    /// The oldest-ready age has been a lower bound at least once: its flag is exposed from then.
    lower_bound_seen: bool,
    /// Which [`SPARSE`] series have been non-zero (bit i for entry i).
    sparse_seen: u8,
    /// Whether `limits.queue_histograms` picks this queue, matched once (the setting is fixed
    /// for the collector's life; a change rebuilds it).
    own_histograms: Option<bool>,
    totals: [Total; 3],
    added: f64,
    completed: f64,
    failed: f64,
    retried: f64,
    lost: f64,
    untimed: f64,
    wait: Histogram,
    processing: Histogram,
    /// RQ: registry bands, result_ttl lines, jobs timed.
    pub rq: rq::Memory,
    /// Celery: when redline first saw the messages of each priority sub-queue.
    pub celery: celery::Memory,
}

/// Configured and discovered queues of one Redis target, and their state.
pub struct Queues {
    target: String,
    sources: Vec<QueueSource>,
    max_queues: usize,
    max_samples: usize,
    histograms: crate::config::queues::QueueHistograms,
    /// Wait and processing histograms of all the queues of one system and prefix: bounded by
    /// the number of sources, not of queues, and kept when a queue goes away.
    all: BTreeMap<(System, String), (Histogram, Histogram)>,
    /// Buckets the SLOs need (updated by hot reload).
    slo_buckets: crate::slo::SharedBuckets,
    /// Filled by the discovery task.
    pub discovered: Arc<RwLock<discovery::Found>>,
    state: HashMap<QueueRef, QueueState>,
    errors: HashMap<(System, QueueError), f64>,
    dropped: usize,
    /// Celery: passes over large `unacked` hashes, per key prefix.
    celery_unacked: HashMap<String, celery::UnackedScan>,
}

/// A once-per-collection command shared by the queues of one system.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Global {
    ClientList,
    Sidekiq(String),
    Celery(String),
}

/// What the once-per-collection commands returned.
#[derive(Default)]
struct Globals {
    clients: Option<Vec<String>>,
    sidekiq: HashMap<String, sidekiq::Global>,
    celery: HashMap<String, celery::Unacked>,
}

/// The queue commands of one pipeline, in order.
pub struct Plan {
    entries: Vec<(QueueRef, usize)>,
    globals: Vec<Global>,
    preamble: usize,
    /// The reads that take more than one round (BullMQ), by entry.
    rounds: Vec<Option<bullmq::Snapshot>>,
    /// Whether the first round's replies were handed to `rounds`.
    started: bool,
    /// The entries of the round sent last, with their command counts.
    asked: Vec<(usize, usize)>,
}

impl Plan {
    /// Command counts of the units that must go out in one window (a queue's commands stay
    /// together: BullMQ's `MULTI … EXEC`), in pipeline order.
    pub fn groups(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::repeat_n(1, self.preamble + self.globals.len()).chain(self.entries.iter().map(|(_, n)| *n))
    }

    /// Reads the replies of the round sent last (the first: the plan's whole pipeline) and
    /// returns the next round's commands and groups (each queue's together), or `None` when
    /// every read is done.
    pub fn next_round(&mut self, replies: &[RedisResult<Value>]) -> Option<(Vec<redis::Cmd>, Vec<usize>)> {
        let mut cmds = Vec::new();
        let mut groups = Vec::new();
        let mut asked = Vec::new();
        let mut step = |k: usize, snap: &mut bullmq::Snapshot, slice: &[RedisResult<Value>]| {
            let next = snap.next(slice);
            if !next.is_empty() {
                asked.push((k, next.len()));
                groups.push(next.len());
                cmds.extend(next);
            }
        };
        if !self.started {
            self.started = true;
            let mut i = self.preamble + self.globals.len();
            for (k, (_, n)) in self.entries.iter().enumerate() {
                if let Some(snap) = self.rounds.get_mut(k).and_then(Option::as_mut) {
                    step(k, snap, replies.get(i..i + n).unwrap_or(&[]));
                }
                i += n;
            }
        } else {
            let mut i = 0;
            for (k, n) in std::mem::take(&mut self.asked) {
                if let Some(snap) = self.rounds.get_mut(k).and_then(Option::as_mut) {
                    step(k, snap, replies.get(i..i + n).unwrap_or(&[]));
                }
                i += n;
            }
        }
        self.asked = asked;
        (!cmds.is_empty()).then_some((cmds, groups))
    }

    /// The round sent last failed: the reads waiting on it are not done this time.
    pub fn round_failed(&mut self) {
        for (k, _) in std::mem::take(&mut self.asked) {
            if let Some(snap) = self.rounds.get_mut(k).and_then(Option::as_mut) {
                snap.fail();
            }
        }
    }

    /// Sends the rounds after the first (whose replies are `first`) through `window` until
    /// every read is done. A failed window fails the reads waiting on it and is returned: the
    /// connection's state is then unknown.
    pub async fn finish(
        &mut self,
        window: &mut super::window::Window,
        conn: &mut redis::aio::MultiplexedConnection,
        first: &[RedisResult<Value>],
    ) -> RedisResult<()> {
        let mut next = self.next_round(first);
        while let Some((cmds, groups)) = next {
            match window.run(conn, cmds, &groups).await {
                Ok(replies) => next = self.next_round(&replies),
                Err(e) => {
                    self.round_failed();
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Queues {
    /// Queues for one target.
    pub fn new(target: &str, sources: Vec<QueueSource>, limits: &crate::config::Limits) -> Self {
        Self {
            target: target.to_string(),
            sources,
            max_queues: limits.max_queues,
            max_samples: limits.max_finished_samples,
            histograms: limits.queue_histograms.clone(),
            all: BTreeMap::new(),
            slo_buckets: limits.slo_buckets.clone(),
            discovered: Arc::new(RwLock::new(discovery::Found::default())),
            state: HashMap::new(),
            errors: HashMap::new(),
            dropped: 0,
            celery_unacked: HashMap::new(),
        }
    }

    /// The configured sources (the discovery task reads them).
    pub fn sources(&self) -> &[QueueSource] {
        &self.sources
    }

    /// Explicit queues first (always kept, up to the cap), then the discovered ones with the most
    /// jobs ready to run (ties by name), capped at `max_queues`.
    fn selection(&mut self) -> Vec<QueueRef> {
        let mut all: BTreeSet<QueueRef> = BTreeSet::new();
        let mut out = Vec::new();
        for s in &self.sources {
            for name in &s.names {
                let q = QueueRef { system: s.system, prefix: s.prefix().to_string(), name: name.clone() };
                if all.insert(q.clone()) {
                    out.push(q);
                }
            }
        }
        let explicit = out.len();
        out.truncate(self.max_queues);
        let found = self.discovered.read().unwrap_or_else(|p| p.into_inner());
        let rest: Vec<&QueueRef> = found.queues.iter().filter(|q| !all.contains(*q)).collect();
        let wanted = explicit + rest.len();
        out.extend(rank::top(rest, &found.backlog, self.max_queues - out.len()).into_iter().cloned());
        self.dropped = wanted - out.len();
        out
    }

    /// Adds the commands for every selected queue to `pipe`.
    pub fn plan(&mut self, pipe: &mut redis::Pipeline) -> Plan {
        let queues = self.select();
        self.plan_for(pipe, queues)
    }

    /// The queues this collection reads; forgets the state of the others (deleted, or dropped
    /// by the cap).
    pub fn select(&mut self) -> Vec<QueueRef> {
        let queues = self.selection();
        let keep: BTreeSet<&QueueRef> = queues.iter().collect();
        self.state.retain(|q, _| keep.contains(q));
        queues
    }

    /// Adds the commands for `queues`, part of [`Queues::select`] (on a cluster: the queues
    /// one node owns; each node gets its own pipeline and plan).
    pub fn plan_for(&mut self, pipe: &mut redis::Pipeline, queues: Vec<QueueRef>) -> Plan {
        let systems: BTreeSet<System> = queues.iter().map(|q| q.system).collect();
        let before = pipe.cmd_iter().count();
        for s in &systems {
            match s {
                System::Bullmq => bullmq::load_script(pipe),
                System::Bull => bull::load_script(pipe),
                System::Rq => rq::load_script(pipe),
                System::Sidekiq => sidekiq::load_scripts(pipe),
                System::Celery => celery::load_scripts(pipe),
                System::Stream => streams::load_script(pipe),
            }
        }
        let preamble = pipe.cmd_iter().count() - before;
        let mut globals = Vec::new();
        if systems.contains(&System::Bullmq) || systems.contains(&System::Bull) {
            globals.push(Global::ClientList);
        }
        for q in &queues {
            let g = match q.system {
                System::Sidekiq => Global::Sidekiq(q.prefix.clone()),
                System::Celery => Global::Celery(q.prefix.clone()),
                _ => continue,
            };
            if !globals.contains(&g) {
                globals.push(g);
            }
        }
        for g in &globals {
            match g {
                Global::ClientList => {
                    pipe.cmd("CLIENT").arg("LIST");
                }
                Global::Sidekiq(prefix) => sidekiq::add_global(pipe, prefix),
                Global::Celery(prefix) => celery::add_global(pipe, prefix, self.celery_unacked.get(prefix)),
            }
        }
        let mut entries = Vec::with_capacity(queues.len());
        let mut rounds = Vec::with_capacity(queues.len());
        for q in queues {
            let st = self.state.entry(q.clone()).or_default();
            let mut snap = None;
            let cmds = match q.system {
                System::Bullmq => {
                    let (s, n) = bullmq::add_commands(pipe, &q, st);
                    snap = Some(s);
                    n
                }
                System::Bull => bull::add_commands(pipe, &q, st, self.max_samples),
                System::Rq => rq::add_commands(pipe, &q, st, self.max_samples),
                System::Sidekiq => sidekiq::add_commands(pipe, &q),
                System::Celery => celery::add_commands(pipe, &q, st, &celery::settings(&self.sources, &q)),
                System::Stream => streams::add_commands(pipe, &q),
            };
            entries.push((q, cmds));
            rounds.push(snap);
        }
        Plan { entries, globals, preamble, rounds, started: false, asked: Vec::new() }
    }

    /// Reads the replies of `plan`'s first round (in order; the later rounds already read by
    /// [`Plan::finish`]) and adds the queue families to `out`.
    pub fn read(&mut self, plan: Plan, replies: &[RedisResult<Value>], out: &mut FamilySet) {
        self.read_part(plan, replies, out);
        self.summary(out);
    }

    /// Like [`Queues::read`] without the once-per-target summary (call [`Queues::summary`]
    /// after the last part).
    pub fn read_part(&mut self, mut plan: Plan, replies: &[RedisResult<Value>], out: &mut FamilySet) {
        let mut i = plan.preamble;
        let mut g = Globals::default();
        for global in &plan.globals {
            let reply = replies.get(i);
            i += 1;
            let ok = match global {
                Global::ClientList => {
                    g.clients = reply.and_then(|r| r.as_ref().ok()).map(client_names);
                    g.clients.is_some()
                }
                Global::Sidekiq(prefix) => {
                    sidekiq::read_global(reply).map(|v| g.sidekiq.insert(prefix.clone(), v)).is_some()
                }
                Global::Celery(prefix) => {
                    let scan = self.celery_unacked.entry(prefix.clone()).or_default();
                    celery::read_global(reply, scan).map(|v| g.celery.insert(prefix.clone(), v)).is_some()
                }
            };
            if !ok {
                let system = match global {
                    Global::ClientList => System::Bullmq,
                    Global::Sidekiq(_) => System::Sidekiq,
                    Global::Celery(_) => System::Celery,
                };
                tracing::debug!(system = system.as_str(), "server-wide queue read failed");
                *self.errors.entry((system, QueueError::ReadFailed)).or_default() += 1.0;
            }
        }
        for (k, (q, cmds)) in plan.entries.into_iter().enumerate() {
            let slice = replies.get(i..i + cmds).unwrap_or(&[]);
            i += cmds;
            let st = self.state.entry(q.clone()).or_default();
            let result = match q.system {
                System::Bullmq => match plan.rounds.get_mut(k).and_then(Option::take) {
                    Some(snap) => bullmq::read(snap, st),
                    None => Err(QueueError::BadReply),
                },
                System::Bull => bull::read(slice, st),
                System::Rq => rq::read(slice, st),
                System::Sidekiq => sidekiq::read(slice, &q, g.sidekiq.get(&q.prefix)),
                System::Celery => {
                    celery::read(slice, &q, st, &celery::settings(&self.sources, &q), g.celery.get(&q.prefix))
                }
                System::Stream => streams::read(slice),
            };
            match result {
                Ok(mut reading) => {
                    if reading.bad_data > 0 {
                        tracing::debug!(queue = %q.name, system = q.system.as_str(), "skipped {} bad keys or jobs", reading.bad_data);
                        *self.errors.entry((q.system, QueueError::BadData)).or_default() +=
                            reading.bad_data as f64;
                    }
                    if matches!(q.system, System::Bullmq | System::Bull) {
                        reading.workers = g.clients.as_ref().map(|c| bullmq::workers(c, &q) as f64);
                    }
                    self.emit(&q, reading, out);
                }
                Err(e) => {
                    tracing::debug!(queue = %q.name, system = q.system.as_str(), "queue skipped: {}", e.as_str());
                    *self.errors.entry((q.system, e)).or_default() += 1.0;
                }
            }
        }
        self.globals(&g, out);
    }

    /// Server-wide numbers that belong to no single queue (no `queue` label).
    fn globals(&mut self, g: &Globals, out: &mut FamilySet) {
        let base =
            |system: System| vec![label("target", self.target.clone()), label("system", system.as_str())];
        for (prefix, s) in &g.sidekiq {
            let l = || {
                let mut l = base(System::Sidekiq);
                if !prefix.is_empty() {
                    l.push(label("namespace", prefix.clone()));
                }
                l
            };
            for (state, v) in [("scheduled", s.scheduled), ("retry", s.retry), ("dead", s.dead)] {
                if v >= 0.0 {
                    let mut ls = l();
                    ls.push(label("state", state));
                    out.add(&n::QUEUE_SERVER_JOBS, ls, v);
                }
            }
            if s.processed >= 0.0 {
                out.add(&n::QUEUE_SERVER_PROCESSED, l(), s.processed);
            }
            if s.failed >= 0.0 {
                out.add(&n::QUEUE_SERVER_FAILED, l(), s.failed);
            }
            out.add(&n::QUEUE_SERVER_BUSY, l(), s.processes.iter().map(|p| p.0).sum());
            if s.bad_data > 0 {
                *self.errors.entry((System::Sidekiq, QueueError::BadData)).or_default() += s.bad_data as f64;
            }
        }
        for u in g.celery.values() {
            let mut l = base(System::Celery);
            l.push(label("state", "unacked"));
            out.add(&n::QUEUE_SERVER_JOBS, l, u.total.max(0.0));
            if u.bad_data > 0 {
                *self.errors.entry((System::Celery, QueueError::BadData)).or_default() += u.bad_data as f64;
            }
        }
    }

    fn emit(&mut self, q: &QueueRef, r: Reading, out: &mut FamilySet) {
        // One set of label values per queue, shared (reference-counted) by its ~15 samples.
        let shared = queue_labels(&self.target, q);
        let base = || shared.clone();
        let mut sparse = self.state.get_mut(q);
        let mut shows = |name: &str, v: f64| sparse.as_deref_mut().is_none_or(|st| st.shows(name, v));
        for (state, v) in &r.states {
            if !shows(state, *v) {
                continue;
            }
            let mut l = base();
            l.push(label("state", *state));
            out.add(&n::QUEUE_JOBS, l, *v);
        }
        out.add(&n::QUEUE_OLDEST_READY_AGE, base(), r.oldest_ready_age);
        if let Some(ms) = r.oldest_ready_ms {
            out.add(&n::QUEUE_OLDEST_READY_TIMESTAMP, base(), ms / 1000.0);
        }
        if let Some(p) = r.paused.filter(|p| shows(n::QUEUE_PAUSED.name, f64::from(u8::from(*p)))) {
            out.add(&n::QUEUE_PAUSED, base(), if p { 1.0 } else { 0.0 });
        }
        if let Some(w) = r.workers {
            out.add(&n::QUEUE_WORKERS, base(), w);
        }
        for (def, extra, v) in &r.extra {
            if !shows(def.name, *v) {
                continue;
            }
            let mut l = base();
            l.extend(extra.iter().cloned());
            out.add(def, l, *v);
        }
        // Present from the first time the age is only a bound (then 1, later 0 or 1): a queue
        // read exactly all along does not spend a series on saying so.
        // (read_part made the queue's state before reading it.)
        if let (Some(lb), Some(st)) = (r.oldest_lower_bound, self.state.get_mut(q)) {
            st.lower_bound_seen |= lb;
            if st.lower_bound_seen {
                out.add(&n::QUEUE_OLDEST_READY_AGE_LOWER_BOUND, base(), if lb { 1.0 } else { 0.0 });
            }
        }
        if !r.counts_jobs() {
            return;
        }
        let Some(st) = self.state.get_mut(q) else { return };
        let slo_named = histogram::apply_slo_bounds(
            &self.slo_buckets.get(),
            &self.target,
            q,
            &mut st.wait,
            &mut st.processing,
        );
        let finite = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        // Each counter keeps the source it had when it first had one.
        if r.added_total.is_some() || r.added_new.is_some() {
            let added_source = *st.added_source.get_or_insert(if r.added_total.is_some() {
                Source::Totals
            } else {
                Source::Deltas
            });
            let added = match added_source {
                Source::Totals => st.totals[0].update(r.added_total),
                Source::Deltas => {
                    st.added += finite(r.added_new.unwrap_or(0.0));
                    st.added
                }
            };
            out.add(&n::QUEUE_JOBS_ADDED, base(), added);
        }
        let source = *st.source.get_or_insert(if r.completed_total.is_some() || r.failed_total.is_some() {
            Source::Totals
        } else {
            Source::Deltas
        });
        let (completed, failed) = match source {
            Source::Totals => (st.totals[1].update(r.completed_total), st.totals[2].update(r.failed_total)),
            Source::Deltas => {
                st.completed += finite(r.completed_new);
                st.failed += finite(r.failed_new);
                (st.completed, st.failed)
            }
        };
        st.retried += finite(r.retries_new);
        st.lost += finite(r.events_lost);
        st.untimed += finite(r.untimed_new);
        let all = self.all.entry((q.system, q.prefix.clone())).or_default();
        for (wait, processing) in &r.durations {
            st.wait.observe(*wait);
            st.processing.observe(*processing);
            all.0.observe(*wait);
            all.1.observe(*processing);
        }
        out.add(&n::QUEUE_JOBS_COMPLETED, base(), completed);
        out.add(&n::QUEUE_JOBS_FAILED, base(), failed);
        if !r.retries_unknown {
            out.add(&n::QUEUE_JOBS_RETRIED, base(), st.retried);
        }
        // The diagnostics that stay 0 on a healthy queue appear when they first have something
        // to say (as a client library's labelled counter does), which keeps a queue within its
        // series budget; `redline_queue_counters_exact` is always there.
        if let Some(exact) = r.counters_exact {
            out.add(&n::QUEUE_COUNTERS_EXACT, base(), if exact { 1.0 } else { 0.0 });
            if st.lost > 0.0 {
                out.add(&n::QUEUE_EVENTS_LOST, base(), st.lost);
            }
            if st.untimed > 0.0 {
                out.add(&n::QUEUE_JOBS_UNTIMED, base(), st.untimed);
            }
        }
        if let Some(b) = r.events_backlog.filter(|b| *b > 0.0) {
            out.add(&n::QUEUE_EVENTS_BACKLOG, base(), b);
        }
        // Queues named in SLOs keep their histograms: the SLI is read from them.
        let own = *st.own_histograms.get_or_insert_with(|| self.histograms.per_queue(&q.name));
        if !own && !slo_named {
            return;
        }
        let (sum, count, buckets) = st.wait.snapshot();
        out.histogram(&n::QUEUE_WAIT_DURATION, base(), sum, count, buckets);
        let (sum, count, buckets) = st.processing.snapshot();
        out.histogram(&n::QUEUE_PROCESSING_DURATION, base(), sum, count, buckets);
    }

    /// Once-per-target queue numbers: dropped, discovered, discovery time, errors.
    pub fn summary(&self, out: &mut FamilySet) {
        let t = || label("target", self.target.clone());
        out.add(&n::QUEUE_DROPPED, vec![t()], self.dropped as f64);
        let found = self.discovered.read().unwrap_or_else(|p| p.into_inner());
        let mut seen = BTreeSet::new();
        // A source listed twice (same system and prefix) is one series.
        for s in self.sources.iter().filter(|s| s.discovers() && seen.insert((s.system, s.prefix()))) {
            let count =
                found.queues.iter().filter(|q| q.system == s.system && q.prefix == s.prefix()).count();
            let mut l = vec![t(), label("system", s.system.as_str())];
            if !s.prefix().is_empty() {
                l.push(label("prefix", s.prefix().to_string()));
            }
            out.add(&n::QUEUE_DISCOVERED, l, count as f64);
        }
        for ((system, prefix, skip), v) in &found.errors {
            let mut l = vec![t(), label("system", system.as_str())];
            if !prefix.is_empty() {
                l.push(label("prefix", prefix.clone()));
            }
            l.push(label("reason", skip.as_str()));
            out.add(&n::QUEUE_DISCOVERY_ERRORS, l, *v as f64);
        }
        for ((system, prefix), (wait, processing)) in &self.all {
            let l = || {
                let mut l = vec![t(), label("system", system.as_str())];
                if !prefix.is_empty() {
                    l.push(label("prefix", prefix.clone()));
                }
                l
            };
            let (sum, count, buckets) = wait.snapshot();
            out.histogram(&n::QUEUE_ALL_WAIT_DURATION, l(), sum, count, buckets);
            let (sum, count, buckets) = processing.snapshot();
            out.histogram(&n::QUEUE_ALL_PROCESSING_DURATION, l(), sum, count, buckets);
        }
        if let Some(d) = found.last_pass {
            out.add(&n::QUEUE_DISCOVERY_DURATION, vec![t()], d.as_secs_f64());
        }
        let mut errs: Vec<_> = self.errors.iter().collect();
        errs.sort_by_key(|(k, _)| **k);
        for ((system, reason), v) in errs {
            out.add(
                &n::QUEUE_ERRORS,
                vec![t(), label("system", system.as_str()), label("reason", reason.as_str())],
                *v,
            );
        }
    }
}

/// The labels that identify one queue: `target`, `system`, `prefix` (left out when the system
/// has none, e.g. Sidekiq without a namespace) and `queue`. The prefix is part of a queue's
/// identity: `myapp:same` and `{pay}:same` are two queues and must be two series.
pub fn queue_labels(target: &str, q: &QueueRef) -> Vec<Label> {
    let mut l = vec![label("target", target.to_string()), label("system", q.system.as_str())];
    if !q.prefix.is_empty() {
        l.push(label("prefix", q.prefix.clone()));
    }
    l.push(label("queue", q.name.clone()));
    l
}

/// Client names from a CLIENT LIST reply.
fn client_names(v: &Value) -> Vec<String> {
    let text = match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::SimpleString(s) => s.clone(),
        _ => return Vec::new(),
    };
    text.lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=")))
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

/// Text from a script reply element.
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Integer from a script reply element.
pub(crate) fn int(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Int(i) => Some(*i as f64),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

/// Array from a script reply element.
pub(crate) fn list(v: Option<&Value>) -> Option<&[Value]> {
    match v? {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

/// The text elements of an array reply (others skipped; not an array: none).
pub(crate) fn texts(v: Option<&Value>) -> Vec<String> {
    list(v).unwrap_or(&[]).iter().filter_map(|x| text(Some(x))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_that_goes_down_is_a_reset_of_the_source_not_of_the_counter() {
        let mut t = Total::default();
        assert_eq!(t.update(Some(10.0)), 10.0);
        assert_eq!(t.update(None), 10.0, "a missing total holds the value");
        assert_eq!(t.update(Some(f64::INFINITY)), 10.0, "inf is not a total");
        assert_eq!(t.update(Some(3.0)), 13.0, "reset: 10 before, 3 since");
        assert_eq!(t.update(Some(5.0)), 15.0);
    }
}
