//! Background queue discovery, never on the collection path. Systems that keep a registry of
//! their queues (RQ's `rq:queues`, Sidekiq's `queues`, kombu's bindings) are read directly;
//! the others are found by SCAN for a marker key, a bounded amount of work per round.
//!
//! Discovery never takes another system's or another prefix's keys: BullMQ and Bull share key
//! names (Bull 4 writes `<q>:meta` too, to mirror its pause flag), so a candidate is classified by
//! the fields only BullMQ writes; BullMQ forbids `:` in queue names; a key under a longer
//! configured prefix belongs to that prefix's source; BullMQ's `<q>:events` streams are not
//! application streams. A source that fails (wrong key type, refused command) or a key that is
//! not UTF-8 is skipped, counted in `redline_queue_discovery_errors_total`, logged once, and
//! tried again on the next pass; the other sources go on.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;

use super::{QueueRef, QueueSource, System};

/// Why discovery skipped something; the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// A key or registry member that is not UTF-8 (queue names are label values).
    BadKey,
    /// The source's read failed: a registry of the wrong type, a refused command, a lost connection.
    ReadFailed,
}

impl Skip {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::BadKey => "bad_key",
            Skip::ReadFailed => "read_failed",
        }
    }
}

/// What discovery found so far.
#[derive(Debug, Default, Clone)]
pub struct Found {
    /// Queues found by the last complete pass, plus any found since.
    pub queues: BTreeSet<QueueRef>,
    /// Wall time of the last complete pass.
    pub last_pass: Option<Duration>,
    /// Keys and sources skipped since start, by (system, prefix, reason).
    pub errors: BTreeMap<(System, String, Skip), u64>,
    /// Jobs ready to run per queue, read after each pass only when more queues were found than
    /// `limits.max_queues` leaves room for: the cap keeps the largest backlogs.
    pub backlog: HashMap<QueueRef, u64>,
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
    /// `limits.max_queues`: past it, the backlog of every queue found is read to rank them.
    pub max_queues: usize,
    /// Rank after every pass even under the cap (a cluster node cannot tell whether the
    /// target's total passes it).
    pub rank_always: bool,
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
        // BullMQ writes `meta` (event stream settings, version) when a Queue is created.
        System::Bullmq => Method::Scan {
            pattern: format!("{esc}:*:meta"),
            head: format!("{prefix}:"),
            tail: ":meta",
            key_type: Some("hash"),
        },
        // Every Bull queue that ever had a job has its id counter (BullMQ's too: told apart later).
        System::Bull => Method::Scan {
            pattern: format!("{esc}:*:id"),
            head: format!("{prefix}:"),
            tail: ":id",
            key_type: Some("string"),
        },
        System::Rq => Method::Members { key: format!("{prefix}:queues"), strip: format!("{prefix}:queue:") },
        System::Sidekiq => {
            Method::Members { key: format!("{}queues", super::sidekiq::ns(prefix)), strip: String::new() }
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

/// Whether the config names `q` in its source's `names` (kept whatever the backlogs).
fn named(sources: &[QueueSource], q: &QueueRef) -> bool {
    sources.iter().any(|s| s.system == q.system && s.prefix() == q.prefix && s.names.contains(&q.name))
}

/// Queue name from a key, if the key has the expected shape.
fn name_of(key: &str, head: &str, tail: &str) -> Option<String> {
    let name = key.strip_prefix(head)?.strip_suffix(tail)?;
    (!name.is_empty()).then(|| name.to_string())
}

/// Whether `key` lies under another configured BullMQ/Bull source whose prefix extends `prefix`
/// (`myapp:v2:d3:meta` belongs to prefix `myapp:v2`, not to `myapp` as queue `v2:d3`).
fn under_longer_prefix(key: &str, prefix: &str, sources: &[QueueSource]) -> bool {
    sources.iter().filter(|s| matches!(s.system, System::Bullmq | System::Bull)).any(|s| {
        let other = s.prefix();
        other.len() > prefix.len() && other.starts_with(prefix) && key.starts_with(&format!("{other}:"))
    })
}

/// Celery's own broadcast and reply exchanges: their queues are per-worker and short-lived.
fn is_celery_internal(binding_key: &str) -> bool {
    ["celeryev", "celery.pidbox", "reply.celery.pidbox"]
        .iter()
        .any(|x| binding_key.ends_with(&format!(".{x}")))
}

/// Keys found by a scan: the UTF-8 ones, and how many were not.
#[derive(Debug, Default)]
struct Keys {
    ok: Vec<String>,
    bad: u64,
}

/// Buckets one `SCAN` call visits.
const SCAN_COUNT: usize = 200;

/// Splits binary keys into UTF-8 names and a count of the others.
fn utf8_keys(raw: Vec<Vec<u8>>, into: &mut Keys) {
    for k in raw {
        match String::from_utf8(k) {
            Ok(s) => into.ok.push(s),
            Err(_) => into.bad += 1,
        }
    }
}

/// Scans one pattern to the end, pausing when a round's budget is spent.
async fn scan(
    conn: &mut MultiplexedConnection,
    pattern: &str,
    key_type: Option<&str>,
    budget: &Budget,
    round_start: &mut tokio::time::Instant,
) -> redis::RedisResult<Keys> {
    let mut cursor: u64 = 0;
    let mut out = Keys::default();
    loop {
        let mut cmd = redis::cmd("SCAN");
        // COUNT 1000 with MATCH held Redis 1-3 ms per call at 35,000+ keys (SLOWLOG); 200 keeps
        // one call well under 1 ms, for 5x the round trips of a pass (time-budgeted anyway).
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT);
        if let Some(t) = key_type {
            cmd.arg("TYPE").arg(t);
        }
        budget.round_trips.fetch_add(1, Ordering::Relaxed);
        // Keys as bytes: one key that is not UTF-8 must not fail the whole scan.
        let (next, keys): (u64, Vec<Vec<u8>>) = cmd.query_async(conn).await?;
        utf8_keys(keys, &mut out);
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

/// Candidates classified per pipeline (bounds one request's size).
const CLASSIFY_CHUNK: usize = 500;

/// For each queue base (`<prefix>:<name>`), whether it is a BullMQ queue: its `meta` hash holds a
/// field only BullMQ writes (`version`, `opts.maxLenEvents`), or it has an `events` stream. Bull 4
/// writes `meta` only to mirror its pause flag, and keeps no stream.
async fn bullmq_bases(
    conn: &mut MultiplexedConnection,
    bases: &[String],
    budget: &Budget,
) -> redis::RedisResult<Vec<bool>> {
    let mut out = Vec::with_capacity(bases.len());
    for chunk in bases.chunks(CLASSIFY_CHUNK) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for b in chunk {
            pipe.cmd("HMGET").arg(format!("{b}:meta")).arg("version").arg("opts.maxLenEvents");
            pipe.cmd("TYPE").arg(format!("{b}:events"));
        }
        budget.round_trips.fetch_add(1, Ordering::Relaxed);
        let replies: Vec<redis::RedisResult<Value>> = pipe.query_async(conn).await?;
        for pair in replies.chunks(2) {
            let meta = matches!(pair.first(), Some(Ok(Value::Array(f))) if f.iter().any(|v| !matches!(v, Value::Nil)));
            let stream = matches!(pair.get(1), Some(Ok(v)) if type_name(v) == Some("stream"));
            out.push(meta || stream);
        }
    }
    Ok(out)
}

/// For each stream key ending in `:events`, whether it is a BullMQ/Bull queue's event stream
/// (the queue's `meta` or `id` key sits beside it).
async fn queue_event_streams(
    conn: &mut MultiplexedConnection,
    keys: &[String],
    budget: &Budget,
) -> redis::RedisResult<Vec<bool>> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CLASSIFY_CHUNK) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for k in chunk {
            let base = k.strip_suffix(":events").unwrap_or(k);
            pipe.cmd("EXISTS").arg(format!("{base}:meta")).arg(format!("{base}:id"));
        }
        budget.round_trips.fetch_add(1, Ordering::Relaxed);
        let replies: Vec<redis::RedisResult<Value>> = pipe.query_async(conn).await?;
        out.extend(replies.iter().map(|r| matches!(r, Ok(Value::Int(n)) if *n > 0)));
    }
    Ok(out)
}

