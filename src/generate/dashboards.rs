//! Grafana dashboards from the thresholds: one per area plus an overview. Every alert gets a
//! panel drawing its value with the same PromQL as the rule and the warning/critical levels as
//! threshold lines, so the graph shows exactly where the page starts.

use serde_json::{json, Value};

use super::{human, GENERATED};
use crate::catalog::{AlertDef, Area, Op, Scope, Unit};
use crate::names as n;
use crate::thresholds::{Alert, Thresholds};

/// Grafana schema version the dashboards are written for.
pub const SCHEMA_VERSION: u64 = 39;

const DS: &str = "${datasource}";

fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": DS })
}

fn query_var(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": datasource(),
        "definition": query,
        "query": { "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery" },
        "refresh": 2,
        "includeAll": true,
        "multi": true,
        "allValue": ".*",
        "current": {},
        "options": [],
        "hide": 0,
        "sort": 1,
        "regex": "",
        "skipUrlSync": false
    })
}

/// Template variables: the data source, then the label filters of the area.
fn variables(area: Area) -> Vec<Value> {
    let mut v = vec![json!({
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "options": [],
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "skipUrlSync": false
    })];
    match area {
        Area::Redis => {
            v.push(query_var(
                "target",
                "Redis",
                &format!("label_values({}{{collector=\"redis\"}}, target)", n::TARGET_UP.exposed()),
            ));
            // Nodes of cluster and Sentinel targets; "All" also matches single-server targets.
            v.push(query_var(
                "node",
                "Node",
                &format!("label_values({}{{target=~\"$target\"}}, node)", n::REDIS_NODE_UP.exposed()),
            ));
        }
        Area::Queues => {
            let jobs = n::QUEUE_JOBS.exposed();
            v.push(query_var("target", "Redis", &format!("label_values({jobs}, target)")));
            v.push(query_var(
                "system",
                "System",
                &format!("label_values({jobs}{{target=~\"$target\"}}, system)"),
            ));
            v.push(query_var(
                "queue",
                "Queue",
                &format!("label_values({jobs}{{target=~\"$target\",system=~\"$system\"}}, queue)"),
            ));
        }
        Area::Postgres => v.push(query_var(
            "target",
            "PostgreSQL",
            &format!("label_values({}{{collector=\"postgres\"}}, target)", n::TARGET_UP.exposed()),
        )),
        Area::Host => v.push(query_var(
            "instance",
            "Host",
            &format!("label_values({}, instance)", n::HOST_CPUS.exposed()),
        )),
        Area::Redline => v.push(query_var(
            "collector",
            "Collector",
            &format!("label_values({}, collector)", n::COLLECTOR_SUCCESS.exposed()),
        )),
    }
    v
}

/// Matchers the area's variables impose.
/// The queue filter without `queue`: the system-wide histograms have no such label.
const QUEUE_ALL_FILTER: &str = "target=~\"$target\",system=~\"$system\"";

fn filter(area: Area) -> &'static str {
    match area {
        Area::Redis => "target=~\"$target\",node=~\"$node\"",
        Area::Postgres => "target=~\"$target\"",
        Area::Queues => "target=~\"$target\",system=~\"$system\",queue=~\"$queue\"",
        Area::Host => "instance=~\"$instance\"",
        Area::Redline => "collector=~\"$collector\"",
    }
}

fn legend(scope: Scope, area: Area) -> &'static str {
    match scope {
        // Redis series of cluster and Sentinel targets are per node.
        Scope::Target if area == Area::Redis => "{{target}} {{node}}",
        Scope::Target => "{{target}}",
        Scope::Queue => "{{target}} {{system}} {{prefix}}/{{queue}}",
        Scope::Host => "{{instance}}",
        Scope::Redline => "{{collector}} {{target}}",
    }
}

