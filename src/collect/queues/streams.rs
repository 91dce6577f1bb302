//! Redis Streams used as queues: per consumer group, the lag (entries not yet delivered),
//! pending entries (delivered, not acknowledged), consumers, and the age of the next entry to
//! deliver and of the oldest pending one. One `streams.lua` call per stream. Where XINFO has no
//! lag (a group created mid-stream or after XDEL, Redis < 7) the script works it out from the
//! stream's ends or counts the undelivered entries, up to a bound; never a confident 0.

use redis::{RedisResult, Value};

use super::reply::Fields;
use super::script::lua_script;
use super::{QueueError, QueueRef, Reading};
use crate::metrics::label;
use crate::names as n;

lua_script!(SCRIPT, "streams.lua");

/// Entries counted per group when XINFO has no lag for it (bounds the script; beyond it the lag
/// is a lower bound, flagged).
const MAX_COUNTED: usize = 200;

/// Adds `SCRIPT LOAD`.
pub fn load_script(pipe: &mut redis::Pipeline) {
    SCRIPT.load(pipe);
}

/// Adds the call for stream `q` (its key is the prefix joined to the name).
pub fn add_commands(pipe: &mut redis::Pipeline, q: &QueueRef) -> usize {
    SCRIPT.call(pipe, &[format!("{}{}", q.prefix, q.name)], &[MAX_COUNTED]);
    1
}

/// Parses the reply: states sum over groups (waiting = largest lag, active = all pending).
pub fn read(replies: &[RedisResult<Value>]) -> Result<Reading, QueueError> {
    let v = match replies {
        [Ok(Value::ServerError(_))] | [Err(_)] => return Err(QueueError::ReadFailed),
        [Ok(v)] => v,
        _ => return Err(QueueError::BadReply),
    };
    let f = Fields::parse(v)?;
    let mut r = Reading::default();
    r.bad_data += f.num("errors").unwrap_or(0.0) as u64;
    match f.text("type").as_deref() {
        Some("stream") => {}
        Some("none") => {
            r.states.push(("waiting", 0.0));
            r.states.push(("active", 0.0));
            return Ok(r);
        }
        _ => return Ok(r),
    }
    let now = f.need("now")?;
    r.extra.push((&n::QUEUE_STREAM_LENGTH, vec![], f.num("length").unwrap_or(0.0)));
    let (mut lag_max, mut pending_sum, mut oldest) = (0.0f64, 0.0, f64::INFINITY);
    for g in f.list("groups").unwrap_or(&[]) {
        let Ok(g) = Fields::parse(g) else {
            r.bad_data += 1;
            continue;
        };
        let Some(group) = g.text("name") else {
            r.bad_data += 1;
            continue;
        };
        let gl = || vec![label("group", group.clone())];
        let pending = g.num("pending").unwrap_or(0.0);
        r.extra.push((&n::QUEUE_STREAM_GROUP_CONSUMERS, gl(), g.num("consumers").unwrap_or(0.0)));
        r.extra.push((&n::QUEUE_STREAM_GROUP_PENDING, gl(), pending));
        pending_sum += pending;
        if let Some(lag) = g.num("lag").filter(|l| *l >= 0.0) {
            r.extra.push((&n::QUEUE_STREAM_GROUP_LAG, gl(), lag));
            // Present while the lag is only a bound (absent: exact), like the queue flag.
            if g.num("lag_lower_bound").unwrap_or(0.0) > 0.0 {
                r.extra.push((&n::QUEUE_STREAM_GROUP_LAG_LOWER_BOUND, gl(), 1.0));
            }
            lag_max = lag_max.max(lag);
        }
        if let Some(ms) = g.num("next_ms").filter(|m| *m >= 0.0) {
            oldest = oldest.min(ms);
        }
        let pending_age =
            g.num("oldest_pending_ms").filter(|m| *m >= 0.0).map_or(0.0, |ms| ((now - ms) / 1000.0).max(0.0));
        r.extra.push((&n::QUEUE_STREAM_GROUP_OLDEST_PENDING_AGE, gl(), pending_age));
    }
    r.states.push(("waiting", lag_max));
    r.states.push(("active", pending_sum));
    r.oldest_ready_age = if oldest.is_finite() { ((now - oldest) / 1000.0).max(0.0) } else { 0.0 };
    r.oldest_ready_ms = oldest.is_finite().then_some(oldest);
    Ok(r)
}
