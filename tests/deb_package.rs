//! The Debian package as an administrator meets it: built by packaging/build-deb.sh from the
//! release binary, installed with `dpkg -i` on this machine, its unit verified by
//! `systemd-analyze verify`, the installed binary started with the installed config against a
//! spawned Redis, then removed (`dpkg -r` keeps the conffiles) and purged (`dpkg -P` leaves
//! nothing behind). The machine is shared: one run of this test at a time (a lock file), and
//! the package is purged however the test ends.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, run_ok, RedisServer};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const UNIT: &str = "/lib/systemd/system/redline.service";

/// Holds `flock` on a lock file for as long as it lives: the flock process keeps the lock while
/// `cat` waits on its standard input, which closes when this guard (or the test process) dies.
struct MachineLock(Child);

impl MachineLock {
    fn take(path: &str) -> Self {
        let mut child = Command::new("flock")
            .args(["-w", "600", path, "sh", "-c", "echo locked; exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("flock (util-linux)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "locked", "could not take {path} within 10 minutes");
        MachineLock(child)
    }
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// A process killed however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// dpkg with a wait for the dpkg lock (apt may be installing something for another test).
fn dpkg(args: &[&str]) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = Command::new("dpkg").args(args).output().expect("dpkg");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() || !text.contains("lock") || Instant::now() > deadline {
            return (out.status.success(), text);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status}", "redline"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) != "not-installed" && o.status.success())
}

/// Purges the package however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if installed() {
            let _ = dpkg(&["-P", "redline"]);
        }
    }
}

/// Paths systemd's package helpers keep for an enabled or masked unit.
fn systemd_helper_leftovers() -> Vec<String> {
    let mut found = Vec::new();
    for dir in [
        "/etc/systemd/system",
        "/etc/systemd/system/multi-user.target.wants",
        "/var/lib/systemd/deb-systemd-helper-enabled",
        "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants",
        "/var/lib/systemd/deb-systemd-helper-masked",
    ] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("redline.service") {
                    found.push(format!("{dir}/{name}"));
                }
            }
        }
    }
    found
}

