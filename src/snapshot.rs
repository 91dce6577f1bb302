//! `redline snapshot` and `redline diff`: capture the metrics of all targets to a file, and
//! compare two captures as a markdown before/after report with the thresholds they cross, the
//! report load-testers otherwise write by hand after each tuning step.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::Op;
use crate::generate::human;
use crate::thresholds::override_name;
use crate::thresholds::{Alert, Levels, Thresholds};

/// Labels of one series (sorted).
pub use crate::promql::Labels;

/// A parsed capture.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Unix time the capture was taken.
    pub taken_at: f64,
    /// Where it came from (config file or URL).
    pub source: String,
    /// `(name, labels) -> value`.
    pub samples: BTreeMap<(String, Labels), f64>,
    /// Names declared as counters (`_total` sample names).
    pub counters: BTreeSet<String>,
}

/// The header line that starts a snapshot file. URL credentials never get into it.
pub fn header(taken_at: f64, source: &str) -> String {
    let source = crate::secret::redact_userinfo(source).replace('\n', " ");
    format!("# redline-snapshot taken_at={taken_at:.3} source={source}\n")
}

fn parse_labels(s: &str) -> Option<Labels> {
    let mut out = Labels::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => return None,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end?;
        out.insert(key.trim().trim_start_matches(',').trim().to_string(), value);
        rest = after[end + 1..].trim_start_matches(',').trim();
    }
    Some(out)
}

impl Snapshot {
    /// Parses a snapshot (Prometheus text format plus the header); malformed lines are skipped.
    pub fn parse(text: &str) -> Snapshot {
        let mut snap = Snapshot::default();
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("# redline-snapshot ") {
                for part in h.split(' ') {
                    if let Some(v) = part.strip_prefix("taken_at=") {
                        snap.taken_at = v.parse().unwrap_or(0.0);
                    } else if let Some(v) = part.strip_prefix("source=") {
                        // Files written by older versions may carry URL credentials.
                        snap.source = crate::secret::redact_userinfo(v);
                    }
                }
                continue;
            }
            if let Some(t) = line.strip_prefix("# TYPE ") {
                if let Some((name, "counter")) = t.rsplit_once(' ') {
                    snap.counters.insert(name.to_string());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => match parse_labels(l.trim_end_matches('}')) {
                    Some(l) => (n, l),
                    None => continue,
                },
                None => (series, Labels::new()),
            };
            snap.samples.insert((name.to_string(), labels), value);
        }
        snap
    }
}

impl crate::promql::Source for Snapshot {
    fn samples(&self) -> Box<dyn Iterator<Item = (&str, &Labels, f64)> + '_> {
        Box::new(self.samples.iter().map(|((n, l), v)| (n.as_str(), l, *v)))
    }

    fn time(&self) -> f64 {
        self.taken_at
    }

    /// When the collector that produced `name` last succeeded for the sample's target, from
    /// `redline_collector_last_success_timestamp_seconds`: a rate between two captures is then
    /// the change between two collections over the time between them, whatever the scrape times.
    fn collected_at(&self, name: &str, labels: &Labels) -> f64 {
        let kind = if name.starts_with("redline_redis_") || name.starts_with("redline_queue_") {
            "redis"
        } else if name.starts_with("redline_pg_") {
            "postgres"
        } else if name.starts_with("redline_host_") || name.starts_with("redline_process_") {
            "host"
        } else {
            return self.taken_at;
        };
        let target = labels.get("target").map(String::as_str).unwrap_or("localhost");
        let key = (
            crate::names::COLLECTOR_LAST_SUCCESS.exposed(),
            Labels::from([
                ("collector".to_string(), kind.to_string()),
                ("target".to_string(), target.to_string()),
            ]),
        );
        self.samples.get(&key).copied().filter(|t| *t > 0.0).unwrap_or(self.taken_at)
    }
}

/// One series of one alert, judged against its levels.
#[derive(Debug, Clone)]
pub struct Judged<'a> {
    /// The alert.
    pub alert: &'a Alert,
    /// The series (the labels the alert would carry, without `alertname`/`severity`).
    pub labels: Labels,
    /// The value of the alert's expression.
    pub value: f64,
    /// The override that owns the series (`queue=payments`), if any.
    pub override_name: Option<String>,
    /// The levels in force for it.
    pub levels: &'a Levels,
    /// `(severity, threshold)` when a level is crossed, critical before warning.
    pub crossed: Option<(&'static str, f64)>,
}

