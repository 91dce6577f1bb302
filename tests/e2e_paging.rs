//! The whole promise, end to end with real processes: redline writes its rules, Prometheus
//! loads them, Alertmanager routes with deploy/alertmanager.yml, and a webhook receiver stands
//! in for the pager.
//! - Nothing pages while healthy; an evicting Redis pages; a queue whose oldest job waits too
//!   long pages and resolves once a worker drains it (1 s everywhere).
//! - With production-like collection and scrape (5 s each, evaluation 1 s), a queue-age page
//!   arrives within about an evaluation of the job's age crossing the level, because the rule
//!   measures `time() - timestamp` in Prometheus (the figure is printed, not asserted tightly).
//! - A real BullMQ producer outpacing a deliberately slow worker burns a wait SLO's budget: the
//!   fast-burn page arrives, and resolves after a fast worker catches up (windows scaled 1/60
//!   by the same generator).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{bull_js, bull_js_spawn, free_port, redis_cli, value, wait_for, Daemon, RedisServer};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A notification the pager received.
#[derive(Debug, Clone)]
struct Page {
    path: String,
    at: Instant,
    /// Wall-clock time of arrival (Unix seconds), to compare with job timestamps.
    wall: f64,
    body: serde_json::Value,
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The stand-in pager: an HTTP server recording every POST.
fn pager() -> (u16, Arc<Mutex<Vec<Page>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let pages = Arc::new(Mutex::new(Vec::new()));
    let p = pages.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s);
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            p.lock().expect("lock").push(Page { path, at: Instant::now(), wall: unix_now(), body });
            let _ =
                r.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, pages)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> String {
    reqwest::blocking::get(format!("http://127.0.0.1:{port}{path}"))
        .and_then(|r| r.text())
        .unwrap_or_default()
}

/// Pages for `alertname` with `status` on `path`.
fn find(pages: &Arc<Mutex<Vec<Page>>>, path: &str, alertname: &str, status: &str) -> Option<Page> {
    pages
        .lock()
        .expect("lock")
        .iter()
        .find(|p| {
            p.path == path
                && p.body["alerts"].as_array().is_some_and(|a| {
                    a.iter().any(|x| x["labels"]["alertname"] == alertname && x["status"] == status)
                })
        })
        .cloned()
}

/// Alertmanager with the shipped routing (deploy/alertmanager.yml) pointed at our pager, every
/// route waiting `group_wait` before its first notification and 1 s between updates.
fn alertmanager(d: &Path, pager_port: u16, group_wait: &str) -> (Proc, u16) {
    let am_port = free_port();
    let am_cfg = std::fs::read_to_string(Path::new(ROOT).join("deploy/alertmanager.yml"))
        .expect("alertmanager.yml")
        .replace("http://127.0.0.1:9095", &format!("http://127.0.0.1:{pager_port}"))
        .replace("group_wait: 30s", &format!("group_wait: {group_wait}"))
        .replace("group_wait: 10s", &format!("group_wait: {group_wait}"))
        .replace("group_interval: 5m", "group_interval: 1s");
    std::fs::write(d.join("alertmanager.yml"), am_cfg).expect("write");
    let am = Proc(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", d.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", d.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager (Debian package prometheus-alertmanager)"),
    );
    (am, am_port)
}

/// Prometheus scraping redline at `target` every `scrape`, evaluating `rules` every `eval`.
fn prometheus(d: &Path, rules: &Path, am_port: u16, target: &str, scrape: &str, eval: &str) -> (Proc, u16) {
    let prom_port = free_port();
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: {scrape}\n  evaluation_interval: {eval}\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: redline\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
    )
    .expect("write");
    let prom = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", d.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus)"),
    );
    (prom, prom_port)
}

/// Appends a measured figure to the report file the test run leaves behind, and prints it.
fn report(line: &str) {
    eprintln!("{line}");
    let path = std::env::temp_dir().join("redline-e2e-latency.txt");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("report file");
    writeln!(f, "{line}").expect("write report");
}

