//! Ground truth for BullMQ (v6, v5), Bull 4 and Redis Streams: real producers and workers from
//! the npm libraries drive each scenario, the libraries' own APIs (`getJobCounts()`,
//! `getWorkers()`, `isPaused()`, job lists, the workers' own tally) give the truth, and every
//! number is compared with what redline exposes. Each test spawns its own redis-server and daemon.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{qlabels_prefixed as qp, queue_daemon, value, wait_for, Daemon, RedisServer};
use serde_json::{json, Value as Json};

const PRODUCERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers");

/// Runs `bull.js` and returns its stdout; panics when it fails.
fn node(lib: &str, action: &str, opts: &Json) -> String {
    let out = Command::new("node")
        .current_dir(PRODUCERS)
        .args(["bull.js", lib, action, &opts.to_string()])
        .output()
        .expect("node");
    assert!(out.status.success(), "bull.js {lib} {action} {opts}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `bull.js` in the background (a worker); [`finish`] collects what it printed.
fn spawn(lib: &str, action: &str, opts: &Json) -> Child {
    Command::new("node")
        .current_dir(PRODUCERS)
        .args(["bull.js", lib, action, &opts.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("node")
}

/// Waits for a background `bull.js` and parses the JSON it printed.
fn finish(child: Child) -> Json {
    let out = child.wait_with_output().expect("node");
    assert!(out.status.success(), "bull.js worker failed");
    serde_json::from_slice(&out.stdout).expect("worker tally")
}

/// What the library itself says about a queue.
fn truth(lib: &str, port: u16, prefix: &str, queue: &str) -> Json {
    let text = node(lib, "truth", &json!({"port": port, "prefix": prefix, "queue": queue}));
    serde_json::from_str(&text).expect("truth JSON")
}

fn num(v: &Json) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// One queue's series in a scrape.
struct Q<'a> {
    text: &'a str,
    system: &'a str,
    prefix: &'a str,
    queue: &'a str,
}

impl Q<'_> {
    fn get(&self, name: &str, rest: &str) -> Option<f64> {
        value(self.text, &format!("{name}{} ", qp(self.system, self.prefix, self.queue, rest)))
    }

    fn need(&self, name: &str, rest: &str) -> f64 {
        self.get(name, rest).unwrap_or_else(|| {
            panic!("{name}{} missing in:\n{}", qp(self.system, self.prefix, self.queue, rest), self.text)
        })
    }

    /// redline's count of `state`. The states of features a queue may never use (pause lists,
    /// priorities, flows) appear once they first hold a job: absent is 0 for those alone.
    fn state(&self, state: &str) -> Option<f64> {
        common::state_count(state, self.get("redline_queue_jobs", &format!(",state=\"{state}\"")))
    }

    /// Whether every state the library counts has redline's number.
    fn counts_match(&self, truth: &Json) -> bool {
        let counts = truth["counts"].as_object().expect("counts");
        counts.iter().all(|(state, v)| self.state(state) == v.as_f64())
    }

    /// Every state the library counts, compared with redline's.
    fn assert_counts(&self, truth: &Json) {
        let counts = truth["counts"].as_object().expect("counts");
        for (state, v) in counts {
            assert_eq!(
                self.state(state).unwrap_or_else(|| panic!("state {state} missing in:\n{}", self.text)),
                num(v),
                "{}/{} state {state}: truth {truth}",
                self.prefix,
                self.queue
            );
        }
    }
}

/// The oldest ready job's age against the library's job lists. Ages grow while the truth is read:
/// redline's age from a scrape before the truth can only be younger, and from a scrape after it
/// no more than a collection older.
fn assert_age(d: &Daemon, port: u16, lib: &str, prefix: &str, queue: &str) -> Json {
    let age = |t: &str| {
        Q { text: t, system: lib, prefix, queue }.need("redline_queue_oldest_ready_age_seconds", "")
    };
    let before = age(&d.scrape());
    let truth = truth(lib, port, prefix, queue);
    let after = age(&d.scrape());
    let want = match truth["oldestReady"].as_f64() {
        Some(ms) => (num(&truth["now"]) - ms) / 1000.0,
        None => 0.0,
    };
    assert!(
        before <= want + 0.5 && after >= want - 2.5,
        "{lib} {prefix}/{queue}: oldest ready age {before}..{after}, truth {want}"
    );
    truth
}

/// [`assert_age`] for several queues of one library and prefix, read in one node process.
fn assert_ages(d: &Daemon, port: u16, lib: &str, prefix: &str, queues: &[&str]) -> Json {
    let ages = |t: &str| -> Vec<f64> {
        queues
            .iter()
            .map(|queue| {
                Q { text: t, system: lib, prefix, queue }.need("redline_queue_oldest_ready_age_seconds", "")
            })
            .collect()
    };
    let before = ages(&d.scrape());
    let batches: Vec<Json> = queues.iter().map(|q| json!({"queue": q})).collect();
    let text = node(lib, "truth", &json!({"port": port, "prefix": prefix, "batches": batches}));
    let all: Json = serde_json::from_str(&text).expect("truth JSON");
    let text = d.scrape();
    let after = ages(&text);
    for (i, queue) in queues.iter().enumerate() {
        let t = &all[*queue];
        // The ready timestamp the queue-age rule pages on (`time() - …`): the job's own time.
        let ts = Q { text: &text, system: lib, prefix, queue }
            .get("redline_queue_oldest_ready_timestamp_seconds", "");
        match t["oldestReady"].as_f64() {
            Some(ms) => {
                let ts = ts.unwrap_or_else(|| panic!("{lib} {prefix}/{queue}: no ready timestamp"));
                assert!(
                    (ts - ms / 1000.0).abs() < 0.5,
                    "{lib} {prefix}/{queue}: ready at {ts}, truth {ms} ms"
                );
            }
            None => assert_eq!(ts, None, "{lib} {prefix}/{queue}: nothing ready, no timestamp"),
        }
        let want = t["oldestReady"].as_f64().map_or(0.0, |ms| (num(&t["now"]) - ms) / 1000.0);
        assert!(
            before[i] <= want + 0.5 && after[i] >= want - 2.5,
            "{lib} {prefix}/{queue}: oldest ready age {}..{}, truth {want}",
            before[i],
            after[i]
        );
    }
    all
}

/// Waits until `f` holds on a scrape of `d`.
fn until(d: &Daemon, what: &str, secs: u64, mut f: impl FnMut(&str) -> bool) -> String {
    let mut last = String::new();
    wait_for(what, Duration::from_secs(secs), || {
        last = d.scrape();
        f(&last)
    });
    last
}

fn daemon_for(r: &RedisServer, system: &str, prefix: &str, names: &[&str]) -> Daemon {
    let list = names.join(", ");
    queue_daemon(
        r,
        &format!("      - system: {system}\n        prefix: \"{prefix}\"\n        names: [{list}]\n"),
    )
}

/// Counters, retries and durations against the workers' own tally, whatever the retention:
/// removeOnComplete/removeOnFail true, a count, an age; attempts with backoff; BullMQ 6 and 5.
#[test]
fn bullmq_counters_match_the_workers_whatever_the_retention() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    // (library, queue, job options, worker options)
    let cases = [
        (
            "bullmq",
            "keep",
            json!({"count": 12, "attempts": 3, "backoff": 20}),
            json!({"failAttempts": 1, "failEvery": 5}),
        ),
        (
            "bullmq",
            "drop",
            json!({"count": 50, "removeOnComplete": true, "removeOnFail": true}),
            json!({"failEvery": 4}),
        ),
        (
            "bullmq",
            "count",
            json!({"count": 30, "removeOnComplete": 5, "removeOnFail": 2, "attempts": 2}),
            json!({"failEvery": 3}),
        ),
        (
            "bullmq",
            "age",
            json!({"count": 20, "removeOnComplete": {"age": 1}, "removeOnFail": {"age": 1, "count": 1}}),
            json!({"failEvery": 2}),
        ),
        (
            "bullmq5",
            "v5",
            json!({"count": 20, "removeOnComplete": true, "attempts": 2}),
            json!({"failAttempts": 1, "failEvery": 7}),
        ),
    ];
    let names: Vec<&str> = cases.iter().map(|c| c.1).collect();
    let d = daemon_for(&r, "bullmq", "bull", &names);
    // The first look sets the baseline: counters count what happens after it.
    until(&d, "first look at every queue", 15, |t| {
        names
            .iter()
            .all(|n| t.contains(&format!("redline_queue_counters_exact{} 1", qp("bullmq", "bull", n, ""))))
    });
    let mut workers = Vec::new();
    for (lib, queue, job, work) in &cases {
        let mut add = job.clone();
        add["port"] = json!(p);
        add["queue"] = json!(queue);
        node(lib, "add", &add);
        let mut w = work.clone();
        w["port"] = json!(p);
        w["queue"] = json!(queue);
        w["until"] = job["count"].clone();
        w["seconds"] = json!(40);
        w["concurrency"] = json!(4);
        workers.push((lib, queue, job["count"].as_f64().unwrap_or(0.0), spawn(lib, "work", &w)));
    }
    for (lib, queue, added, w) in workers {
        let seen = finish(w);
        let (completed, failed, retried) =
            (num(&seen["completed"]), num(&seen["failed"]), num(&seen["retried"]));
        assert_eq!(completed + failed, added, "{queue}: the worker finished every job: {seen}");
        // The worker is gone: the truth is final, and redline shows it within a collection or two.
        let t = truth(lib, p, "bull", queue);
        let text = until(&d, &format!("{queue}: counters caught up"), 15, |t2| {
            let q = Q { text: t2, system: "bullmq", prefix: "bull", queue };
            q.counts_match(&t)
                && q.get("redline_queue_jobs_completed_total", "") == Some(completed)
                && q.get("redline_queue_jobs_failed_total", "") == Some(failed)
        });
        let q = Q { text: &text, system: "bullmq", prefix: "bull", queue };
        q.assert_counts(&t);
        assert_eq!(q.need("redline_queue_jobs_added_total", ""), added, "{queue}");
        assert_eq!(q.need("redline_queue_jobs_retried_total", ""), retried, "{queue}: worker {seen}");
        assert_eq!(q.need("redline_queue_counters_exact", ""), 1.0);
        // Absent until there is something to report (the series budget).
        assert_eq!(q.get("redline_queue_events_lost_total", ""), None, "{queue}");
        assert_eq!(q.get("redline_queue_events_backlog", ""), None, "{queue}");
        // Every finished job is timed, or counted as untimed; none is both or neither.
        let timed = q.need("redline_queue_processing_duration_seconds_count", "");
        assert_eq!(q.need("redline_queue_wait_duration_seconds_count", ""), timed);
        assert_eq!(timed, completed + failed, "{queue}");
        assert_eq!(
            q.get("redline_queue_jobs_untimed_total", ""),
            None,
            "{queue}: jobs started after the first look"
        );
        if *queue == "keep" {
            assert_eq!(num(&t["retriesKept"]), retried, "the kept jobs' attemptsMade agree");
        }
    }
    assert!(!d.scrape().contains("NaN") && !d.scrape().contains("Inf "), "no NaN or infinite sample");
}

/// Bull 4 has no events stream: its metrics keys when the workers keep them (exact), else the
/// finished sets, flagged inexact because jobs removed on completion never reach them.
#[test]
fn bull_counters_from_metrics_keys_or_flagged_finished_sets() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    let d = daemon_for(&r, "bull", "bull", &["metered", "kept", "dropped"]);
    until(&d, "first look", 15, |t| {
        t.contains(&format!("redline_queue_counters_exact{}", qp("bull", "bull", "kept", "")))
    });
    let cases = [
        (
            "metered",
            json!({"count": 20, "removeOnComplete": true, "removeOnFail": true}),
            json!({"failEvery": 4, "metrics": true}),
        ),
        (
            "kept",
            json!({"count": 12, "attempts": 3, "backoff": 10}),
            json!({"failAttempts": 1, "failEvery": 5}),
        ),
        ("dropped", json!({"count": 10, "removeOnComplete": true}), json!({})),
    ];
    let mut workers = Vec::new();
    for (queue, job, work) in &cases {
        let mut add = job.clone();
        add["port"] = json!(p);
        add["queue"] = json!(queue);
        node("bull", "add", &add);
        let mut w = work.clone();
        w["port"] = json!(p);
        w["queue"] = json!(queue);
        w["until"] = job["count"].clone();
        w["seconds"] = json!(40);
        w["concurrency"] = json!(4);
        workers.push((*queue, job["count"].as_f64().unwrap_or(0.0), spawn("bull", "work", &w)));
    }
    for (queue, added, w) in workers {
        let seen = finish(w);
        let (completed, failed, retried) =
            (num(&seen["completed"]), num(&seen["failed"]), num(&seen["retried"]));
        assert_eq!(completed + failed, added, "{queue}: {seen}");
        let exact = queue != "dropped";
        // The worker is gone: the truth is final, and redline shows it within a collection or two.
        let t = truth("bull", p, "bull", queue);
        let text = until(&d, &format!("{queue}: counters caught up"), 15, |t2| {
            let q = Q { text: t2, system: "bull", prefix: "bull", queue };
            q.counts_match(&t)
                && (!exact
                    || q.get("redline_queue_jobs_completed_total", "") == Some(completed)
                        && q.get("redline_queue_jobs_failed_total", "") == Some(failed))
        });
        let q = Q { text: &text, system: "bull", prefix: "bull", queue };
        q.assert_counts(&t);
        assert_eq!(q.need("redline_queue_jobs_added_total", ""), added, "{queue}: Bull's id counter");
        match queue {
            "metered" => {
                assert_eq!(q.need("redline_queue_counters_exact", ""), 1.0);
                assert_eq!(num(&t["metrics"]["completed"]), completed, "Bull's own metrics agree");
            }
            "kept" => {
                // Nothing removed: the finished sets hold every job, so even this source is right.
                assert_eq!(q.need("redline_queue_counters_exact", ""), 0.0);
                assert_eq!(q.need("redline_queue_jobs_retried_total", ""), retried, "{seen}");
                assert_eq!(num(&t["retriesKept"]), retried);
                assert_eq!(q.need("redline_queue_wait_duration_seconds_count", ""), added);
            }
            _ => {
                // Removed on completion, no metrics: redline cannot see them and says so.
                assert_eq!(q.need("redline_queue_counters_exact", ""), 0.0);
                assert_eq!(q.need("redline_queue_jobs_completed_total", ""), 0.0);
            }
        }
    }
}