/// Threshold steps: Grafana colours values at or above each step.
fn steps(def: &AlertDef, warning: Option<f64>, critical: Option<f64>) -> Value {
    let mut s = Vec::new();
    match def.op {
        Op::Above => {
            s.push(json!({ "color": "green", "value": null }));
            if let Some(w) = warning {
                s.push(json!({ "color": "orange", "value": w }));
            }
            if let Some(c) = critical {
                s.push(json!({ "color": "red", "value": c }));
            }
        }
        Op::Below => {
            s.push(json!({ "color": "red", "value": null }));
            match (warning, critical) {
                (Some(w), Some(c)) => {
                    s.push(json!({ "color": "orange", "value": c }));
                    s.push(json!({ "color": "green", "value": w }));
                }
                (Some(w), None) => s.push(json!({ "color": "green", "value": w })),
                (None, Some(c)) => s.push(json!({ "color": "green", "value": c })),
                (None, None) => {}
            }
        }
    }
    json!({ "mode": "absolute", "steps": s })
}

fn grid(i: usize) -> Value {
    json!({ "h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8 })
}

fn timeseries(
    id: usize,
    title: &str,
    description: &str,
    expr: String,
    legend: &str,
    unit: Unit,
    thresholds: Value,
) -> Value {
    let mut defaults = json!({
        "unit": unit.grafana(),
        "color": { "mode": "palette-classic" },
        "custom": { "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                    "spanNulls": false, "thresholdsStyle": { "mode": "line" } },
        "thresholds": thresholds
    });
    if unit == Unit::Ratio {
        defaults["min"] = json!(0);
        defaults["max"] = json!(1);
    }
    json!({
        "id": id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": datasource(),
        "gridPos": grid(id - 1),
        "fieldConfig": { "defaults": defaults, "overrides": [] },
        "options": { "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                     "tooltip": { "mode": "multi", "sort": "desc" } },
        "targets": [ { "refId": "A", "datasource": datasource(), "expr": expr, "legendFormat": legend, "range": true } ]
    })
}

/// The panel of one alert: its value, its levels as lines, overrides listed in the description.
fn alert_panel(id: usize, a: &Alert) -> Value {
    let def = a.def;
    let mut description = format!(
        "{} Alert {} fires when the value is {}",
        def.summary.replace("{{ $labels.", "").replace(" }}", ""),
        def.alert,
        def.op.word()
    );
    let lv = |w: Option<f64>, c: Option<f64>| {
        let mut parts = Vec::new();
        if let Some(w) = w {
            parts.push(format!("warning {}", human(def.unit, w)));
        }
        if let Some(c) = c {
            parts.push(format!("critical {}", human(def.unit, c)));
        }
        parts.join(", ")
    };
    description.push_str(&format!(
        ": {} for {}.",
        lv(a.levels.warning, a.levels.critical),
        super::prom_duration(a.levels.for_)
    ));
    for (m, l) in &a.overrides {
        description.push_str(&format!(
            " Override {}: {}.",
            super::rules::matchers(m),
            lv(l.warning, l.critical)
        ));
    }
    timeseries(
        id,
        def.panel,
        &description,
        (def.expr)(filter(def.area)),
        legend(def.scope, def.area),
        def.unit,
        steps(def, a.levels.warning, a.levels.critical),
    )
}

/// Panels for context that no alert covers.
fn context_panels(area: Area) -> Vec<(&'static str, String, &'static str, Unit)> {
    let f = filter(area);
    match area {
        Area::Redis => vec![
            (
                "Commands per second",
                format!("sum by (target) (rate({}{{{f}}}[5m]))", n::REDIS_COMMANDS_PROCESSED.exposed()),
                "{{target}}",
                Unit::PerSecond,
            ),
            ("Memory used", format!("{}{{{f}}}", n::REDIS_MEMORY_USED.exposed()), "{{target}} {{node}}", Unit::Bytes),
            (
                "Keyspace hit ratio",
                format!(
                    "rate({h}{{{f}}}[5m]) / ((rate({h}{{{f}}}[5m]) + rate({m}{{{f}}}[5m])) > 0)",
                    h = n::REDIS_KEYSPACE_HITS.exposed(),
                    m = n::REDIS_KEYSPACE_MISSES.exposed()
                ),
                "{{target}} {{node}}",
                Unit::Ratio,
            ),
            (
                "Connected clients",
                format!("{}{{{f}}}", n::REDIS_CLIENTS_CONNECTED.exposed()),
                "{{target}} {{node}}",
                Unit::Count,
            ),
            (
                "Cluster slots by state",
                format!("{}{{{f}}}", n::REDIS_CLUSTER_SLOTS.exposed()),
                "{{target}} {{state}}",
                Unit::Count,
            ),
        ],
        Area::Queues => vec![
            (
                "Jobs by state",
                format!("sum by (state) ({}{{{f}}})", n::QUEUE_JOBS.exposed()),
                "{{state}}",
                Unit::Count,
            ),
            (
                "Completed per second",
                format!("rate({}{{{f}}}[5m])", n::QUEUE_JOBS_COMPLETED.exposed()),
                "{{system}} {{prefix}}/{{queue}}",
                Unit::PerSecond,
            ),
            (
                "Wait time p95, all queues of a system",
                format!(
                    "histogram_quantile(0.95, sum by (system, prefix, le) (rate({}_bucket{{{QUEUE_ALL_FILTER}}}[5m])))",
                    n::QUEUE_ALL_WAIT_DURATION.exposed()
                ),
                "{{system}} {{prefix}}",
                Unit::Seconds,
            ),
            (
                "Processing time p95, all queues of a system",
                format!(
                    "histogram_quantile(0.95, sum by (system, prefix, le) (rate({}_bucket{{{QUEUE_ALL_FILTER}}}[5m])))",
                    n::QUEUE_ALL_PROCESSING_DURATION.exposed()
                ),
                "{{system}} {{prefix}}",
                Unit::Seconds,
            ),
            // Only queues picked by limits.queue_histograms (and SLO queues) have these.
            (
                "Wait time p95 per queue (limits.queue_histograms)",
                format!(
                    "histogram_quantile(0.95, sum by (system, prefix, queue, le) (rate({}_bucket{{{f}}}[5m])))",
                    n::QUEUE_WAIT_DURATION.exposed()
                ),
                "{{system}} {{prefix}}/{{queue}}",
                Unit::Seconds,
            ),
            (
                "Processing time p95 per queue (limits.queue_histograms)",
                format!(
                    "histogram_quantile(0.95, sum by (system, prefix, queue, le) (rate({}_bucket{{{f}}}[5m])))",
                    n::QUEUE_PROCESSING_DURATION.exposed()
                ),
                "{{system}} {{prefix}}/{{queue}}",
                Unit::Seconds,
            ),
        ],
        Area::Postgres => vec![
            (
                "Connections by state",
                format!("sum by (target, state) ({}{{{f}}})", n::PG_CONNECTIONS.exposed()),
                "{{target}} {{state}}",
                Unit::Count,
            ),
            (
                "Transactions per second",
                format!("sum by (target) (rate({}{{{f}}}[5m]))", n::PG_XACT_COMMIT.exposed()),
                "{{target}}",
                Unit::PerSecond,
            ),
            (
                "Top statements by time",
                format!("topk(10, rate({}{{{f}}}[5m]))", n::PG_STATEMENT_TIME.exposed()),
                "{{query}}",
                Unit::Seconds,
            ),
            (
                "Database size",
                format!("{}{{{f}}}", n::PG_DATABASE_SIZE.exposed()),
                "{{target}} {{database}}",
                Unit::Bytes,
            ),
        ],
        Area::Host => vec![
            (
                "Network received",
                format!("rate({}{{{f}}}[5m])", n::HOST_NET_RX.exposed()),
                "{{interface}}",
                Unit::PerSecond,
            ),
            ("redline memory", n::PROCESS_RSS.exposed(), "{{instance}}", Unit::Bytes),
        ],
        Area::Redline => vec![(
            "Collection duration",
            format!("{}{{{f}}}", n::COLLECTOR_DURATION.exposed()),
            "{{collector}} {{target}}",
            Unit::Seconds,
        )],
    }
}

fn dashboard(uid: &str, title: &str, vars: Vec<Value>, panels: Vec<Value>) -> Value {
    json!({
        "uid": uid,
        "title": title,
        "description": GENERATED,
        "tags": ["redline"],
        "timezone": "browser",
        "editable": true,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": false,
        "weekStart": "",
        "links": [ { "title": "redline", "type": "dashboards", "tags": ["redline"], "asDropdown": true,
                     "includeVars": true, "keepTime": true, "icon": "external link", "targetBlank": false,
                     "tooltip": "", "url": "" } ],
        "annotations": { "list": [ {
            "builtIn": 1, "datasource": { "type": "grafana", "uid": "-- Grafana --" }, "enable": true,
            "hide": true, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"
        } ] },
        "templating": { "list": vars },
        "panels": panels
    })
}

/// One dashboard per area plus the overview, as `(file name, JSON text)`.
pub fn dashboards(t: &Thresholds) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for area in Area::ALL {
        let mut panels = Vec::new();
        for a in t.alerts.iter().filter(|a| a.def.area == area) {
            panels.push(alert_panel(panels.len() + 1, a));
        }
        for (title, expr, legend, unit) in context_panels(area) {
            let none = json!({ "mode": "absolute", "steps": [ { "color": "green", "value": null } ] });
            let mut p = timeseries(panels.len() + 1, title, "", expr, legend, unit, none);
            p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] = json!("off");
            panels.push(p);
        }
        let title = match area {
            Area::Redis => "redline / Redis",
            Area::Queues => "redline / Job queues",
            Area::Postgres => "redline / PostgreSQL",
            Area::Host => "redline / Host",
            Area::Redline => "redline / Self",
        };
        let d = dashboard(&format!("redline-{}", area.name()), title, variables(area), panels);
        out.push((format!("redline-{}.json", area.name()), pretty(&d)));
    }
    out.insert(0, ("redline-overview.json".to_string(), pretty(&overview(t))));
    if !t.slos.is_empty() {
        out.push(("redline-slos.json".to_string(), pretty(&slo_dashboard(&t.slos))));
    }
    out
}

/// One row per SLO: its SLI against the objective, the error budget left over its window, and
/// the burn rate against the alert factors. Queries read the SLO recording rules.
fn slo_dashboard(slos: &[crate::slo::Slo]) -> Value {
    use super::slo::{duration, ratio_name, BUDGET_REMAINING};
    let vars = vec![
        variables(Area::Redline).remove(0),
        query_var("target", "Redis", &format!("label_values({}, target)", ratio_name("5m"))),
    ];
    let target = |sel: &str, legend: &str, r: &str| json!({ "refId": r, "datasource": datasource(), "expr": sel, "legendFormat": legend, "range": true });
    let mut panels = Vec::new();
    for (i, s) in slos.iter().enumerate() {
        let sel = format!("{{slo=\"{}\",target=~\"$target\"}}", s.name);
        let budget = super::number(s.budget());
        let window = duration(s.window);
        let who = "{{target}} {{system}} {{prefix}}/{{queue}}";
        let y = i * 8;
        let id = panels.len() + 1;
        let mut sli = timeseries(
            id,
            &format!("{}: good jobs", s.name),
            &format!(
                "Share of finished jobs that {} (objective {}%), over 5m, 1h and the SLO window ({window}). Below the line the error budget burns. 'seen': share of finished jobs whose times were read; below 1 the SLI is a sample (raise limits.max_finished_samples).",
                s.sli.describe(),
                super::number((s.objective * 1e6).round() / 1e4)
            ),
            String::new(),
            "",
            Unit::Ratio,
            json!({ "mode": "absolute", "steps": [ { "color": "red", "value": null }, { "color": "green", "value": s.objective } ] }),
        );
        sli["targets"] = json!([
            target(&format!("1 - {}{sel}", ratio_name("5m")), &format!("5m {who}"), "A"),
            target(&format!("1 - {}{sel}", ratio_name("1h")), &format!("1h {who}"), "B"),
            target(&format!("1 - {}{sel}", ratio_name(&window)), &format!("{window} {who}"), "C"),
        ]);
        if !matches!(s.sli, crate::slo::Sli::Success) {
            if let Some(t) = sli["targets"].as_array_mut() {
                t.push(target(&format!("{}{sel}", super::slo::JOBS_SEEN), &format!("seen {who}"), "D"));
            }
        }
        // Near the objective is where the action is: let Grafana scale the axis.
        if let Some(d) = sli["fieldConfig"]["defaults"].as_object_mut() {
            d.remove("min");
            d.remove("max");
        }
        sli["gridPos"] = json!({ "h": 8, "w": 10, "x": 0, "y": y });
        panels.push(sli);
        panels.push(json!({
            "id": id + 1,
            "type": "stat",
            "title": format!("{}: error budget left", s.name),
            "description": format!("Share of the {window} error budget ({}% bad jobs) not yet used; below 0 the objective is missed.", super::number(s.budget() * 100.0)),
            "datasource": datasource(),
            "gridPos": { "h": 8, "w": 4, "x": 10, "y": y },
            "fieldConfig": { "defaults": { "unit": "percentunit", "color": { "mode": "thresholds" },
                "thresholds": { "mode": "absolute", "steps": [ { "color": "red", "value": null }, { "color": "orange", "value": 0 }, { "color": "green", "value": 0.25 } ] } },
                "overrides": [] },
            "options": { "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                         "colorMode": "background", "graphMode": "area", "textMode": "auto", "justifyMode": "auto",
                         "orientation": "auto", "showPercentChange": false, "wideLayout": true },
            "targets": [ target(&format!("{BUDGET_REMAINING}{sel}"), who, "A") ]
        }));
        let mut burn = timeseries(
            id + 2,
            &format!("{}: burn rate", s.name),
            "How many times faster than the objective allows the error budget burns. The page needs 14.4× over 1h and 5m, or 6× over 6h and 30m; the ticket 1× over 3d and 6h.",
            String::new(),
            "",
            Unit::Count,
            json!({ "mode": "absolute", "steps": [ { "color": "green", "value": null }, { "color": "orange", "value": 1 }, { "color": "red", "value": 6 }, { "color": "dark-red", "value": 14.4 } ] }),
        );
        burn["targets"] = json!(["1h", "6h", "3d"]
            .iter()
            .zip(["A", "B", "C"])
            .map(|(w, r)| target(&format!("{}{sel} / {budget}", ratio_name(w)), &format!("{w} {who}"), r))
            .collect::<Vec<_>>());
        burn["gridPos"] = json!({ "h": 8, "w": 10, "x": 14, "y": y });
        panels.push(burn);
    }
    dashboard("redline-slos", "redline / SLOs", vars, panels)
}

/// The overview: one stat per area showing the worst value against its levels.
fn overview(t: &Thresholds) -> Value {
    let picks = [
        "redis_down",
        "redis_memory_near_limit",
        "redis_evicting",
        "queue_oldest_ready_age",
        "pg_connections_near_limit",
        "pg_long_transaction",
        "queue_backlog",
        "queue_failure_ratio",
        "host_disk_usage",
        "redline_collector_failing",
    ];
    let mut panels = Vec::new();
    for key in picks {
        let Some(a) = t.get(key) else { continue };
        let def = a.def;
        let agg = if def.op == Op::Above { "max" } else { "min" };
        let id = panels.len() + 1;
        panels.push(json!({
            "id": id,
            "type": "stat",
            "title": def.panel,
            "description": format!("Worst value of {} across all series; colours follow its alert levels.", def.alert),
            "datasource": datasource(),
            "gridPos": { "h": 5, "w": 6, "x": ((id - 1) % 4) * 6, "y": ((id - 1) / 4) * 5 },
            "fieldConfig": { "defaults": { "unit": def.unit.grafana(), "thresholds": steps(def, a.levels.warning, a.levels.critical),
                                           "color": { "mode": "thresholds" } }, "overrides": [] },
            "options": { "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                         "colorMode": "background", "graphMode": "area", "textMode": "auto", "justifyMode": "auto",
                         "orientation": "auto", "showPercentChange": false, "wideLayout": true },
            "targets": [ { "refId": "A", "datasource": datasource(), "expr": format!("{agg}({})", (def.expr)("")), "instant": false, "range": true } ]
        }));
    }
    dashboard("redline-overview", "redline / Overview", variables(Area::Redline)[..1].to_vec(), panels)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Every PromQL expression in a dashboard (targets and variable queries), for validation.
pub fn expressions(dashboard_json: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(dashboard_json) else { return Vec::new() };
    v["panels"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
                .filter_map(|t| t["expr"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Problems with a dashboard against what Grafana needs to import it; empty when fine.
pub fn check(dashboard_json: &str) -> Vec<String> {
    let mut p = Vec::new();
    let v: Value = match serde_json::from_str(dashboard_json) {
        Ok(v) => v,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    if v.get("__inputs").is_some() {
        p.push("has __inputs (use the datasource variable)".into());
    }
    if v["schemaVersion"] != json!(SCHEMA_VERSION) {
        p.push("schemaVersion is not 39".into());
    }
    for k in ["uid", "title"] {
        if !v[k].as_str().is_some_and(|s| !s.is_empty() && s.len() <= 40) {
            p.push(format!("{k} missing, empty or longer than 40"));
        }
    }
    let vars = v["templating"]["list"].as_array().cloned().unwrap_or_default();
    if !vars
        .iter()
        .any(|x| x["type"] == "datasource" && x["name"] == "datasource" && x["query"] == "prometheus")
    {
        p.push("no prometheus datasource variable".into());
    }
    let mut ids = std::collections::HashSet::new();
    for panel in v["panels"].as_array().cloned().unwrap_or_default() {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        if !panel["id"].as_u64().is_some_and(|id| ids.insert(id)) {
            p.push(format!("panel {title}: missing or duplicate id"));
        }
        if !["timeseries", "stat"].contains(&panel["type"].as_str().unwrap_or("")) {
            p.push(format!("panel {title}: unexpected type"));
        }
        for k in ["h", "w", "x", "y"] {
            if !panel["gridPos"][k].is_u64() {
                p.push(format!("panel {title}: gridPos.{k} missing"));
            }
        }
        if panel["datasource"]["uid"] != DS {
            p.push(format!("panel {title}: datasource is not ${{datasource}}"));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() || targets.iter().any(|t| !t["expr"].is_string() || !t["refId"].is_string()) {
            p.push(format!("panel {title}: targets need expr and refId"));
        }
        let steps =
            panel["fieldConfig"]["defaults"]["thresholds"]["steps"].as_array().cloned().unwrap_or_default();
        if steps.first().is_none_or(|s| !s["value"].is_null()) {
            p.push(format!("panel {title}: the first threshold step must have a null value"));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_dashboards_pass_the_import_checks() {
        for (name, text) in dashboards(&Thresholds::defaults()) {
            assert_eq!(check(&text), Vec::<String>::new(), "{name}");
            assert!(!expressions(&text).is_empty(), "{name}");
        }
    }

    #[test]
    fn panels_draw_the_file_levels() {
        let t = Thresholds::parse(
            "alerts:\n  queue_oldest_ready_age:\n    warning: 42\n    critical: 99\n",
            "t.yaml",
        )
        .expect("valid");
        let d = dashboards(&t);
        let (_, queues) = d.iter().find(|(n, _)| n == "redline-queues.json").expect("queues dashboard");
        let v: Value = serde_json::from_str(queues).expect("json");
        let steps = &v["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"];
        assert_eq!(steps[1]["value"], json!(42.0));
        assert_eq!(steps[2]["value"], json!(99.0));
        assert_eq!(v["panels"][0]["targets"][0]["expr"], json!("time() - redline_queue_oldest_ready_timestamp_seconds{target=~\"$target\",system=~\"$system\",queue=~\"$queue\"}"));
    }

    #[test]
    fn slo_dashboard_draws_each_slo_from_its_recording_rules() {
        let t = Thresholds::parse(include_str!("../../rules/thresholds.yaml"), "t.yaml").expect("shipped");
        let d = dashboards(&t);
        let (_, text) = d.iter().find(|(n, _)| n == "redline-slos.json").expect("slo dashboard");
        assert_eq!(check(text), Vec::<String>::new());
        let v: Value = serde_json::from_str(text).expect("json");
        assert_eq!(v["uid"], json!("redline-slos"));
        assert_eq!(v["panels"].as_array().map(Vec::len), Some(3 * t.slos.len()));
        assert_eq!(v["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"], json!(0.99));
        assert_eq!(
            v["panels"][2]["targets"][0]["expr"],
            json!("redline:slo_errors:ratio_rate1h{slo=\"payments-start\",target=~\"$target\"} / 0.01")
        );
        assert!(!dashboards(&Thresholds::defaults()).iter().any(|(n, _)| n == "redline-slos.json"));
    }

    #[test]
    fn check_catches_what_grafana_rejects() {
        let bad =
            r#"{"__inputs": [], "uid": "", "schemaVersion": 30, "panels": [{"id": 1, "type": "graph"}]}"#;
        let p = check(bad);
        assert!(p.len() >= 5, "{p:?}");
    }
}
