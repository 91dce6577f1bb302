//! Hot reload of the thresholds and config files in a running daemon: editor-style atomic
//! replacement, broken files, a briefly missing file, SIGHUP, POST /-/reload, regenerated
//! artifacts and Prometheus' reload hook.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{value, wait_for, Daemon};

const SHIPPED: &str = include_str!("../rules/thresholds.yaml");

/// Replaces a file the way editors and Kubernetes do: write elsewhere, rename over.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn threshold(d: &Daemon, key: &str, severity: &str) -> Option<f64> {
    let text = d.scrape();
    let prefix = "redline_threshold{alert=";
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(&format!("key=\"{key}\",severity=\"{severity}\"}}")))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn reload_ok(d: &Daemon) -> Option<f64> {
    value(&d.scrape(), "redline_thresholds_reload_success ")
}

/// A fake Prometheus that records POST /-/reload calls.
fn fake_prometheus() -> (String, Arc<Mutex<u32>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/-/reload", l.local_addr().expect("addr"));
    let hits = Arc::new(Mutex::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap_or(0);
            if String::from_utf8_lossy(&buf[..n]).starts_with("POST /-/reload") {
                *h.lock().expect("lock") += 1;
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, hits)
}

fn start(extra: &str) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("thresholds.yaml"), SHIPPED).expect("write");
    Daemon::start_in(
        dir,
        &format!("collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nthresholds:\n  file: thresholds.yaml\n  rules_dir: out/rules\n  dashboards_dir: out/grafana\n{extra}"),
        &[("REDLINE_WEB_ENABLE_LIFECYCLE", "true")],
    )
}

#[test]
fn good_change_is_applied_without_restart_and_artifacts_follow() {
    let (url, hits) = fake_prometheus();
    let d = start(&format!("  prometheus_reload_url: {url}\n"));
    let file = d.dir().join("thresholds.yaml");
    let rules = d.dir().join("out/rules/redline.rules.yml");
    wait_for("initial thresholds", Duration::from_secs(5), || {
        threshold(&d, "queue_oldest_ready_age", "warning") == Some(300.0)
    });
    assert!(std::fs::read_to_string(&rules).expect("rules written at start").contains("> 300"));
    assert!(d.dir().join("out/grafana/redline-queues.json").exists());
    let before = value(&d.scrape(), "redline_thresholds_reload_timestamp_seconds ").expect("timestamp");

    replace(
        &file,
        &SHIPPED.replace("    warning: 300\n    critical: 900\n", "    warning: 120\n    critical: 900\n"),
    );
    wait_for("new threshold live", Duration::from_secs(10), || {
        threshold(&d, "queue_oldest_ready_age", "warning") == Some(120.0)
    });
    assert_eq!(reload_ok(&d), Some(1.0));
    assert!(value(&d.scrape(), "redline_thresholds_reload_timestamp_seconds ").expect("ts") > before);
    assert!(std::fs::read_to_string(&rules)
        .expect("rules")
        .contains("(redline_queue_oldest_ready_age_seconds) > 120"));
    wait_for("Prometheus told to reload", Duration::from_secs(5), || *hits.lock().expect("lock") >= 1);
}

