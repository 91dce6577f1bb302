//! The committed files in rules/ and grafana/ are exactly what `redline generate` makes from
//! rules/thresholds.yaml, and they pass the real validators.

use std::path::Path;
use std::process::Command;

use redline::artifacts;
use redline::generate::dashboards;
use redline::thresholds::Thresholds;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped() -> Thresholds {
    Thresholds::load(&Path::new(ROOT).join("rules/thresholds.yaml")).expect("rules/thresholds.yaml is valid")
}

#[test]
fn committed_generated_files_are_not_stale() {
    let root = Path::new(ROOT);
    let t = shipped();
    let text = std::fs::read_to_string(root.join("rules/thresholds.yaml")).expect("thresholds");
    let out = artifacts::Outputs {
        rules_dir: &root.join("rules"),
        dashboards_dir: &root.join("grafana"),
        runbooks: &root.join("docs/runbooks.md"),
        kubernetes_dir: &root.join("deploy/kubernetes"),
        namespace: "queues",
    };
    for (path, want) in artifacts::render_everything(&t, &text, &out) {
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `cargo run -- generate` and commit the result",
            path.display()
        );
    }
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out =
        Command::new("promtool").args(args).current_dir(dir).output().expect("promtool (package prometheus)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let rules = Path::new(ROOT).join("rules");
    let (ok, text) = promtool(&["check", "rules", "--lint-fatal", artifacts::RULE_FILE], &rules);
    assert!(ok, "{text}");
    let (ok, text) = promtool(&["test", "rules", artifacts::RULE_TEST_FILE], &rules);
    assert!(ok, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn generated_rules_with_many_overrides_still_pass_promtool() {
    // Overrides on each scope, stricter and looser, with single and partial levels.
    let t = Thresholds::parse(
        "overrides:\n  - alert: queue_oldest_ready_age\n    match: {queue: payments}\n    critical: 60\n  - alert: queue_oldest_ready_age\n    match: {target: batch, queue: nightly}\n    warning: 7200\n    critical: 14400\n  - alert: redis_memory_near_limit\n    match: {target: cache}\n    warning: 0.95\n    critical: 0.98\n  - alert: host_disk_usage\n    match: {instance: db1}\n    warning: 0.7\n    for: 0s\n  - alert: stream_consumer_lag\n    match: {system: stream, queue: audit}\n    warning: 10\n",
        "t.yaml",
    )
    .expect("valid");
    let dir = tempfile::tempdir().expect("tempdir");
    artifacts::write_all(&t, dir.path(), &dir.path().join("grafana")).expect("write");
    let (ok, text) = promtool(&["check", "rules", "--lint-fatal", artifacts::RULE_FILE], dir.path());
    assert!(ok, "{text}");
    let (ok, text) = promtool(&["test", "rules", artifacts::RULE_TEST_FILE], dir.path());
    assert!(ok, "{text}");
}

#[test]
fn dashboards_pass_import_checks_and_every_expression_parses() {
    let mut exprs = Vec::new();
    for (name, text) in dashboards::dashboards(&shipped()) {
        assert_eq!(dashboards::check(&text), Vec::<String>::new(), "{name}");
        exprs.extend(dashboards::expressions(&text));
    }
    // Let promtool parse every panel query: variables become match-all regexes.
    let mut rules = String::from("groups:\n- name: dashboard-queries\n  rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$target", ".*")
            .replace("$node", ".*")
            .replace("$system", ".*")
            .replace("$queue", ".*")
            .replace("$instance", ".*")
            .replace("$collector", ".*");
        rules.push_str(&format!(
            "  - record: dashboard:query{i}\n    expr: {}\n",
            serde_json::to_string(&e).expect("json string")
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("q.yml"), rules).expect("write");
    let (ok, text) = promtool(&["check", "rules", "q.yml"], dir.path());
    assert!(ok, "{text}");
}
