//! Celery queues on the Redis broker (kombu): the queue and its priority sub-queues, and the
//! `unacked` hash of delivered-but-unacknowledged messages.
//!
//! kombu puts a message of priority `p` in `<queue><sep><step>` (the step `p` falls in; step 0
//! is the queue's own key) and workers BRPOP the sub-queues in step order. Unless the config
//! lists `priority_steps`, every step kombu can produce (0-9) is read, so no setting can hide
//! messages. The separator comes from the config, else from kombu's own binding set for the
//! queue, else kombu's default.
//!
//! Celery messages carry no enqueue time, so the oldest-job age is measured by redline, per
//! message: kombu LPUSHes and workers pop the tail, so each sub-queue is a FIFO and redline
//! keeps it as batches of messages first seen at the same collection, oldest at the tail. The
//! previous head element, found again with LPOS, tells how many messages were pushed since; the
//! length tells how many were consumed (from the oldest batch). Ages are exact to one collection
//! interval for messages pushed while redline runs; anything redline could not follow (messages
//! there before its first look, restored to the tail, or an unfollowable head) is flagged.

use std::collections::{HashMap, VecDeque};

use redis::{RedisResult, Value};

use super::reply::Fields;
use super::script::lua_script;
use super::{int, text, QueueError, QueueRef, QueueSource, QueueState, Reading, System};
use crate::config::queues::KOMBU_SEP;
use crate::names as n;

lua_script!(QUEUE, "celery.lua");
lua_script!(UNACKED, "celery_unacked.lua");

/// Unacked entries read per collection at most: a larger hash is read in HSCAN slices, one per
/// collection, and the per-queue counts come from the last complete pass.
const UNACKED_SLICE: usize = 100;
/// Fewest unacked entries per slice (whatever their size or cost: a pass must end).
const UNACKED_SLICE_MIN: usize = 2;
/// Microseconds of Redis time one unacked read should take: the bytes alone do not say it (20
/// entries of 3 KB, 64 KiB, took 0.07-1.6 ms of HSCAN on this machine, page faults included).
const UNACKED_MICROS: f64 = 250.0;
/// Bytes of messages one unacked call should copy: each entry is copied whole into the script
/// (Redis cannot read the end of a hash value), ~64 KiB keeps one call well under 1 ms (3 KB
/// messages: ~20 per call).
const UNACKED_BYTES: f64 = 65_536.0;
/// LPOS comparisons per direction when looking for the previous head.
const LPOS_MAXLEN: usize = 1000;
/// Largest head element kept (and sent back) as a marker; bigger heads cannot be followed.
const MARKER_CAP: usize = 16_384;
/// Batches remembered per sub-queue; beyond it the closest two merge (to the later time).
const MAX_BATCHES: usize = 512;
/// Every priority step kombu can produce: priorities are clamped to 0-9.
const ALL_STEPS: [i64; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/// How one Celery queue's keys are laid out.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Separator between queue name and step, when the config sets it.
    pub sep: Option<String>,
    /// Steps to read.
    pub steps: Vec<i64>,
}

/// The settings of the source `q` belongs to.
pub fn settings(sources: &[QueueSource], q: &QueueRef) -> Settings {
    let src = sources.iter().find(|s| s.system == System::Celery && s.prefix() == q.prefix);
    Settings {
        sep: src.and_then(|s| s.sep.clone()),
        steps: src.and_then(|s| s.priority_steps.clone()).unwrap_or_else(|| ALL_STEPS.to_vec()),
    }
}

/// The queue a kombu binding member names. Members are `routing_key<sep>pattern<sep>queue`;
/// Celery binds each queue with its own name as routing key and no pattern, which also tells
/// the separator when `sep` is not known.
pub fn binding_queue(member: &str, sep: Option<&str>) -> Option<String> {
    if let Some((name, _)) = self_binding(member).filter(|(_, s)| sep.is_none_or(|want| want == *s)) {
        return Some(name.to_string());
    }
    let q = member.splitn(3, sep.unwrap_or(KOMBU_SEP)).nth(2)?;
    (!q.is_empty()).then(|| q.to_string())
}

