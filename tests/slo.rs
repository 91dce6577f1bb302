//! Queue SLOs and job timestamps against a real spawned Redis, the real BullMQ library and the
//! real daemon: the oldest ready/active timestamps are the library's own job times; an SLO's
//! threshold becomes an exact histogram bucket whose count matches the jobs' own times, and a
//! hot reload moves it; `redline check` reports bad SLOs with their lines and SLOs the config
//! cannot feed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{bull_js, bull_js_spawn, qlabels as q, redis_cli, value, wait_for, Daemon, RedisServer};

/// The library's view of a BullMQ queue's job times (`bull.js times`), oldest first, in ms.
fn library_times(port: u16, queue: &str) -> (Vec<f64>, Vec<f64>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers");
    let out = Command::new("node")
        .current_dir(dir)
        .args(["bull.js", "bullmq", "times", &format!(r#"{{"port":{port},"queue":"{queue}"}}"#)])
        .output()
        .expect("node");
    assert!(out.status.success(), "bull.js times: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or("")).expect("times JSON");
    let list =
        |k: &str| v[k].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default();
    (list("wait"), list("active"))
}

/// A daemon over `r` with `thresholds`; queue `other` opts into per-queue histograms, the SLO
/// queues have theirs anyway.
fn daemon_with_thresholds(r: &RedisServer, thresholds: &str, queues: &str) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("thresholds.yaml"), thresholds).expect("write");
    Daemon::start_in(
        dir,
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nlimits:\n  queue_histograms: [other]\nthresholds:\n  file: thresholds.yaml\nredis:\n  - name: t\n    url: {}\n    queues:\n{queues}",
            r.url()
        ),
        &[],
    )
}

#[test]
fn oldest_ready_and_active_timestamps_are_the_jobs_own_times() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    let d = daemon_with_thresholds(&r, "{}\n", "      - system: bullmq\n        names: [mail]\n");
    let m = |name: &str| value(&d.scrape(), &format!("{name}{}", q("bullmq", "mail", "")));
    wait_for("queue read", Duration::from_secs(10), || m("redline_queue_oldest_ready_age_seconds").is_some());
    assert_eq!(m("redline_queue_oldest_ready_timestamp_seconds"), None, "absent while nothing is ready");

    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"mail","count":1}}"#));
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"mail","count":1}}"#));
    let (wait, _) = library_times(p, "mail");
    assert_eq!(wait.len(), 2);
    wait_for("ready timestamp", Duration::from_secs(10), || {
        m("redline_queue_oldest_ready_timestamp_seconds").is_some()
    });
    let ts = m("redline_queue_oldest_ready_timestamp_seconds").expect("ts");
    assert!(
        (ts * 1000.0 - wait[0]).abs() < 0.5,
        "redline {ts} s vs BullMQ's oldest job.timestamp {} ms",
        wait[0]
    );

    // A worker takes the oldest job and dies holding it: it is active since its processedOn.
    bull_js("bullmq", "take", &format!(r#"{{"port":{p},"queue":"mail"}}"#));
    let (wait, active) = library_times(p, "mail");
    assert_eq!((wait.len(), active.len()), (1, 1));
    wait_for("active timestamp", Duration::from_secs(10), || {
        m("redline_queue_oldest_active_timestamp_seconds").is_some()
            && m("redline_queue_oldest_ready_timestamp_seconds")
                .is_some_and(|t| (t * 1000.0 - wait[0]).abs() < 0.5)
    });
    let started = m("redline_queue_oldest_active_timestamp_seconds").expect("started");
    assert!(
        (started * 1000.0 - active[0]).abs() < 0.5,
        "redline {started} s vs job.processedOn {} ms",
        active[0]
    );

    // Drained: the ready series goes away (a page on it resolves); the age gauge reads 0.
    redis_cli(p, &["DEL", "bull:mail:wait"]);
    wait_for("ready timestamp gone", Duration::from_secs(10), || {
        m("redline_queue_oldest_ready_timestamp_seconds").is_none()
    });
    assert_eq!(m("redline_queue_oldest_ready_age_seconds"), Some(0.0));
}

#[test]
fn rq_ready_timestamp_is_the_jobs_enqueued_at() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    common::producer(
        "python3",
        "py_queues.py",
        &["rq", "add", &format!(r#"{{"port":{p},"queue":"mail","count":2}}"#)],
    );
    // RQ's own record of the queue head: its id at the front of the list, `enqueued_at` in its hash.
    let head = redis_cli(p, &["LINDEX", "rq:queue:mail", "0"]).trim().to_string();
    let enqueued = redis_cli(p, &["HGET", &format!("rq:job:{head}"), "enqueued_at"]).trim().to_string();
    let t = humantime::parse_rfc3339_weak(enqueued.trim_end_matches('Z')).expect("ISO time");
    let want = t.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64();
    let d = daemon_with_thresholds(&r, "{}\n", "      - system: rq\n        names: [mail]\n");
    let ts = format!("redline_queue_oldest_ready_timestamp_seconds{}", q("rq", "mail", ""));
    wait_for("rq ready timestamp", Duration::from_secs(10), || value(&d.scrape(), &ts).is_some());
    let got = value(&d.scrape(), &ts).expect("ts");
    assert!((got - want).abs() < 0.001, "redline {got} vs RQ enqueued_at {enqueued} ({want})");
}

const SLO_2S: &str = "slos:\n  - name: orders-start\n    queue: orders\n    system: bullmq\n    objective: 0.99\n    wait_under: 2s\n    window: 28d\n";

/// The `_bucket` sample of `hist` for queue `queue` at bound `le`.
fn bucket(text: &str, hist: &str, queue: &str, le: &str) -> Option<f64> {
    let labels = q("bullmq", queue, "");
    let inner = labels.trim_start_matches('{').trim_end_matches('}');
    text.lines()
        .filter(|l| l.starts_with(&format!("{hist}_bucket{{")))
        .find(|l| l.contains(inner) && l.contains(&format!("le=\"{le}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn slo_threshold_is_an_exact_bucket_and_hot_reload_moves_it() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    let d = daemon_with_thresholds(&r, SLO_2S, "      - system: bullmq\n        names: [orders, other]\n");
    let wait_hist = "redline_queue_wait_duration_seconds";
    wait_for("histograms exposed", Duration::from_secs(10), || {
        let t = d.scrape();
        bucket(&t, wait_hist, "orders", "2.0").is_some() && bucket(&t, wait_hist, "other", "5.0").is_some()
    });
    let t = d.scrape();
    assert_eq!(bucket(&t, wait_hist, "other", "2.0"), None, "a queue no SLO names keeps the default buckets");
    assert!(bucket(&t, "redline_queue_processing_duration_seconds", "orders", "2.0").is_none());

    // Six jobs through one waiting worker taking 700 ms each: waits of about 0, 0.7 … 3.5 s.
    let mut w =
        bull_js_spawn("bullmq", "work", &format!(r#"{{"port":{p},"queue":"orders","ms":700,"seconds":12}}"#));
    let workers = format!("redline_queue_workers{}", q("bullmq", "orders", ""));
    wait_for("worker connected", Duration::from_secs(15), || value(&d.scrape(), &workers) == Some(1.0));
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"orders","count":6}}"#));
    let count = format!("{wait_hist}_count{}", q("bullmq", "orders", ""));
    wait_for("six jobs timed", Duration::from_secs(20), || value(&d.scrape(), &count) == Some(6.0));
    let _ = w.wait();
    // The jobs' own times, as BullMQ wrote them: wait = processedOn - timestamp.
    let good = (1..=6)
        .filter(|id| {
            let f = |k: &str| {
                redis_cli(p, &["HGET", &format!("bull:orders:{id}"), k]).trim().parse::<f64>().expect(k)
            };
            (f("processedOn") - f("timestamp")) / 1000.0 <= 2.0
        })
        .count();
    assert!((1..6).contains(&good), "the test needs jobs on both sides of 2 s, got {good} good");
    assert_eq!(
        bucket(&d.scrape(), wait_hist, "orders", "2.0"),
        Some(good as f64),
        "exact count at the SLO bound"
    );

    // Hot reload: the SLO moves to 3 s; the bucket follows without a restart.
    std::fs::write(d.dir().join("thresholds.yaml"), SLO_2S.replace("wait_under: 2s", "wait_under: 3s"))
        .expect("write");
    wait_for("bucket moved to 3 s", Duration::from_secs(15), || {
        let t = d.scrape();
        bucket(&t, wait_hist, "orders", "3.0").is_some() && bucket(&t, wait_hist, "orders", "2.0").is_none()
    });
}

#[test]
fn check_reports_bad_slos_with_lines_and_queues_the_config_cannot_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |thresholds: &str| {
        std::fs::write(dir.path().join("thresholds.yaml"), thresholds).expect("write");
        std::fs::write(
            dir.path().join("redline.yaml"),
            "thresholds:\n  file: thresholds.yaml\nredis:\n  - name: jobs\n    url: redis://127.0.0.1:1\n    queues:\n      - system: bullmq\n        names: [orders]\n",
        )
        .expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_redline"))
            .args(["check", "--config"])
            .arg(dir.path().join("redline.yaml"))
            .output()
            .expect("run");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = check(SLO_2S);
    assert!(ok, "{text}");
    let (ok, text) = check(&format!(
        "{SLO_2S}  - name: bad\n    queue: orders\n    objective: 99\n    wait_under: 2s\n    window: 1d\n"
    ));
    assert!(!ok);
    assert!(text.contains("thresholds.yaml:8:"), "{text}");
    assert!(text.contains("strictly between 0 and 1") && text.contains("longest alert window"), "{text}");
    let (ok, text) = check(&SLO_2S.replace("queue: orders", "queue: ordres"));
    assert!(!ok);
    assert!(
        text.contains("SLO orders-start: queue ordres is in none of the configured queue lists"),
        "{text}"
    );
    assert!(!Path::new(&dir.path().join("rules")).exists(), "check writes nothing");
}