/// The oldest job that could run now, not the next one: a FIFO job behind newer LIFO jobs, a
/// low-priority job older than newer high-priority ones, delayed jobs due and not due, a paused
/// queue; and a flagged lower bound when a bounded read stops short.
#[test]
fn oldest_ready_age_is_the_oldest_job_that_could_run_now() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let ago = |s: i64| now - s * 1000;
    // One queue name per library under its own prefix: BullMQ and Bull share key names.
    let prefix = |lib: &str| if lib == "bull" { "b4" } else { "bull" };
    for lib in ["bullmq", "bull"] {
        // One node process per library for the whole scenario.
        let batches = json!([
            // FIFO job 60 s old, then three LIFO jobs 5 s old: the next job is 5 s old.
            {"queue": "lifo", "timestamp": ago(60)},
            {"queue": "lifo", "timestamp": ago(5), "lifo": true, "count": 3},
            // A priority-10 job 40 s old behind five priority-1 jobs 3 s old.
            {"queue": "prio", "timestamp": ago(40), "priority": 10},
            {"queue": "prio", "timestamp": ago(3), "priority": 1, "count": 5},
            // A delayed job due 30 s ago, one due in an hour, and a plain job 10 s old.
            {"queue": "delayed", "timestamp": ago(31), "delay": 1000},
            {"queue": "delayed", "delay": 3_600_000},
            {"queue": "delayed", "timestamp": ago(10)},
            {"queue": "notdue", "delay": 3_600_000},
            // More LIFO jobs than redline walks, in front of an older FIFO job: a lower bound.
            {"queue": "deep", "timestamp": ago(50)},
            {"queue": "deep", "timestamp": ago(2), "lifo": true, "count": 80},
            // A paused queue still ages.
            {"queue": "paused", "timestamp": ago(20), "pause": true},
        ]);
        node(lib, "add", &json!({"port": p, "prefix": prefix(lib), "count": 1, "batches": batches}));
    }
    let d = queue_daemon(
        &r,
        "      - system: bullmq\n        names: [lifo, prio, delayed, notdue, deep, paused]\n      - system: bull\n        prefix: b4\n        names: [lifo, prio, delayed, notdue, deep, paused]\n",
    );
    until(&d, "every queue read", 15, |t| t.matches("redline_queue_oldest_ready_age_seconds{").count() == 12);
    let queues = ["lifo", "prio", "delayed", "notdue", "paused"];
    for lib in ["bullmq", "bull"] {
        let all = assert_ages(&d, p, lib, prefix(lib), &queues);
        let text = d.scrape();
        for queue in queues {
            let q = Q { text: &text, system: lib, prefix: prefix(lib), queue };
            q.assert_counts(&all[queue]);
            // Exact all along: no flag series (it appears the first time an age is only a bound).
            assert_eq!(q.get("redline_queue_oldest_ready_age_lower_bound", ""), None, "{lib} {queue}");
        }
        let text = d.scrape();
        let q = Q { text: &text, system: lib, prefix: prefix(lib), queue: "deep" };
        assert_eq!(q.need("redline_queue_oldest_ready_age_lower_bound", ""), 1.0, "{lib}: 80 LIFO jobs");
        let age = q.need("redline_queue_oldest_ready_age_seconds", "");
        let t = truth(lib, p, prefix(lib), "deep");
        let want = (num(&t["now"]) - num(&t["oldestReady"])) / 1000.0;
        // The LIFO jobs are 48 s younger than the FIFO job redline could not reach.
        assert!(age > 0.0 && age <= want - 40.0, "{lib}: a lower bound, below the truth ({want} s): {age}");
        let paused = Q { text: &text, system: lib, prefix: prefix(lib), queue: "paused" };
        assert_eq!(paused.need("redline_queue_paused", ""), 1.0, "{lib}");
    }
}

