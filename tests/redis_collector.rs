//! The Redis collector against real redis-server processes: the machine's local Redis for
//! the happy path, spawned instances for everything that breaks a server.

mod common;

use std::time::{Duration, Instant};

use common::{value, wait_for, Daemon, RedisServer};

fn config_for(url: &str, extra: &str) -> String {
    format!("collection:\n  interval: 1s\n  timeout: 800ms\nhost:\n  enabled: false\nredis:\n  - name: t\n    url: {url}\n{extra}")
}

fn up(d: &Daemon) -> Option<f64> {
    value(&d.scrape(), "redline_target_up{collector=\"redis\",target=\"t\"}")
}

/// Collections so far: without queues a collection's six commands fit one window, one request
/// (plus one `CLIENT SETNAME` per connection).
fn collections(d: &Daemon) -> f64 {
    value(&d.scrape(), "redline_redis_round_trips_total{target=\"t\",purpose=\"collect\"}").unwrap_or(0.0)
}

#[test]
fn local_redis_metrics_are_complete_and_pass_promtool() {
    let d = Daemon::start(
        &config_for("redis://127.0.0.1:6379", "").replace("enabled: false", "enabled: true"),
        &[],
    );
    wait_for("ready", Duration::from_secs(10), || {
        common::get(&d.addr, "/-/ready", None).map(|r| r.0) == Ok(200)
    });
    let names = [
        "redline_target_up{collector=\"redis\",target=\"t\"} 1",
        "redline_redis_memory_used_bytes{target=\"t\"}",
        "redline_redis_memory_max_bytes{target=\"t\"}",
        "redline_redis_clients_connected{target=\"t\"}",
        "redline_redis_clients_max{target=\"t\"}",
        "redline_redis_evicted_keys_total{target=\"t\"}",
        "redline_redis_command_calls_total{target=\"t\",cmd=\"info\"}",
        "redline_redis_command_latency_seconds_bucket{",
        "redline_redis_slowlog_length{target=\"t\"}",
        "redline_redis_command_allowed{target=\"t\",command=\"config\"} 1",
        "redline_host_cpu_busy_ratio",
        "redline_host_memory_available_bytes",
        "redline_host_filesystem_size_bytes{",
        "redline_process_resident_memory_bytes",
        "redline_collector_success{collector=\"host\",target=\"localhost\"} 1",
        "redline_collector_last_success_timestamp_seconds{collector=\"redis\",target=\"t\"}",
        "redline_build_info{version=",
    ];
    // The host's CPU ratio needs two samples, the slowlog a baseline: wait until all are there.
    wait_for("every family exposed", Duration::from_secs(10), || {
        let t = d.scrape();
        names.iter().all(|n| t.contains(n))
    });
    let text = d.scrape();
    for name in names {
        assert!(text.contains(name), "missing {name}\n{text}");
    }
    let complaints = common::promtool_check_metrics(&text);
    assert!(complaints.trim().is_empty(), "promtool check metrics: {complaints}");

    let (_, om) =
        common::get(&d.addr, "/metrics", Some("application/openmetrics-text; version=1.0.0")).expect("om");
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE redline_redis_evicted_keys counter"));
    assert!(d.terminate().success(), "SIGTERM must stop redline cleanly");
}

#[test]
fn one_round_trip_and_no_new_connection_per_collection() {
    let r = RedisServer::start(&[]);
    let d = Daemon::start(&config_for(&r.url(), ""), &[]);
    wait_for("up", Duration::from_secs(10), || up(&d) == Some(1.0));
    let conns = |r: &RedisServer| {
        let info = r.cli(&["INFO", "stats"]);
        value(&info.replace(':', " "), "total_connections_received").unwrap_or(0.0)
    };
    let before = conns(&r);
    let trips_now = collections(&d);
    wait_for("three more collections", Duration::from_secs(10), || collections(&d) >= trips_now + 3.0);
    let after = conns(&r);
    // Only the two redis-cli calls themselves may add connections.
    assert!(after - before <= 1.0, "redline opened new connections: {before} -> {after}");
}

