//! Queue service-level objectives from the thresholds file ("99% of payments jobs start within
//! 30 s, over 28 days"): the schema, its validation, the multiwindow burn-rate table, and the
//! histogram buckets the collectors must add so each SLI is an exact bucket, not an interpolation.
//! Rules, rule tests and dashboards are generated from these in `generate::slo`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

use crate::config::queues::System;
use crate::config::{item_line, Config};

/// An SLO as written in the thresholds file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    /// Unique name; the `slo` label of its recording rules and alerts.
    pub name: String,
    /// Queue name (required).
    pub queue: String,
    /// Redis target (`target` label); any when left out.
    pub target: Option<String>,
    /// Queue system; any when left out.
    pub system: Option<System>,
    /// Key prefix (`prefix` label; `""` for none); any when left out.
    pub prefix: Option<String>,
    /// Share of jobs that must be good, strictly between 0 and 1 (e.g. 0.99).
    pub objective: f64,
    /// Good job: waited at most this long between ready and started.
    #[serde(default, with = "humantime_serde")]
    pub wait_under: Option<Duration>,
    /// Good job: ran at most this long between started and finished.
    #[serde(default, with = "humantime_serde")]
    pub processing_under: Option<Duration>,
    /// Good job: finished without failing (`success: true`).
    pub success: Option<bool>,
    /// Period the objective holds over (default 28d).
    #[serde(default, with = "humantime_serde")]
    pub window: Option<Duration>,
    /// Replaces the generated alert summary.
    pub summary: Option<String>,
    /// Replaces the runbook link.
    pub runbook_url: Option<String>,
}

/// What makes a job good.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sli {
    /// Wait (ready -> started) at most this many seconds.
    Wait(f64),
    /// Processing (started -> finished) at most this many seconds.
    Processing(f64),
    /// Finished without failing.
    Success,
}

impl Sli {
    /// What a good job is, for people.
    pub fn describe(self) -> String {
        match self {
            Sli::Wait(s) => {
                format!("start within {}", crate::generate::human(crate::catalog::Unit::Seconds, s))
            }
            Sli::Processing(s) => {
                format!(
                    "finish within {} of starting",
                    crate::generate::human(crate::catalog::Unit::Seconds, s)
                )
            }
            Sli::Success => "succeed".to_string(),
        }
    }
}

/// Label matchers that pick a queue: `queue` always, `target`/`system`/`prefix` when given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueMatch {
    /// `target` label.
    pub target: Option<String>,
    /// `system` label.
    pub system: Option<System>,
    /// `prefix` label (`""`: no prefix label).
    pub prefix: Option<String>,
    /// `queue` label.
    pub queue: String,
}

impl QueueMatch {
    /// Whether the queue `(target, system, prefix, name)` is one this matcher picks.
    pub fn matches(&self, target: &str, system: System, prefix: &str, name: &str) -> bool {
        self.queue == name
            && self.target.as_deref().is_none_or(|t| t == target)
            && self.system.is_none_or(|s| s == system)
            && self.prefix.as_deref().is_none_or(|p| p == prefix)
    }

    /// PromQL label matchers, in label order: `target="a",system="b",prefix="c",queue="d"`.
    pub fn promql(&self) -> String {
        let mut m = Vec::new();
        if let Some(t) = &self.target {
            m.push(format!("target=\"{t}\""));
        }
        if let Some(s) = self.system {
            m.push(format!("system=\"{}\"", s.as_str()));
        }
        if let Some(p) = &self.prefix {
            m.push(format!("prefix=\"{p}\""));
        }
        m.push(format!("queue=\"{}\"", self.queue));
        m.join(",")
    }
}

/// A validated SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Name (`slo` label).
    pub name: String,
    /// Which queue.
    pub matcher: QueueMatch,
    /// Target share of good jobs.
    pub objective: f64,
    /// What a good job is.
    pub sli: Sli,
    /// Period.
    pub window: Duration,
    /// Alert summary.
    pub summary: String,
    /// Runbook link (none when the file sets no `runbook_base_url` and the SLO no link).
    pub runbook_url: Option<String>,
}

impl Slo {
    /// Allowed share of bad jobs, `1 - objective`, rounded to 12 decimals so 0.99 gives 0.01.
    pub fn budget(&self) -> f64 {
        ((1.0 - self.objective) * 1e12).round() / 1e12
    }
}

