//! promtool unit tests for the generated rules: for every alert, input series that put its
//! value below the warning level (silent), between the levels (warning) and past critical;
//! for every override, a series it owns past both levels, which must page once, not twice.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::slo as slo_rules;
use super::{prom_duration, GENERATED};
use crate::catalog::{AlertDef, Op, Unit};
use crate::config::queues::System;
use crate::names as n;
use crate::slo::{Sli, Slo};
use crate::thresholds::{Alert, Levels, Thresholds};

#[derive(Serialize)]
struct TestFile {
    rule_files: Vec<String>,
    evaluation_interval: String,
    tests: Vec<Case>,
}

#[derive(Serialize)]
struct Case {
    name: String,
    interval: String,
    input_series: Vec<InputSeries>,
    alert_rule_test: Vec<AlertTest>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    promql_expr_test: Vec<ExprTest>,
}

/// A PromQL check on recorded series.
#[derive(Serialize)]
struct ExprTest {
    expr: String,
    eval_time: String,
    exp_samples: Vec<ExpSample>,
}

#[derive(Serialize)]
struct ExpSample {
    labels: String,
    value: f64,
}

#[derive(Serialize)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Serialize)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Serialize)]
struct ExpAlert {
    exp_labels: BTreeMap<String, String>,
    exp_annotations: BTreeMap<String, String>,
}

/// Go's `%.4g`, as Prometheus' template functions print numbers.
fn g4(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v == 0.0 {
            "0".into()
        } else if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sci = format!("{:.3e}", v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..4).contains(&exp) {
        format!("{}e{}{:02}", trim(mant.to_string()), if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        trim(format!("{:.*}", (3 - exp).max(0) as usize, v))
    }
}

/// Prometheus' `humanize`.
fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus' `humanize1024`.
fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus' `humanizeDuration`.
fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return "0s".into();
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let d = v.abs() as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", g4(v.abs()))
        };
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Renders the subset of Go templates our annotations use: `{{ $labels.x }}` and
/// `{{ $value | fn }}`.
fn render(template: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
    let mut out = template.to_string();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{ $labels.{k} }}}}"), v);
    }
    out.replace("{{ $value | humanizePercentage }}", &format!("{}%", g4(value * 100.0)))
        .replace("{{ $value | humanizeDuration }}", &humanize_duration(value))
        .replace("{{ $value | humanize1024 }}", &humanize1024(value))
        .replace("{{ $value | humanize }}", &humanize(value))
}

/// A value that is past `t` in the alert's direction.
fn past(op: Op, unit: Unit, t: f64) -> f64 {
    match (op, unit) {
        (Op::Above, Unit::Ratio) => t + (1.0 - t) / 2.0,
        (Op::Above, Unit::Bool) => 1.0,
        (Op::Above, _) => t * 1.5 + 1.0,
        (Op::Below, _) => t / 2.0,
    }
}

/// A value that is short of `t`.
fn short_of(op: Op, unit: Unit, t: f64) -> f64 {
    match (op, unit) {
        (Op::Above, Unit::Bool) => 0.0,
        (Op::Above, _) => t / 2.0,
        (Op::Below, Unit::Ratio | Unit::Bool) => 1.0,
        (Op::Below, _) => t * 2.0 + 1.0,
    }
}

/// `(value, expected severities)` cases for a set of levels.
fn cases(def: &AlertDef, l: &Levels) -> Vec<(String, f64, Vec<&'static str>)> {
    let (op, unit) = (def.op, def.unit);
    let first = match (l.warning, l.critical) {
        (Some(w), _) => w,
        (None, Some(c)) => c,
        (None, None) => return Vec::new(),
    };
    let mut out = vec![("below every level".to_string(), short_of(op, unit, first), vec![])];
    match (l.warning, l.critical) {
        (Some(w), Some(c)) => {
            out.push(("warning only".into(), (w + c) / 2.0, vec!["warning"]));
            out.push(("critical".into(), past(op, unit, c), vec!["warning", "critical"]));
        }
        (Some(w), None) => out.push(("warning".into(), past(op, unit, w), vec!["warning"])),
        (None, Some(c)) => out.push(("critical".into(), past(op, unit, c), vec!["critical"])),
        (None, None) => {}
    }
    out
}

/// Rewrites fixture label values to those of an override match (`queue="q"` -> `queue="payments"`).
fn relabel(text: &str, m: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in m {
        let placeholder = match k.as_str() {
            "target" => "t",
            "queue" => "q",
            "instance" => "h",
            "collector" => "redis",
            "system" if out.contains("system=\"stream\"") => "stream",
            "system" => "bullmq",
            _ => continue,
        };
        out = out.replace(&format!("{k}=\"{placeholder}\""), &format!("{k}=\"{v}\""));
    }
    out
}

