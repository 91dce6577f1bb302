//! `redline status` on a real Redis: healthy (exit 0), then a real breach (a Redis evicting
//! keys under a small maxmemory, and BullMQ jobs nobody works ageing past their level): exit 2
//! with parseable JSON, exit 1 / 0 by `--fail-on` when only warnings are crossed; and the same
//! breach judged by a real Prometheus running the generated rules crosses exactly the same
//! alerts on exactly the same series.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bull_js, free_port, wait_for, Daemon, RedisServer};

/// Levels for a test that must finish in seconds: a queue waiting 2 s warns, 4 s is critical.
/// Command latency is off: on a CI machine busy with parallel tests its p99 crosses 10 ms at
/// random, and over a 2 s window (status) differently than over 5 minutes (the rule); the
/// evaluator's histogram_quantile is checked against promtool's fixtures instead.
const FAST: &str = "alerts:\n  queue_oldest_ready_age: {warning: 2, critical: 4, for: 0s}\n  redis_latency_p99: {enabled: false}\n";

fn redline(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_redline")).args(args).output().expect("run redline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config(redis: &RedisServer, thresholds: &Path) -> String {
    format!(
        "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nredis:\n  - name: t\n    url: {}\n    queues:\n      - system: bullmq\n        names: [emails]\nthresholds:\n  file: {}\n",
        redis.url(),
        thresholds.display()
    )
}

/// Writes keys with a TTL into Redis until stopped (at most 2 minutes): under a small maxmemory
/// and `volatile-lru` Redis evicts them continuously and leaves BullMQ's keys (no TTL) alone.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            conn.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let value = "x".repeat(1000);
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut i = 0u64;
            let mut buf = vec![0u8; 4096];
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut batch = String::new();
                for _ in 0..50 {
                    let key = format!("fill:{i}");
                    i += 1;
                    batch.push_str(&format!(
                        "*5\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n$2\r\nEX\r\n$4\r\n3600\r\n",
                        key.len(),
                        value.len()
                    ));
                }
                conn.write_all(batch.as_bytes()).expect("write");
                // One reply line per command.
                let mut lines = 0;
                while lines < 50 {
                    let n = conn.read(&mut buf).expect("read");
                    assert!(n > 0, "Redis closed the connection");
                    lines += buf[..n].iter().filter(|b| **b == b'\n').count();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer { stop, thread: Some(thread) }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn evicted(redis: &RedisServer) -> u64 {
    redis
        .cli(&["INFO", "stats"])
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("evicted_keys")
}

/// Makes the breach: 5 jobs nobody works, older than 5 s, and a Redis evicting keys.
fn breach(redis: &RedisServer) -> Writer {
    bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"emails","count":5}}"#, redis.port));
    let added = Instant::now();
    let used: u64 = redis
        .cli(&["INFO", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", &(used + 2_000_000).to_string()]);
    let writer = Writer::start(redis.port);
    wait_for("Redis evicts keys", Duration::from_secs(30), || evicted(redis) > 0);
    // The jobs' age is the condition itself: it passes 5 s only with time.
    wait_for("the oldest job waits past 5 s", Duration::from_secs(10), || {
        added.elapsed() > Duration::from_secs(5)
    });
    writer
}

fn rows(json: &serde_json::Value) -> &Vec<serde_json::Value> {
    json["rows"].as_array().expect("rows")
}

fn row<'a>(json: &'a serde_json::Value, alert: &str) -> &'a serde_json::Value {
    rows(json).iter().find(|r| r["alert"] == alert).unwrap_or_else(|| panic!("no {alert} row: {json}"))
}

