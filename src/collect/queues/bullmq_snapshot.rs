//! One BullMQ queue read with plain pipelined commands, in rounds, instead of one script.
//!
//! A script call per queue cost Redis ~2.5x the CPU of the same reads sent as plain commands
//! (Lua call overhead, argument and reply conversion): at 10,000 queues that was the gap between
//! redline and the floor the benchmark measures. So a queue is read in up to three rounds of the
//! collector's windowed pipeline:
//!
//! 1. sizes, the pause flag, `TIME`, the right ends of `wait` and `paused`, the head of
//!    `prioritized` and `delayed`, the `active` ids and `XINFO STREAM` of the events stream (in
//!    one `MULTI` with its `XRANGE` when it has entries to read, so the stream numbers describe
//!    exactly the entries read);
//! 2. the hashes of the few jobs round 1 named (the oldest ready candidates, the longest-running
//!    active job, finished jobs to time), the lock keys of the active jobs, and whether a second
//!    priority band exists;
//! 3. only for a queue round 2 could not settle (a LIFO run longer than the plain read, custom
//!    job ids, several priority bands, a job hash gone or garbage): `bullmq.lua`, which walks
//!    the lists and bands atomically as before.
//!
//! The result is the same named fields the scripts return, so [`super::bullmq::read`] reads a
//! BullMQ queue the way it reads a Bull one.

use redis::{Cmd, RedisResult, Value};

use super::bullmq::{plausible, MAX_BANDS, MAX_LOCK_CHECKS, MAX_WALK};
use super::{int, list, text, texts, QueueError};

/// Jobs read from the right end of `wait` and `paused` in round 1. A FIFO queue's oldest job is
/// the rightmost, and the id to its left shows the walk is over; longer LIFO runs go to the script.
const PLAIN_WALK: usize = 4;
/// A priority band: BullMQ scores prioritized jobs priority * 2^32 + a counter.
const BAND: f64 = 4_294_967_296.0;

/// The states in the order round 1 reads their sizes (`LLEN` for lists, `ZCARD` for sets).
const SIZES: [(&str, &str, &str); 8] = [
    ("waiting", "wait", "LLEN"),
    ("active", "active", "LLEN"),
    ("paused", "paused", "LLEN"),
    ("delayed", "delayed", "ZCARD"),
    ("prioritized", "prioritized", "ZCARD"),
    ("waiting-children", "waiting-children", "ZCARD"),
    ("completed", "completed", "ZCARD"),
    ("failed", "failed", "ZCARD"),
];
const WAIT: usize = 0;
const ACTIVE: usize = 1;
const PAUSED: usize = 2;
const DELAYED: usize = 3;
const PRIORITIZED: usize = 4;

/// Round 1's commands after `TIME` and the sizes.
const R1_META: usize = 1 + SIZES.len();
const R1_WAIT_IDS: usize = R1_META + 1;
const R1_PAUSED_IDS: usize = R1_WAIT_IDS + 1;
const R1_PRIO_HEAD: usize = R1_PAUSED_IDS + 1;
const R1_DELAYED_HEAD: usize = R1_PRIO_HEAD + 1;
const R1_ACTIVE_IDS: usize = R1_DELAYED_HEAD + 1;
const R1_STREAM: usize = R1_ACTIVE_IDS + 1;

/// What a round-2 command asks.
#[derive(Debug, Clone, PartialEq)]
enum Ask {
    /// When a candidate for the oldest ready job became ready.
    Ready(String),
    /// Whether a priority band after the first holds a job.
    MoreBands,
    /// A `MULTI`/`QUEUED` reply of the active jobs' check.
    Queued,
    /// The `EXEC` of the active jobs' check: the active list again, how many of round 1's active
    /// jobs hold their lock, and `processedOn` of these (the rightmost of round 1's ids).
    Active(Vec<String>),
    /// A finished job's times (the stream did not show its start).
    Looked(String),
}

/// Where a queue's read stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// Round 1 sent.
    First,
    /// Round 2 sent.
    Second,
    /// The walk script sent.
    Walk,
    /// Nothing more to send.
    Done,
}

