//! RQ (Python `rq`) queues: the queue list plus its started/failed/finished/deferred/scheduled/
//! canceled registries, read by one `rq.lua` call per queue.
//!
//! Completed and failed jobs are counted exactly from the finished and failed registries,
//! whatever mix of `result_ttl`/`failure_ttl` the jobs use. Those registries are scored by expiry
//! time (end + ttl in whole seconds, `+inf` for `result_ttl=-1`, the ttl itself when a failure
//! ttl is negative), not by finish time, so no single score cursor finds the new entries: a
//! short ttl after a long one lands below the cursor, many jobs share a second, `+inf` freezes a
//! cursor. Instead each registry is read as a [`Band`]: counts per second from just below the
//! expiry frontier (now) to a window above it, plus the count above the window and below zero.
//! RQ only ever removes entries whose expiry has passed (its cleanup), so between two looks:
//! a count that grew above the frontier grew by exactly the jobs that finished; near the
//! frontier, per-second counts keep cleanup (which removes whole seconds up to now) apart from
//! new entries. Where that reasoning can fail, [`Uncertain`] says so (a metric per reason).
//!
//! Durations come from the job hashes of the jobs that finished, found where their result_ttl
//! line puts them (learned from jobs timed before, seeded with RQ's defaults) and from the jobs
//! seen running at the previous collection; jobs redline cannot find are counted, not timed.

use std::collections::HashMap;

use redis::{RedisResult, Value};

use super::reply::Fields;
use super::script::lua_script;
use super::{int, text, QueueError, QueueRef, QueueState, Reading};
use crate::metrics::label;
use crate::names as n;

lua_script!(SCRIPT, "rq.lua");

/// Jobs read from the head of the queue for the oldest-job search (usually 2 are enough).
const HEAD_WINDOW: usize = 32;
/// Started jobs read for their start time per collection; bounds the script.
const MAX_STARTED_READ: usize = 1000;
/// Allowance, in seconds, for workers' clocks disagreeing with Redis's.
const CLOCK_MARGIN: i64 = 3;
/// Narrowest count window above the frontier, seconds (tolerates gaps up to this minus the margin).
const MIN_WINDOW: i64 = 30;
/// Widest count window, seconds (bounds the per-second reads; the script starts over beyond it).
const MAX_WINDOW: i64 = 300;
/// result_ttl lines searched for finished jobs per registry (RQ's defaults included).
const MAX_LINES: usize = 6;
/// Ids remembered as already timed.
const MAX_TIMED: usize = 50_000;
/// RQ's default result_ttl (finished) and failure_ttl (failed), seconds.
const DEFAULT_LINES: [i64; 2] = [500, 31_536_000];
/// Job hashes read per queue and collection for durations, at most: each costs 4 commands,
/// and this keeps the script well under a millisecond. Beyond it durations are a sample.
const MAX_TIMED_READ: usize = 100;
/// Earliest plausible job time (2000-01-01), ms.
const EPOCH_2000_MS: f64 = 946_684_800_000.0;

/// Why a counter may have missed jobs in a collection (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Uncertain {
    /// Entries disappeared before their expiry (a job deleted, a failed job requeued, a job
    /// finishing twice); a job finishing in the same interval could have been hidden.
    Removed,
    /// Collections further apart than the count window: RQ's cleanup may have removed jobs
    /// that finished and expired in between.
    Gap,
    /// Jobs with a ttl shorter than the interval finished: RQ's cleanup can remove such jobs
    /// before redline sees them.
    ShortTtl,
    /// A job seen running left no trace: `result_ttl=0` deletes a finished job at once.
    NotKept,
}

impl Uncertain {
    const ALL: [Uncertain; 4] = [Uncertain::Removed, Uncertain::Gap, Uncertain::ShortTtl, Uncertain::NotKept];

    fn as_str(self) -> &'static str {
        match self {
            Uncertain::Removed => "removed",
            Uncertain::Gap => "gap",
            Uncertain::ShortTtl => "short_ttl",
            Uncertain::NotKept => "not_kept",
        }
    }
}

