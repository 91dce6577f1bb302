//! Job queues stored in Redis. Each queue system knows its key layout and adds a fixed number
//! of commands per queue to the Redis collector's pipeline, so N queues still cost one round
//! trip. Discovery (SCAN) runs in its own background task and never on the collection path.

pub mod bull;
pub mod bullmq;
pub mod discovery;
mod histogram;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use redis::{RedisResult, Value};
use serde::Deserialize;

use crate::metrics::{label, FamilySet, Label};
use crate::names as n;

pub use histogram::Histogram;

/// Supported queue systems (the `system` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// BullMQ (npm `bullmq`) v5 and v6.
    Bullmq,
    /// Bull v3/v4 (npm `bull`).
    Bull,
}

impl System {
    /// The `system` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            System::Bullmq => "bullmq",
            System::Bull => "bull",
        }
    }

    /// Key prefix used when the config names none.
    pub fn default_prefix(self) -> &'static str {
        match self {
            System::Bullmq | System::Bull => "bull",
        }
    }
}

/// Where to find queues of one system on a Redis target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSource {
    /// Queue system.
    pub system: System,
    /// Key prefix (BullMQ/Bull `prefix` option, `{hash-tag}` prefixes included).
    pub prefix: Option<String>,
    /// Queues to watch; they need no discovery.
    #[serde(default)]
    pub names: Vec<String>,
    /// Find more queues with a background SCAN. Defaults to true when `names` is empty.
    pub discover: Option<bool>,
}

impl QueueSource {
    /// The prefix in effect.
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(self.system.default_prefix())
    }

    /// Whether discovery is on.
    pub fn discovers(&self) -> bool {
        self.discover.unwrap_or(self.names.is_empty())
    }
}

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
}

/// Per-queue memory between collections (cursors and counters).
#[derive(Debug, Default)]
pub struct QueueState {
    /// System-specific cursors (e.g. last finished score seen).
    pub cursors: [Option<f64>; 2],
    completed: f64,
    failed: f64,
    retried: f64,
    wait: Histogram,
    processing: Histogram,
}

/// Configured and discovered queues of one Redis target, and their state.
pub struct Queues {
    target: String,
    sources: Vec<QueueSource>,
    max_queues: usize,
    max_samples: usize,
    /// Filled by the discovery task.
    pub discovered: Arc<RwLock<discovery::Found>>,
    state: HashMap<QueueRef, QueueState>,
    errors: HashMap<(System, QueueError), f64>,
    dropped: usize,
}

/// The queue commands of one pipeline, in order.
pub struct Plan {
    entries: Vec<(QueueRef, usize)>,
    client_list: bool,
    preamble: usize,
}

impl Queues {
    /// Queues for one target.
    pub fn new(target: &str, sources: Vec<QueueSource>, max_queues: usize, max_samples: usize) -> Self {
        Self {
            target: target.to_string(),
            sources,
            max_queues,
            max_samples,
            discovered: Arc::new(RwLock::new(discovery::Found::default())),
            state: HashMap::new(),
            errors: HashMap::new(),
            dropped: 0,
        }
    }

    /// The configured sources (the discovery task reads them).
    pub fn sources(&self) -> &[QueueSource] {
        &self.sources
    }

