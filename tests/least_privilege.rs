//! The least-privilege set-ups the README documents, tested: a Redis ACL user allowed exactly
//! the commands redline sends (queue scripts included) and a PostgreSQL role with `pg_monitor`.
//! Each is compared with an all-powerful account on the same server: the restricted target
//! must expose the same metric families, every capability 1, and nothing refused in the log.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{bull_js, value, Daemon, PgServer, RedisServer};

/// The README's ACL rule after `ACL SETUSER redline on >password`, word for word.
const REDIS_ACL: &str = "resetkeys ~* resetchannels -@all \
    +ping +info +config|get +slowlog|get +slowlog|len +latency|latest +latency|histogram \
    +client|list +client|setname +scan +exists +smembers +srandmember +script|load +evalsha +multi +exec \
    +type +time +get +strlen +hget +hexists +hlen +hmget +hscan +hstrlen +hvals +lindex +llen \
    +lpos +lrange +scard +zcard +zcount +zrange +zrangebyscore +zrevrange +zscore +memory|usage \
    +xinfo|groups +xinfo|stream +xlen +xpending +xrange +cluster|info +cluster|nodes +cluster|shards";

/// Waits until `ok` holds for a scrape; on time-out, fails with the last scrape and the log.
fn wait_showing(d: &Daemon, what: &str, ok: impl Fn(&str) -> bool) {
    let mut last = String::new();
    let found = std::iter::repeat_with(|| {
        last = d.scrape();
        ok(&last)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for hit in found {
        if hit {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}\n--- last scrape:\n{last}\n--- log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Names of the metric families with a sample for `target`.
fn families_of(text: &str, target: &str) -> BTreeSet<String> {
    let tag = format!("target=\"{target}\"");
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&tag))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}

#[test]
fn the_documented_redis_acl_user_collects_everything() {
    let r = RedisServer::start(&[]);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let documented: String = REDIS_ACL.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.split_whitespace().collect::<Vec<_>>().join(" ").contains(&documented),
        "README must document this exact ACL rule:\n{documented}"
    );
    let mut acl = vec!["ACL", "SETUSER", "redline", "on", ">acl-user-pass"];
    acl.extend(REDIS_ACL.split_whitespace());
    r.cli(&acl);
    // Queue data from the real library, and a stream with a consumer group.
    bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"emails","count":3}}"#, r.port));
    bull_js("bullmq", "take", &format!(r#"{{"port":{},"queue":"emails"}}"#, r.port));
    r.cli(&["XGROUP", "CREATE", "events:orders", "billing", "$", "MKSTREAM"]);
    r.cli(&["XADD", "events:orders", "*", "n", "1"]);

    let queues = "    queues:\n      - system: bullmq\n      - system: stream\n        prefix: \"events:\"\n";
    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nlimits:\n  discovery_interval: 1s\nredis:\n\
             \x20 - name: admin\n    url: {url}\n{queues}\
             \x20 - name: limited\n    url: {acl_url}\n    password_env: REDLINE_ACL_PW\n{queues}",
            url = r.url(),
            acl_url = r.url().replace("redis://", "redis://redline@"),
        ),
        &[("REDLINE_ACL_PW", "acl-user-pass")],
    );
    let waiting = |t: &str, target: &str| {
        value(t, &format!("redline_queue_jobs{{target=\"{target}\",system=\"bullmq\",prefix=\"bull\",queue=\"emails\",state=\"waiting\"}}"))
    };
    wait_showing(&d, "both targets read the queues and the same families", |t| {
        waiting(t, "limited") == Some(2.0)
            && waiting(t, "admin") == Some(2.0)
            && t.contains("redline_queue_stream_group_lag{target=\"limited\"")
            && families_of(t, "limited") == families_of(t, "admin")
    });
    let text = d.scrape();
    assert_eq!(families_of(&text, "limited"), families_of(&text, "admin"), "{text}");
    assert!(families_of(&text, "limited").len() > 40, "{text}");
    for cap in ["config", "slowlog", "latency_latest", "latency_histogram"] {
        let series = format!("redline_redis_command_allowed{{target=\"limited\",command=\"{cap}\"}}");
        assert_eq!(value(&text, &series), Some(1.0), "{series}\n{text}");
    }
    let log = d.log_text();
    // (A collection may time out on a busy machine; a refusal may not happen.)
    for refusal in ["NOPERM", "refused", "permission"] {
        assert!(!log.contains(refusal), "{refusal} in the log:\n{log}");
    }
    // The user really is read-only: a write is refused, and so is one from a script it loaded.
    let as_redline = |args: &[&str]| {
        let mut all = vec!["--no-auth-warning", "--user", "redline", "--pass", "acl-user-pass"];
        all.extend(args);
        common::redis_cli_reply(r.port, &all)
    };
    let (ok, reply) = as_redline(&["SET", "x", "1"]);
    assert!(!ok && reply.contains("NOPERM"), "{reply}");
    let (ok, sha) = as_redline(&["SCRIPT", "LOAD", "return redis.call('SET', KEYS[1], '1')"]);
    assert!(ok, "{sha}");
    let (_, reply) = as_redline(&["EVALSHA", sha.trim(), "1", "x"]);
    assert!(reply.contains("can't run this command"), "a script wrote: {reply}");
    assert_eq!(r.cli(&["EXISTS", "x"]).trim(), "0");
}