/// `X<s><s>X` -> (X, s): a queue bound under its own name, and the separator.
fn self_binding(member: &str) -> Option<(&str, &str)> {
    let b = member.as_bytes();
    for sep_len in 1..=4.min(b.len() / 2) {
        let rest = b.len() - 2 * sep_len;
        if rest == 0 || !rest.is_multiple_of(2) {
            continue;
        }
        let x = rest / 2;
        let (name, s1, s2, tail) =
            (&b[..x], &b[x..x + sep_len], &b[x + sep_len..x + 2 * sep_len], &b[x + 2 * sep_len..]);
        if name == tail && s1 == s2 {
            let name = std::str::from_utf8(name).ok()?;
            let sep = std::str::from_utf8(s1).ok()?;
            return Some((name, sep));
        }
    }
    None
}

/// Unacknowledged messages per routing key.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Unacked {
    /// Total entries.
    pub total: f64,
    /// Entries by routing key (normally the queue name); `None` until a pass is complete.
    pub per_queue: Option<HashMap<String, f64>>,
    /// The per-queue counts come from a pass over several collections (the hash is larger
    /// than one slice), not from this moment.
    pub estimated: bool,
    /// Entries that could not be decoded.
    pub bad_data: u64,
}

/// A pass over a large `unacked` hash in HSCAN slices, across collections.
#[derive(Debug, Default)]
pub struct UnackedScan {
    cursor: String,
    /// Entries per slice, from the bytes per entry the previous slice copied (0: not measured).
    slice: usize,
    partial: HashMap<String, f64>,
    last_pass: Option<HashMap<String, f64>>,
}

/// Adds the `SCRIPT LOAD`s.
pub fn load_scripts(pipe: &mut redis::Pipeline) {
    QUEUE.load(pipe);
    UNACKED.load(pipe);
}

/// Adds the unacked call (`prefix` is kombu's `global_keyprefix`, usually empty).
pub fn add_global(pipe: &mut redis::Pipeline, prefix: &str, scan: Option<&UnackedScan>) {
    let cursor = scan.map_or("0", |s| if s.cursor.is_empty() { "0" } else { s.cursor.as_str() });
    let slice = scan.map_or(0, |s| s.slice);
    let slice = if slice == 0 { UNACKED_SLICE } else { slice };
    UNACKED.call(pipe, &[format!("{prefix}unacked")], &[slice.to_string(), cursor.to_string()]);
}

/// Entries for the next slice, from what the last one read: about UNACKED_BYTES copied and
/// UNACKED_MICROS of Redis time, whichever is fewer entries (`None`: nothing was measured).
fn next_slice(read: Option<f64>, bytes: Option<f64>, micros: Option<f64>) -> Option<usize> {
    let n = read.filter(|n| *n > 0.0)?;
    let by_bytes = bytes.filter(|b| *b > 0.0).map_or(f64::INFINITY, |b| UNACKED_BYTES / (b / n));
    let by_time = micros.filter(|us| *us > 0.0).map_or(f64::INFINITY, |us| UNACKED_MICROS / (us / n));
    let want = by_bytes.min(by_time);
    want.is_finite().then(|| (want as usize).clamp(UNACKED_SLICE_MIN, UNACKED_SLICE))
}

