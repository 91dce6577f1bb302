//! Prometheus rules for the queue SLOs: recording rules for each SLO's error ratio over the
//! alert windows and its own window, the error budget left, and the multiwindow multi-burn-rate
//! alert (page and ticket) from `slo::BURN_WINDOWS`. The recording-rule shape follows sloth and
//! pyrra: `sum by` the queue's identity, so an SLO whose matcher picks several queues still
//! judges (and pages for) each one on its own.
//!
//! `time_scale` shrinks every window (alerts and SLO period) by a factor, so an end-to-end
//! test can burn a budget in a minute with the very rules this module writes; 1.0 otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::number;
use crate::names as n;
use crate::slo::{Sli, Slo, ALERT, BURN_WINDOWS};

/// Labels that identify a queue; the recording rules keep them.
pub const QUEUE_IDENTITY: &str = "target, system, prefix, queue";

/// Name of the recorded error ratio over `window` (`redline:slo_errors:ratio_rate5m`).
pub fn ratio_name(window: &str) -> String {
    format!("redline:slo_errors:ratio_rate{window}")
}

/// Name of the recorded share of the error budget left over the SLO window.
pub const BUDGET_REMAINING: &str = "redline:slo_error_budget_remaining:ratio";

/// Name of the recorded share of finished jobs whose times the histogram saw, over the shortest
/// window (wait and processing SLOs). Below 1, more jobs finished per collection than
/// `limits.max_finished_samples` and the SLI is a sample, not a count.
pub const JOBS_SEEN: &str = "redline:slo_jobs_seen:ratio";

/// One recording or alerting rule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SloRule {
    /// Recorded series name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Alert name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// PromQL.
    pub expr: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations (alerts only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The SLO rule group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SloGroup {
    /// `redline-slos`.
    pub name: String,
    /// Recording rules first (Prometheus evaluates a group in order), then alerts.
    pub rules: Vec<SloRule>,
}

/// A duration in Prometheus notation, in its largest exact unit (`28d`, `6h`, `5s`, `500ms`).
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `d` × `scale`, to whole milliseconds.
pub fn scaled(d: Duration, scale: f64) -> Duration {
    Duration::from_millis((d.as_millis() as f64 * scale).round().max(1.0) as u64)
}

/// The `le` matcher of the bucket holding exactly `seconds`. redline writes `30.0` (the
/// OpenMetrics form, which Prometheus 3 also normalises to); a regex keeps `30` working too.
pub fn le_matcher(seconds: f64) -> String {
    if seconds.fract() == 0.0 && seconds.abs() < 1e15 {
        format!("le=~\"{seconds:.0}(\\\\.0)?\"")
    } else {
        format!("le=\"{seconds}\"")
    }
}

/// The error ratio of `slo` over `window`: bad jobs / finished jobs, per queue.
pub fn error_ratio(slo: &Slo, window: &str) -> String {
    let m = slo.matcher.promql();
    let by = format!("sum by ({QUEUE_IDENTITY})");
    match slo.sli {
        Sli::Wait(t) | Sli::Processing(t) => {
            let h = if matches!(slo.sli, Sli::Wait(_)) {
                &n::QUEUE_WAIT_DURATION
            } else {
                &n::QUEUE_PROCESSING_DURATION
            }
            .exposed();
            format!(
                "1 - {by} (rate({h}_bucket{{{m},{le}}}[{window}])) / {by} (rate({h}_count{{{m}}}[{window}]))",
                le = le_matcher(t)
            )
        }
        Sli::Success => {
            let (f, c) = (n::QUEUE_JOBS_FAILED.exposed(), n::QUEUE_JOBS_COMPLETED.exposed());
            format!(
                "{by} (rate({f}{{{m}}}[{window}])) / ({by} (rate({f}{{{m}}}[{window}])) + {by} (rate({c}{{{m}}}[{window}])))"
            )
        }
    }
}

/// The windows an SLO records, in order: alert windows short to long, then its own period.
pub fn windows(slo: &Slo, time_scale: f64) -> Vec<String> {
    let mut ds: Vec<Duration> = BURN_WINDOWS.iter().flat_map(|w| [w.short, w.long]).collect();
    ds.push(slo.window);
    ds.sort();
    ds.dedup();
    ds.into_iter().map(|d| duration(scaled(d, time_scale))).collect()
}

fn slo_label(slo: &Slo) -> BTreeMap<String, String> {
    BTreeMap::from([("slo".to_string(), slo.name.clone())])
}

/// What to look at first, by SLI.
fn hint(sli: Sli) -> &'static str {
    match sli {
        Sli::Wait(_) => "Jobs wait too long before a worker takes them: workers are too few, stuck or crashing; check the backlog and workers.",
        Sli::Processing(_) => "Jobs run longer than the objective allows: a slow dependency, bigger inputs or starved workers.",
        Sli::Success => "Jobs fail: read the latest failure reasons of the queue's failed jobs.",
    }
}

