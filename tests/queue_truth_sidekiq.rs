//! Ground truth for Sidekiq: the real Sidekiq client and server (Debian's ruby-sidekiq, with
//! ruby-redis-namespace for namespaces) push and run the jobs, Sidekiq's own API
//! (Queue#size, Queue#latency, Stats, RetrySet, ScheduledSet) says what is true, and every
//! number is compared with redline's /metrics. Each test has its own redis-server.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{qlabels_prefixed as qp, queue_daemon, value, wait_for, Daemon, RedisServer};
use serde_json::Value;

const PRODUCERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers");

fn ruby(ns: &str, script: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new("ruby");
    cmd.current_dir(PRODUCERS).arg(script).args(args);
    if !ns.is_empty() {
        cmd.env("SIDEKIQ_NS", ns);
    }
    let out = cmd.output().expect("ruby");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script} {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or(Value::Null)
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in truth {v}"))
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Server-wide series: `{target="t",system="sidekiq"[,namespace="ns"]…}`.
fn server(d: &Daemon, name: &str, ns: &str, rest: &str) -> Option<f64> {
    let n = if ns.is_empty() { String::new() } else { format!(",namespace=\"{ns}\"") };
    value(&d.scrape(), &format!("{name}{{target=\"t\",system=\"sidekiq\"{n}{rest}}}"))
}

/// Queue size and latency, the scheduled and retry sets, processed and failed totals, with a
/// real server running successful and failing jobs, with and without a namespace.
fn sidekiq_matches_its_api(ns: &str) {
    let r = RedisServer::start(&[]);
    let port = r.port.to_string();
    let push = |queue: &str, count: &str, at: &str, class: &str| {
        ruby(ns, "sidekiq_push.rb", &[&port, queue, count, at, "-", class]);
    };
    push("default", "4", "-", "RedlineTestJob");
    push("default", "3", "-", "RedlineFailJob");
    push("default", "2", "3600", "RedlineTestJob");
    let source = if ns.is_empty() {
        "      - system: sidekiq\n".to_string()
    } else {
        format!("      - system: sidekiq\n        prefix: {ns}\n")
    };
    let d = queue_daemon(&r, &source);
    let m =
        |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", qp("sidekiq", ns, "default", rest)));
    wait_for("sidekiq queue seen", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(7.0)
    });
    wait_for("the jobs are 2 s old", Duration::from_secs(15), || {
        m("redline_queue_oldest_ready_age_seconds", "").unwrap_or(0.0) >= 2.0
    });
    let truth = ruby(ns, "sidekiq_truth.rb", &[&port, "default"]);
    let age = m("redline_queue_oldest_ready_age_seconds", "").expect("age");
    let latency_now = num(&truth, "latency") + (now() - num(&truth, "now"));
    assert!((age - latency_now).abs() <= 2.0, "age {age}, Sidekiq latency now {latency_now}");
    assert_eq!(m("redline_queue_jobs", ",state=\"waiting\""), Some(num(&truth, "size")));
    assert_ne!(m("redline_queue_oldest_ready_age_lower_bound", ""), Some(1.0));
    assert_eq!(
        server(&d, "redline_queue_server_jobs", ns, ",state=\"scheduled\""),
        Some(num(&truth, "scheduled"))
    );

    let mut cmd = Command::new("sidekiq");
    cmd.current_dir(PRODUCERS)
        .args(["-r", "./sidekiq_jobs.rb", "-q", "default", "-c", "1", "-t", "2"])
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}/0"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !ns.is_empty() {
        cmd.env("SIDEKIQ_NS", ns);
    }
    let mut worker = cmd.spawn().expect("sidekiq (Debian's ruby-sidekiq)");
    wait_for("sidekiq drained the queue", Duration::from_secs(30), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(0.0)
    });
    // Sidekiq flushes its processed/failed counts on its heartbeat and at shutdown.
    let _ = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status();
    let _ = worker.wait();
    let truth = ruby(ns, "sidekiq_truth.rb", &[&port, "default"]);
    assert_eq!(
        (num(&truth, "processed"), num(&truth, "failed"), num(&truth, "retry")),
        (7.0, 3.0, 3.0),
        "{truth}"
    );
    wait_for("server-wide numbers equal Sidekiq::Stats", Duration::from_secs(15), || {
        server(&d, "redline_queue_server_jobs_processed_total", ns, "") == Some(7.0)
            && server(&d, "redline_queue_server_jobs_failed_total", ns, "") == Some(3.0)
            && server(&d, "redline_queue_server_jobs", ns, ",state=\"retry\"") == Some(3.0)
    });
    assert_eq!(m("redline_queue_oldest_ready_age_seconds", ""), Some(0.0));
    // Sidekiq keeps no per-queue finished counts: redline reports none rather than a guess.
    assert_eq!(m("redline_queue_jobs_completed_total", ""), None);
}

#[test]
fn sidekiq_without_namespace_matches_its_api() {
    sidekiq_matches_its_api("");
}

