//! Redis Streams used as queues: per consumer group, the lag (entries not yet delivered),
//! pending entries (delivered, not acknowledged), consumers, and the age of the next entry to
//! deliver and of the oldest pending one. One `streams.lua` call per stream.

use redis::{RedisResult, Value};

use super::script::lua_script;
use super::{int, list, script_reply, text, QueueError, QueueRef, Reading};
use crate::metrics::label;
use crate::names as n;

lua_script!(SCRIPT, "streams.lua");

/// Adds `SCRIPT LOAD`.
pub fn load_script(pipe: &mut redis::Pipeline) {
    SCRIPT.load(pipe);
}

/// Adds the call for stream `q` (its key is the prefix joined to the name).
pub fn add_commands(pipe: &mut redis::Pipeline, q: &QueueRef) -> usize {
    SCRIPT.call::<String>(pipe, &[format!("{}{}", q.prefix, q.name)], &[]);
    1
}

/// Parses the reply: states sum over groups (waiting = largest lag, active = all pending).
pub fn read(replies: &[RedisResult<Value>]) -> Result<Reading, QueueError> {
    let a = script_reply(replies)?;
    let mut r = Reading::default();
    let len = int(a.first()).ok_or(QueueError::BadReply)?;
    if len < 0.0 {
        r.bad_data += 1;
        return Ok(r);
    }
    let now = int(a.get(1)).ok_or(QueueError::BadReply)?;
    r.extra.push((&n::QUEUE_STREAM_LENGTH, vec![], len));
    let (mut lag_max, mut pending_sum, mut oldest) = (0.0f64, 0.0, f64::INFINITY);
    for g in list(a.get(2)).unwrap_or(&[]).chunks_exact(6) {
        let Some(group) = text(g.first()) else {
            r.bad_data += 1;
            continue;
        };
        let gl = || vec![label("group", group.clone())];
        let consumers = int(g.get(1)).unwrap_or(0.0);
        let pending = int(g.get(2)).unwrap_or(0.0);
        r.extra.push((&n::QUEUE_STREAM_GROUP_CONSUMERS, gl(), consumers));
        r.extra.push((&n::QUEUE_STREAM_GROUP_PENDING, gl(), pending));
        pending_sum += pending;
        if let Some(lag) = int(g.get(3)).filter(|l| *l >= 0.0) {
            r.extra.push((&n::QUEUE_STREAM_GROUP_LAG, gl(), lag));
            lag_max = lag_max.max(lag);
        }
        if let Some(ms) = int(g.get(4)).filter(|m| *m >= 0.0) {
            oldest = oldest.min(ms);
        }
        let pending_age =
            int(g.get(5)).filter(|m| *m >= 0.0).map_or(0.0, |ms| ((now - ms) / 1000.0).max(0.0));
        r.extra.push((&n::QUEUE_STREAM_GROUP_OLDEST_PENDING_AGE, gl(), pending_age));
    }
    r.states.push(("waiting", lag_max));
    r.states.push(("active", pending_sum));
    r.oldest_ready_age = if oldest.is_finite() { ((now - oldest) / 1000.0).max(0.0) } else { 0.0 };
    r.oldest_ready_ms = oldest.is_finite().then_some(oldest);
    Ok(r)
}