/// Pause as each library does it: BullMQ's meta flag, Bull 4's `meta-paused` key plus the
/// `meta` hash it writes "for forwards compatibility" (which must not turn it into BullMQ);
/// workers as `getWorkers()` counts them.
#[test]
fn paused_queues_and_workers_match_the_libraries() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    // BullMQ and Bull share key names: one queue name each, under the default prefix.
    let libs = [("bullmq", "held"), ("bull", "held4")];
    for (lib, queue) in libs {
        node(lib, "add", &json!({"port": p, "queue": queue, "count": 115}));
        node(lib, "pause", &json!({"port": p, "queue": queue}));
    }
    let d = queue_daemon(&r, "      - system: bullmq\n      - system: bull\n");
    // A worker on each paused queue: connected, processing nothing.
    let mut workers: Vec<Child> = libs
        .iter()
        .map(|(lib, queue)| spawn(lib, "work", &json!({"port": p, "queue": queue, "seconds": 30})))
        .collect();
    let text = until(&d, "both paused queues with their worker", 20, |t| {
        libs.iter().all(|(lib, queue)| {
            let q = Q { text: t, system: lib, prefix: "bull", queue };
            q.get("redline_queue_paused", "") == Some(1.0) && q.get("redline_queue_workers", "") == Some(1.0)
        })
    });
    for (lib, queue) in libs {
        let t = assert_age(&d, p, lib, "bull", queue);
        let q = Q { text: &text, system: lib, prefix: "bull", queue };
        assert_eq!(t["paused"], json!(true), "{lib}");
        assert_eq!(num(&t["workers"]), 1.0, "{lib}");
        q.assert_counts(&t);
    }
    assert!(
        !text.contains("system=\"bullmq\",prefix=\"bull\",queue=\"held4\""),
        "a paused Bull queue is not BullMQ"
    );
    assert_eq!(
        value(&text, "redline_queue_discovered{target=\"t\",system=\"bull\",prefix=\"bull\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "redline_queue_discovered{target=\"t\",system=\"bullmq\",prefix=\"bull\"}"),
        Some(1.0)
    );
    for (lib, queue) in libs {
        node(lib, "resume", &json!({"port": p, "queue": queue}));
    }
    until(&d, "resumed", 10, |t| {
        libs.iter().all(|(lib, queue)| {
            Q { text: t, system: lib, prefix: "bull", queue }.get("redline_queue_paused", "") == Some(0.0)
        })
    });
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
}