fn case(
    a: &Alert,
    name: String,
    levels: &Levels,
    value: f64,
    severities: &[&str],
    m: &BTreeMap<String, String>,
) -> Case {
    let def = a.def;
    // Long enough for rate windows (10m) and the `for` duration, with data to spare.
    // Whole minutes, on a sample: timestamp fixtures (`time() - ts`) are exact only there.
    let eval = Duration::from_secs((levels.for_.as_secs() + 15 * 60).div_ceil(60) * 60);
    let samples = eval.as_secs() / 60 + 5;
    let input_series = (def.fixture)(value)
        .into_iter()
        .map(|(series, values)| InputSeries {
            series: relabel(&series, m),
            values: values.replace("x40", &format!("x{samples}")),
        })
        .collect();
    let exp_alerts = severities
        .iter()
        .map(|s| {
            let mut labels: BTreeMap<String, String> = def
                .fixture_labels
                .iter()
                .map(|(k, v)| (k.to_string(), relabel(&format!("{k}=\"{v}\""), m)))
                .collect();
            for v in labels.values_mut() {
                // relabel() returned `k="v"`; keep the value part.
                *v = v.split_once('=').map(|(_, x)| x.trim_matches('"').to_string()).unwrap_or_default();
            }
            // The rules this case expects: thresholds by severity, from the override or the default.
            let threshold = if *s == "warning" { levels.warning } else { levels.critical }.unwrap_or(0.0);
            let description = def
                .description
                .replace("{value}", def.unit.template())
                .replace("{threshold}", &super::human(def.unit, threshold));
            let exp_annotations: BTreeMap<String, String> = [
                ("summary".to_string(), render(&a.summary, &labels, value)),
                ("description".to_string(), render(&description, &labels, value)),
            ]
            .into_iter()
            .chain(a.runbook_url.clone().map(|u| ("runbook_url".to_string(), u)))
            .collect();
            labels.insert("severity".into(), s.to_string());
            if !m.is_empty() {
                labels.insert("override".into(), crate::thresholds::override_name(m));
            }
            ExpAlert { exp_labels: labels, exp_annotations }
        })
        .collect();
    Case {
        name,
        interval: "1m".into(),
        input_series,
        alert_rule_test: vec![AlertTest {
            eval_time: prom_duration(eval),
            alertname: def.alert.to_string(),
            exp_alerts,
        }],
        promql_expr_test: Vec::new(),
    }
}

/// The promtool test file for `rule_file_name` (relative to the test file).
pub fn test_file(t: &Thresholds, rule_file_name: &str) -> String {
    let mut tests = Vec::new();
    for a in t.alerts.iter().filter(|a| a.enabled) {
        let none = BTreeMap::new();
        for (what, v, sev) in cases(a.def, &a.levels) {
            tests.push(case(
                a,
                format!("{} {what} ({})", a.def.alert, super::number(v)),
                &a.levels,
                v,
                &sev,
                &none,
            ));
        }
        for (m, levels) in &a.overrides {
            // Past both the default and the override levels: the override alone must page.
            let strictest = |l: &Levels| match a.def.op {
                Op::Above => [l.warning, l.critical].into_iter().flatten().fold(f64::MIN, f64::max),
                Op::Below => [l.warning, l.critical].into_iter().flatten().fold(f64::MAX, f64::min),
            };
            let beyond = match a.def.op {
                Op::Above => strictest(levels).max(strictest(&a.levels)),
                Op::Below => strictest(levels).min(strictest(&a.levels)),
            };
            let v = past(a.def.op, a.def.unit, beyond);
            let sev: Vec<&str> = [("warning", levels.warning), ("critical", levels.critical)]
                .iter()
                .filter(|(_, l)| l.is_some())
                .map(|(s, _)| *s)
                .collect();
            let label = super::rules::matchers(m);
            tests.push(case(a, format!("{} override {label} pages once", a.def.alert), levels, v, &sev, m));
            for (what, v, sev) in cases(a.def, levels) {
                tests.push(case(a, format!("{} override {label} {what}", a.def.alert), levels, v, &sev, m));
            }
        }
    }
    for slo in &t.slos {
        tests.extend(slo_cases(slo));
    }
    let file =
        TestFile { rule_files: vec![rule_file_name.to_string()], evaluation_interval: "1m".into(), tests };
    format!("# {GENERATED}\n{}", serde_yaml_ng::to_string(&file).unwrap_or_default())
}

