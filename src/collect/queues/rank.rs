//! Which discovered queues to keep when there are more than `limits.max_queues`: the ones with
//! the most jobs ready to run, which are the ones on-call needs to see (a cap that kept the
//! alphabetically first would hide a backed-up `payments` behind a thousand idle `a…` queues).
//! After a discovery pass that found more than the cap, each candidate's backlog is read with one
//! or two O(1) length commands, in small pipelined windows so no socket read holds Redis long.

use std::collections::HashMap;

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};

use super::{celery, sidekiq, QueueRef, QueueSource, System};

/// Queues per pipelined window: 64 to 640 O(1) length reads (Celery: up to 10 sub-queues), well
/// under a millisecond of Redis time.
const QUEUES_PER_WINDOW: usize = 64;

/// Adds the length reads of `q`'s ready jobs to `pipe`; returns how many.
fn add_reads(pipe: &mut redis::Pipeline, q: &QueueRef, sources: &[QueueSource]) -> usize {
    let (p, n) = (&q.prefix, &q.name);
    match q.system {
        System::Bullmq => {
            pipe.cmd("LLEN").arg(format!("{p}:{n}:wait"));
            pipe.cmd("ZCARD").arg(format!("{p}:{n}:prioritized"));
            2
        }
        System::Bull => {
            pipe.cmd("LLEN").arg(format!("{p}:{n}:wait"));
            1
        }
        System::Rq => {
            pipe.cmd("LLEN").arg(format!("{p}:queue:{n}"));
            1
        }
        System::Sidekiq => {
            pipe.cmd("LLEN").arg(sidekiq::queue_key(q));
            1
        }
        // The queue and every priority sub-queue, as the `waiting` count adds them up.
        System::Celery => {
            let keys = celery::ready_keys(q, &celery::settings(sources, q));
            for k in &keys {
                pipe.cmd("LLEN").arg(k);
            }
            keys.len()
        }
        // Entries in the stream, delivered or not (a group's lag would need XINFO GROUPS).
        System::Stream => {
            pipe.cmd("XLEN").arg(format!("{p}{n}"));
            1
        }
    }
}

/// The backlog a set of replies adds up to; a key of the wrong type or a refused read counts 0
/// (the queue still competes, last).
fn backlog(replies: &[RedisResult<Value>]) -> u64 {
    replies
        .iter()
        .map(|r| match r {
            Ok(Value::Int(i)) => (*i).max(0) as u64,
            _ => 0,
        })
        .sum()
}

/// Reads the backlog of every queue in `queues` and returns the `keep` largest (the others
/// would be left out anyway, and 50,000 entries would cost megabytes), with the round trips made.
pub async fn measure(
    conn: &mut MultiplexedConnection,
    queues: &[&QueueRef],
    sources: &[QueueSource],
    keep: usize,
) -> RedisResult<(HashMap<QueueRef, u64>, u64)> {
    let mut all: Vec<(&QueueRef, u64)> = Vec::with_capacity(queues.len());
    let mut trips = 0;
    for chunk in queues.chunks(QUEUES_PER_WINDOW) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let counts: Vec<usize> = chunk.iter().map(|q| add_reads(&mut pipe, q, sources)).collect();
        let replies: Vec<RedisResult<Value>> = pipe.query_async(conn).await?;
        trips += 1;
        let mut i = 0;
        for (q, n) in chunk.iter().zip(counts) {
            all.push((q, backlog(replies.get(i..i + n).unwrap_or(&[]))));
            i += n;
        }
    }
    let backlog: HashMap<&QueueRef, u64> = all.iter().copied().collect();
    let kept = top(all.iter().map(|(q, _)| *q).collect(), &backlog, keep);
    Ok((kept.into_iter().map(|q| (q.clone(), backlog.get(q).copied().unwrap_or(0))).collect(), trips))
}

/// Keeps at most `cap` of `candidates`: the largest backlogs first, ties (and queues not
/// measured yet) by name, so the choice is stable between collections. O(n), no full sort.
pub fn top<'a, K>(
    mut candidates: Vec<&'a QueueRef>,
    backlog: &HashMap<K, u64>,
    cap: usize,
) -> Vec<&'a QueueRef>
where
    K: std::borrow::Borrow<QueueRef> + std::hash::Hash + Eq,
{
    if candidates.len() <= cap {
        return candidates;
    }
    let order = |a: &&QueueRef, b: &&QueueRef| {
        let (x, y) = (backlog.get(*a).copied().unwrap_or(0), backlog.get(*b).copied().unwrap_or(0));
        y.cmp(&x).then_with(|| a.cmp(b))
    };
    if cap == 0 {
        return Vec::new();
    }
    candidates.select_nth_unstable_by(cap - 1, order);
    candidates.truncate(cap);
    candidates.sort_by(order);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str) -> QueueRef {
        QueueRef { system: System::Bullmq, prefix: "bull".into(), name: name.into() }
    }

    #[test]
    fn the_largest_backlogs_are_kept_ties_by_name() {
        let all: Vec<QueueRef> = ["a", "b", "c", "d", "payments"].iter().map(|n| q(n)).collect();
        let backlog: HashMap<QueueRef, u64> = [(q("payments"), 900), (q("c"), 5), (q("d"), 5)].into();
        let kept: Vec<&str> =
            top(all.iter().collect(), &backlog, 3).iter().map(|q| q.name.as_str()).collect();
        assert_eq!(kept, ["payments", "c", "d"]);
        let none: HashMap<QueueRef, u64> = HashMap::new();
        let kept: Vec<&str> = top(all.iter().collect(), &none, 2).iter().map(|q| q.name.as_str()).collect();
        assert_eq!(kept, ["a", "b"], "unmeasured: by name");
        assert!(top(all.iter().collect(), &backlog, 0).is_empty());
        assert_eq!(top(all.iter().collect(), &backlog, 10).len(), 5);
    }
}