/// One registry's counts at the previous look.
#[derive(Debug, Clone, PartialEq)]
struct Band {
    /// The whole second (Redis clock) of that look.
    at: i64,
    /// First second counted per second (`at - CLOCK_MARGIN`).
    lo: i64,
    /// Entries per second from `lo`.
    per: Vec<i64>,
    /// Entries above the per-second range (`+inf` included).
    above: i64,
    /// Entries with a negative score (never removed by RQ's cleanup).
    neg: i64,
}

impl Band {
    fn hi(&self) -> i64 {
        self.lo + self.per.len() as i64 - 1
    }
}

/// One registry as the script saw it now.
#[derive(Debug, Clone, Default, PartialEq)]
struct Look {
    lo: i64,
    /// Entries per second from `lo`; empty when there are none in the whole range.
    per: Vec<i64>,
    /// Entries above the previous band's range (-1 on a first look).
    above_prev: i64,
    /// Entries above this look's range.
    above: i64,
    neg: i64,
    /// The script started over (gap too long, or the clock went back).
    reset: bool,
}

impl Look {
    fn at(&self, s: i64) -> i64 {
        usize::try_from(s - self.lo).ok().and_then(|i| self.per.get(i)).copied().unwrap_or(0)
    }
}

/// What changed in a registry between two looks.
#[derive(Debug, Default, Clone, PartialEq)]
struct Change {
    new: i64,
    flags: Vec<Uncertain>,
}

/// Counts the entries added between `prev` and `look` (taken at whole second `c`), and the
/// band to keep for the next look (`width` seconds above `c`).
fn compare(prev: Option<&Band>, look: &Look, c: i64, width: i64) -> (Change, Band) {
    let mut ch = Change::default();
    let next = Band {
        at: c,
        lo: c - CLOCK_MARGIN,
        per: (c - CLOCK_MARGIN..=c + width).map(|s| look.at(s)).collect(),
        above: look.above,
        neg: look.neg,
    };
    let Some(prev) = prev else { return (ch, next) };
    if look.reset || look.lo != prev.lo || look.above_prev < 0 {
        ch.flags.push(Uncertain::Gap);
        return (ch, next);
    }
    if c - prev.at > prev.hi() - prev.at - CLOCK_MARGIN {
        ch.flags.push(Uncertain::Gap);
    }
    let mut removed = false;
    let mut short = false;
    for (i, before) in prev.per.iter().enumerate() {
        let s = prev.lo + i as i64;
        let d = look.at(s) - before;
        if d > 0 {
            ch.new += d;
            // Landed where RQ's cleanup may already have removed others like it.
            short |= s <= c + CLOCK_MARGIN;
        } else if d < 0 && s > c + CLOCK_MARGIN {
            removed = true;
        }
    }
    for d in [look.above_prev - prev.above, look.neg - prev.neg] {
        if d > 0 {
            ch.new += d;
        } else if d < 0 {
            removed = true;
        }
    }
    if removed {
        ch.flags.push(Uncertain::Removed);
    }
    if short {
        ch.flags.push(Uncertain::ShortTtl);
    }
    (ch, next)
}

/// Where finished jobs with one ttl land: at end + ttl, so the newest are at the line's top.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    /// Seconds between a job's end and its score.
    ttl: i64,
    /// Last score read on this line, exactly as Redis wrote it.
    cursor: Option<String>,
    /// Collection number of the last job found on it.
    hit: u64,
}

/// One registry's memory: its band and the lines where finished jobs land.
#[derive(Debug, Default)]
struct Registry {
    band: Option<Band>,
    lines: Vec<Line>,
}

impl Registry {
    fn spec(&self, width: i64) -> String {
        match &self.band {
            Some(b) => format!("{} {} {width}", b.at, b.hi() - b.at),
            None => width.to_string(),
        }
    }