/// One row of the multiwindow, multi-burn-rate table (Google SRE workbook, chapter 5): alert
/// when the error ratio over both windows exceeds `factor` × the error budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnWindow {
    /// `critical` pages, `warning` opens a ticket.
    pub severity: &'static str,
    /// Burn-rate factor.
    pub factor: f64,
    /// Long window.
    pub long: Duration,
    /// Short window (stops the alert soon after the burning stops).
    pub short: Duration,
}

const fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// The workbook's table: page at 14.4× over 1 h and 5 m, or 6× over 6 h and 30 m; ticket at
/// 1× over 3 d and 6 h.
pub const BURN_WINDOWS: [BurnWindow; 3] = [
    BurnWindow { severity: "critical", factor: 14.4, long: hours(1), short: Duration::from_secs(300) },
    BurnWindow { severity: "critical", factor: 6.0, long: hours(6), short: Duration::from_secs(1800) },
    BurnWindow { severity: "warning", factor: 1.0, long: hours(72), short: hours(6) },
];

/// The longest alert window; an SLO window must be at least this long.
pub const LONGEST_ALERT_WINDOW: Duration = hours(72);

/// Default SLO window.
pub const DEFAULT_WINDOW: Duration = hours(28 * 24);

/// Most distinct SLO thresholds one queue's histogram takes (each adds a series per queue).
pub const MAX_SLO_BUCKETS: usize = 8;

/// Catalogue-style key of the SLO alert (runbook anchor).
pub const RUNBOOK_KEY: &str = "queue_slo_budget_burn";

/// Alert name shared by the page and the ticket (they differ by `severity`).
pub const ALERT: &str = "QueueSLOBudgetBurn";

/// Queue systems whose keys give per-job start/finish times and finished-job counts.
const SLO_SYSTEMS: [System; 3] = [System::Bullmq, System::Bull, System::Rq];

fn plain(v: &str) -> bool {
    !v.contains(['"', '\\', '\n'])
}

/// Validates the file's `slos`, calling `problem(line, message)` for each fault; returns those
/// that are valid. `runbook_base` is the file's `runbook_base_url` (the SLO alert's section is
/// appended as its anchor).
pub fn resolve(
    files: &[SloFile],
    src: &str,
    runbook_base: Option<&str>,
    problem: &mut dyn FnMut(Option<usize>, String),
) -> Vec<Slo> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    // Distinct thresholds per queue name and histogram, to bound the series they add.
    let mut buckets: BTreeMap<(&str, &str), BTreeSet<u64>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let line = item_line(src, "slos", i);
        let mut bad = |m: String| problem(line, format!("slos[{i}] ({}): {m}", f.name));
        let mut ok = true;
        let mut fail = |m: String| {
            ok = false;
            bad(m)
        };
        if f.name.is_empty() || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
            fail("name must be non-empty letters, digits, '-', '_', '.' or ':'".into());
        } else if !names.insert(f.name.clone()) {
            fail("a second SLO with this name".into());
        }
        if f.queue.is_empty() || !plain(&f.queue) {
            fail("queue must be a plain non-empty name".into());
        }
        for (k, v) in [("target", &f.target), ("prefix", &f.prefix)] {
            if v.as_deref().is_some_and(|v| !plain(v) || (k == "target" && v.is_empty())) {
                fail(format!("{k} must be a plain non-empty value"));
            }
        }
        if let Some(s) = f.system.filter(|s| !SLO_SYSTEMS.contains(s)) {
            fail(format!(
                "{} queues record no per-job start and finish times or finished-job counts; SLOs need bullmq, bull or rq",
                s.as_str()
            ));
        }
        if !(f.objective > 0.0 && f.objective < 1.0) {
            fail(format!("objective {} must lie strictly between 0 and 1 (0.99 = 99%)", f.objective));
        } else if 6.0 * (1.0 - f.objective) >= 1.0 {
            fail(format!(
                "objective {} leaves an error budget of {:.0}%: the 6× and 14.4× pages could never fire (they need more than 100% bad jobs); use an objective above 0.834",
                f.objective,
                (1.0 - f.objective) * 100.0
            ));
        }
        let window = f.window.unwrap_or(DEFAULT_WINDOW);
        if window < LONGEST_ALERT_WINDOW {
            fail(format!(
                "window {} is shorter than the longest alert window (3d, the ticket's)",
                humantime::format_duration(window)
            ));
        }
        let set: Vec<Sli> = [
            f.wait_under.map(|d| Sli::Wait(d.as_secs_f64())),
            f.processing_under.map(|d| Sli::Processing(d.as_secs_f64())),
            f.success.filter(|s| *s).map(|_| Sli::Success),
        ]
        .into_iter()
        .flatten()
        .collect();
        let sli = match set.as_slice() {
            [one] => Some(*one),
            _ => {
                fail("set exactly one of wait_under, processing_under or success: true".into());
                None
            }
        };
        if let Some(Sli::Wait(s) | Sli::Processing(s)) = sli {
            if s < 0.001 {
                fail(
                    "the threshold must be at least 1ms (job timestamps have millisecond resolution)".into(),
                );
            }
        }
        if let Some(sli @ (Sli::Wait(s) | Sli::Processing(s))) = sli {
            let kind = if matches!(sli, Sli::Wait(_)) { "wait" } else { "processing" };
            let set = buckets.entry((f.queue.as_str(), kind)).or_default();
            set.insert((s * 1e6).round() as u64);
            if set.len() > MAX_SLO_BUCKETS {
                fail(format!(
                    "queue {} has more than {MAX_SLO_BUCKETS} distinct {kind} thresholds across SLOs (each is a histogram bucket)",
                    f.queue
                ));
            }
        }
        if let (true, Some(sli)) = (ok, sli) {
            let window_text = crate::generate::slo::duration(window);
            out.push(Slo {
                name: f.name.clone(),
                matcher: QueueMatch {
                    target: f.target.clone(),
                    system: f.system,
                    prefix: f.prefix.clone(),
                    queue: f.queue.clone(),
                },
                objective: f.objective,
                sli,
                window,
                summary: f.summary.clone().unwrap_or_else(|| {
                    format!(
                        "{{{{ $labels.system }}}} queue {{{{ $labels.queue }}}} is burning its {} error budget ({}% of jobs {} over {window_text})",
                        f.name,
                        crate::generate::number((f.objective * 1e6).round() / 1e4),
                        sli.describe()
                    )
                }),
                runbook_url: f
                    .runbook_url
                    .clone()
                    .or_else(|| runbook_base.map(|b| format!("{b}#{RUNBOOK_KEY}"))),
            });
        }
    }
    out
}

