//! Prometheus alerting rules from the thresholds: one group per area, one rule per alert and
//! severity, plus one per override. The default rule leaves out (`unless`) every series an
//! override owns, so an override never double-pages.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{human, number, prom_duration, GENERATED};
use crate::catalog::{Area, Scope};
use crate::thresholds::{override_name, Alert, Levels, Thresholds};

/// One rule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rule {
    /// Alert name.
    pub alert: String,
    /// PromQL.
    pub expr: String,
    /// `for` duration.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// Labels (severity).
    pub labels: BTreeMap<String, String>,
    /// summary, description, runbook_url.
    pub annotations: BTreeMap<String, String>,
}

/// One rule group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Group {
    /// `redline-<area>`.
    pub name: String,
    /// Rules.
    pub rules: Vec<Rule>,
}

/// An alert group from the catalogue or the SLO group (recording rules and alerts).
#[derive(Serialize)]
#[serde(untagged)]
enum AnyGroup<'a> {
    Alerts(&'a Group),
    Slo(&'a super::slo::SloGroup),
}

#[derive(Serialize)]
struct RuleFile<'a> {
    groups: Vec<AnyGroup<'a>>,
}

impl<'a> RuleFile<'a> {
    fn new(groups: &'a [Group], slo: Option<&'a super::slo::SloGroup>) -> Self {
        let mut all: Vec<AnyGroup> = groups.iter().map(AnyGroup::Alerts).collect();
        all.extend(slo.map(AnyGroup::Slo));
        RuleFile { groups: all }
    }
}

/// Label matchers selecting the series an override owns.
pub fn matchers(m: &BTreeMap<String, String>) -> String {
    m.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect::<Vec<_>>().join(",")
}

fn scope_labels(scope: Scope) -> String {
    scope.override_labels().join(", ")
}

fn rules_for(a: &Alert) -> Vec<Rule> {
    let def = a.def;
    let mut out = Vec::new();
    let exclusions: Vec<String> = a.overrides.iter().map(|(m, _)| (def.expr)(&matchers(m))).collect();
    // `override` tells the rules apart for promtool's duplicate lint and for on-call.
    let mut emit = |levels: &Levels, sel: &str, unless: Option<String>, override_label: Option<String>| {
        for (severity, threshold) in [("warning", levels.warning), ("critical", levels.critical)] {
            let Some(t) = threshold else { continue };
            let mut expr = format!("({}) {} {}", (def.expr)(sel), def.op.promql(), number(t));
            if let Some(u) = &unless {
                expr = format!("{expr} unless on ({}) ({u})", scope_labels(def.scope));
            }
            let description = def
                .description
                .replace("{value}", def.unit.template())
                .replace("{threshold}", &human(def.unit, t));
            out.push(Rule {
                alert: def.alert.to_string(),
                expr,
                for_: (!levels.for_.is_zero()).then(|| prom_duration(levels.for_)),
                labels: [("severity".to_string(), severity.to_string())]
                    .into_iter()
                    .chain(override_label.clone().map(|o| ("override".to_string(), o)))
                    .collect(),
                annotations: [
                    ("summary".to_string(), a.summary.clone()),
                    ("description".to_string(), description),
                ]
                .into_iter()
                .chain(a.runbook_url.clone().map(|u| ("runbook_url".to_string(), u)))
                .collect(),
            });
        }
    };
    let unless = (!exclusions.is_empty()).then(|| exclusions.join(" or "));
    emit(&a.levels, "", unless, None);
    for (m, levels) in &a.overrides {
        emit(levels, &matchers(m), None, Some(override_name(m)));
    }
    out
}

/// Rule groups for every enabled alert, by area.
pub fn groups(t: &Thresholds) -> Vec<Group> {
    Area::ALL
        .iter()
        .map(|area| Group {
            name: format!("redline-{}", area.name()),
            rules: t.alerts.iter().filter(|a| a.enabled && a.def.area == *area).flat_map(rules_for).collect(),
        })
        .filter(|g| !g.rules.is_empty())
        .collect()
}

fn to_yaml<T: Serialize>(v: &T) -> String {
    // Serializing plain structs of strings cannot fail.
    serde_yaml_ng::to_string(v).unwrap_or_default()
}