/// A reply as the read needs it.
enum Got<'a> {
    Value(&'a Value),
    WrongType,
    NoKey,
    Failed,
}

fn got(r: Option<&RedisResult<Value>>) -> Got<'_> {
    match r {
        Some(Ok(Value::ServerError(e))) => server_error(Some(e.code()), e.details()),
        Some(Ok(v)) => Got::Value(v),
        Some(Err(e)) => server_error(e.code(), e.detail()),
        None => Got::Failed,
    }
}

/// A wrong type is bad data, `XINFO`'s "no such key" a stream not made yet, the rest a failed read.
fn server_error(code: Option<&str>, detail: Option<&str>) -> Got<'static> {
    match code {
        Some("WRONGTYPE") => Got::WrongType,
        _ if detail.is_some_and(|d| d.contains("no such key")) => Got::NoKey,
        _ => Got::Failed,
    }
}

/// A finite number.
fn finite(v: Option<&Value>) -> Option<f64> {
    int(v).filter(|x| x.is_finite())
}

/// One queue's read across rounds.
#[derive(Debug)]
pub struct Snapshot {
    /// `<prefix>:<name>:`, the front of every key of the queue.
    head: String,
    /// The events stream's read (first id, count) when it has entries to read: its `XRANGE`
    /// shares a `MULTI` with its `XINFO` in round 1.
    xrange: Option<(String, usize)>,
    /// Finished jobs whose hash round 2 reads.
    lookups: Vec<String>,
    stage: Stage,
    failed: Option<QueueError>,
    now: f64,
    sizes: [f64; 8],
    paused: bool,
    errors: u64,
    /// Oldest ready time from `wait`, `paused` and `prioritized` (plain or the script's).
    oldest_listed: Option<f64>,
    /// The jobs behind it and their ready times from their hashes: the events stream may know
    /// better (a promoted delayed job's hash says delay 0).
    ready_found: Vec<(String, f64)>,
    /// Oldest due delayed job (round 1 alone settles it).
    oldest_delayed: Option<f64>,
    lower_bound: bool,
    /// Round 2 cannot settle the oldest ready job: the script walks.
    walk: bool,
    /// Round 2 cannot time the longest-running active job: the script reads the active jobs.
    walk_active: bool,
    candidates: Vec<String>,
    /// The score from which a second priority band would start.
    next_band: Option<String>,
    active_ids: Vec<String>,
    oldest_active: Option<f64>,
    stalled: f64,
    looked: Vec<Value>,
    stream: Option<Value>,
    info: Vec<(&'static str, Value)>,
    asks: Vec<Ask>,
}

impl Snapshot {
    /// A read of the queue whose keys start with `head` (`bull:payments:`); `xrange` the events
    /// stream's read (first id, count) when it has entries to read, `lookups` the finished jobs
    /// to time from their hash.
    pub fn new(head: String, xrange: Option<(String, usize)>, lookups: Vec<String>) -> Self {
        Self {
            head,
            xrange,
            lookups,
            stage: Stage::First,
            failed: None,
            now: 0.0,
            sizes: [0.0; 8],
            paused: false,
            errors: 0,
            oldest_listed: None,
            ready_found: Vec::new(),
            oldest_delayed: None,
            lower_bound: false,
            walk: false,
            walk_active: false,
            candidates: Vec::new(),
            next_band: None,
            active_ids: Vec::new(),
            oldest_active: None,
            stalled: 0.0,
            looked: Vec::new(),
            stream: None,
            info: Vec::new(),
            asks: Vec::new(),
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.head)
    }