#[test]
fn pages_on_evictions_and_queue_lag_and_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Thresholds for a test that must finish in a minute: no `for`, seconds not minutes.
    let shipped = std::fs::read_to_string(Path::new(ROOT).join("rules/thresholds.yaml")).expect("thresholds");
    let fast = shipped
        .replace("  redis_evicting:                # evicted keys per second; on a queue backend evictions delete jobs\n    critical: 0\n    for: 1m\n",
                 "  redis_evicting:\n    critical: 0\n    for: 0s\n")
        .replace("    warning: 300\n    critical: 900\n    for: 2m\n", "    warning: 3\n    critical: 6\n    for: 0s\n");
    assert_ne!(fast, shipped);
    assert!(
        fast.contains("    warning: 3\n    critical: 6\n    for: 0s\n")
            && fast.contains("redis_evicting:\n    critical: 0\n    for: 0s")
    );
    // Command latency on a CI machine busy with parallel tests says nothing about this chain.
    let fast = fast.replace(
        "    critical: 0.05\n    for: 5m\n",
        "    critical: 0.05\n    for: 5m\n    enabled: false\n",
    );
    assert!(fast.contains("    for: 5m\n    enabled: false\n"));
    // The runbook link comes from the base URL the thresholds name.
    let fast = format!("runbook_base_url: https://wiki.example.com/redline/runbooks\n{fast}");
    std::fs::write(d.join("thresholds.yaml"), fast).expect("write");

    let redis = RedisServer::start(&[]);
    let (pager_port, pages) = pager();

    let (_am, am_port) = alertmanager(d, pager_port, "1s");

    // redline writes the rules Prometheus loads.
    let daemon_dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(d.join("thresholds.yaml"), daemon_dir.path().join("thresholds.yaml")).expect("copy");
    let rules_dir = daemon_dir.path().join("rules");
    let redline = Daemon::start_in(
        daemon_dir,
        &format!(
            // No host collector: a busy CI machine's CPU or load would be "alerts while healthy".
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nthresholds:\n  file: thresholds.yaml\n  rules_dir: rules\nredis:\n  - name: jobs\n    url: {}\n    queues:\n      - system: bullmq\n        names: [emails]\n",
            redis.url()
        ),
        &[],
    );
    assert!(rules_dir.join("redline.rules.yml").exists());

    let (_prom, prom_port) =
        prometheus(d, &rules_dir.join("redline.rules.yml"), am_port, &redline.addr, "1s", "1s");
    wait_for("Prometheus scrapes redline and loaded the rules", Duration::from_secs(30), || {
        http_get(prom_port, "/api/v1/targets").contains("\"health\":\"up\"")
            && http_get(prom_port, "/api/v1/rules").contains("RedisEvictingKeys")
    });

    // 1. Healthy: after several evaluations nothing is firing or even pending, and nothing paged.
    std::thread::sleep(Duration::from_secs(6));
    let alerts = http_get(prom_port, "/api/v1/alerts");
    assert!(alerts.contains("\"alerts\":[]"), "alerts while healthy: {alerts}");
    assert!(pages.lock().expect("lock").is_empty(), "paged while healthy");

    // 2. Evictions: a small maxmemory with an LRU policy, then write past it.
    let used =
        value(&redline.scrape(), "redline_redis_memory_used_bytes{target=\"jobs\"}").expect("used memory");
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", &format!("{}", used as u64 + 2_000_000)]);
    let mut writer = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-cli");
    {
        let stdin = writer.stdin.as_mut().expect("stdin");
        let payload = "x".repeat(1000);
        for i in 0..6000 {
            let key = format!("fill:{i}");
            let _ = write!(
                stdin,
                "*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n${}\r\n{}\r\n",
                key.len(),
                key,
                payload.len(),
                payload
            );
        }
    }
    let _ = writer.wait();
    let evicting_since = Instant::now();
    assert!(redis
        .cli(&["INFO", "stats"])
        .lines()
        .any(|l| l.starts_with("evicted_keys:") && l.trim() != "evicted_keys:0"));
    wait_for("eviction page", Duration::from_secs(30), || {
        find(&pages, "/pager", "RedisEvictingKeys", "firing").is_some()
    });
    let evict_page = find(&pages, "/pager", "RedisEvictingKeys", "firing").expect("page");
    let evict_latency = evict_page.at - evicting_since;
    assert_eq!(evict_page.body["alerts"][0]["labels"]["severity"], "critical");
    assert!(evict_page.body["alerts"][0]["annotations"]["runbook_url"]
        .as_str()
        .is_some_and(|u| u == "https://wiki.example.com/redline/runbooks#redis_evicting"));
    // Room again for the queue, so BullMQ's keys are not evicted under it.
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    redis.cli(&["FLUSHALL"]);

    // 3. Queue lag: jobs and no worker until the oldest waits past the critical level (6 s).
    bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"emails","count":5}}"#, redis.port));
    let crossed_at = Instant::now() + Duration::from_secs(6);
    wait_for("queue-lag page", Duration::from_secs(40), || {
        find(&pages, "/pager", "QueueJobsWaitingTooLong", "firing").is_some()
    });
    let lag_page = find(&pages, "/pager", "QueueJobsWaitingTooLong", "firing").expect("page");
    let lag_latency = lag_page.at.saturating_duration_since(crossed_at);
    let labels = &lag_page.body["alerts"][0]["labels"];
    assert_eq!(labels["queue"], "emails");
    assert_eq!(labels["system"], "bullmq");

    // A worker drains the queue: the page resolves.
    let mut worker = bull_js_spawn(
        "bullmq",
        "work",
        &format!(r#"{{"port":{},"queue":"emails","seconds":4}}"#, redis.port),
    );
    let drained = Instant::now();
    wait_for("resolve notification", Duration::from_secs(40), || {
        find(&pages, "/pager", "QueueJobsWaitingTooLong", "resolved").is_some()
    });
    let resolve_latency =
        find(&pages, "/pager", "QueueJobsWaitingTooLong", "resolved").expect("resolved").at - drained;
    let _ = worker.wait();

    let report_line = format!(
        "condition -> page delivered: evictions {:.1} s, queue lag {:.1} s (after the age crossed 6 s); worker started -> resolved {:.1} s",
        evict_latency.as_secs_f64(),
        lag_latency.as_secs_f64(),
        resolve_latency.as_secs_f64()
    );
    report(&report_line);
    assert!(evict_latency < Duration::from_secs(30) && lag_latency < Duration::from_secs(30));
}

