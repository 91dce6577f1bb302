//! BullMQ (v6 and v5) and Bull queues, created and worked by the real npm libraries against a
//! spawned redis-server, read by the real daemon.

mod common;

use std::time::Duration;

use common::{
    bull_js, bull_js_spawn, qlabels as q, qlabels_prefixed as qp, queue_daemon as daemon, value, wait_for,
    Daemon, RedisServer,
};

#[test]
fn bullmq_states_age_counters_durations_and_workers() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"pay","count":5}}"#));
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"pay","count":2,"delay":3600000}}"#));
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"pay","count":3,"priority":2}}"#));
    let d = daemon(&r, "      - system: bullmq\n        names: [pay]\n");
    let m = |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", q("bullmq", "pay", rest)));
    wait_for("waiting=5", Duration::from_secs(10), || {
        m("redline_queue_jobs", ",state=\"waiting\"") == Some(5.0)
    });
    assert_eq!(m("redline_queue_jobs", ",state=\"delayed\""), Some(2.0));
    assert_eq!(m("redline_queue_jobs", ",state=\"prioritized\""), Some(3.0));
    // Adds are counted from the events stream, from redline's first look on.
    assert_eq!(m("redline_queue_jobs_added_total", ""), Some(0.0));
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"pay","count":2,"delay":3600000}}"#));
    wait_for("2 added", Duration::from_secs(10), || m("redline_queue_jobs_added_total", "") == Some(2.0));
    assert_eq!(m("redline_queue_paused", ""), None, "appears once the queue is first paused");
    // The oldest ready job ages while nobody works the queue.
    let age1 = m("redline_queue_oldest_ready_age_seconds", "").expect("age");
    std::thread::sleep(Duration::from_millis(2100));
    let age2 = m("redline_queue_oldest_ready_age_seconds", "").expect("age");
    assert!(age2 >= age1 + 1.0, "age must grow: {age1} -> {age2}");

    // A real worker: every 4th job fails (attempts 1), the rest complete.
    let mut w = bull_js_spawn(
        "bullmq",
        "work",
        &format!(r#"{{"port":{p},"queue":"pay","failEvery":4,"seconds":4}}"#),
    );
    wait_for("worker seen", Duration::from_secs(10), || m("redline_queue_workers", "") == Some(1.0));
    wait_for("8 ready jobs finished", Duration::from_secs(15), || {
        m("redline_queue_jobs_completed_total", "").unwrap_or(0.0)
            + m("redline_queue_jobs_failed_total", "").unwrap_or(0.0)
            >= 8.0
    });
    let _ = w.wait();
    assert_eq!(m("redline_queue_jobs_failed_total", ""), Some(2.0));
    assert_eq!(m("redline_queue_jobs_completed_total", ""), Some(6.0));
    assert_eq!(
        m("redline_queue_oldest_ready_age_seconds", ""),
        Some(0.0),
        "only far-future delayed jobs remain"
    );
    let text = d.scrape();
    assert_eq!(
        value(&text, &format!("redline_queue_wait_duration_seconds_count{}", q("bullmq", "pay", ""))),
        Some(8.0)
    );
    assert_eq!(
        value(&text, &format!("redline_queue_processing_duration_seconds_count{}", q("bullmq", "pay", ""))),
        Some(8.0)
    );
    wait_for("worker gone", Duration::from_secs(10), || m("redline_queue_workers", "") == Some(0.0));
    let complaints = common::promtool_check_metrics(&d.scrape());
    assert!(complaints.trim().is_empty(), "{complaints}");
}