/// Identifying labels of a queue the SLO picks (placeholders where its matcher is open).
fn slo_queue_labels(slo: &Slo) -> BTreeMap<String, String> {
    let m = &slo.matcher;
    let system = m.system.unwrap_or(System::Bullmq);
    let prefix = m.prefix.clone().unwrap_or_else(|| system.default_prefix().to_string());
    let mut l = BTreeMap::from([
        ("target".to_string(), m.target.clone().unwrap_or_else(|| "t".into())),
        ("system".to_string(), system.as_str().to_string()),
        ("queue".to_string(), m.queue.clone()),
    ]);
    if !prefix.is_empty() {
        l.insert("prefix".into(), prefix);
    }
    l
}

fn selector(name: &str, labels: &BTreeMap<String, String>, extra: &str) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    if !extra.is_empty() {
        parts.push(extra.to_string());
    }
    format!("{name}{{{}}}", parts.join(","))
}

/// Jobs finishing per minute in SLO test series: bad shares down to 0.00001 stay whole numbers.
const SLO_JOBS_PER_MINUTE: u64 = 100_000;

/// promtool's expanding notation for a counter growing by `per_minute[i]` for `minutes[i]`.
fn counter_values(phases: &[(u64, u64)]) -> String {
    let mut parts = vec![format!("0+{}x{}", phases[0].1, phases[0].0)];
    let mut at = phases[0].0 * phases[0].1;
    for (minutes, per) in &phases[1..] {
        parts.push(format!("{}+{per}x{}", at + per, minutes - 1));
        at += minutes * per;
    }
    parts.join(" ")
}

/// Input series for an SLO: [`SLO_JOBS_PER_MINUTE`] finished jobs a minute, a share of them bad,
/// per phase `(minutes, bad share)`; returns the series and the bad share over all the data.
fn slo_series(slo: &Slo, phases: &[(u64, f64)]) -> (Vec<InputSeries>, f64) {
    let l = slo_queue_labels(slo);
    let bad: Vec<(u64, u64)> =
        phases.iter().map(|(m, share)| (*m, (share * SLO_JOBS_PER_MINUTE as f64).round() as u64)).collect();
    let good: Vec<(u64, u64)> = bad.iter().map(|(m, b)| (*m, SLO_JOBS_PER_MINUTE - b)).collect();
    let total: Vec<(u64, u64)> = bad.iter().map(|(m, _)| (*m, SLO_JOBS_PER_MINUTE)).collect();
    let series = match slo.sli {
        Sli::Wait(t) | Sli::Processing(t) => {
            let h = if matches!(slo.sli, Sli::Wait(_)) {
                &n::QUEUE_WAIT_DURATION
            } else {
                &n::QUEUE_PROCESSING_DURATION
            }
            .exposed();
            // redline writes whole-number bounds as `30.0`.
            let le = if t.fract() == 0.0 { format!("le=\"{t:.1}\"") } else { format!("le=\"{t}\"") };
            vec![
                InputSeries {
                    series: selector(&format!("{h}_bucket"), &l, &le),
                    values: counter_values(&good),
                },
                InputSeries {
                    series: selector(&format!("{h}_count"), &l, ""),
                    values: counter_values(&total),
                },
            ]
        }
        Sli::Success => vec![
            InputSeries {
                series: selector(&n::QUEUE_JOBS_COMPLETED.exposed(), &l, ""),
                values: counter_values(&good),
            },
            InputSeries {
                series: selector(&n::QUEUE_JOBS_FAILED.exposed(), &l, ""),
                values: counter_values(&bad),
            },
        ],
    };
    let all_bad: u64 = bad.iter().map(|(m, b)| m * b).sum();
    let all: u64 = total.iter().map(|(m, t)| m * t).sum();
    (series, all_bad as f64 / all.max(1) as f64)
}