/// What checking SLOs against a daemon config found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ConfigFindings {
    /// Faults: `redline check` fails on them.
    pub problems: Vec<String>,
    /// Worth saying, not wrong (e.g. this config collects no queue the SLO could name:
    /// the rules may be meant for another redline).
    pub notes: Vec<String>,
}

/// What only the daemon config can reveal: an SLO whose queue the config's explicit queue
/// lists leave out (knowable only when no source discovers), one that picks several configured
/// queues or a system without job times, and durations the collector is told not to read.
pub fn check_against_config(slos: &[Slo], config: &Config) -> ConfigFindings {
    let mut out = ConfigFindings::default();
    for s in slos {
        let m = &s.matcher;
        // BullMQ times jobs from its events stream; Bull and RQ read finished jobs' hashes.
        let reads_hashes = m.system.is_none_or(|x| matches!(x, System::Bull | System::Rq));
        if config.limits.max_finished_samples == 0 && !matches!(s.sli, Sli::Success) && reads_hashes {
            out.problems.push(format!(
                "SLO {}: limits.max_finished_samples is 0, so no job durations are read and its histogram stays empty",
                s.name
            ));
        }
        let (mut explicit, mut candidates, mut discoverable) = (Vec::new(), 0, false);
        for t in &config.redis {
            let target = t.name.clone().unwrap_or_else(|| t.url.host_port());
            for src in &t.queues {
                let (sys, prefix) = (src.system, src.prefix());
                if m.target.as_deref().is_some_and(|x| x != target)
                    || m.system.is_some_and(|x| x != sys)
                    || m.prefix.as_deref().is_some_and(|x| x != prefix)
                {
                    continue;
                }
                let may_hold = src.names.contains(&m.queue) || src.discovers();
                if !SLO_SYSTEMS.contains(&sys) {
                    if may_hold {
                        out.problems.push(format!(
                            "SLO {}: it can pick {} queue {} on {target}, whose keys give no per-job times; add `system:` (bullmq, bull or rq)",
                            s.name,
                            sys.as_str(),
                            m.queue
                        ));
                    }
                    continue;
                }
                candidates += 1;
                if src.names.contains(&m.queue) {
                    explicit.push(format!("{target}/{}/{prefix}/{}", sys.as_str(), m.queue));
                }
                discoverable |= src.discovers();
            }
        }
        explicit.sort();
        explicit.dedup();
        if candidates == 0 {
            out.notes.push(format!(
                "SLO {}: this config collects no bullmq, bull or rq queue it could name ({}); its rules get no data from this redline",
                s.name,
                m.promql()
            ));
        } else if explicit.is_empty() && !discoverable {
            out.problems.push(format!(
                "SLO {}: queue {} is in none of the configured queue lists ({}), and nothing is discovered there",
                s.name,
                m.queue,
                m.promql()
            ));
        }
        if explicit.len() > 1 {
            out.problems.push(format!(
                "SLO {}: picks {} configured queues ({}); add target, system or prefix so it names one queue",
                s.name,
                explicit.len(),
                explicit.join(", ")
            ));
        }
    }
    out
}

