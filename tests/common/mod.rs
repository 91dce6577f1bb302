//! Shared helpers for integration tests: spawned redis-server instances, the daemon
//! in-process or as a subprocess, and a scraper. Everything talks to 127.0.0.1 only.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A redis-server of our own, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts redis-server on a free port with extra arguments (`--requirepass x`, …).
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    /// Starts redis-server on a given port.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s =
            RedisServer { port, child: None, dir, extra: extra.iter().map(|s| s.to_string()).collect() };
        s.restart();
        s
    }

    /// Starts (again) on the same port.
    pub fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(self.dir.path())
        .args(&self.extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("redis-server on PATH"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal (STOP/CONT) to the server.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok =
                Command::new("kill").args([&format!("-{sig}"), &c.id().to_string()]).status().expect("kill");
            assert!(ok.success());
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs a redis-cli command against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.signal("CONT");
        self.kill();
    }
}

/// Runs a redis-cli command and returns its output; panics if redis-cli fails or Redis answers
/// with an error (use [`redis_cli_reply`] when an error reply is what the test wants).
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let (ok, text) = redis_cli_reply(port, args);
    assert!(ok, "redis-cli -p {port} {args:?} failed: {text}");
    text
}

/// Runs a redis-cli command; returns (success, output). An error reply is not a success.
pub fn redis_cli_reply(port: u16, args: &[&str]) -> (bool, String) {
    let out =
        Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().expect("redis-cli");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    // redis-cli exits 0 on an error reply when not on a terminal; the reply text tells.
    let first = text.split_whitespace().next().unwrap_or("");
    let error_reply = first.chars().all(|c| c.is_ascii_uppercase()) && first.len() > 2 && {
        [
            "ERR",
            "WRONGTYPE",
            "NOSCRIPT",
            "NOAUTH",
            "NOPERM",
            "WRONGPASS",
            "BUSY",
            "LOADING",
            "READONLY",
            "OOM",
            "MOVED",
            "CLUSTERDOWN",
            "EXECABORT",
            "NOGROUP",
            "BUSYGROUP",
        ]
        .contains(&first)
    };
    (out.status.success() && !error_reply && !text.starts_with("Could not connect"), text)
}

/// GETs a URL path from the daemon, with a client-side timeout.
pub fn get(addr: &str, path: &str, accept: Option<&str>) -> Result<(u16, String), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.get(format!("http://{addr}{path}"));
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let resp = req.send().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().map_err(|e| e.to_string())?))
}

/// Scrapes /metrics as Prometheus text; panics unless the daemon answers 200 with a body, so an
/// assertion can never pass against a dead daemon. Every scrape is also checked for duplicate
/// series (two samples with one label set: Prometheus would keep only one).
pub fn scrape(addr: &str) -> String {
    match get(addr, "/metrics", None) {
        Ok((200, body)) if !body.is_empty() => {
            assert_no_duplicate_series(&body);
            body
        }
        Ok((status, body)) => panic!("scrape of {addr} answered HTTP {status}: {body}"),
        Err(e) => panic!("scrape of {addr} failed: {e}"),
    }
}

/// Scrapes /metrics; `None` when the daemon does not answer (for tests that expect that).
pub fn try_scrape(addr: &str) -> Option<String> {
    match get(addr, "/metrics", None) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// Panics if two sample lines share a name and label set.
pub fn assert_no_duplicate_series(text: &str) {
    let mut seen = std::collections::HashSet::new();
    for l in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let series = l.rsplit_once(' ').map(|(s, _)| s).unwrap_or(l);
        assert!(seen.insert(series), "duplicate series in /metrics: {series}");
    }
}

/// Seconds from a Unix `timestamp` (a `*_timestamp_seconds` sample) to now, as the rules'
/// `time() - …` computes it.
pub fn age(timestamp: Option<f64>) -> Option<f64> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    timestamp.map(|t| now - t)
}