/// Queue identity: custom prefixes with and without hash tags, one queue name under two
/// prefixes, prefix `myapp` beside `myapp:v2`, application streams beside BullMQ event streams,
/// and discovery that survives a key that is not UTF-8 and a registry of the wrong type.
#[test]
fn discovery_keeps_prefixes_and_systems_apart_and_survives_bad_keys() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    node("bullmq", "add", &json!({"port": p, "prefix": "myapp", "queue": "same", "count": 3}));
    node("bullmq", "add", &json!({"port": p, "prefix": "{pay}", "queue": "same", "count": 50}));
    node("bullmq", "add", &json!({"port": p, "prefix": "myapp", "queue": "orders", "count": 2}));
    node("bullmq", "add", &json!({"port": p, "prefix": "myapp:v2", "queue": "d3", "count": 4}));
    node("bull", "add", &json!({"port": p, "prefix": "myapp:v2", "queue": "old", "count": 1}));
    r.cli(&["XADD", "app:orders", "*", "n", "1"]);
    r.cli(&["XGROUP", "CREATE", "app:orders", "billing", "0"]);
    // A BullMQ-looking key that is not UTF-8, and an RQ registry of the wrong type.
    r.cli(&[
        "EVAL",
        "redis.call('HSET', 'myapp:' .. string.char(255) .. ':meta', 'version', 'bullmq:6')",
        "0",
    ]);
    r.cli(&["SET", "rq:queues", "oops"]);
    let d = queue_daemon(
        &r,
        "      - system: bullmq\n        prefix: myapp\n      - system: bullmq\n        prefix: \"{pay}\"\n      - system: bullmq\n        prefix: \"myapp:v2\"\n      - system: bull\n        prefix: \"myapp:v2\"\n      - system: stream\n      - system: rq\n",
    );
    let text = until(&d, "every source discovered", 20, |t| {
        value(t, "redline_queue_discovered{target=\"t\",system=\"bullmq\",prefix=\"myapp\"}") == Some(2.0)
            && value(t, "redline_queue_discovered{target=\"t\",system=\"bullmq\",prefix=\"{pay}\"}")
                == Some(1.0)
            && value(t, "redline_queue_discovered{target=\"t\",system=\"bullmq\",prefix=\"myapp:v2\"}")
                == Some(1.0)
            && value(t, "redline_queue_discovered{target=\"t\",system=\"bull\",prefix=\"myapp:v2\"}")
                == Some(1.0)
    });
    let waiting = |prefix: &str, queue: &str| {
        Q { text: &text, system: "bullmq", prefix, queue }.get("redline_queue_jobs", ",state=\"waiting\"")
    };
    assert_eq!(waiting("myapp", "same"), Some(3.0));
    assert_eq!(waiting("{pay}", "same"), Some(50.0));
    assert_eq!(waiting("myapp:v2", "d3"), Some(4.0));
    assert!(!text.contains("queue=\"v2:d3\""), "myapp:v2's queue is not myapp's: {text}");
    assert!(!text.contains("system=\"bullmq\",prefix=\"myapp:v2\",queue=\"old\""), "Bull is not BullMQ");
    // Only the application stream, not BullMQ's event streams.
    assert_eq!(value(&text, "redline_queue_discovered{target=\"t\",system=\"stream\"}"), Some(1.0), "{text}");
    assert!(text.contains("system=\"stream\",queue=\"app:orders\""));
    assert!(!text.contains(":events\""), "{text}");
    // Bad key and bad source: counted, and discovery carries on (a new queue is still found).
    assert!(
        value(&text, "redline_queue_discovery_errors_total{target=\"t\",system=\"bullmq\",prefix=\"myapp\",reason=\"bad_key\"}")
            .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        value(&text, "redline_queue_discovery_errors_total{target=\"t\",system=\"rq\",prefix=\"rq\",reason=\"read_failed\"}")
            .is_some_and(|v| v >= 1.0)
    );
    node("bullmq", "add", &json!({"port": p, "prefix": "myapp", "queue": "later", "count": 1}));
    until(&d, "a queue added later is found", 15, |t| {
        value(t, "redline_queue_discovered{target=\"t\",system=\"bullmq\",prefix=\"myapp\"}") == Some(3.0)
    });
}