/// Every enabled alert evaluated: the series judged, the alerts with no series, and the alerts
/// whose expression cannot be evaluated from captures (with why).
#[derive(Debug, Default)]
pub struct Judgement<'a> {
    /// Judged series, in catalogue order.
    pub series: Vec<Judged<'a>>,
    /// Alerts whose expression returned nothing (no such target, queue or data).
    pub no_data: Vec<&'a Alert>,
    /// Alerts that could not be evaluated.
    pub failed: Vec<(&'a Alert, String)>,
}

/// Evaluates each enabled alert's expression (the same PromQL its rules use) on `after`, with
/// `before` for rates, and judges every resulting series by its levels or its override's.
pub fn judge<'a>(t: &'a Thresholds, before: Option<&Snapshot>, after: &Snapshot) -> Judgement<'a> {
    let mut out = Judgement::default();
    let before = before.map(|b| b as &dyn crate::promql::Source);
    for a in t.alerts.iter().filter(|a| a.enabled) {
        let result = crate::promql::Expr::parse(&(a.def.expr)(""))
            .and_then(|e| e.eval(&crate::promql::Captures { before, after }));
        let vector = match result {
            Ok(v) => v,
            Err(e) => {
                out.failed.push((a, e.to_string()));
                continue;
            }
        };
        if vector.is_empty() {
            out.no_data.push(a);
        }
        for (labels, value) in vector {
            // An override owns the series it matches, as the rules' `unless` arranges.
            let (override_name, levels) = a
                .overrides
                .iter()
                .find(|(m, _)| m.iter().all(|(k, val)| labels.get(k) == Some(val)))
                .map(|(m, l)| (Some(override_name(m)), l))
                .unwrap_or((None, &a.levels));
            let crossed = crossed(a.def.op, levels, value);
            out.series.push(Judged { alert: a, labels, value, override_name, levels, crossed });
        }
    }
    out
}

