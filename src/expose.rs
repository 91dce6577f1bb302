//! Encodes families for `/metrics` in the Prometheus text format (0.0.4) and OpenMetrics 1.0,
//! written directly from the sample model, and keeps each encoded body of one snapshot
//! ([`Exposition`]) so scrapes of an unchanged snapshot are served bytes, never re-encoded.

use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use hyper::body::Bytes;

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
    /// Picks the format from an HTTP `Accept` header: OpenMetrics only when asked for with a
    /// weight above 0 and at least that of text (media types compare case-insensitively).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let (mut om, mut text) = (0.0_f64, 0.0_f64);
        for entry in accept.unwrap_or("").split(',') {
            let mut parts = entry.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, v)| v.trim().parse().unwrap_or(0.0));
            match media.as_str() {
                "application/openmetrics-text" => om = om.max(q),
                "text/plain" | "*/*" | "text/*" => text = text.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= text {
            Format::OpenMetrics
        } else {
            Format::Text
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

/// Appends a sample value: whole numbers without a fraction (`3`, not `3.0`: most samples are
/// counts, and 2 bytes each add up at 10,000 queues), else the shortest round-trip decimal;
/// the spellings both formats accept for the rest.
fn push_f64(out: &mut Vec<u8>, v: f64) {
    // Below 2^53 every whole f64 is an exact i64.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.fract() == 0.0 && v.abs() < EXACT && !(v == 0.0 && v.is_sign_negative()) {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        push_float(out, v);
    }
}

/// Appends a finite number as the shortest round-trip decimal, always with a fraction: `le`
/// bounds keep the spelling queries match (`le="30.0"`).
fn push_float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(dtoa::Buffer::new().format_finite(v).as_bytes());
    } else {
        push_f64(out, v);
    }
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Label values escape backslash, double quote and newline (both formats).
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b => out.push(b),
        }
    }
}

/// HELP text escapes backslash and newline; OpenMetrics also double quotes.
fn push_help(out: &mut Vec<u8>, s: &str, format: Format) {
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '"' if format == Format::OpenMetrics => out.extend_from_slice(b"\\\""),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// `name{labels} ` (braces left out when there are no labels); `le` goes first for buckets.
fn push_series(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    le: Option<f64>,
    labels: &[crate::metrics::Label],
) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if le.is_some() || !labels.is_empty() {
        out.push(b'{');
        let mut first = true;
        if let Some(le) = le {
            out.extend_from_slice(b"le=\"");
            push_float(out, le);
            out.push(b'"');
            first = false;
        }
        for (k, v) in labels {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"=\"");
            push_escaped(out, v);
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
}

/// Encodes one family from its parts (the same family from several collectors): one HELP and
/// TYPE, then every part's samples. Counters are declared as `name_total` in 0.0.4 and as `name`
/// in OpenMetrics; their samples are `name_total` in both.
fn encode_family(out: &mut Vec<u8>, parts: &[&Family], format: Format) {
    let Some(f) = parts.iter().find(|f| !f.samples.is_empty()) else {
        return;
    };
    let (declared, ty, sample_suffix) = match (f.kind, format) {
        (Kind::Counter, Format::Text) => (format!("{}_total", f.name), "counter", "_total"),
        (Kind::Counter, Format::OpenMetrics) => (f.name.to_string(), "counter", "_total"),
        (Kind::Gauge, _) => (f.name.to_string(), "gauge", ""),
        (Kind::Histogram, _) => (f.name.to_string(), "histogram", ""),
    };
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(declared.as_bytes());
    out.push(b' ');
    push_help(out, f.help, format);
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(declared.as_bytes());
    out.push(b' ');
    out.extend_from_slice(ty.as_bytes());
    out.push(b'\n');
    for s in parts.iter().flat_map(|f| f.samples.iter()) {
        match &s.value {
            Value::Number(v) => {
                push_series(out, f.name, sample_suffix, None, &s.labels);
                push_f64(out, *v);
                out.push(b'\n');
            }
            Value::Histogram { sum, count, buckets } => {
                // Cumulative buckets as stored, then +Inf = count (never below the last bucket).
                let mut last = 0u64;
                for &(le, c) in buckets {
                    last = last.max(c);
                    push_series(out, f.name, "_bucket", Some(le), &s.labels);
                    push_u64(out, last);
                    out.push(b'\n');
                }
                let total = (*count).max(last);
                push_series(out, f.name, "_bucket", Some(f64::INFINITY), &s.labels);
                push_u64(out, total);
                out.push(b'\n');
                push_series(out, f.name, "_sum", None, &s.labels);
                push_f64(out, *sum);
                out.push(b'\n');
                push_series(out, f.name, "_count", None, &s.labels);
                push_u64(out, total);
                out.push(b'\n');
            }
        }
    }
}

/// Encodes families as bytes. A family name found in several parts (e.g. two Redis targets'
/// collectors) is written once, in the order names first appear, with the samples of each part.
pub fn encode_bytes(parts: &[Arc<Vec<Family>>], format: Format) -> Vec<u8> {
    let mut order: Vec<Vec<&Family>> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for f in parts.iter().flat_map(|p| p.iter()) {
        match index.get(f.name) {
            Some(&i) => order[i].push(f),
            None => {
                index.insert(f.name, order.len());
                order.push(vec![f]);
            }
        }
    }
    let size: usize = parts.iter().flat_map(|p| p.iter()).map(|f| f.samples.len() * 112).sum();
    let mut out = Vec::with_capacity(size.max(16 * 1024));
    for group in &order {
        encode_family(&mut out, group, format);
    }
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
    // The body lives as long as its snapshot: do not keep a grown buffer's spare half with it
    // (18 MB of text at 10,000 queues sat in a 35 MB allocation).
    out.shrink_to_fit();
    out
}

/// Encodes families as text (see [`encode_bytes`]).
pub fn encode(parts: Vec<Arc<Vec<Family>>>, format: Format) -> String {
    // The encoder writes only UTF-8 (names, escaped UTF-8 values, ASCII numbers).
    String::from_utf8(encode_bytes(&parts, format)).unwrap_or_default()
}

/// gzip of `body`, made once per snapshot and format. Level 1: the exposition format is so
/// repetitive that it still shrinks ~10x, at a fraction of the CPU of the default level.
fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 8), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(body);
    let mut out = enc.finish().unwrap_or_default();
    out.shrink_to_fit();
    out
}