/// Reads the unacked call's reply, carrying a sliced pass on in `scan`.
pub fn read_global(reply: Option<&RedisResult<Value>>, scan: &mut UnackedScan) -> Option<Unacked> {
    let f = Fields::parse(reply?.as_ref().ok()?).ok()?;
    let mut u = Unacked {
        total: f.num("total")?,
        bad_data: f.num("errors").unwrap_or(0.0) as u64,
        ..Default::default()
    };
    let mut per = HashMap::new();
    for p in f.list("per_key").unwrap_or(&[]).chunks_exact(2) {
        if let (Some(k), Some(n)) = (text(p.first()), int(p.get(1))) {
            per.insert(k, n);
        }
    }
    let slice = next_slice(f.num("read"), f.num("bytes"), f.num("us")).unwrap_or(scan.slice);
    if f.num("full") == Some(1.0) {
        *scan = UnackedScan { slice, ..UnackedScan::default() };
        u.per_queue = Some(per);
        return Some(u);
    }
    for (k, n) in per {
        *scan.partial.entry(k).or_default() += n;
    }
    scan.slice = slice;
    scan.cursor = f.text("cursor").unwrap_or_else(|| "0".into());
    if scan.cursor == "0" {
        scan.last_pass = Some(std::mem::take(&mut scan.partial));
    }
    u.per_queue = scan.last_pass.clone();
    u.estimated = true;
    Some(u)
}

/// Messages first seen at one collection.
#[derive(Debug, Clone, PartialEq)]
struct Batch {
    /// When redline first saw them (ms).
    seen: f64,
    count: u64,
    /// They may be older than `seen` (there before redline looked, restored, or not followed).
    lower: bool,
}

/// One sub-queue's batches, oldest (next to be consumed) first.
#[derive(Debug, Default)]
struct Sub {
    batches: VecDeque<Batch>,
    marker: Option<Vec<u8>>,
}

/// Where the previous head is now (the script's `pos`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pos {
    /// At this index: that many messages were pushed since.
    At(u64),
    /// Consumed: every message now was pushed since.
    Gone,
    /// No previous head to look for.
    NoMarker,
    /// Not found within the comparison budget.
    Unknown,
}

impl Sub {
    fn total(&self) -> u64 {
        self.batches.iter().map(|b| b.count).sum()
    }

    /// Folds in one look: `len` messages now, the previous head at `pos`.
    fn update(&mut self, len: u64, pos: Pos, now: f64, first_look: bool) {
        let (new, followed) = match pos {
            Pos::At(p) => (p.min(len), true),
            Pos::Gone => (len, true),
            // An empty sub-queue leaves no marker; everything in it now is new.
            Pos::NoMarker if !first_look && self.batches.is_empty() => (len, true),
            Pos::NoMarker | Pos::Unknown => (len, false),
        };
        if !followed {
            // Cannot tell old from new: start over with what is there, as a lower bound.
            self.batches.clear();
            if len > 0 {
                self.batches.push_back(Batch { seen: now, count: len, lower: true });
            }
            return;
        }
        let existing = len - new;
        let mut have = self.total();
        // Consumed from the tail: the oldest batches shrink first.
        while have > existing {
            let Some(front) = self.batches.front_mut() else { break };
            let take = front.count.min(have - existing);
            front.count -= take;
            have -= take;
            if front.count == 0 {
                self.batches.pop_front();
            }
        }
        if existing > have {
            // Messages appeared at the tail: kombu restores unacknowledged messages there.
            self.batches.push_front(Batch { seen: now, count: existing - have, lower: true });
        }
        if new > 0 {
            self.batches.push_back(Batch { seen: now, count: new, lower: false });
        }
        while self.batches.len() > MAX_BATCHES {
            self.merge_closest();
        }
    }

    fn merge_closest(&mut self) {
        let Some(i) = (0..self.batches.len() - 1).min_by(|a, b| {
            let gap = |i: usize| self.batches[i + 1].seen - self.batches[i].seen;
            gap(*a).total_cmp(&gap(*b))
        }) else {
            return;
        };
        if let Some(older) = self.batches.remove(i) {
            if let Some(newer) = self.batches.get_mut(i) {
                newer.count += older.count;
                newer.lower = true;
            }
        }
    }
}

