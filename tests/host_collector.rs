//! The host collector against a mount whose statfs hangs: a FUSE file system served by
//! tests/helpers/hang_statfs.py that leaves statfs unanswered until told otherwise, as a hard
//! NFS mount does when its server is gone (the calling thread waits in the kernel for good).
//! The mount must be reported stuck, hold at most one thread however many collections pass,
//! leave every other metric flowing, and come back once statfs answers.
//!
//! The mount lives in a private mount namespace (`unshare`) and the daemon is started inside
//! it (`nsenter`): nothing else on the machine — other tests' daemons, `df` — ever sees it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, get, value, wait_for};

/// A FUSE mount whose statfs hangs until [`Isolated::release`], in its own mount namespace,
/// and (once started) a redline daemon in that namespace. Both end on drop, server first, so
/// any call still waiting on the mount returns and the daemon can exit.
struct Isolated {
    dir: tempfile::TempDir,
    server: Child,
    daemon: Option<Child>,
    addr: String,
}

impl Isolated {
    fn mount() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("mnt")).expect("mountpoint");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/hang_statfs.py");
        let mut server = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "python3", script])
            .arg(dir.path().join("mnt"))
            .arg(dir.path().join("release"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) and python3");
        let mut first = String::new();
        let stdout = server.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut first).expect("read");
        assert_eq!(first.trim(), "mounted", "the FUSE helper needs root and /dev/fuse");
        Isolated { dir, server, daemon: None, addr: String::new() }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redline.log")).unwrap_or_default()
    }

    /// Starts `redline run` inside the mount's namespace.
    fn start_daemon(&mut self, config_body: &str) {
        self.addr = format!("127.0.0.1:{}", free_port());
        let cfg = self.dir.path().join("redline.yaml");
        std::fs::write(&cfg, format!("listen: {}\n{config_body}", self.addr)).expect("config");
        let log = std::fs::File::create(self.dir.path().join("redline.log")).expect("log");
        let child = Command::new("nsenter")
            .arg(format!("--mount=/proc/{}/ns/mnt", self.server.id()))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_redline"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("REDLINE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nsenter");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while get(&self.addr, "/-/healthy", None).is_err() {
            assert!(Instant::now() < deadline, "redline did not start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn scrape(&self) -> String {
        common::scrape(&self.addr)
    }

    /// The daemon's pid (nsenter execs it).
    fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon").id()
    }

    fn release(&self) {
        std::fs::write(self.dir.path().join("release"), "").expect("release");
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        // The server's end aborts the FUSE connection: every call waiting on it returns.
        let _ = self.server.kill();
        let _ = self.server.wait();
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// Threads of `pid` waiting for a FUSE answer.
fn threads_on_fuse(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default() == "request_wait_answer"
        })
        .count()
}

#[test]
fn a_hung_mount_is_stuck_skipped_and_comes_back() {
    let mut m = Isolated::mount();
    m.start_daemon("collection:\n  interval: 1s\n  timeout: 800ms\nhost:\n  enabled: true\n");
    let mp = m.path().display().to_string();
    let labels = format!("{{mountpoint=\"{mp}\",device=\"redline-hang\",fstype=\"fuse.redlinehang\"}}");
    let stuck = |t: &str| value(t, &format!("redline_host_filesystem_stuck{labels}"));
    let success = |t: &str| value(t, "redline_collector_success{collector=\"host\",target=\"localhost\"}");
    wait_for("the hung mount reported stuck, the rest collected", Duration::from_secs(10), || {
        let t = m.scrape();
        stuck(&t) == Some(1.0)
            && success(&t) == Some(1.0)
            && t.contains("redline_host_filesystem_size_bytes{mountpoint=\"/\"")
            && t.contains("redline_host_memory_available_bytes")
    });

    // Several collections later: still one thread on the mount, collections still succeed.
    let last = || {
        value(
            &m.scrape(),
            "redline_collector_last_success_timestamp_seconds{collector=\"host\",target=\"localhost\"}",
        )
        .unwrap_or(0.0)
    };
    let first = last();
    wait_for("three more host collections", Duration::from_secs(10), || last() >= first + 3.0);
    assert_eq!(threads_on_fuse(m.pid()), 1, "exactly one thread waits on the hung mount");
    let text = m.scrape();
    assert_eq!(stuck(&text), Some(1.0));
    assert_eq!(success(&text), Some(1.0));
    assert!(!text.contains(&format!("redline_host_filesystem_size_bytes{labels}")), "{text}");
    let log = m.log();
    assert_eq!(log.matches("statvfs did not answer").count(), 1, "logged once: {log}");

    // The mount answers again: sizes are back (1000 blocks of 4096 bytes, 400 available).
    m.release();
    wait_for("the mount answers again", Duration::from_secs(10), || {
        let t = m.scrape();
        stuck(&t) == Some(0.0)
            && value(&t, &format!("redline_host_filesystem_size_bytes{labels}")) == Some(4_096_000.0)
            && value(&t, &format!("redline_host_filesystem_available_bytes{labels}")) == Some(1_638_400.0)
    });
    assert_eq!(threads_on_fuse(m.pid()), 0);
    assert!(m.log().contains("statvfs answers again"));
}

#[test]
fn the_hung_mount_is_invisible_outside_its_namespace() {
    let m = Isolated::mount();
    let path = m.path().display().to_string();
    let inside = std::fs::read_to_string(format!("/proc/{}/mounts", m.server.id())).expect("mounts");
    assert!(inside.contains(&path), "mounted in its namespace");
    let outside = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(!outside.contains(&path), "the hung mount leaked into the test's namespace");
}