fn type_name(v: &Value) -> Option<&str> {
    match v {
        Value::SimpleString(s) => Some(s),
        Value::Okay => Some("OK"),
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// Finds the queue names of one source.
async fn find(
    conn: &mut MultiplexedConnection,
    s: &QueueSource,
    all: &[QueueSource],
    budget: &Budget,
    round_start: &mut tokio::time::Instant,
) -> redis::RedisResult<Keys> {
    let prefix = s.prefix();
    match method(s.system, prefix) {
        Method::Scan { pattern, head, tail, key_type } => {
            let keys = scan(conn, &pattern, key_type, budget, round_start).await?;
            let mut names: Vec<String> = keys
                .ok
                .iter()
                .filter(|k| s.system == System::Stream || !under_longer_prefix(k, prefix, all))
                .filter_map(|k| name_of(k, &head, tail))
                .collect();
            match s.system {
                // BullMQ rejects `:` in queue names: `a:b` under this prefix is another prefix's queue.
                System::Bullmq => names.retain(|n| !n.contains(':')),
                System::Stream => {
                    let events: Vec<String> = names
                        .iter()
                        .filter(|n| n.ends_with(":events"))
                        .map(|n| format!("{head}{n}"))
                        .collect();
                    if !events.is_empty() {
                        let flags = queue_event_streams(conn, &events, budget).await?;
                        let queue_streams: HashSet<&String> =
                            events.iter().zip(flags).filter(|(_, f)| *f).map(|(k, _)| k).collect();
                        names.retain(|n| !queue_streams.contains(&format!("{head}{n}")));
                    }
                }
                _ => {}
            }
            if matches!(s.system, System::Bullmq | System::Bull) && !names.is_empty() {
                let bases: Vec<String> = names.iter().map(|n| format!("{head}{n}")).collect();
                let is_bullmq = bullmq_bases(conn, &bases, budget).await?;
                let want = s.system == System::Bullmq;
                let mut flags = is_bullmq.into_iter();
                names.retain(|_| flags.next().unwrap_or(false) == want);
            }
            Ok(Keys { ok: names, bad: keys.bad })
        }
        Method::Members { key, strip } => {
            budget.round_trips.fetch_add(1, Ordering::Relaxed);
            let raw: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(&key).query_async(conn).await?;
            let mut members = Keys::default();
            utf8_keys(raw, &mut members);
            Ok(Keys {
                ok: members.ok.iter().filter_map(|m| name_of(m, &strip, "")).collect(),
                bad: members.bad,
            })
        }
        Method::KombuBindings { pattern } => {
            let mut keys = scan(conn, &pattern, Some("set"), budget, round_start).await?;
            keys.ok.retain(|k| !is_celery_internal(k));
            if keys.ok.is_empty() {
                return Ok(Keys { ok: Vec::new(), bad: keys.bad });
            }
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for k in &keys.ok {
                pipe.cmd("SMEMBERS").arg(k);
            }
            budget.round_trips.fetch_add(1, Ordering::Relaxed);
            // One binding key of another type or with a non-UTF-8 member spoils only itself.
            let replies: Vec<redis::RedisResult<Vec<Vec<u8>>>> = pipe.query_async(conn).await?;
            let mut members = Keys { ok: Vec::new(), bad: keys.bad };
            for r in replies {
                match r {
                    Ok(raw) => utf8_keys(raw, &mut members),
                    Err(_) => members.bad += 1,
                }
            }
            Ok(Keys {
                ok: members
                    .ok
                    .iter()
                    .filter_map(|m| super::celery::binding_queue(m, s.sep.as_deref()))
                    .collect(),
                bad: members.bad,
            })
        }
    }
}

/// Runs discovery passes until the task is aborted (the collector restarts it on reconnect). A
/// failed source keeps what it found before and is tried again on the next pass.
pub async fn run(
    mut conn: MultiplexedConnection,
    sources: Vec<QueueSource>,
    found: Arc<RwLock<Found>>,
    budget: Budget,
) {
    let all = sources.clone();
    // Queues named in the config are always kept; discovered ones share what is left.
    let room = budget.max_queues.saturating_sub(all.iter().map(|s| s.names.len()).sum());
    let sources: Vec<QueueSource> = sources.into_iter().filter(QueueSource::discovers).collect();
    if sources.is_empty() {
        return;
    }
    // Sources already reported in the log: each problem is logged once, then counted.
    let mut logged: HashSet<(System, String, Skip)> = HashSet::new();
    loop {
        let started = tokio::time::Instant::now();
        let mut round_start = started;
        let mut pass: BTreeSet<QueueRef> = BTreeSet::new();
        for s in &sources {
            let prefix = s.prefix().to_string();
            let result = find(&mut conn, s, &all, &budget, &mut round_start).await;
            let mut f = found.write().unwrap_or_else(|p| p.into_inner());
            let problem = match result {
                Ok(keys) => {
                    for name in keys.ok.into_iter().filter(|n| !n.is_empty()) {
                        let q = QueueRef { system: s.system, prefix: prefix.clone(), name };
                        // Publish as we go so new queues show up before the whole pass ends.
                        f.queues.insert(q.clone());
                        pass.insert(q);
                    }
                    (keys.bad > 0).then(|| {
                        (Skip::BadKey, keys.bad, format!("{} key(s) or member(s) not UTF-8", keys.bad))
                    })
                }
                Err(e) => {
                    // Keep what this source had: one bad pass must not make its queues vanish.
                    pass.extend(
                        f.queues.iter().filter(|q| q.system == s.system && q.prefix == prefix).cloned(),
                    );
                    // Server error text names the command and key, never credentials; bounded.
                    let mut detail = e.to_string();
                    let mut end = detail.len().min(200);
                    while !detail.is_char_boundary(end) {
                        end -= 1;
                    }
                    detail.truncate(end);
                    Some((Skip::ReadFailed, 1, detail))
                }
            };
            if let Some((skip, n, detail)) = problem {
                *f.errors.entry((s.system, prefix.clone(), skip)).or_default() += n;
                if logged.insert((s.system, prefix.clone(), skip)) {
                    tracing::warn!(
                        system = s.system.as_str(),
                        prefix = %prefix,
                        "queue discovery skipped {}: {detail}; counted in redline_queue_discovery_errors_total, retried every pass",
                        skip.as_str()
                    );
                }
            }
        }
        let backlog = if pass.len() > room || budget.rank_always {
            // Named queues are kept anyway: rank only the others for the room left.
            let list: Vec<&QueueRef> = pass.iter().filter(|q| !named(&all, q)).collect();
            match super::rank::measure(&mut conn, &list, &all, room).await {
                Ok((b, trips)) => {
                    budget.round_trips.fetch_add(trips, Ordering::Relaxed);
                    Some(b)
                }
                Err(e) => {
                    // Rank by the previous pass's figures (or by name) until the next one.
                    tracing::debug!("queue backlog read failed: {e}");
                    None
                }
            }
        } else {
            Some(HashMap::new())
        };
        {
            // A complete pass replaces the set: queues deleted since are forgotten.
            let mut f = found.write().unwrap_or_else(|p| p.into_inner());
            f.queues = pass;
            if let Some(b) = backlog {
                f.backlog = b;
            }
            f.last_pass = Some(started.elapsed());
        }
        tokio::time::sleep(budget.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(system: System, prefix: &str) -> QueueSource {
        serde_yaml_ng::from_str(&format!("system: {}\nprefix: \"{prefix}\"", system.as_str()))
            .expect("source")
    }

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
    fn a_longer_configured_prefix_owns_its_keys() {
        let all = [source(System::Bullmq, "myapp"), source(System::Bull, "myapp:v2")];
        assert!(under_longer_prefix("myapp:v2:d3:meta", "myapp", &all));
        assert!(!under_longer_prefix("myapp:v2:d3:meta", "myapp:v2", &all));
        assert!(!under_longer_prefix("myapp:orders:meta", "myapp", &all));
        // `myapp:v20` is not under `myapp:v2`.
        assert!(!under_longer_prefix("myapp:v20:meta", "myapp", &all));
    }

    #[test]
    fn keys_that_are_not_utf8_are_counted_not_fatal() {
        let mut k = Keys::default();
        utf8_keys(vec![b"bull:a:meta".to_vec(), vec![0xff, 0xfe], b"bull:b:meta".to_vec()], &mut k);
        assert_eq!(k.ok, ["bull:a:meta", "bull:b:meta"]);
        assert_eq!(k.bad, 1);
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
