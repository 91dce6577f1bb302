//! BullMQ (v5, v6) and Bull queues: one read-only Lua script call per queue
//! (`bullmq.lua`), workers from the client names BullMQ and Bull set.

use base64::Engine;
use redis::{RedisResult, Value};

use super::script::lua_script;
use super::{int, list, script_reply, QueueError, QueueRef, QueueState, Reading};

lua_script!(SCRIPT, "bullmq.lua");

/// Active jobs checked for a lock per collection (the longest-running ones); bounds the script.
const MAX_LOCK_CHECKS: usize = 1000;

/// Which of the two layouts a queue uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// BullMQ: prioritized and waiting-children sets, pause flag in `meta`.
    Bullmq,
    /// Bull: priorities inside `wait`, pause marker key `meta-paused`.
    Bull,
}

/// Adds `SCRIPT LOAD` to the pipeline.
pub fn load_script(pipe: &mut redis::Pipeline) {
    SCRIPT.load(pipe);
}

/// Adds the one EVALSHA for `q`; returns the number of commands added.
pub fn add_commands(
    pipe: &mut redis::Pipeline,
    q: &QueueRef,
    st: &QueueState,
    max_samples: usize,
    layout: Layout,
) -> usize {
    let keys = match layout {
        Layout::Bullmq => keys(&q.prefix, &q.name),
        Layout::Bull => super::bull::keys(&q.prefix, &q.name),
    };
    let cursor = |c: Option<f64>| c.map_or("-1".to_string(), |v| format!("{v:.0}"));
    let layout = if layout == Layout::Bull { "bull" } else { "bullmq" };
    let args = [
        format!("{}:{}:", q.prefix, q.name),
        cursor(st.cursors[0]),
        cursor(st.cursors[1]),
        max_samples.to_string(),
        layout.to_string(),
        MAX_LOCK_CHECKS.to_string(),
    ];
    SCRIPT.call(pipe, &keys, &args);
    1
}

/// BullMQ's keys for a queue, in the order the script expects.
pub fn keys(prefix: &str, name: &str) -> Vec<String> {
    keys_with(prefix, name, "prioritized")
}

/// The script's key list, with the layout's name for the priority key in slot 5.
pub fn keys_with(prefix: &str, name: &str, priority_key: &str) -> Vec<String> {
    [
        "wait",
        "active",
        "paused",
        "delayed",
        priority_key,
        "waiting-children",
        "completed",
        "failed",
        "meta",
        "id",
        "metrics:completed",
        "metrics:failed",
        "meta-paused",
    ]
    .iter()
    .map(|k| format!("{prefix}:{name}:{k}"))
    .collect()
}

/// Parses the script's reply and advances the queue's cursors.
pub fn read(
    replies: &[RedisResult<Value>],
    st: &mut QueueState,
    layout: Layout,
) -> Result<Reading, QueueError> {
    let a = script_reply(replies)?;
    let counts = list(a.first()).ok_or(QueueError::BadReply)?;
    let c = |i: usize| int(counts.get(i));
    let mut r = Reading { tracks_finished: true, ..Reading::default() };
    let mut bad = 0u64;
    for (i, state) in
        ["waiting", "active", "paused", "delayed", "prioritized", "waiting-children", "completed", "failed"]
            .iter()
            .enumerate()
    {
        if layout == Layout::Bull && matches!(*state, "prioritized" | "waiting-children") {
            continue;
        }
        match c(i) {
            Some(x) if x >= 0.0 => r.states.push((state, x)),
            _ => bad += 1,
        }
    }
    r.paused = int(a.get(1)).map(|p| p > 0.0);
    r.added_total = int(a.get(2)).filter(|v| *v >= 0.0);
    r.completed_total = int(a.get(3)).filter(|v| *v >= 0.0);
    r.failed_total = int(a.get(4)).filter(|v| *v >= 0.0);
    let now = int(a.get(5)).ok_or(QueueError::BadReply)?;
    r.oldest_ready_age = match int(a.get(6)) {
        Some(ms) if ms >= 0.0 => ((now - ms) / 1000.0).max(0.0),
        _ => 0.0,
    };
    r.oldest_ready_ms = int(a.get(6)).filter(|ms| *ms >= 0.0);
    // Per finished job: timestamp, processedOn, finishedOn, atm, attemptsMade, delay.
    for samples in [list(a.get(7)), list(a.get(8))].into_iter().flatten() {
        for s in samples.chunks_exact(6) {
            let f = |i: usize| int(s.get(i));
            let (Some(added), Some(started), Some(done)) = (f(0), f(1), f(2)) else {
                bad += 1;
                continue;
            };
            let ready = added + f(5).unwrap_or(0.0);
            r.durations.push(((started - ready) / 1000.0, (done - started) / 1000.0));
            r.retries_new += (f(3).or(f(4)).unwrap_or(1.0) - 1.0).max(0.0);
        }
    }
    bad += int(a.get(9)).unwrap_or(0.0) as u64;
    r.completed_new = int(a.get(10)).unwrap_or(0.0);
    r.failed_new = int(a.get(11)).unwrap_or(0.0);
    st.cursors[0] = int(a.get(12)).or(st.cursors[0]);
    st.cursors[1] = int(a.get(13)).or(st.cursors[1]);
    if let Some(started) = int(a.get(14)).filter(|ms| *ms >= 0.0) {
        r.running_since(now, started);
    }
    r.stalled(int(a.get(15)).unwrap_or(0.0));
    r.bad_data = bad;
    Ok(r)
}

/// Workers connected to `q`: BullMQ and Bull name their connections
/// `<prefix>:<base64(queue)>` (optionally followed by `:w:<worker name>`).
pub fn workers(client_names: &[String], q: &QueueRef) -> usize {
    let base = format!("{}:{}", q.prefix, base64::engine::general_purpose::STANDARD.encode(&q.name));
    let named = format!("{base}:w:");
    client_names.iter().filter(|n| **n == base || n.starts_with(&named)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::queues::System;

    #[test]
    fn worker_names_match_bullmq_convention() {
        let q = QueueRef { system: System::Bullmq, prefix: "bull".into(), name: "payments".into() };
        let names: Vec<String> =
            ["bull:cGF5bWVudHM=", "bull:cGF5bWVudHM=:w:worker-1", "bull:cGF5bWVudHM=:qe", "other"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        assert_eq!(workers(&names, &q), 2);
    }

    #[test]
    fn garbage_reply_is_an_error_not_a_panic() {
        let mut st = QueueState::default();
        assert_eq!(read(&[Ok(Value::Int(3))], &mut st, Layout::Bullmq), Err(QueueError::BadReply));
        assert_eq!(read(&[], &mut st, Layout::Bullmq), Err(QueueError::BadReply));
        let partial = Value::Array(vec![Value::Array(vec![Value::Int(-1), Value::Int(2)]), Value::Int(0)]);
        assert_eq!(read(&[Ok(partial)], &mut st, Layout::Bullmq), Err(QueueError::BadReply));
    }
}