#[test]
fn discovery_finds_bullmq5_bullmq6_and_bull_with_custom_and_hash_tag_prefixes() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"v6","count":2}}"#));
    bull_js("bullmq5", "add", &format!(r#"{{"port":{p},"queue":"v5","count":3}}"#));
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"tagged","prefix":"{{jobs}}","count":4}}"#));
    bull_js("bull", "add", &format!(r#"{{"port":{p},"queue":"old","count":1,"delay":3600000}}"#));
    let d = daemon(
        &r,
        "      - system: bullmq\n      - system: bullmq\n        prefix: \"{jobs}\"\n      - system: bull\n",
    );
    let m = |sys: &str, prefix: &str, queue: &str, rest: &str| {
        value(&d.scrape(), &format!("redline_queue_jobs{}", qp(sys, prefix, queue, rest)))
    };
    wait_for("all discovered", Duration::from_secs(15), || {
        m("bullmq", "bull", "v6", ",state=\"waiting\"") == Some(2.0)
            && m("bullmq", "bull", "v5", ",state=\"waiting\"") == Some(3.0)
            && m("bullmq", "{jobs}", "tagged", ",state=\"waiting\"") == Some(4.0)
            && m("bull", "bull", "old", ",state=\"delayed\"") == Some(1.0)
    });
    let text = d.scrape();
    // Bull is not mistaken for BullMQ (and the reverse), and Bull has no prioritized state.
    assert!(!text.contains("system=\"bullmq\",prefix=\"bull\",queue=\"old\""), "{text}");
    assert!(!text.contains("system=\"bull\",prefix=\"bull\",queue=\"v6\""), "{text}");
    assert!(!text.contains(&format!("redline_queue_jobs{}", q("bull", "old", ",state=\"prioritized\""))));
    assert_eq!(
        value(&text, "redline_queue_discovered{target=\"t\",system=\"bull\",prefix=\"bull\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "redline_queue_discovered{target=\"t\",system=\"bullmq\",prefix=\"{jobs}\"}"),
        Some(1.0)
    );
}

/// When more queues exist than `limits.max_queues`, the kept ones are the named ones and then
/// the largest backlogs (not the alphabetically first), and the rest are counted as dropped.
#[test]
fn queue_cap_keeps_named_queues_then_the_largest_backlogs() {
    let r = RedisServer::start(&[]);
    for (name, count) in [("a", 1), ("b", 60), ("c", 1), ("d", 1), ("payments", 40), ("zeta", 7)] {
        bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"{name}","count":{count}}}"#, r.port));
    }
    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nlimits:\n  max_queues: 3\n  discovery_interval: 1s\nredis:\n  - name: t\n    url: {}\n    queues:\n      - system: bullmq\n        names: [b]\n        discover: true\n",
            r.url()
        ),
        &[],
    );
    let kept = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = ["a", "b", "c", "d", "payments", "zeta"]
            .iter()
            .filter(|n| {
                value(t, &format!("redline_queue_oldest_ready_age_seconds{}", q("bullmq", n, ""))).is_some()
            })
            .map(|n| n.to_string())
            .collect();
        v.sort();
        v
    };
    wait_for("payments and zeta kept beside the named b", Duration::from_secs(15), || {
        kept(&d.scrape()) == ["b", "payments", "zeta"]
    });
    let text = d.scrape();
    assert_eq!(value(&text, "redline_queue_dropped{target=\"t\"}"), Some(3.0), "{text}");
    assert_eq!(text.matches("redline_queue_oldest_ready_age_seconds{").count(), 3, "{text}");
}