/// The level `v` is past, critical first; NaN crosses nothing (as a PromQL comparison).
pub fn crossed(op: Op, levels: &Levels, v: f64) -> Option<(&'static str, f64)> {
    let past = |t: f64| match op {
        Op::Above => v > t,
        Op::Below => v < t,
    };
    match (levels.critical, levels.warning) {
        (Some(c), _) if past(c) => Some(("critical", c)),
        (_, Some(w)) if past(w) => Some(("warning", w)),
        _ => None,
    }
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn series_text(name: &str, l: &Labels) -> String {
    if l.is_empty() {
        name.to_string()
    } else {
        let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{name}{{{}}}", inner.join(","))
    }
}

/// Self-metrics that change on every capture and say nothing about the system under test.
const NOISE: &[&str] = &[
    "redline_collector_duration_seconds",
    "redline_collector_last_success_timestamp_seconds",
    "redline_thresholds_reload_timestamp_seconds",
    "redline_process_cpu_seconds_total",
    "redline_process_resident_memory_bytes",
    "redline_redis_round_trips_total",
];

/// The markdown report comparing `before` with `after`.
pub fn diff(before: &Snapshot, after: &Snapshot, t: &Thresholds, show_all: bool) -> String {
    let dt = after.taken_at - before.taken_at;
    let mut out = format!(
        "# redline diff\n\nBefore: {} at {:.0}; after: {} at {:.0}; {:.1} s apart.\n",
        before.source, before.taken_at, after.source, after.taken_at, dt
    );

    out.push_str("\n## Thresholds crossed\n\n| alert | severity | series | before | after | threshold | new |\n|---|---|---|---|---|---|---|\n");
    let mut rows = 0;
    let now = judge(t, Some(before), after);
    // The same alerts on the earlier capture alone (rates have no earlier value).
    let earlier = judge(t, None, before);
    for j in now.series.iter() {
        let Some((severity, threshold)) = j.crossed else { continue };
        let was = earlier
            .series
            .iter()
            .find(|e| std::ptr::eq(e.alert, j.alert) && e.labels == j.labels)
            .map(|e| e.value);
        let new = was.and_then(|w| crossed(j.alert.def.op, j.levels, w)).is_none();
        let name = match &j.override_name {
            Some(o) => format!("{} ({o})", j.alert.def.alert),
            None => j.alert.def.alert.to_string(),
        };
        let unit = j.alert.def.unit;
        out.push_str(&format!(
            "| {name} | {severity} | `{}` | {} | {} | {} | {} |\n",
            series_text("", &j.labels),
            was.map(|w| human(unit, w)).unwrap_or_else(|| "-".into()),
            human(unit, j.value),
            human(unit, threshold),
            if new { "yes" } else { "" }
        ));
        rows += 1;
    }
    if rows == 0 {
        out.push_str("| none | | | | | | |\n");
    }
    if !now.failed.is_empty() {
        let names: Vec<String> = now.failed.iter().map(|(a, e)| format!("{} ({e})", a.def.alert)).collect();
        out.push_str(&format!("\nNot evaluated: {}.\n", names.join("; ")));
    }

    out.push_str(
        "\n## Changes\n\n| metric | before | after | change | per second |\n|---|---|---|---|---|\n",
    );
    let keys: BTreeSet<&(String, Labels)> = before.samples.keys().chain(after.samples.keys()).collect();
    for key in keys {
        let (name, labels) = key;
        if name.ends_with("_bucket") || (!show_all && NOISE.contains(&name.as_str())) {
            continue;
        }
        let (b, a) = (before.samples.get(key).copied(), after.samples.get(key).copied());
        if !show_all && b == a {
            continue;
        }
        let counter = after.counters.contains(name)
            || name.ends_with("_total")
            || name.ends_with("_count")
            || name.ends_with("_sum");
        let change = match (b, a) {
            (Some(b), Some(a)) => {
                let pct =
                    if b != 0.0 { format!(" ({:+.1}%)", (a - b) / b.abs() * 100.0) } else { String::new() };
                format!("{:+}{pct}", fmt(a - b).parse::<f64>().unwrap_or(a - b))
            }
            (None, Some(_)) => "new".into(),
            (Some(_), None) => "gone".into(),
            (None, None) => continue,
        };
        let rate = match (b, a, counter) {
            (Some(b), Some(a), true) if dt > 0.0 => fmt((a - b) / dt),
            _ => String::new(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {change} | {rate} |\n",
            series_text(name, labels),
            b.map(fmt).unwrap_or_else(|| "-".into()),
            a.map(fmt).unwrap_or_else(|| "-".into()),
        ));
        // For histograms, the mean of what happened in between is what people ask for.
        if let Some(base) = name.strip_suffix("_count") {
            let sum = (format!("{base}_sum"), labels.clone());
            if let (Some(bs), Some(as_), Some(bc), Some(ac)) =
                (before.samples.get(&sum), after.samples.get(&sum), b, a)
            {
                if ac > bc {
                    out.push_str(&format!(
                        "| `{}` (mean between captures) | | {} | | |\n",
                        series_text(base, labels),
                        fmt((as_ - bs) / (ac - bc))
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# redline-snapshot taken_at=1000.000 source=a.yaml\n# TYPE redline_redis_evicted_keys_total counter\nredline_redis_evicted_keys_total{target=\"t\"} 10\nredline_redis_memory_used_bytes{target=\"t\"} 500\nredline_redis_memory_max_bytes{target=\"t\"} 1000\nredline_queue_oldest_ready_timestamp_seconds{target=\"t\",system=\"bullmq\",queue=\"payments\"} 990\nredline_queue_wait_duration_seconds_sum{queue=\"q\"} 10\nredline_queue_wait_duration_seconds_count{queue=\"q\"} 5\n";
    const AFTER: &str = "# redline-snapshot taken_at=1010.000 source=b.yaml\n# TYPE redline_redis_evicted_keys_total counter\nredline_redis_evicted_keys_total{target=\"t\"} 60\nredline_redis_memory_used_bytes{target=\"t\"} 950\nredline_redis_memory_max_bytes{target=\"t\"} 1000\nredline_queue_oldest_ready_timestamp_seconds{target=\"t\",system=\"bullmq\",queue=\"payments\"} 810\nredline_queue_wait_duration_seconds_sum{queue=\"q\"} 40\nredline_queue_wait_duration_seconds_count{queue=\"q\"} 15\nbroken line\n";

    #[test]
    fn parses_labels_with_escapes() {
        let l = parse_labels(r#"a="x\"y",b="1""#).expect("labels");
        assert_eq!(l.get("a").map(String::as_str), Some("x\"y"));
        assert_eq!(Snapshot::parse(AFTER).samples.len(), 6);
    }

    /// A capture of the promtool fixture of an alert at sample `i` (one sample a minute).
    fn fixture_capture(series: &[(String, String)], i: u32) -> Snapshot {
        let mut snap = Snapshot { taken_at: 60.0 * f64::from(i), ..Snapshot::default() };
        for (sel, values) in series {
            let (name, labels) = match sel.split_once('{') {
                Some((n, l)) => (n.to_string(), parse_labels(l.trim_end_matches('}')).expect("labels")),
                None => (sel.clone(), Labels::new()),
            };
            // A series that goes `stale` after its samples is gone from the later capture.
            if i > 0 && values.ends_with(" stale") {
                continue;
            }
            // `A+BxN` (a counter) or `AxN` (a constant).
            let series = values.split_once('x').expect("values").0;
            let v = match series.split_once('+') {
                Some((a, b)) => a.parse::<f64>().expect("a") + b.parse::<f64>().expect("b") * f64::from(i),
                None => series.parse().expect("value"),
            };
            snap.samples.insert((name, labels), v);
        }
        snap
    }

    #[test]
    fn every_catalogue_expression_evaluates_to_what_promtool_sees_on_its_fixture() {
        // The promtool tests prove Prometheus computes `v` from these fixtures; the evaluator
        // must compute the same from two captures a minute apart.
        for def in crate::catalog::ALERTS {
            // A value the expression can give back: `round()` counts whole events, and `count by`
            // (a vanished target) counts series, one here.
            let expr = (def.expr)("");
            let v = if expr.contains("round(") {
                3.0
            } else if expr.starts_with("count by") {
                1.0
            } else {
                0.37
            };
            let fixture = (def.fixture)(v);
            let (before, after) = (fixture_capture(&fixture, 0), fixture_capture(&fixture, 1));
            let expr =
                crate::promql::Expr::parse(&(def.expr)("")).unwrap_or_else(|e| panic!("{}: {e}", def.key));
            let got = expr
                .eval(&crate::promql::Captures { before: Some(&before), after: &after })
                .unwrap_or_else(|e| panic!("{}: {e}", def.key));
            assert_eq!(got.len(), 1, "{}: {got:?}", def.key);
            assert!((got[0].1 - v).abs() < 1e-9, "{}: {} instead of {v}", def.key, got[0].1);
            for (k, want) in def.fixture_labels {
                assert_eq!(got[0].0.get(*k).map(String::as_str), Some(*want), "{}: {:?}", def.key, got[0].0);
            }
        }
    }

    #[test]
    fn report_shows_rates_means_and_crossed_thresholds_with_overrides() {
        let t = Thresholds::parse(include_str!("../rules/thresholds.yaml"), "t").expect("shipped");
        let report = diff(&Snapshot::parse(BEFORE), &Snapshot::parse(AFTER), &t, false);
        assert!(report.contains("10.0 s apart"), "{report}");
        // Evictions: 50 in 10 s -> 5/s, over the critical level 0.
        assert!(report.contains("| RedisEvictingKeys | critical |"), "{report}");
        assert!(
            report.contains(
                "| `redline_redis_evicted_keys_total{target=\"t\"}` | 10 | 60 | +50 (+500.0%) | 5 |"
            ),
            "{report}"
        );
        // Memory 95% of maxmemory: critical, newly crossed (was 50%).
        assert!(
            report.contains("| RedisMemoryNearLimit | critical | `{target=\"t\"}` | 50% | 95% | 90% | yes |"),
            "{report}"
        );
        // The payments queue is judged by its override (critical 120 s), not the default 900 s.
        // Its age is measured from the job's timestamp at capture time: 1010 - 810 = 200 s.
        assert!(report.contains("QueueJobsWaitingTooLong (queue=payments) | critical"), "{report}");
        assert!(report.contains("| 10s | 200s | 2m |"), "{report}");
        assert!(report.contains("(mean between captures) | | 3 |"), "{report}");
        assert!(!report.contains("Not evaluated"), "{report}");
    }
}
