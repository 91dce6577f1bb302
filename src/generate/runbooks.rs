//! docs/runbooks.md: one section per alert (anchor = thresholds key), with its meaning, the
//! levels in force and the PromQL it evaluates, so `runbook_url` always lands somewhere useful.

use super::{human, prom_duration, GENERATED};
use crate::thresholds::Thresholds;

/// The runbook document.
pub fn runbooks(t: &Thresholds) -> String {
    let mut out = format!("<!-- {GENERATED} -->\n\n# redline runbooks\n\nOne section per alert; each rule's `runbook_url` links here.\n");
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
    out
}