/// Per-queue memory between collections.
#[derive(Debug, Default)]
pub struct Memory {
    /// Sub-queue key -> its batches.
    subs: HashMap<String, Sub>,
    /// Separator learned from the queue's binding.
    sep: Option<String>,
}

fn keys(q: &QueueRef, s: &Settings, m: &Memory) -> Vec<String> {
    let sep = s.sep.as_deref().or(m.sep.as_deref()).unwrap_or(KOMBU_SEP);
    let base = format!("{}{}", q.prefix, q.name);
    let mut steps: Vec<i64> = s.steps.clone();
    if !steps.contains(&0) {
        steps.insert(0, 0);
    }
    steps.sort_unstable();
    steps.dedup();
    steps.iter().map(|st| if *st == 0 { base.clone() } else { format!("{base}{sep}{st}") }).collect()
}

/// The lists holding a queue's ready messages (the queue and its priority sub-queues), with
/// the configured separator or kombu's default: what discovery's backlog ranking adds up.
pub fn ready_keys(q: &QueueRef, s: &Settings) -> Vec<String> {
    keys(q, s, &Memory::default())
}

/// Adds the per-queue call.
pub fn add_commands(pipe: &mut redis::Pipeline, q: &QueueRef, st: &QueueState, s: &Settings) -> usize {
    let m = &st.celery;
    let mut k = keys(q, s, m);
    let mut args: Vec<Vec<u8>> =
        vec![LPOS_MAXLEN.to_string().into_bytes(), MARKER_CAP.to_string().into_bytes()];
    for key in &k {
        args.push(m.subs.get(key).and_then(|s| s.marker.clone()).unwrap_or_default());
    }
    k.push(format!("{}_kombu.binding.{}", q.prefix, q.name));
    QUEUE.call(pipe, &k, &args);
    1
}