    /// "ttl from ..." for the script: each line read from its cursor (inclusive: jobs that
    /// finish later in the same second land there too), or from where jobs that ended since
    /// the previous collection (second `p`) start, whichever is later.
    fn lines(&mut self, default: i64, p: Option<i64>) -> String {
        if !self.lines.iter().any(|l| l.ttl == default) {
            self.lines.push(Line { ttl: default, cursor: None, hit: 0 });
        }
        let Some(p) = p else { return String::new() };
        // Most recently productive first: the shared read budget goes to them.
        self.lines.sort_by_key(|l| std::cmp::Reverse(l.hit));
        let mut out = Vec::new();
        for l in &self.lines {
            let start = p + l.ttl - CLOCK_MARGIN;
            let from = match &l.cursor {
                Some(s) if s.parse::<f64>().is_ok_and(|v| v >= start as f64) => s.clone(),
                _ => start.to_string(),
            };
            out.push(format!("{} {from}", l.ttl));
        }
        out.join(" ")
    }

    /// Moves each line's cursor to where the script's read stopped.
    fn reached(&mut self, reach: &[Value]) {
        for (l, r) in self.lines.iter_mut().zip(reach) {
            if let Some(score) = text(Some(r)).filter(|s| !s.is_empty()) {
                l.cursor = Some(score);
            }
        }
    }

    fn learn(&mut self, ttl: i64, seq: u64) {
        if let Some(l) = self.lines.iter_mut().find(|l| (l.ttl - ttl).abs() <= 1) {
            l.hit = seq;
            return;
        }
        if self.lines.len() >= MAX_LINES {
            if let Some(i) = self.lines.iter().enumerate().min_by_key(|(_, l)| l.hit).map(|(i, _)| i) {
                self.lines.swap_remove(i);
            }
        }
        self.lines.push(Line { ttl, cursor: None, hit: seq });
    }
}

/// RQ timestamps are ISO 8601 UTC (`2026-11-24T08:55:59.365604Z`, older versions without `Z`);
/// ms since the epoch, `None` for garbage or a time before 2000 or more than a day after `now`.
fn iso_ms(s: &str, now: f64) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0;
    (EPOCH_2000_MS..=now + 86_400_000.0).contains(&ms).then_some(ms)
}

