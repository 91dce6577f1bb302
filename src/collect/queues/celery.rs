//! Celery queues on the Redis broker (kombu): the queue and its priority sub-queues, and the
//! `unacked` hash of delivered-but-unacknowledged messages.
//!
//! Celery messages carry no enqueue time, so the oldest-job age is measured by redline: the
//! time it first saw the next message's delivery tag (at a sub-queue head, or else at the
//! tail). It is exact to one collection interval for messages sent while redline runs.

use std::collections::HashMap;

use redis::{RedisResult, Value};

use super::script::lua_script;
use super::{int, list, script_reply, text, QueueError, QueueRef, QueueState, Reading};

lua_script!(QUEUE, "celery.lua");
lua_script!(UNACKED, "celery_unacked.lua");

/// kombu's separator between a queue name and its priority step.
const SEP: &str = "\x06\x16";
/// kombu's default priority steps.
const STEPS: [u8; 3] = [3, 6, 9];
/// Most unacked entries decoded per collection; above it only the total is known.
const MAX_UNACKED_DECODE: usize = 10_000;
/// Bound on remembered delivery tags per queue.
const MAX_SEEN: usize = 10_000;

/// Unacknowledged messages per routing key.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Unacked {
    /// Total entries.
    pub total: f64,
    /// Entries by routing key (normally the queue name).
    pub per_queue: HashMap<String, f64>,
    /// Entries that could not be decoded.
    pub bad_data: u64,
}

/// Adds the `SCRIPT LOAD`s.
pub fn load_scripts(pipe: &mut redis::Pipeline) {
    QUEUE.load(pipe);
    UNACKED.load(pipe);
}

/// Adds the unacked call (`prefix` is kombu's `global_keyprefix`, usually empty).
pub fn add_global(pipe: &mut redis::Pipeline, prefix: &str) {
    UNACKED.call(
        pipe,
        &[format!("{prefix}unacked"), format!("{prefix}unacked_index")],
        &[MAX_UNACKED_DECODE],
    );
}

/// Reads the unacked call's reply.
pub fn read_global(reply: Option<&RedisResult<Value>>) -> Option<Unacked> {
    let a = list(reply?.as_ref().ok())?;
    let mut u = Unacked {
        total: int(a.first())?,
        bad_data: int(a.get(3)).unwrap_or(0.0) as u64,
        ..Default::default()
    };
    for p in list(a.get(2)).unwrap_or(&[]).chunks_exact(2) {
        if let (Some(k), Some(n)) = (text(p.first()), int(p.get(1))) {
            u.per_queue.insert(k, n);
        }
    }
    Some(u)
}

/// Adds the per-queue call.
pub fn add_commands(pipe: &mut redis::Pipeline, q: &QueueRef) -> usize {
    let base = format!("{}{}", q.prefix, q.name);
    let mut keys = vec![base.clone()];
    keys.extend(STEPS.iter().map(|s| format!("{base}{SEP}{s}")));
    QUEUE.call::<String>(pipe, &keys, &[]);
    1
}

/// Parses the per-queue reply; remembers first sightings of delivery tags in `st`.
pub fn read(
    replies: &[RedisResult<Value>],
    q: &QueueRef,
    st: &mut QueueState,
    unacked: Option<&Unacked>,
    now_ms: f64,
) -> Result<Reading, QueueError> {
    let a = script_reply(replies)?;
    let lens = list(a.first()).ok_or(QueueError::BadReply)?;
    let mut r = Reading::default();
    let mut waiting = 0.0;
    for l in lens {
        match int(Some(l)) {
            Some(v) if v >= 0.0 => waiting += v,
            _ => r.bad_data += 1,
        }
    }
    r.states.push(("waiting", waiting));
    if let Some(u) = unacked {
        r.states.push(("active", u.per_queue.get(&q.name).copied().unwrap_or(0.0)));
    }
    for head in list(a.get(2)).unwrap_or(&[]) {
        if let Some(tag) = text(Some(head)).filter(|t| !t.is_empty()) {
            st.first_seen.entry(tag).or_insert(now_ms);
        }
    }
    let next = text(a.get(1)).filter(|t| !t.is_empty());
    r.oldest_ready_age = match &next {
        Some(tag) => (now_ms - *st.first_seen.entry(tag.clone()).or_insert(now_ms)) / 1000.0,
        None => 0.0,
    };
    r.oldest_ready_ms = next.as_ref().and_then(|t| st.first_seen.get(t).copied());
    // Tags seen before the next message were consumed already (FIFO): forget them.
    if let Some(t0) = next.as_ref().and_then(|t| st.first_seen.get(t).copied()) {
        st.first_seen.retain(|_, seen| *seen >= t0);
    } else if waiting == 0.0 {
        st.first_seen.clear();
    }
    if st.first_seen.len() > MAX_SEEN {
        st.first_seen.clear();
    }
    r.bad_data += int(a.get(3)).unwrap_or(0.0) as u64;
    Ok(r)
}