/// promtool cases for one SLO: silent when healthy; page and ticket on a fast burn; ticket
/// only on a slow burn; and after a burst ends, the short windows stop the page while the
/// ticket stays.
fn slo_cases(slo: &Slo) -> Vec<Case> {
    let b = slo.budget();
    let page_factor = if 14.4 * b < 1.0 { 14.4 } else { 6.0 };
    // Shares in whole jobs of SLO_JOBS_PER_MINUTE, so names and values print exactly.
    let whole = |share: f64| (share * SLO_JOBS_PER_MINUTE as f64).round() / SLO_JOBS_PER_MINUTE as f64;
    let fast = whole((1.0 + page_factor * b) / 2.0);
    let slow = whole(3.0 * b);
    let expect = |severities: &[&str], value: f64| -> Vec<ExpAlert> {
        severities
            .iter()
            .map(|sev| {
                let mut labels = slo_queue_labels(slo);
                labels.insert("slo".into(), slo.name.clone());
                let exp_annotations = [
                    ("summary".to_string(), render(&slo.summary, &labels, value)),
                    (
                        "description".to_string(),
                        render(&slo_rules::description(slo, sev, 1.0), &labels, value),
                    ),
                ]
                .into_iter()
                .chain(slo.runbook_url.clone().map(|u| ("runbook_url".to_string(), u)))
                .collect();
                labels.insert("severity".into(), sev.to_string());
                ExpAlert { exp_labels: labels, exp_annotations }
            })
            .collect()
    };
    let case = |what: &str, phases: &[(u64, f64)], severities: &[&str], value_of: &dyn Fn(f64) -> f64| {
        let (input_series, all_bad) = slo_series(slo, phases);
        let minutes: u64 = phases.iter().map(|p| p.0).sum();
        Case {
            name: format!("{} {} {what}", crate::slo::ALERT, slo.name),
            interval: "1m".into(),
            input_series,
            alert_rule_test: vec![AlertTest {
                eval_time: prom_duration(Duration::from_secs(minutes * 60)),
                alertname: crate::slo::ALERT.to_string(),
                exp_alerts: expect(severities, value_of(all_bad)),
            }],
            promql_expr_test: Vec::new(),
        }
    };
    let burn = |all_bad: f64| all_bad / b;
    let mut cases = vec![
        // Ten minutes of data fill every window alike (rate() uses what there is).
        case("healthy: silent", &[(10, 0.0)], &[], &burn),
        case(
            &format!("fast burn ({}): pages and tickets", super::number(fast)),
            &[(10, fast)],
            &["critical", "warning"],
            &burn,
        ),
        case(
            &format!("slow burn ({}): tickets only", super::number(slow)),
            &[(10, slow)],
            &["warning"],
            &burn,
        ),
        // The 5m and 30m windows are clean again; the 1h and 6h ones still hold the burst
        // (half of it: still past both pages' factors), so only the short windows stop the page.
        case("burst over: page stops, ticket stays", &[(30, fast), (31, 0.0)], &["warning"], &burn),
    ];
    if let Sli::Wait(_) | Sli::Processing(_) = slo.sli {
        cases.push(sampled_case(slo));
    }
    cases
}

/// Twice as many jobs finished as the histogram saw (more than `max_finished_samples` per
/// collection): the jobs-seen ratio says the SLI is a sample.
fn sampled_case(slo: &Slo) -> Case {
    let (mut input_series, _) = slo_series(slo, &[(10, 0.0)]);
    let l = slo_queue_labels(slo);
    let twice = counter_values(&[(10, 2 * SLO_JOBS_PER_MINUTE)]);
    input_series
        .push(InputSeries { series: selector(&n::QUEUE_JOBS_COMPLETED.exposed(), &l, ""), values: twice });
    input_series.push(InputSeries {
        series: selector(&n::QUEUE_JOBS_FAILED.exposed(), &l, ""),
        values: "0+0x10".into(),
    });
    let mut labels = l.clone();
    labels.insert("slo".into(), slo.name.clone());
    Case {
        name: format!("{} {} jobs seen: half of the finished jobs were timed", crate::slo::ALERT, slo.name),
        interval: "1m".into(),
        input_series,
        alert_rule_test: Vec::new(),
        promql_expr_test: vec![ExprTest {
            expr: slo_rules::JOBS_SEEN.to_string(),
            eval_time: "10m".into(),
            exp_samples: vec![ExpSample { labels: selector(slo_rules::JOBS_SEEN, &labels, ""), value: 0.5 }],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_enabled_alert_gets_silent_and_firing_cases() {
        let t = Thresholds::defaults();
        let text = test_file(&t, "redline.rules.yml");
        for a in &t.alerts {
            assert!(text.contains(&format!("{} below every level", a.def.alert)), "{}", a.def.alert);
        }
    }

    #[test]
    fn go_number_formatting_matches_prometheus() {
        assert_eq!(g4(0.95), "0.95");
        assert_eq!(g4(1234.5678), "1235");
        assert_eq!(g4(12345.0), "1.234e+04");
        assert_eq!(g4(0.00012), "0.00012");
        assert_eq!(humanize(1500.0), "1.5k");
        assert_eq!(humanize(0.03), "30m");
        assert_eq!(humanize_duration(451.0), "7m 31s");
        assert_eq!(humanize_duration(0.03), "30ms");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize1024(2048.0), "2ki");
    }

    #[test]
    fn relabel_moves_fixture_to_the_override() {
        let m = BTreeMap::from([("queue".to_string(), "payments".to_string())]);
        assert_eq!(
            relabel("x{target=\"t\",system=\"bullmq\",queue=\"q\"}", &m),
            "x{target=\"t\",system=\"bullmq\",queue=\"payments\"}"
        );
    }
}