#[test]
fn exit_codes_follow_a_real_breach_and_the_report_parses() {
    let redis = RedisServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("thresholds.yaml"), FAST).expect("write");
    std::fs::write(d.join("redline.yaml"), config(&redis, &d.join("thresholds.yaml"))).expect("write");
    let cfg = d.join("redline.yaml");
    let cfg = cfg.to_str().expect("path");

    // Healthy: exit 0, and every row within its levels or without data.
    let (code, out, err) = redline(&["status", "--config", cfg, "--window", "1s", "--format", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let healthy: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(healthy["level"], "ok");
    assert!(rows(&healthy).iter().all(|r| r["crossed"] == false), "{out}");
    assert_eq!(row(&healthy, "RedisEvictingKeys")["value"], 0.0);
    assert_eq!(row(&healthy, "RedisDown")["state"], "ok");
    assert!(rows(&healthy).len() >= redline::catalog::ALERTS.len(), "every threshold is listed");

    let _writer = breach(&redis);
    let (code, out, err) = redline(&["status", "--config", cfg, "--window", "2s", "--format", "json"]);
    assert_eq!(code, 2, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["level"], "critical");
    let evicting = row(&report, "RedisEvictingKeys");
    assert_eq!((evicting["state"].as_str(), evicting["crossed"].as_bool()), (Some("critical"), Some(true)));
    assert!(evicting["value"].as_f64().expect("rate") > 0.0, "{evicting}");
    assert_eq!(evicting["labels"]["target"], "t");
    let age = row(&report, "QueueJobsWaitingTooLong");
    assert_eq!(age["state"], "critical", "{age}");
    assert_eq!(age["labels"]["queue"], "emails");
    assert!(
        age["value"].as_f64().expect("age") > 4.0 && age["headroom"].as_f64().expect("headroom") < 0.0,
        "{age}"
    );
    // Worst first: nothing after a row is worse than it.
    let order = ["critical", "warning", "ok", "no_data", "not_evaluated", "disabled"];
    let ranks: Vec<usize> =
        rows(&report).iter().map(|r| order.iter().position(|s| r["state"] == *s).expect("state")).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");

    // Piped text is plain; markdown is a table.
    let (code, text, _) = redline(&["status", "--config", cfg, "--window", "1s"]);
    assert_eq!(code, 2);
    assert!(
        !text.contains('\x1b') && text.contains("CRITICAL") && text.contains("RedisEvictingKeys"),
        "{text}"
    );
    let (_, md, _) = redline(&["status", "--config", cfg, "--window", "1s", "--format", "markdown"]);
    assert!(md.contains("| **CRITICAL** | RedisEvictingKeys |"), "{md}");

    // Only warnings crossed (the critical alerts off, the queue's critical level far away):
    // exit 1, or 0 with --fail-on critical.
    std::fs::write(
        d.join("warn.yaml"),
        "alerts:\n  redis_evicting: {enabled: false}\n  redis_memory_near_limit: {enabled: false}\n  queue_no_workers: {enabled: false}\n  redis_latency_p99: {enabled: false}\n  queue_oldest_ready_age: {warning: 2, critical: 3600}\n",
    )
    .expect("write");
    let warn = d.join("warn.yaml");
    let warn = warn.to_str().expect("path");
    let (code, out, err) =
        redline(&["status", "--config", cfg, "--thresholds", warn, "--window", "1s", "--format", "json"]);
    assert_eq!(code, 1, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["level"], "warning");
    assert_eq!(row(&report, "RedisEvictingKeys")["state"], "disabled");
    let (code, _, _) = redline(&[
        "status",
        "--config",
        cfg,
        "--thresholds",
        warn,
        "--window",
        "1s",
        "--fail-on",
        "critical",
    ]);
    assert_eq!(code, 0);

    // Nothing to judge is neither healthy nor a crossed level: exit 3, also for a usage error
    // (clap's own 2 would read as critical), and --url wins over a REDLINE_CONFIG in the env.
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["status", "--url", &format!("http://127.0.0.1:{}", free_port()), "--window", "0s"])
        .env("REDLINE_CONFIG", cfg)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let (code, _, err) = redline(&["status", "--format", "yaml"]);
    assert_eq!(code, 3, "{err}");
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A PromQL query; `None` while Prometheus is not answering yet.
fn try_prom_query(port: u16, q: &str) -> Option<serde_json::Value> {
    let body = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .and_then(|r| r.text())
        .ok()?;
    serde_json::from_str(&body).ok()
}

fn prom_query(port: u16, q: &str) -> serde_json::Value {
    try_prom_query(port, q).expect("Prometheus answers its query API")
}

/// `(alertname, severity, labels)` of every alert Prometheus has pending or firing.
fn prometheus_crossed(port: u16) -> BTreeSet<String> {
    let v = prom_query(port, "ALERTS");
    v["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|s| {
            let m = s["metric"].as_object().expect("metric");
            let labels: Vec<String> = m
                .iter()
                .filter(|(k, _)| {
                    !["__name__", "alertname", "alertstate", "severity", "job", "instance"]
                        .contains(&k.as_str())
                })
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            format!(
                "{} {} {}",
                m["alertname"].as_str().unwrap_or(""),
                m["severity"].as_str().unwrap_or(""),
                labels.join(",")
            )
        })
        .collect()
}