/// One snapshot's bodies: each format, plain and gzipped, encoded on first request and then
/// served as shared bytes (one copy in memory however many scrapes hold it) until the snapshot
/// changes and a new `Exposition` replaces this one.
#[derive(Debug)]
pub struct Exposition {
    parts: Vec<Arc<Vec<Family>>>,
    bodies: [OnceLock<Bytes>; 4],
}

impl Exposition {
    /// A snapshot's families (shared parts, merged by name when encoded), not encoded yet.
    pub fn new(parts: Vec<Arc<Vec<Family>>>) -> Self {
        Exposition { parts, bodies: Default::default() }
    }

    fn slot(format: Format, gzipped: bool) -> usize {
        (format == Format::OpenMetrics) as usize * 2 + gzipped as usize
    }

    /// The body if it was encoded already (cheap; the caller encodes off the async threads
    /// otherwise).
    pub fn cached(&self, format: Format, gzipped: bool) -> Option<Bytes> {
        self.bodies[Self::slot(format, gzipped)].get().cloned()
    }

    /// The body, encoding it now if no scrape asked for it yet.
    pub fn body(&self, format: Format, gzipped: bool) -> Bytes {
        self.bodies[Self::slot(format, gzipped)]
            .get_or_init(|| {
                if gzipped {
                    Bytes::from(gzip(&self.body(format, false)))
                } else {
                    Bytes::from(encode_bytes(&self.parts, format))
                }
            })
            .clone()
    }