    /// Adds round 1 to `pipe`; returns the number of commands.
    pub fn first_round(&self, pipe: &mut redis::Pipeline) -> usize {
        pipe.cmd("TIME");
        for (_, suffix, cmd) in SIZES {
            pipe.cmd(cmd).arg(self.key(suffix));
        }
        pipe.cmd("HEXISTS").arg(self.key("meta")).arg("paused");
        let walk = -(PLAIN_WALK as i64);
        pipe.cmd("LRANGE").arg(self.key("wait")).arg(walk).arg(-1);
        pipe.cmd("LRANGE").arg(self.key("paused")).arg(walk).arg(-1);
        pipe.cmd("ZRANGE").arg(self.key("prioritized")).arg(0).arg(0).arg("WITHSCORES");
        pipe.cmd("ZRANGE").arg(self.key("delayed")).arg(0).arg(0).arg("WITHSCORES");
        pipe.cmd("LRANGE").arg(self.key("active")).arg(-(MAX_LOCK_CHECKS as i64)).arg(-1);
        let events = self.key("events");
        match &self.xrange {
            Some((from, count)) => {
                pipe.cmd("MULTI");
                pipe.cmd("XRANGE").arg(&events).arg(from).arg("+").arg("COUNT").arg(count);
                pipe.cmd("XINFO").arg("STREAM").arg(&events);
                pipe.cmd("EXEC");
                R1_STREAM + 4
            }
            None => {
                pipe.cmd("XINFO").arg("STREAM").arg(&events);
                R1_STREAM + 1
            }
        }
    }

    /// Reads the replies of the round sent last; returns the next round's commands (none: done).
    pub fn next(&mut self, replies: &[RedisResult<Value>]) -> Vec<Cmd> {
        let next = match self.stage {
            Stage::First => self.after_first(replies),
            Stage::Second => self.after_second(replies),
            Stage::Walk => {
                self.after_walk(replies);
                Vec::new()
            }
            Stage::Done => Vec::new(),
        };
        if self.failed.is_some() {
            self.stage = Stage::Done;
            return Vec::new();
        }
        if next.is_empty() {
            self.stage = Stage::Done;
        }
        next
    }

    /// A later round's window failed: the queue is not read this time.
    pub fn fail(&mut self) {
        self.failed = Some(QueueError::ReadFailed);
        self.stage = Stage::Done;
    }

    fn after_first(&mut self, r: &[RedisResult<Value>]) -> Vec<Cmd> {
        let expected = R1_STREAM + if self.xrange.is_some() { 4 } else { 1 };
        if r.len() != expected {
            self.failed = Some(QueueError::BadReply);
            return Vec::new();
        }
        match got(r.first()) {
            Got::Value(Value::Array(t)) if t.len() == 2 => match (int(t.first()), int(t.get(1))) {
                (Some(s), Some(us)) => self.now = s * 1000.0 + (us / 1000.0).floor(),
                _ => self.failed = Some(QueueError::BadReply),
            },
            _ => self.failed = Some(QueueError::ReadFailed),
        }
        for i in 0..SIZES.len() {
            self.sizes[i] = match got(r.get(1 + i)) {
                Got::Value(v) => int(Some(v)).unwrap_or(-1.0),
                Got::WrongType => {
                    self.errors += 1;
                    -1.0
                }
                Got::NoKey | Got::Failed => {
                    self.failed = Some(QueueError::ReadFailed);
                    -1.0
                }
            };
        }
        match got(r.get(R1_META)) {
            Got::Value(v) => self.paused = int(Some(v)) == Some(1.0),
            Got::WrongType => self.errors += 1,
            _ => self.failed = Some(QueueError::ReadFailed),
        }
        if self.failed.is_some() {
            return Vec::new();
        }
        self.plan_walk(r.get(R1_WAIT_IDS), self.sizes[WAIT]);
        self.plan_walk(r.get(R1_PAUSED_IDS), self.sizes[PAUSED]);
        self.plan_bands(r.get(R1_PRIO_HEAD));
        self.due_delayed(r.get(R1_DELAYED_HEAD));
        if self.sizes[ACTIVE] > 0.0 {
            if let Got::Value(v) = got(r.get(R1_ACTIVE_IDS)) {
                self.active_ids = texts(Some(v));
            }
        }
        self.read_stream(&r[R1_STREAM..]);
        if self.failed.is_some() {
            return Vec::new();
        }
        self.second_round()
    }

