//! The thresholds file: the single source of truth for what pages on-call and what the graphs
//! draw. Each alert in the catalogue (`catalog`) gets warning/critical levels, a `for`
//! duration and optional text here, plus per-target / per-queue overrides.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{self, AlertDef, Op};
use crate::config::{item_lines, line_of, parse_yaml, ConfigError, Problem};

/// Most overrides one file may hold: each one adds rules, rule tests and an exclusion to its
/// alert's default rule, and thousands make rule files Prometheus evaluates slowly.
pub const MAX_OVERRIDES: usize = 1000;

/// Levels for one alert (file form).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LevelsFile {
    /// Warning threshold.
    pub warning: Option<f64>,
    /// Critical threshold.
    pub critical: Option<f64>,
    /// How long the condition must hold (e.g. `5m`).
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub for_: Option<Duration>,
    /// Replaces the catalogue's summary.
    pub summary: Option<String>,
    /// Replaces the runbook link.
    pub runbook_url: Option<String>,
    /// `false` leaves the alert out of the rules (dashboards still show the metric).
    pub enabled: Option<bool>,
}

/// An override: stricter or looser levels for some targets or queues.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OverrideFile {
    /// Catalogue key of the alert.
    pub alert: String,
    /// Label values to match: `target`, and for queue alerts `system` and `queue`.
    pub r#match: BTreeMap<String, String>,
    /// Levels for the matched series.
    #[serde(flatten)]
    pub levels: LevelsFile,
}

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsFile {
    /// URL of the runbook document (docs/runbooks.md as you host it); each rule links to it
    /// with `#<key>`. Unset: rules carry no `runbook_url` rather than a link nobody can open.
    pub runbook_base_url: Option<String>,
    /// Levels per catalogue key; keys left out take the catalogue defaults.
    #[serde(default)]
    pub alerts: BTreeMap<String, LevelsFile>,
    /// Overrides, in file order.
    #[serde(default)]
    pub overrides: Vec<OverrideFile>,
    /// Queue SLOs (see `slo`).
    #[serde(default)]
    pub slos: Vec<crate::slo::SloFile>,
}

/// Resolved levels.
#[derive(Debug, Clone, PartialEq)]
pub struct Levels {
    /// Warning threshold.
    pub warning: Option<f64>,
    /// Critical threshold.
    pub critical: Option<f64>,
    /// `for` duration.
    pub for_: Duration,
}

/// One alert with everything resolved.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Catalogue entry.
    pub def: &'static AlertDef,
    /// Levels for series no override matches.
    pub levels: Levels,
    /// Summary text.
    pub summary: String,
    /// Runbook link: the alert's own `runbook_url`, else the base URL and `#<key>`, else none.
    pub runbook_url: Option<String>,
    /// Whether rules are generated.
    pub enabled: bool,
    /// Overrides: label matches and their levels.
    pub overrides: Vec<(BTreeMap<String, String>, Levels)>,
}

/// The validated thresholds: one [`Alert`] per catalogue entry, in catalogue order.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// Alerts.
    pub alerts: Vec<Alert>,
    /// Queue SLOs, in file order.
    pub slos: Vec<crate::slo::Slo>,
}

impl Thresholds {
    /// The catalogue defaults alone.
    pub fn defaults() -> Thresholds {
        Thresholds::resolve(ThresholdsFile::default(), "", "defaults")
            .unwrap_or_else(|_| Thresholds { alerts: Vec::new(), slos: Vec::new() })
    }

    /// Reads and validates a thresholds file.
    pub fn load(path: &Path) -> Result<Thresholds, ConfigError> {
        let shown = path.display().to_string();
        let src = std::fs::read_to_string(path)
            .map_err(|cause| ConfigError::Read { path: shown.clone(), cause })?;
        Thresholds::parse(&src, &shown)
    }

