//! `redline status`: every threshold with its current value, level, headroom and whether it is
//! crossed, worst first; the on-call view and a load-test gate (exit 0 healthy, 1 a warning
//! crossed, 2 a critical crossed). Values come from the alert rules' own PromQL
//! ([`crate::snapshot::judge`]) over two captures of a running redline's `/metrics`, or of one
//! started in-process from a config, so `status` and the rules cannot disagree on a level.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catalog::{Op, Unit};
use crate::config::Config;
use crate::generate::human;
use crate::names;
use crate::secret::HttpUrl;
use crate::snapshot::{judge, Labels, Snapshot};
use crate::thresholds::{Levels, Thresholds};

/// Why `status` could not judge anything.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The daemon could not be reached or answered with an error.
    #[error("cannot read {url}: {reason}")]
    Scrape {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// `/-/ready` did not answer 200 in time.
    #[error("{url} was not ready within {0:?}", .waited)]
    NotReady {
        /// The readiness URL.
        url: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The config or thresholds file is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The in-process daemon could not start.
    #[error("cannot start collectors: {0}")]
    Daemon(String),
}

/// Where the metrics come from.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    /// A running redline: `http://host:9860` or its `/metrics` URL.
    Url(&'a str),
    /// Collect from the targets of this config with an in-process daemon.
    Config(&'a Path),
}

/// State of one row, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A critical level is crossed.
    Critical,
    /// A warning level is crossed.
    Warning,
    /// Within its levels.
    Ok,
    /// The expression returned no series (no such target or data, or no observations).
    NoData,
    /// The expression could not be evaluated from captures.
    NotEvaluated,
    /// `enabled: false`: no rule is generated.
    Disabled,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Critical => "CRITICAL",
            State::Warning => "WARNING",
            State::Ok => "ok",
            State::NoData => "no data",
            State::NotEvaluated => "not evaluated",
            State::Disabled => "disabled",
        }
    }

    fn color(self) -> &'static str {
        match self {
            State::Critical => "\x1b[1;31m",
            State::Warning => "\x1b[1;33m",
            State::Ok => "\x1b[32m",
            State::NoData | State::NotEvaluated | State::Disabled => "\x1b[2m",
        }
    }
}

/// One threshold of one series.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Alert name, as the rules fire it.
    pub alert: &'static str,
    /// Key in the thresholds file.
    pub key: &'static str,
    /// Judgement.
    pub state: State,
    /// Whether a level is crossed (the rule's condition holds now; it fires after `for`).
    pub crossed: bool,
    /// The series (the labels the alert would carry).
    pub labels: Labels,
    /// Current value, in the unit below (`null`: none, or NaN).
    pub value: Option<f64>,
    /// Unit of value, levels and headroom.
    pub unit: &'static str,
    /// `above` or `below`: which side of a level fires.
    pub fires: &'static str,
    /// Warning level.
    pub warning: Option<f64>,
    /// Critical level.
    pub critical: Option<f64>,
    /// How long the rule waits before firing.
    pub for_seconds: u64,
    /// The override that sets these levels (`queue=payments`).
    #[serde(rename = "override")]
    pub override_name: Option<String>,
    /// Distance to `headroom_to`: positive is room left, negative is how far past it.
    pub headroom: Option<f64>,
    /// The level the headroom is measured to.
    pub headroom_to: Option<&'static str>,
    /// Why there is no value, when there is none.
    pub note: Option<String>,
    /// Runbook link, when the thresholds name one.
    pub runbook_url: Option<String>,
}

/// The whole judgement.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where the metrics came from.
    pub source: String,
    /// Time between the two captures, seconds (rates are over this).
    pub window_seconds: f64,
    /// Where the levels came from.
    pub thresholds: String,
    /// Worst state of any row: critical, warning or ok.
    pub level: State,
    /// Rows, worst first.
    pub rows: Vec<Row>,
}

