//! Pure functions turning Redis replies (INFO text, SLOWLOG, LATENCY) into metric families.
//! Kept apart from the connection handling so they can be tested on captured replies.
//! Unknown or malformed fields are skipped, never fatal: servers differ by version and vendor.

use std::collections::HashMap;

use redis::Value;

use crate::metrics::{label, FamilySet, Label};
use crate::names as n;

/// One `cmdstat_*` line.
#[derive(Debug, Clone, PartialEq)]
pub struct CmdStat<'a> {
    /// Command name (`get`, `client|list`).
    pub name: &'a str,
    /// Calls.
    pub calls: f64,
    /// Total microseconds.
    pub usec: f64,
    /// Rejected calls (Redis 7+).
    pub rejected: Option<f64>,
    /// Failed calls (Redis 7+).
    pub failed: Option<f64>,
}

/// Parsed `INFO ALL` reply.
#[derive(Debug, Default)]
pub struct Info<'a> {
    fields: HashMap<&'a str, &'a str>,
    /// Per-command statistics.
    pub cmdstats: Vec<CmdStat<'a>>,
    /// Error replies by prefix.
    pub errorstats: Vec<(&'a str, f64)>,
    /// `(db, keys, expires)`.
    pub dbs: Vec<(&'a str, f64, f64)>,
    /// `(replica id, offset, lag seconds)` from `slaveN:` lines.
    pub replicas: Vec<(String, Option<f64>, Option<f64>)>,
}

/// Splits `a=1,b=2` into pairs.
fn pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(',').filter_map(|kv| kv.split_once('='))
}

impl<'a> Info<'a> {
    /// Parses INFO text; lines that are not `key:value` are ignored.
    pub fn parse(text: &'a str) -> Self {
        let mut info = Info::default();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else { continue };
            if let Some(cmd) = k.strip_prefix("cmdstat_") {
                let m: HashMap<&str, &str> = pairs(v).collect();
                let num = |f: &str| m.get(f).and_then(|x| x.parse::<f64>().ok());
                if let (Some(calls), Some(usec)) = (num("calls"), num("usec")) {
                    info.cmdstats.push(CmdStat {
                        name: cmd,
                        calls,
                        usec,
                        rejected: num("rejected_calls"),
                        failed: num("failed_calls"),
                    });
                }
            } else if let Some(prefix) = k.strip_prefix("errorstat_") {
                if let Some(c) = pairs(v).find(|(f, _)| *f == "count").and_then(|(_, c)| c.parse().ok()) {
                    info.errorstats.push((prefix, c));
                }
            } else if k.starts_with("db") && k[2..].parse::<u32>().is_ok() {
                let m: HashMap<&str, &str> = pairs(v).collect();
                let num = |f: &str| m.get(f).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
                info.dbs.push((k, num("keys"), num("expires")));
            } else if k.starts_with("slave") && k[5..].parse::<u32>().is_ok() {
                let m: HashMap<&str, &str> = pairs(v).collect();
                let id = format!("{}:{}", m.get("ip").unwrap_or(&"?"), m.get("port").unwrap_or(&"?"));
                let num = |f: &str| m.get(f).and_then(|x| x.parse::<f64>().ok());
                info.replicas.push((id, num("offset"), num("lag")));
            } else {
                info.fields.insert(k, v);
            }
        }
        info
    }

    /// A plain field as text.
    pub fn get(&self, k: &str) -> Option<&'a str> {
        self.fields.get(k).copied()
    }

    /// A plain field as a number.
    pub fn num(&self, k: &str) -> Option<f64> {
        self.get(k).and_then(|v| v.parse().ok())
    }

    /// A status field (`ok`/`err`) as 1/0.
    fn ok(&self, k: &str) -> Option<f64> {
        self.get(k).map(|v| if v == "ok" { 1.0 } else { 0.0 })
    }
}

