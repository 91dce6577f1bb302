//! `redline snapshot` and `redline diff` on real data: capture, generate load with
//! redis-benchmark and BullMQ, capture again (from a running daemon), compare.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bull_js, wait_for, Daemon, RedisServer};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn redline(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_redline")).args(args).output().expect("run redline");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn snapshot_load_snapshot_diff() {
    let r = RedisServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Judge the after-state with a queue-age warning of 1 s.
    let shipped = std::fs::read_to_string(format!("{ROOT}/rules/thresholds.yaml")).expect("thresholds");
    let strict = shipped.replace(
        "    warning: 300\n    critical: 900\n    for: 2m\n",
        "    warning: 1\n    critical: 900\n    for: 2m\n",
    );
    assert_ne!(strict, shipped);
    std::fs::write(d.join("thresholds.yaml"), strict).expect("write");
    let body = format!(
        "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nredis:\n  - name: bench\n    url: {}\n    queues:\n      - system: bullmq\n",
        r.url()
    );
    let cfg = d.join("redline.yaml");
    std::fs::write(&cfg, format!("listen: 127.0.0.1:{}\n{body}", common::free_port())).expect("write");
    bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"reports","count":2}}"#, r.port));

    let before = d.join("before.prom");
    let (ok, _, err) = redline(&[
        "snapshot",
        "--out",
        before.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");

    // Load: a real benchmark client and a burst of jobs nobody works.
    let out = Command::new("redis-benchmark")
        .args(["-p", &r.port.to_string(), "-n", "3000", "-c", "4", "-q", "-t", "set,get"])
        .output()
        .expect("redis-benchmark");
    assert!(out.status.success());
    bull_js("bullmq", "add", &format!(r#"{{"port":{},"queue":"reports","count":30}}"#, r.port));

    // The after-capture comes from a running daemon over HTTP.
    let daemon = Daemon::start(&body, &[]);
    wait_for("daemon sees the queue", Duration::from_secs(10), || {
        daemon.scrape().contains("queue=\"reports\"")
    });
    std::thread::sleep(Duration::from_millis(1200));
    let after = d.join("after.prom");
    let url = format!("http://{}/metrics", daemon.addr);
    let (ok, _, err) = redline(&["snapshot", "--out", after.to_str().expect("path"), "--url", &url]);
    assert!(ok, "{err}");

    let (ok, report, err) = redline(&[
        "diff",
        before.to_str().expect("path"),
        after.to_str().expect("path"),
        "--thresholds",
        d.join("thresholds.yaml").to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    assert!(report.starts_with("# redline diff"), "{report}");
    assert!(
        report.contains("| `redline_queue_jobs{prefix=\"bull\",queue=\"reports\",state=\"waiting\",system=\"bullmq\",target=\"bench\"}` | 2 | 32 | +30 (+1500.0%) |"),
        "{report}"
    );
    // Series that appear only after the load are marked new.
    assert!(
        report.contains(
            "| `redline_redis_command_calls_total{cmd=\"set\",target=\"bench\"}` | - | 3000 | new |"
        ),
        "{report}"
    );
    let cmd_line = report
        .lines()
        .find(|l| l.contains("`redline_redis_commands_processed_total{target=\"bench\"}`"))
        .expect("commands processed row");
    let cols: Vec<&str> = cmd_line.split('|').map(str::trim).collect();
    assert!(cols[4].starts_with('+') && cols[5].parse::<f64>().expect("rate") > 0.0, "{cmd_line}");
    assert!(report.contains("| QueueJobsWaitingTooLong | warning | `{prefix=\"bull\",queue=\"reports\",system=\"bullmq\",target=\"bench\"}` |"), "{report}");

    // Not a snapshot: a clear error naming the file.
    std::fs::write(d.join("junk.prom"), "hello\n").expect("write");
    let (ok, _, err) =
        redline(&["diff", before.to_str().expect("path"), d.join("junk.prom").to_str().expect("path")]);
    assert!(!ok && err.contains("junk.prom") && err.contains("not a redline snapshot"), "{err}");
}