#[test]
fn bad_change_is_rejected_last_good_kept_and_reported() {
    let d = start("");
    let file = d.dir().join("thresholds.yaml");
    wait_for("initial thresholds", Duration::from_secs(5), || reload_ok(&d) == Some(1.0));
    let rules = std::fs::read_to_string(d.dir().join("out/rules/redline.rules.yml")).expect("rules");

    replace(
        &file,
        &SHIPPED.replace("    warning: 0.8\n    critical: 0.9\n", "    warning: 0.95\n    critical: 0.9\n"),
    );
    wait_for("rejected", Duration::from_secs(10), || reload_ok(&d) == Some(0.0));
    assert_eq!(value(&d.scrape(), "redline_thresholds_reload_failures_total "), Some(1.0));
    assert_eq!(threshold(&d, "redis_memory_near_limit", "warning"), Some(0.8), "last good kept");
    assert_eq!(std::fs::read_to_string(d.dir().join("out/rules/redline.rules.yml")).expect("rules"), rules);
    let log = d.log_text();
    assert!(log.contains("thresholds.yaml:") && log.contains("must be below critical"), "{log}");

    // Broken YAML too; then a fix brings success back.
    replace(&file, "alerts: [\n");
    wait_for("second failure", Duration::from_secs(10), || {
        value(&d.scrape(), "redline_thresholds_reload_failures_total ") == Some(2.0)
    });
    replace(&file, SHIPPED);
    wait_for("recovered", Duration::from_secs(10), || reload_ok(&d) == Some(1.0));
    assert_eq!(common::get(&d.addr, "/-/healthy", None).map(|r| r.0), Ok(200));
}

#[test]
fn briefly_missing_file_is_not_a_failure() {
    let d = start("");
    let file = d.dir().join("thresholds.yaml");
    wait_for("initial", Duration::from_secs(5), || reload_ok(&d) == Some(1.0));
    std::fs::remove_file(&file).expect("remove");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&file, SHIPPED.replace("    warning: 10000\n", "    warning: 5000\n")).expect("write");
    wait_for("applied", Duration::from_secs(10), || {
        threshold(&d, "queue_backlog", "warning") == Some(5000.0)
    });
    assert_eq!(value(&d.scrape(), "redline_thresholds_reload_failures_total "), Some(0.0));
}

#[test]
fn post_reload_answers_with_problems_and_sighup_reloads() {
    let d = start("");
    let file = d.dir().join("thresholds.yaml");
    wait_for("initial", Duration::from_secs(5), || reload_ok(&d) == Some(1.0));
    // Written in place with no rename, then asked for explicitly.
    std::fs::write(&file, "alerts:\n  no_such_alert:\n    warning: 1\n").expect("write");
    let client = reqwest::blocking::Client::new();
    let resp = client.post(format!("http://{}/-/reload", d.addr)).send().expect("post");
    assert_eq!(resp.status().as_u16(), 400);
    let body = resp.text().expect("body");
    assert!(body.contains("thresholds.yaml:2") && body.contains("unknown alert"), "{body}");

    std::fs::write(
        &file,
        SHIPPED.replace("    warning: 0.9\n    for: 15m\n", "    warning: 0.75\n    for: 15m\n"),
    )
    .expect("write");
    let ok = Command::new("kill").args(["-HUP", &d.pid().to_string()]).status().expect("kill");
    assert!(ok.success());
    wait_for("SIGHUP reload", Duration::from_secs(10), || {
        threshold(&d, "host_cpu_busy", "warning") == Some(0.75)
    });
    assert_eq!(reload_ok(&d), Some(1.0));
}

#[test]
fn config_change_restarts_collectors_with_the_new_targets() {
    let r = common::RedisServer::start(&[]);
    let d = start("");
    let cfg = d.dir().join("redline.yaml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    replace(&cfg, &format!("{text}redis:\n  - name: added\n    url: {}\n", r.url()));
    wait_for("new target collected", Duration::from_secs(15), || {
        value(&d.scrape(), "redline_target_up{collector=\"redis\",target=\"added\"}") == Some(1.0)
    });
    // A broken config is rejected and the running collectors stay.
    replace(&cfg, &format!("{text}redis:\n  - name: added\n    url: {}\n    bogus: 1\n", r.url()));
    wait_for("rejected", Duration::from_secs(10), || reload_ok(&d) == Some(0.0));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(value(&d.scrape(), "redline_target_up{collector=\"redis\",target=\"added\"}"), Some(1.0));
    assert!(d.log_text().contains("redline.yaml:") && d.log_text().contains("unknown field `bogus`"));
}