/// Which crossed level makes the exit code non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// Exit 1 on a warning, 2 on a critical.
    Warning,
    /// Exit 2 on a critical; warnings exit 0.
    Critical,
}

impl Report {
    /// 0 healthy, 1 a warning crossed, 2 a critical crossed (by `fail_on`).
    pub fn exit_code(&self, fail_on: FailOn) -> u8 {
        match (self.level, fail_on) {
            (State::Critical, _) => 2,
            (State::Warning, FailOn::Warning) => 1,
            _ => 0,
        }
    }
}

fn unit_name(u: Unit) -> &'static str {
    match u {
        Unit::Ratio => "ratio",
        Unit::Seconds => "seconds",
        Unit::Count => "count",
        Unit::PerSecond => "per_second",
        Unit::Bytes => "bytes",
        Unit::Bool => "bool",
    }
}

/// `(headroom, level it is measured to)`: to the critical level once past it or past the
/// warning, else to the first level the value would reach.
fn headroom(op: Op, l: &Levels, v: f64, state: State) -> Option<(f64, &'static str)> {
    let room = |level: f64| match op {
        Op::Above => level - v,
        Op::Below => v - level,
    };
    let (level, name) = match (state, l.warning, l.critical) {
        (State::Critical, _, Some(c)) => (c, "critical"),
        (State::Warning, _, Some(c)) => (c, "critical"),
        (_, Some(w), _) => (w, "warning"),
        (_, None, Some(c)) => (c, "critical"),
        _ => return None,
    };
    Some((room(level), name))
}

/// Headroom relative to its level, for ordering rows of one state (most pressing first).
fn pressure(r: &Row) -> f64 {
    let Some(h) = r.headroom else { return f64::INFINITY };
    let level = match r.headroom_to {
        Some("critical") => r.critical,
        _ => r.warning,
    };
    match level {
        Some(l) if l != 0.0 => h / l.abs(),
        // "Any at all" levels (0 evictions): past it is worst, at it says little.
        _ if h < 0.0 => f64::NEG_INFINITY,
        _ => f64::INFINITY,
    }
}

/// Judges every alert of `t` on `after` (with `before` for rates) into rows, worst first.
pub fn rows(t: &Thresholds, before: &Snapshot, after: &Snapshot) -> Vec<Row> {
    let judged = judge(t, Some(before), after);
    let mut out = Vec::new();
    let base = |a: &crate::thresholds::Alert, l: &Levels| Row {
        alert: a.def.alert,
        key: a.def.key,
        state: State::NoData,
        crossed: false,
        labels: Labels::new(),
        value: None,
        unit: unit_name(a.def.unit),
        fires: if a.def.op == Op::Above { "above" } else { "below" },
        warning: l.warning,
        critical: l.critical,
        for_seconds: l.for_.as_secs(),
        override_name: None,
        headroom: None,
        headroom_to: None,
        note: None,
        runbook_url: a.runbook_url.clone(),
    };
    for j in &judged.series {
        let mut r = base(j.alert, j.levels);
        r.labels = j.labels.clone();
        r.override_name = j.override_name.clone();
        if j.value.is_nan() {
            r.note = Some("NaN: nothing observed in the window".into());
        } else {
            r.value = Some(j.value);
            r.state = match j.crossed {
                Some(("critical", _)) => State::Critical,
                Some(_) => State::Warning,
                None => State::Ok,
            };
            r.crossed = j.crossed.is_some();
            // Up/down states have no distance to speak of.
            let graded = j.alert.def.unit != Unit::Bool;
            if let Some((h, to)) = headroom(j.alert.def.op, j.levels, j.value, r.state).filter(|_| graded) {
                r.headroom = Some(h);
                r.headroom_to = Some(to);
            }
        }
        out.push(r);
    }
    for a in &judged.no_data {
        let mut r = base(a, &a.levels);
        r.note = Some(if (a.def.expr)("").contains("rate(") {
            "no series (rates need a collection inside the window)".into()
        } else {
            "no series".into()
        });
        out.push(r);
    }
    for (a, why) in &judged.failed {
        let mut r = base(a, &a.levels);
        r.state = State::NotEvaluated;
        r.note = Some(why.clone());
        out.push(r);
    }
    for a in t.alerts.iter().filter(|a| !a.enabled) {
        let mut r = base(a, &a.levels);
        r.state = State::Disabled;
        out.push(r);
    }
    out.sort_by(|a, b| a.state.cmp(&b.state).then(pressure(a).total_cmp(&pressure(b))));
    out
}

