//! `redline snapshot` and `redline diff`: capture the metrics of all targets to a file, and
//! compare two captures as a markdown before/after report with the thresholds they cross, the
//! report load-testers otherwise write by hand after each tuning step.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::Op;
use crate::generate::human;
use crate::thresholds::override_name;
use crate::thresholds::{Levels, Thresholds};

/// Labels of one series (sorted).
pub type Labels = BTreeMap<String, String>;

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

    fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a Labels, f64)> + 'a {
        self.samples.iter().filter(move |((n, _), _)| n == name).map(|((_, l), v)| (l, *v))
    }
}

/// A series selector: name and `=` / `!=` matchers.
#[derive(Debug, Clone, PartialEq)]
struct Sel {
    name: String,
    matchers: Vec<(String, bool, String)>,
}

impl Sel {
    fn parse(s: &str) -> Option<Sel> {
        let s = s.trim();
        let (name, rest) = match s.split_once('{') {
            Some((n, r)) => (n, r.strip_suffix('}')?),
            None => (s, ""),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let mut matchers = Vec::new();
        for m in rest.split(',').filter(|m| !m.trim().is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = m.split_once("!=") {
                (k, false, v)
            } else {
                let (k, v) = m.split_once('=')?;
                (k, true, v)
            };
            if k.contains('~') || v.starts_with('~') {
                return None;
            }
            matchers.push((k.trim().to_string(), eq, v.trim().trim_matches('"').to_string()));
        }
        Some(Sel { name: name.to_string(), matchers })
    }

    fn matches(&self, l: &Labels) -> bool {
        self.matchers.iter().all(|(k, eq, v)| (l.get(k).map(String::as_str).unwrap_or("") == v) == *eq)
    }
}

/// The PromQL shapes a snapshot can evaluate.
#[derive(Debug, Clone, PartialEq)]
enum Form {
    Plain(Sel),
    Rate(Sel),
    Ratio(Sel, Sel),
    OneMinusRatio(Sel, Sel),
    /// `time() - timestamp`: an age measured at the capture time.
    Since(Sel),
}

fn parse_form(expr: &str) -> Option<Form> {
    let e = expr.trim();
    if let Some(sel) = e.strip_prefix("time() - ") {
        return Sel::parse(sel).map(Form::Since);
    }
    if let Some(inner) = e.strip_prefix("rate(").and_then(|x| x.strip_suffix(')')) {
        let sel = inner.rsplit_once('[').map(|(s, _)| s).unwrap_or(inner);
        return Sel::parse(sel).map(Form::Rate);
    }
    let ratio = |s: &str| -> Option<(Sel, Sel)> {
        let (a, b) = s.split_once(" / (")?;
        let b = b.strip_suffix(" > 0)")?;
        Some((Sel::parse(a)?, Sel::parse(b)?))
    };
    if let Some(rest) = e.strip_prefix("1 - ") {
        return ratio(rest).map(|(a, b)| Form::OneMinusRatio(a, b));
    }
    if let Some((a, b)) = ratio(e) {
        return Some(Form::Ratio(a, b));
    }
    Sel::parse(e).map(Form::Plain)
}

fn eval(form: &Form, before: &Snapshot, after: &Snapshot) -> Vec<(Labels, f64)> {
    let dt = (after.taken_at - before.taken_at).max(1e-9);
    let pick = |s: &Snapshot, sel: &Sel| -> Vec<(Labels, f64)> {
        s.series(&sel.name).filter(|(l, _)| sel.matches(l)).map(|(l, v)| (l.clone(), v)).collect()
    };
    match form {
        Form::Plain(sel) => pick(after, sel),
        Form::Since(sel) => pick(after, sel).into_iter().map(|(l, ts)| (l, after.taken_at - ts)).collect(),
        Form::Rate(sel) => pick(after, sel)
            .into_iter()
            .filter_map(|(l, v)| {
                let b = before.samples.get(&(sel.name.clone(), l.clone()))?;
                Some((l, ((v - b) / dt).max(0.0)))
            })
            .collect(),
        Form::Ratio(a, b) | Form::OneMinusRatio(a, b) => {
            let denominators: BTreeMap<Labels, f64> = pick(after, b).into_iter().collect();
            pick(after, a)
                .into_iter()
                .filter_map(|(l, v)| {
                    let d = *denominators.get(&l).filter(|d| **d > 0.0)?;
                    let r = v / d;
                    Some((l, if matches!(form, Form::OneMinusRatio(..)) { 1.0 - r } else { r }))
                })
                .collect()
        }
    }
}

fn crossed(op: Op, levels: &Levels, v: f64) -> Option<(&'static str, f64)> {
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
    let mut skipped = Vec::new();
    for a in t.alerts.iter().filter(|a| a.enabled) {
        let Some(form) = parse_form(&(a.def.expr)("")) else {
            skipped.push(a.def.alert);
            continue;
        };
        let earlier: BTreeMap<Labels, f64> = match &form {
            Form::Rate(_) => BTreeMap::new(),
            f => eval(f, &Snapshot::default(), before).into_iter().collect(),
        };
        for (labels, v) in eval(&form, before, after) {
            // An override owns the series it matches.
            let levels = a
                .overrides
                .iter()
                .find(|(m, _)| m.iter().all(|(k, val)| labels.get(k) == Some(val)))
                .map(|(m, l)| (Some(override_name(m)), l))
                .unwrap_or((None, &a.levels));
            let Some((severity, threshold)) = crossed(a.def.op, levels.1, v) else { continue };
            let was = earlier.get(&labels).copied();
            let new = was.and_then(|w| crossed(a.def.op, levels.1, w)).is_none();
            let name = match &levels.0 {
                Some(o) => format!("{} ({o})", a.def.alert),
                None => a.def.alert.to_string(),
            };
            out.push_str(&format!(
                "| {name} | {severity} | `{}` | {} | {} | {} | {} |\n",
                series_text("", &labels),
                was.map(|w| human(a.def.unit, w)).unwrap_or_else(|| "-".into()),
                human(a.def.unit, v),
                human(a.def.unit, threshold),
                if new { "yes" } else { "" }
            ));
            rows += 1;
        }
    }
    if rows == 0 {
        out.push_str("| none | | | | | | |\n");
    }
    if !skipped.is_empty() {
        out.push_str(&format!(
            "\nNot evaluated from snapshots (aggregations or windows only Prometheus can compute): {}.\n",
            skipped.join(", ")
        ));
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

    #[test]
    fn forms_cover_the_simple_alerts() {
        assert!(matches!(parse_form("rate(redline_x_total[5m])"), Some(Form::Rate(_))));
        assert!(matches!(parse_form("a{t=\"1\"} / (b > 0)"), Some(Form::Ratio(..))));
        assert!(matches!(parse_form("1 - a / (b > 0)"), Some(Form::OneMinusRatio(..))));
        assert!(matches!(parse_form("time() - a{q=\"p\"}"), Some(Form::Since(_))));
        assert_eq!(parse_form("sum by (target) (x)"), None);
        assert_eq!(parse_form("x{a=~\"b\"}"), None);
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
        assert!(report.contains("Not evaluated"), "{report}");
    }
}