#[test]
fn deb_installs_verifies_runs_and_purges_without_a_trace() {
    let binary = common::release_binary();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let deb = run_ok(
        Command::new("bash")
            .arg(Path::new(ROOT).join("packaging/build-deb.sh"))
            .args(["--binary"])
            .arg(&binary)
            .args(["--out"])
            .arg(out_dir.path()),
    );
    let deb = deb.trim().to_string();
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    assert!(deb.ends_with(&format!("redline_{version}_amd64.deb")), "{deb}");

    // What the package says and holds.
    let field = |f: &str| run_ok(Command::new("dpkg-deb").args(["-f", &deb, f])).trim().to_string();
    assert_eq!(field("Package"), "redline");
    assert_eq!(field("Version"), version);
    let depends = field("Depends");
    assert!(depends.contains("libssl3") && depends.contains("libc6"), "{depends}");
    let listing = run_ok(Command::new("dpkg-deb").args(["-c", &deb]));
    let files: Vec<String> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_string())
        .collect();
    for want in [
        "/usr/bin/redline",
        UNIT,
        "/etc/redline/redline.yaml",
        "/etc/redline/thresholds.yaml",
        "/usr/share/redline/rules/redline.rules.yml",
        "/usr/share/redline/rules/redline.rules.test.yml",
        "/usr/share/redline/dashboards/redline-overview.json",
        "/usr/share/doc/redline/runbooks.md",
    ] {
        assert!(files.iter().any(|f| f == want), "{want} missing from the package:\n{listing}");
    }
    // Nothing it ships names a host or organisation that does not exist.
    let control = tempfile::tempdir().expect("tempdir");
    run_ok(Command::new("dpkg-deb").args(["-R", &deb]).arg(control.path()));
    let conffiles = std::fs::read_to_string(control.path().join("DEBIAN/conffiles")).expect("conffiles");
    assert_eq!(conffiles, "/etc/redline/redline.yaml\n/etc/redline/thresholds.yaml\n");
    let grep = Command::new("grep")
        .args(["-rlE", "redline-monitoring|ghcr\\.io"])
        .arg(control.path())
        .output()
        .expect("grep");
    assert!(grep.stdout.is_empty(), "{}", String::from_utf8_lossy(&grep.stdout));

    let _lock = MachineLock::take("/run/lock/redline-deb-test.lock");
    let guard = Installed;
    if installed() {
        // Left by an earlier run that was killed before it could clean up.
        let (ok, text) = dpkg(&["-P", "redline"]);
        assert!(ok, "{text}");
    }
    let (ok, text) = dpkg(&["-i", &deb]);
    assert!(ok, "dpkg -i: {text}");
    assert!(installed());
    for f in &files {
        assert!(Path::new(f).exists(), "{f} not installed");
    }

    // The installed unit verifies clean (complaints about other units on the host don't count).
    let verify =
        Command::new("systemd-analyze").args(["verify", "--man=no", UNIT]).output().expect("systemd-analyze");
    let text =
        format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("redline")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify {UNIT}:\n{text}");

    // The service's own user exists, and its state directory is readable by Prometheus.
    assert!(run_ok(Command::new("getent").args(["passwd", "redline"])).contains("/var/lib/redline"));
    assert_eq!(std::fs::metadata("/var/lib/redline").expect("state dir").mode() & 0o777, 0o755);

    // The unit's ExecStartPre and ExecStart with the installed files, as its user, against a
    // spawned Redis.
    let redis = RedisServer::start(&[]);
    let port = free_port();
    let env = [("REDLINE_REDIS_URL", redis.url()), ("REDLINE_LISTEN", format!("127.0.0.1:{port}"))];
    run_ok(
        Command::new("/usr/bin/redline")
            .args([
                "check",
                "--config",
                "/etc/redline/redline.yaml",
                "--thresholds",
                "/etc/redline/thresholds.yaml",
            ])
            .envs(env.iter().map(|(k, v)| (k, v))),
    );
    let log = tempfile::NamedTempFile::new().expect("log");
    let mut daemon = Killed(
        Command::new("setpriv")
            .args(["--reuid=redline", "--regid=redline", "--init-groups", "/usr/bin/redline"])
            .args(["run", "--config", "/etc/redline/redline.yaml"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("start the installed redline"),
    );
    let addr = format!("127.0.0.1:{port}");
    let log_text = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(common::get(&addr, "/-/ready", None), Ok((200, _))) {
        let exited = daemon.0.try_wait().expect("try_wait");
        assert!(exited.is_none() && Instant::now() < deadline, "not ready ({exited:?}):\n{}", log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = common::scrape(&addr);
    assert_eq!(
        common::value(&metrics, "redline_target_up{collector=\"redis\",target=\"local\"}"),
        Some(1.0),
        "{}",
        log_text()
    );
    // The config's rules_dir (the service's StateDirectory) got the generated rules, readable
    // by Prometheus' user.
    let rules = std::fs::metadata("/var/lib/redline/rules/redline.rules.yml");
    assert!(rules.is_ok_and(|m| m.mode() & 0o004 != 0), "{}", log_text());
    let _ = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status();
    let status = daemon.0.wait().expect("wait");
    assert!(status.success(), "{status}: {}", log_text());

    // Remove: the program goes, the conffiles an admin may have edited stay.
    let (ok, text) = dpkg(&["-r", "redline"]);
    assert!(ok, "dpkg -r: {text}");
    assert!(!Path::new("/usr/bin/redline").exists() && !Path::new(UNIT).exists());
    assert!(Path::new("/etc/redline/redline.yaml").exists(), "conffiles are kept by dpkg -r");

    // Purge: nothing is left, including the state and systemd's enablement records.
    let (ok, text) = dpkg(&["-P", "redline"]);
    assert!(ok, "dpkg -P: {text}");
    assert!(!installed());
    let left: Vec<&String> = files.iter().filter(|f| Path::new(f).exists()).collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    for dir in ["/etc/redline", "/var/lib/redline", "/usr/share/redline", "/usr/share/doc/redline"] {
        assert!(!Path::new(dir).exists(), "{dir} left after purge");
    }
    assert_eq!(systemd_helper_leftovers(), Vec::<String>::new());
    for db in ["passwd", "group"] {
        let ok = Command::new("getent").args([db, "redline"]).output().expect("getent").status.success();
        assert!(!ok, "the redline {db} entry is left after purge");
    }
    drop(guard);
}
