//! RQ, Celery, Sidekiq and Redis Streams, each fed by its real library (or, for streams, the
//! real Redis commands) against a spawned redis-server.

mod common;

use std::time::Duration;

use common::{producer, qlabels as q, qlabels_prefixed as qp, queue_daemon, value, wait_for, RedisServer};

#[test]
fn rq_queue_registries_age_and_counters() {
    let r = RedisServer::start(&[]);
    let port = r.port.to_string();
    let opts = |o: &str| format!("{{\"port\":{port},{o}}}");
    producer("python3", "py_queues.py", &["rq", "add", &opts("\"queue\":\"mail\",\"count\":3")]);
    producer(
        "python3",
        "py_queues.py",
        &["rq", "add", &opts("\"queue\":\"mail\",\"count\":1,\"scheduled_in\":3600")],
    );
    let d = queue_daemon(&r, "      - system: rq\n");
    let m = |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", q("rq", "mail", rest)));
    wait_for("rq discovered", Duration::from_secs(10), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(3.0)
    });
    assert_eq!(m("redline_queue_jobs", ",state=\"delayed\""), Some(1.0));
    std::thread::sleep(Duration::from_millis(1100));
    assert!(m("redline_queue_oldest_ready_age_seconds", "").unwrap_or(0.0) >= 1.0);
    producer(
        "python3",
        "py_queues.py",
        &["rq", "add", &opts("\"queue\":\"mail\",\"count\":2,\"fail\":true")],
    );
    producer("python3", "py_queues.py", &["rq", "work", &opts("\"queue\":\"mail\"")]);
    wait_for("rq finished counted", Duration::from_secs(10), || {
        m("redline_queue_jobs_completed_total", "") == Some(3.0)
            && m("redline_queue_jobs_failed_total", "") == Some(2.0)
    });
    assert_eq!(m("redline_queue_jobs", ",state=\"waiting\""), Some(0.0));
    assert_eq!(m("redline_queue_oldest_ready_age_seconds", ""), Some(0.0));
    assert_eq!(m("redline_queue_processing_duration_seconds_count", ""), Some(5.0));
}

#[test]
fn celery_priority_subqueues_unacked_and_first_seen_age() {
    let r = RedisServer::start(&[]);
    let port = r.port.to_string();
    let opts = |o: &str| format!("{{\"port\":{port},{o}}}");
    producer("python3", "py_queues.py", &["celery", "add", &opts("\"queue\":\"reports\",\"count\":2")]);
    producer(
        "python3",
        "py_queues.py",
        &["celery", "add", &opts("\"queue\":\"reports\",\"count\":3,\"priority\":6")],
    );
    let d = queue_daemon(&r, "      - system: celery\n");
    let m = |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", q("celery", "reports", rest)));
    wait_for("celery discovered", Duration::from_secs(10), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(5.0)
    });
    std::thread::sleep(Duration::from_millis(2100));
    let age = m("redline_queue_oldest_ready_age_seconds", "").expect("age");
    assert!(age >= 1.0, "age measured from first sight must grow: {age}");
    let mut worker = std::process::Command::new("python3")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers"))
        .args(["py_queues.py", "celery", "work", &opts("\"queue\":\"reports\",\"exec\":true")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let drained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("celery drained", Duration::from_secs(60), || {
            m("redline_queue_jobs", ",state=\"waiting\"") == Some(0.0)
        })
    }));
    let _ = worker.kill();
    let _ = worker.wait();
    if let Err(e) = drained {
        std::panic::resume_unwind(e);
    }
    assert_eq!(m("redline_queue_oldest_ready_age_seconds", ""), Some(0.0));
    let text = d.scrape();
    // Celery's own pidbox/event queues are not reported as work queues.
    assert!(!text.contains("pidbox"), "{text}");
}

#[test]
fn sidekiq_queue_latency_and_server_sets() {
    let r = RedisServer::start(&[]);
    let port = r.port.to_string();
    producer("ruby", "sidekiq_push.rb", &[&port, "critical", "4"]);
    producer("ruby", "sidekiq_push.rb", &[&port, "critical", "2", "3600"]);
    let d = queue_daemon(&r, "      - system: sidekiq\n");
    let m = |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", q("sidekiq", "critical", rest)));
    wait_for("sidekiq discovered", Duration::from_secs(10), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(4.0)
    });
    std::thread::sleep(Duration::from_millis(1100));
    assert!(m("redline_queue_oldest_ready_age_seconds", "").unwrap_or(0.0) >= 1.0);
    let text = d.scrape();
    assert_eq!(
        value(&text, "redline_queue_server_jobs{target=\"t\",system=\"sidekiq\",state=\"scheduled\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "redline_queue_server_jobs{target=\"t\",system=\"sidekiq\",state=\"retry\"}"),
        Some(0.0)
    );
    // A job that is not JSON at the tail is counted, not fatal.
    r.cli(&["RPUSH", "queue:critical", "{broken"]);
    wait_for("bad sidekiq job counted", Duration::from_secs(10), || {
        value(
            &d.scrape(),
            "redline_queue_read_errors_total{target=\"t\",system=\"sidekiq\",reason=\"bad_data\"}",
        )
        .unwrap_or(0.0)
            >= 1.0
    });
    assert_eq!(m("redline_queue_jobs", ",state=\"waiting\""), Some(5.0));
}