#[test]
fn redline_names_its_connection_so_slowlog_and_client_list_entries_are_attributable() {
    let r = RedisServer::start(&[]);
    let d = Daemon::start(&config_for(&r.url(), ""), &[]);
    wait_for("up", Duration::from_secs(10), || up(&d) == Some(1.0));
    let list = r.cli(&["CLIENT", "LIST"]);
    assert!(list.lines().any(|l| l.split(' ').any(|f| f == "name=redline")), "{list}");
}

#[test]
fn redis_down_at_start_then_up() {
    let port = common::free_port();
    let d = Daemon::start(&config_for(&format!("redis://127.0.0.1:{port}"), ""), &[]);
    wait_for("up=0", Duration::from_secs(10), || up(&d) == Some(0.0));
    assert_eq!(common::get(&d.addr, "/-/healthy", None).map(|r| r.0), Ok(200));
    // Now a server appears on that port.
    let _r = RedisServer::start_on(port, &[]);
    wait_for("up=1 after Redis appears", Duration::from_secs(20), || up(&d) == Some(1.0));
}

#[test]
fn redis_killed_while_running_goes_down_and_recovers() {
    let mut r = RedisServer::start(&[]);
    let d = Daemon::start(&config_for(&r.url(), ""), &[]);
    wait_for("up=1", Duration::from_secs(10), || up(&d) == Some(1.0));
    r.kill();
    wait_for("up=0 after kill", Duration::from_secs(10), || up(&d) == Some(0.0));
    let text = d.scrape();
    assert!(!text.contains("redline_redis_memory_used_bytes{target=\"t\"}"), "stale data served:\n{text}");
    assert!(
        value(&text, "redline_collector_errors_total{collector=\"redis\",target=\"t\"}").unwrap_or(0.0)
            >= 1.0
    );
    r.restart();
    wait_for("up=1 after restart", Duration::from_secs(30), || up(&d) == Some(1.0));
    let log = d.log_text();
    // Failures are logged on change, not once per collection.
    assert!(log.matches("collection failed").count() <= 3, "{log}");
    assert!(log.contains("collection recovered"), "{log}");
}

#[test]
fn wrong_password_is_down_and_never_printed() {
    let r = RedisServer::start(&["--requirepass", "right-pass-123"]);
    let url = r.url().replace("redis://", "redis://:Wr0ngSecretXyz@");
    let d = Daemon::start(&config_for(&url, ""), &[]);
    wait_for("up=0", Duration::from_secs(10), || up(&d) == Some(0.0));
    let text = d.scrape();
    let log = d.log_text();
    assert!(log.contains("collection failed"), "the failure is logged: {log}");
    for s in [&text, &log] {
        assert!(!s.contains("Wr0ngSecretXyz"), "password leaked: {s}");
        assert!(!s.contains("right-pass-123"));
    }
    drop(d);

    // The same password from an env var works.
    let d = Daemon::start(
        &config_for(&r.url(), "    password_env: REDLINE_TEST_PW\n"),
        &[("REDLINE_TEST_PW", "right-pass-123")],
    );
    wait_for("up=1 with env password", Duration::from_secs(10), || up(&d) == Some(1.0));
    assert!(!d.log_text().contains("right-pass-123"));
}

#[test]
fn stopped_redis_does_not_block_scrapes() {
    let r = RedisServer::start(&[]);
    let d = Daemon::start(&config_for(&r.url(), ""), &[]);
    wait_for("up=1", Duration::from_secs(10), || up(&d) == Some(1.0));
    r.signal("STOP");
    wait_for("up=0 while Redis is frozen", Duration::from_secs(10), || up(&d) == Some(0.0));
    // Scrapes keep answering from the snapshot while the target hangs.
    for _ in 0..5 {
        let t = Instant::now();
        let (status, _) = common::get(&d.addr, "/metrics", None).expect("scrape while Redis is frozen");
        assert_eq!(status, 200);
        assert!(t.elapsed() < Duration::from_secs(2), "scrape waited on the frozen target");
    }
    assert!(d.log_text().contains("timed out"), "{}", d.log_text());
    r.signal("CONT");
    wait_for("up=1 after SIGCONT", Duration::from_secs(30), || up(&d) == Some(1.0));
}

