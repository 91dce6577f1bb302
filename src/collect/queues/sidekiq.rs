//! Sidekiq queues (its documented Redis format): one `sidekiq.lua` call per queue for length and
//! latency, and one `sidekiq_global.lua` call per namespace for the schedule/retry/dead sets,
//! the processed/failed counters and the busy processes.

use std::collections::HashMap;

use redis::{RedisResult, Value};

use super::reply::Fields;
use super::script::lua_script;
use super::{int, text, QueueError, QueueRef, Reading};

lua_script!(QUEUE, "sidekiq.lua");
lua_script!(GLOBAL, "sidekiq_global.lua");

/// Server-wide Sidekiq numbers of one namespace.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Global {
    /// Jobs in `schedule`.
    pub scheduled: f64,
    /// Jobs in `retry`.
    pub retry: f64,
    /// Jobs in `dead`.
    pub dead: f64,
    /// `stat:processed`.
    pub processed: f64,
    /// `stat:failed`.
    pub failed: f64,
    /// (busy threads, queues) per process.
    pub processes: Vec<(f64, Vec<String>)>,
    /// Bad keys or entries.
    pub bad_data: u64,
    /// Queue -> when its longest-running job started (Unix seconds), from the processes' work.
    pub running_since: HashMap<String, f64>,
}

/// Adds the `SCRIPT LOAD`s.
pub fn load_scripts(pipe: &mut redis::Pipeline) {
    QUEUE.load(pipe);
    GLOBAL.load(pipe);
}

/// The namespace as a key prefix: "" for none, `ns:` otherwise.
pub(super) fn ns(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}:")
    }
}

/// Adds the global call for a namespace.
pub fn add_global(pipe: &mut redis::Pipeline, prefix: &str) {
    let n = ns(prefix);
    let keys: Vec<String> = ["schedule", "retry", "dead", "stat:processed", "stat:failed", "processes"]
        .iter()
        .map(|k| format!("{n}{k}"))
        .collect();
    GLOBAL.call(pipe, &keys, &[n]);
}

/// Reads the global call's reply. A counter or set of the wrong type reads -1 and is left out.
pub fn read_global(reply: Option<&RedisResult<Value>>) -> Option<Global> {
    let f = Fields::parse(reply?.as_ref().ok()?).ok()?;
    let mut g = Global {
        scheduled: f.num("scheduled")?,
        retry: f.num("retry")?,
        dead: f.num("dead")?,
        processed: f.num("processed")?,
        failed: f.num("failed")?,
        processes: Vec::new(),
        bad_data: f.num("errors").unwrap_or(0.0) as u64,
        running_since: HashMap::new(),
    };
    for p in f.list("running").unwrap_or(&[]).chunks_exact(2) {
        if let (Some(queue), Some(at)) = (text(p.first()), text(p.get(1)).and_then(|s| s.parse().ok())) {
            g.running_since.insert(queue, at);
        }
    }
    for p in f.list("processes").unwrap_or(&[]).chunks_exact(2) {
        let queues = text(p.get(1)).unwrap_or_default();
        g.processes.push((
            int(p.first()).unwrap_or(0.0),
            queues.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        ));
    }
    Some(g)
}

/// The list holding a queue's jobs, `[<namespace>:]queue:<name>`.
pub(super) fn queue_key(q: &QueueRef) -> String {
    format!("{}queue:{}", ns(&q.prefix), q.name)
}

/// Adds the per-queue call.
pub fn add_commands(pipe: &mut redis::Pipeline, q: &QueueRef) -> usize {
    QUEUE.call::<String>(pipe, &[queue_key(q)], &[]);
    1
}

/// Parses the per-queue reply; `global` supplies the workers serving this queue.
pub fn read(
    replies: &[RedisResult<Value>],
    q: &QueueRef,
    global: Option<&Global>,
) -> Result<Reading, QueueError> {
    let v = match replies.first() {
        Some(Ok(v)) => v,
        Some(Err(_)) => return Err(QueueError::ReadFailed),
        None => return Err(QueueError::BadReply),
    };
    let f = Fields::parse(v)?;
    let now = f.need("now_ms")?;
    let mut r = Reading { bad_data: f.num("errors").unwrap_or(0.0) as u64, ..Reading::default() };
    if let Some(len) = f.num("len").filter(|l| *l >= 0.0) {
        r.states.push(("waiting", len));
    }
    r.oldest_ready_age = match f.num("oldest_ms") {
        Some(ms) if ms >= 0.0 => ((now - ms) / 1000.0).max(0.0),
        _ => 0.0,
    };
    r.oldest_ready_ms = f.num("oldest_ms").filter(|ms| *ms >= 0.0);
    r.oldest_lower_bound = Some(f.num("lower").unwrap_or(0.0) > 0.0);
    r.workers = global.map(|g| g.processes.iter().filter(|(_, qs)| qs.contains(&q.name)).count() as f64);
    if let Some(at) = global.and_then(|g| g.running_since.get(&q.name)) {
        r.running_since(at * 1000.0);
    }
    Ok(r)
}
