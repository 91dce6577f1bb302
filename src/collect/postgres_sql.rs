//! The SQL the PostgreSQL collector sends, chosen by server version and capabilities, and the
//! parsing of its rows into families. Every row starts with a tag naming its query, so the
//! whole batch can travel as one simple-query round trip.

use std::collections::BTreeMap;

use crate::metrics::{label, FamilySet};
use crate::names as n;

/// What the server allows and has, learned once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// `server_version_num` (e.g. 150004).
    pub version: u32,
    /// pg_stat_statements is installed in the connected database.
    pub statements: bool,
}

/// The first query on every connection.
pub const PROBE: &str = "SELECT current_setting('server_version_num'), \
    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')::int";

/// Options that shape the batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Statements with their own series.
    pub statements_top: usize,
    /// Mean time (seconds) over which a statement is slow.
    pub slow_seconds: f64,
    /// Tables reported.
    pub tables_top: usize,
}

/// The batch: `(query group, SQL)`; groups are what capability metrics name.
pub fn batch(caps: &Caps, l: &Limits) -> Vec<(&'static str, String)> {
    let mut q: Vec<(&'static str, String)> = vec![
        (
            "settings",
            "SELECT 'settings', current_setting('max_connections'), current_setting('superuser_reserved_connections'), \
             coalesce(current_setting('reserved_connections', true), '0'), pg_is_in_recovery()::int, \
             current_setting('server_version')"
                .into(),
        ),
        (
            "activity",
            "SELECT 'conn', coalesce(datname, ''), coalesce(state, 'unknown'), count(*) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' GROUP BY 2, 3"
                .into(),
        ),
        (
            "activity",
            "SELECT 'xact', coalesce(extract(epoch FROM max(now() - xact_start)), 0), \
             coalesce(extract(epoch FROM max(now() - state_change) FILTER (WHERE state LIKE 'idle in transaction%')), 0), \
             count(*) FILTER (WHERE wait_event_type = 'Lock') FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                .into(),
        ),
        ("locks", "SELECT 'locks', mode, count(*) FROM pg_locks GROUP BY mode".into()),
        (
            "databases",
            // One query for every database, sizes included (no N+1).
            "SELECT 'db', datname, xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, tup_fetched, \
             tup_inserted, tup_updated, tup_deleted, temp_files, temp_bytes, deadlocks, conflicts, \
             CASE WHEN has_database_privilege(datid, 'CONNECT') THEN pg_database_size(datid) ELSE -1 END \
             FROM pg_stat_database WHERE datname IS NOT NULL AND datname NOT IN ('template0', 'template1')"
                .into(),
        ),
        (
            "replication",
            // pg_current_wal_lsn() fails on a standby: only evaluated on a primary.
            "SELECT 'repl', coalesce(application_name, '') || '@' || coalesce(client_addr::text, 'local'), \
             coalesce(extract(epoch FROM write_lag), 0), coalesce(extract(epoch FROM flush_lag), 0), \
             coalesce(extract(epoch FROM replay_lag), 0), \
             CASE WHEN pg_is_in_recovery() THEN 0 ELSE coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0) END \
             FROM pg_stat_replication"
                .into(),
        ),
        (
            "replication",
            "SELECT 'standby', CASE WHEN pg_is_in_recovery() \
             THEN coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) ELSE 0 END"
                .into(),
        ),
        (
            "replication",
            "SELECT 'slot', slot_name, slot_type, active::int, CASE WHEN pg_is_in_recovery() THEN 0 \
             ELSE coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0) END FROM pg_replication_slots"
                .into(),
        ),
    ];
    if caps.version >= 170000 {
        // 17 moved checkpoint statistics to pg_stat_checkpointer and dropped buffers_backend.
        q.push((
            "checkpoints",
            "SELECT 'ckpt', c.num_timed, c.num_requested, c.write_time, c.sync_time, c.buffers_written, \
             b.buffers_clean, -1, b.buffers_alloc FROM pg_stat_checkpointer c, pg_stat_bgwriter b"
                .into(),
        ));
    } else {
        q.push((
            "checkpoints",
            "SELECT 'ckpt', checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time, \
             buffers_checkpoint, buffers_clean, buffers_backend, buffers_alloc FROM pg_stat_bgwriter"
                .into(),
        ));
    }
    if caps.statements {
        // 13 renamed total_time/max_time to *_exec_time.
        let (total, max) = if caps.version >= 130000 {
            ("total_exec_time", "max_exec_time")
        } else {
            ("total_time", "max_time")
        };
        // pg_stat_statements keeps one row per (user, database, queryid, toplevel): one statement
        // is summed over them, so each queryid is one series (mean weighted by calls).
        let per_statement = format!(
            "SELECT queryid, min(left(query, 1000)) AS query, sum(calls) AS calls, sum({total}) / 1000 AS total, \
             coalesce(sum({total}) / nullif(sum(calls), 0), 0) / 1000 AS mean, max({max}) / 1000 AS max \
             FROM pg_stat_statements GROUP BY queryid"
        );
        q.push((
            "statements",
            format!(
                "SELECT 'stmt', queryid, query, calls, total, mean, max FROM ({per_statement}) s \
                 ORDER BY total DESC, queryid LIMIT {top}",
                top = l.statements_top
            ),
        ));
        q.push((
            "statements",
            format!(
                "SELECT 'stmtsum', count(*) FILTER (WHERE mean > {slow}), count(*) FROM ({per_statement}) s",
                slow = l.slow_seconds
            ),
        ));
    }
    q.push((
        "tables",
        format!(
            "SELECT 'table', current_database(), schemaname, relname, n_dead_tup, n_live_tup, \
             coalesce(extract(epoch FROM now() - greatest(last_autovacuum, last_vacuum)), -1) FROM \
             ((SELECT * FROM pg_stat_user_tables ORDER BY n_dead_tup DESC LIMIT {top}) UNION \
              (SELECT * FROM pg_stat_user_tables ORDER BY greatest(last_autovacuum, last_vacuum) ASC NULLS FIRST LIMIT {top})) t",
            top = l.tables_top
        ),
    ));
    q
}