#[test]
fn stream_consumer_group_lag_pending_and_age() {
    let r = RedisServer::start(&[]);
    r.cli(&["XGROUP", "CREATE", "events:orders", "billing", "$", "MKSTREAM"]);
    for i in 0..5 {
        r.cli(&["XADD", "events:orders", "*", "n", &i.to_string()]);
    }
    // One consumer takes two entries and does not acknowledge them.
    r.cli(&["XREADGROUP", "GROUP", "billing", "c1", "COUNT", "2", "STREAMS", "events:orders", ">"]);
    let d = queue_daemon(&r, "      - system: stream\n        prefix: \"events:\"\n");
    let m = |name: &str, rest: &str| {
        value(&d.scrape(), &format!("{name}{}", qp("stream", "events:", "orders", rest)))
    };
    wait_for("stream discovered", Duration::from_secs(10), || {
        m("redline_queue_stream_group_lag", ",group=\"billing\"") == Some(3.0)
    });
    assert_eq!(m("redline_queue_stream_group_pending", ",group=\"billing\""), Some(2.0));
    assert_eq!(m("redline_queue_stream_group_consumers", ",group=\"billing\""), Some(1.0));
    assert_eq!(m("redline_queue_stream_length", ""), Some(5.0));
    assert_eq!(m("redline_queue_jobs", ",state=\"waiting\""), Some(3.0));
    std::thread::sleep(Duration::from_millis(1100));
    assert!(m("redline_queue_oldest_ready_age_seconds", "").unwrap_or(0.0) >= 1.0);
    assert!(
        m("redline_queue_stream_group_oldest_pending_age_seconds", ",group=\"billing\"").unwrap_or(0.0)
            >= 1.0
    );
    // A key of the wrong type where a stream is configured is counted.
    r.cli(&["SET", "events:bogus", "x"]);
    drop(d);
    let d = queue_daemon(
        &r,
        "      - system: stream\n        prefix: \"events:\"\n        names: [bogus, orders]\n",
    );
    wait_for("wrong type counted", Duration::from_secs(10), || {
        value(
            &d.scrape(),
            "redline_queue_read_errors_total{target=\"t\",system=\"stream\",reason=\"bad_data\"}",
        )
        .unwrap_or(0.0)
            >= 1.0
    });
    let complaints = common::promtool_check_metrics(&d.scrape());
    assert!(complaints.trim().is_empty(), "{complaints}");
}

/// An RQ worker killed mid-job: the started job's age grows while it runs, and once its
/// heartbeat expires (RQ's TTL is the job's remaining time + 60 s) it counts as abandoned.
#[test]
fn rq_started_job_age_and_abandoned_job() {
    let r = RedisServer::start(&[]);
    let port = r.port.to_string();
    let opts = |o: &str| format!("{{\"port\":{port},{o}}}");
    producer("python3", "py_queues.py", &["rq", "add", &opts("\"queue\":\"long\",\"slow\":6")]);
    let d = queue_daemon(&r, "      - system: rq\n        names: [long]\n");
    let m = |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", q("rq", "long", rest)));
    let mut worker = std::process::Command::new("python3")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers"))
        .args(["py_queues.py", "rq", "work", &opts("\"queue\":\"long\",\"simple\":true")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    wait_for("rq job running for 2s", Duration::from_secs(20), || {
        common::age(m("redline_queue_oldest_active_timestamp_seconds", "")).unwrap_or(0.0) >= 2.0
    });
    assert_eq!(m("redline_queue_jobs", ",state=\"active\""), Some(1.0));
    // Sparse: no series until a job first stalls.
    assert_eq!(m("redline_queue_jobs_stalled", ""), None);
    let _ = worker.kill();
    let _ = worker.wait();
    wait_for("rq job abandoned", Duration::from_secs(90), || {
        m("redline_queue_jobs_stalled", "") == Some(1.0)
    });
    assert!(common::age(m("redline_queue_oldest_active_timestamp_seconds", "")).unwrap_or(0.0) >= 60.0);
}

/// A real Sidekiq server running a long job: the process serves the queue and the job's age
/// (from the process's work hash, refreshed by its heartbeat) grows.
#[test]
fn sidekiq_running_job_age_and_workers() {
    let r = RedisServer::start(&[]);
    let port = r.port.to_string();
    producer("ruby", "sidekiq_push.rb", &[&port, "slow", "1", "-", "30"]);
    let d = queue_daemon(&r, "      - system: sidekiq\n        names: [slow]\n");
    let m = |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", q("sidekiq", "slow", rest)));
    wait_for("sidekiq job waiting, nobody serving", Duration::from_secs(10), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(1.0)
            && m("redline_queue_workers", "") == Some(0.0)
    });
    assert_eq!(m("redline_queue_oldest_active_timestamp_seconds", ""), None, "nothing runs yet");
    let mut server = std::process::Command::new("sidekiq")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers"))
        .args(["-r", "./sidekiq_jobs.rb", "-q", "slow", "-c", "1"])
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}/0"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sidekiq (Debian's ruby-sidekiq)");
    wait_for("sidekiq process and its running job seen", Duration::from_secs(20), || {
        m("redline_queue_workers", "") == Some(1.0)
            && common::age(m("redline_queue_oldest_active_timestamp_seconds", "")).unwrap_or(0.0) >= 2.0
    });
    assert_eq!(m("redline_queue_jobs", ",state=\"waiting\""), Some(0.0));
    let _ = server.kill();
    let _ = server.wait();
}