/// The value of the first sample whose line starts with `prefix` (name plus labels).
pub fn value(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls until `f` returns true or `within` passes.
pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The redline binary running as a subprocess, with stderr captured to a file.
pub struct Daemon {
    pub addr: String,
    child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Writes `config` (its `listen` is set here) and starts `redline run`.
    pub fn start(config_body: &str, envs: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), config_body, envs)
    }

    /// Like `start`, in a directory the caller prepared (thresholds files beside the config).
    pub fn start_in(dir: tempfile::TempDir, config_body: &str, envs: &[(&str, &str)]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let cfg = dir.path().join("redline.yaml");
        std::fs::write(&cfg, format!("listen: {addr}\n{config_body}")).expect("write config");
        let log = dir.path().join("redline.log");
        let child = Command::new(env!("CARGO_BIN_EXE_redline"))
            .args(["run", "--config"])
            .arg(&cfg)
            .envs(envs.iter().copied())
            .env("REDLINE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start redline");
        let d = Daemon { addr, child, log, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while get(&d.addr, "/-/healthy", None).is_err() {
            assert!(
                Instant::now() < deadline,
                "redline did not serve /-/healthy; its log:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn scrape(&self) -> String {
        scrape(&self.addr)
    }

    /// The directory holding the config file.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "redline did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks exposition text with `promtool check metrics`; returns its complaints.
pub fn promtool_check_metrics(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool on PATH (the test command installs the prometheus package)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() && s.is_empty() {
        s = format!("promtool exited with {}", out.status);
    }
    s
}

/// Runs the real queue library helper (`tests/producers/bull.js`): lib is bullmq, bullmq5 or bull.
pub fn bull_js(lib: &str, action: &str, opts: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers");
    assert!(
        std::path::Path::new(dir).join("node_modules/bullmq").exists(),
        "tests/producers/node_modules missing: scripts/test.sh runs npm ci there"
    );
    let out =
        Command::new("node").current_dir(dir).args(["bull.js", lib, action, opts]).output().expect("node");
    assert!(out.status.success(), "bull.js {lib} {action} {opts}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Child processes killed when dropped, so a failing assertion leaves no producer or worker
/// running.
pub struct Reap(pub Vec<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts the bull.js helper in the background (e.g. a worker).
pub fn bull_js_spawn(lib: &str, action: &str, opts: &str) -> Child {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers");
    Command::new("node")
        .current_dir(dir)
        .args(["bull.js", lib, action, opts])
        .stdout(Stdio::null())
        .spawn()
        .expect("node")
}

/// Runs a helper script from `tests/producers` with the given interpreter.
pub fn producer(interpreter: &str, script: &str, args: &[&str]) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers");
    let out = Command::new(interpreter).current_dir(dir).arg(script).args(args).output().expect(interpreter);
    assert!(
        out.status.success(),
        "{interpreter} {script} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Daemon config for one spawned Redis with the given `queues:` entries (1 s collections;
/// every queue with its own histograms, which the truth tests compare job by job).
pub fn queue_daemon(r: &RedisServer, queues: &str) -> Daemon {
    Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nlimits:\n  discovery_interval: 1s\n  queue_histograms: true\nredis:\n  - name: t\n    url: {}\n    queues:\n{queues}",
            r.url()
        ),
        &[],
    )
}

/// The job states that appear once they first hold a job (features a queue may never use):
/// a library's 0 for one of them matches redline's absent series.
pub const SPARSE_STATES: [&str; 3] = ["paused", "prioritized", "waiting-children"];

/// redline's count of `state` as read from a scrape (`got`), absent sparse states as 0.
pub fn state_count(state: &str, got: Option<f64>) -> Option<f64> {
    got.or(SPARSE_STATES.contains(&state).then_some(0.0))
}

/// `{target="t",system="…",prefix="…",queue="…"…}` label text for assertions, with the system's
/// default prefix (`bull` for BullMQ/Bull, `rq` for RQ, none for the others).
pub fn qlabels(system: &str, queue: &str, rest: &str) -> String {
    let prefix = match system {
        "bullmq" | "bull" => "bull",
        "rq" => "rq",
        _ => "",
    };
    qlabels_prefixed(system, prefix, queue, rest)
}

/// Like [`qlabels`] with an explicit key prefix ("" for none).
pub fn qlabels_prefixed(system: &str, prefix: &str, queue: &str, rest: &str) -> String {
    let p = if prefix.is_empty() { String::new() } else { format!(",prefix=\"{prefix}\"") };
    format!("{{target=\"t\",system=\"{system}\"{p},queue=\"{queue}\"{rest}}}")
}

/// A PostgreSQL instance of our own (initdb + pg_ctl as user postgres), stopped on drop.
pub struct PgServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    extra: Vec<String>,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb")
}

impl PgServer {
    /// initdb with scram-sha-256 on TCP (trust on the socket, for set-up) and extra `-c` settings.
    pub fn start(settings: &[&str]) -> Self {
        Self::start_with(pg_bin(), settings)
    }

    /// As [`PgServer::start`], with the server binaries in `bin` (another major version).
    pub fn start_with(bin: PathBuf, settings: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok =
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().expect("chown");
        assert!(ok.success());
        let data = dir.path().join("data");
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["--auth-local=trust", "--auth-host=scram-sha-256", "-U", "postgres", "-D"])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let s =
            PgServer { port: free_port(), dir, bin, extra: settings.iter().map(|s| s.to_string()).collect() };
        s.ctl("start");
        s.psql("postgres", "ALTER USER postgres PASSWORD 'right-pg-pass'");
        s
    }

    /// A streaming standby of `primary`, cloned with pg_basebackup over the primary's socket.
    pub fn standby_of(primary: &PgServer) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok =
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().expect("chown");
        assert!(ok.success());
        let bin = primary.bin.clone();
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("pg_basebackup"))
            .arg("-h")
            .arg(primary.dir.path())
            .args(["-p", &primary.port.to_string(), "-U", "postgres", "-R", "-X", "stream", "-D"])
            .arg(dir.path().join("data"))
            .output()
            .expect("pg_basebackup");
        assert!(out.status.success(), "pg_basebackup: {}", String::from_utf8_lossy(&out.stderr));
        let s = PgServer { port: free_port(), dir, bin, extra: primary.extra.clone() };
        s.ctl("start");
        s
    }

    /// Runs pg_ctl start/stop.
    pub fn ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let mut opts =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        for e in &self.extra {
            opts.push_str(&format!(" -c {e}"));
        }
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-w", "-t", "30"]);
        match action {
            "start" => cmd.args(["-o", &opts, "-l"]).arg(self.dir.path().join("log")).arg("start"),
            _ => cmd.args(["-m", "immediate", "stop"]),
        };
        let out = cmd.output().expect("pg_ctl");
        assert!(
            out.status.success() || action != "start",
            "pg_ctl {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL through the Unix socket as postgres (trust).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-tAX",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

/// Runs SQL against the machine's own PostgreSQL (127.0.0.1:5432, trust) as postgres.
/// Panics when psql fails (ON_ERROR_STOP), so a broken set-up cannot pass silently.
pub fn local_psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            db,
            "-tAX",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The release binary (`target/release/redline`), built now if missing or stale: the container
/// image and the Debian package ship it, so their tests use it rather than the debug build.
/// `cargo build --release` is a no-op when scripts/test.sh built it already.
pub fn release_binary() -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--locked", "--bin", "redline"])
        .output()
        .expect("cargo");
    assert!(out.status.success(), "cargo build --release: {}", String::from_utf8_lossy(&out.stderr));
    let bin = root.join("target/release/redline");
    assert!(bin.exists(), "{} missing after cargo build --release", bin.display());
    bin
}

/// Runs a command; panics with its output unless it succeeds. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Resident memory of a process in bytes (VmRSS), read from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Runs `openssl` in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl on PATH");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A self-signed test CA in `dir`: `<name>.key`, `<name>.pem`, valid 2 days.
pub fn make_ca(dir: &std::path::Path, name: &str, cn: &str) {
    let (key, pem, subj) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN={cn}"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subj, "-keyout", &key,
            "-out", &pem,
        ],
    );
}