/// Parses the per-queue reply; follows each sub-queue's batches in `st`.
pub fn read(
    replies: &[RedisResult<Value>],
    q: &QueueRef,
    st: &mut QueueState,
    s: &Settings,
    unacked: Option<&Unacked>,
) -> Result<Reading, QueueError> {
    let v = match replies.first() {
        Some(Ok(v)) => v,
        Some(Err(_)) => return Err(QueueError::ReadFailed),
        None => return Err(QueueError::BadReply),
    };
    let f = Fields::parse(v)?;
    let now = f.need("now_ms")?;
    let m = &mut st.celery;
    let k = keys(q, s, m);
    let (lens, pos, heads) = (
        f.list("len").ok_or(QueueError::BadReply)?,
        f.list("pos").ok_or(QueueError::BadReply)?,
        f.list("head").ok_or(QueueError::BadReply)?,
    );
    if lens.len() != k.len() || pos.len() != k.len() || heads.len() != k.len() {
        return Err(QueueError::BadReply);
    }
    let mut r = Reading { bad_data: f.num("errors").unwrap_or(0.0) as u64, ..Reading::default() };
    let mut waiting = 0.0;
    let (mut oldest, mut lower) = (None::<f64>, false);
    m.subs.retain(|key, _| k.contains(key));
    for (i, key) in k.iter().enumerate() {
        let Some(len) = int(lens.get(i)).filter(|l| *l >= 0.0) else { continue };
        waiting += len;
        let p = match int(pos.get(i)).map_or(-1, |x| x as i64) {
            x if x >= 0 => Pos::At(x as u64),
            -3 => Pos::Gone,
            -2 => Pos::NoMarker,
            _ => Pos::Unknown,
        };
        let first_look = !m.subs.contains_key(key);
        let sub = m.subs.entry(key.clone()).or_default();
        sub.update(len as u64, p, now, first_look);
        sub.marker = match heads.get(i) {
            Some(Value::BulkString(b)) if !b.is_empty() => Some(b.clone()),
            _ => None,
        };
        if let Some(front) = sub.batches.front() {
            oldest = Some(oldest.map_or(front.seen, |o: f64| o.min(front.seen)));
            lower |= front.lower;
        }
    }
    r.states.push(("waiting", waiting));
    if let Some(u) = unacked {
        if let Some(per) = &u.per_queue {
            r.states.push(("active", per.get(&q.name).copied().unwrap_or(0.0)));
            let estimated = if u.estimated { 1.0 } else { 0.0 };
            r.extra.push((
                &n::QUEUE_JOBS_ESTIMATED,
                vec![crate::metrics::label("state", "active")],
                estimated,
            ));
        }
    }
    r.oldest_ready_age = oldest.map_or(0.0, |o| ((now - o) / 1000.0).max(0.0));
    r.oldest_ready_ms = oldest;
    r.oldest_lower_bound = Some(lower);
    // Learn the separator from kombu's binding (used from the next collection on).
    if s.sep.is_none() {
        let learned = f
            .text("binding")
            .as_deref()
            .and_then(self_binding)
            .filter(|(name, _)| *name == q.name)
            .map(|(_, sep)| sep.to_string());
        if let Some(sep) = learned.filter(|l| l.as_str() != m.sep.as_deref().unwrap_or(KOMBU_SEP)) {
            // Other keys from now on: what was followed under the old ones no longer applies.
            m.sep = Some(sep);
            m.subs.clear();
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: f64 = 1000.0;

    #[test]
    fn bindings_name_the_queue_and_the_separator() {
        assert_eq!(binding_queue("reports\x06\x16\x06\x16reports", None).as_deref(), Some("reports"));
        assert_eq!(binding_queue("a:b::a:b", None).as_deref(), Some("a:b"));
        assert_eq!(binding_queue("a:b::a:b", Some(":")).as_deref(), Some("a:b"));
        assert_eq!(self_binding("mail::mail"), Some(("mail", ":")));
        // A routing key that differs from the queue: split with the separator in effect.
        assert_eq!(binding_queue("rk\x06\x16\x06\x16jobs", None).as_deref(), Some("jobs"));
        assert_eq!(binding_queue("rk:pat:jobs", Some(":")).as_deref(), Some("jobs"));
        assert_eq!(binding_queue("garbage", None), None);
    }

    #[test]
    fn a_burst_consumed_slowly_keeps_its_first_seen_time() {
        let mut s = Sub::default();
        s.update(0, Pos::NoMarker, 0.0, true);
        s.update(5, Pos::NoMarker, 1.0 * SEC, false);
        for (t, len) in [(5.5, 4), (10.0, 3), (14.5, 2)] {
            s.update(len, Pos::At(0), t * SEC, false);
            assert_eq!(s.batches.front().map(|b| (b.seen, b.lower)), Some((1.0 * SEC, false)), "at {t}");
        }
        assert_eq!(s.total(), 2);
    }

    #[test]
    fn new_pushes_and_consumption_move_the_oldest_batch() {
        let mut s = Sub::default();
        s.update(0, Pos::NoMarker, 0.0, true);
        s.update(3, Pos::NoMarker, 1.0 * SEC, false);
        s.update(5, Pos::At(2), 2.0 * SEC, false); // 2 more pushed
        assert_eq!(s.batches.len(), 2);
        s.update(3, Pos::At(1), 3.0 * SEC, false); // 1 pushed, 3 consumed: the first batch is gone
        let seen: Vec<(f64, u64)> = s.batches.iter().map(|b| (b.seen / SEC, b.count)).collect();
        assert_eq!(seen, vec![(2.0, 2), (3.0, 1)]);
        s.update(1, Pos::Gone, 4.0 * SEC, false); // all consumed, one new
        assert_eq!(s.batches.iter().map(|b| (b.seen / SEC, b.count)).collect::<Vec<_>>(), vec![(4.0, 1)]);
    }

    #[test]
    fn what_cannot_be_followed_is_a_lower_bound() {
        let mut s = Sub::default();
        s.update(4, Pos::NoMarker, 1.0 * SEC, true); // there before redline looked
        assert!(s.batches.front().is_some_and(|b| b.lower));
        s.update(6, Pos::At(0), 2.0 * SEC, false); // two restored at the tail
        assert_eq!(s.batches.front().map(|b| (b.count, b.lower)), Some((2, true)));
        s.update(9, Pos::Unknown, 3.0 * SEC, false);
        assert_eq!(s.batches.iter().map(|b| (b.count, b.lower)).collect::<Vec<_>>(), vec![(9, true)]);
    }

    #[test]
    fn batches_are_bounded() {
        let mut s = Sub::default();
        s.update(0, Pos::NoMarker, 0.0, true);
        for i in 1..=(MAX_BATCHES as u64 + 50) {
            s.update(i, Pos::At(1), i as f64 * SEC, false);
        }
        assert_eq!(s.batches.len(), MAX_BATCHES);
        assert_eq!(s.total(), MAX_BATCHES as u64 + 50);
    }

    #[test]
    fn unacked_slices_are_sized_by_bytes_and_by_measured_time() {
        // 20 entries of 3 KB in 100 us: the bytes bound (64 KiB) decides.
        assert_eq!(next_slice(Some(20.0), Some(60_000.0), Some(100.0)), Some(21));
        // The same in 1.6 ms: time decides, 250 us worth.
        assert_eq!(next_slice(Some(20.0), Some(60_000.0), Some(1600.0)), Some(3));
        // Never below the floor, never above the cap; nothing read: keep the last size.
        assert_eq!(next_slice(Some(20.0), Some(60_000.0), Some(50_000.0)), Some(UNACKED_SLICE_MIN));
        assert_eq!(next_slice(Some(5.0), Some(50.0), Some(1.0)), Some(UNACKED_SLICE));
        assert_eq!(next_slice(Some(0.0), None, None), None);
    }

    #[test]
    fn a_large_unacked_hash_is_counted_over_a_pass() {
        let reply = |rks: &[(&str, i64)], full: i64, cursor: &str| -> RedisResult<Value> {
            let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
            let per = rks.iter().flat_map(|(k, n)| [b(k), Value::Int(*n)]).collect();
            Ok(Value::Array(vec![
                b("total"),
                Value::Int(500),
                b("per_key"),
                Value::Array(per),
                b("full"),
                Value::Int(full),
                b("cursor"),
                b(cursor),
                b("errors"),
                Value::Int(0),
            ]))
        };
        let mut scan = UnackedScan::default();
        let u = read_global(Some(&reply(&[("a", 150)], 0, "17")), &mut scan).expect("reply");
        assert_eq!(u.per_queue, None, "nothing until a pass completes");
        let u = read_global(Some(&reply(&[("a", 100), ("b", 250)], 0, "0")), &mut scan).expect("reply");
        let per = u.per_queue.expect("a complete pass");
        assert_eq!((per["a"], per["b"], u.estimated), (250.0, 250.0, true));
        let u = read_global(Some(&reply(&[("a", 3)], 1, "0")), &mut scan).expect("reply");
        assert_eq!((u.per_queue.map(|p| p["a"]), u.estimated), (Some(3.0), false));
    }

    #[test]
    fn all_steps_unless_configured() {
        let q = QueueRef { system: System::Celery, prefix: String::new(), name: "q".into() };
        let s = Settings { sep: None, steps: ALL_STEPS.to_vec() };
        let k = keys(&q, &s, &Memory::default());
        assert_eq!(k.len(), 10);
        assert_eq!(k[0], "q");
        assert_eq!(k[9], "q\x06\x169");
        let s = Settings { sep: Some(":".into()), steps: vec![3, 6] };
        assert_eq!(keys(&q, &s, &Memory::default()), vec!["q", "q:3", "q:6"]);
    }
}