/// Adds every family derived from INFO. `maxclients` comes from CONFIG GET on servers whose
/// INFO lacks it (before 7.0). At most `max_commands` commands get per-command series,
/// the busiest by calls; the rest are counted.
pub fn info_families(
    info: &Info,
    target: &str,
    maxclients: Option<f64>,
    max_commands: usize,
    out: &mut FamilySet,
) {
    let t = || vec![label("target", target)];
    let mut put = |def, v: Option<f64>| {
        if let Some(v) = v {
            out.add(def, t(), v);
        }
    };
    put(&n::REDIS_UPTIME, info.num("uptime_in_seconds"));
    put(&n::REDIS_MEMORY_USED, info.num("used_memory"));
    put(&n::REDIS_MEMORY_RSS, info.num("used_memory_rss"));
    put(&n::REDIS_MEMORY_PEAK, info.num("used_memory_peak"));
    put(&n::REDIS_MEMORY_MAX, info.num("maxmemory"));
    put(&n::REDIS_MEMORY_FRAGMENTATION, info.num("mem_fragmentation_ratio"));
    put(&n::REDIS_EVICTED_KEYS, info.num("evicted_keys"));
    put(&n::REDIS_EXPIRED_KEYS, info.num("expired_keys"));
    put(&n::REDIS_KEYSPACE_HITS, info.num("keyspace_hits"));
    put(&n::REDIS_KEYSPACE_MISSES, info.num("keyspace_misses"));
    put(&n::REDIS_CLIENTS_CONNECTED, info.num("connected_clients"));
    put(&n::REDIS_CLIENTS_BLOCKED, info.num("blocked_clients"));
    put(&n::REDIS_CLIENTS_MAX, info.num("maxclients").or(maxclients));
    put(&n::REDIS_REJECTED_CONNECTIONS, info.num("rejected_connections"));
    put(&n::REDIS_CONNECTIONS_RECEIVED, info.num("total_connections_received"));
    put(&n::REDIS_COMMANDS_PROCESSED, info.num("total_commands_processed"));
    put(&n::REDIS_NET_INPUT, info.num("total_net_input_bytes"));
    put(&n::REDIS_NET_OUTPUT, info.num("total_net_output_bytes"));
    put(&n::REDIS_CONNECTED_REPLICAS, info.num("connected_slaves"));
    put(&n::REDIS_REPL_OFFSET, info.num("master_repl_offset"));
    put(&n::REDIS_RDB_LAST_BGSAVE_OK, info.ok("rdb_last_bgsave_status"));
    put(&n::REDIS_RDB_LAST_SAVE, info.num("rdb_last_save_time"));
    put(&n::REDIS_RDB_CHANGES, info.num("rdb_changes_since_last_save"));
    put(&n::REDIS_AOF_ENABLED, info.num("aof_enabled"));
    put(&n::REDIS_AOF_LAST_WRITE_OK, info.ok("aof_last_write_status"));
    put(&n::REDIS_AOF_LAST_REWRITE_OK, info.ok("aof_last_bgrewrite_status"));
    if info.get("role") == Some("slave") {
        put(
            &n::REDIS_MASTER_LINK_UP,
            info.get("master_link_status").map(|s| if s == "up" { 1.0 } else { 0.0 }),
        );
        put(&n::REDIS_MASTER_LAST_IO, info.num("master_last_io_seconds_ago"));
    }

    let mut id = t();
    id.push(label("version", info.get("redis_version").unwrap_or("unknown")));
    id.push(label(
        "role",
        info.get("role").map(|r| if r == "slave" { "replica" } else { r }).unwrap_or("unknown"),
    ));
    id.push(label("mode", info.get("redis_mode").unwrap_or("unknown")));
    id.push(label("maxmemory_policy", info.get("maxmemory_policy").unwrap_or("unknown")));
    out.add(&n::REDIS_INSTANCE_INFO, id, 1.0);

    let master_offset = info.num("master_repl_offset");
    for (replica, offset, lag) in &info.replicas {
        let l = || vec![label("target", target), label("replica", replica.clone())];
        if let (Some(m), Some(o)) = (master_offset, offset) {
            out.add(&n::REDIS_REPLICA_LAG_BYTES, l(), (m - o).max(0.0));
        }
        if let Some(lag) = lag {
            out.add(&n::REDIS_REPLICA_LAG_SECONDS, l(), *lag);
        }
    }
    for (db, keys, expires) in &info.dbs {
        let l = || vec![label("target", target), label("db", *db)];
        out.add(&n::REDIS_DB_KEYS, l(), *keys);
        out.add(&n::REDIS_DB_KEYS_EXPIRING, l(), *expires);
    }
    for (prefix, count) in &info.errorstats {
        out.add(&n::REDIS_ERRORS, vec![label("target", target), label("error", *prefix)], *count);
    }

    let mut cmds: Vec<&CmdStat> = info.cmdstats.iter().collect();
    cmds.sort_by(|a, b| b.calls.total_cmp(&a.calls).then(a.name.cmp(b.name)));
    out.add(&n::REDIS_COMMANDS_DROPPED, t(), cmds.len().saturating_sub(max_commands) as f64);
    for c in cmds.into_iter().take(max_commands) {
        let l = || vec![label("target", target), label("cmd", c.name)];
        out.add(&n::REDIS_COMMAND_CALLS, l(), c.calls);
        out.add(&n::REDIS_COMMAND_DURATION, l(), c.usec / 1e6);
        if let Some(f) = c.failed {
            out.add(&n::REDIS_COMMAND_FAILED, l(), f);
        }
        if let Some(r) = c.rejected {
            out.add(&n::REDIS_COMMAND_REJECTED, l(), r);
        }
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

fn as_str(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn as_list(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

/// Key/value pairs from a RESP2 flat array or a RESP3 map.
fn as_pairs(v: &Value) -> Vec<(&Value, &Value)> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(a) => a.chunks_exact(2).map(|c| (&c[0], &c[1])).collect(),
        _ => Vec::new(),
    }
}

/// Result of reading SLOWLOG GET.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowlogView {
    /// Highest entry id seen.
    pub last_id: Option<i64>,
    /// Slowest entry newer than the previous `last_id`, in seconds.
    pub slowest_new_seconds: f64,
}

/// Reads SLOWLOG GET entries (`[id, time, micros, args, …]`). On the first collection
/// (`prev_id` None) nothing counts as new: old history is not a fresh spike. Entry ids only
/// grow on one server, so ids below `prev_id` mean the server restarted (or another took its
/// place): its whole log is new, and the baseline starts again from it.
pub fn slowlog(v: &Value, prev_id: Option<i64>) -> SlowlogView {
    let entries: Vec<(i64, f64)> = as_list(v)
        .unwrap_or(&[])
        .iter()
        .filter_map(|e| {
            let fields = as_list(e)?;
            Some((fields.first().and_then(as_f64)? as i64, fields.get(2).and_then(as_f64)?))
        })
        .collect();
    let newest = entries.iter().map(|(id, _)| *id).max();
    let prev_id = match (prev_id, newest) {
        (Some(p), Some(n)) if n < p => Some(-1),
        _ => prev_id,
    };
    let mut view = SlowlogView { last_id: prev_id, slowest_new_seconds: 0.0 };
    for (id, micros) in entries {
        if prev_id.is_some_and(|p| id > p) {
            view.slowest_new_seconds = view.slowest_new_seconds.max(micros / 1e6);
        }
        view.last_id = Some(view.last_id.map_or(id, |l| l.max(id)));
    }
    // An empty log is a baseline too: its first entry (id 0) must count as new.
    view.last_id = view.last_id.or(Some(-1));
    view
}

/// LATENCY LATEST: `[[event, time, latest_ms, max_ms, …], …]`.
pub fn latency_latest(v: &Value, target: &str, out: &mut FamilySet) {
    for e in as_list(v).unwrap_or(&[]) {
        let Some(f) = as_list(e) else { continue };
        let (Some(event), Some(latest), Some(max)) =
            (f.first().and_then(as_str), f.get(2).and_then(as_f64), f.get(3).and_then(as_f64))
        else {
            continue;
        };
        let l = || vec![label("target", target), label("event", event.clone())];
        out.add(&n::REDIS_LATENCY_LATEST, l(), latest / 1e3);
        out.add(&n::REDIS_LATENCY_MAX, l(), max / 1e3);
    }
}

/// LATENCY HISTOGRAM (Redis 7+): `cmd -> {calls, histogram_usec: {bound_usec -> cumulative}}`.
/// Only commands in `allowed` get a series (the same bounded set as commandstats);
/// the sum comes from commandstats' `usec`.
pub fn latency_histograms(v: &Value, target: &str, sums: &HashMap<&str, f64>, out: &mut FamilySet) {
    for (cmd, body) in as_pairs(v) {
        let Some(cmd) = as_str(cmd) else { continue };
        let Some(&sum_usec) = sums.get(cmd.as_str()) else { continue };
        let mut calls = None;
        let mut buckets = Vec::new();
        for (k, val) in as_pairs(body) {
            match as_str(k).as_deref() {
                Some("calls") => calls = as_f64(val),
                Some("histogram_usec") => {
                    for (b, c) in as_pairs(val) {
                        if let (Some(b), Some(c)) = (as_f64(b), as_f64(c)) {
                            buckets.push((b / 1e6, c as u64));
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(calls) = calls else { continue };
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let labels: Vec<Label> = vec![label("target", target), label("cmd", cmd)];
        out.histogram(&n::REDIS_COMMAND_LATENCY, labels, sum_usec / 1e6, calls as u64, buckets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::{encode, Format};
    use std::sync::Arc;

    const INFO7: &str = include_str!("../../tests/fixtures/redis7_info_all.txt");

    fn render(set: FamilySet) -> String {
        encode(vec![Arc::new(set.into_families())], Format::Text)
    }

    #[test]
    fn parses_captured_redis7_info() {
        let info = Info::parse(INFO7);
        assert_eq!(info.get("role"), Some("master"));
        assert!(info.cmdstats.iter().any(|c| c.name == "set" && c.calls >= 3.0));
        assert!(info.errorstats.iter().any(|(p, c)| *p == "ERR" && *c >= 1.0));
        assert!(info.dbs.iter().any(|(db, keys, _)| *db == "db1" && *keys == 3.0));
        let mut set = FamilySet::new();
        info_families(&info, "t", None, 200, &mut set);
        let text = render(set);
        for want in [
            "redline_redis_memory_used_bytes{target=\"t\"}",
            "redline_redis_memory_max_bytes{target=\"t\"} 0",
            "redline_redis_clients_max{target=\"t\"} 10000",
            "redline_redis_evicted_keys_total{target=\"t\"} 0",
            "redline_redis_command_calls_total{target=\"t\",cmd=\"set\"} 3",
            "redline_redis_command_failed_calls_total{target=\"t\",cmd=\"incr\"} 1",
            "redline_redis_errors_total{target=\"t\",error=\"ERR\"} 2",
            "redline_redis_db_keys_expiring{target=\"t\",db=\"db1\"} 3",
            "redline_redis_instance_info{target=\"t\",version=\"7.0.15\",role=\"master\",mode=\"standalone\",maxmemory_policy=\"noeviction\"} 1",
            "redline_redis_rdb_last_bgsave_success{target=\"t\"} 1",
        ] {
            assert!(text.contains(want), "missing {want}\n{text}");
        }
    }

    #[test]
    fn command_series_are_capped_and_the_rest_counted() {
        let info = Info::parse(INFO7);
        let total = info.cmdstats.len();
        let mut set = FamilySet::new();
        info_families(&info, "t", None, 2, &mut set);
        let text = render(set);
        assert_eq!(text.matches("redline_redis_command_calls_total{").count(), 2);
        assert!(text.contains(&format!("redline_redis_command_series_dropped{{target=\"t\"}} {}", total - 2)));
    }

    #[test]
    fn garbage_info_yields_no_panic_and_no_bogus_values() {
        let junk = "# Memory\nused_memory:lots\ncmdstat_get:calls=x\ndb0:keys=\nslave0:??\n\u{0}\n:::\n";
        let info = Info::parse(junk);
        let mut set = FamilySet::new();
        info_families(&info, "t", Some(7.0), 10, &mut set);
        let text = render(set);
        assert!(!text.contains("redline_redis_memory_used_bytes{"), "{text}");
        assert!(text.contains("redline_redis_clients_max{target=\"t\"} 7"), "{text}");
    }

    #[test]
    fn replica_lines_give_lag() {
        let text = "role:master\nmaster_repl_offset:1000\nconnected_slaves:1\nslave0:ip=10.0.0.2,port=6380,state=online,offset=900,lag=2\n";
        let info = Info::parse(text);
        let mut set = FamilySet::new();
        info_families(&info, "t", None, 10, &mut set);
        let out = render(set);
        assert!(
            out.contains("redline_redis_replica_lag_bytes{target=\"t\",replica=\"10.0.0.2:6380\"} 100"),
            "{out}"
        );
        assert!(
            out.contains("redline_redis_replica_lag_seconds{target=\"t\",replica=\"10.0.0.2:6380\"} 2"),
            "{out}"
        );
    }

    fn entry(id: i64, micros: i64) -> Value {
        Value::Array(vec![Value::Int(id), Value::Int(0), Value::Int(micros), Value::Array(vec![])])
    }

    #[test]
    fn slowlog_reports_only_new_entries() {
        let v = Value::Array(vec![entry(7, 30_000), entry(6, 90_000)]);
        let first = slowlog(&v, None);
        assert_eq!(first, SlowlogView { last_id: Some(7), slowest_new_seconds: 0.0 });
        let v = Value::Array(vec![entry(9, 20_000), entry(8, 50_000), entry(7, 30_000)]);
        let next = slowlog(&v, first.last_id);
        assert_eq!(next, SlowlogView { last_id: Some(9), slowest_new_seconds: 0.05 });
        assert_eq!(slowlog(&Value::Nil, Some(3)).last_id, Some(3));
        let empty = slowlog(&Value::Array(vec![]), None);
        assert_eq!(empty.last_id, Some(-1));
        assert_eq!(slowlog(&Value::Array(vec![entry(0, 10_000)]), empty.last_id).slowest_new_seconds, 0.01);
    }

    #[test]
    fn slowlog_ids_going_back_mean_a_restarted_server_whose_log_is_all_new() {
        // Before the restart the log reached id 9; the new server has logged ids 0 and 1.
        let v = Value::Array(vec![entry(1, 40_000), entry(0, 20_000)]);
        assert_eq!(slowlog(&v, Some(9)), SlowlogView { last_id: Some(1), slowest_new_seconds: 0.04 });
        // An empty log after a restart keeps the old baseline until the first entry shows up.
        assert_eq!(slowlog(&Value::Array(vec![]), Some(9)).last_id, Some(9));
        assert_eq!(slowlog(&Value::Array(vec![entry(0, 30_000)]), Some(9)).slowest_new_seconds, 0.03);
    }

    #[test]
    fn latency_histogram_resp2_shape() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let v = Value::Array(vec![
            bulk("set"),
            Value::Array(vec![
                bulk("calls"),
                Value::Int(3),
                bulk("histogram_usec"),
                Value::Array(vec![
                    Value::Int(1),
                    Value::Int(1),
                    Value::Int(2),
                    Value::Int(2),
                    Value::Int(16),
                    Value::Int(3),
                ]),
            ]),
        ]);
        let sums = HashMap::from([("set", 12.0)]);
        let mut set = FamilySet::new();
        latency_histograms(&v, "t", &sums, &mut set);
        let out = render(set);
        assert!(
            out.contains(
                "redline_redis_command_latency_seconds_bucket{le=\"0.000016\",target=\"t\",cmd=\"set\"} 3"
            ),
            "{out}"
        );
        assert!(
            out.contains("redline_redis_command_latency_seconds_count{target=\"t\",cmd=\"set\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("redline_redis_command_latency_seconds_sum{target=\"t\",cmd=\"set\"} 0.000012"),
            "{out}"
        );
    }
}