/// Waits until Prometheus scrapes redline and has loaded a rule named `alert`.
fn wait_ready(prom_port: u16, alert: &str) {
    wait_for("Prometheus scrapes redline and loaded the rules", Duration::from_secs(60), || {
        http_get(prom_port, "/api/v1/targets").contains("\"health\":\"up\"")
            && http_get(prom_port, "/api/v1/rules").contains(alert)
    });
}

#[test]
fn queue_age_page_arrives_within_an_evaluation_of_the_crossing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Production-like collection and scrape (5 s), evaluation every second, no `for`, and no
    // Alertmanager grouping delay: what is left is evaluation and delivery.
    const LEVEL: f64 = 20.0;
    let thresholds = "alerts:\n  queue_oldest_ready_age:\n    warning: 10\n    critical: 20\n    for: 0s\n";
    let redis = RedisServer::start(&[]);
    let (pager_port, pages) = pager();
    let (_am, am_port) = alertmanager(d, pager_port, "0s");
    let daemon_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(daemon_dir.path().join("thresholds.yaml"), thresholds).expect("write");
    let rules_dir = daemon_dir.path().join("rules");
    let redline = Daemon::start_in(
        daemon_dir,
        &format!(
            "collection:\n  interval: 5s\n  timeout: 4s\nhost:\n  enabled: false\nthresholds:\n  file: thresholds.yaml\n  rules_dir: rules\nredis:\n  - name: jobs\n    url: {}\n    queues:\n      - system: bullmq\n        names: [emails]\n",
            redis.url()
        ),
        &[],
    );
    let (_prom, prom_port) =
        prometheus(d, &rules_dir.join("redline.rules.yml"), am_port, &redline.addr, "5s", "1s");
    wait_ready(prom_port, "QueueJobsWaitingTooLong");

    bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"emails","count":1}}"#, redis.port));
    // The job's own enqueue time, as BullMQ wrote it, fixes when its age crosses the level.
    let enqueued_ms: f64 =
        redis_cli(redis.port, &["HGET", "bull:emails:1", "timestamp"]).trim().parse().expect("job timestamp");
    let crossed = enqueued_ms / 1000.0 + LEVEL;
    wait_for("queue-age page", Duration::from_secs(60), || {
        find(&pages, "/pager", "QueueJobsWaitingTooLong", "firing").is_some()
    });
    let page = find(&pages, "/pager", "QueueJobsWaitingTooLong", "firing").expect("page");
    let latency = page.wall - crossed;
    report(&format!(
        "queue-age page {latency:.2} s after the oldest job's age crossed {LEVEL} s (redline collects every 5 s, Prometheus scrapes every 5 s and evaluates every 1 s; Alertmanager group_wait 0 s)"
    ));
    let alert = &page.body["alerts"][0];
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["queue"], "emails");
    // Never before the crossing (same clock, ms timestamps); the bound is generous on purpose:
    // the figure above is the measurement, this only catches a rule gone back to collection time.
    assert!(latency > -0.01, "paged {latency:.3} s before the age crossed the level");
    assert!(latency < 10.0, "paged {latency:.2} s after the crossing");
}