/// Replaces literals in statement text with `?` (pg_stat_statements normalizes most, but not
/// utility statements) and squeezes whitespace; at most 120 characters.
pub fn normalize_query(q: &str) -> String {
    let mut out = String::with_capacity(q.len().min(160));
    let mut chars = q.chars().peekable();
    let mut prev_word = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // A quoted string, '' escapes included.
                while let Some(d) = chars.next() {
                    if d == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
                prev_word = false;
            }
            c if c.is_ascii_digit() && !prev_word => {
                while chars.peek().is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                    chars.next();
                }
                out.push('?');
            }
            c if c.is_whitespace() => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
                prev_word = false;
            }
            c => {
                prev_word = c.is_alphanumeric() || c == '_' || c == '$';
                out.push(c);
            }
        }
    }
    let out = out.trim_end();
    match out.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &out[..i]),
        None => out.to_string(),
    }
}

fn num(s: Option<&str>) -> Option<f64> {
    s.and_then(|v| v.parse().ok())
}

/// Adds families from tagged rows (each row: tag then values as text, NULL as None).
pub fn families(rows: &[Vec<Option<String>>], target: &str, l: &Limits, out: &mut FamilySet) {
    let t = || label("target", target);
    let mut tables_seen = std::collections::HashSet::new();
    let mut stmt_count = 0usize;
    let mut stmt_total = None;
    for row in rows {
        let col = |i: usize| row.get(i).and_then(|v| v.as_deref());
        let f = |i: usize| num(col(i));
        match col(0) {
            Some("settings") => {
                let reserved = f(2).unwrap_or(0.0) + f(3).unwrap_or(0.0);
                if let Some(max) = f(1) {
                    out.add(&n::PG_CONNECTIONS_MAX, vec![t()], max);
                }
                out.add(&n::PG_CONNECTIONS_RESERVED, vec![t()], reserved);
                let role = if f(4) == Some(1.0) { "standby" } else { "primary" };
                let version = col(5).unwrap_or("unknown").split_whitespace().next().unwrap_or("unknown");
                out.add(&n::PG_INSTANCE_INFO, vec![t(), label("version", version), label("role", role)], 1.0);
            }
            Some("conn") => {
                let l =
                    vec![t(), label("database", col(1).unwrap_or("")), label("state", col(2).unwrap_or(""))];
                out.add(&n::PG_CONNECTIONS, l, f(3).unwrap_or(0.0));
            }
            Some("xact") => {
                out.add(&n::PG_OLDEST_XACT, vec![t()], f(1).unwrap_or(0.0).max(0.0));
                out.add(&n::PG_OLDEST_IDLE_XACT, vec![t()], f(2).unwrap_or(0.0).max(0.0));
                out.add(&n::PG_LOCK_WAITERS, vec![t()], f(3).unwrap_or(0.0));
            }
            Some("locks") => {
                out.add(&n::PG_LOCKS, vec![t(), label("mode", col(1).unwrap_or(""))], f(2).unwrap_or(0.0))
            }
            Some("db") => {
                let db = col(1).unwrap_or("").to_string();
                let l = || vec![t(), label("database", db.clone())];
                let put = |out: &mut FamilySet, def, i| {
                    if let Some(v) = f(i) {
                        out.add(def, l(), v);
                    }
                };
                put(out, &n::PG_XACT_COMMIT, 2);
                put(out, &n::PG_XACT_ROLLBACK, 3);
                put(out, &n::PG_BLOCKS_READ, 4);
                put(out, &n::PG_BLOCKS_HIT, 5);
                for (i, op) in
                    [(6, "returned"), (7, "fetched"), (8, "inserted"), (9, "updated"), (10, "deleted")]
                {
                    if let Some(v) = f(i) {
                        let mut ls = l();
                        ls.push(label("operation", op));
                        out.add(&n::PG_ROWS, ls, v);
                    }
                }
                put(out, &n::PG_TEMP_FILES, 11);
                put(out, &n::PG_TEMP_BYTES, 12);
                put(out, &n::PG_DEADLOCKS, 13);
                put(out, &n::PG_CONFLICTS, 14);
                if let Some(size) = f(15).filter(|s| *s >= 0.0) {
                    out.add(&n::PG_DATABASE_SIZE, l(), size);
                }
            }
            Some("repl") => {
                let replica = col(1).unwrap_or("").to_string();
                for (i, kind) in [(2, "write"), (3, "flush"), (4, "replay")] {
                    let l = vec![t(), label("replica", replica.clone()), label("kind", kind)];
                    out.add(&n::PG_REPLICA_LAG_SECONDS, l, f(i).unwrap_or(0.0));
                }
                out.add(
                    &n::PG_REPLICA_LAG_BYTES,
                    vec![t(), label("replica", replica)],
                    f(5).unwrap_or(0.0).max(0.0),
                );
            }
            Some("standby") => out.add(&n::PG_STANDBY_REPLAY_LAG, vec![t()], f(1).unwrap_or(0.0).max(0.0)),
            Some("slot") => {
                let l = || {
                    vec![t(), label("slot", col(1).unwrap_or("")), label("slot_type", col(2).unwrap_or(""))]
                };
                out.add(&n::PG_SLOT_ACTIVE, l(), f(3).unwrap_or(0.0));
                out.add(&n::PG_SLOT_RETAINED, l(), f(4).unwrap_or(0.0).max(0.0));
            }
            Some("ckpt") => {
                for (i, kind) in [(1, "timed"), (2, "requested")] {
                    if let Some(v) = f(i) {
                        out.add(&n::PG_CHECKPOINTS, vec![t(), label("kind", kind)], v);
                    }
                }
                if let Some(v) = f(3) {
                    out.add(&n::PG_CHECKPOINT_WRITE, vec![t()], v / 1000.0);
                }
                if let Some(v) = f(4) {
                    out.add(&n::PG_CHECKPOINT_SYNC, vec![t()], v / 1000.0);
                }
                for (i, by) in [(5, "checkpointer"), (6, "bgwriter"), (7, "backend")] {
                    if let Some(v) = f(i).filter(|v| *v >= 0.0) {
                        out.add(&n::PG_BUFFERS_WRITTEN, vec![t(), label("writer", by)], v);
                    }
                }
                if let Some(v) = f(8) {
                    out.add(&n::PG_BUFFERS_ALLOC, vec![t()], v);
                }
            }
            Some("stmt") => {
                stmt_count += 1;
                let l = || {
                    vec![
                        t(),
                        label("queryid", col(1).unwrap_or("")),
                        label("query", normalize_query(col(2).unwrap_or(""))),
                    ]
                };
                out.add(&n::PG_STATEMENT_CALLS, l(), f(3).unwrap_or(0.0));
                out.add(&n::PG_STATEMENT_TIME, l(), f(4).unwrap_or(0.0));
                out.add(&n::PG_STATEMENT_MEAN, l(), f(5).unwrap_or(0.0));
                out.add(&n::PG_STATEMENT_MAX, l(), f(6).unwrap_or(0.0));
            }
            Some("stmtsum") => {
                out.add(&n::PG_STATEMENTS_SLOW, vec![t()], f(1).unwrap_or(0.0));
                stmt_total = f(2);
            }
            Some("table") => {
                let key: Vec<String> = (1..=3).map(|i| col(i).unwrap_or("").to_string()).collect();
                if !tables_seen.insert(key.clone()) {
                    continue;
                }
                let l = || {
                    vec![
                        t(),
                        label("database", key[0].clone()),
                        label("schema", key[1].clone()),
                        label("table", key[2].clone()),
                    ]
                };
                out.add(&n::PG_TABLE_DEAD, l(), f(4).unwrap_or(0.0));
                out.add(&n::PG_TABLE_LIVE, l(), f(5).unwrap_or(0.0));
                out.add(&n::PG_TABLE_VACUUM_AGE, l(), f(6).unwrap_or(-1.0));
            }
            _ => {}
        }
    }
    if let Some(total) = stmt_total {
        out.add(
            &n::PG_STATEMENTS_DROPPED,
            vec![t()],
            (total - stmt_count.min(l.statements_top) as f64).max(0.0),
        );
    }
}