#[test]
fn a_pg_monitor_role_collects_everything() {
    let pg = PgServer::start(&["shared_preload_libraries=pg_stat_statements"]);
    pg.psql("postgres", "CREATE EXTENSION pg_stat_statements");
    // The README's role (with a password of the test's).
    pg.psql("postgres", "CREATE ROLE redline LOGIN PASSWORD 'monitor-pass' CONNECTION LIMIT 2");
    pg.psql("postgres", "GRANT pg_monitor TO redline");
    pg.psql("postgres", "CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 100) g; DELETE FROM orders WHERE id < 50");
    pg.psql("postgres", "SELECT pg_create_physical_replication_slot('spare')");
    let standby = PgServer::standby_of(&pg);
    let p = pg.port;
    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\npostgres:\n\
             \x20 - name: admin\n    dsn: postgres://postgres@127.0.0.1:{p}/postgres\n    password_env: ADMIN_PW\n\
             \x20 - name: limited\n    dsn: postgres://redline@127.0.0.1:{p}/postgres\n    password_env: MONITOR_PW\n"
        ),
        &[("ADMIN_PW", "right-pg-pass"), ("MONITOR_PW", "monitor-pass")],
    );
    wait_showing(&d, "both roles read statements, replication and tables", |t| {
        t.contains("redline_pg_statement_calls_total{target=\"limited\"")
            && t.contains("redline_pg_replica_lag_seconds{target=\"limited\"")
            && t.contains("redline_pg_table_dead_tuples{target=\"limited\",database=\"postgres\",schema=\"public\",table=\"orders\"}")
            && families_of(t, "limited") == families_of(t, "admin")
    });
    let text = d.scrape();
    assert_eq!(families_of(&text, "limited"), families_of(&text, "admin"), "{text}");
    for group in
        ["settings", "activity", "locks", "databases", "replication", "checkpoints", "statements", "tables"]
    {
        let series = format!("redline_pg_query_allowed{{target=\"limited\",query=\"{group}\"}}");
        assert_eq!(value(&text, &series), Some(1.0), "{series}\n{text}");
    }
    // pg_read_all_stats (in pg_monitor) shows other roles' statement text and the database sizes.
    assert!(!text.contains("insufficient privilege"), "{text}");
    assert!(
        value(&text, "redline_pg_database_size_bytes{target=\"limited\",database=\"postgres\"}")
            .unwrap_or(0.0)
            > 0.0
    );
    let log = d.log_text();
    for refusal in ["refused", "permission denied", "insufficient"] {
        assert!(!log.contains(refusal), "{refusal} in the log:\n{log}");
    }
    drop(standby);
}