#[test]
fn garbage_keys_and_jobs_are_skipped_and_counted_while_other_queues_report() {
    let r = RedisServer::start(&[]);
    bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"good","count":2}}"#, r.port));
    // Keys of the wrong type, a job hash without a timestamp, a deleted job id in wait.
    r.cli(&["SET", "bull:junk:wait", "not-a-list"]);
    // Queues as BullMQ leaves them (its meta hash), with damaged keys.
    r.cli(&["HSET", "bull:junk:meta", "opts.maxLenEvents", "10000"]);
    r.cli(&["LPUSH", "bull:junk2:wait", "1"]);
    r.cli(&["HSET", "bull:junk2:1", "timestamp", "garbage", "data", "{not json"]);
    r.cli(&["HSET", "bull:junk2:meta", "opts.maxLenEvents", "10000"]);
    r.cli(&["SADD", "bull:junk2:completed", "x"]);
    let d = daemon(&r, "      - system: bullmq\n");
    let read_errors = || {
        value(
            &d.scrape(),
            "redline_queue_read_errors_total{target=\"t\",system=\"bullmq\",reason=\"bad_data\"}",
        )
    };
    wait_for("bad data counted", Duration::from_secs(10), || read_errors().unwrap_or(0.0) >= 3.0);
    let text = d.scrape();
    assert_eq!(
        value(&text, &format!("redline_queue_jobs{}", q("bullmq", "good", ",state=\"waiting\""))),
        Some(2.0)
    );
    // The rest of a damaged queue is still reported.
    assert_eq!(
        value(&text, &format!("redline_queue_jobs{}", q("bullmq", "junk2", ",state=\"waiting\""))),
        Some(1.0)
    );
    assert_eq!(
        value(&text, &format!("redline_queue_jobs{}", q("bullmq", "junk", ",state=\"active\""))),
        Some(0.0)
    );
    assert_eq!(value(&text, "redline_target_up{collector=\"redis\",target=\"t\"}"), Some(1.0));
    // A queue deleted mid-run disappears without errors.
    r.cli(&["DEL", "bull:good:wait", "bull:good:meta", "bull:good:id", "bull:good:events"]);
    wait_for("deleted queue forgotten", Duration::from_secs(10), || !d.scrape().contains("queue=\"good\""));
}