    /// Explicit queues first, then discovered ones by name, capped at `max_queues`.
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
        let found = self.discovered.read().unwrap_or_else(|p| p.into_inner());
        for q in &found.queues {
            if all.insert(q.clone()) {
                out.push(q.clone());
            }
        }
        self.dropped = out.len().saturating_sub(self.max_queues);
        out.truncate(self.max_queues);
        out
    }

    /// Adds the commands for every selected queue to `pipe`.
    pub fn plan(&mut self, pipe: &mut redis::Pipeline) -> Plan {
        let queues = self.selection();
        // Forget queues that are no longer selected (deleted, or dropped by the cap).
        let keep: BTreeSet<&QueueRef> = queues.iter().collect();
        self.state.retain(|q, _| keep.contains(q));
        let mut preamble = 0;
        if queues.iter().any(|q| matches!(q.system, System::Bullmq | System::Bull)) {
            bullmq::load_script(pipe);
            preamble += 1;
        }
        let client_list = queues.iter().any(|q| matches!(q.system, System::Bullmq | System::Bull));
        if client_list {
            pipe.cmd("CLIENT").arg("LIST");
        }
        let mut entries = Vec::with_capacity(queues.len());
        for q in queues {
            let st = self.state.entry(q.clone()).or_default();
            let cmds = match q.system {
                System::Bullmq => {
                    bullmq::add_commands(pipe, &q, st, self.max_samples, bullmq::Layout::Bullmq)
                }
                System::Bull => bullmq::add_commands(pipe, &q, st, self.max_samples, bullmq::Layout::Bull),
            };
            entries.push((q, cmds));
        }
        Plan { entries, client_list, preamble }
    }

    /// Reads the replies of `plan` (in order) and adds the queue families to `out`.
    pub fn read(&mut self, plan: Plan, replies: &[RedisResult<Value>], out: &mut FamilySet) {
        let mut i = plan.preamble;
        let clients = if plan.client_list {
            let c = replies.get(i).and_then(|r| r.as_ref().ok()).map(client_names);
            i += 1;
            c
        } else {
            None
        };
        for (q, cmds) in plan.entries {
            let slice = replies.get(i..i + cmds).unwrap_or(&[]);
            i += cmds;
            let st = self.state.entry(q.clone()).or_default();
            let result = match q.system {
                System::Bullmq => bullmq::read(slice, st, bullmq::Layout::Bullmq),
                System::Bull => bullmq::read(slice, st, bullmq::Layout::Bull),
            };
            match result {
                Ok(reading) => {
                    if reading.bad_data > 0 {
                        tracing::debug!(queue = %q.name, system = q.system.as_str(), "skipped {} bad keys or jobs", reading.bad_data);
                        *self.errors.entry((q.system, QueueError::BadData)).or_default() +=
                            reading.bad_data as f64;
                    }
                    let workers = match q.system {
                        System::Bullmq | System::Bull => clients.as_ref().map(|c| bullmq::workers(c, &q)),
                    };
                    self.emit(&q, reading, workers, out);
                }
                Err(e) => {
                    tracing::debug!(queue = %q.name, system = q.system.as_str(), "queue skipped: {}", e.as_str());
                    *self.errors.entry((q.system, e)).or_default() += 1.0;
                }
            }
        }
        self.summary(out);
    }

    fn emit(&mut self, q: &QueueRef, r: Reading, workers: Option<usize>, out: &mut FamilySet) {
        let base = || -> Vec<Label> {
            vec![
                label("target", self.target.clone()),
                label("system", q.system.as_str()),
                label("queue", q.name.clone()),
            ]
        };
        for (state, v) in &r.states {
            let mut l = base();
            l.push(label("state", *state));
            out.add(&n::QUEUE_JOBS, l, *v);
        }
        out.add(&n::QUEUE_OLDEST_READY_AGE, base(), r.oldest_ready_age);
        if let Some(p) = r.paused {
            out.add(&n::QUEUE_PAUSED, base(), if p { 1.0 } else { 0.0 });
        }
        if let Some(w) = workers {
            out.add(&n::QUEUE_WORKERS, base(), w as f64);
        }
        if let Some(a) = r.added_total {
            out.add(&n::QUEUE_JOBS_ADDED, base(), a);
        }
        let Some(st) = self.state.get_mut(q) else { return };
        st.completed += r.completed_new;
        st.failed += r.failed_new;
        st.retried += r.retries_new;
        for (wait, processing) in &r.durations {
            st.wait.observe(*wait);
            st.processing.observe(*processing);
        }
        // The queue's own metrics keys survive redline restarts; prefer them when present.
        out.add(&n::QUEUE_JOBS_COMPLETED, base(), r.completed_total.unwrap_or(st.completed));
        out.add(&n::QUEUE_JOBS_FAILED, base(), r.failed_total.unwrap_or(st.failed));
        out.add(&n::QUEUE_JOBS_RETRIED, base(), st.retried);
        let (sum, count, buckets) = st.wait.snapshot();
        out.histogram(&n::QUEUE_WAIT_DURATION, base(), sum, count, buckets);
        let (sum, count, buckets) = st.processing.snapshot();
        out.histogram(&n::QUEUE_PROCESSING_DURATION, base(), sum, count, buckets);
    }

    fn summary(&self, out: &mut FamilySet) {
        let t = || label("target", self.target.clone());
        out.add(&n::QUEUE_DROPPED, vec![t()], self.dropped as f64);
        let found = self.discovered.read().unwrap_or_else(|p| p.into_inner());
        for s in self.sources.iter().filter(|s| s.discovers()) {
            let count =
                found.queues.iter().filter(|q| q.system == s.system && q.prefix == s.prefix()).count();
            out.add(&n::QUEUE_DISCOVERED, vec![t(), label("system", s.system.as_str())], count as f64);
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