/// The levels a running redline has in force, from its `redline_threshold` series (enabled
/// alerts and their overrides); `None` when the capture has none. `for` is not published:
/// the catalogue's is shown.
pub fn thresholds_from_capture(s: &Snapshot) -> Option<Thresholds> {
    let name = names::THRESHOLD.exposed();
    let series: Vec<(&Labels, f64)> =
        s.samples.iter().filter(|((n, _), _)| *n == name).map(|((_, l), v)| (l, *v)).collect();
    if series.is_empty() {
        return None;
    }
    let mut t = Thresholds::defaults();
    for a in t.alerts.iter_mut() {
        let mine: Vec<&(&Labels, f64)> =
            series.iter().filter(|(l, _)| l.get("key").map(String::as_str) == Some(a.def.key)).collect();
        // The daemon publishes enabled alerts only.
        a.enabled = !mine.is_empty();
        let mut by_override: BTreeMap<Option<&String>, Levels> = BTreeMap::new();
        for (l, v) in mine {
            let levels = by_override.entry(l.get("override")).or_insert(Levels {
                warning: None,
                critical: None,
                for_: a.def.default.for_,
            });
            match l.get("severity").map(String::as_str) {
                Some("warning") => levels.warning = Some(*v),
                Some("critical") => levels.critical = Some(*v),
                _ => {}
            }
        }
        a.overrides.clear();
        for (over, levels) in by_override {
            match over {
                None => a.levels = levels,
                // `queue=payments,target=main`, as thresholds::override_name writes it.
                Some(o) => {
                    let m = o
                        .split(',')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    a.overrides.push((m, levels));
                }
            }
        }
    }
    Some(t)
}

/// Whether every collector that succeeded in `a` has collected again by `b`.
fn collected_since(a: &Snapshot, b: &Snapshot) -> bool {
    let name = names::COLLECTOR_LAST_SUCCESS.exposed();
    let ok = names::COLLECTOR_SUCCESS.exposed();
    a.samples.iter().filter(|((n, _), _)| *n == name).all(|((_, l), t)| {
        let failing = a.samples.get(&(ok.clone(), l.clone())).is_some_and(|v| *v == 0.0);
        failing || b.samples.get(&(name.clone(), l.clone())).is_some_and(|t2| t2 > t)
    })
}

fn metrics_url(url: &str) -> String {
    let u = url.trim_end_matches('/');
    let has_path = u.split_once("://").map(|(_, rest)| rest.contains('/')).unwrap_or(false);
    if has_path {
        u.to_string()
    } else {
        format!("{u}/metrics")
    }
}

/// GETs `url` (credentials in it go as basic auth and are never shown).
async fn get(url: &str, timeout: Duration) -> Result<(u16, hyper::body::Bytes), StatusError> {
    let parsed = HttpUrl::parse(url)
        .map_err(|e| StatusError::Scrape { url: "--url".to_string(), reason: e.to_string() })?;
    crate::http_client::request(hyper::Method::GET, &parsed, timeout)
        .await
        .map_err(|e| StatusError::Scrape { url: parsed.to_string(), reason: e.to_string() })
}