    /// The families this snapshot holds, in parts.
    pub fn parts(&self) -> &[Arc<Vec<Family>>] {
        &self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{label, MetricDef};

    #[test]
    fn a_family_in_several_parts_is_declared_once_with_every_sample() {
        let part = |t: &str| {
            Arc::new(vec![Family::new(&MetricDef::gauge("redline_test_mem", "Memory."))
                .with(vec![label("target", t)], 1.0)])
        };
        let empty = Arc::new(vec![Family::new(&MetricDef::gauge("redline_test_mem", "Memory."))]);
        let text = encode(vec![empty, part("a"), part("b")], Format::Text);
        assert_eq!(text.matches("# TYPE redline_test_mem gauge").count(), 1, "{text}");
        assert_eq!(
            text,
            "# HELP redline_test_mem Memory.\n# TYPE redline_test_mem gauge\nredline_test_mem{target=\"a\"} 1\nredline_test_mem{target=\"b\"} 1\n"
        );
    }

    fn sample() -> Arc<Vec<Family>> {
        let mut h = Family::new(&MetricDef::histogram("redline_test_latency_seconds", "Latency."));
        h.push_histogram(vec![label("cmd", "get")], 0.5, 10, vec![(0.001, 6), (0.002, 9)]);
        Arc::new(vec![
            Family::new(&MetricDef::counter("redline_test_events", "Events seen."))
                .with(vec![label("target", "a\"b")], 3.0),
            Family::new(&MetricDef::gauge("redline_test_bytes", "Bytes \\ and\nnewline.")).with(vec![], 1.5),
            Family::new(&MetricDef::gauge("redline_test_odd", "Odd values."))
                .with(vec![label("v", "nan")], f64::NAN)
                .with(vec![label("v", "inf")], f64::INFINITY),
            h,
            Family::new(&MetricDef::gauge("redline_test_empty", "No samples.")),
        ])
    }

    #[test]
    fn openmetrics_declares_counter_family_and_ends_with_eof() {
        let om = encode(vec![sample()], Format::OpenMetrics);
        assert!(om.contains("# TYPE redline_test_events counter\n"), "{om}");
        assert!(om.contains("redline_test_events_total{target=\"a\\\"b\"} 3\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        assert_eq!(om.matches("# EOF").count(), 1);
    }

    #[test]
    fn text_format_declares_counters_under_total_name() {
        let text = encode(vec![sample()], Format::Text);
        assert!(text.contains("# HELP redline_test_events_total Events seen.\n"), "{text}");
        assert!(text.contains("# TYPE redline_test_events_total counter\n"), "{text}");
        assert!(text.contains("# HELP redline_test_bytes Bytes \\\\ and\\nnewline.\n"), "{text}");
        assert!(!text.contains("# EOF") && !text.contains("redline_test_empty"));
    }

    #[test]
    fn label_less_samples_have_no_braces_and_odd_values_are_spelled_out() {
        for f in [Format::Text, Format::OpenMetrics] {
            let text = encode(vec![sample()], f);
            assert!(text.contains("\nredline_test_bytes 1.5\n"), "{text}");
            assert!(!text.contains("{}"), "{text}");
            assert!(text.contains("redline_test_odd{v=\"nan\"} NaN\n"), "{text}");
            assert!(text.contains("redline_test_odd{v=\"inf\"} +Inf\n"), "{text}");
        }
    }

    #[test]
    fn histogram_buckets_stay_cumulative_with_inf() {
        let text = encode(vec![sample()], Format::Text);
        assert!(text.contains("redline_test_latency_seconds_bucket{le=\"0.001\",cmd=\"get\"} 6\n"), "{text}");
        assert!(text.contains("redline_test_latency_seconds_bucket{le=\"0.002\",cmd=\"get\"} 9\n"), "{text}");
        assert!(text.contains("redline_test_latency_seconds_bucket{le=\"+Inf\",cmd=\"get\"} 10\n"), "{text}");
        assert!(text.contains("redline_test_latency_seconds_count{cmd=\"get\"} 10\n"), "{text}");
        assert!(text.contains("redline_test_latency_seconds_sum{cmd=\"get\"} 0.5\n"), "{text}");
    }

    #[test]
    fn negotiation_prefers_text_unless_openmetrics_is_asked() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")),
            Format::OpenMetrics
        );
        // What Prometheus sends.
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0,text/plain")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("APPLICATION/OPENMETRICS-TEXT; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0.2,text/plain")), Format::Text);
    }

    #[test]
    fn exposition_encodes_once_and_gzip_decodes_to_the_text() {
        let e = Exposition::new(vec![sample()]);
        assert!(e.cached(Format::Text, false).is_none());
        let a = e.body(Format::Text, false);
        let b = e.body(Format::Text, false);
        // The same allocation is handed out again, not an equal copy.
        assert_eq!(a.as_ptr(), b.as_ptr());
        let gz = e.body(Format::Text, true);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).expect("gunzip");
        assert_eq!(plain, a);
        assert_ne!(e.body(Format::OpenMetrics, false), a);
    }
}