/// Garbage never poisons a queue: a job key of the wrong type, a job with timestamp=1, a finished
/// job with processedOn=inf and attemptsMade=inf are counted and skipped; the rest is reported.
#[test]
fn garbage_jobs_are_counted_and_skipped_and_the_rest_reported() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let prefix = |lib: &str| if lib == "bull" { "b4" } else { "bull" };
    for lib in ["bullmq", "bull"] {
        node(
            lib,
            "add",
            &json!({"port": p, "queue": "q3", "prefix": prefix(lib), "count": 10, "timestamp": now - 30_000}),
        );
    }
    let d = queue_daemon(
        &r,
        "      - system: bullmq\n        names: [q3]\n      - system: bull\n        prefix: b4\n        names: [q3]\n",
    );
    until(&d, "first look", 15, |t| t.matches("redline_queue_counters_exact{").count() == 2);
    // BullMQ: job 1 (next to run) becomes a string, job 2 gets timestamp=1; a completed event
    // for a job whose hash is junk.
    r.cli(&["DEL", "bull:q3:1"]);
    r.cli(&["SET", "bull:q3:1", "x"]);
    r.cli(&["HSET", "bull:q3:2", "timestamp", "1"]);
    r.cli(&["HSET", "bull:q3:77", "timestamp", "1", "processedOn", "inf", "atm", "inf"]);
    r.cli(&["XADD", "bull:q3:events", "*", "event", "completed", "jobId", "77", "prev", "active"]);
    // Bull: a string job key at the head; two finished jobs, one with junk times, one with sane
    // times and attemptsMade=inf.
    r.cli(&["SET", "b4:q3:junk", "x"]);
    r.cli(&["RPUSH", "b4:q3:wait", "junk"]);
    let (t0, t1, t2) = ((now - 5000).to_string(), (now - 4000).to_string(), now.to_string());
    r.cli(&["HSET", "b4:q3:98", "timestamp", "1", "processedOn", "inf", "finishedOn", "nan"]);
    r.cli(&[
        "HSET",
        "b4:q3:99",
        "timestamp",
        &t0,
        "processedOn",
        &t1,
        "finishedOn",
        &t2,
        "attemptsMade",
        "inf",
    ]);
    r.cli(&["ZADD", "b4:q3:completed", &t2, "98", &t2, "99"]);
    let text = until(&d, "garbage counted", 15, |t| {
        value(t, "redline_queue_read_errors_total{target=\"t\",system=\"bullmq\",reason=\"bad_data\"}")
            .unwrap_or(0.0)
            >= 2.0
            && value(t, "redline_queue_read_errors_total{target=\"t\",system=\"bull\",reason=\"bad_data\"}")
                .unwrap_or(0.0)
                >= 2.0
            && Q { text: t, system: "bullmq", prefix: "bull", queue: "q3" }
                .get("redline_queue_jobs_completed_total", "")
                == Some(1.0)
            && Q { text: t, system: "bull", prefix: "b4", queue: "q3" }.get("redline_queue_jobs_completed_total", "")
                == Some(2.0)
            // Job 77's hash is read the collection after its event.
            && Q { text: t, system: "bullmq", prefix: "bull", queue: "q3" }.get("redline_queue_jobs_untimed_total", "")
                == Some(1.0)
    });
    for lib in ["bullmq", "bull"] {
        let q = Q { text: &text, system: lib, prefix: prefix(lib), queue: "q3" };
        let waiting = q.need("redline_queue_jobs", ",state=\"waiting\"");
        assert_eq!(waiting, if lib == "bull" { 11.0 } else { 10.0 }, "{lib}: the queue is still reported");
        let age = q.need("redline_queue_oldest_ready_age_seconds", "");
        assert!((25.0..60.0).contains(&age), "{lib}: the valid jobs' age (30 s), not 56 years: {age}");
        assert!(q.need("redline_queue_jobs_retried_total", "").is_finite());
    }
    let bull = Q { text: &text, system: "bull", prefix: "b4", queue: "q3" };
    assert_eq!(bull.need("redline_queue_jobs_completed_total", ""), 2.0);
    assert_eq!(
        bull.need("redline_queue_jobs_retried_total", ""),
        0.0,
        "attemptsMade=inf is not a retry count"
    );
    assert_eq!(
        bull.need("redline_queue_processing_duration_seconds_count", ""),
        1.0,
        "job 99's times are sane"
    );
    assert_eq!(bull.need("redline_queue_jobs_untimed_total", ""), 1.0, "job 98's are not");
    let bullmq = Q { text: &text, system: "bullmq", prefix: "bull", queue: "q3" };
    assert_eq!(bullmq.need("redline_queue_jobs_untimed_total", ""), 1.0, "job 77 has no usable times");
    for line in text.lines().filter(|l| l.starts_with("redline_queue")) {
        assert!(!line.ends_with("NaN") && !line.ends_with("Inf"), "{line}");
    }
}

