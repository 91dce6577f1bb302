//! Runbook links resolve: every `runbook_url` a generated rule carries is absent (no
//! `runbook_base_url` set, the shipped default) or lands on a heading that exists in
//! docs/runbooks.md, by the anchors GitHub gives headings; and nothing shipped names an
//! organisation or registry that does not exist.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// GitHub's heading anchor, written out here rather than taken from the code under test:
/// lower case; letters, digits, `-` and `_` kept; spaces become `-`; everything else dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(doc: &str) -> BTreeSet<String> {
    doc.lines().filter_map(|l| l.strip_prefix("## ")).map(github_anchor).collect()
}

/// `(alert, runbook_url)` of every rule in a rule file (or PrometheusRule) text.
fn rule_links(text: &str) -> Vec<(String, Option<String>)> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("YAML");
    let groups = doc.get("spec").unwrap_or(&doc)["groups"].as_sequence().expect("groups").clone();
    groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        // Recording rules (the SLOs') have no alert and no annotations.
        .filter_map(|r| {
            let alert = r["alert"].as_str()?.to_string();
            Some((alert, r["annotations"]["runbook_url"].as_str().map(String::from)))
        })
        .collect()
}

/// The runbook section of an alert: its catalogue key, or the SLO alert's own key.
fn key_of(alert: &str) -> &'static str {
    if alert == redline::slo::ALERT {
        return redline::slo::RUNBOOK_KEY;
    }
    redline::catalog::ALERTS.iter().find(|a| a.alert == alert).map(|a| a.key).expect("catalogue alert")
}

#[test]
fn shipped_rules_carry_no_dead_links_and_every_alert_has_a_section() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/runbooks.md")).expect("runbooks");
    let headings = anchors(&doc);
    for file in ["rules/redline.rules.yml", "deploy/kubernetes/prometheusrule.yaml"] {
        let links = rule_links(&std::fs::read_to_string(Path::new(ROOT).join(file)).expect(file));
        assert!(links.len() > 30, "{file}: {} rules", links.len());
        for (alert, url) in links {
            assert!(
                headings.contains(key_of(&alert)),
                "{alert}: no section {} in docs/runbooks.md",
                key_of(&alert)
            );
            // The shipped thresholds set no runbook_base_url: no link rather than a dead one.
            assert_eq!(url, None, "{file}: {alert}");
        }
    }
}

#[test]
fn with_a_base_url_every_link_lands_on_an_existing_heading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let base = "https://git.example.com/ops/redline/-/blob/main/docs/runbooks.md";
    let shipped = std::fs::read_to_string(Path::new(ROOT).join("rules/thresholds.yaml")).expect("thresholds");
    std::fs::write(d.join("thresholds.yaml"), format!("runbook_base_url: \"{base}\"\n{shipped}"))
        .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .arg("generate")
        .arg("--thresholds")
        .arg(d.join("thresholds.yaml"))
        .arg("--rules-dir")
        .arg(d.join("rules"))
        .arg("--dashboards-dir")
        .arg(d.join("grafana"))
        .arg("--runbooks")
        .arg(d.join("runbooks.md"))
        .arg("--kubernetes-dir")
        .arg(d.join("k8s"))
        .output()
        .expect("redline generate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let doc = std::fs::read_to_string(d.join("runbooks.md")).expect("runbooks");
    // The document does not depend on where it is hosted: the committed one is the one linked.
    assert_eq!(doc, std::fs::read_to_string(Path::new(ROOT).join("docs/runbooks.md")).expect("committed"));
    let headings = anchors(&doc);
    let mut checked = 0;
    for file in ["rules/redline.rules.yml", "k8s/prometheusrule.yaml"] {
        for (alert, url) in rule_links(&std::fs::read_to_string(d.join(file)).expect(file)) {
            let url = url.unwrap_or_else(|| panic!("{file}: {alert} has no runbook_url"));
            let (page, anchor) = url.split_once('#').unwrap_or_else(|| panic!("{url}: no #anchor"));
            assert_eq!(page, base);
            assert!(headings.contains(anchor), "{file}: {alert} links #{anchor}, no such heading");
            assert_eq!(anchor, key_of(&alert));
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked}");
    // promtool's unit tests expect the same annotation, so they still pass.
    let out = Command::new("promtool")
        .args(["test", "rules", "redline.rules.test.yml"])
        .current_dir(d.join("rules"))
        .output()
        .expect("promtool");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_base_url_that_cannot_be_opened_is_reported_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("t.yaml");
    std::fs::write(&f, "alerts: {}\nrunbook_base_url: docs/runbooks.md\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_redline"))
        .arg("check")
        .arg("--thresholds")
        .arg(&f)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("t.yaml:2") && err.contains("http(s) URL"), "{err}");
}

#[test]
fn nothing_shipped_names_an_organisation_or_registry_that_does_not_exist() {
    let out = Command::new("git")
        .current_dir(ROOT)
        .args([
            "grep",
            "-nIE",
            "redline-monitoring|ghcr\\.io",
            "--",
            ".",
            ":!tests/runbooks.rs",
            ":!tests/deb_package.rs",
        ])
        .output()
        .expect("git grep");
    let hits = String::from_utf8_lossy(&out.stdout);
    assert!(hits.is_empty(), "{hits}");
    assert_eq!(out.status.code(), Some(1), "git grep: {}", String::from_utf8_lossy(&out.stderr));
}
