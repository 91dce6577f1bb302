//! The container image as users run it: `Containerfile` built with podman (target `prebuilt`,
//! the release binary from this tree, on a Debian bookworm base made by debootstrap because no
//! registry is reachable here), started with host networking against a spawned Redis, scraped,
//! checked for readiness, its user and its libraries, and stopped gracefully.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_port, run_ok, wait_for, RedisServer};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Made by scripts/container-base.sh (debootstrap --variant=minbase bookworm, trimmed like -slim).
const BASE: &str = "localhost/redline-test-base:bookworm";

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.current_dir(ROOT).env("CONTAINERS_CONF", Path::new(ROOT).join("tests/container/containers.conf"));
    c
}

/// The tag the Kubernetes manifest names: `redline:<version>`.
fn tag() -> String {
    format!("redline:{}", env!("CARGO_PKG_VERSION"))
}

/// Removes the container however the test ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.0]).output();
    }
}

fn image_size(image: &str) -> u64 {
    run_ok(podman().args(["image", "inspect", "--format", "{{.Size}}", image])).trim().parse().expect("size")
}

#[test]
fn image_builds_runs_as_non_root_serves_metrics_and_stops_cleanly() {
    let binary = common::release_binary();
    run_ok(Command::new("bash").arg(Path::new(ROOT).join("scripts/container-base.sh")));

    // Why the runtime stage installs libssl3: on the bare base the binary cannot even start.
    let naive = podman()
        .args(["run", "--rm", "--network", "host", "-v"])
        .arg(format!("{}:/redline:ro", binary.display()))
        .args([BASE, "/redline", "--version"])
        .output()
        .expect("podman run");
    let naive_err = String::from_utf8_lossy(&naive.stderr);
    assert!(!naive.status.success() && naive_err.contains("libssl.so.3"), "{naive_err}");

    let started = std::time::Instant::now();
    run_ok(podman().args([
        "build",
        "--network",
        "host",
        "--target",
        "prebuilt",
        "--build-arg",
        &format!("BASE_IMAGE={BASE}"),
        "--build-arg",
        "REDLINE_BINARY=target/release/redline",
        "-t",
        &tag(),
        "-f",
        "Containerfile",
        ".",
    ]));
    let build_time = started.elapsed();
    let (size, base) = (image_size(&tag()), image_size(BASE));
    eprintln!("image {}: {size} bytes ({} over the base), built in {build_time:.1?}", tag(), size - base);
    // What the image adds to its base: OpenSSL, CA roots, the binary, rules and dashboards.
    assert!(size - base < 25_000_000, "the image adds {} bytes to its base", size - base);

    let redis = RedisServer::start(&[]);
    redis.cli(&["SET", "hello", "world"]);
    let port = free_port();
    let name = format!("redline-test-{}-{port}", std::process::id());
    run_ok(podman().args([
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "-e",
        &format!("REDLINE_LISTEN=127.0.0.1:{port}"),
        "-e",
        &format!("REDLINE_REDIS_URL={}", redis.url()),
        "-e",
        "REDLINE_INTERVAL=1s",
        "-e",
        "REDLINE_TIMEOUT=900ms",
        &tag(),
    ]));
    let container = Container(name.clone());
    let addr = format!("127.0.0.1:{port}");
    let logs = || {
        let out = podman().args(["logs", &container.0]).output().expect("podman logs");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    wait_for("the container to be ready", Duration::from_secs(30), || {
        matches!(common::get(&addr, "/-/ready", None), Ok((200, _)))
    });
    let metrics = common::scrape(&addr);
    assert_eq!(
        common::value(&metrics, "redline_target_up{collector=\"redis\",target=\"redis\"}"),
        Some(1.0),
        "{}",
        logs()
    );
    assert_eq!(
        common::value(&metrics, "redline_redis_db_keys{target=\"redis\",db=\"db0\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert!(metrics.contains("redline_threshold{"), "the shipped thresholds are loaded");
    assert_eq!(run_ok(podman().args(["exec", &name, "id", "-u"])).trim(), "10001");

    let pid: u32 =
        run_ok(podman().args(["inspect", "--format", "{{.State.Pid}}", &name])).trim().parse().expect("pid");
    if let Some(rss) = common::rss_bytes(pid) {
        eprintln!("redline in the container: {rss} bytes resident");
    }

    // SIGTERM: a graceful stop, exit status 0.
    run_ok(podman().args(["stop", "-t", "10", &name]));
    let code = run_ok(podman().args(["inspect", "--format", "{{.State.ExitCode}}", &name]));
    assert_eq!(code.trim(), "0", "{}", logs());
    assert!(logs().contains("shutting down"), "{}", logs());
}

#[test]
fn kubernetes_manifest_names_the_image_this_containerfile_builds() {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("deploy/kubernetes/redis-with-redline.yaml"))
        .expect("manifest");
    let image = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .find(|i| i.contains("redline"))
        .expect("redline image line");
    assert_eq!(image, tag(), "the manifest must name the tag tests/container.rs builds");
    let containerfile =
        std::fs::read_to_string(Path::new(ROOT).join("Containerfile")).expect("Containerfile");
    assert!(containerfile.contains(&format!("-t {}", tag())), "Containerfile documents the tag");
    // The builder image matches the minimum Rust version the crate declares.
    let msrv = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml"))
        .expect("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = ").map(|v| v.trim_matches('"').to_string()))
        .expect("rust-version");
    assert!(
        containerfile.contains(&format!("ARG RUST_IMAGE=rust:{msrv}-bookworm")),
        "builder is rust:{msrv}"
    );
}
