//! RQ (Python `rq`) queues: the queue list plus its started/failed/finished/deferred/scheduled/
//! canceled registries, read by one `rq.lua` call per queue.

use redis::{RedisResult, Value};

use super::script::lua_script;
use super::{int, list, script_reply, text, QueueError, QueueRef, QueueState, Reading};

lua_script!(SCRIPT, "rq.lua");

/// Started jobs read for their start time per collection; bounds the script.
const MAX_STARTED_READ: usize = 1000;

/// Adds `SCRIPT LOAD` to the pipeline.
pub fn load_script(pipe: &mut redis::Pipeline) {
    SCRIPT.load(pipe);
}

/// Adds the one EVALSHA for `q` (RQ's prefix is `rq`); returns the number of commands.
pub fn add_commands(pipe: &mut redis::Pipeline, q: &QueueRef, st: &QueueState, max_samples: usize) -> usize {
    let p = &q.prefix;
    let n = &q.name;
    let keys: Vec<String> =
        ["queue", "wip", "failed", "finished", "deferred", "scheduled", "canceled", "workers"]
            .iter()
            .map(|k| format!("{p}:{k}:{n}"))
            .collect();
    let cursor = |c: Option<f64>| c.map_or("-1".to_string(), |v| v.to_string());
    SCRIPT.call(
        pipe,
        &keys,
        &[
            format!("{p}:job:"),
            cursor(st.cursors[0]),
            cursor(st.cursors[1]),
            max_samples.to_string(),
            MAX_STARTED_READ.to_string(),
        ],
    );
    1
}

/// RQ timestamps are ISO 8601 UTC (`2026-11-24T08:55:59.365604Z`, older versions without `Z`).
pub fn iso_ms(s: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0)
}

/// Parses the script's reply and advances the registry cursors.
pub fn read(replies: &[RedisResult<Value>], st: &mut QueueState) -> Result<Reading, QueueError> {
    let a = script_reply(replies)?;
    let counts = list(a.first()).ok_or(QueueError::BadReply)?;
    let mut r = Reading { tracks_finished: true, ..Reading::default() };
    let mut bad = 0;
    for (i, state) in
        ["waiting", "active", "failed", "completed", "deferred", "delayed", "canceled"].iter().enumerate()
    {
        match int(counts.get(i)) {
            Some(v) if v >= 0.0 => r.states.push((state, v)),
            _ => bad += 1,
        }
    }
    r.workers = int(a.get(1)).filter(|w| *w >= 0.0);
    let now = int(a.get(2)).ok_or(QueueError::BadReply)?;
    let head = text(a.get(3)).and_then(|s| iso_ms(&s));
    if text(a.get(3)).is_some_and(|s| !s.is_empty()) && head.is_none() {
        bad += 1;
    }
    // Scheduled jobs are due at their score (Unix seconds); a due one is ready too.
    let due = text(a.get(4)).and_then(|s| s.parse::<f64>().ok()).map(|s| s * 1000.0).filter(|ms| *ms <= now);
    let oldest = [head, due].into_iter().flatten().fold(f64::INFINITY, f64::min);
    r.oldest_ready_age = if oldest.is_finite() { ((now - oldest) / 1000.0).max(0.0) } else { 0.0 };
    r.oldest_ready_ms = oldest.is_finite().then_some(oldest);
    for samples in [list(a.get(5)), list(a.get(6))].into_iter().flatten() {
        for s in samples.chunks_exact(3) {
            let t: Vec<Option<f64>> = s.iter().map(|v| text(Some(v)).and_then(|x| iso_ms(&x))).collect();
            match (t[0], t[1], t[2]) {
                (Some(enq), Some(start), Some(end)) => {
                    r.durations.push(((start - enq) / 1000.0, (end - start) / 1000.0))
                }
                _ => bad += 1,
            }
        }
    }
    bad += int(a.get(7)).unwrap_or(0.0) as u64;
    r.completed_new = int(a.get(8)).unwrap_or(0.0);
    r.failed_new = int(a.get(9)).unwrap_or(0.0);
    st.cursors[0] = int(a.get(10)).or(st.cursors[0]);
    st.cursors[1] = int(a.get(11)).or(st.cursors[1]);
    if let Some(started) = text(a.get(12)).and_then(|s| iso_ms(&s)) {
        r.running_since(now, started);
    }
    r.stalled(int(a.get(13)).unwrap_or(0.0));
    r.bad_data = bad;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_with_and_without_zone() {
        let a = iso_ms("2026-11-24T08:55:59.365604Z").expect("with Z");
        let b = iso_ms("2026-11-24T08:55:59.365604").expect("without Z");
        assert_eq!(a, b);
        assert!((a - 1_795_510_559_365.604).abs() < 1.0, "{a}");
        assert_eq!(iso_ms("yesterday"), None);
    }
}