/// Events trimmed from a short events stream before redline read them are counted as lost:
/// the counters are low by no more than that, and say so.
#[test]
fn events_trimmed_before_redline_reads_them_are_counted_lost() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    let d = daemon_for(&r, "bullmq", "bull", &["short"]);
    node("bullmq", "add", &json!({"port": p, "queue": "short", "count": 1, "maxLenEvents": 10}));
    until(&d, "first look", 15, |t| {
        t.contains(&format!("redline_queue_counters_exact{}", qp("bullmq", "bull", "short", "")))
    });
    // 3 x 400 jobs, each bulk faster than a collection: the stream keeps about 100 entries.
    for _ in 0..3 {
        node("bullmq", "add", &json!({"port": p, "queue": "short", "count": 400, "maxLenEvents": 10}));
    }
    // Each add writes two events (added, waiting): once redline has caught up, every add was
    // either counted or is among the events counted as lost, never silently missing.
    let text = until(&d, "caught up, every add counted or lost", 15, |t| {
        let q = Q { text: t, system: "bullmq", prefix: "bull", queue: "short" };
        q.get("redline_queue_events_backlog", "").is_none()
            && q.get("redline_queue_jobs_added_total", "").unwrap_or(0.0)
                + q.get("redline_queue_events_lost_total", "").unwrap_or(0.0)
                >= 1200.0
    });
    let q = Q { text: &text, system: "bullmq", prefix: "bull", queue: "short" };
    let added = q.need("redline_queue_jobs_added_total", "");
    let lost = q.need("redline_queue_events_lost_total", "");
    let info = r.cli(&["XINFO", "STREAM", "bull:short:events"]);
    let total: f64 = info
        .lines()
        .skip_while(|l| *l != "entries-added")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .expect("entries-added");
    assert!(added < 1200.0, "some adds were trimmed before redline read them: {added}");
    assert!(lost <= total, "lost {lost} of {total} entries");
    assert_eq!(
        q.need("redline_queue_counters_exact", ""),
        1.0,
        "the source sees every job; the loss is flagged"
    );
}