#[test]
fn refused_commands_become_capability_metrics_logged_once() {
    // Managed Redis services disable CONFIG and LATENCY; renaming them away does the same.
    let r = RedisServer::start(&["--rename-command", "CONFIG", "", "--rename-command", "LATENCY", ""]);
    let d = Daemon::start(&config_for(&r.url(), ""), &[]);
    wait_for("up=1", Duration::from_secs(10), || up(&d) == Some(1.0));
    // Several collections after the refusal: it must not be logged again.
    let first = collections(&d);
    wait_for("three more collections", Duration::from_secs(10), || collections(&d) >= first + 3.0);
    let text = d.scrape();
    assert_eq!(
        value(&text, "redline_redis_command_allowed{target=\"t\",command=\"config\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "redline_redis_command_allowed{target=\"t\",command=\"latency_latest\"}"),
        Some(0.0)
    );
    assert_eq!(value(&text, "redline_redis_command_allowed{target=\"t\",command=\"slowlog\"}"), Some(1.0));
    // INFO still provides maxclients on Redis 7, so nothing is lost.
    assert!(value(&text, "redline_redis_clients_max{target=\"t\"}").is_some());
    let log = d.log_text();
    assert_eq!(log.matches("Redis refused config").count(), 1, "{log}");
    assert_eq!(value(&text, "redline_target_up{collector=\"redis\",target=\"t\"}"), Some(1.0));
}

#[test]
fn slowlog_reports_the_slowest_new_entry() {
    let r = RedisServer::start(&["--slowlog-log-slower-than", "100000", "--enable-debug-command", "yes"]);
    let d = Daemon::start(&config_for(&r.url(), ""), &[]);
    wait_for("up=1", Duration::from_secs(10), || up(&d) == Some(1.0));
    r.cli(&["DEBUG", "SLEEP", "0.2"]);
    wait_for("slowlog new max >= 0.2s", Duration::from_secs(10), || {
        value(&d.scrape(), "redline_redis_slowlog_new_max_duration_seconds{target=\"t\"}").unwrap_or(0.0)
            >= 0.19
    });
    assert!(value(&d.scrape(), "redline_redis_slowlog_entries_total{target=\"t\"}").unwrap_or(0.0) >= 1.0);
}

#[test]
fn slowlog_is_seen_again_after_a_redis_restart() {
    let mut r = RedisServer::start(&["--slowlog-log-slower-than", "100000", "--enable-debug-command", "yes"]);
    let d = Daemon::start(&config_for(&r.url(), ""), &[]);
    wait_for("up=1", Duration::from_secs(10), || up(&d) == Some(1.0));
    let entries = || value(&d.scrape(), "redline_redis_slowlog_entries_total{target=\"t\"}");
    for _ in 0..3 {
        r.cli(&["DEBUG", "SLEEP", "0.12"]);
    }
    wait_for("three slow entries", Duration::from_secs(10), || entries() == Some(3.0));

    // A restarted server numbers its slow log from 0 again: its entries must still count.
    r.kill();
    wait_for("up=0 after kill", Duration::from_secs(10), || up(&d) == Some(0.0));
    r.restart();
    wait_for("up=1 after restart", Duration::from_secs(10), || up(&d) == Some(1.0));
    r.cli(&["DEBUG", "SLEEP", "0.25"]);
    wait_for("the restarted server's slow entry seen", Duration::from_secs(10), || {
        let t = d.scrape();
        value(&t, "redline_redis_slowlog_new_max_duration_seconds{target=\"t\"}").unwrap_or(0.0) >= 0.24
            && value(&t, "redline_redis_slowlog_entries_total{target=\"t\"}") == Some(1.0)
    });
}
