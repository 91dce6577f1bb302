//! Background queue discovery: SCAN for each system's marker key, a bounded amount of work
//! per round, never on the collection path. Results are shared with the collector.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::{QueueRef, QueueSource, System};

/// What discovery found so far.
#[derive(Debug, Default, Clone)]
pub struct Found {
    /// Queues found by the last complete pass, plus any found since.
    pub queues: BTreeSet<QueueRef>,
    /// Wall time of the last complete pass.
    pub last_pass: Option<Duration>,
}

/// Discovery settings.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Time between passes.
    pub interval: Duration,
    /// Most time spent scanning per round; a pass that needs more continues next round.
    pub per_round: Duration,
}

/// The SCAN pattern marking a queue, and how to get the queue name from a matching key.
fn pattern(system: System, prefix: &str) -> (String, String, &'static str) {
    match system {
        // BullMQ writes `meta` (event stream settings, version) with the first job.
        System::Bullmq => (format!("{}:*:meta", glob_escape(prefix)), format!("{prefix}:"), ":meta"),
        // Bull has no `meta`; every queue that ever had a job has its id counter.
        System::Bull => (format!("{}:*:id", glob_escape(prefix)), format!("{prefix}:"), ":id"),
    }
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Queue name from a key, if the key has the expected shape.
fn name_of(key: &str, head: &str, tail: &str) -> Option<String> {
    let name = key.strip_prefix(head)?.strip_suffix(tail)?;
    (!name.is_empty()).then(|| name.to_string())
}

/// Runs discovery passes until the connection fails (the collector restarts it on reconnect).
pub async fn run(
    mut conn: MultiplexedConnection,
    sources: Vec<QueueSource>,
    found: Arc<RwLock<Found>>,
    budget: Budget,
) {
    let sources: Vec<QueueSource> = sources.into_iter().filter(QueueSource::discovers).collect();
    if sources.is_empty() {
        return;
    }
    loop {
        let started = tokio::time::Instant::now();
        let mut round_start = started;
        let mut pass: BTreeSet<QueueRef> = BTreeSet::new();
        for s in &sources {
            let (pat, head, tail) = pattern(s.system, s.prefix());
            let mut cursor: u64 = 0;
            loop {
                let reply: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pat)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await;
                let (next, keys) = match reply {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!("queue discovery stopped: {e}");
                        return;
                    }
                };
                let mut names: Vec<String> = keys.iter().filter_map(|k| name_of(k, &head, tail)).collect();
                if s.system == System::Bull && !names.is_empty() {
                    // A BullMQ queue has an id counter too; its `meta` key tells them apart.
                    let mut pipe = redis::pipe();
                    for n in &names {
                        pipe.cmd("EXISTS").arg(format!("{}{n}:meta", head));
                    }
                    let bullmq: Vec<bool> = match pipe.query_async(&mut conn).await {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::debug!("queue discovery stopped: {e}");
                            return;
                        }
                    };
                    let mut flags = bullmq.into_iter();
                    names.retain(|_| !flags.next().unwrap_or(false));
                }
                for name in names {
                    {
                        let q = QueueRef { system: s.system, prefix: s.prefix().to_string(), name };
                        if pass.insert(q.clone()) {
                            // Publish as we go so new queues show up before the pass ends.
                            found.write().unwrap_or_else(|p| p.into_inner()).queues.insert(q);
                        }
                    }
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
                if round_start.elapsed() >= budget.per_round {
                    // Out of budget for this round: yield the server and continue later.
                    tokio::time::sleep(budget.interval.min(Duration::from_secs(1))).await;
                    round_start = tokio::time::Instant::now();
                }
            }
        }
        {
            // A complete pass replaces the set: queues deleted since are forgotten.
            let mut f = found.write().unwrap_or_else(|p| p.into_inner());
            f.queues = pass;
            f.last_pass = Some(started.elapsed());
        }
        tokio::time::sleep(budget.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_marker_keys_including_colons_and_hash_tags() {
        let (pat, head, tail) = pattern(System::Bullmq, "{bull}");
        assert_eq!(pat, "{bull}:*:meta");
        assert_eq!(name_of("{bull}:payments:eu:meta", &head, tail).as_deref(), Some("payments:eu"));
        assert_eq!(name_of("{bull}::meta", &head, tail), None);
        assert_eq!(pattern(System::Bull, "a*b").0, "a\\*b:*:id");
    }
}
