//! docs/runbooks.md: one section per alert (anchor = thresholds key), with its meaning, the
//! levels in force and the PromQL it evaluates, so `runbook_url` always lands somewhere useful;
//! and the check `redline generate` runs that every alert's link lands on a section that exists.

use super::{human, prom_duration, GENERATED};
use crate::thresholds::Thresholds;

/// The runbook document.
pub fn runbooks(t: &Thresholds) -> String {
    let mut out = format!("<!-- {GENERATED} -->\n\n# redline runbooks\n\nOne section per alert. With `runbook_base_url` set in the thresholds file to where this document is hosted, each rule's `runbook_url` links to its section.\n");
    for a in &t.alerts {
        let def = a.def;
        let level = |v: Option<f64>| v.map(|v| human(def.unit, v)).unwrap_or_else(|| "off".into());
        out.push_str(&format!(
            "\n<a id=\"{key}\"></a>\n## {key}\n\n**Alert** `{alert}` ({area}){disabled}. Fires when the value is {op}: warning {w}, critical {c}, held for {for_}.\n\n{desc}\n\n```promql\n{expr}\n```\n",
            key = def.key,
            alert = def.alert,
            area = def.area.name(),
            disabled = if a.enabled { "" } else { ", **disabled**" },
            op = def.op.word(),
            w = level(a.levels.warning),
            c = level(a.levels.critical),
            for_ = prom_duration(a.levels.for_),
            desc = def.description.replace("{value}", "the value").replace("{threshold}", "the threshold").replace("{{ $labels.", "<").replace(" }}", ">"),
            expr = (def.expr)(""),
        ));
        for (m, l) in &a.overrides {
            out.push_str(&format!(
                "\nOverride `{}`: warning {}, critical {}, for {}.\n",
                super::rules::matchers(m),
                level(l.warning),
                level(l.critical),
                prom_duration(l.for_)
            ));
        }
    }
    out.push_str(&slo_section(t));
    out
}

/// The section every SLO alert links to; empty without SLOs.
fn slo_section(t: &Thresholds) -> String {
    if t.slos.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n<a id=\"{key}\"></a>\n## {key}\n\n**Alert** `{alert}` (slos). A queue's jobs miss their objective fast enough to use up the error budget early: **critical** (page) when the budget burns 14.4× too fast over 1h and 5m, or 6× over 6h and 30m; **warning** (ticket) at 1× over 3d and 6h. The short window makes the alert stop soon after the burning stops. The value is the burn rate over the long window. Dashboard: `redline-slos` (SLI, budget left, burn rate).\n\nA wait SLO counts jobs when they finish: a queue with no worker at all burns nothing until its jobs run; `QueueJobsWaitingTooLong` covers that.\n",
        key = crate::slo::RUNBOOK_KEY,
        alert = crate::slo::ALERT
    );
    for s in &t.slos {
        out.push_str(&format!(
            "\n### SLO {}\n\n{}% of jobs of queue `{}` {} over {}.\n\n```promql\n{}\n```\n",
            s.name,
            super::number((s.objective * 1e6).round() / 1e4),
            s.matcher.promql(),
            s.sli.describe(),
            super::slo::duration(s.window),
            super::slo::alert_expr(s, "critical", 1.0)
        ));
    }
    out
}

/// The anchor GitHub (and GitLab, Gitea) gives a markdown heading: lower case, punctuation other
/// than `-` and `_` dropped, spaces as `-`.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Alerts without a section in the runbook document `doc` (a heading whose anchor is the
/// alert's key). Links made from `runbook_base_url` are `<base>#<key>`, so with no problem here
/// every one of them lands on its section.
pub fn check(t: &Thresholds, doc: &str) -> Vec<String> {
    let anchors: Vec<String> = doc.lines().filter_map(|l| l.strip_prefix("## ")).map(anchor).collect();
    t.alerts
        .iter()
        .filter(|a| !anchors.iter().any(|x| x == a.def.key))
        .map(|a| format!("{}: no runbook section (a `## {}` heading)", a.def.key, a.def.key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_github() {
        assert_eq!(anchor("redis_down"), "redis_down");
        assert_eq!(anchor("Queue lag: what to do?"), "queue-lag-what-to-do");
    }

    #[test]
    fn every_alert_has_a_section_and_links_land_on_it() {
        let t = Thresholds::parse("runbook_base_url: https://wiki.example.com/rb\n", "t").expect("valid");
        let doc = runbooks(&t);
        assert_eq!(check(&t, &doc), Vec::<String>::new());
        assert_eq!(
            t.get("redis_down").and_then(|a| a.runbook_url.as_deref()),
            Some("https://wiki.example.com/rb#redis_down")
        );
        let without = doc.replace("## redis_down\n", "## Redis down\n");
        let p = check(&t, &without);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("redis_down: no runbook section"), "{p:?}");
    }
}