/// A certificate `<name>.pem` with key `<name>.key` for `cn`, signed by `ca.pem`/`ca.key` in `dir`,
/// with the X.509 extensions `ext` (e.g. `subjectAltName=IP:127.0.0.1`).
pub fn issue_cert(dir: &std::path::Path, name: &str, cn: &str, ext: &str) {
    let (key, csr, pem, extfile) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
    let subj = format!("/CN={cn}");
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr]);
    std::fs::write(dir.join(&extfile), ext).expect("write certificate extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &extfile,
            "-out",
            &pem,
        ],
    );
}

/// Names from `prefixes` that the generated rules or dashboards query but `scrape` lacks.
pub fn unexposed(scrape: &str, prefixes: &[&str]) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut used = String::new();
    used.push_str(&std::fs::read_to_string(root.join("rules/redline.rules.yml")).expect("rules"));
    for e in std::fs::read_dir(root.join("grafana")).expect("grafana") {
        used.push_str(&std::fs::read_to_string(e.expect("entry").path()).expect("dashboard"));
    }
    let exposed: std::collections::BTreeSet<&str> =
        scrape.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let mut missing = Vec::new();
    for p in prefixes {
        for (i, _) in used.match_indices(p) {
            let name: String =
                used[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !exposed.contains(name.as_str()) && !missing.contains(&name) {
                missing.push(name);
            }
        }
    }
    missing
}

/// `redline check --config DIR/FILE` with `body` as the config: (success, stdout + stderr).
pub fn check_config(dir: &std::path::Path, file: &str, body: &str) -> (bool, String) {
    let path = dir.join(file);
    std::fs::write(&path, body).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run redline check");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