    /// The run of jobs `list_oldest` (jobs.lua) would read from the right of a list of `len`
    /// jobs: ids falling from the right until one is newer than the one before it. Candidates for
    /// round 2 when the run ends inside what round 1 read; otherwise the script walks.
    fn plan_walk(&mut self, ids: Option<&RedisResult<Value>>, len: f64) {
        if len <= 0.0 {
            return; // empty, missing, or another type (counted with the size)
        }
        let Got::Value(v) = got(ids) else {
            self.walk = true;
            return;
        };
        let ids = texts(Some(v));
        let mut run = Vec::new();
        let mut prev: Option<u64> = None;
        for id in ids.iter().rev() {
            // Custom ids ("0900" is one: the library writes its counter without leading zeros):
            // only their times order them, which the script compares.
            let Some(n) = id.parse::<u64>().ok().filter(|n| n.to_string() == *id) else {
                self.walk = true;
                return;
            };
            if prev.is_some_and(|p| n > p) {
                self.candidates.extend(run);
                return;
            }
            run.push(id.clone());
            prev = Some(n);
        }
        if (ids.len() as f64) < len {
            self.walk = true; // the run goes on past what round 1 read
        } else {
            self.candidates.extend(run);
        }
    }

    /// The first priority band's head job; round 2 checks that no second band exists.
    fn plan_bands(&mut self, head: Option<&RedisResult<Value>>) {
        if self.sizes[PRIORITIZED] <= 0.0 {
            return;
        }
        let Got::Value(v) = got(head) else {
            self.walk = true;
            return;
        };
        let pair = list(Some(v)).unwrap_or(&[]);
        match (text(pair.first()), finite(pair.get(1))) {
            (Some(id), Some(score)) => {
                self.candidates.push(id);
                self.next_band = Some(format!("{:.0}", ((score / BAND).floor() + 1.0) * BAND));
            }
            _ => self.walk = true,
        }
    }

    /// The earliest delayed job, if its time has come (scores: due_ms * 0x1000 + a counter;
    /// older BullMQ: due_ms).
    fn due_delayed(&mut self, head: Option<&RedisResult<Value>>) {
        if self.sizes[DELAYED] <= 0.0 {
            return;
        }
        let Got::Value(v) = got(head) else { return };
        let Some(score) = finite(list(Some(v)).and_then(|p| p.get(1))) else { return };
        let due = if score > 1e14 { (score / 4096.0).floor() } else { score };
        if due <= self.now {
            if plausible(due, self.now) {
                self.oldest_delayed = Some(due);
            } else {
                self.errors += 1;
            }
        }
    }

    /// The events stream: `XINFO STREAM` alone, or `MULTI`, `XRANGE`, `XINFO`, `EXEC`.
    fn read_stream(&mut self, r: &[RedisResult<Value>]) {
        let info = if self.xrange.is_some() {
            match got(r.get(3)) {
                Got::Value(Value::Array(a)) if a.len() == 2 => {
                    self.stream = Some(a[0].clone());
                    match &a[1] {
                        Value::ServerError(e) => server_error(Some(e.code()), e.details()),
                        v => Got::Value(v),
                    }
                }
                Got::Value(_) => Got::Failed,
                other => other,
            }
        } else {
            got(r.first())
        };
        match info {
            Got::Value(v) => {
                let v = v.clone();
                self.stream_info(&v);
            }
            Got::WrongType => {
                self.errors += 1;
                self.info.push(("ev_type", bulk("other")));
            }
            Got::NoKey => self.info.push(("ev_type", bulk("none"))),
            Got::Failed => self.failed = Some(QueueError::ReadFailed),
        }
    }

    fn stream_info(&mut self, v: &Value) {
        self.info.push(("ev_type", bulk("stream")));
        let mut field = |k: Option<String>, v: &Value| match k.as_deref() {
            Some("length") => self.info.push(("ev_len", v.clone())),
            Some("entries-added") => self.info.push(("ev_added", v.clone())),
            Some("last-generated-id") => self.info.push(("ev_last", v.clone())),
            Some("first-entry") => {
                if let Some(id) = list(Some(v)).and_then(|e| e.first()) {
                    self.info.push(("ev_first", id.clone()));
                }
            }
            _ => {}
        };
        match v {
            Value::Array(a) => a.chunks_exact(2).for_each(|p| field(text(p.first()), &p[1])),
            Value::Map(m) => m.iter().for_each(|(k, v)| field(text(Some(k)), v)),
            _ => {}
        }
    }

