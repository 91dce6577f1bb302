//! Background queue discovery, never on the collection path. Systems that keep a registry of
//! their queues (RQ's `rq:queues`, Sidekiq's `queues`, kombu's bindings) are read directly;
//! the others are found by SCAN for a marker key, a bounded amount of work per round.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
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
#[derive(Debug, Clone)]
pub struct Budget {
    /// Time between passes.
    pub interval: Duration,
    /// Most time spent scanning per round; a pass that needs more continues next round.
    pub per_round: Duration,
    /// Counts the requests discovery sends.
    pub round_trips: Arc<AtomicU64>,
}

/// How one system's queues are found.
#[derive(Debug, Clone, PartialEq)]
enum Method {
    /// SCAN for keys `head<name>tail`, optionally of one type.
    Scan { pattern: String, head: String, tail: &'static str, key_type: Option<&'static str> },
    /// Members of a set, each `strip<name>`.
    Members { key: String, strip: String },
    /// kombu exchange bindings: SCAN `_kombu.binding.*`, members `routing_key\x06\x16pattern\x06\x16queue`.
    KombuBindings { pattern: String },
}

fn method(system: System, prefix: &str) -> Method {
    let esc = glob_escape(prefix);
    match system {
        // BullMQ writes `meta` (event stream settings, version) with the first job.
        System::Bullmq => Method::Scan {
            pattern: format!("{esc}:*:meta"),
            head: format!("{prefix}:"),
            tail: ":meta",
            key_type: None,
        },
        // Bull has no `meta`; every queue that ever had a job has its id counter.
        System::Bull => Method::Scan {
            pattern: format!("{esc}:*:id"),
            head: format!("{prefix}:"),
            tail: ":id",
            key_type: None,
        },
        System::Rq => Method::Members { key: format!("{prefix}:queues"), strip: format!("{prefix}:queue:") },
        System::Sidekiq => {
            let ns = if prefix.is_empty() { String::new() } else { format!("{prefix}:") };
            Method::Members { key: format!("{ns}queues"), strip: String::new() }
        }
        System::Celery => Method::KombuBindings { pattern: format!("{esc}_kombu.binding.*") },
        System::Stream => Method::Scan {
            pattern: format!("{esc}*"),
            head: prefix.to_string(),
            tail: "",
            key_type: Some("stream"),
        },
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

/// Celery's own broadcast and reply exchanges: their queues are per-worker and short-lived.
fn is_celery_internal(binding_key: &str) -> bool {
    ["celeryev", "celery.pidbox", "reply.celery.pidbox"]
        .iter()
        .any(|x| binding_key.ends_with(&format!(".{x}")))
}

/// Scans one pattern to the end, pausing when a round's budget is spent.
async fn scan(
    conn: &mut MultiplexedConnection,
    pattern: &str,
    key_type: Option<&str>,
    budget: &Budget,
    round_start: &mut tokio::time::Instant,
) -> redis::RedisResult<Vec<String>> {
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
        if let Some(t) = key_type {
            cmd.arg("TYPE").arg(t);
        }
        budget.round_trips.fetch_add(1, Ordering::Relaxed);
        let (next, keys): (u64, Vec<String>) = cmd.query_async(conn).await?;
        out.extend(keys);
        cursor = next;
        if cursor == 0 {
            return Ok(out);
        }
        if round_start.elapsed() >= budget.per_round {
            // Out of budget for this round: give the server a break and continue later.
            tokio::time::sleep(budget.interval.min(Duration::from_secs(1))).await;
            *round_start = tokio::time::Instant::now();
        }
    }
}

/// Finds the queue names of one source.
async fn find(
    conn: &mut MultiplexedConnection,
    s: &QueueSource,
    budget: &Budget,
    round_start: &mut tokio::time::Instant,
) -> redis::RedisResult<Vec<String>> {
    match method(s.system, s.prefix()) {
        Method::Scan { pattern, head, tail, key_type } => {
            let keys = scan(conn, &pattern, key_type, budget, round_start).await?;
            let mut names: Vec<String> = keys.iter().filter_map(|k| name_of(k, &head, tail)).collect();
            if s.system == System::Bull && !names.is_empty() {
                // A BullMQ queue has an id counter too; its `meta` key tells them apart.
                let mut pipe = redis::pipe();
                for n in &names {
                    pipe.cmd("EXISTS").arg(format!("{head}{n}:meta"));
                }
                budget.round_trips.fetch_add(1, Ordering::Relaxed);
                let is_bullmq: Vec<bool> = pipe.query_async(conn).await?;
                let mut flags = is_bullmq.into_iter();
                names.retain(|_| !flags.next().unwrap_or(false));
            }
            Ok(names)
        }
        Method::Members { key, strip } => {
            budget.round_trips.fetch_add(1, Ordering::Relaxed);
            let members: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query_async(conn).await?;
            Ok(members.iter().filter_map(|m| name_of(m, &strip, "")).collect())
        }
        Method::KombuBindings { pattern } => {
            let keys = scan(conn, &pattern, Some("set"), budget, round_start).await?;
            let keys: Vec<&String> = keys.iter().filter(|k| !is_celery_internal(k)).collect();
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("SMEMBERS").arg(*k);
            }
            budget.round_trips.fetch_add(1, Ordering::Relaxed);
            let members: Vec<Vec<String>> = pipe.query_async(conn).await?;
            Ok(members
                .iter()
                .flatten()
                .filter_map(|m| super::celery::binding_queue(m, s.sep.as_deref()))
                .collect())
        }
    }
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
            let names = match find(&mut conn, s, &budget, &mut round_start).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(system = s.system.as_str(), "queue discovery stopped: {e}");
                    return;
                }
            };
            let mut f = found.write().unwrap_or_else(|p| p.into_inner());
            for name in names.into_iter().filter(|n| !n.is_empty()) {
                let q = QueueRef { system: s.system, prefix: s.prefix().to_string(), name };
                // Publish as we go so new queues show up before the whole pass ends.
                f.queues.insert(q.clone());
                pass.insert(q);
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
        let Method::Scan { pattern, head, tail, .. } = method(System::Bullmq, "{bull}") else {
            panic!("scan")
        };
        assert_eq!(pattern, "{bull}:*:meta");
        assert_eq!(name_of("{bull}:payments:eu:meta", &head, tail).as_deref(), Some("payments:eu"));
        assert_eq!(name_of("{bull}::meta", &head, tail), None);
        let Method::Scan { pattern, .. } = method(System::Bull, "a*b") else { panic!("scan") };
        assert_eq!(pattern, "a\\*b:*:id");
    }

    #[test]
    fn registries_are_read_where_systems_keep_them() {
        assert_eq!(
            method(System::Rq, "rq"),
            Method::Members { key: "rq:queues".into(), strip: "rq:queue:".into() }
        );
        assert_eq!(
            method(System::Sidekiq, ""),
            Method::Members { key: "queues".into(), strip: String::new() }
        );
        assert_eq!(
            method(System::Sidekiq, "app"),
            Method::Members { key: "app:queues".into(), strip: String::new() }
        );
        assert!(is_celery_internal("_kombu.binding.celeryev"));
        assert!(is_celery_internal("_kombu.binding.reply.celery.pidbox"));
        assert!(!is_celery_internal("_kombu.binding.celery"));
    }
}
