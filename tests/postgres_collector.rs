//! The PostgreSQL collector against real servers: the machine's own for load, spawned
//! instances (initdb + pg_ctl) for pg_stat_statements, restarts, auth and privileges.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{local_psql, value, wait_for, Daemon, PgServer};

fn config(targets: &str) -> String {
    format!("collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\npostgres:\n{targets}")
}

fn v(d: &Daemon, series: &str) -> Option<f64> {
    value(&d.scrape(), series)
}

#[test]
fn load_on_the_local_server_moves_the_metrics() {
    let table = format!("redline_lock_{}", std::process::id());
    local_psql("test", &format!("CREATE TABLE IF NOT EXISTS {table} (i int)"));
    let d =
        Daemon::start(&config("  - name: local\n    dsn: postgres://postgres@127.0.0.1:5432/test\n"), &[]);
    wait_for("up", Duration::from_secs(10), || {
        v(&d, "redline_target_up{collector=\"postgres\",target=\"local\"}") == Some(1.0)
    });

    // A long transaction holding a lock, a session waiting on it, an idle-in-transaction session.
    let psql = |sql: &str| {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c", sql])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql")
    };
    let mut holder =
        psql(&format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;"));
    wait_for("the holder has its lock", Duration::from_secs(10), || {
        local_psql(
            "test",
            &format!("SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass AND granted"),
        )
        .trim()
            == "1"
    });
    let mut waiter = psql(&format!("SELECT count(*) FROM {table}"));
    let mut idle = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("psql");
    if let Some(stdin) = idle.stdin.as_mut() {
        use std::io::Write;
        let _ = stdin.write_all(b"BEGIN;\nSELECT 1;\n\\! sleep 5\nCOMMIT;\n");
    }
    wait_for("lock wait, long and idle transactions seen", Duration::from_secs(10), || {
        let t = d.scrape();
        value(&t, "redline_pg_sessions_waiting_on_locks{target=\"local\"}").unwrap_or(0.0) >= 1.0
            && value(&t, "redline_pg_oldest_transaction_age_seconds{target=\"local\"}").unwrap_or(0.0) >= 2.0
            && value(&t, "redline_pg_oldest_idle_in_transaction_age_seconds{target=\"local\"}").unwrap_or(0.0)
                >= 1.0
            && value(&t, "redline_pg_locks{target=\"local\",mode=\"AccessExclusiveLock\"}").unwrap_or(0.0)
                >= 1.0
    });
    let text = d.scrape();
    assert!(
        value(&text, "redline_pg_connections{target=\"local\",database=\"test\",state=\"active\"}")
            .unwrap_or(0.0)
            >= 2.0
    );
    assert!(
        value(&text, "redline_pg_database_size_bytes{target=\"local\",database=\"test\"}").unwrap_or(0.0)
            > 0.0
    );
    assert!(text.contains("redline_pg_checkpoints_total{target=\"local\",kind=\"timed\"}"));
    assert!(text.contains(&format!("redline_pg_table_dead_tuples{{target=\"local\",database=\"test\",schema=\"public\",table=\"{table}\"}}")));
    let complaints = common::promtool_check_metrics(&text);
    assert!(complaints.trim().is_empty(), "{complaints}");
    for c in [&mut holder, &mut waiter, &mut idle] {
        let _ = c.wait();
    }
    local_psql("test", &format!("DROP TABLE IF EXISTS {table}"));
}