    fn second_round(&mut self) -> Vec<Cmd> {
        let mut cmds = Vec::new();
        self.asks.clear();
        if !self.walk {
            for id in &self.candidates {
                let mut c = redis::cmd("HMGET");
                c.arg(self.key(id)).arg("timestamp").arg("delay").arg("processedOn");
                cmds.push(c);
                self.asks.push(Ask::Ready(id.clone()));
            }
            if let Some(low) = &self.next_band {
                let mut c = redis::cmd("ZRANGEBYSCORE");
                c.arg(self.key("prioritized")).arg(low).arg("+inf").arg("LIMIT").arg(0).arg(1);
                cmds.push(c);
                self.asks.push(Ask::MoreBands);
            }
        }
        if !self.active_ids.is_empty() {
            // Jobs finish between rounds, and a finished job has no lock: the active list is read
            // again in the same MULTI as the locks, and only jobs still active are counted. The
            // longest-running job is the rightmost still active; a few candidates are read in
            // case the rightmost of round 1 has finished since.
            let probes: Vec<String> = self.active_ids.iter().rev().take(PLAIN_WALK).cloned().collect();
            cmds.push(redis::cmd("MULTI"));
            let mut c = redis::cmd("LRANGE");
            c.arg(self.key("active")).arg(-(MAX_LOCK_CHECKS as i64)).arg(-1);
            cmds.push(c);
            let mut c = redis::cmd("EXISTS");
            for id in &self.active_ids {
                c.arg(self.key(&format!("{id}:lock")));
            }
            cmds.push(c);
            for id in &probes {
                cmds.push(redis::cmd("HMGET").arg(self.key(id)).arg("processedOn").to_owned());
            }
            self.asks.extend(std::iter::repeat_n(Ask::Queued, 3 + probes.len()));
            cmds.push(redis::cmd("EXEC"));
            self.asks.push(Ask::Active(probes));
        }
        for id in std::mem::take(&mut self.lookups) {
            let mut c = redis::cmd("HMGET");
            c.arg(self.key(&id)).arg("timestamp").arg("delay").arg("processedOn").arg("finishedOn");
            cmds.push(c);
            self.asks.push(Ask::Looked(id));
        }
        if cmds.is_empty() {
            return self.walk_round();
        }
        self.stage = Stage::Second;
        cmds
    }

    fn after_second(&mut self, r: &[RedisResult<Value>]) -> Vec<Cmd> {
        if r.len() != self.asks.len() {
            self.failed = Some(QueueError::BadReply);
            return Vec::new();
        }
        let now = self.now;
        for (ask, reply) in std::mem::take(&mut self.asks).into_iter().zip(r) {
            let g = got(Some(reply));
            match ask {
                Ask::Ready(id) => {
                    // A hash gone (the job moved on since round 1, or a dangling id), another
                    // type or a garbage time: the script decides, atomically.
                    let fields = match &g {
                        Got::Value(v) => list(Some(v)).unwrap_or(&[]),
                        _ => &[],
                    };
                    // Added at `timestamp` + `delay`, or back after an attempt that started at
                    // `processedOn` (a retried job keeps the timestamp it was added with).
                    let ready = finite(fields.first()).map(|ts| {
                        (ts + finite(fields.get(1)).unwrap_or(0.0)).max(finite(fields.get(2)).unwrap_or(0.0))
                    });
                    match ready.filter(|t| plausible(*t, now)) {
                        Some(t) => {
                            self.oldest_listed = Some(self.oldest_listed.map_or(t, |o| o.min(t)));
                            self.ready_found.push((id, t));
                        }
                        None => self.walk = true,
                    }
                }
                Ask::MoreBands => match g {
                    Got::Value(v) if list(Some(v)).is_some_and(|l| l.is_empty()) => {}
                    _ => self.walk = true,
                },
                Ask::Queued => {
                    if !matches!(g, Got::Value(_)) {
                        self.failed = Some(QueueError::ReadFailed);
                    }
                }
                Ask::Active(probes) => match g {
                    Got::Value(Value::Array(a)) if a.len() == 2 + probes.len() => {
                        self.read_active(a, &probes)
                    }
                    _ => self.failed = Some(QueueError::ReadFailed),
                },
                Ask::Looked(id) => match g {
                    Got::Value(Value::Array(f)) if matches!(f.first(), Some(Value::BulkString(_))) => {
                        self.looked.push(bulk(&id));
                        self.looked
                            .extend(f.iter().take(4).map(|x| text(Some(x)).map_or(bulk(""), |s| bulk(&s))));
                    }
                    Got::Value(_) => {}
                    _ => self.errors += 1,
                },
            }
        }
        if self.failed.is_some() {
            return Vec::new();
        }
        self.walk_round()
    }