#[test]
fn slo_fast_burn_pages_and_resolves_after_the_worker_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let thresholds = "slos:\n  - name: checkout-start\n    queue: checkout\n    system: bullmq\n    objective: 0.99\n    wait_under: 2s\n    window: 28d\n";
    let t = redline::thresholds::Thresholds::parse(thresholds, "thresholds.yaml").expect("valid");
    // The very rules `redline generate` writes, every window scaled 1/60: the 1 h/5 m page
    // becomes 1 m/5 s, the 6 h/30 m page 6 m/30 s.
    let rules = d.join("slo.rules.yml");
    std::fs::write(&rules, redline::generate::rules::rule_file_scaled(&t, 1.0 / 60.0)).expect("write");
    let redis = RedisServer::start(&[]);
    let (pager_port, pages) = pager();
    let (_am, am_port) = alertmanager(d, pager_port, "1s");
    let daemon_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(daemon_dir.path().join("thresholds.yaml"), thresholds).expect("write");
    let redline = Daemon::start_in(
        daemon_dir,
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nthresholds:\n  file: thresholds.yaml\nredis:\n  - name: t\n    url: {}\n    queues:\n      - system: bullmq\n        names: [checkout]\n",
            redis.url()
        ),
        &[],
    );
    let (_prom, prom_port) = prometheus(d, &rules, am_port, &redline.addr, "1s", "1s");
    wait_ready(prom_port, "QueueSLOBudgetBurn");

    // A real producer at 5 jobs/s and one worker that needs 500 ms a job: the backlog grows
    // and nearly every job waits past 2 s.
    let port = redis.port;
    let _producer = Proc(bull_js_spawn(
        "bullmq",
        "produce",
        &format!(r#"{{"port":{port},"queue":"checkout","rate":5,"seconds":240}}"#),
    ));
    let mut slow = bull_js_spawn(
        "bullmq",
        "work",
        &format!(r#"{{"port":{port},"queue":"checkout","ms":500,"seconds":30}}"#),
    );
    let burning = Instant::now();
    let labels = common::qlabels("bullmq", "checkout", "");
    let exact = format!("redline_queue_wait_duration_seconds_bucket{{le=\"2.0\",{}", &labels[1..]);
    wait_for("the SLO's 2 s bucket", Duration::from_secs(20), || redline.scrape().contains(&exact));
    let is_page = |status: &str| {
        pages
            .lock()
            .expect("lock")
            .iter()
            .find(|p| {
                p.path == "/pager"
                    && p.body["alerts"].as_array().is_some_and(|a| {
                        a.iter().any(|x| {
                            x["labels"]["alertname"] == "QueueSLOBudgetBurn"
                                && x["labels"]["slo"] == "checkout-start"
                                && x["status"] == status
                        })
                    })
            })
            .cloned()
    };
    wait_for("fast-burn page", Duration::from_secs(90), || is_page("firing").is_some());
    let page = is_page("firing").expect("page");
    let page_after = page.at - burning;
    let alert = &page.body["alerts"][0];
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["queue"], "checkout");
    assert_eq!(alert["labels"]["target"], "t");

    // A fast worker catches up; the producer keeps going, so good jobs fill the short windows.
    let _fast = Proc(bull_js_spawn(
        "bullmq",
        "work",
        &format!(r#"{{"port":{port},"queue":"checkout","ms":5,"seconds":200}}"#),
    ));
    let caught_up = Instant::now();
    wait_for("page resolved", Duration::from_secs(150), || is_page("resolved").is_some());
    let resolved_after = is_page("resolved").expect("resolved").at - caught_up;
    let _ = slow.wait();
    report(&format!(
        "SLO fast-burn page {:.1} s after a 5 jobs/s producer met a 2 jobs/s worker (windows scaled 1/60: 1m & 5s, 6m & 30s); resolved {:.1} s after a fast worker caught up",
        page_after.as_secs_f64(),
        resolved_after.as_secs_f64()
    ));
}