/// The Prometheus rule file.
pub fn rule_file(t: &Thresholds) -> String {
    rule_file_scaled(t, 1.0)
}

/// The rule file with every SLO window multiplied by `slo_time_scale` (see `generate::slo`);
/// for tests that must burn an error budget in minutes. Other rules are unchanged.
pub fn rule_file_scaled(t: &Thresholds, slo_time_scale: f64) -> String {
    let slo = super::slo::group(&t.slos, slo_time_scale);
    format!("# {GENERATED}\n{}", to_yaml(&RuleFile::new(&groups(t), slo.as_ref())))
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    labels: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PrometheusRule<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: Metadata<'a>,
    spec: RuleFile<'a>,
}

/// A ConfigMap carrying the thresholds file, for a sidecar to mount.
pub fn thresholds_configmap(thresholds_text: &str, name: &str, namespace: Option<&str>) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ConfigMap<'a> {
        api_version: &'a str,
        kind: &'a str,
        metadata: Metadata<'a>,
        data: BTreeMap<&'a str, &'a str>,
    }
    let doc = ConfigMap {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: Metadata {
            name,
            namespace,
            labels: BTreeMap::from([("app.kubernetes.io/name", "redline")]),
        },
        data: BTreeMap::from([("thresholds.yaml", thresholds_text)]),
    };
    format!("# {GENERATED}\n{}", to_yaml(&doc))
}

/// The same rules as a prometheus-operator `PrometheusRule` resource.
pub fn prometheus_rule(t: &Thresholds, name: &str, namespace: Option<&str>) -> String {
    let groups = groups(t);
    let slo = super::slo::group(&t.slos, 1.0);
    let doc = PrometheusRule {
        api_version: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: Metadata {
            name,
            namespace,
            labels: BTreeMap::from([("app.kubernetes.io/name", "redline"), ("role", "alert-rules")]),
        },
        spec: RuleFile::new(&groups, slo.as_ref()),
    };
    format!("# {GENERATED}\n{}", to_yaml(&doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_excludes_overridden_queues_and_override_rule_selects_them() {
        let t = Thresholds::parse(
            "overrides:\n  - alert: queue_oldest_ready_age\n    match: {queue: payments}\n    warning: 30\n    critical: 60\n    for: 1m\n",
            "t.yaml",
        )
        .expect("valid");
        let g = groups(&t);
        let rules: Vec<&Rule> =
            g.iter().flat_map(|g| &g.rules).filter(|r| r.alert == "QueueJobsWaitingTooLong").collect();
        assert_eq!(rules.len(), 4);
        assert_eq!(
            rules[0].expr,
            "(time() - redline_queue_oldest_ready_timestamp_seconds) > 300 unless on (target, system, prefix, queue) (time() - redline_queue_oldest_ready_timestamp_seconds{queue=\"payments\"})"
        );
        assert_eq!(
            rules[2].expr,
            "(time() - redline_queue_oldest_ready_timestamp_seconds{queue=\"payments\"}) > 30"
        );
        assert_eq!(rules[2].for_.as_deref(), Some("1m"));
        assert_eq!(rules[3].labels.get("severity").map(String::as_str), Some("critical"));
    }

    #[test]
    fn disabled_alerts_have_no_rules_and_descriptions_are_filled() {
        let t = Thresholds::parse("alerts:\n  host_load:\n    enabled: false\n", "t.yaml").expect("valid");
        let text = rule_file(&t);
        assert!(!text.contains("HostLoadHigh"));
        assert!(!text.contains("{value}") && !text.contains("{threshold}"));
        assert!(text.contains("humanizePercentage"));
    }

    #[test]
    fn prometheus_rule_wraps_the_same_groups() {
        let t = Thresholds::defaults();
        let cr = prometheus_rule(&t, "redline", Some("monitoring"));
        assert!(cr.contains("apiVersion: monitoring.coreos.com/v1"));
        assert!(cr.contains("kind: PrometheusRule"));
        assert!(cr.contains("namespace: monitoring"));
        assert_eq!(cr.matches("- alert: ").count(), rule_file(&t).matches("- alert: ").count());
    }
}