    /// The active jobs' check of round 2 (`EXEC` reply: the active ids now, the locks held by
    /// round 1's active jobs, `processedOn` of `probes`).
    fn read_active(&mut self, a: &[Value], probes: &[String]) {
        if list(a.first()).is_none() {
            self.walk_active = true; // the key changed type since round 1
            return;
        }
        let now_ids = texts(a.first());
        let before: std::collections::HashSet<&str> = self.active_ids.iter().map(String::as_str).collect();
        let still = now_ids.iter().filter(|id| before.contains(id.as_str())).count();
        // The count, the stalled jobs and the longest-running one from one instant (a list
        // longer than the read keeps round 1's count).
        if now_ids.len() < MAX_LOCK_CHECKS {
            self.sizes[ACTIVE] = now_ids.len() as f64;
        }
        // A job that finished between rounds lost its lock and left the list: only jobs still
        // active and without a lock are stalled.
        self.stalled = (still as f64 - int(a.get(1)).unwrap_or(0.0)).max(0.0);
        let Some(last) = now_ids.last() else { return };
        let Some(i) = probes.iter().position(|p| p == last) else {
            self.walk_active = true; // every candidate finished: read the active jobs atomically
            return;
        };
        match a.get(2 + i) {
            Some(Value::Array(f)) => match finite(f.first()) {
                Some(t) if plausible(t, self.now) => self.oldest_active = Some(t),
                _ if text(f.first()).is_some() => self.errors += 1,
                _ => {}
            },
            _ => self.errors += 1,
        }
    }

    /// The script, for what the plain reads could not settle: the oldest ready job, the active
    /// jobs, or both.
    fn walk_round(&mut self) -> Vec<Cmd> {
        if !self.walk && !self.walk_active {
            return Vec::new();
        }
        self.stage = Stage::Walk;
        let keys = [self.key("wait"), self.key("paused"), self.key("prioritized"), self.key("active")];
        // A key of another type in round 1 was counted there: the script skips it.
        let skip = |i: usize| if self.sizes[i] < 0.0 { "-1" } else { "0" }.to_string();
        let flag = |b: bool| if b { "1" } else { "0" }.to_string();
        let args = [
            self.head.clone(),
            MAX_WALK.to_string(),
            MAX_BANDS.to_string(),
            skip(WAIT),
            skip(PAUSED),
            skip(PRIORITIZED),
            flag(self.walk),
            flag(self.walk_active),
            MAX_LOCK_CHECKS.to_string(),
        ];
        vec![super::bullmq::walk_command(&keys, &args)]
    }

