//! The generated RedlineTargetVanished rule, run by promtool on histories the fixtures of the
//! generated unit tests do not cover: a redline restart that changes Prometheus' `instance`
//! label must not page, a target dropped from one of two redline replicas must not page while
//! the other still reports it, and a target dropped everywhere pages until the window passes.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn vanished_rule_ignores_restarts_and_replicas_and_fires_on_removal() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(format!("{ROOT}/rules/redline.rules.yml"), dir.path().join("redline.rules.yml"))
        .expect("copy");
    let m = "redline_collector_success";
    let t = redline::thresholds::Thresholds::defaults();
    let a = t.get("redline_target_vanished").expect("in the catalogue");
    let fill =
        |text: &str| text.replace("{{ $labels.collector }}", "redis").replace("{{ $labels.target }}", "gone");
    // JSON strings are YAML double-quoted scalars.
    let (summary, description) = (
        serde_json::to_string(&fill(&a.summary)).expect("json"),
        serde_json::to_string(&fill(a.def.description)).expect("json"),
    );
    // The defaults set no runbook_base_url: the rule carries no runbook_url.
    let runbook = match &a.runbook_url {
        Some(u) => format!(", runbook_url: {}", serde_json::to_string(u).expect("json")),
        None => String::new(),
    };
    let tests = format!(
        r#"rule_files: [redline.rules.yml]
evaluation_interval: 1m
tests:
- name: restart with a new instance label
  interval: 1m
  input_series:
  - series: '{m}{{collector="redis",target="a",instance="10.0.0.1:9860"}}'
    values: 1x4 stale
  - series: '{m}{{collector="redis",target="a",instance="10.0.0.2:9860"}}'
    values: _x5 1x40
  alert_rule_test:
  - eval_time: 20m
    alertname: RedlineTargetVanished
    exp_alerts: []
- name: one replica still reports it
  interval: 1m
  input_series:
  - series: '{m}{{collector="redis",target="a",instance="r1"}}'
    values: 1x4 stale
  - series: '{m}{{collector="redis",target="a",instance="r2"}}'
    values: 1x40
  alert_rule_test:
  - eval_time: 20m
    alertname: RedlineTargetVanished
    exp_alerts: []
- name: removed, pages, then resolves after the window
  interval: 1m
  input_series:
  - series: '{m}{{collector="redis",target="gone",instance="r1"}}'
    values: 1x4 stale
  - series: '{m}{{collector="redis",target="kept",instance="r1"}}'
    values: 1x100
  alert_rule_test:
  - eval_time: 3m
    alertname: RedlineTargetVanished
    exp_alerts: []
  - eval_time: 20m
    alertname: RedlineTargetVanished
    exp_alerts:
    - exp_labels: {{severity: warning, collector: redis, target: gone}}
      exp_annotations: {{summary: {summary}, description: {description}{runbook}}}
  - eval_time: 70m
    alertname: RedlineTargetVanished
    exp_alerts: []
"#
    );
    std::fs::write(dir.path().join("t.yml"), tests).expect("write");
    let out = Command::new("promtool")
        .current_dir(dir.path())
        .args(["test", "rules", "t.yml"])
        .output()
        .expect("promtool on PATH");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
