//! BullMQ (v5, v6): per queue, plain pipelined reads in rounds ([`Snapshot`]), the events stream
//! read from redline's cursor in one `MULTI` with its `XINFO STREAM`.
//!
//! Counters, retries and durations come from the events stream: BullMQ writes `added`,
//! `waiting`, `active`, `completed`, `failed`, … there for every job, whatever `removeOnComplete`
//! does to the job hashes, and entry ids carry millisecond times. States, ages and locks come from
//! the snapshot. The stream is trimmed (about 10,000 entries by default): entries trimmed before
//! redline read them are counted in `redline_queue_events_lost_total` (exactly, from
//! `XINFO STREAM`'s `entries-added`, Redis >= 7), never silently.

use std::collections::HashMap;

use base64::Engine;
use redis::Value;

pub use super::bullmq_snapshot::Snapshot;
use super::reply::Fields;
use super::script::lua_script;
use super::{list, text, QueueError, QueueRef, QueueState, Reading};

// The walk for the queues plain reads cannot settle (see `bullmq_snapshot.rs`).
lua_script!(SCRIPT, "jobs.lua", "bullmq.lua");

/// Events-stream entries read per queue and collection; a queue that wrote more is caught up over
/// the next collections (`redline_queue_events_backlog` says by how much).
pub const EVENTS_PER_READ: usize = 500;
/// Jobs walked per list to find the oldest ready one past a run of LIFO jobs.
pub const MAX_WALK: usize = 64;
/// Priority bands whose head job is read per collection.
pub const MAX_BANDS: usize = 16;
/// Active jobs checked for a lock per collection (the longest-running ones); bounds the script.
pub const MAX_LOCK_CHECKS: usize = 1000;
/// Finished jobs per collection whose hash is read because the stream did not show their start.
const MAX_LOOKUPS: usize = 100;
/// Jobs in flight remembered per queue (ready and start times); beyond it jobs are timed from
/// their hash, or counted as untimed.
const MAX_TRACKED: usize = 1000;

/// Adds `SCRIPT LOAD` to the pipeline.
pub fn load_script(pipe: &mut redis::Pipeline) {
    SCRIPT.load(pipe);
}

/// A stream entry id: milliseconds and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    ms: u64,
    seq: u64,
}

impl StreamId {
    /// Parses `ms-seq`.
    pub fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        Some(Self { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }

    /// The smallest id after this one (an inclusive XRANGE start that works before Redis 6.2).
    fn after(self) -> String {
        match self.seq.checked_add(1) {
            Some(seq) => format!("{}-{seq}", self.ms),
            None => format!("{}-0", self.ms + 1),
        }
    }
}

/// A job between events: when it became ready, when it started.
#[derive(Debug, Clone, Copy, Default)]
struct Started {
    at: Option<f64>,
    ready: Option<f64>,
}

/// A finished job waiting for its hash to be read (the stream did not show its start).
#[derive(Debug, Clone, Copy)]
struct Pending {
    finished: f64,
    started: Option<f64>,
    ready: Option<f64>,
}

/// Per-queue memory of the events stream (BullMQ) and finished sets (Bull).
#[derive(Debug, Default)]
pub struct Tracker {
    /// Last stream entry counted; `None` before the first look.
    cursor: Option<StreamId>,
    /// `entries-added` up to and including the cursor (Redis >= 7).
    pos: Option<u64>,
    /// Set once a trim past the cursor was seen on a server that cannot say how much was lost.
    gap_unknown: bool,
    /// The stream had entries after the cursor at the last look: read it this time.
    reading: bool,
    ready: HashMap<String, f64>,
    /// When delayed jobs fall due (the `delay` of their `delayed` event): a job promoted from
    /// `delayed` has been ready since then, not since it was moved (its hash says delay 0).
    due: HashMap<String, f64>,
    /// When jobs that came back to wait (promoted from delayed, or after a failed attempt) became
    /// ready: their hashes keep the time they were first added.
    back: HashMap<String, f64>,
    started: HashMap<String, Started>,
    pending: HashMap<String, Pending>,
    /// Bull: finished-set cursors and counter source.
    pub(super) bull: super::bull::State,
}

impl Tracker {
    fn track_ready(&mut self, job: &str, ms: f64) {
        if self.ready.len() >= MAX_TRACKED && !self.ready.contains_key(job) {
            // Forget jobs whose start was lost (trimmed events) before refusing new ones.
            self.ready.retain(|_, t| *t >= ms - 3_600_000.0);
            if self.ready.len() >= MAX_TRACKED {
                return;
            }
        }
        self.ready.insert(job.to_string(), ms);
    }

