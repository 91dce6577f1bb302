//! Bull (v3/v4): one read-only `bull.lua` call per queue. Bull keeps prioritized jobs inside
//! `wait` (its `priority` set scores them), has no waiting-children set, marks a paused queue with
//! a `meta-paused` key, and publishes its events instead of keeping a stream. So its counters come
//! from the best source it has, chosen by the first evidence of finished jobs and kept: the
//! `metrics:completed` and `metrics:failed` counts when its workers keep them (the `metrics`
//! option: exact), else the finished sets read incrementally (jobs removed on completion are never
//! seen there: `redline_queue_counters_exact` is 0).

use redis::{RedisResult, Value};

use super::bullmq::{plausible, MAX_BANDS, MAX_LOCK_CHECKS, MAX_WALK};
use super::reply::Fields;
use super::script::lua_script;
use super::{text, QueueError, QueueRef, QueueState, Reading};

lua_script!(SCRIPT, "jobs.lua", "bull.lua");

/// Finished jobs per set and collection whose hash is read for durations and retries.
const MAX_SAMPLES: usize = 100;

/// Where a Bull queue's completed/failed counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `metrics:completed` / `metrics:failed` (`count` fields): every finished job.
    Metrics,
    /// The completed and failed sets: only the jobs kept there.
    Finished,
}

/// Per-queue Bull memory.
#[derive(Debug, Default)]
pub struct State {
    source: Option<Source>,
    /// Finished-set cursors, as the script returned them (JSON).
    cursors: Option<String>,
    /// Last metrics counts (completed, failed), to tell how many finished since.
    metrics: Option<(f64, f64)>,
}

/// Adds `SCRIPT LOAD` to the pipeline.
pub fn load_script(pipe: &mut redis::Pipeline) {
    SCRIPT.load(pipe);
}

/// Bull's keys for a queue, in the order the script expects.
pub fn keys(prefix: &str, name: &str) -> Vec<String> {
    [
        "wait",
        "active",
        "paused",
        "delayed",
        "priority",
        "completed",
        "failed",
        "meta-paused",
        "id",
        "metrics:completed",
        "metrics:failed",
    ]
    .iter()
    .map(|k| format!("{prefix}:{name}:{k}"))
    .collect()
}

/// Adds the one EVALSHA for `q`; returns the number of commands added.
pub fn add_commands(
    pipe: &mut redis::Pipeline,
    q: &QueueRef,
    st: &mut QueueState,
    max_samples: usize,
) -> usize {
    let t = st.jobs.get_or_insert_with(Default::default);
    let args = [
        format!("{}:{}:", q.prefix, q.name),
        MAX_WALK.to_string(),
        MAX_BANDS.to_string(),
        MAX_LOCK_CHECKS.to_string(),
        t.bull.cursors.clone().unwrap_or_else(|| "{}".to_string()),
        max_samples.min(MAX_SAMPLES).to_string(),
    ];
    SCRIPT.call(pipe, &keys(&q.prefix, &q.name), &args);
    1
}

