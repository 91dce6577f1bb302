//! `redline check` and `redline run` on bad configuration files: clear errors with the place,
//! non-zero exit, no secrets.

mod common;

use std::process::Command;

fn check(body: &str) -> (bool, String) {
    check_in(&tempfile::tempdir().expect("tempdir"), body)
}

/// `redline check --config DIR/bad.yaml`, the config holding `body`.
fn check_in(dir: &tempfile::TempDir, body: &str) -> (bool, String) {
    common::check_config(dir.path(), "bad.yaml", body)
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

/// Runs redline in `cwd` with stdout closed before it writes (what `| head -1` does once head
/// has its line); returns (exit success, stderr).
fn with_closed_stdout(cwd: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_redline"))
        .current_dir(cwd)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_closed_stdout_ends_check_and_diff_quietly() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("s.prom");
    std::fs::write(&snap, "# redline-snapshot taken_at=1.000 source=x\nredline_x{a=\"1\"} 1\nredline_y 2\n")
        .expect("write");
    let snap = snap.to_str().expect("path");
    let thresholds = format!("{root}/rules/thresholds.yaml");
    for args in [
        vec!["check", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/redline.example.yaml")],
        vec!["diff", snap, snap, "--thresholds", &thresholds, "--all"],
        vec!["rules", "generate", "--thresholds", &thresholds],
    ] {
        let (ok, err) = with_closed_stdout(std::path::Path::new(root), &args);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(ok, "{args:?}: {err}");
    }
}

#[test]
fn check_resolves_thresholds_like_run_from_any_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let run_check = |config: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_redline"))
            .current_dir(elsewhere.path())
            .args(["check", "--config"])
            .arg(config)
            .output()
            .expect("run");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    // No thresholds file named: run uses the built-in defaults, so check does not look for
    // rules/thresholds.yaml in the working directory.
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, "host:\n  enabled: false\n").expect("write");
    let (ok, text) = run_check(&plain);
    assert!(ok && text.contains("built-in defaults"), "{text}");
    // A relative thresholds file is found beside the config, not in the working directory.
    std::fs::create_dir(dir.path().join("conf")).expect("mkdir");
    std::fs::write(dir.path().join("conf/t.yaml"), "alerts:\n  redis_down:\n    critical: lots\n")
        .expect("write");
    let named = dir.path().join("conf/redline.yaml");
    std::fs::write(&named, "thresholds:\n  file: t.yaml\n").expect("write");
    let (ok, text) = run_check(&named);
    assert!(!ok && text.contains("conf/t.yaml:3:"), "{text}");
}

#[test]
fn empty_files_and_tiny_intervals_are_refused() {
    let (ok, text) = check("");
    assert!(!ok && text.contains("the file is empty"), "{text}");
    let (ok, text) = check("# nothing but a comment\n");
    assert!(!ok && text.contains("the file is empty"), "{text}");
    let (ok, _) = check("{}\n");
    assert!(ok, "{{}} is the explicit all-defaults config");
    let (ok, text) = check("collection:\n  interval: 1ns\n  timeout: 1ns\n");
    assert!(!ok && text.contains("collection.interval must be at least 1s"), "{text}");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("t.yaml"), "\n").expect("write");
    let (ok, text) = check_in(&dir, "thresholds:\n  file: t.yaml\n");
    assert!(!ok && text.contains("t.yaml: the file is empty"), "{text}");
}
