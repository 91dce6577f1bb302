//! Every metric name a generated rule or dashboard queries exists in redline's real /metrics
//! output against real services: a Redis primary with a replica, a stream with a consumer
//! group, a BullMQ queue, the host, and the thresholds reloader.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{bull_js, wait_for, Daemon, PgServer, RedisServer};

fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("redline_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        // Skip words that merely contain the prefix (e.g. a rule group `redline-redis` has a dash).
        let preceded = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !preceded {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn every_metric_in_rules_and_dashboards_is_exposed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let primary = RedisServer::start(&[]);
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    primary.cli(&["XGROUP", "CREATE", "events:orders", "billing", "$", "MKSTREAM"]);
    primary.cli(&["XADD", "events:orders", "*", "n", "1"]);
    // Error counters exist once something was skipped: a garbage BullMQ key, an RQ registry
    // of the wrong type (RedlineQueueReadErrors watches both).
    primary.cli(&["HSET", "bull:junk:meta", "opts.maxLenEvents", "10000"]);
    primary.cli(&["SET", "bull:junk:wait", "not-a-list"]);
    primary.cli(&["SET", "rq:queues", "not-a-set"]);
    bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"emails","count":2}}"#, primary.port));
    bull_js("bullmq", "take", &format!(r#"{{"port":{},"queue":"emails"}}"#, primary.port));
    // `redline_queue_paused` appears once a queue was paused, `redline_queue_jobs_stalled` once a
    // job has stalled (the taken job loses its lock).
    bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"held","count":1}}"#, primary.port));
    bull_js("bullmq", "pause", &format!(r#"{{"port":{},"queue":"held"}}"#, primary.port));
    primary.cli(&[
        "EVAL",
        "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end",
        "0",
        "bull:emails:*:lock",
    ]);
    let pg = PgServer::start(&["shared_preload_libraries=pg_stat_statements"]);
    pg.psql("postgres", "CREATE EXTENSION pg_stat_statements");
    pg.psql("postgres", "SELECT pg_create_physical_replication_slot('spare')");
    let standby = PgServer::standby_of(&pg);

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(root.join("rules/thresholds.yaml"), dir.path().join("thresholds.yaml")).expect("copy");
    let d = Daemon::start_in(
        dir,
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nlimits:\n  queue_histograms: [emails]\nthresholds:\n  file: thresholds.yaml\nredis:\n  - name: primary\n    url: {}\n    queues:\n      - system: bullmq\n      - system: rq\n      - system: stream\n        prefix: \"events:\"\n  - name: replica\n    url: {}\npostgres:\n  - name: pg\n    dsn: postgres://postgres:right-pg-pass@127.0.0.1:{}/postgres\n  - name: pg-standby\n    dsn: postgres://postgres:right-pg-pass@127.0.0.1:{}/postgres\n",
            primary.url(),
            replica.url(),
            pg.port,
            standby.port
        ),
        &[],
    );
    wait_for("replica linked and queues read", Duration::from_secs(20), || {
        let t = d.scrape();
        t.contains("redline_redis_master_link_up{target=\"replica\"} 1")
            && t.contains("redline_redis_replica_lag_seconds{target=\"primary\"")
            && t.contains("redline_queue_stream_group_lag{")
            && t.contains("queue=\"emails\"")
            && t.contains("redline_pg_replica_lag_seconds{target=\"pg\"")
            && t.contains("redline_pg_instance_info{target=\"pg-standby\",version=")
    });
    let mut used = BTreeSet::new();
    let rules = std::fs::read_to_string(root.join("rules/redline.rules.yml")).expect("rules");
    // Runbook anchors are alert keys, not metrics.
    let rules: String =
        rules.lines().filter(|l| !l.trim_start().starts_with("runbook_url:")).collect::<Vec<_>>().join("\n");
    used.extend(names_in(&rules));
    for entry in std::fs::read_dir(root.join("grafana")).expect("grafana dir") {
        let path = entry.expect("entry").path();
        used.extend(names_in(&std::fs::read_to_string(&path).expect("dashboard")));
    }
    assert!(used.len() > 30, "suspiciously few names: {used:?}");
    // Sample names only (label values such as redline_threshold's `key` do not count). Some
    // appear only from the second collection on (rates need a baseline): wait for them.
    let exposed_now = || -> BTreeSet<String> {
        d.scrape()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(String::from)
            .collect()
    };
    let mut exposed = exposed_now();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while used.iter().any(|n| !exposed.contains(n)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        exposed = exposed_now();
    }
    assert!(!used.contains("redline_collector_failing"), "runbook anchors must not count: {used:?}");
    assert!(
        exposed.contains("redline_redis_master_link_up") && !exposed.contains("redline_collector_failing")
    );
    // Cluster and Sentinel names need those topologies: tests/redis_cluster.rs and
    // tests/redis_sentinel.rs check them the same way. A PostgreSQL query group that times out
    // is provoked in tests/postgres_collector.rs.
    let topology_only = |n: &str| {
        [
            "redline_redis_cluster_",
            "redline_redis_sentinel_",
            "redline_redis_node_up",
            "redline_redis_failovers",
            "redline_queue_unreadable",
            "redline_pg_query_errors_total",
        ]
        .iter()
        .any(|p| n.starts_with(p))
    };
    let missing: Vec<&String> = used.iter().filter(|n| !exposed.contains(*n) && !topology_only(n)).collect();
    assert!(missing.is_empty(), "used in rules/dashboards but not exposed: {missing:?}");
}
