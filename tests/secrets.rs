//! No password ever leaves redline: every output (stdout, stderr and the log of `check`, `run`,
//! `snapshot`, `diff`; `/metrics` in both formats and gzipped; `POST /-/reload` answers) is
//! collected over the error paths that used to echo one, and searched for it. Also: URL
//! credentials are sent as HTTP basic auth, and the lifecycle endpoint is off by default.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{wait_for, Daemon, RedisServer};

/// The password planted everywhere; it must never come back.
const PW: &str = "LeakPw7731";
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every output seen, by where it came from.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    /// Asserts the password is in none of the outputs, and that there were outputs at all.
    fn assert_clean(&self, at_least: usize) {
        assert!(self.0.len() >= at_least, "only {} outputs collected", self.0.len());
        for (what, text) in &self.0 {
            assert!(!text.contains(PW), "{what} shows the password:\n{text}");
        }
    }
}

fn redline(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .current_dir(dir)
        .args(args)
        .env("REDLINE_LOG", "debug")
        .output()
        .expect("run redline");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Configs that are wrong in ways whose messages used to quote the password.
fn bad_configs() -> Vec<String> {
    vec![
        format!("redis:\n  - redis://:{PW}@127.0.0.1:6402\n"),
        format!("redis: redis://:{PW}@127.0.0.1:6402\n"),
        format!("postgres:\n  - postgres://u:{PW}@127.0.0.1/db\n"),
        format!("postgres: postgres://u:{PW}@127.0.0.1/db\n"),
        format!("redis:\n  - url: redis://:{PW}@127.0.0.1:6402\n    password_env: ALSO_SET\n"),
        format!("redis:\n  - url: redis://:{PW}@127.0.0.1:6402\n    password_file: /nonexistent/pw\n"),
        format!(
            "redis:\n  - url: redis://:{PW}@127.0.0.1:6402\n    tls:\n      ca_file: /nonexistent/ca.pem\n"
        ),
        format!("redis:\n  - url: \"redis://:{PW}@[::1\"\n"),
        format!("redis:\n  - url: redis://:{PW}@127.0.0.1:6402\n    queues: redis://:{PW}@x\n"),
        format!("redis:\n  - url: redis://:{PW}@127.0.0.1:6402\n    queues:\n      - system: {PW}\n"),
        format!("redis:\n  - url: redis://:{PW}@127.0.0.1:6402\n    interval: {PW}\n"),
        format!("\"redis://:{PW}@h\": 1\n"),
        format!("{PW}\n"),
        format!("thresholds:\n  prometheus_reload_url: https://admin:{PW}@127.0.0.1:9/-/reload\n"),
        format!("thresholds:\n  prometheus_reload_url: http://admin:{PW}@/x\n"),
        format!("listen: \"{PW}\"\n"),
        format!("limits:\n  max_queues: {PW}\n"),
        format!("redis:\n  - url: redis://:{PW}@127.0.0.1:6402\n    bogus: {PW}\n"),
        format!("redis: [{{url: \"redis://:{PW}@127.0.0.1:6402\"\n"),
    ]
}

#[test]
fn check_and_run_never_echo_the_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outputs = Outputs::default();
    for (i, body) in bad_configs().iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&path, body).expect("write");
        let p = path.to_str().expect("path");
        let (ok, text) = redline(&["check", "--config", p], dir.path());
        assert!(!ok, "accepted: {body}");
        assert!(text.contains(&format!("bad{i}.yaml")), "the error names the file: {text}");
        outputs.add(format!("check {body:?}"), text);
        let (ok, text) = redline(&["run", "--config", p], dir.path());
        assert!(!ok, "run accepted: {body}");
        outputs.add(format!("run {body:?}"), text);
    }
    outputs.assert_clean(2 * bad_configs().len());
}

/// A tiny HTTP server recording each request's head; answers `status` to all.
fn recorder(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = vec![0u8; 8192];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            s.lock().expect("lock").push(String::from_utf8_lossy(&head).into_owned());
            let body = "redline_x 1\n";
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen)
}

fn authorization(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
        .map(str::to_string)
}