/// Extra histogram bounds (seconds) for the queues SLOs name, derived from the thresholds file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketPlan {
    entries: Vec<(QueueMatch, Sli)>,
}

/// What one queue needs from its histograms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueBuckets {
    /// An SLO names this queue: its histograms are exposed whatever the histogram limits say.
    pub named: bool,
    /// Extra wait-time bounds, sorted.
    pub wait: Vec<f64>,
    /// Extra processing-time bounds, sorted.
    pub processing: Vec<f64>,
}

impl BucketPlan {
    /// The plan for these SLOs.
    pub fn from_slos(slos: &[Slo]) -> Self {
        BucketPlan { entries: slos.iter().map(|s| (s.matcher.clone(), s.sli)).collect() }
    }

    /// Whether no SLO names any queue.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Needs of the queue `(target, system, prefix, name)`.
    pub fn for_queue(&self, target: &str, system: System, prefix: &str, name: &str) -> QueueBuckets {
        let mut out = QueueBuckets::default();
        for (_, sli) in self.entries.iter().filter(|(m, _)| m.matches(target, system, prefix, name)) {
            out.named = true;
            match sli {
                Sli::Wait(s) => out.wait.push(*s),
                Sli::Processing(s) => out.processing.push(*s),
                Sli::Success => {}
            }
        }
        for v in [&mut out.wait, &mut out.processing] {
            v.sort_by(f64::total_cmp);
            v.dedup();
        }
        out
    }
}

/// The current [`BucketPlan`], shared by the reloader (writes it on every good thresholds
/// load) and the queue collectors (read it each collection), so a reload applies without a
/// collector restart. Its `Debug` output is constant: a config comparison ignores it.
#[derive(Clone, Default)]
pub struct SharedBuckets(Arc<RwLock<Arc<BucketPlan>>>);

impl std::fmt::Debug for SharedBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedBuckets")
    }
}

/// Two handles are equal whatever they hold: a config comparison (which decides whether a
/// collector is rebuilt on reload) must ignore the plan, which reaches collectors by itself.
impl PartialEq for SharedBuckets {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl SharedBuckets {
    /// Publishes a new plan.
    pub fn set(&self, plan: BucketPlan) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(plan);
    }

    /// The plan in force.
    pub fn get(&self) -> Arc<BucketPlan> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> (Vec<Slo>, Vec<(Option<usize>, String)>) {
        let file: Vec<SloFile> = serde_yaml_ng::from_str::<BTreeMap<String, Vec<SloFile>>>(src)
            .expect("yaml")
            .remove("slos")
            .unwrap_or_default();
        let mut problems = Vec::new();
        let slos = resolve(&file, src, Some("https://x/runbooks.md"), &mut |l, m| problems.push((l, m)));
        (slos, problems)
    }