async fn capture(url: &str) -> Result<Snapshot, StatusError> {
    let (code, body) = get(url, Duration::from_secs(30)).await?;
    let shown = HttpUrl::parse(url).map(|u| u.to_string()).unwrap_or_default();
    if code != 200 {
        return Err(StatusError::Scrape { url: shown, reason: format!("HTTP {code}") });
    }
    let mut s = Snapshot::parse(&String::from_utf8_lossy(&body));
    s.taken_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    s.source = shown;
    Ok(s)
}

async fn wait_ready(metrics: &str, within: Duration) -> Result<(), StatusError> {
    let url = match metrics.strip_suffix("/metrics") {
        Some(base) => format!("{base}/-/ready"),
        None => return Ok(()),
    };
    let deadline = Instant::now() + within;
    loop {
        match get(&url, Duration::from_secs(5)).await {
            Ok((200, _)) => return Ok(()),
            Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(_) => {
                let url = HttpUrl::parse(&url).map(|u| u.to_string()).unwrap_or_default();
                return Err(StatusError::NotReady { url, waited: within });
            }
            Err(e) => return Err(e),
        }
    }
}

/// Two captures `window` apart (longer if a collector has not collected again yet, up to
/// twice the window), then the thresholds: `thresholds` if given, else those the daemon
/// publishes, else the catalogue defaults.
async fn judge_url(url: &str, window: Duration, thresholds: Option<&Path>) -> Result<Report, StatusError> {
    wait_ready(url, Duration::from_secs(30)).await?;
    let before = capture(url).await?;
    tokio::time::sleep(window).await;
    let give_up = Instant::now() + window;
    let mut after = capture(url).await?;
    while !window.is_zero() && !collected_since(&before, &after) && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = capture(url).await?;
    }
    let (t, from) = match thresholds {
        Some(p) => (Thresholds::load(p)?, p.display().to_string()),
        None => match thresholds_from_capture(&after) {
            Some(t) => (t, "the levels the daemon has in force (redline_threshold)".to_string()),
            None => (Thresholds::defaults(), "catalogue defaults (no redline_threshold series)".to_string()),
        },
    };
    let rows = rows(&t, &before, &after);
    let level = rows.iter().map(|r| r.state).min().filter(|s| *s <= State::Warning).unwrap_or(State::Ok);
    Ok(Report {
        source: url.to_string(),
        window_seconds: after.taken_at - before.taken_at,
        thresholds: from,
        level,
        rows,
    })
}

/// Reads the metrics (from a running redline, or from collectors started here for the
/// config's targets) and judges every threshold.
pub async fn status(
    from: Input<'_>,
    window: Duration,
    thresholds: Option<&Path>,
) -> Result<Report, StatusError> {
    match from {
        Input::Url(u) => judge_url(&metrics_url(u), window, thresholds).await,
        Input::Config(path) => {
            let mut config = Config::load(path)?;
            // A look, not a deployment: write no rules, tell no Prometheus, serve on loopback.
            config.thresholds.rules_dir = None;
            config.thresholds.dashboards_dir = None;
            config.thresholds.prometheus_reload_url = None;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| StatusError::Daemon(e.to_string()))?;
            let addr = listener.local_addr().map_err(|e| StatusError::Daemon(e.to_string()))?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let daemon = tokio::spawn(crate::daemon::run(
                config,
                None,
                crate::daemon::Options::default(),
                listener,
                async {
                    let _ = stopped.await;
                },
            ));
            let url = format!("http://{addr}/metrics");
            let mut report = judge_url(&url, window, thresholds).await;
            let _ = stop.send(());
            match daemon.await {
                Ok(Err(e)) => return Err(StatusError::Daemon(e.to_string())),
                Err(e) => return Err(StatusError::Daemon(e.to_string())),
                Ok(Ok(())) => {}
            }
            if let Ok(r) = &mut report {
                r.source = path.display().to_string();
            }
            report
        }
    }
}