    /// Remembers `job` -> `ms` in `map` up to [`MAX_TRACKED`] jobs (a scheduler's many delayed
    /// jobs must not crowd out the rest: beyond it new ones are not remembered).
    fn bounded(map: &mut HashMap<String, f64>, job: &str, ms: f64) {
        if map.len() < MAX_TRACKED || map.contains_key(job) {
            map.insert(job.to_string(), ms);
        }
    }

    fn track_start(&mut self, job: &str, s: Started) {
        if self.started.len() >= MAX_TRACKED && !self.started.contains_key(job) {
            let ms = s.at.unwrap_or(0.0);
            // Jobs seeded at the first look (start unknown) go first.
            self.started.retain(|_, t| t.at.is_some_and(|a| a >= ms - 3_600_000.0));
            if self.started.len() >= MAX_TRACKED {
                return;
            }
        }
        self.started.insert(job.to_string(), s);
    }
}

/// One events-stream entry: its id and the fields redline reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    id: StreamId,
    event: String,
    job: Option<String>,
    prev: Option<String>,
    /// A `delayed` event's due time (ms).
    delay: Option<f64>,
}

/// Parses an XRANGE reply; entries without a readable id are skipped and counted.
fn entries(v: &Value, bad: &mut u64) -> Option<Vec<Entry>> {
    let items = list(Some(v))?;
    let mut out = Vec::with_capacity(items.len());
    for e in items {
        let parts = list(Some(e)).unwrap_or(&[]);
        let Some(id) = text(parts.first()).and_then(|s| StreamId::parse(&s)) else {
            *bad += 1;
            continue;
        };
        let mut entry = Entry { id, event: String::new(), job: None, prev: None, delay: None };
        let mut set = |k: Option<String>, v: Option<String>| match k.as_deref() {
            Some("event") => entry.event = v.unwrap_or_default(),
            Some("jobId") => entry.job = v,
            Some("prev") => entry.prev = v,
            Some("delay") => entry.delay = v.and_then(|d| d.parse().ok()).filter(|d: &f64| d.is_finite()),
            _ => {}
        };
        match parts.get(1) {
            Some(Value::Array(f)) => f.chunks_exact(2).for_each(|p| set(text(p.first()), text(p.get(1)))),
            Some(Value::Map(m)) => m.iter().for_each(|(k, v)| set(text(Some(k)), text(Some(v)))),
            _ => {}
        }
        out.push(entry);
    }
    Some(out)
}

/// Starts the read of `q` and adds its first round to `pipe` (see [`Snapshot`]); returns the
/// read and its command count. The first look sets the stream baseline from `XINFO` alone; while
/// the stream has entries to read, the `XRANGE` and the `XINFO` share one `MULTI`; a queue whose
/// stream had nothing new gets the `XINFO` alone, which says when to read again (an idle queue
/// costs no `XRANGE`; a queue waking up is read one collection later).
pub fn add_commands(pipe: &mut redis::Pipeline, q: &QueueRef, st: &mut QueueState) -> (Snapshot, usize) {
    let t = st.jobs.get_or_insert_with(Default::default);
    // One more than we count: the entry after the last one tells a stalled job's requeue
    // (`waiting`, then `stalled`) from a retry.
    let xrange = match t.cursor {
        Some(c) if t.reading => Some((c.after(), EVENTS_PER_READ + 1)),
        _ => None,
    };
    let lookups = t.pending.keys().take(MAX_LOOKUPS).cloned().collect();
    let snap = Snapshot::new(format!("{}:{}:", q.prefix, q.name), xrange, lookups);
    let n = snap.first_round(pipe);
    (snap, n)
}

/// The walk script's call (`bullmq.lua`) for a queue the plain reads could not settle.
pub(super) fn walk_command(keys: &[String], args: &[String]) -> redis::Cmd {
    SCRIPT.cmd(keys, args)
}