/// The `description` annotation of the alert with `severity`.
pub fn description(slo: &Slo, severity: &str, time_scale: f64) -> String {
    let windows: Vec<String> = BURN_WINDOWS
        .iter()
        .filter(|w| w.severity == severity)
        .map(|w| {
            format!(
                "{}× over {} and {}",
                number(w.factor),
                duration(scaled(w.long, time_scale)),
                duration(scaled(w.short, time_scale))
            )
        })
        .collect();
    format!(
        "{{{{ $labels.system }}}} queue {{{{ $labels.queue }}}} on {{{{ $labels.target }}}} burns the error budget of SLO {} ({}% of jobs {} over {}) {{{{ $value | humanize }}}} times as fast as the objective allows ({}: {}). {}",
        slo.name,
        number((slo.objective * 1e6).round() / 1e4),
        slo.sli.describe(),
        duration(scaled(slo.window, time_scale)),
        if severity == "critical" { "page" } else { "ticket" },
        windows.join(", or "),
        hint(slo.sli)
    )
}

/// The alert expression for `severity`: any of its rows, each needing both windows past the factor.
/// Its value is the long window's burn rate.
pub fn alert_expr(slo: &Slo, severity: &str, time_scale: f64) -> String {
    let budget = number(slo.budget());
    let sel = format!("{{slo=\"{}\"}}", slo.name);
    BURN_WINDOWS
        .iter()
        .filter(|w| w.severity == severity)
        .map(|w| {
            let f = number(w.factor);
            let long = ratio_name(&duration(scaled(w.long, time_scale)));
            let short = ratio_name(&duration(scaled(w.short, time_scale)));
            format!("({long}{sel} / {budget} > {f} and {short}{sel} / {budget} > {f})")
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Recording rules and alerts for every SLO; `None` when there are none.
pub fn group(slos: &[Slo], time_scale: f64) -> Option<SloGroup> {
    if slos.is_empty() {
        return None;
    }
    let mut rules = Vec::new();
    for s in slos {
        let ws = windows(s, time_scale);
        for w in &ws {
            rules.push(SloRule {
                record: Some(ratio_name(w)),
                alert: None,
                expr: error_ratio(s, w),
                labels: slo_label(s),
                annotations: BTreeMap::new(),
            });
        }
        if let Sli::Wait(_) | Sli::Processing(_) = s.sli {
            let h = if matches!(s.sli, Sli::Wait(_)) {
                &n::QUEUE_WAIT_DURATION
            } else {
                &n::QUEUE_PROCESSING_DURATION
            }
            .exposed();
            let (f, c, m) =
                (n::QUEUE_JOBS_FAILED.exposed(), n::QUEUE_JOBS_COMPLETED.exposed(), s.matcher.promql());
            let w = &ws[0];
            let by = format!("sum by ({QUEUE_IDENTITY})");
            rules.push(SloRule {
                record: Some(JOBS_SEEN.to_string()),
                alert: None,
                expr: format!(
                    "{by} (rate({h}_count{{{m}}}[{w}])) / ({by} (rate({f}{{{m}}}[{w}])) + {by} (rate({c}{{{m}}}[{w}])))"
                ),
                labels: slo_label(s),
                annotations: BTreeMap::new(),
            });
        }
        rules.push(SloRule {
            record: Some(BUDGET_REMAINING.to_string()),
            alert: None,
            expr: format!(
                "1 - {}{{slo=\"{}\"}} / {}",
                ratio_name(&duration(scaled(s.window, time_scale))),
                s.name,
                number(s.budget())
            ),
            labels: slo_label(s),
            annotations: BTreeMap::new(),
        });
    }
    for s in slos {
        for severity in ["critical", "warning"] {
            let mut labels = slo_label(s);
            labels.insert("severity".into(), severity.into());
            rules.push(SloRule {
                record: None,
                alert: Some(ALERT.to_string()),
                expr: alert_expr(s, severity, time_scale),
                labels,
                annotations: [
                    ("summary".to_string(), s.summary.clone()),
                    ("description".to_string(), description(s, severity, time_scale)),
                ]
                .into_iter()
                .chain(s.runbook_url.clone().map(|u| ("runbook_url".to_string(), u)))
                .collect(),
            });
        }
    }
    Some(SloGroup { name: "redline-slos".into(), rules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thresholds::Thresholds;

    fn slos(src: &str) -> Vec<Slo> {
        Thresholds::parse(src, "t.yaml").expect("valid").slos
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(duration(Duration::from_secs(28 * 86400)), "28d");
        assert_eq!(duration(Duration::from_secs(3 * 86400)), "3d");
        assert_eq!(duration(Duration::from_secs(6 * 3600)), "6h");
        assert_eq!(duration(Duration::from_secs(300)), "5m");
        assert_eq!(duration(scaled(Duration::from_secs(300), 1.0 / 60.0)), "5s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(le_matcher(30.0), "le=~\"30(\\\\.0)?\"");
        assert_eq!(le_matcher(0.25), "le=\"0.25\"");
    }

    #[test]
    fn wait_slo_records_exact_bucket_ratios_and_pages_on_both_windows() {
        let s = slos("slos:\n  - name: pay\n    queue: payments\n    system: bullmq\n    objective: 0.99\n    wait_under: 30s\n");
        let g = group(&s, 1.0).expect("group");
        let rec: Vec<&str> = g.rules.iter().filter_map(|r| r.record.as_deref()).collect();
        assert_eq!(
            rec,
            [
                "redline:slo_errors:ratio_rate5m",
                "redline:slo_errors:ratio_rate30m",
                "redline:slo_errors:ratio_rate1h",
                "redline:slo_errors:ratio_rate6h",
                "redline:slo_errors:ratio_rate3d",
                "redline:slo_errors:ratio_rate28d",
                JOBS_SEEN,
                BUDGET_REMAINING
            ]
        );
        assert_eq!(
            g.rules[0].expr,
            "1 - sum by (target, system, prefix, queue) (rate(redline_queue_wait_duration_seconds_bucket{system=\"bullmq\",queue=\"payments\",le=~\"30(\\\\.0)?\"}[5m])) / sum by (target, system, prefix, queue) (rate(redline_queue_wait_duration_seconds_count{system=\"bullmq\",queue=\"payments\"}[5m]))"
        );
        let page =
            g.rules.iter().find(|r| r.labels.get("severity").is_some_and(|s| s == "critical")).expect("page");
        assert_eq!(
            page.expr,
            "(redline:slo_errors:ratio_rate1h{slo=\"pay\"} / 0.01 > 14.4 and redline:slo_errors:ratio_rate5m{slo=\"pay\"} / 0.01 > 14.4) or (redline:slo_errors:ratio_rate6h{slo=\"pay\"} / 0.01 > 6 and redline:slo_errors:ratio_rate30m{slo=\"pay\"} / 0.01 > 6)"
        );
        assert!(
            page.annotations["description"].contains("99% of jobs start within 30s over 28d"),
            "{page:?}"
        );
    }

    #[test]
    fn time_scale_shrinks_every_window_alike() {
        let s = slos(
            "slos:\n  - name: f\n    queue: q\n    objective: 0.999\n    success: true\n    window: 30d\n",
        );
        assert_eq!(windows(&s[0], 1.0 / 60.0), ["5s", "30s", "1m", "6m", "72m", "12h"]);
        let g = group(&s, 1.0 / 60.0).expect("group");
        let ticket = g.rules.last().expect("ticket");
        assert_eq!(
            ticket.expr,
            "(redline:slo_errors:ratio_rate72m{slo=\"f\"} / 0.001 > 1 and redline:slo_errors:ratio_rate6m{slo=\"f\"} / 0.001 > 1)"
        );
        assert!(
            g.rules[0].expr.contains("redline_queue_jobs_failed_total{queue=\"q\"}[5s]"),
            "{}",
            g.rules[0].expr
        );
    }
}