/// A value as a person reads it, rounded for a table.
fn show(unit: Unit, v: f64) -> String {
    let sig3 = |v: f64| {
        if v == 0.0 || !v.is_finite() {
            return format!("{v}");
        }
        let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    match unit {
        Unit::Seconds if v.abs() >= 60.0 => {
            let s = v.abs().round() as u64;
            let sign = if v < 0.0 { "-" } else { "" };
            match (s / 3600, (s % 3600) / 60, s % 60) {
                (0, m, 0) => format!("{sign}{m}m"),
                (0, m, s) => format!("{sign}{m}m{s}s"),
                (h, 0, _) => format!("{sign}{h}h"),
                (h, m, _) => format!("{sign}{h}h{m}m"),
            }
        }
        Unit::Seconds => format!("{}s", sig3(v)),
        Unit::PerSecond => format!("{}/s", sig3(v)),
        Unit::Ratio => human(unit, v),
        Unit::Bytes => {
            let (mut x, mut i) = (v, 0);
            let units = ["B", "KiB", "MiB", "GiB", "TiB"];
            while x.abs() >= 1024.0 && i < units.len() - 1 {
                x /= 1024.0;
                i += 1;
            }
            format!("{} {}", sig3(x), units[i])
        }
        Unit::Count | Unit::Bool => sig3(v),
    }
}

fn unit_of(r: &Row) -> Unit {
    crate::catalog::find(r.key).map(|d| d.unit).unwrap_or(Unit::Count)
}

fn series_text(r: &Row) -> String {
    let mut s = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    if let Some(o) = &r.override_name {
        s.push_str(&format!(" (override {o})"));
    }
    s
}

fn cells(r: &Row) -> [String; 7] {
    let unit = unit_of(r);
    let level = |l: Option<f64>| l.map(|l| show(unit, l)).unwrap_or_else(|| "-".into());
    let headroom = match (r.headroom, r.headroom_to) {
        (Some(h), Some(to)) if h < 0.0 || (h == 0.0 && r.crossed) => format!("{} past {to}", show(unit, -h)),
        (Some(h), Some(to)) => format!("{} to {to}", show(unit, h)),
        _ => r.note.clone().unwrap_or_default(),
    };
    [
        r.state.word().to_string(),
        r.alert.to_string(),
        series_text(r),
        r.value.map(|v| show(unit, v)).unwrap_or_else(|| "-".into()),
        level(r.warning),
        level(r.critical),
        headroom,
    ]
}

const HEADERS: [&str; 7] = ["LEVEL", "ALERT", "SERIES", "VALUE", "WARNING", "CRITICAL", "HEADROOM"];

fn summary(report: &Report) -> String {
    let count = |s: State| report.rows.iter().filter(|r| r.state == s).count();
    format!(
        "{} critical, {} warning, {} ok, {} no data, {} disabled",
        count(State::Critical),
        count(State::Warning),
        count(State::Ok),
        count(State::NoData) + count(State::NotEvaluated),
        count(State::Disabled)
    )
}

/// The table for a terminal (`color`) or a pipe.
pub fn text(report: &Report, color: bool) -> String {
    let rows: Vec<[String; 7]> = report.rows.iter().map(cells).collect();
    let mut width = HEADERS.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String; 7], state: Option<State>| {
        let mut s = String::new();
        for (i, c) in cols.iter().enumerate() {
            let pad = " ".repeat(width[i] - c.chars().count());
            let cell = match (i, state, color) {
                (0, Some(st), true) => format!("{}{c}\x1b[0m{pad}", st.color()),
                _ => format!("{c}{pad}"),
            };
            s.push_str(&cell);
            s.push_str(if i + 1 < cols.len() { "  " } else { "" });
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = format!(
        "redline status of {}: rates over {:.1} s; levels: {}\n\n",
        report.source, report.window_seconds, report.thresholds
    );
    out.push_str(&line(&HEADERS.map(String::from), None));
    for (r, c) in report.rows.iter().zip(&rows) {
        out.push_str(&line(c, Some(r.state)));
    }
    out.push_str(&format!("\n{}\n", summary(report)));
    out
}

/// A markdown report (for a CI job summary or a ticket).
pub fn markdown(report: &Report) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "# redline status: {}\n\n{}; rates over {:.1} s; levels: {}.\n\n| {} |\n|{}\n",
        report.level.word(),
        report.source,
        report.window_seconds,
        report.thresholds,
        HEADERS.map(|h| h.to_lowercase()).join(" | "),
        "---|".repeat(HEADERS.len())
    );
    for r in &report.rows {
        let c = cells(r);
        let series = if c[2].is_empty() { String::new() } else { format!("`{}`", esc(&c[2])) };
        out.push_str(&format!(
            "| {} | {} | {series} | {} | {} | {} | {} |\n",
            if r.crossed { format!("**{}**", c[0]) } else { c[0].clone() },
            c[1],
            esc(&c[3]),
            esc(&c[4]),
            esc(&c[5]),
            esc(&c[6])
        ));
    }
    out.push_str(&format!("\n{}\n", summary(report)));
    out
}