/// Per-queue memory between collections.
#[derive(Debug, Default)]
pub struct Memory {
    finished: Registry,
    failed: Registry,
    /// Jobs running at the previous collection.
    running: Vec<String>,
    /// Jobs already timed: end (ms) and registry score.
    timed: HashMap<String, (f64, f64)>,
    /// Redis time of the previous collection (ms).
    last_now: Option<f64>,
    /// Seconds between the last two collections.
    last_gap: i64,
    seq: u64,
    /// Collections flagged, per (counter, reason).
    uncertain: HashMap<(&'static str, Uncertain), f64>,
}

impl Memory {
    fn width(&self) -> i64 {
        (self.last_gap * 3).clamp(MIN_WINDOW, MAX_WINDOW)
    }
}

/// Adds `SCRIPT LOAD` to the pipeline.
pub fn load_script(pipe: &mut redis::Pipeline) {
    SCRIPT.load(pipe);
}

/// Adds the one EVALSHA for `q` (RQ's prefix is `rq`); returns the number of commands.
pub fn add_commands(
    pipe: &mut redis::Pipeline,
    q: &QueueRef,
    st: &mut QueueState,
    max_samples: usize,
) -> usize {
    let p = &q.prefix;
    let name = &q.name;
    let keys: Vec<String> =
        ["queue", "wip", "failed", "finished", "deferred", "scheduled", "canceled", "workers"]
            .iter()
            .map(|k| format!("{p}:{k}:{name}"))
            .collect();
    let m = &mut st.rq;
    let width = m.width();
    let prev = m.last_now.map(|t| (t / 1000.0).floor() as i64);
    let mut args = vec![
        format!("{p}:job:"),
        HEAD_WINDOW.to_string(),
        MAX_STARTED_READ.to_string(),
        CLOCK_MARGIN.to_string(),
        max_samples.min(MAX_TIMED_READ).to_string(),
        m.finished.spec(width),
        m.failed.spec(width),
    ];
    let [fin_line, fail_line] = DEFAULT_LINES;
    args.push(m.finished.lines(fin_line, prev));
    args.push(m.failed.lines(fail_line, prev));
    // Timed jobs a window can still return: those at or above the lowest cursor.
    let floor = [&m.finished, &m.failed]
        .iter()
        .flat_map(|r| r.lines.iter().filter_map(|l| l.cursor.as_deref()?.parse::<f64>().ok()))
        .fold(f64::INFINITY, f64::min);
    let known: Vec<&str> =
        m.timed.iter().filter(|(_, (_, score))| *score >= floor).map(|(id, _)| id.as_str()).collect();
    args.push(known.join(" "));
    args.extend(m.running.iter().cloned());
    SCRIPT.call(pipe, &keys, &args);
    1
}

/// A time field in ms, `None` when the script found none (-1).
fn ms(f: &Fields, name: &str) -> Option<f64> {
    f.num(name).filter(|v| *v >= 0.0)
}

fn look(f: &Fields, reg: &str) -> Option<Look> {
    let get = |k: &str| f.num(&format!("{reg}_{k}")).map(|v| v as i64);
    Some(Look {
        lo: get("lo")?,
        per: f
            .list(&format!("{reg}_per"))?
            .iter()
            .map(|v| int(Some(v)).map_or(0, |x| x.max(0.0) as i64))
            .collect(),
        above_prev: get("above_prev")?,
        above: get("above")?,
        neg: get("neg")?,
        reset: get("reset")? != 0,
    })
}

/// Parses the script's reply and advances the queue's memory.
pub fn read(replies: &[RedisResult<Value>], st: &mut QueueState) -> Result<Reading, QueueError> {
    let v = match replies.first() {
        Some(Ok(v)) => v,
        Some(Err(_)) => return Err(QueueError::ReadFailed),
        None => return Err(QueueError::BadReply),
    };
    let f = Fields::parse(v)?;
    let now = f.need("now_ms")?;
    let mut r = Reading { tracks_finished: true, retries_unknown: true, ..Reading::default() };
    let mut bad = f.num("errors").unwrap_or(0.0) as u64;
    for state in ["waiting", "active", "failed", "completed", "deferred", "delayed", "canceled"] {
        match f.num(state) {
            Some(v) if v >= 0.0 => r.states.push((state, v)),
            _ => {}
        }
    }
    r.workers = f.num("workers").filter(|w| *w >= 0.0);
    let oldest = [ms(&f, "oldest_ms"), ms(&f, "due_ms")].into_iter().flatten().fold(f64::INFINITY, f64::min);
    r.oldest_ready_age = if oldest.is_finite() { ((now - oldest) / 1000.0).max(0.0) } else { 0.0 };
    r.oldest_ready_ms = oldest.is_finite().then_some(oldest);
    let lower = f.num("oldest_lower").unwrap_or(0.0);
    r.oldest_lower_bound = Some(lower > 0.0);
    if let Some(started) = ms(&f, "started_ms") {
        r.running_since(started);
    }
    r.stalled(f.num("abandoned").unwrap_or(0.0));

    let m = &mut st.rq;
    m.seq += 1;
    let c = (now / 1000.0).floor() as i64;
    let width = m.width();
    let prev_now = m.last_now;
    let mut flagged: Vec<(&'static str, Uncertain)> = Vec::new();
    for (reg, counter) in [("fin", "completed"), ("fail", "failed")] {
        let registry = if reg == "fin" { &mut m.finished } else { &mut m.failed };
        let Some(lk) = look(&f, reg) else { continue };
        let (change, next) = compare(registry.band.as_ref(), &lk, c, width);
        registry.band = Some(next);
        if reg == "fin" {
            r.completed_new = change.new as f64;
        } else {
            r.failed_new = change.new as f64;
        }
        flagged.extend(change.flags.iter().map(|u| (counter, *u)));
        registry.reached(f.list(&format!("{reg}_reach")).unwrap_or(&[]));
        for s in f.list(&format!("{reg}_samples")).unwrap_or(&[]).chunks_exact(5) {
            let id = text(s.first()).unwrap_or_default();
            let t: Vec<Option<f64>> =
                s[2..].iter().map(|v| text(Some(v)).and_then(|x| iso_ms(&x, now))).collect();
            let (Some(enq), Some(start), Some(end)) = (t[0], t[1], t[2]) else {
                bad += 1;
                continue;
            };
            // Only jobs that ended since the previous collection, each once.
            let fresh = prev_now.is_some_and(|p| end >= p - (CLOCK_MARGIN as f64 + 1.0) * 1000.0);
            if !fresh || m.timed.contains_key(&id) {
                continue;
            }
            let score = text(s.get(1)).and_then(|x| x.parse::<f64>().ok()).unwrap_or(f64::NAN);
            if score.is_finite() {
                registry.learn(score.floor() as i64 - (end / 1000.0).floor() as i64, m.seq);
            }
            m.timed.insert(id, (end, score));
            r.durations.push(((start - enq) / 1000.0, (end - start) / 1000.0));
        }
    }
    if f.num("gone").unwrap_or(0.0) > 0.0 {
        flagged.push(("completed", Uncertain::NotKept));
    }
    for k in flagged {
        *m.uncertain.entry(k).or_default() += 1.0;
    }
    // Only reasons that happened: 8 series of 0 on every healthy queue would break the budget.
    for counter in ["completed", "failed"] {
        for u in Uncertain::ALL {
            let Some(v) = m.uncertain.get(&(counter, u)).copied() else { continue };
            r.extra.push((
                &n::QUEUE_COUNT_UNCERTAIN,
                vec![label("counter", counter), label("reason", u.as_str())],
                v,
            ));
        }
    }
    // A job can only be a candidate again while its end is within the freshness window.
    let horizon = now - (CLOCK_MARGIN as f64 + 1.0) * 1000.0;
    m.timed.retain(|_, (end, _)| *end >= horizon);
    if m.timed.len() > MAX_TIMED {
        m.timed.clear();
    }
    m.running = super::texts(f.get("running"));
    if let Some(p) = prev_now {
        m.last_gap = c - (p / 1000.0).floor() as i64;
    }
    m.last_now = Some(now);
    r.bad_data = bad;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(c: i64, per: Vec<i64>, above: i64) -> Band {
        let lk = Look { lo: c - CLOCK_MARGIN, per, above_prev: -1, above, neg: 0, reset: false };
        let (ch, b) = compare(None, &lk, c, MIN_WINDOW);
        assert_eq!(ch, Change::default());
        b
    }

    #[test]
    fn many_jobs_in_one_second_and_infinite_ttl_are_all_counted() {
        let c = 1_000_000;
        let b = first(c, vec![], 10);
        // 40 jobs with ttl 500 finished within the same second (all above the window), 3 with -1.
        let lk = Look { lo: b.lo, per: vec![], above_prev: 53, above: 53, neg: 0, reset: false };
        let (ch, _) = compare(Some(&b), &lk, c + 1, MIN_WINDOW);
        assert_eq!(ch.new, 43);
        assert!(ch.flags.is_empty(), "{:?}", ch.flags);
    }

    #[test]
    fn short_ttl_after_long_lands_inside_the_window_and_counts() {
        let c = 1_000_000;
        let b = first(c, vec![], 5);
        // A job with result_ttl=10 finished at c+1: score c+11, inside the per-second window.
        let mut per = vec![0; (MIN_WINDOW + 2 * CLOCK_MARGIN + 2) as usize];
        per[(c + 11 - b.lo) as usize] = 2;
        let lk = Look { lo: b.lo, per, above_prev: 5, above: 5, neg: 0, reset: false };
        let (ch, next) = compare(Some(&b), &lk, c + 2, MIN_WINDOW);
        assert_eq!(ch.new, 2);
        assert!(ch.flags.is_empty());
        assert_eq!(next.per[(c + 11 - next.lo) as usize], 2);
    }

    #[test]
    fn cleanup_near_now_is_not_a_removal_but_a_deletion_above_is() {
        let c = 1_000_000;
        let mut per = vec![0; (MIN_WINDOW + CLOCK_MARGIN + 1) as usize];
        per[(c - 1 - (c - CLOCK_MARGIN)) as usize] = 4; // expiring now: RQ's cleanup takes them
        let b = first(c, per, 20);
        let lk = Look { lo: b.lo, per: vec![], above_prev: 20, above: 20, neg: 0, reset: false };
        let (ch, _) = compare(Some(&b), &lk, c + 1, MIN_WINDOW);
        assert_eq!(ch, Change::default(), "cleanup of expired entries is not a finish or a removal");
        // A failed job requeued (gone from far above the frontier) while another failed.
        let lk = Look { lo: b.lo, per: vec![], above_prev: 20, above: 20, neg: 0, reset: false };
        let b2 = Band { above: 21, ..b.clone() };
        let (ch, _) = compare(Some(&b2), &lk, c + 1, MIN_WINDOW);
        assert_eq!(ch.new, 0);
        assert_eq!(ch.flags, vec![Uncertain::Removed]);
    }

    #[test]
    fn a_long_gap_or_reset_is_flagged() {
        let c = 1_000_000;
        let b = first(c, vec![], 0);
        let lk = Look { lo: b.lo, per: vec![], above_prev: 2, above: 2, neg: 0, reset: false };
        let (ch, _) = compare(Some(&b), &lk, c + MIN_WINDOW, MIN_WINDOW);
        assert_eq!(ch.new, 2);
        assert_eq!(ch.flags, vec![Uncertain::Gap]);
        let lk = Look { reset: true, ..lk };
        let (ch, _) = compare(Some(&b), &lk, c + 900, MIN_WINDOW);
        assert_eq!((ch.new, ch.flags), (0, vec![Uncertain::Gap]));
    }

    #[test]
    fn lines_are_learned_and_capped() {
        let mut r = Registry::default();
        assert_eq!(r.lines(500, None), "", "nothing to read on a first look");
        assert_eq!(r.lines(500, Some(1000)), format!("500 {}", 1000 + 500 - CLOCK_MARGIN));
        r.learn(60, 5);
        r.learn(61, 6); // the same line, one second of rounding apart
        assert_eq!(r.lines.len(), 2);
        assert!(r.lines(500, Some(1000)).starts_with("60 "));
        for t in 100..110 {
            r.learn(t * 10, t as u64 + 10);
        }
        assert_eq!(r.lines.len(), MAX_LINES);
    }

    #[test]
    fn a_line_reads_on_from_its_cursor_but_never_from_far_behind() {
        let mut r = Registry::default();
        r.lines(500, Some(1000));
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        r.reached(&[bulk("1499")]);
        assert_eq!(r.lines(500, Some(1000)), "500 1499");
        // Fallen behind (the line moved on more than the margin): jump to the frontier.
        assert_eq!(r.lines(500, Some(1100)), format!("500 {}", 1100 + 500 - CLOCK_MARGIN));
    }

    #[test]
    fn iso_timestamps_with_and_without_zone_and_absurd_ones() {
        let now = 1_795_510_600_000.0;
        let a = iso_ms("2026-11-24T08:55:59.365604Z", now).expect("with Z");
        let b = iso_ms("2026-11-24T08:55:59.365604", now).expect("without Z");
        assert_eq!(a, b);
        assert!((a - 1_795_510_559_365.604).abs() < 1.0, "{a}");
        assert_eq!(iso_ms("yesterday", now), None);
        assert_eq!(iso_ms("1970-01-01T00:00:01Z", now), None);
        assert_eq!(iso_ms("2099-01-01T00:00:00Z", now), None);
    }
}
