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
        .contains("(time() - redline_queue_oldest_ready_timestamp_seconds) > 120"));
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

/// POSTs /-/reload; returns (status, body).
fn post_reload(d: &Daemon) -> (u16, String) {
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
        .post(format!("http://{}/-/reload", d.addr))
        .send()
        .expect("post");
    (resp.status().as_u16(), resp.text().expect("body"))
}

fn up(d: &Daemon, target: &str) -> Option<f64> {
    value(&d.scrape(), &format!("redline_target_up{{collector=\"redis\",target=\"{target}\"}}"))
}

#[test]
fn removed_target_is_gone_at_once_and_an_in_flight_collection_cannot_bring_it_back() {
    let keep = common::RedisServer::start(&[]);
    let gone = common::RedisServer::start(&[]);
    let d = start("");
    let cfg = d.dir().join("redline.yaml");
    let base = std::fs::read_to_string(&cfg).expect("config");
    let target = |name: &str, r: &common::RedisServer| format!("  - name: {name}\n    url: {}\n", r.url());
    replace(&cfg, &format!("{base}redis:\n{}{}", target("keep", &keep), target("gone", &gone)));
    wait_for("both collected", Duration::from_secs(15), || {
        up(&d, "keep") == Some(1.0) && up(&d, "gone") == Some(1.0)
    });

    // Freeze the target so a collection is in flight (waiting on it) when it is removed.
    gone.signal("STOP");
    wait_for("a collection of the frozen target timed out", Duration::from_secs(10), || {
        up(&d, "gone") == Some(0.0)
    });
    replace(&cfg, &format!("{base}redis:\n{}", target("keep", &keep)));
    let (status, body) = post_reload(&d);
    assert_eq!(status, 200, "{body}");
    // The removal is applied by the time the reload answers: no series of it is left.
    let text = d.scrape();
    assert!(!text.contains("target=\"gone\""), "removed target still served:\n{text}");
    // Thaw it: the collection that was waiting finishes now, and must not publish. Watch two
    // more collections of the kept target to give it every chance.
    gone.signal("CONT");
    let stamp = |d: &Daemon| {
        value(
            &d.scrape(),
            "redline_collector_last_success_timestamp_seconds{collector=\"redis\",target=\"keep\"}",
        )
        .unwrap_or(0.0)
    };
    let t0 = stamp(&d);
    wait_for("two more collections of the kept target", Duration::from_secs(10), || stamp(&d) >= t0 + 1.5);
    let text = d.scrape();
    assert!(!text.contains("target=\"gone\""), "removed target came back:\n{text}");
    assert_eq!(up(&d, "keep"), Some(1.0));
}

#[test]
fn a_changed_password_file_is_watched_and_applied() {
    let r = common::RedisServer::start(&["--requirepass", "second-pw"]);
    let d = start("");
    let pw = d.dir().join("redis.pw");
    std::fs::write(&pw, "first-pw\n").expect("write");
    let cfg = d.dir().join("redline.yaml");
    let base = std::fs::read_to_string(&cfg).expect("config");
    replace(
        &cfg,
        &format!("{base}redis:\n  - name: app\n    url: {}\n    password_file: {}\n", r.url(), pw.display()),
    );
    wait_for("wrong password: down", Duration::from_secs(15), || up(&d, "app") == Some(0.0));
    // Rotate the secret the way Kubernetes and editors do; nothing else changes.
    replace(&pw, "second-pw\n");
    wait_for("the new password is used", Duration::from_secs(15), || up(&d, "app") == Some(1.0));
    assert_eq!(reload_ok(&d), Some(1.0));
    assert!(!d.log_text().contains("second-pw"));
}

#[test]
fn both_files_are_validated_before_either_is_swapped() {
    let r = common::RedisServer::start(&[]);
    let d = start("");
    wait_for("initial", Duration::from_secs(5), || reload_ok(&d) == Some(1.0));
    let cfg = d.dir().join("redline.yaml");
    let base = std::fs::read_to_string(&cfg).expect("config");
    // A good config change and a broken thresholds file in one reload: neither applies.
    std::fs::write(d.dir().join("thresholds.yaml"), "alerts:\n  redis_down:\n    critical: lots\n")
        .expect("write");
    std::fs::write(&cfg, format!("{base}redis:\n  - name: added\n    url: {}\n", r.url())).expect("write");
    let (status, body) = post_reload(&d);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("thresholds.yaml:3"), "{body}");
    assert_eq!(up(&d, "added"), None, "the config was applied although the thresholds were bad");
    assert_eq!(threshold(&d, "redis_down", "critical"), Some(1.0));
    // Fixed: both apply together.
    replace(&d.dir().join("thresholds.yaml"), SHIPPED);
    let (status, body) = post_reload(&d);
    assert_eq!(status, 200, "{body}");
    wait_for("added target collected", Duration::from_secs(10), || up(&d, "added") == Some(1.0));
}

