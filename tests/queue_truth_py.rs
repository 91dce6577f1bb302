//! Ground truth for RQ and Celery: the real libraries (PyPI rq and celery, pinned in
//! tests/producers/requirements.txt) produce and work the jobs, the same libraries' own APIs
//! (RQ's Queue.count and registries, kombu's queue size and sub-queue lengths) say what is
//! true, and every number is compared with redline's /metrics. Each test has its own
//! redis-server.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{qlabels as q, queue_daemon, value, wait_for, Daemon, RedisServer};
use serde_json::Value;

const PRODUCERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers");
/// Collections run every second; an age read from /metrics can be that much behind.
const AGE_SLACK: f64 = 2.5;

/// Runs py_queues.py and returns the JSON it prints last (panics with its output otherwise).
fn py(lib: &str, action: &str, opts: &str) -> Value {
    let out = Command::new("python3")
        .current_dir(PRODUCERS)
        .args(["py_queues.py", lib, action, opts])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py_queues.py {lib} {action} {opts}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or(Value::Null)
}

/// A background py_queues.py process (a worker), killed on drop so a failing test leaves
/// nothing running.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts py_queues.py in the background.
fn py_spawn(lib: &str, action: &str, opts: &str) -> Worker {
    Worker(
        Command::new("python3")
            .current_dir(PRODUCERS)
            .args(["py_queues.py", lib, action, opts])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3"),
    )
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// One queue's metric, `rest` being extra labels (",state=\"waiting\"").
fn metric(d: &Daemon, system: &str, queue: &str, name: &str, rest: &str) -> Option<f64> {
    value(&d.scrape(), &format!("{name}{}", q(system, queue, rest)))
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in truth {v}"))
}

/// Every RQ state redline reports equals what RQ's own API says.
fn assert_rq_states(d: &Daemon, port: u16, queue: &str) -> Value {
    let truth = py("rq", "truth", &format!(r#"{{"port":{port},"queue":"{queue}"}}"#));
    for state in ["waiting", "active", "completed", "failed", "delayed", "deferred", "canceled"] {
        assert_eq!(
            metric(d, "rq", queue, "redline_queue_jobs", &format!(",state=\"{state}\"")),
            Some(num(&truth, state)),
            "{state}: truth {truth}"
        );
    }
    truth
}

/// redline's age of the oldest ready job is within one collection of the truth computed from
/// RQ's own job data (oldest enqueued_at, earliest due scheduled time).
fn assert_rq_age(d: &Daemon, queue: &str, truth: &Value) {
    let oldest = [truth["oldest_enqueued_at"].as_f64(), truth["oldest_due_at"].as_f64()]
        .into_iter()
        .flatten()
        .fold(f64::INFINITY, f64::min);
    let before = now();
    let age = metric(d, "rq", queue, "redline_queue_oldest_ready_age_seconds", "").expect("age");
    let after = now();
    assert!(
        age >= before - oldest - AGE_SLACK && age <= after - oldest + 0.5,
        "age {age}, truth {} (from {truth})",
        after - oldest
    );
}

/// `enqueue(..., at_front=True)` puts new jobs in front of older ones: the age is the older
/// jobs'. A scheduled job already due, and a deferred one, are counted as RQ counts them.
#[test]
fn rq_at_front_scheduled_and_deferred_match_rq() {
    let r = RedisServer::start(&[]);
    let port = r.port;
    let opts = |o: &str| format!(r#"{{"port":{port},"queue":"front",{o}}}"#);
    py("rq", "add", &opts(r#""count":3"#));
    let d = queue_daemon(&r, "      - system: rq\n");
    wait_for("rq queue seen", Duration::from_secs(15), || {
        metric(&d, "rq", "front", "redline_queue_jobs", ",state=\"waiting\"") == Some(3.0)
    });
    wait_for("the first jobs are 3 s old", Duration::from_secs(15), || {
        metric(&d, "rq", "front", "redline_queue_oldest_ready_age_seconds", "").unwrap_or(0.0) >= 3.0
    });
    py("rq", "add", &opts(r#""count":2,"at_front":true"#));
    let parent = py("rq", "add", &opts(r#""count":1,"scheduled_in":3600"#));
    let parent = parent[0].as_str().expect("job id").to_string();
    py("rq", "add", &opts(&format!(r#""count":1,"depends_on":"{parent}""#)));
    // Wait for a collection that saw every job just added (the deferred one came last).
    wait_for("at_front, scheduled and deferred jobs seen", Duration::from_secs(15), || {
        let state = |s: &str| metric(&d, "rq", "front", "redline_queue_jobs", &format!(",state=\"{s}\""));
        state("waiting") == Some(5.0) && state("delayed") == Some(1.0) && state("deferred") == Some(1.0)
    });
    let truth = assert_rq_states(&d, port, "front");
    assert_eq!(num(&truth, "deferred"), 1.0);
    assert_rq_age(&d, "front", &truth);
    assert!(metric(&d, "rq", "front", "redline_queue_oldest_ready_age_seconds", "").unwrap_or(0.0) >= 3.0);
    assert_ne!(metric(&d, "rq", "front", "redline_queue_oldest_ready_age_lower_bound", ""), Some(1.0));

    // An at_front block longer than the head window redline reads: found by bisection.
    py("rq", "add", &opts(r#""count":40,"at_front":true"#));
    wait_for("long at_front block seen", Duration::from_secs(15), || {
        metric(&d, "rq", "front", "redline_queue_jobs", ",state=\"waiting\"") == Some(45.0)
    });
    let truth = assert_rq_states(&d, port, "front");
    assert_rq_age(&d, "front", &truth);
    assert_ne!(metric(&d, "rq", "front", "redline_queue_oldest_ready_age_lower_bound", ""), Some(1.0));

    // A scheduled job due 30 s ago that no scheduler has moved yet is the oldest ready job.
    py("rq", "add", &opts(r#""count":1,"scheduled_in":-30"#));
    wait_for("due job seen", Duration::from_secs(15), || {
        metric(&d, "rq", "front", "redline_queue_jobs", ",state=\"delayed\"") == Some(2.0)
    });
    let truth = assert_rq_states(&d, port, "front");
    assert_rq_age(&d, "front", &truth);
    assert!(metric(&d, "rq", "front", "redline_queue_oldest_ready_age_seconds", "").unwrap_or(0.0) >= 29.0);
}

/// Jobs with result_ttl -1 (+inf scores), 600, then 40 (a shorter ttl after a longer one),
/// 150 jobs finishing within a second or two, and failures with failure_ttl default, -1 and
/// 100: completed and failed counts equal RQ's registries, and nothing is flagged uncertain.
/// Then failed jobs are requeued and fail again: the counter counts them or says it may not.
#[test]
fn rq_counters_exact_with_result_ttl_mixes() {
    let r = RedisServer::start(&[]);
    let port = r.port;
    let opts = |o: &str| format!(r#"{{"port":{port},"queue":"mix",{o}}}"#);
    py("rq", "add", &opts(r#""count":1"#));
    let d = queue_daemon(&r, "      - system: rq\n");
    let m = |name: &str, rest: &str| metric(&d, "rq", "mix", name, rest);
    wait_for("rq baseline taken", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(1.0)
            && m("redline_queue_jobs_completed_total", "") == Some(0.0)
    });
    for o in [
        r#""count":3,"result_ttl":-1"#,
        r#""count":5,"result_ttl":600"#,
        r#""count":5,"result_ttl":40"#,
        r#""count":150"#,
        r#""count":4,"fail":true"#,
        r#""count":2,"fail":true,"failure_ttl":-1"#,
        r#""count":2,"fail":true,"failure_ttl":100"#,
    ] {
        py("rq", "add", &opts(o));
    }
    py("rq", "work", &opts(r#""simple":true"#));
    let truth = py("rq", "truth", &opts(r#""x":0"#));
    assert_eq!((num(&truth, "completed"), num(&truth, "failed")), (164.0, 8.0), "{truth}");
    wait_for("counters equal RQ's registries", Duration::from_secs(20), || {
        m("redline_queue_jobs_completed_total", "") == Some(164.0)
            && m("redline_queue_jobs_failed_total", "") == Some(8.0)
    });
    assert_rq_states(&d, port, "mix");
    let text = d.scrape();
    for counter in ["completed", "failed"] {
        for reason in ["removed", "gap", "short_ttl", "not_kept"] {
            let v = value(
                &text,
                &format!(
                    "redline_queue_count_uncertain_total{}",
                    q("rq", "mix", &format!(",counter=\"{counter}\",reason=\"{reason}\""))
                ),
            );
            assert_eq!(v, None, "{counter}/{reason}: nothing uncertain, no series");
        }
    }
    // Timed: every job RQ keeps a finite score for that redline could find; never more.
    let timed = m("redline_queue_processing_duration_seconds_count", "").expect("histogram");
    assert!((150.0..=172.0).contains(&timed), "timed {timed}");
    assert_eq!(m("redline_queue_jobs_retried_total", ""), None, "RQ keeps no retry count");

    // Requeued failed jobs leave the failed registry (flagged: a removal could hide a failure)
    // and fail again: 8 more failures.
    py("rq", "requeue", &opts(r#""x":0"#));
    wait_for("requeue seen", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(8.0)
    });
    py("rq", "work", &opts(r#""simple":true"#));
    wait_for("second failures counted", Duration::from_secs(20), || {
        m("redline_queue_jobs_failed_total", "") == Some(16.0)
    });
    assert!(
        m("redline_queue_count_uncertain_total", ",counter=\"failed\",reason=\"removed\"").unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(m("redline_queue_jobs_completed_total", ""), Some(164.0));
}

/// A job hash with a garbage or absurd enqueued_at, a job id whose hash is a string, and a
/// finished registry of the wrong type: counted as bad data and skipped; the rest of the
/// queue is still reported and the age comes from the real jobs.
#[test]
fn rq_garbage_never_poisons_the_queue() {
    let r = RedisServer::start(&[]);
    let port = r.port;
    py("rq", "add", &format!(r#"{{"port":{port},"queue":"junk","count":2}}"#));
    r.cli(&["HSET", "rq:job:j1", "enqueued_at", "yesterday", "status", "queued"]);
    r.cli(&["HSET", "rq:job:j2", "enqueued_at", "1970-01-01T00:00:01.000000Z", "status", "queued"]);
    r.cli(&["SET", "rq:job:j3", "not a hash"]);
    r.cli(&["RPUSH", "rq:queue:junk", "j1", "j2"]);
    r.cli(&["LPUSH", "rq:queue:junk", "j3"]);
    r.cli(&["SET", "rq:finished:junk", "garbage"]);
    let d = queue_daemon(&r, "      - system: rq\n");
    let m = |name: &str, rest: &str| metric(&d, "rq", "junk", name, rest);
    wait_for("junk queue read", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(5.0)
    });
    wait_for("bad data counted", Duration::from_secs(10), || {
        value(&d.scrape(), "redline_queue_read_errors_total{target=\"t\",system=\"rq\",reason=\"bad_data\"}")
            .unwrap_or(0.0)
            >= 3.0
    });
    let age = m("redline_queue_oldest_ready_age_seconds", "").expect("age");
    assert!(age < 120.0, "age from the real jobs, not from 1970: {age}");
    assert_eq!(m("redline_queue_jobs", ",state=\"completed\""), None, "wrong-type registry left out");
    assert_eq!(m("redline_queue_jobs", ",state=\"failed\""), Some(0.0));
}

/// kombu options as transport options: (sep, priority_steps); None is kombu's default.
fn celery_opts(port: u16, queue: &str, sep: Option<&str>, steps: Option<&[u8]>, rest: &str) -> String {
    let mut o = format!(r#"{{"port":{port},"queue":"{queue}""#);
    if let Some(s) = sep {
        o.push_str(&format!(r#","sep":{}"#, Value::String(s.to_string())));
    }
    if let Some(st) = steps {
        o.push_str(&format!(r#","steps":{st:?}"#));
    }
    o.push_str(rest);
    o.push('}');
    o
}

/// Default and `:` separators, with kombu's default steps and with list(range(10)):
/// discovery finds every queue, and waiting equals kombu's own size across all sub-queues.
#[test]
fn celery_separators_and_priority_steps_match_kombu() {
    let r = RedisServer::start(&[]);
    let port = r.port;
    let ten: Vec<u8> = (0..10).collect();
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a [u8]>);
    let cases: [Case; 3] =
        [("ten", None, Some(&ten)), ("colon", Some(":"), None), ("colonten", Some(":"), Some(&ten))];
    for (queue, sep, steps) in cases {
        py(
            "celery",
            "add",
            &celery_opts(port, queue, sep, steps, r#","count":2,"priorities":[0,1,3,5,7,9]"#),
        );
    }
    let d = queue_daemon(&r, "      - system: celery\n");
    for (queue, sep, steps) in cases {
        let truth = py("celery", "truth", &celery_opts(port, queue, sep, steps, ""));
        assert_eq!(num(&truth, "waiting"), 12.0, "{truth}");
        wait_for(&format!("celery {queue} equals kombu's size"), Duration::from_secs(15), || {
            metric(&d, "celery", queue, "redline_queue_jobs", ",state=\"waiting\"") == Some(12.0)
        });
        assert_eq!(metric(&d, "celery", queue, "redline_queue_jobs", ",state=\"active\""), Some(0.0));
    }
    assert_eq!(
        value(&d.scrape(), "redline_queue_discovered{target=\"t\",system=\"celery\"}"),
        Some(3.0),
        "{}",
        d.scrape()
    );
    drop(d);
    // The same queues with the settings spelled out in redline's config.
    let d = queue_daemon(
        &r,
        "      - system: celery\n        names: [colon]\n        sep: \":\"\n        priority_steps: [0, 3, 6, 9]\n",
    );
    wait_for("configured sep and steps", Duration::from_secs(15), || {
        metric(&d, "celery", "colon", "redline_queue_jobs", ",state=\"waiting\"") == Some(12.0)
    });
}

/// A burst of 5 messages consumed one every ~3 s by a real worker: the age keeps growing from
/// when the burst arrived (it used to restart at each consumed message). Then the worker dies
/// mid-task: with late acks its message stays in kombu's unacked hash, and `active` equals it.
#[test]
fn celery_burst_consumed_slowly_keeps_its_age() {
    let r = RedisServer::start(&[]);
    let port = r.port;
    let o = |rest: &str| celery_opts(port, "slow", None, None, rest);
    py("celery", "add", &o(r#","count":1,"sleep":0"#));
    let d = queue_daemon(&r, "      - system: celery\n");
    let m = |name: &str, rest: &str| metric(&d, "celery", "slow", name, rest);
    wait_for("celery queue seen", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(1.0)
    });
    // There before redline looked: its age can only be a lower bound.
    assert_eq!(m("redline_queue_oldest_ready_age_lower_bound", ""), Some(1.0));
    let worker = py_spawn("celery", "work", &o(r#","exec":true"#));
    wait_for("warm-up message consumed", Duration::from_secs(30), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(0.0)
    });
    let sent = py("celery", "add", &o(r#","count":5,"sleep":3"#));
    let first = sent[0].as_f64().expect("send time");
    // (waiting, age, seconds since the burst) each time one more message was taken.
    let mut seen: Vec<(f64, f64, f64)> = Vec::new();
    wait_for("burst drained to one", Duration::from_secs(40), || {
        let text = d.scrape();
        let get = |name: &str, rest: &str| value(&text, &format!("{name}{}", q("celery", "slow", rest)));
        let waiting = get("redline_queue_jobs", ",state=\"waiting\"").unwrap_or(-1.0);
        let age = get("redline_queue_oldest_ready_age_seconds", "").unwrap_or(-1.0);
        if (1.0..=3.0).contains(&waiting) && seen.last().is_none_or(|s| s.0 > waiting) {
            assert_ne!(get("redline_queue_oldest_ready_age_lower_bound", ""), Some(1.0));
            seen.push((waiting, age, now() - first));
        }
        waiting == 1.0
    });
    for (waiting, age, since) in &seen {
        assert!(
            *age >= since - AGE_SLACK,
            "{waiting} left: age {age}, burst sent {since:.1} s ago ({seen:?})"
        );
    }
    assert!(seen.len() >= 2 && seen.windows(2).all(|w| w[1].1 > w[0].1), "ages grow: {seen:?}");
    // Killed mid-task: the message stays unacknowledged (kombu restores it only after the
    // visibility timeout), so the numbers hold still and must equal kombu's.
    drop(worker);
    let truth = py("celery", "truth", &o(""));
    assert!(num(&truth, "unacked") <= 1.0, "{truth}");
    wait_for("waiting and active equal kombu's", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(num(&truth, "waiting"))
            && m("redline_queue_jobs", ",state=\"active\"") == Some(num(&truth, "unacked"))
    });
}

/// Tasks with a countdown are taken by a worker at once and held unacknowledged until their
/// time: 150 of them fill kombu's unacked hash past one read slice, so `active` comes from a
/// pass over several collections (flagged as an estimate) and equals kombu's count.
#[test]
fn celery_eta_tasks_are_active_counted_over_a_pass() {
    let r = RedisServer::start(&[]);
    let port = r.port;
    let o = |rest: &str| celery_opts(port, "eta", None, None, rest);
    py("celery", "add", &o(r#","count":150,"countdown":3600"#));
    let d = queue_daemon(&r, "      - system: celery\n");
    let m = |name: &str, rest: &str| metric(&d, "celery", "eta", name, rest);
    wait_for("celery queue seen", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(150.0)
    });
    let worker = py_spawn("celery", "work", &o(r#","exec":true"#));
    wait_for("the worker took every task", Duration::from_secs(40), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(0.0)
    });
    // Killed: nothing restores the messages, so kombu's numbers hold still.
    drop(worker);
    let truth = py("celery", "truth", &o(""));
    assert_eq!((num(&truth, "unacked"), num(&truth, "waiting")), (150.0, 0.0), "{truth}");
    wait_for("active equals kombu's unacked count", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"active\"") == Some(150.0)
    });
    assert_eq!(m("redline_queue_jobs_estimated", ",state=\"active\""), Some(1.0));
    assert_eq!(
        value(&d.scrape(), "redline_queue_server_jobs{target=\"t\",system=\"celery\",state=\"unacked\"}"),
        Some(150.0)
    );
}