#[test]
fn running_daemon_reload_answers_logs_metrics_snapshot_and_diff_never_show_the_password() {
    let mut outputs = Outputs::default();
    let redis = RedisServer::start(&["--requirepass", PW]);
    // Prometheus' reload endpoint refuses (500): redline logs the failure, with its URL.
    let (prom, prom_seen) = recorder(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let thresholds = std::fs::read_to_string(format!("{ROOT}/rules/thresholds.yaml")).expect("shipped");
    std::fs::write(dir.path().join("thresholds.yaml"), &thresholds).expect("write");
    let good = format!(
        "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nredis:\n  - name: app\n    url: redis://:{PW}@127.0.0.1:{}\n  - name: wrong\n    url: redis://:{PW}x@127.0.0.1:{}\nthresholds:\n  file: thresholds.yaml\n  rules_dir: out\n  prometheus_reload_url: http://admin:{PW}@{prom}/-/reload\n",
        redis.port, redis.port
    );
    let d = Daemon::start_in(dir, &good, &[("REDLINE_WEB_ENABLE_LIFECYCLE", "true")]);
    let up = |d: &Daemon, t: &str| {
        common::value(&d.scrape(), &format!("redline_target_up{{collector=\"redis\",target=\"{t}\"}}"))
    };
    wait_for("the right password connects", Duration::from_secs(10), || up(&d, "app") == Some(1.0));
    wait_for("the wrong one is refused", Duration::from_secs(10), || up(&d, "wrong") == Some(0.0));

    // Every bad config, through POST /-/reload: refused with its problems, never the password.
    let cfg = d.dir().join("redline.yaml");
    let listen = format!("listen: {}\n", d.addr);
    let client = reqwest::blocking::Client::new();
    for body in bad_configs() {
        std::fs::write(&cfg, format!("{listen}{body}")).expect("write");
        let resp = client.post(format!("http://{}/-/reload", d.addr)).send().expect("post");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("redline.yaml"), "{text}");
        outputs.add(format!("POST /-/reload {body:?}"), text);
    }
    // Back to the good config; then a thresholds change rewrites the rules and redline tells
    // Prometheus, which refuses: the failure is logged.
    std::fs::write(&cfg, format!("{listen}{good}")).expect("write");
    let resp = client.post(format!("http://{}/-/reload", d.addr)).send().expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    std::fs::write(
        d.dir().join("thresholds.yaml"),
        thresholds.replace("    warning: 10000\n", "    warning: 9000\n"),
    )
    .expect("write");
    wait_for("Prometheus asked to reload", Duration::from_secs(10), || {
        !prom_seen.lock().expect("lock").is_empty()
    });
    let head = prom_seen.lock().expect("lock")[0].clone();
    let auth = authorization(&head).expect("basic auth sent to Prometheus");
    assert_eq!(auth, format!("Basic {}", b64(&format!("admin:{PW}"))));
    wait_for("the refusal is logged", Duration::from_secs(10), || {
        d.log_text().contains("Prometheus reload at")
    });

    for (accept, gzip) in
        [(None, false), (Some("application/openmetrics-text; version=1.0.0"), false), (None, true)]
    {
        let mut req = client.get(format!("http://{}/metrics", d.addr));
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if gzip {
            req = req.header("Accept-Encoding", "gzip");
        }
        let bytes = req.send().expect("scrape").bytes().expect("body").to_vec();
        let text = if gzip {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut s).expect("gzip");
            s
        } else {
            String::from_utf8(bytes).expect("utf-8")
        };
        assert!(text.contains("redline_target_up"), "{text}");
        outputs.add(format!("/metrics accept={accept:?} gzip={gzip}"), text);
    }

    // snapshot --url with credentials: sent as basic auth, written nowhere.
    let work = tempfile::tempdir().expect("tempdir");
    let (auth_addr, auth_seen) = recorder(200);
    let snap = work.path().join("a.prom");
    let (ok, text) = redline(
        &[
            "snapshot",
            "--out",
            snap.to_str().expect("path"),
            "--url",
            &format!("http://u:{PW}@{auth_addr}/metrics"),
        ],
        work.path(),
    );
    assert!(ok, "{text}");
    outputs.add("snapshot --url (recorder)", text);
    let head = auth_seen.lock().expect("lock")[0].clone();
    assert_eq!(authorization(&head), Some(format!("Basic {}", b64(&format!("u:{PW}")))));
    assert!(!head.contains(&format!("{PW}@")), "credentials stay out of the request line: {head}");
    let snap2 = work.path().join("b.prom");
    let (ok, text) = redline(
        &[
            "snapshot",
            "--out",
            snap2.to_str().expect("path"),
            "--url",
            &format!("http://u:{PW}@{}/metrics", d.addr),
        ],
        work.path(),
    );
    assert!(ok, "{text}");
    outputs.add("snapshot --url (daemon)", text);
    for f in [&snap, &snap2] {
        let text = std::fs::read_to_string(f).expect("snapshot");
        assert!(text.starts_with("# redline-snapshot "), "{text}");
        outputs.add(format!("file {}", f.display()), text);
    }
    // Failing snapshots: nothing listens; a 401; an https URL.
    let closed = common::free_port();
    for url in [
        format!("http://u:{PW}@127.0.0.1:{closed}/metrics"),
        format!("https://u:{PW}@127.0.0.1:{closed}/metrics"),
        format!("http://u:{PW}@/metrics"),
        format!("http://u:{PW}@{}/nothing-here", d.addr),
    ] {
        let out = work.path().join("fail.prom");
        let (ok, text) =
            redline(&["snapshot", "--out", out.to_str().expect("path"), "--url", &url], work.path());
        assert!(!ok, "{url}: {text}");
        outputs.add(format!("failed snapshot {url}"), text);
    }
    // An old snapshot whose header holds credentials: diff shows the source without them.
    let old = work.path().join("old.prom");
    std::fs::write(
        &old,
        format!("# redline-snapshot taken_at=1.000 source=http://u:{PW}@h:9860/metrics\nredline_x 1\n"),
    )
    .expect("write");
    let t = format!("{ROOT}/rules/thresholds.yaml");
    for (a, b) in [(&snap, &snap2), (&old, &snap2)] {
        let (ok, text) = redline(
            &["diff", a.to_str().expect("path"), b.to_str().expect("path"), "--thresholds", &t],
            work.path(),
        );
        assert!(ok, "{text}");
        outputs.add(format!("diff {} {}", a.display(), b.display()), text);
    }
    let (ok, text) =
        redline(&["diff", old.to_str().expect("path"), "/nonexistent", "--thresholds", &t], work.path());
    assert!(!ok);
    outputs.add("diff error", text);

    outputs.add("daemon log", d.log_text());
    outputs.assert_clean(bad_configs().len() + 12);
}