#[test]
fn empty_huge_deep_and_broken_files_are_refused_while_metrics_keep_answering() {
    let r = common::RedisServer::start(&[]);
    let d = start("");
    let cfg = d.dir().join("redline.yaml");
    let thresholds = d.dir().join("thresholds.yaml");
    let good = format!(
        "{}redis:\n  - name: app\n    url: {}\n",
        std::fs::read_to_string(&cfg).expect("config"),
        r.url()
    );
    replace(&cfg, &good);
    wait_for("collected", Duration::from_secs(15), || up(&d, "app") == Some(1.0));

    // A scraper runs the whole time and records whether every scrape was answered.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let (addr, stop) = (d.addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut answered, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match common::try_scrape(&addr) {
                    Some(body) if body.contains("redline_target_up") => answered += 1,
                    other => failed.push(format!("{:?}", other.map(|b| b.len()))),
                }
            }
            (answered, failed)
        })
    };

    let deep_flow = format!("redis: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let deep_block: String = (0..100).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
    let huge = format!("{good}# {}\n", "x".repeat(2 * 1024 * 1024));
    let many_overrides: String = std::iter::once("overrides:\n".to_string())
        .chain(
            (0..8000)
                .map(|i| format!("  - alert: queue_backlog\n    match: {{queue: q{i}}}\n    warning: 5\n")),
        )
        .collect();
    let cases: Vec<(&Path, String, &str)> = vec![
        (&cfg, String::new(), "the file is empty"),
        (&cfg, "# comments only\n".into(), "the file is empty"),
        (&cfg, deep_flow, "nested more than"),
        (&cfg, deep_block, "nested more than"),
        (&cfg, huge, "at most"),
        (&cfg, format!("{good}redis: [\n"), "redline.yaml:"),
        (&thresholds, String::new(), "the file is empty"),
        (&thresholds, many_overrides, "at most 1000"),
        (
            &thresholds,
            "alerts:\n  queue_backlog:\n    summary: \"backlog {{ .Foo \"\n".into(),
            "unclosed action",
        ),
    ];
    let n = cases.len();
    for (i, (file, text, want)) in cases.into_iter().enumerate() {
        std::fs::write(file, text).expect("write");
        let (status, body) = post_reload(&d);
        assert_eq!(status, 400, "case {i}: {body}");
        assert!(body.contains(want), "case {i}: {body}");
        // Restore, and check nothing of the bad file took effect.
        std::fs::write(&cfg, &good).expect("write");
        std::fs::write(&thresholds, SHIPPED).expect("write");
        assert_eq!(up(&d, "app"), Some(1.0), "case {i}: the target must stay");
        assert_eq!(threshold(&d, "queue_backlog", "warning"), Some(10000.0), "case {i}");
        assert_eq!(
            common::get(&d.addr, "/-/ready", None).map(|r| r.0),
            Ok(200),
            "case {i}: a reload must not make the daemon unready"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, failed) = scraper.join().expect("scraper");
    assert!(failed.is_empty(), "scrapes went unanswered during reloads: {failed:?}");
    assert!(answered > 0);
    assert_eq!(value(&d.scrape(), "redline_thresholds_reload_failures_total "), Some(n as f64));
    // The files are good again: a reload succeeds.
    assert_eq!(post_reload(&d).0, 200);
}

#[test]
fn readiness_holds_through_a_reload_that_adds_a_target() {
    let frozen = common::RedisServer::start(&[]);
    let d = start("");
    wait_for("ready", Duration::from_secs(10), || {
        common::get(&d.addr, "/-/ready", None).map(|r| r.0) == Ok(200)
    });
    frozen.signal("STOP");
    let cfg = d.dir().join("redline.yaml");
    let base = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, format!("{base}redis:\n  - name: slow\n    url: {}\n", frozen.url()))
        .expect("write");
    assert_eq!(post_reload(&d).0, 200);
    // The new target's first collection is still waiting on the frozen server.
    assert_eq!(common::get(&d.addr, "/-/ready", None).map(|r| r.0), Ok(200));
}