/// The same for `redline status --format json` rows that are crossed. Prometheus shows a
/// series crossing both levels as two alerts (warning and critical); status as its worst.
fn status_crossed(report: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in rows(report).iter().filter(|r| r["crossed"] == true) {
        let mut labels: Vec<(String, String)> = r["labels"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        if let Some(o) = r["override"].as_str() {
            labels.push(("override".into(), o.into()));
        }
        labels.sort();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let value = r["value"].as_f64().expect("value");
        let above = r["fires"] == "above";
        for sev in ["warning", "critical"] {
            let Some(level) = r[sev].as_f64() else { continue };
            if (above && value > level) || (!above && value < level) {
                out.insert(format!("{} {sev} {}", r["alert"].as_str().unwrap_or(""), labels.join(",")));
            }
        }
    }
    out
}

#[test]
fn status_and_the_generated_rules_in_prometheus_agree_on_a_real_breach() {
    let redis = RedisServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // Memory levels well below 100%: while evicting, used memory hovers at maxmemory.
    std::fs::write(
        dir.path().join("thresholds.yaml"),
        format!("{FAST}  redis_memory_near_limit: {{warning: 0.5, critical: 0.6, for: 0s}}\n"),
    )
    .expect("write");
    let body = config(&redis, Path::new("thresholds.yaml"))
        .replace("  file: thresholds.yaml\n", "  file: thresholds.yaml\n  rules_dir: rules\n");
    let rules = dir.path().join("rules/redline.rules.yml");
    let daemon = Daemon::start_in(dir, &body, &[]);
    assert!(rules.exists(), "{}", daemon.log_text());

    let prom_dir = tempfile::tempdir().expect("tempdir");
    let p = prom_dir.path();
    let prom_port = free_port();
    std::fs::write(
        p.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: redline\n    static_configs:\n      - targets: ['{}']\n",
            rules.display(),
            daemon.addr
        ),
    )
    .expect("write");
    let _prom = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", p.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", p.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus)"),
    );
    wait_for("Prometheus scrapes redline with the generated rules", Duration::from_secs(30), || {
        let Some(up) = try_prom_query(prom_port, "up") else { return false };
        up["data"]["result"].as_array().is_some_and(|r| r.iter().any(|s| s["value"][1] == "1"))
            && prom_query(prom_port, "count(redline_redis_evicted_keys_total)")["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    });

    let _writer = breach(&redis);
    wait_for("Prometheus sees the evictions and the queue age", Duration::from_secs(60), || {
        let c = prometheus_crossed(prom_port);
        c.iter().any(|a| a.starts_with("RedisEvictingKeys critical"))
            && c.iter().any(|a| a.starts_with("QueueJobsWaitingTooLong critical"))
    });

    let url = format!("http://{}", daemon.addr);
    let (code, out, err) = redline(&["status", "--url", &url, "--window", "2s", "--format", "json"]);
    let prom = prometheus_crossed(prom_port);
    assert_eq!(code, 2, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(report["thresholds"].as_str().is_some_and(|t| t.contains("redline_threshold")), "{report}");
    let ours = status_crossed(&report);
    assert!(ours.iter().any(|a| a.starts_with("RedisEvictingKeys critical target=t")), "{ours:?}");
    assert!(ours.iter().any(|a| a.starts_with("QueueJobsWaitingTooLong critical")), "{ours:?}");
    assert_eq!(ours, prom, "redline status and Prometheus disagree");
    eprintln!("status and Prometheus agree on: {ours:#?}");
}