    /// Parses and validates thresholds text, reporting every problem with its line. An empty
    /// file is an error: read on a reload, it would silently reset every level and drop every
    /// override (`{}` is the explicit "catalogue defaults").
    pub fn parse(src: &str, path: &str) -> Result<Thresholds, ConfigError> {
        let file: ThresholdsFile = parse_yaml(
            src,
            path,
            "it would reset every level to the catalogue defaults and drop every override; write `{}` if that is meant",
        )?;
        Thresholds::resolve(file, src, path)
    }

    fn resolve(file: ThresholdsFile, src: &str, path: &str) -> Result<Thresholds, ConfigError> {
        let invalid = |problems| ConfigError::Invalid { path: path.to_string(), problems };
        let mut problems = Vec::new();
        let mut problem =
            |line: Option<usize>, message: String| problems.push(Problem { line, column: None, message });
        for key in file.alerts.keys() {
            if catalog::find(key).is_none() {
                problem(
                    line_of(src, &format!("{key}:")),
                    format!("alerts.{key}: unknown alert; known: {}", catalog::keys()),
                );
            }
        }
        if file.overrides.len() > MAX_OVERRIDES {
            problem(
                line_of(src, "overrides:"),
                format!("{} overrides; at most {MAX_OVERRIDES} are accepted", file.overrides.len()),
            );
        }
        let runbook_base = file.runbook_base_url.as_deref().map(|b| b.trim_end_matches('#'));
        if let Some(b) = runbook_base.filter(|b| !is_link(b) || b.contains('#')) {
            problem(
                line_of(src, "runbook_base_url:"),
                format!("runbook_base_url: {b:?} must be an http(s) URL without a #fragment"),
            );
        }
        let mut alerts = Vec::new();
        for def in catalog::ALERTS {
            let f = file.alerts.get(def.key).cloned().unwrap_or_default();
            let line = line_of(src, &format!("{}:", def.key));
            let levels = Levels {
                warning: if f.warning.is_some() || f.critical.is_some() {
                    f.warning
                } else {
                    def.default.warning
                },
                critical: if f.warning.is_some() || f.critical.is_some() {
                    f.critical
                } else {
                    def.default.critical
                },
                for_: f.for_.unwrap_or(def.default.for_),
            };
            for m in check_levels(def, &levels) {
                problem(line, format!("alerts.{}: {m}", def.key));
            }
            // Prometheus parses these as Go templates: a broken one fails the whole rule file.
            for (field, text) in [("summary", &f.summary), ("runbook_url", &f.runbook_url)] {
                if let Some(Err(e)) = text.as_deref().map(crate::template::validate) {
                    problem(line, format!("alerts.{}.{field}: {e}", def.key));
                }
            }
            alerts.push(Alert {
                def,
                summary: f.summary.clone().unwrap_or_else(|| def.summary.to_string()),
                runbook_url: f
                    .runbook_url
                    .clone()
                    .or_else(|| runbook_base.map(|b| format!("{b}#{}", def.key))),
                enabled: f.enabled.unwrap_or(true),
                levels,
                overrides: Vec::new(),
            });
        }
        let override_lines = item_lines(src, "overrides");
        let mut seen_matches: HashSet<(&str, &BTreeMap<String, String>)> = HashSet::new();
        for (i, o) in file.overrides.iter().enumerate().take(MAX_OVERRIDES) {
            let line = override_lines.get(i).copied();
            let Some(alert) = alerts.iter_mut().find(|a| a.def.key == o.alert) else {
                problem(
                    line,
                    format!("overrides[{i}]: unknown alert {:?}; known: {}", o.alert, catalog::keys()),
                );
                continue;
            };
            let allowed = alert.def.scope.override_labels();
            if o.r#match.is_empty() {
                problem(line, format!("overrides[{i}]: match needs at least one of {allowed:?}"));
            }
            for k in o.r#match.keys() {
                if !allowed.contains(&k.as_str()) {
                    problem(line, format!("overrides[{i}]: {} can match on {allowed:?}, not {k:?}", o.alert));
                }
            }
            for (k, v) in &o.r#match {
                if v.is_empty() || v.contains(['"', '\\', '\n']) {
                    problem(line, format!("overrides[{i}]: match.{k} must be a plain non-empty value"));
                }
            }
            if !seen_matches.insert((o.alert.as_str(), &o.r#match)) {
                problem(line, format!("overrides[{i}]: a second override for the same {} match", o.alert));
            }
            let levels = Levels {
                warning: if o.levels.warning.is_some() || o.levels.critical.is_some() {
                    o.levels.warning
                } else {
                    alert.levels.warning
                },
                critical: if o.levels.warning.is_some() || o.levels.critical.is_some() {
                    o.levels.critical
                } else {
                    alert.levels.critical
                },
                for_: o.levels.for_.unwrap_or(alert.levels.for_),
            };
            if o.levels.summary.is_some() || o.levels.runbook_url.is_some() || o.levels.enabled.is_some() {
                problem(line, format!("overrides[{i}]: only warning, critical and for can be overridden"));
            }
            for m in check_levels(alert.def, &levels) {
                problem(line, format!("overrides[{i}]: {m}"));
            }
            alert.overrides.push((o.r#match.clone(), levels));
        }
        let slos = crate::slo::resolve(&file.slos, src, runbook_base, &mut problem);
        if problems.is_empty() {
            Ok(Thresholds { alerts, slos })
        } else {
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(invalid(problems))
        }
    }

    /// The alert with this catalogue key.
    pub fn get(&self, key: &str) -> Option<&Alert> {
        self.alerts.iter().find(|a| a.def.key == key)
    }
}

