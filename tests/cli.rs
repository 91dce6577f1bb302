//! `redline check` and `redline run` on bad configuration files: clear errors with the place,
//! non-zero exit, no secrets.

use std::process::Command;

fn check(body: &str) -> (bool, String) {
    check_in(&tempfile::tempdir().expect("tempdir"), body)
}

/// `redline check --config DIR/bad.yaml`, the config holding `body`.
fn check_in(dir: &tempfile::TempDir, body: &str) -> (bool, String) {
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, body).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn shipped_example_config_is_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["check", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/redline.example.yaml")])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn broken_yaml_fails_with_file_and_line() {
    let (ok, text) = check("listen: 127.0.0.1:9860\nredis:\n  - url: [redis://x\n");
    assert!(!ok);
    assert!(text.contains("bad.yaml:"), "{text}");
}

#[test]
fn unknown_key_wrong_type_and_bad_url_each_fail() {
    for (body, line, needle) in [
        ("listen: 127.0.0.1:1\nredsi: []\n", 2, "unknown field `redsi`"),
        ("collection:\n  interval: soon\n", 2, "interval"),
        ("redis:\n  - url: mysql://127.0.0.1\n", 2, "redis://"),
        ("listen: nowhere\n", 1, "listen"),
    ] {
        let (ok, text) = check(body);
        assert!(!ok, "{body} was accepted");
        assert!(text.contains(&format!("bad.yaml:{line}:")), "{body}: {text}");
        assert!(text.contains(needle), "{body}: {text}");
    }
}

#[test]
fn run_refuses_a_bad_config_without_echoing_the_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "redis:\n  - url: redis://:TopSecret99@127.0.0.1:6379\n    password_file: /nonexistent\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:2"), "{err}");
    assert!(!err.contains("TopSecret99"), "{err}");
}

#[test]
fn check_reads_the_thresholds_file_the_config_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mine.yaml"), "alerts:\n  redis_down:\n    critical: lots\n")
        .expect("write");
    let (ok, text) = check_in(&dir, "thresholds:\n  file: mine.yaml\n");
    assert!(!ok, "{text}");
    assert!(text.contains("mine.yaml:3:"), "{text}");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/rules/thresholds.yaml"),
        dir.path().join("mine.yaml"),
    )
    .expect("copy");
    let (ok, text) = check_in(&dir, "thresholds:\n  file: mine.yaml\n");
    assert!(ok && text.contains("mine.yaml: OK"), "{text}");
}