/// Parses the script's reply and advances the queue's cursors.
pub fn read(replies: &[RedisResult<Value>], st: &mut QueueState) -> Result<Reading, QueueError> {
    let v = match replies {
        [Ok(Value::ServerError(_))] | [Err(_)] => return Err(QueueError::ReadFailed),
        [Ok(v)] => v,
        _ => return Err(QueueError::BadReply),
    };
    let f = Fields::parse(v)?;
    // The ready timestamp comes with it: Bull's queue-age rule (`time() - …`) needs it too.
    let (mut r, now, mut bad) =
        super::bullmq::read_common(&f, &["waiting", "active", "paused", "delayed", "completed", "failed"])?;
    // Bull's id counter also counts adds refused as duplicates of a custom job id.
    r.added_total = f.num("id").filter(|v| *v >= 0.0);

    let s = &mut st.jobs.get_or_insert_with(Default::default).bull;
    let metrics = (f.num("metrics_completed").unwrap_or(-1.0), f.num("metrics_failed").unwrap_or(-1.0));
    let has_metrics = metrics.0 >= 0.0 || metrics.1 >= 0.0;
    let sets = (f.num("new_completed").unwrap_or(0.0), f.num("new_failed").unwrap_or(0.0));
    // The source is chosen by the first evidence of finished jobs and kept for life: the metrics
    // keys when they exist, else the finished sets once they hold a job. Until then nothing
    // finished that either could show.
    if s.source.is_none() {
        if has_metrics {
            s.source = Some(Source::Metrics);
        } else if f.num("completed").unwrap_or(0.0) > 0.0 || f.num("failed").unwrap_or(0.0) > 0.0 {
            s.source = Some(Source::Finished);
        }
    }
    // Missing keys count 0; the first look is the baseline.
    let m = (metrics.0.max(0.0), metrics.1.max(0.0));
    let prev = s.metrics.replace(m).unwrap_or(m);
    // A count that went down was reset (queue obliterated): all of it is new.
    let delta = |now: f64, before: f64| if now >= before { now - before } else { now };
    let (completed, failed) = match s.source {
        Some(Source::Metrics) => (delta(m.0, prev.0), delta(m.1, prev.1)),
        _ => sets,
    };
    r.completed_new = completed;
    r.failed_new = failed;
    let finished_new = completed + failed;
    r.counters_exact = Some(s.source == Some(Source::Metrics));
    if let Some(c) = f.text("cursors") {
        s.cursors = Some(c);
    }
    // Per sampled job: timestamp, delay, processedOn, finishedOn, attemptsMade.
    let mut timed = 0.0;
    for (samples, failed) in [(f.list("completed_samples"), false), (f.list("failed_samples"), true)] {
        for j in samples.unwrap_or(&[]).chunks_exact(5) {
            let n = |i: usize| text(j.get(i)).and_then(|s| s.parse::<f64>().ok()).filter(|v| v.is_finite());
            let (Some(ts), Some(started), Some(done)) = (n(0), n(2), n(3)) else {
                bad += 1;
                continue;
            };
            let ready = ts + n(1).unwrap_or(0.0);
            if !(plausible(ready, now) && plausible(started, now) && plausible(done, now)) {
                bad += 1;
                continue;
            }
            r.durations.push(((started - ready) / 1000.0, (done - started) / 1000.0));
            timed += 1.0;
            // Bull counts failed attempts: a completed job retried that many times, a failed
            // one once less (its last failure was not followed by a retry).
            match n(4) {
                Some(a) if (0.0..=1e6).contains(&a) => {
                    r.retries_new += if failed { (a - 1.0).max(0.0) } else { a }
                }
                Some(_) => bad += 1,
                None => {}
            }
        }
    }
    r.untimed_new = (finished_new - timed).max(0.0);
    r.bad_data = bad;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(pairs: &[(&str, Value)]) -> [RedisResult<Value>; 1] {
        let mut flat = Vec::new();
        for (k, v) in pairs {
            flat.push(Value::BulkString(k.as_bytes().to_vec()));
            flat.push(v.clone());
        }
        [Ok(Value::Array(flat))]
    }

    fn look(st: &mut QueueState, completed_set: i64, metrics: i64, new_in_set: i64) -> Reading {
        let r = reply(&[
            ("now", Value::Int(1_800_000_000_000)),
            ("completed", Value::Int(completed_set)),
            ("metrics_completed", Value::Int(metrics)),
            ("metrics_failed", Value::Int(-1)),
            ("new_completed", Value::Int(new_in_set)),
            ("cursors", Value::BulkString(b"{}".to_vec())),
        ]);
        read(&r, st).expect("reading")
    }

    #[test]
    fn metrics_keys_that_appear_later_become_the_source_for_good() {
        let mut st = QueueState::default();
        // Nothing finished yet: no source, nothing counted, not exact.
        let r = look(&mut st, 0, -1, 0);
        assert_eq!((r.completed_new, r.counters_exact), (0.0, Some(false)));
        // The first jobs finish with workers keeping metrics: all 7 are new.
        let r = look(&mut st, 7, 7, 7);
        assert_eq!((r.completed_new, r.counters_exact), (7.0, Some(true)));
        // The key is reset (queue obliterated): the new count is all new, never negative.
        let r = look(&mut st, 9, 2, 2);
        assert_eq!(r.completed_new, 2.0);
    }

    #[test]
    fn finished_sets_are_the_source_when_jobs_finish_without_metrics_keys() {
        let mut st = QueueState::default();
        look(&mut st, 0, -1, 0);
        let r = look(&mut st, 3, -1, 3);
        assert_eq!((r.completed_new, r.counters_exact), (3.0, Some(false)));
        // Metrics keys appearing later do not switch the source.
        let r = look(&mut st, 4, 50, 1);
        assert_eq!((r.completed_new, r.counters_exact), (1.0, Some(false)));
    }

    #[test]
    fn garbage_replies_are_errors_not_panics() {
        let mut st = QueueState::default();
        assert_eq!(read(&[Ok(Value::Int(1))], &mut st).err(), Some(QueueError::BadReply));
        assert_eq!(read(&[], &mut st).err(), Some(QueueError::BadReply));
    }
}