#[test]
fn pg_stat_statements_top_n_slow_count_and_no_literals() {
    let pg = PgServer::start(&["shared_preload_libraries=pg_stat_statements"]);
    pg.psql("postgres", "CREATE EXTENSION pg_stat_statements");
    pg.psql("postgres", "CREATE ROLE app");
    pg.psql("postgres", "CREATE DATABASE other");
    // One statement run by two users in two databases: three pg_stat_statements rows, one series.
    pg.psql("postgres", "SELECT pg_sleep(0.3)");
    pg.psql("postgres", "SET ROLE app; SELECT pg_sleep(0.3)");
    pg.psql("other", "SELECT pg_sleep(0.3)");
    assert_eq!(
        pg.psql("postgres", "SELECT count(*) FROM pg_stat_statements WHERE query = 'SELECT pg_sleep($1)'")
            .trim(),
        "3"
    );
    for i in 0..5 {
        pg.psql("postgres", &format!("SELECT 'topsecret-{i}' || {i}"));
    }
    let d = Daemon::start(
        &config(&format!(
            "  - name: pss\n    dsn: postgres://postgres@127.0.0.1:{}/postgres\n    password_env: REDLINE_PG_PW\n    statements_top: 3\n    slow_statement: 200ms\n",
            pg.port
        )),
        &[("REDLINE_PG_PW", "right-pg-pass")],
    );
    wait_for("statements", Duration::from_secs(10), || {
        v(&d, "redline_pg_statements_slow{target=\"pss\"}").unwrap_or(0.0) >= 1.0
    });
    let text = d.scrape();
    assert_eq!(text.matches("redline_pg_statement_calls_total{").count(), 3, "{text}");
    let sleeps: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("redline_pg_statement_calls_total{") && l.contains("query=\"SELECT pg_sleep($1)\"")
        })
        .collect();
    assert_eq!(sleeps.len(), 1, "one series per statement: {sleeps:?}");
    assert_eq!(value(sleeps[0], "redline_pg_statement_calls_total{"), Some(3.0), "calls summed: {sleeps:?}");
    assert!(v(&d, "redline_pg_statements_dropped{target=\"pss\"}").unwrap_or(0.0) >= 1.0);
    assert!(text.contains("query=\"SELECT pg_sleep($1)\""), "{text}");
    assert!(!text.contains("topsecret"), "literal leaked into a label");
    assert_eq!(v(&d, "redline_pg_query_allowed{target=\"pss\",query=\"statements\"}"), Some(1.0));
    assert_eq!(text.matches("redline_pg_query_allowed{target=\"pss\",query=\"statements\"}").count(), 1);
    let complaints = common::promtool_check_metrics(&text);
    assert!(complaints.trim().is_empty(), "{complaints}");

    // A lock on the view makes the statements queries time out (lock_timeout): a passing
    // failure, counted and retried, not a refusal; the other queries go on.
    let mut holder = Command::new("psql")
        .arg("-h")
        .arg(pg.dir.path())
        .args(["-p", &pg.port.to_string(), "-U", "postgres", "-d", "postgres", "-c"])
        .arg("BEGIN; LOCK TABLE pg_stat_statements IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql");
    let errors = "redline_pg_query_errors_total{target=\"pss\",query=\"statements\",sqlstate=\"55P03\"}";
    wait_for("a lock timeout counted", Duration::from_secs(10), || v(&d, errors).unwrap_or(0.0) >= 2.0);
    let text = d.scrape();
    assert_eq!(value(&text, "redline_pg_query_allowed{target=\"pss\",query=\"statements\"}"), Some(1.0));
    assert_eq!(value(&text, "redline_target_up{collector=\"postgres\",target=\"pss\"}"), Some(1.0));
    assert!(value(&text, "redline_pg_connections_max{target=\"pss\"}").is_some(), "{text}");
    assert!(!text.contains("redline_pg_statement_calls_total{"), "no stale statements: {text}");
    assert_eq!(d.log_text().matches("could not run the statements queries").count(), 1, "{}", d.log_text());
    pg.psql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE pg_stat_statements%'",
    );
    let _ = holder.wait();
    wait_for("statements back after the lock", Duration::from_secs(10), || {
        d.scrape().contains("redline_pg_statement_calls_total{")
    });
}

#[test]
fn wrong_password_restart_and_refused_queries() {
    let pg = PgServer::start(&[]);
    pg.psql("postgres", "CREATE ROLE limited LOGIN PASSWORD 'limited-pass'");
    pg.psql("postgres", "REVOKE SELECT ON pg_catalog.pg_locks FROM PUBLIC");
    let p = pg.port;
    let d = Daemon::start(
        &config(&format!(
            "  - name: bad\n    dsn: postgres://postgres:WrongPgSecret9@127.0.0.1:{p}/postgres\n  - name: good\n    dsn: postgres://postgres@127.0.0.1:{p}/postgres\n    password_file: {pw}\n  - name: limited\n    dsn: postgres://limited@127.0.0.1:{p}/postgres\n    password_env: REDLINE_LIMITED_PW\n",
            pw = {
                let f = pg.dir.path().join("pw");
                std::fs::write(&f, "right-pg-pass\n").expect("pw");
                f.display().to_string()
            }
        )),
        &[("REDLINE_LIMITED_PW", "limited-pass")],
    );
    let up = |t: &str| v(&d, &format!("redline_target_up{{collector=\"postgres\",target=\"{t}\"}}"));
    wait_for("good up, bad down", Duration::from_secs(10), || {
        up("good") == Some(1.0) && up("bad") == Some(0.0)
    });
    wait_for("limited up", Duration::from_secs(10), || up("limited") == Some(1.0));
    let log = d.log_text();
    assert!(log.contains("password authentication failed"), "{log}");
    assert!(!log.contains("WrongPgSecret9") && !d.scrape().contains("WrongPgSecret9"), "password leaked");

    // The limited role cannot read pg_locks: a capability metric and one log line, the rest flows
    // (several collections on, still logged once).
    let last_success = || {
        v(&d, "redline_collector_last_success_timestamp_seconds{collector=\"postgres\",target=\"limited\"}")
            .unwrap_or(0.0)
    };
    let first = last_success();
    wait_for("two more collections", Duration::from_secs(10), || last_success() >= first + 2.0);
    let text = d.scrape();
    assert_eq!(
        value(&text, "redline_pg_query_allowed{target=\"limited\",query=\"locks\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(value(&text, "redline_pg_query_allowed{target=\"limited\",query=\"databases\"}"), Some(1.0));
    assert!(value(&text, "redline_pg_connections_max{target=\"limited\"}").is_some());
    assert_eq!(d.log_text().matches("refused the locks queries").count(), 1, "{}", d.log_text());

    // Server stopped and started again: down, then back.
    pg.ctl("stop");
    wait_for("down", Duration::from_secs(10), || up("good") == Some(0.0));
    assert_eq!(common::get(&d.addr, "/-/healthy", None).map(|r| r.0), Ok(200));
    pg.ctl("start");
    wait_for("back up", Duration::from_secs(40), || up("good") == Some(1.0));
}