#[test]
fn sidekiq_namespace_matches_its_api() {
    sidekiq_matches_its_api("myapp");
}

/// A job at the tail (the oldest position) with enqueued_at=1 would make Sidekiq's own latency
/// 56 years; redline counts it as bad data, skips it and flags the age as a lower bound.
#[test]
fn sidekiq_absurd_enqueued_at_is_skipped() {
    let r = RedisServer::start(&[]);
    let port = r.port.to_string();
    ruby("", "sidekiq_push.rb", &[&port, "mail", "2"]);
    r.cli(&["RPUSH", "queue:mail", r#"{"class":"X","args":[],"jid":"j","enqueued_at":1}"#]);
    let d = queue_daemon(&r, "      - system: sidekiq\n");
    let m =
        |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", qp("sidekiq", "", "mail", rest)));
    wait_for("sidekiq queue seen", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(3.0)
    });
    let truth = ruby("", "sidekiq_truth.rb", &[&port, "mail"]);
    assert!(num(&truth, "latency") > 1e9, "Sidekiq itself trusts the garbage: {truth}");
    let age = m("redline_queue_oldest_ready_age_seconds", "").expect("age");
    assert!(age < 60.0, "age from the real jobs: {age}");
    assert_eq!(m("redline_queue_oldest_ready_age_lower_bound", ""), Some(1.0));
    assert!(
        value(
            &d.scrape(),
            "redline_queue_read_errors_total{target=\"t\",system=\"sidekiq\",reason=\"bad_data\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
}

/// Garbage in Sidekiq's counters (inf, text) is counted and the counter left out, never
/// reported as inf or a wrapped integer.
#[test]
fn sidekiq_garbage_counters_are_not_reported() {
    let r = RedisServer::start(&[]);
    let port = r.port.to_string();
    ruby("", "sidekiq_push.rb", &[&port, "mail", "1"]);
    r.cli(&["SET", "stat:processed", "inf"]);
    r.cli(&["SET", "stat:failed", "lots"]);
    let d = queue_daemon(&r, "      - system: sidekiq\n");
    wait_for("sidekiq queue seen", Duration::from_secs(15), || {
        value(&d.scrape(), &format!("redline_queue_jobs{}", qp("sidekiq", "", "mail", ",state=\"waiting\"")))
            == Some(1.0)
    });
    let text = d.scrape();
    assert!(!text.contains("redline_queue_server_jobs_processed_total"), "{text}");
    assert!(!text.contains("redline_queue_server_jobs_failed_total"), "{text}");
    assert!(
        value(&text, "redline_queue_read_errors_total{target=\"t\",system=\"sidekiq\",reason=\"bad_data\"}")
            .unwrap_or(0.0)
            >= 2.0
    );
}

/// A job larger than redline decodes (64 KiB) at the tail: its age comes from the `enqueued_at`
/// Sidekiq's client writes last, even when the arguments hold the same text.
#[test]
fn sidekiq_big_tail_job_is_timed_without_decoding_it() {
    let r = RedisServer::start(&[]);
    let at = now() - 120.0;
    let filler = "x".repeat(100_000);
    let job =
        format!(r#"{{"class":"X","args":["{filler}",{{"enqueued_at":1}}],"jid":"j","enqueued_at":{at}}}"#);
    r.cli(&["RPUSH", "queue:big", &job]);
    r.cli(&["SADD", "queues", "big"]);
    let d = queue_daemon(&r, "      - system: sidekiq\n");
    let m = |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", qp("sidekiq", "", "big", rest)));
    wait_for("sidekiq queue seen", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(1.0)
    });
    let age = m("redline_queue_oldest_ready_age_seconds", "").expect("age");
    assert!((110.0..600.0).contains(&age), "age {age}");
    assert_eq!(m("redline_queue_oldest_ready_age_lower_bound", ""), None, "exact: no flag");
}

/// A queue whose jobs average over 128 KiB: no job is copied into the script (a 50 MiB job costs
/// Redis ~0.2 s per copy); the age is flagged a lower bound instead.
#[test]
fn sidekiq_queue_of_huge_jobs_is_not_read_and_its_age_is_flagged() {
    let r = RedisServer::start(&[]);
    r.cli(&["EVAL", "redis.call('RPUSH', KEYS[1], string.rep('x', 300000))", "1", "queue:huge"]);
    r.cli(&["SADD", "queues", "huge"]);
    let d = queue_daemon(&r, "      - system: sidekiq\n");
    let m =
        |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", qp("sidekiq", "", "huge", rest)));
    wait_for("sidekiq queue seen", Duration::from_secs(15), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(1.0)
    });
    assert_eq!(m("redline_queue_oldest_ready_age_lower_bound", ""), Some(1.0));
    assert_eq!(
        value(
            &d.scrape(),
            "redline_queue_read_errors_total{target=\"t\",system=\"sidekiq\",reason=\"bad_data\"}"
        ),
        None,
        "a job not read is not bad data"
    );
}