#[test]
fn lifecycle_endpoint_is_off_unless_enabled_and_the_sidecar_keeps_it_off() {
    let d = Daemon::start("host:\n  enabled: false\n", &[]);
    let client = reqwest::blocking::Client::new();
    let resp = client.post(format!("http://{}/-/reload", d.addr)).send().expect("post");
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.text().expect("body").contains("--web.enable-lifecycle"));
    let resp = client.get(format!("http://{}/-/reload", d.addr)).send().expect("get");
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST, PUT"));
    let resp = client.delete(format!("http://{}/metrics", d.addr)).send().expect("delete");
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET, HEAD"));

    // The Kubernetes sidecar listens on all interfaces (Prometheus must reach it), so it must
    // not turn the unauthenticated lifecycle API on.
    let manifest = std::fs::read_to_string(format!("{ROOT}/deploy/kubernetes/redis-with-redline.yaml"))
        .expect("manifest");
    assert!(manifest.contains("0.0.0.0:9860"));
    let live: Vec<&str> = manifest.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    assert!(
        !live.iter().any(|l| l.contains("enable-lifecycle") || l.contains("ENABLE_LIFECYCLE")),
        "the sidecar enables POST /-/reload"
    );
}

/// Standard base64, for the expected Authorization header.
fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