/// BullMQ's keys for a queue, in the order the script expects.
pub fn keys(prefix: &str, name: &str) -> Vec<String> {
    [
        "wait",
        "active",
        "paused",
        "delayed",
        "prioritized",
        "waiting-children",
        "completed",
        "failed",
        "meta",
        "events",
    ]
    .iter()
    .map(|k| format!("{prefix}:{name}:{k}"))
    .collect()
}

/// The states BullMQ has, as the script names them.
const STATES: [&str; 8] =
    ["waiting", "active", "paused", "delayed", "prioritized", "waiting-children", "completed", "failed"];

/// Job times outside [2000-01-01, now + 5 min] are garbage.
pub(super) fn plausible(ms: f64, now: f64) -> bool {
    ms.is_finite() && (946_684_800_000.0..=now + 300_000.0).contains(&ms)
}

/// What BullMQ's and Bull's scripts both return (`jobs.lua`): counts of `states`, the pause flag,
/// the oldest ready job, the longest-running one, stalled jobs and skipped entries. Returns the
/// reading, the script's `now` (ms) and the bad entries so far.
pub(super) fn read_common(f: &Fields, states: &[&'static str]) -> Result<(Reading, f64, u64), QueueError> {
    let now = f.need("now")?;
    let mut r = Reading { tracks_finished: true, ..Reading::default() };
    let mut bad = 0u64;
    for state in states {
        match f.num(state) {
            Some(x) if x >= 0.0 => r.states.push((state, x)),
            _ => bad += 1,
        }
    }
    r.paused = f.num("is_paused").map(|p| p > 0.0);
    r.oldest_ready_ms = f.num("oldest_ready").filter(|ms| *ms >= 0.0);
    r.oldest_ready_age = r.oldest_ready_ms.map_or(0.0, |ms| ((now - ms) / 1000.0).max(0.0));
    r.oldest_lower_bound = Some(f.num("oldest_lower_bound").unwrap_or(0.0) > 0.0);
    if let Some(started) = f.num("oldest_active").filter(|ms| *ms >= 0.0) {
        r.running_since(started);
    }
    r.stalled(f.num("stalled").unwrap_or(0.0));
    bad += f.num("errors").unwrap_or(0.0) as u64;
    Ok((r, now, bad))
}

/// Reads a finished [`Snapshot`] and advances the queue's stream cursor.
pub fn read(snap: Snapshot, st: &mut QueueState) -> Result<Reading, QueueError> {
    let (stream, fields) = snap.finish()?;
    read_fields(stream.as_ref(), &fields, st)
}

/// Reads the queue's named fields and its stream read (`XRANGE` reply, when made).
fn read_fields(stream: Option<&Value>, fields: &Value, st: &mut QueueState) -> Result<Reading, QueueError> {
    let f = Fields::parse(fields)?;
    let (mut r, now, mut bad) = read_common(&f, &STATES)?;

    let t = st.jobs.get_or_insert_with(Default::default);
    looked_up(t, f.list("looked").unwrap_or(&[]), now, &mut r);
    let info = StreamInfo::from(&f);
    match (t.cursor, stream) {
        (None, _) => {
            // First look: the baseline. Jobs already active are remembered so that their retries
            // count and their end is timed from their hash.
            if info.kind == "stream" {
                t.cursor = Some(info.last.unwrap_or_default());
                t.pos = info.added;
            } else {
                // No stream yet: its first entries, when they come, are new.
                t.cursor = Some(StreamId::default());
                t.pos = Some(0);
            }
            for id in super::texts(f.get("active_ids")) {
                t.track_start(&id, Started::default());
            }
            r.added_new = Some(0.0);
        }
        (Some(cursor), Some(v)) if info.kind != "other" && !matches!(v, Value::ServerError(_)) => {
            let Some(es) = entries(v, &mut bad) else { return Err(QueueError::BadReply) };
            consume(t, cursor, &info, &es, &mut r);
            // Keep reading while there was something to read.
            t.reading = !es.is_empty();
        }
        (Some(cursor), None) => {
            // The snapshot alone: no counting now; read next time if there is something new.
            r.added_new = Some(0.0);
            if restarted(t, cursor, &info) {
                t.pos = Some(0);
                t.cursor = Some(StreamId::default());
            }
            t.reading = info.last.is_some_and(|l| Some(l) > t.cursor);
            r.events_backlog = match (info.added, t.pos) {
                (Some(a), Some(p)) => Some(a.saturating_sub(p) as f64),
                _ => None,
            };
        }
        (Some(_), _) => {
            // The events key is of another type (counted by the script) or the read failed.
            r.added_new = Some(0.0);
        }
    }
    correct_ready(t, &f, now, &mut r);
    r.counters_exact = Some(!t.gap_unknown && info.kind != "other");
    r.bad_data = bad;
    Ok(r)
}

/// What `XINFO STREAM` said about the events stream, in the same MULTI as the XRANGE.
#[derive(Debug, Default)]
struct StreamInfo {
    /// "stream", "none" or "other".
    kind: &'static str,
    added: Option<u64>,
    len: u64,
    first: Option<StreamId>,
    last: Option<StreamId>,
}

impl StreamInfo {
    fn from(f: &Fields) -> Self {
        let kind = match f.text("ev_type").as_deref() {
            Some("stream") => "stream",
            Some("none") | None => "none",
            _ => "other",
        };
        let id = |name: &str| f.text(name).and_then(|s| StreamId::parse(&s));
        Self {
            kind,
            added: f.num("ev_added").filter(|v| *v >= 0.0).map(|v| v as u64),
            len: f.num("ev_len").unwrap_or(0.0).max(0.0) as u64,
            first: id("ev_first"),
            last: id("ev_last"),
        }
    }
}

/// Whether the stream was deleted, or deleted and written again (a queue obliterated and
/// re-created): its ids went back or it received fewer entries than redline already counted.
fn restarted(t: &Tracker, cursor: StreamId, info: &StreamInfo) -> bool {
    info.kind == "none" && cursor > StreamId::default()
        || info.last.is_some_and(|l| l < cursor)
        || matches!((info.added, t.pos), (Some(a), Some(p)) if a < p)
}

/// Counts the entries read after `cursor` and moves the cursor. `entries-added` (Redis >= 7)
/// numbers every entry the stream ever received, so with the cursor's number it tells exactly how
/// many entries after the cursor were trimmed before redline read them.
fn consume(t: &mut Tracker, cursor: StreamId, info: &StreamInfo, es: &[Entry], r: &mut Reading) {
    r.added_new = Some(0.0);
    // A stream deleted, or deleted and written again (a queue obliterated and re-created), starts
    // over from its beginning; nothing of this read is counted twice.
    if restarted(t, cursor, info) {
        t.pos = Some(0);
        t.cursor = Some(StreamId::default());
        return;
    }
    let take = es.len().min(EVENTS_PER_READ);
    let caught_up = es.len() <= EVENTS_PER_READ;
    let trimmed_past = info.first.is_some_and(|f| f > cursor);
    let (mut added, mut completed, mut failed, mut retried) = (0.0, 0.0, 0.0, 0.0);
    let mut last = cursor;
    for (i, e) in es.iter().take(take).enumerate() {
        let ms = e.id.ms as f64;
        let job = e.job.as_deref().unwrap_or("");
        match e.event.as_str() {
            "added" => added += 1.0,
            "waiting" => {
                if e.prev.as_deref() == Some("active") {
                    // Back from active: a retry (or a rate-limit requeue), unless the stalled
                    // check put it back (BullMQ writes `stalled` right after).
                    let stalled =
                        es.get(i + 1).is_some_and(|n| n.event == "stalled" && n.job.as_deref() == Some(job));
                    if !stalled {
                        retried += 1.0;
                    }
                    t.started.remove(job);
                }
                // Promoted from delayed: ready since it fell due, if that was seen.
                let due = t.due.remove(job).filter(|_| e.prev.as_deref() == Some("delayed"));
                let ready = due.map_or(ms, |d| d.min(ms));
                t.track_ready(job, ready);
                // Back after an attempt: ready since now. Promoted: since its due time, when its
                // `delayed` event was read; a job delayed before redline's first look keeps its
                // hash time (the event's time would say it waited less than it did).
                match (e.prev.as_deref(), due) {
                    (Some("active"), _) | (Some("delayed"), Some(_)) => {
                        Tracker::bounded(&mut t.back, job, ready)
                    }
                    _ => {}
                }
            }
            "delayed" => {
                if let Some(due) = e.delay {
                    Tracker::bounded(&mut t.due, job, due);
                }
                // A job sent from active to delayed (a retry with backoff); a delayed add or a
                // changeDelay() is not active.
                if t.started.remove(job).is_some() {
                    retried += 1.0;
                }
            }
            "active" => {
                t.back.remove(job);
                let ready = t.ready.remove(job);
                t.track_start(job, Started { at: Some(ms), ready });
            }
            "completed" | "failed" => {
                if e.event == "completed" {
                    completed += 1.0;
                } else {
                    failed += 1.0;
                }
                let s = t.started.remove(job).unwrap_or_default();
                match (s.ready, s.at) {
                    (Some(ready), Some(at)) => r.durations.push(((at - ready) / 1000.0, (ms - at) / 1000.0)),
                    _ if t.pending.len() < MAX_LOOKUPS && !job.is_empty() => {
                        t.pending
                            .insert(job.to_string(), Pending { finished: ms, started: s.at, ready: s.ready });
                    }
                    _ => r.untimed_new += 1.0,
                }
            }
            "removed" | "waiting-children" => {
                t.ready.remove(job);
                t.due.remove(job);
                t.back.remove(job);
                t.started.remove(job);
            }
            _ => {}
        }
        last = e.id;
    }
    let mut lost = 0;
    match (info.added, t.pos) {
        (Some(total), Some(pos)) if caught_up => {
            // Every entry up to the stream's last was read now or is gone.
            lost = total.saturating_sub(pos + take as u64);
            t.pos = Some(total);
        }
        (Some(total), Some(pos)) if trimmed_past => {
            // Behind, and the stream no longer holds the entries right after the cursor: every
            // entry before its first one is gone.
            let before_first = total.saturating_sub(info.len);
            lost = before_first.saturating_sub(pos);
            t.pos = Some(pos.max(before_first) + take as u64);
        }
        (Some(_), Some(pos)) => t.pos = Some(pos + take as u64),
        _ => {
            // A server without `entries-added` cannot say how much a trim took: flag it.
            if trimmed_past && cursor > StreamId::default() {
                t.gap_unknown = true;
            }
        }
    }
    t.cursor = Some(last);
    r.added_new = Some(added);
    r.completed_new = completed;
    r.failed_new = failed;
    r.retries_new = retried;
    r.events_lost = lost as f64;
    r.events_backlog = match (info.added, t.pos) {
        (Some(a), Some(p)) => Some(a.saturating_sub(p) as f64),
        _ => None,
    };
}

/// The oldest ready job again, with what the events stream says about the candidates: a job
/// promoted from `delayed` has been ready since it fell due and one back from a failed attempt
/// since it came back, while their hashes keep the time they were added (BullMQ sets a promoted
/// job's `delay` to 0). Jobs that became ready before redline's first look keep their hash time.
fn correct_ready(t: &Tracker, f: &Fields, now: f64, r: &mut Reading) {
    let found = f.list("ready_found").unwrap_or(&[]);
    if found.is_empty() {
        return;
    }
    let mut oldest = f.num("oldest_delayed").filter(|d| *d >= 0.0);
    for c in found.chunks_exact(2) {
        let (Some(id), Some(ms)) = (text(c.first()), super::int(c.get(1))) else { continue };
        // Back in wait as the stream said; or, before redline has read the `waiting` event
        // (the stream is read from the collection after it wakes up), due by its `delayed` one.
        let known = t.back.get(&id).or_else(|| t.due.get(&id).filter(|d| **d <= now));
        let ms = known.filter(|tr| plausible(**tr, now)).map_or(ms, |tr| tr.max(ms));
        oldest = Some(oldest.map_or(ms, |o| o.min(ms)));
    }
    if let Some(ms) = oldest {
        r.oldest_ready_ms = Some(ms);
        r.oldest_ready_age = ((now - ms) / 1000.0).max(0.0);
    }
}

/// Times the finished jobs whose hash the script read (`looked`: id and four fields each);
/// those it did not return are gone and stay untimed.
fn looked_up(t: &mut Tracker, looked: &[Value], now: f64, r: &mut Reading) {
    if t.pending.is_empty() {
        return;
    }
    let mut found: HashMap<String, [Option<f64>; 4]> = HashMap::new();
    for c in looked.chunks_exact(5) {
        if let Some(id) = text(c.first()) {
            let n = |i: usize| text(c.get(i)).and_then(|s| s.parse::<f64>().ok()).filter(|v| v.is_finite());
            found.insert(id, [n(1), n(2), n(3), n(4)]);
        }
    }
    // Only the ids sent this time were looked up; the rest wait for the next collection.
    let asked: Vec<String> = t.pending.keys().take(MAX_LOOKUPS).cloned().collect();
    for id in asked {
        let Some(p) = t.pending.remove(&id) else { continue };
        let h = found.get(&id);
        let ready = p.ready.or_else(|| {
            let [ts, delay, ..] = *h?;
            Some(ts? + delay.unwrap_or(0.0))
        });
        let started = p.started.or_else(|| h?[2]);
        match (ready, started) {
            (Some(ready), Some(at)) if plausible(ready, now) && plausible(at, now) => {
                r.durations.push(((at - ready) / 1000.0, (p.finished - at) / 1000.0));
            }
            _ => r.untimed_new += 1.0,
        }
    }
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

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![bulk(id), Value::Array(fields.iter().map(|f| bulk(f)).collect())])
    }

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
    fn redlines_own_connection_name_is_never_a_worker() {
        let names = vec![crate::collect::redis::CLIENT_NAME.to_string()];
        for (prefix, name) in [("bull", "redline"), ("", "redline"), ("redline", ""), ("", "")] {
            let q = QueueRef { system: System::Bullmq, prefix: prefix.into(), name: name.into() };
            assert_eq!(workers(&names, &q), 0, "{prefix:?} {name:?}");
        }
    }

    #[test]
    fn garbage_reply_is_an_error_not_a_panic() {
        let ints = |n: usize| (0..n).map(|_| Ok(Value::Int(3))).collect::<Vec<_>>();
        for (replies, want) in [
            (ints(1), QueueError::BadReply),
            (vec![], QueueError::BadReply),
            // The right count, but `TIME` is not a pair.
            (ints(16), QueueError::ReadFailed),
        ] {
            let mut snap = Snapshot::new("bull:q:".into(), None, vec![]);
            assert!(snap.next(&replies).is_empty());
            assert_eq!(read(snap, &mut QueueState::default()).err(), Some(want));
        }
    }

    #[test]
    fn stream_ids_order_and_step() {
        let a = StreamId::parse("1700000000000-5").expect("id");
        assert!(a < StreamId::parse("1700000000001-0").expect("id"));
        assert_eq!(a.after(), "1700000000000-6");
        assert_eq!(StreamId { ms: 7, seq: u64::MAX }.after(), "8-0");
        assert_eq!(StreamId::parse("junk"), None);
    }

    fn info(added: u64, len: u64, first: &str, last: &str) -> StreamInfo {
        StreamInfo {
            kind: "stream",
            added: Some(added),
            len,
            first: StreamId::parse(first),
            last: StreamId::parse(last),
        }
    }

    #[test]
    fn events_count_retries_and_time_jobs() {
        let reply = Value::Array(vec![
            entry("1000-0", &["event", "added", "jobId", "1"]),
            entry("1000-1", &["event", "waiting", "jobId", "1"]),
            entry("1500-0", &["event", "active", "jobId", "1", "prev", "waiting"]),
            entry("1600-0", &["event", "waiting", "jobId", "1", "prev", "active"]),
            entry("1700-0", &["event", "active", "jobId", "1", "prev", "waiting"]),
            entry("1800-0", &["event", "delayed", "jobId", "1", "delay", "1900"]),
            entry("1900-0", &["event", "waiting", "jobId", "1", "prev", "delayed"]),
            entry("2000-0", &["event", "active", "jobId", "1", "prev", "waiting"]),
            entry("2300-0", &["event", "completed", "jobId", "1", "returnvalue", "x", "prev", "active"]),
            // A stalled job put back is not a retry.
            entry("2400-0", &["event", "waiting", "jobId", "2", "prev", "active"]),
            entry("2400-1", &["event", "stalled", "jobId", "2"]),
            entry("2500-0", &["event", "failed", "jobId", "9", "failedReason", "boom", "prev", "active"]),
        ]);
        let mut bad = 0;
        let es = entries(&reply, &mut bad).expect("entries");
        assert_eq!(bad, 0);
        let mut t = Tracker { pos: Some(10), ..Tracker::default() };
        let mut r = Reading::default();
        consume(&mut t, StreamId { ms: 999, seq: 0 }, &info(22, 12, "1000-0", "2500-0"), &es, &mut r);
        assert_eq!((r.added_new, r.completed_new, r.failed_new, r.retries_new), (Some(1.0), 1.0, 1.0, 2.0));
        assert_eq!(r.durations, vec![(0.1, 0.3)], "last attempt: ready 1900, started 2000, done 2300");
        assert_eq!(t.pending.len(), 1, "job 9 started before the stream showed it: timed from its hash");
        assert_eq!((r.events_lost, r.events_backlog), (0.0, Some(0.0)));
        assert_eq!(t.cursor, StreamId::parse("2500-0"));
    }

    #[test]
    fn a_promoted_delayed_job_is_ready_since_it_fell_due() {
        let reply = Value::Array(vec![
            entry("1000-0", &["event", "delayed", "jobId", "7", "delay", "5000"]),
            entry("1000-1", &["event", "delayed", "jobId", "8", "delay", "6000"]),
            // Promoted late by a worker that started at 9000; BullMQ sets their delay to 0.
            entry("9000-0", &["event", "waiting", "jobId", "7", "prev", "delayed"]),
            // A job back from a failed attempt is ready since it came back.
            entry("9500-0", &["event", "waiting", "jobId", "3", "prev", "active"]),
            // Delayed before redline's first look: its due time is unknown, the hash is kept.
            entry("9600-0", &["event", "waiting", "jobId", "2", "prev", "delayed"]),
        ]);
        let es = entries(&reply, &mut 0).expect("entries");
        let mut t = Tracker { pos: Some(0), ..Tracker::default() };
        consume(&mut t, StreamId::default(), &info(5, 5, "1000-0", "9600-0"), &es, &mut Reading::default());
        assert_eq!(t.back.get("2"), None);
        assert_eq!(t.back.get("7"), Some(&5000.0));
        assert_eq!(t.back.get("3"), Some(&9500.0));
        assert_eq!(t.due.get("8"), Some(&6000.0), "still delayed");
    }

    #[test]
    fn entries_trimmed_past_the_cursor_are_counted_as_lost() {
        // The cursor was entry #10; 30 entries were added since, the stream holds the last 5.
        let reply = Value::Array(
            (0..5).map(|i| entry(&format!("5000-{i}"), &["event", "completed", "jobId", "7"])).collect(),
        );
        let es = entries(&reply, &mut 0).expect("entries");
        let mut t = Tracker { pos: Some(10), ..Tracker::default() };
        let mut r = Reading::default();
        consume(&mut t, StreamId { ms: 100, seq: 0 }, &info(40, 5, "5000-0", "5000-4"), &es, &mut r);
        assert_eq!(r.events_lost, 25.0);
        assert_eq!(r.completed_new, 5.0);
        assert_eq!(t.pos, Some(40));
        assert_eq!(r.events_backlog, Some(0.0));
    }

    #[test]
    fn a_full_read_leaves_a_backlog_for_the_next_collection() {
        let reply = Value::Array(
            (0..=EVENTS_PER_READ)
                .map(|i| entry(&format!("9000-{i}"), &["event", "added", "jobId", "1"]))
                .collect(),
        );
        let es = entries(&reply, &mut 0).expect("entries");
        let mut t = Tracker { pos: Some(0), ..Tracker::default() };
        let mut r = Reading::default();
        consume(&mut t, StreamId::default(), &info(5000, 5000, "9000-0", "9999-0"), &es, &mut r);
        assert_eq!(r.added_new, Some(EVENTS_PER_READ as f64));
        assert_eq!(r.events_lost, 0.0);
        assert_eq!(r.events_backlog, Some((5000 - EVENTS_PER_READ) as f64));
        assert_eq!(t.cursor, Some(StreamId { ms: 9000, seq: EVENTS_PER_READ as u64 - 1 }));
    }
}