/// Query groups of a batch, for capability metrics.
pub fn groups(batch: &[(&'static str, String)]) -> Vec<&'static str> {
    let mut g: Vec<&'static str> = Vec::new();
    for (name, _) in batch {
        if !g.contains(name) {
            g.push(name);
        }
    }
    g
}

/// Groups refused on this connection, by name, with the first error seen.
pub type Refused = BTreeMap<&'static str, String>;

/// Whether an error from one query group means the server will never run it on this
/// connection: a missing privilege, table, function, column, file or extension set-up. Anything
/// else (statement or lock timeout, cancel, serialization failure, out of memory…) is transient:
/// counted and retried by the next collection.
pub fn is_permanent(sqlstate: &str) -> bool {
    // Class 42: syntax error or access rule violation (42501 insufficient_privilege,
    // 42P01 undefined_table, 42883 undefined_function, 42703 undefined_column…).
    sqlstate.starts_with("42")
        // object_not_in_prerequisite_state: "pg_stat_statements must be loaded via shared_preload_libraries".
        || sqlstate == "55000"
        // undefined_file, feature_not_supported.
        || sqlstate == "58P01"
        || sqlstate == "0A000"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_picks_the_checkpointer_view_and_statement_columns() {
        let l = Limits { statements_top: 5, slow_seconds: 0.5, tables_top: 3 };
        let v16 = batch(&Caps { version: 160004, statements: true }, &l);
        let v17 = batch(&Caps { version: 170002, statements: true }, &l);
        let v12 = batch(&Caps { version: 120020, statements: true }, &l);
        let text = |b: &[(&str, String)]| b.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join(";");
        assert!(text(&v16).contains("FROM pg_stat_bgwriter") && !text(&v16).contains("pg_stat_checkpointer"));
        assert!(text(&v17).contains("pg_stat_checkpointer"));
        assert!(text(&v12).contains("total_time") && !text(&v12).contains("total_exec_time"));
        assert!(text(&v16).contains("LIMIT 5"));
        // One series per statement whatever the users and databases that ran it.
        assert!(text(&v16).matches("GROUP BY queryid").count() == 2, "{}", text(&v16));
        let none = batch(&Caps { version: 150000, statements: false }, &l);
        assert!(!text(&none).contains("pg_stat_statements"));
    }

    #[test]
    fn only_privilege_and_missing_object_errors_are_permanent() {
        for code in ["42501", "42P01", "42883", "42703", "55000", "58P01", "0A000"] {
            assert!(is_permanent(code), "{code}");
        }
        // statement timeout or cancel, lock timeout, serialization failure, deadlock, out of memory,
        // too many connections, admin shutdown, internal error.
        for code in ["57014", "55P03", "40001", "40P01", "53200", "53300", "57P01", "XX000"] {
            assert!(!is_permanent(code), "{code}");
        }
    }

    #[test]
    fn literals_never_reach_a_label() {
        assert_eq!(
            normalize_query("SELECT * FROM t WHERE a = 'x''y' AND b = 42"),
            "SELECT * FROM t WHERE a = ? AND b = ?"
        );
        assert_eq!(normalize_query("select  $1,\n  t2.c3"), "select $1, t2.c3");
        assert_eq!(normalize_query("SET password = 'hunter2'"), "SET password = ?");
        assert!(normalize_query(&"x ".repeat(200)).chars().count() <= 121);
    }

    #[test]
    fn tagged_rows_become_families_and_garbage_is_skipped() {
        let row = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        let rows = vec![
            row(&["settings", "100", "3", "0", "0", "15.4 (Debian)"]),
            row(&["conn", "app", "active", "7"]),
            row(&["db", "app", "10", "1", "5", "95", "1", "1", "1", "1", "1", "0", "0", "2", "0", "8192"]),
            row(&["table", "app", "public", "jobs", "500", "10", "-1"]),
            row(&["table", "app", "public", "jobs", "500", "10", "-1"]),
            row(&["stmt", "42", "SELECT 'secret'", "3", "1.5", "0.5", "0.9"]),
            row(&["stmtsum", "1", "30"]),
            row(&["db", "broken", "x", "y"]),
            vec![None],
        ];
        let l = Limits { statements_top: 20, slow_seconds: 0.5, tables_top: 10 };
        let mut set = FamilySet::new();
        families(&rows, "pg", &l, &mut set);
        let text = crate::expose::encode(
            vec![std::sync::Arc::new(set.into_families())],
            crate::expose::Format::Text,
        );
        for want in [
            "redline_pg_connections_max{target=\"pg\"} 100",
            "redline_pg_connections_reserved{target=\"pg\"} 3",
            "redline_pg_instance_info{target=\"pg\",version=\"15.4\",role=\"primary\"} 1",
            "redline_pg_connections{target=\"pg\",database=\"app\",state=\"active\"} 7",
            "redline_pg_blocks_hit_total{target=\"pg\",database=\"app\"} 95",
            "redline_pg_deadlocks_total{target=\"pg\",database=\"app\"} 2",
            "redline_pg_database_size_bytes{target=\"pg\",database=\"app\"} 8192",
            "redline_pg_statement_calls_total{target=\"pg\",queryid=\"42\",query=\"SELECT ?\"} 3",
            "redline_pg_statements_slow{target=\"pg\"} 1",
            "redline_pg_statements_dropped{target=\"pg\"} 29",
        ] {
            assert!(text.contains(want), "missing {want}\n{text}");
        }
        assert_eq!(text.matches("redline_pg_table_dead_tuples{").count(), 1);
        assert!(!text.contains("secret"));
        assert!(!text.contains("database=\"broken\"} "), "garbage numbers give no samples: {text}");
    }
}