    fn after_walk(&mut self, r: &[RedisResult<Value>]) {
        let Some(Ok(v @ Value::Array(_))) = r.first() else {
            self.failed = Some(QueueError::ReadFailed);
            return;
        };
        let Ok(f) = super::reply::Fields::parse(v) else {
            self.failed = Some(QueueError::BadReply);
            return;
        };
        // The sizes the script read beside what it found, so counts and ages share an instant.
        for (i, name) in
            [(WAIT, "waiting"), (PAUSED, "paused"), (PRIORITIZED, "prioritized"), (ACTIVE, "active")]
        {
            if let Some(n) = f.num(name) {
                self.sizes[i] = n;
            }
        }
        if self.walk {
            self.oldest_listed = f.num("oldest_ready").filter(|t| *t >= 0.0);
            self.ready_found.clear();
            if let (Some(id), Some(t)) = (f.text("oldest_id"), self.oldest_listed) {
                self.ready_found.push((id, t));
            }
            self.lower_bound = f.num("oldest_lower_bound").unwrap_or(0.0) > 0.0;
        }
        if self.walk_active {
            self.oldest_active = f.num("oldest_active").filter(|t| *t >= 0.0);
            self.stalled = f.num("stalled").unwrap_or(0.0).max(0.0);
        }
        self.errors += f.num("errors").unwrap_or(0.0).max(0.0) as u64;
    }

