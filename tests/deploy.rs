//! The shipped deployment files: the systemd unit passes `systemd-analyze verify`, readiness and
//! shutdown reach systemd through sd_notify, and the example configs validate.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn systemd_unit_verifies_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(Path::new(ROOT).join("systemd/redline.service"))
        .expect("unit")
        .replace("/usr/bin/redline", env!("CARGO_BIN_EXE_redline"));
    let path = dir.path().join("redline.service");
    std::fs::write(&path, unit).expect("write");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Only complaints about this unit count (the host's own units may have their own).
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("redline.service")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify:\n{text}");
}

#[test]
fn example_configs_validate() {
    for (config, thresholds) in
        [("redline.example.yaml", "rules/thresholds.yaml"), ("systemd/redline.yaml", "rules/thresholds.yaml")]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_redline"))
            .current_dir(ROOT)
            .args(["check", "--config", config, "--thresholds", thresholds])
            .env("REDIS_PASSWORD", "x")
            .env("REDLINE_PG_PASSWORD", "x")
            .output()
            .expect("run");
        assert!(out.status.success(), "{config}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn readiness_and_stopping_are_notified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let port = common::free_port();
    let cfg = dir.path().join("redline.yaml");
    std::fs::write(&cfg, format!("listen: 127.0.0.1:{port}\nhost:\n  enabled: false\n")).expect("write");
    let child = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id().to_string();
    let guard = Kill(child);
    let mut buf = [0u8; 256];
    let mut next = |what: &str| {
        let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("{what}: {e}"));
        String::from_utf8_lossy(&buf[..n]).trim().to_string()
    };
    assert_eq!(next("READY=1 within 10 s"), "READY=1");
    // /metrics answers by the time systemd is told we are ready.
    assert!(common::get(&format!("127.0.0.1:{port}"), "/-/healthy", None).is_ok());
    let _ = Command::new("kill").args(["-HUP", &pid]).status();
    assert_eq!(next("RELOADING=1"), "RELOADING=1");
    assert_eq!(next("READY=1 after reload"), "READY=1");
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    assert_eq!(next("STOPPING=1"), "STOPPING=1");
    let mut guard = guard;
    assert!(guard.0.wait().expect("exit").success());
}

#[test]
fn config_takes_values_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("redline.yaml");
    std::fs::write(&cfg, "listen: ${REDLINE_TEST_LISTEN:-127.0.0.1:9999}\nredis:\n  - url: redis://127.0.0.1:${REDLINE_TEST_REDIS_PORT}\n").expect("write");
    let run = |envs: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_redline"))
            .args(["check", "--config"])
            .arg(&cfg)
            .args(["--thresholds", &format!("{ROOT}/rules/thresholds.yaml")])
            .envs(envs.iter().copied())
            .output()
            .expect("run")
    };
    let missing = run(&[]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("redline.yaml:3:"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(run(&[("REDLINE_TEST_REDIS_PORT", "6379")]).status.success());
}

fn yaml_docs(path: &str) -> Vec<serde_yaml_ng::Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(Path::new(ROOT).join(path)).expect(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).expect("valid YAML document"))
        .collect()
}

#[test]
fn kubernetes_sidecar_manifests_fit_together_and_their_config_validates() {
    let docs = yaml_docs("deploy/kubernetes/redis-with-redline.yaml");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Service", "ServiceMonitor"]);
    let deploy = &docs[1];
    let containers = deploy["spec"]["template"]["spec"]["containers"].as_sequence().expect("containers");
    let redline = containers.iter().find(|c| c["name"] == "redline").expect("redline sidecar");
    assert_eq!(redline["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(redline["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    let mounts: Vec<&str> = redline["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(mounts.contains(&"redline-thresholds") && mounts.contains(&"redline-config"));

    // The generated ConfigMap and PrometheusRule are the ones the Deployment mounts / expects.
    let cm = &yaml_docs("deploy/kubernetes/thresholds-configmap.yaml")[0];
    assert_eq!(cm["metadata"]["name"], "redline-thresholds");
    let rule = &yaml_docs("deploy/kubernetes/prometheusrule.yaml")[0];
    assert_eq!(rule["kind"], "PrometheusRule");
    assert!(rule["spec"]["groups"].as_sequence().is_some_and(|g| g.len() >= 5));

    // The sidecar's config, with the env the pod provides, validates against the shipped thresholds.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("redline.yaml");
    std::fs::write(&cfg, docs[0]["data"]["redline.yaml"].as_str().expect("config text")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["check", "--config"])
        .arg(&cfg)
        .args(["--thresholds", &format!("{ROOT}/rules/thresholds.yaml")])
        .env("REDIS_PASSWORD", "x")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