/// A worker killed mid-job: its job stalls (lock expired) and the longest-running age grows;
/// a new worker's stalled check takes it back and finishes it, and both gauges clear.
#[test]
fn killed_worker_stalls_its_job_until_another_worker_recovers_it() {
    for lib in ["bullmq", "bull"] {
        let r = RedisServer::start(&[]);
        let p = r.port;
        bull_js(lib, "add", &format!(r#"{{"port":{p},"queue":"slow","count":1}}"#));
        let d = daemon(&r, &format!("      - system: {lib}\n        names: [slow]\n"));
        let m = |name: &str, rest: &str| value(&d.scrape(), &format!("{name}{}", q(lib, "slow", rest)));
        // Short locks and stalled checks on both workers (BullMQ rate-limits the check
        // queue-wide by the last worker's interval).
        let worker = |job_ms: u32, seconds: u32| {
            bull_js_spawn(
                lib,
                "work",
                &format!(
                    r#"{{"port":{p},"queue":"slow","ms":{job_ms},"seconds":{seconds},"lockDuration":1500,"stalledInterval":500}}"#
                ),
            )
        };
        let mut busy = worker(60_000, 60);
        // A live worker renews its lock: running, not stalled.
        wait_for(&format!("{lib}: job running for 2s"), Duration::from_secs(15), || {
            common::age(m("redline_queue_oldest_active_timestamp_seconds", "")).unwrap_or(0.0) >= 2.0
        });
        // Sparse: no series until a job first stalls.
        assert_eq!(m("redline_queue_jobs_stalled", ""), None, "{lib}");
        assert_eq!(m("redline_queue_jobs", ",state=\"active\""), Some(1.0), "{lib}");

        let _ = busy.kill();
        let _ = busy.wait();
        wait_for(&format!("{lib}: job stalled"), Duration::from_secs(10), || {
            m("redline_queue_jobs_stalled", "") == Some(1.0)
        });

        let mut rescuer = worker(10, 8);
        wait_for(&format!("{lib}: recovered and finished"), Duration::from_secs(15), || {
            let t = d.scrape();
            value(&t, &format!("redline_queue_jobs_stalled{}", q(lib, "slow", ""))) == Some(0.0)
                && value(&t, &format!("redline_queue_jobs{}", q(lib, "slow", ",state=\"completed\"")))
                    == Some(1.0)
                && value(&t, &format!("redline_queue_oldest_active_timestamp_seconds{}", q(lib, "slow", "")))
                    .is_none()
        });
        let _ = rescuer.kill();
        let _ = rescuer.wait();
    }
}

/// Issue 12's series budget, from a real scrape with the default limits: at most 20 series per
/// queue (no per-queue histograms), while every queue's finished jobs still feed the
/// histograms of their system and prefix, and `limits.queue_histograms` patterns opt queues in.
#[test]
fn default_limits_keep_a_queue_within_20_series_and_aggregate_durations() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    for name in ["s1", "s2", "s3"] {
        bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"{name}","count":3}}"#));
    }
    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nlimits:\n  discovery_interval: 1s\nredis:\n  - name: t\n    url: {}\n    queues:\n      - system: bullmq\n",
            r.url()
        ),
        &[],
    );
    let m = |text: &str, name: &str, queue: &str| value(text, &format!("{name}{}", q("bullmq", queue, "")));
    wait_for("3 queues read", Duration::from_secs(10), || {
        let t = d.scrape();
        ["s1", "s2", "s3"].iter().all(|s| m(&t, "redline_queue_oldest_ready_age_seconds", s).is_some())
    });
    for (queue, fail_every) in [("s1", 2), ("s2", 0)] {
        bull_js(
            "bullmq",
            "work",
            &format!(r#"{{"port":{p},"queue":"{queue}","failEvery":{fail_every},"until":3,"seconds":20}}"#),
        );
    }
    let all = "{target=\"t\",system=\"bullmq\",prefix=\"bull\"}";
    wait_for("6 jobs timed in the system-wide histograms", Duration::from_secs(15), || {
        value(&d.scrape(), &format!("redline_queue_all_processing_duration_seconds_count{all}")) == Some(6.0)
    });
    let text = d.scrape();
    assert_eq!(value(&text, &format!("redline_queue_all_wait_duration_seconds_count{all}")), Some(6.0));
    for queue in ["s1", "s2", "s3"] {
        let needle = format!("queue=\"{queue}\"");
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && l.contains(&needle)).collect();
        assert!(
            (10..=20).contains(&series.len()),
            "{queue}: {} series, budget 20:\n{}",
            series.len(),
            series.join("\n")
        );
        assert!(
            m(&text, "redline_queue_wait_duration_seconds_count", queue).is_none(),
            "no per-queue histogram by default"
        );
    }
    let done = m(&text, "redline_queue_jobs_completed_total", "s1").unwrap_or(0.0)
        + m(&text, "redline_queue_jobs_failed_total", "s1").unwrap_or(0.0);
    assert_eq!(done, 3.0);
    drop(d);

    // A pattern opts queues in: s1 gets its own histograms (its 3 jobs are history by now, so the
    // new histogram starts empty and counts the next ones), s2 does not.
    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nlimits:\n  discovery_interval: 1s\n  queue_histograms: [\"s[1]\"]\nredis:\n  - name: t\n    url: {}\n    queues:\n      - system: bullmq\n",
            r.url()
        ),
        &[],
    );
    wait_for("s1 histogram exposed", Duration::from_secs(10), || {
        m(&d.scrape(), "redline_queue_wait_duration_seconds_count", "s1").is_some()
    });
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"s1","count":2}}"#));
    bull_js("bullmq", "work", &format!(r#"{{"port":{p},"queue":"s1","until":2,"seconds":20}}"#));
    wait_for("2 new s1 jobs timed", Duration::from_secs(15), || {
        m(&d.scrape(), "redline_queue_processing_duration_seconds_count", "s1") == Some(2.0)
    });
    let text = d.scrape();
    assert!(m(&text, "redline_queue_wait_duration_seconds_count", "s2").is_none());
    assert_eq!(value(&text, &format!("redline_queue_all_wait_duration_seconds_count{all}")), Some(2.0));
}

/// Jobs finish between the rounds of a BullMQ read (plain reads, not one atomic script): a job
/// that finished has no lock, and must not count as stalled; the longest-running job's start is
/// there whenever jobs run. Helper-found: before the fix a busy queue of 5 ms jobs showed up to
/// 150 "stalled" jobs (every active one) in 16 of 20 collections, and no start timestamp in 21 of
/// 23 collections with active jobs.
#[test]
fn a_busy_queue_of_short_jobs_shows_no_false_stalls() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    let d = daemon(&r, "      - system: bullmq\n        names: [busy]\n");
    let _jobs = common::Reap(vec![
        bull_js_spawn(
            "bullmq",
            "produce",
            &format!(r#"{{"port":{p},"queue":"busy","rate":300,"seconds":12}}"#),
        ),
        bull_js_spawn(
            "bullmq",
            "work",
            &format!(r#"{{"port":{p},"queue":"busy","ms":5,"concurrency":50,"seconds":14}}"#),
        ),
    ]);
    let collected = |t: &str| {
        value(t, "redline_collector_last_success_timestamp_seconds{collector=\"redis\",target=\"t\"}")
    };
    let m = |t: &str, name: &str, rest: &str| value(t, &format!("{name}{}", q("bullmq", "busy", rest)));
    let (mut collections, mut running, mut timed) = (0, 0, 0);
    let mut last = None;
    while collections < 10 {
        let mut t = String::new();
        wait_for("the next collection", Duration::from_secs(5), || {
            t = d.scrape();
            collected(&t) != last
        });
        last = collected(&t);
        collections += 1;
        let stalled = m(&t, "redline_queue_jobs_stalled", "");
        assert!(stalled.is_none(), "no job stalled, every worker is alive: {stalled:?}");
        if m(&t, "redline_queue_jobs", ",state=\"active\"").unwrap_or(0.0) > 0.0 {
            running += 1;
            if m(&t, "redline_queue_oldest_active_timestamp_seconds", "").is_some() {
                timed += 1;
            }
        }
    }
    assert!(running >= 3, "the queue was busy in only {running} of {collections} collections");
    assert_eq!(timed, running, "collections with active jobs and their start timestamp");
}

/// A delayed job promoted to `wait` has been ready since it fell due. BullMQ sets a promoted
/// job's `delay` to 0, so its hash alone says it was ready when it was added: the ready
/// timestamp jumped back by the whole delay when a worker promoted it (helper-found). redline
/// takes the due time from the job's `delayed` event.
#[test]
fn a_promoted_delayed_job_keeps_its_due_time() {
    let r = RedisServer::start(&[]);
    let p = r.port;
    let d = daemon(&r, "      - system: bullmq\n        names: [promo]\n");
    let m = |t: &str, name: &str, rest: &str| value(t, &format!("{name}{}", q("bullmq", "promo", rest)));
    // redline's first look comes first: it counts the events written after it.
    wait_for("first look", Duration::from_secs(10), || {
        m(&d.scrape(), "redline_queue_jobs", ",state=\"waiting\"").is_some()
    });
    let now_ms = || {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as f64
    };
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"promo","count":1}}"#));
    let before = now_ms();
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"promo","count":2,"delay":1500}}"#));
    let after = now_ms();
    wait_for("the delayed jobs fall due", Duration::from_secs(10), || {
        now_ms() > after + 1600.0 && m(&d.scrape(), "redline_queue_jobs", ",state=\"delayed\"") == Some(2.0)
    });
    // A worker takes the first job and promotes the two due ones, which then wait behind it.
    let _worker = common::Reap(vec![bull_js_spawn(
        "bullmq",
        "work",
        &format!(r#"{{"port":{p},"queue":"promo","ms":30000,"concurrency":1,"seconds":25}}"#),
    )]);
    let mut t = String::new();
    wait_for("two promoted jobs waiting behind a running one", Duration::from_secs(15), || {
        t = d.scrape();
        m(&t, "redline_queue_jobs", ",state=\"waiting\"") == Some(2.0)
            && m(&t, "redline_queue_jobs", ",state=\"active\"") == Some(1.0)
    });
    let ready = m(&t, "redline_queue_oldest_ready_timestamp_seconds", "").expect("ready timestamp") * 1000.0;
    assert!(
        ready >= before + 1500.0 - 5.0 && ready <= after + 1500.0 + 5.0,
        "ready at {ready}: the jobs fell due between {} and {} (added at {before}..{after})",
        before + 1500.0,
        after + 1500.0
    );
}
