//! Encodes a set of families for `/metrics`: OpenMetrics through prometheus-client, and the
//! classic Prometheus text format (0.0.4) derived from it for scrapers that ask for that.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::metrics::{Family, Kind, Value};

/// Content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text 0.0.4.
    Text,
}

impl Format {
    /// Picks the format from an HTTP `Accept` header: OpenMetrics only when asked for.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// Adapter: lets prometheus-client encode our families.
#[derive(Debug)]
struct Families<'a>(&'a [Family]);

impl Families<'_> {
    fn encode_into(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        for f in self.0.iter().filter(|f| !f.samples.is_empty()) {
            let ty = match f.kind {
                Kind::Gauge => MetricType::Gauge,
                Kind::Counter => MetricType::Counter,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut me = enc.encode_descriptor(f.name, f.help, None, ty)?;
            for s in &f.samples {
                let mut fe = me.encode_family(&s.labels)?;
                match (&s.value, f.kind) {
                    (Value::Number(v), Kind::Counter) => {
                        fe.encode_counter::<NoLabelSet, f64, f64>(v, None)?
                    }
                    (Value::Number(v), _) => fe.encode_gauge(v)?,
                    (Value::Histogram { sum, count, buckets }, _) => {
                        let per_bucket = per_bucket_counts(buckets, *count);
                        fe.encode_histogram::<NoLabelSet>(*sum, *count, &per_bucket, None)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// Cumulative buckets -> the per-bucket counts prometheus-client expects, ending in `+Inf`.
fn per_bucket_counts(cumulative: &[(f64, u64)], count: u64) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(cumulative.len() + 1);
    let mut prev = 0u64;
    for &(le, c) in cumulative {
        out.push((le, c.saturating_sub(prev)));
        prev = prev.max(c);
    }
    out.push((f64::INFINITY, count.saturating_sub(prev)));
    out
}

/// prometheus-client's registry wants a `'static` collector; this holds a shared handle.
#[derive(Debug)]
struct Owned(std::sync::Arc<Vec<Family>>);

impl Collector for Owned {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        Families(&self.0).encode_into(encoder)
    }
}

/// Encodes sets of families in the requested format. Each family name must occur once across
/// all parts (the scheduler merges per-collector output before it gets here).
pub fn encode(parts: Vec<std::sync::Arc<Vec<Family>>>, format: Format) -> String {
    let mut registry = Registry::default();
    for families in parts {
        registry.register_collector(Box::new(Owned(families)));
    }
    let mut om = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail; an Err here would be a bug in the encoder.
    if prometheus_client::encoding::text::encode(&mut om, &registry).is_err() {
        tracing::error!("metrics encoding failed");
    }
    match format {
        Format::OpenMetrics => drop_empty_braces(&om),
        Format::Text => openmetrics_to_text(&om),
    }
}

/// `name{} 1` -> `name 1`: prometheus-client writes empty braces for label-less samples.
fn push_sample_line(out: &mut String, line: &str) {
    match line.split_once("{} ") {
        Some((name, rest)) if !line.starts_with('#') => {
            out.push_str(name);
            out.push(' ');
            out.push_str(rest);
        }
        _ => out.push_str(line),
    }
    out.push('\n');
}

fn drop_empty_braces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        push_sample_line(&mut out, line);
    }
    out
}

/// Rewrites OpenMetrics text as Prometheus text 0.0.4: counters are declared under their
/// `_total` sample name, and `# UNIT` / `# EOF` lines are dropped.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut pending_help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let (name, ty) = match ty {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_string(), "untyped"),
                other => (name.to_string(), other),
            };
            if let Some(help) = pending_help.take() {
                let text = help.split_once(' ').map(|(_, h)| h).unwrap_or("");
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {ty}\n"));
            continue;
        }
        push_sample_line(&mut out, line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{label, MetricDef};
    use std::sync::Arc;

    fn sample() -> Arc<Vec<Family>> {
        let mut h = Family::new(&MetricDef::histogram("redline_test_latency_seconds", "Latency."));
        h.push_histogram(vec![label("cmd", "get")], 0.5, 10, vec![(0.001, 6), (0.002, 9)]);
        Arc::new(vec![
            Family::new(&MetricDef::counter("redline_test_events", "Events seen."))
                .with(vec![label("target", "a\"b")], 3.0),
            Family::new(&MetricDef::gauge("redline_test_bytes", "Bytes.")).with(vec![], 1.5),
            h,
        ])
    }

    #[test]
    fn openmetrics_declares_counter_family_and_ends_with_eof() {
        let om = encode(vec![sample()], Format::OpenMetrics);
        assert!(om.contains("# TYPE redline_test_events counter\n"), "{om}");
        assert!(om.contains("redline_test_events_total{target=\"a\\\"b\"} 3"), "{om}");
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn text_format_declares_counters_under_total_name() {
        let text = encode(vec![sample()], Format::Text);
        assert!(text.contains("# HELP redline_test_events_total Events seen.\n"), "{text}");
        assert!(text.contains("# TYPE redline_test_events_total counter\n"), "{text}");
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn label_less_samples_have_no_empty_braces() {
        for f in [Format::Text, Format::OpenMetrics] {
            let text = encode(vec![sample()], f);
            assert!(text.contains("\nredline_test_bytes 1.5\n"), "{text}");
            assert!(!text.contains("{}"), "{text}");
        }
    }

    #[test]
    fn histogram_buckets_stay_cumulative_with_inf() {
        let text = encode(vec![sample()], Format::Text);
        assert!(text.contains("redline_test_latency_seconds_bucket{le=\"0.001\",cmd=\"get\"} 6\n"), "{text}");
        assert!(text.contains("redline_test_latency_seconds_bucket{le=\"0.002\",cmd=\"get\"} 9\n"), "{text}");
        assert!(text.contains("redline_test_latency_seconds_bucket{le=\"+Inf\",cmd=\"get\"} 10\n"), "{text}");
    }

    #[test]
    fn negotiation_prefers_text_unless_openmetrics_is_asked() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")),
            Format::OpenMetrics
        );
    }
}