/// Streams: a group created at an id mid-stream after an XDEL (XINFO gives no lag), a group
/// created at 0, and one past the bound redline counts: the backlog is known or flagged, never 0.
#[test]
fn stream_lag_is_known_or_flagged_when_xinfo_has_none() {
    let r = RedisServer::start(&[]);
    for i in 0..100 {
        r.cli(&["XADD", "jobs", "*", "n", &i.to_string()]);
    }
    for i in 0..300 {
        r.cli(&["XADD", "big", "*", "n", &i.to_string()]);
    }
    let ids = |key: &str| -> Vec<String> {
        r.cli(&["XRANGE", key, "-", "+", "COUNT", "10"]).lines().step_by(3).map(str::to_string).collect()
    };
    let (jobs, big) = (ids("jobs"), ids("big"));
    r.cli(&["XDEL", "jobs", &jobs[5]]);
    r.cli(&["XGROUP", "CREATE", "jobs", "mid", &jobs[1]]);
    r.cli(&["XGROUP", "CREATE", "jobs", "all", "0"]);
    r.cli(&["XDEL", "big", &big[5]]);
    r.cli(&["XGROUP", "CREATE", "big", "mid", &big[1]]);
    let lag_is_null = r.cli(&["XINFO", "GROUPS", "jobs"]);
    assert!(
        lag_is_null.contains("lag\n\n") || lag_is_null.contains("lag\n(nil)"),
        "XINFO has no lag: {lag_is_null}"
    );
    let d = queue_daemon(&r, "      - system: stream\n        names: [jobs, big]\n");
    let lag = |t: &str, s: &str, g: &str| {
        value(t, &format!("redline_queue_stream_group_lag{{target=\"t\",system=\"stream\",queue=\"{s}\",group=\"{g}\"}}"))
    };
    let flag = |t: &str, s: &str, g: &str| {
        value(
            t,
            &format!("redline_queue_stream_group_lag_lower_bound{{target=\"t\",system=\"stream\",queue=\"{s}\",group=\"{g}\"}}"),
        )
    };
    let text = until(&d, "streams read", 15, |t| lag(t, "big", "mid").is_some());
    // Truth: entries after each group's last delivered id (99 entries, one deleted: 97 after #2).
    assert_eq!(lag(&text, "jobs", "mid"), Some(97.0));
    assert_eq!(flag(&text, "jobs", "mid"), None, "exact: no flag");
    assert_eq!(lag(&text, "jobs", "all"), Some(99.0));
    assert_eq!(
        value(&text, "redline_queue_jobs{target=\"t\",system=\"stream\",queue=\"jobs\",state=\"waiting\"}"),
        Some(99.0)
    );
    // 297 undelivered, more than redline counts: a lower bound, and flagged.
    let big_lag = lag(&text, "big", "mid").expect("lag");
    assert!((1.0..=297.0).contains(&big_lag), "{big_lag}");
    assert_eq!(flag(&text, "big", "mid"), Some(1.0));
}