    #[test]
    fn a_valid_slo_resolves_with_defaults() {
        let (s, p) = parse("slos:\n  - name: payments-start\n    queue: payments\n    objective: 0.99\n    wait_under: 30s\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s[0].sli, Sli::Wait(30.0));
        assert_eq!(s[0].window, DEFAULT_WINDOW);
        assert_eq!(s[0].budget(), 0.01);
        assert_eq!(s[0].runbook_url.as_deref(), Some("https://x/runbooks.md#queue_slo_budget_burn"));
        assert_eq!(s[0].matcher.promql(), "queue=\"payments\"");
    }

    #[test]
    fn every_bad_slo_is_reported_on_its_line() {
        let src = "slos:\n  - name: a\n    queue: q\n    objective: 1\n    wait_under: 1s\n  - name: a\n    queue: q\n    objective: 0.99\n    wait_under: 1s\n    success: true\n  - name: c\n    queue: q\n    system: sidekiq\n    objective: 0.8\n    processing_under: 1s\n    window: 1d\n";
        let (s, p) = parse(src);
        assert!(s.is_empty(), "{s:?}");
        let text: Vec<String> = p.iter().map(|(l, m)| format!("{l:?} {m}")).collect();
        assert!(
            text.iter().any(|t| t.starts_with("Some(2)") && t.contains("strictly between 0 and 1")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.starts_with("Some(6)") && t.contains("second SLO")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("Some(6)") && t.contains("exactly one")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("Some(11)") && t.contains("sidekiq")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("could never fire")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("shorter than the longest alert window")), "{text:?}");
    }

    #[test]
    fn bucket_plan_matches_whole_queue_identity() {
        let (s, p) = parse("slos:\n  - name: a\n    queue: q\n    target: main\n    prefix: '{pay}'\n    objective: 0.99\n    wait_under: 2s\n  - name: b\n    queue: q\n    objective: 0.99\n    processing_under: 500ms\n  - name: c\n    queue: q\n    objective: 0.999\n    success: true\n");
        assert!(p.is_empty(), "{p:?}");
        let plan = BucketPlan::from_slos(&s);
        let b = plan.for_queue("main", System::Bullmq, "{pay}", "q");
        assert_eq!((b.named, b.wait.as_slice(), b.processing.as_slice()), (true, &[2.0][..], &[0.5][..]));
        let other_prefix = plan.for_queue("main", System::Bullmq, "bull", "q");
        assert_eq!(other_prefix.wait, Vec::<f64>::new());
        assert!(other_prefix.named, "b and c name every queue q");
        assert!(!plan.for_queue("main", System::Bullmq, "bull", "r").named);
    }

    #[test]
    fn config_reveals_missing_ambiguous_and_unusable_queues() {
        let config = Config::parse(
            "host:\n  enabled: false\nredis:\n  - name: a\n    url: redis://127.0.0.1:1\n    queues:\n      - system: bullmq\n        names: [payments, emails]\n      - system: sidekiq\n  - name: b\n    url: redis://127.0.0.1:2\n    queues:\n      - system: bull\n        names: [payments]\n",
            "c.yaml",
        )
        .expect("config");
        let (s, p) = parse("slos:\n  - name: both\n    queue: payments\n    objective: 0.99\n    wait_under: 1s\n  - name: one\n    queue: payments\n    target: a\n    system: bullmq\n    objective: 0.99\n    wait_under: 1s\n  - name: typo\n    queue: paymnets\n    system: bullmq\n    objective: 0.99\n    success: true\n  - name: elsewhere\n    queue: x\n    system: rq\n    objective: 0.99\n    success: true\n");
        assert!(p.is_empty(), "{p:?}");
        let f = check_against_config(&s, &config);
        let all = format!("{f:?}");
        assert!(f.problems.iter().any(|m| m.starts_with("SLO both: it can pick sidekiq")), "{all}");
        assert!(
            f.problems.iter().any(|m| m.starts_with(
                "SLO both: picks 2 configured queues (a/bullmq/bull/payments, b/bull/bull/payments)"
            )),
            "{all}"
        );
        assert!(f.problems.iter().any(|m| m.starts_with("SLO typo: queue paymnets is in none")), "{all}");
        assert!(!all.contains("SLO one:"), "{all}");
        assert_eq!(f.notes.len(), 1, "{all}");
        assert!(f.notes[0].starts_with("SLO elsewhere: this config collects no"), "{all}");
    }

    #[test]
    fn no_finished_samples_starves_bull_and_rq_slos_not_bullmq_ones() {
        let config = Config::parse(
            "host:\n  enabled: false\nlimits:\n  max_finished_samples: 0\nredis:\n  - url: redis://127.0.0.1:1\n    queues:\n      - system: bullmq\n        names: [pay]\n      - system: rq\n        names: [mail]\n",
            "c.yaml",
        )
        .expect("config");
        let (s, p) = parse("slos:\n  - name: pay\n    queue: pay\n    system: bullmq\n    objective: 0.99\n    wait_under: 1s\n  - name: mail\n    queue: mail\n    system: rq\n    objective: 0.99\n    wait_under: 1s\n");
        assert!(p.is_empty(), "{p:?}");
        let f = check_against_config(&s, &config);
        let all = format!("{f:?}");
        assert!(
            f.problems.iter().any(|m| m.starts_with("SLO mail: limits.max_finished_samples is 0")),
            "{all}"
        );
        assert!(!all.contains("SLO pay:"), "{all}");
    }

    #[test]
    fn shared_plan_debug_is_constant_and_updates_are_seen() {
        let a = SharedBuckets::default();
        let b = a.clone();
        a.set(BucketPlan {
            entries: vec![(
                QueueMatch { target: None, system: None, prefix: None, queue: "q".into() },
                Sli::Success,
            )],
        });
        assert!(!b.get().is_empty());
        assert_eq!(format!("{a:?}"), format!("{:?}", SharedBuckets::default()));
    }
}