/// JSON, for scripts: the report with every row.
pub fn json(report: &Report) -> String {
    // Plain data with finite numbers (NaN became null): serialising cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(t: f64, body: &str) -> Snapshot {
        let mut s = Snapshot::parse(body);
        s.taken_at = t;
        s
    }

    const BEFORE: &str = "redline_redis_evicted_keys_total{target=\"t\"} 10\nredline_redis_memory_used_bytes{target=\"t\"} 500\nredline_redis_memory_max_bytes{target=\"t\"} 1000\nredline_queue_oldest_ready_timestamp_seconds{target=\"t\",system=\"bullmq\",queue=\"payments\"} 990\nredline_queue_oldest_ready_timestamp_seconds{target=\"t\",system=\"bullmq\",queue=\"mail\"} 600\n";
    const AFTER: &str = "redline_redis_evicted_keys_total{target=\"t\"} 60\nredline_redis_memory_used_bytes{target=\"t\"} 850\nredline_redis_memory_max_bytes{target=\"t\"} 1000\nredline_queue_oldest_ready_timestamp_seconds{target=\"t\",system=\"bullmq\",queue=\"payments\"} 990\nredline_queue_oldest_ready_timestamp_seconds{target=\"t\",system=\"bullmq\",queue=\"mail\"} 600\n";

    fn report() -> Report {
        let t = Thresholds::parse(include_str!("../rules/thresholds.yaml"), "t").expect("shipped");
        let rows = rows(&t, &snap(1000.0, BEFORE), &snap(1010.0, AFTER));
        let level = rows.iter().map(|r| r.state).min().filter(|s| *s <= State::Warning).unwrap_or(State::Ok);
        Report { source: "test".into(), window_seconds: 10.0, thresholds: "shipped".into(), level, rows }
    }

    #[test]
    fn rows_are_judged_worst_first_with_headroom() {
        let r = report();
        assert_eq!(r.rows[0].alert, "RedisEvictingKeys");
        assert_eq!(r.rows[0].state, State::Critical);
        assert_eq!(r.rows[0].value, Some(5.0));
        assert_eq!((r.rows[0].headroom, r.rows[0].headroom_to), (Some(-5.0), Some("critical")));
        // 85% of maxmemory: warning (80%), 5 points to critical (90%).
        let mem = r.rows.iter().find(|x| x.key == "redis_memory_near_limit").expect("memory row");
        assert_eq!(mem.state, State::Warning);
        assert!((mem.headroom.expect("headroom") - 0.05).abs() < 1e-9 && mem.headroom_to == Some("critical"));
        // The payments queue is judged by its override (warning 30 s), the mail queue by the default.
        let pay =
            r.rows.iter().find(|x| x.labels.get("queue").is_some_and(|q| q == "payments")).expect("payments");
        assert_eq!(
            (pay.state, pay.override_name.as_deref(), pay.warning),
            (State::Ok, Some("queue=payments"), Some(30.0))
        );
        let mail = r.rows.iter().find(|x| x.labels.get("queue").is_some_and(|q| q == "mail")).expect("mail");
        assert_eq!(mail.state, State::Warning);
        // Alerts with nothing to judge are listed, after the judged ones.
        let pg = r.rows.iter().find(|x| x.key == "pg_down").expect("pg row");
        assert_eq!(pg.state, State::NoData);
        let first_no_data = r.rows.iter().position(|x| x.state == State::NoData).expect("no data rows");
        assert!(r.rows[..first_no_data].iter().all(|x| x.state <= State::Ok));
        assert!(r.rows[first_no_data..].iter().all(|x| x.state >= State::NoData));
        assert_eq!(r.exit_code(FailOn::Warning), 2);
    }

    #[test]
    fn exit_codes_and_formats() {
        let mut r = report();
        r.level = State::Warning;
        assert_eq!((r.exit_code(FailOn::Warning), r.exit_code(FailOn::Critical)), (1, 0));
        r.level = State::Ok;
        assert_eq!(r.exit_code(FailOn::Warning), 0);
        let plain = text(&r, false);
        assert!(
            !plain.contains('\x1b') && plain.contains("LEVEL") && plain.contains("5/s past critical"),
            "{plain}"
        );
        assert!(text(&r, true).contains("\x1b[1;31mCRITICAL\x1b[0m"));
        let md = markdown(&r);
        assert!(
            md.contains("| level | alert | series |") && md.contains("| **CRITICAL** | RedisEvictingKeys |"),
            "{md}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&json(&r)).expect("json");
        assert_eq!(parsed["rows"][0]["state"], "critical");
        assert_eq!(parsed["rows"][0]["labels"]["target"], "t");
    }

    #[test]
    fn levels_in_force_come_back_from_the_daemons_series() {
        let body = "redline_threshold{alert=\"QueueJobsWaitingTooLong\",key=\"queue_oldest_ready_age\",severity=\"warning\"} 300\nredline_threshold{alert=\"QueueJobsWaitingTooLong\",key=\"queue_oldest_ready_age\",severity=\"critical\"} 900\nredline_threshold{alert=\"QueueJobsWaitingTooLong\",key=\"queue_oldest_ready_age\",severity=\"critical\",override=\"queue=payments,target=t\"} 60\nredline_threshold{alert=\"RedisDown\",key=\"redis_down\",severity=\"critical\"} 1\n";
        let t = thresholds_from_capture(&snap(0.0, body)).expect("thresholds");
        let q = t.get("queue_oldest_ready_age").expect("queue");
        assert!(q.enabled);
        assert_eq!((q.levels.warning, q.levels.critical), (Some(300.0), Some(900.0)));
        assert_eq!(q.overrides.len(), 1);
        assert_eq!(q.overrides[0].0.get("target").map(String::as_str), Some("t"));
        assert_eq!(q.overrides[0].1.critical, Some(60.0));
        assert!(!t.get("host_load").expect("host").enabled, "not published = disabled");
        assert!(thresholds_from_capture(&snap(0.0, "x 1\n")).is_none());
    }

    #[test]
    fn values_read_well() {
        assert_eq!(show(Unit::Seconds, 312.4), "5m12s");
        assert_eq!(show(Unit::Seconds, 0.01234), "0.0123s");
        assert_eq!(show(Unit::PerSecond, 1234.6), "1235/s");
        assert_eq!(show(Unit::Bytes, 5.0 * 1024.0 * 1024.0), "5 MiB");
        assert_eq!(show(Unit::Ratio, 0.8512), "85.1%");
        assert_eq!(metrics_url("http://h:9860"), "http://h:9860/metrics");
        assert_eq!(metrics_url("http://h:9860/metrics"), "http://h:9860/metrics");
    }
}