    /// The stream read (`XRANGE` reply, when made) and the queue's fields named as the scripts
    /// name them.
    pub fn finish(self) -> Result<(Option<Value>, Value), QueueError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.stage != Stage::Done {
            return Err(QueueError::ReadFailed);
        }
        let mut out: Vec<Value> = Vec::with_capacity(48);
        let mut put = |k: &str, v: Value| {
            out.push(bulk(k));
            out.push(v);
        };
        for ((name, _, _), size) in SIZES.iter().zip(self.sizes) {
            put(name, Value::Double(size));
        }
        put("is_paused", Value::Int(self.paused.into()));
        put("now", Value::Double(self.now));
        let oldest = match (self.oldest_listed, self.oldest_delayed) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(-1.0),
        };
        put("oldest_ready", Value::Double(oldest));
        put("oldest_delayed", Value::Double(self.oldest_delayed.unwrap_or(-1.0)));
        let found = self.ready_found.iter().flat_map(|(id, t)| [bulk(id), Value::Double(*t)]).collect();
        put("ready_found", Value::Array(found));
        put("oldest_lower_bound", Value::Int(self.lower_bound.into()));
        put("oldest_active", Value::Double(self.oldest_active.unwrap_or(-1.0)));
        put("stalled", Value::Double(self.stalled));
        put("active_ids", Value::Array(self.active_ids.iter().map(|s| bulk(s)).collect()));
        for (k, v) in self.info {
            put(k, v);
        }
        put("looked", Value::Array(self.looked));
        put("errors", Value::Int(self.errors as i64));
        Ok((self.stream, Value::Array(out)))
    }
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> RedisResult<Value> {
        Ok(Value::Array(v.iter().map(|s| bulk(s)).collect()))
    }

    /// The candidates and whether the script must walk, for a list of `len` whose right end is `right`.
    fn walk(right: &[&str], len: f64) -> (Vec<String>, bool) {
        let mut s = Snapshot::new("bull:q:".into(), None, vec![]);
        s.plan_walk(Some(&ids(right)), len);
        (s.candidates, s.walk)
    }

    #[test]
    fn fifo_needs_one_hash_lifo_and_custom_ids_go_to_the_script() {
        // FIFO: pushed left, the oldest job is the rightmost; the one left of it is newer.
        assert_eq!(walk(&["15", "14", "13", "12"], 5.0), (vec!["12".to_string()], false));
        // A short LIFO list read whole: the run ends at its left end.
        assert_eq!(walk(&["2", "3"], 2.0), (vec!["3".to_string(), "2".to_string()], false));
        // Two LIFO jobs at the right end of FIFO ones: the peak is inside what was read.
        assert_eq!(walk(&["7", "8", "10", "9"], 10.0), (vec!["9".to_string()], false));
        assert_eq!(walk(&["9", "8", "10", "11"], 10.0), (vec!["11".into(), "10".into(), "8".into()], false));
        // LIFO longer than the plain read: only a walk finds the oldest.
        assert!(walk(&["1", "2", "3", "4"], 9.0).1);
        // Custom ids: only their times order them.
        assert!(walk(&["a", "b"], 2.0).1);
        assert!(walk(&["0200", "0100"], 2.0).1, "leading zeros: not the library's counter");
        // Empty, missing or another type: nothing to read.
        assert_eq!(walk(&[], 0.0), (vec![], false));
        assert_eq!(walk(&[], -1.0), (vec![], false));
        // The list emptied between its length and its ids: the script decides.
        assert!(walk(&[], 3.0).1);
    }

    #[test]
    fn a_second_priority_band_is_checked_from_the_first_bands_score() {
        let mut s = Snapshot::new("bull:q:".into(), None, vec![]);
        s.sizes[PRIORITIZED] = 5.0;
        let head = Ok(Value::Array(vec![bulk("21"), bulk("21474836481")]));
        s.plan_bands(Some(&head));
        assert_eq!(s.candidates, vec!["21".to_string()]);
        assert_eq!(s.next_band.as_deref(), Some("25769803776"), "band 6 starts at 6 * 2^32");
        assert!(!s.walk);
    }

    fn bulks(v: &[&str]) -> Value {
        Value::Array(v.iter().map(|s| bulk(s)).collect())
    }

    /// Round 2's active check for round-1 active ids `before` (right end last), replied with
    /// the ids active now, the locks held and `processedOn` of the probes.
    fn active_check(before: &[&str], now_ids: &[&str], locks: i64, started: &[&str]) -> Snapshot {
        let mut s = Snapshot::new("bull:q:".into(), None, vec![]);
        s.now = 1_700_000_000_000.0;
        s.active_ids = before.iter().map(|x| x.to_string()).collect();
        let cmds = s.second_round();
        let probes = before.len().min(PLAIN_WALK);
        assert_eq!(cmds.len(), 4 + probes, "MULTI, LRANGE, EXISTS, HMGETs, EXEC");
        let mut replies: Vec<RedisResult<Value>> = vec![Ok(Value::Okay)];
        replies.extend((0..2 + probes).map(|_| Ok(Value::SimpleString("QUEUED".into()))));
        let mut exec = vec![bulks(now_ids), Value::Int(locks)];
        exec.extend((0..probes).map(|i| bulks(&[started.get(i).copied().unwrap_or("")])));
        replies.push(Ok(Value::Array(exec)));
        s.next(&replies);
        s
    }

    #[test]
    fn jobs_that_finish_between_rounds_are_not_stalled() {
        // Round 1 saw 5, 4, 3 active (3 the longest-running); by round 2, 3 and 4 finished (no
        // lock, not in the list any more), 6 started; 5 and 6 hold their locks.
        // Probes go rightmost first: 3, 4, 5.
        let s = active_check(
            &["5", "4", "3"],
            &["6", "5"],
            1,
            &["1699999997000", "1699999998000", "1699999999000"],
        );
        assert_eq!(s.stalled, 0.0);
        // The longest-running job still active is 5.
        assert_eq!(s.oldest_active, Some(1_699_999_999_000.0));
        assert_eq!(s.stage, Stage::Done);
        // A job still active without its lock is stalled.
        let s = active_check(&["5", "4"], &["5", "4"], 1, &["1699999998000", "1699999999000"]);
        assert_eq!(s.stalled, 1.0);
        assert_eq!(s.oldest_active, Some(1_699_999_998_000.0), "4, the rightmost");
        // Every probe finished: the script reads the active jobs atomically.
        let s = active_check(&["2"], &["9"], 1, &["1699999999000"]);
        assert_eq!(s.stage, Stage::Walk);
    }

    #[test]
    fn a_job_gone_between_rounds_sends_the_queue_to_the_script() {
        let mut s = Snapshot::new("bull:q:".into(), None, vec![]);
        s.now = 1_700_000_000_000.0;
        s.candidates = vec!["12".into()];
        let cmds = s.second_round();
        assert_eq!(cmds.len(), 1);
        // HMGET of a hash removed since round 1: nils.
        let next = s.next(&[Ok(Value::Array(vec![Value::Nil, Value::Nil]))]);
        assert_eq!(next.len(), 1, "the walk script");
        assert_eq!(s.stage, Stage::Walk);
    }
}