/// Value of the `override` label that names an override by its match: `queue=payments,target=main`.
/// Rules, rule tests, the live `redline_threshold` series and `redline diff` all use it.
pub fn override_name(m: &BTreeMap<String, String>) -> String {
    m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Whether a runbook link can be opened from a pager or a browser.
fn is_link(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Problems with one set of levels.
fn check_levels(def: &AlertDef, l: &Levels) -> Vec<String> {
    let mut out = Vec::new();
    if l.warning.is_none() && l.critical.is_none() {
        out.push("set warning, critical or both".to_string());
    }
    for v in [l.warning, l.critical].into_iter().flatten() {
        if !v.is_finite() {
            out.push("thresholds must be finite numbers".into());
        } else if def.unit.is_ratio() && !(0.0..=1.0).contains(&v) {
            out.push(format!("{v} is not a ratio between 0 and 1"));
        } else if v < 0.0 {
            out.push(format!("{v} is negative"));
        }
    }
    if let Some(max) = catalog::max_for(def) {
        if l.for_ > max {
            out.push(format!("for must be at most {} for this alert", humantime::format_duration(max)));
        }
    }
    if let (Some(w), Some(c)) = (l.warning, l.critical) {
        let ordered = match def.op {
            Op::Above => w < c,
            Op::Below => w > c,
        };
        if !ordered {
            let word = if def.op == Op::Above { "below" } else { "above" };
            out.push(format!(
                "warning ({w}) must be {word} critical ({c}): this alert fires when the value is {}",
                def.op.word()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(src: &str) -> Vec<Problem> {
        match Thresholds::parse(src, "t.yaml") {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn defaults_cover_every_catalogue_entry() {
        let t = Thresholds::defaults();
        assert_eq!(t.alerts.len(), catalog::ALERTS.len());
        assert!(t.alerts.iter().all(|a| a.levels.warning.is_some() || a.levels.critical.is_some()));
    }

    #[test]
    fn shipped_file_is_valid() {
        let src = include_str!("../rules/thresholds.yaml");
        Thresholds::parse(src, "rules/thresholds.yaml").expect("shipped thresholds are valid");
    }

    #[test]
    fn unknown_alert_and_key_report_lines() {
        let p = problems(
            "alerts:\n  redis_memory_near_limit:\n    warning: 0.8\n  redis_memroy:\n    warning: 1\n",
        );
        assert_eq!(p[0].line, Some(4), "{p:?}");
        let p = problems("alerts:\n  redis_memory_near_limit:\n    warn: 0.8\n");
        assert_eq!(p[0].line, Some(3), "{p:?}");
        assert!(p[0].message.contains("unknown field `warn`"), "{p:?}");
    }

    #[test]
    fn inverted_levels_bad_ratios_and_bad_overrides_are_all_reported() {
        let src = "alerts:\n  redis_memory_near_limit:\n    warning: 0.95\n    critical: 0.9\n  host_memory_usage:\n    warning: 1.5\noverrides:\n  - alert: queue_oldest_ready_age\n    match: {db: x}\n    warning: 10\n  - alert: nope\n    match: {queue: a}\n";
        let p = problems(src);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].message.contains("must be below critical"), "{p:?}");
        assert_eq!(p[0].line, Some(2));
        assert!(p[1].message.contains("not a ratio"), "{p:?}");
        assert_eq!(p[2].line, Some(8));
        assert!(p[2].message.contains("not \"db\""), "{p:?}");
        assert_eq!(p[3].line, Some(11));
    }

    #[test]
    fn empty_file_is_refused_and_braces_mean_defaults() {
        for empty in ["", "# nothing\n", "~\n"] {
            let p = problems(empty);
            assert!(p[0].message.contains("the file is empty"), "{p:?}");
        }
        let t = Thresholds::parse("{}\n", "t.yaml").expect("{} is the defaults");
        assert_eq!(t.alerts.len(), catalog::ALERTS.len());
    }

    #[test]
    fn broken_templates_are_refused_as_promtool_would() {
        let p = problems("alerts:\n  queue_backlog:\n    summary: \"backlog {{ .Foo \"\n");
        assert_eq!(p[0].line, Some(2), "{p:?}");
        assert!(p[0].message.contains("alerts.queue_backlog.summary: template error"), "{p:?}");
        let p = problems("alerts:\n  queue_backlog:\n    runbook_url: \"https://x/{{ nope }}\"\n");
        assert!(p[0].message.contains("function \"nope\" not defined"), "{p:?}");
        Thresholds::parse(
            "alerts:\n  queue_backlog:\n    summary: \"{{ $labels.queue }} at {{ $value | humanize }}\"\n",
            "t.yaml",
        )
        .expect("good template");
    }

    #[test]
    fn catalogue_texts_are_valid_templates() {
        for a in catalog::ALERTS {
            crate::template::validate(a.summary).unwrap_or_else(|e| panic!("{}: {e}", a.key));
            let d = a.description.replace("{value}", a.unit.template()).replace("{threshold}", "1");
            crate::template::validate(&d).unwrap_or_else(|e| panic!("{}: {e}", a.key));
        }
    }

    #[test]
    fn too_many_overrides_are_refused_and_many_parse_quickly() {
        let many = |n: usize| {
            let mut s = String::from("overrides:\n");
            for i in 0..n {
                s.push_str(&format!(
                    "  - alert: queue_backlog\n    match: {{queue: q{i}}}\n    warning: 5\n"
                ));
            }
            s
        };
        let p = problems(&many(MAX_OVERRIDES + 1));
        assert!(p.iter().any(|p| p.message.contains("at most")), "{p:?}");
        let t = Thresholds::parse(&many(MAX_OVERRIDES), "t.yaml").expect("at the limit");
        assert_eq!(t.get("queue_backlog").map(|a| a.overrides.len()), Some(MAX_OVERRIDES));
    }

    #[test]
    fn overrides_inherit_what_they_do_not_set() {
        let t = Thresholds::parse(
            "overrides:\n  - alert: queue_oldest_ready_age\n    match: {queue: payments}\n    critical: 60\n",
            "t.yaml",
        )
        .expect("valid");
        let a = t.get("queue_oldest_ready_age").expect("present");
        let (m, l) = &a.overrides[0];
        assert_eq!(m.get("queue").map(String::as_str), Some("payments"));
        assert_eq!(l.critical, Some(60.0));
        assert_eq!(l.warning, None, "setting a level replaces both levels");
        assert_eq!(l.for_, a.levels.for_);
    }
}
