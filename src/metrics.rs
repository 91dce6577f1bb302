//! The in-memory sample model that collectors produce and `/metrics` encodes.
//!
//! Collectors never touch the HTTP path: they return [`Family`] values, the scheduler
//! stores them, and the encoder turns the latest stored set into text on each scrape.

use std::borrow::Cow;

/// Kind of a metric family, as Prometheus sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing value; exposed with a `_total` suffix.
    Counter,
    /// Cumulative buckets plus sum and count.
    Histogram,
}

/// One label pair. Keys are static (they come from our own code); values are reference-counted,
/// so the samples of one queue share its `target`/`system`/`prefix`/`queue` values instead of
/// holding a copy each (at 10,000 queues that was ~60 MB of a snapshot).
pub type Label = (Cow<'static, str>, std::sync::Arc<str>);

/// The value of one sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Gauge or counter value.
    Number(f64),
    /// Histogram: cumulative `(upper_bound, count)` buckets, `+Inf` excluded (the encoder adds it).
    Histogram {
        /// Sum of all observations.
        sum: f64,
        /// Number of observations.
        count: u64,
        /// Cumulative buckets in increasing bound order.
        buckets: Vec<(f64, u64)>,
    },
}

/// One sample of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label pairs, in the order they are exposed.
    pub labels: Vec<Label>,
    /// The value.
    pub value: Value,
}

/// A metric family: name, help, kind and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Name without the `_total` suffix of counters (the encoder adds it).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Kind.
    pub kind: Kind,
    /// Samples.
    pub samples: Vec<Sample>,
}

impl Family {
    /// An empty family for a metric definition.
    pub fn new(def: &MetricDef) -> Self {
        Self { name: def.name, help: def.help, kind: def.kind, samples: Vec::new() }
    }

    /// Adds a numeric sample; builder style.
    pub fn with(mut self, labels: Vec<Label>, value: f64) -> Self {
        self.push(labels, value);
        self
    }

    /// Adds a numeric sample.
    pub fn push(&mut self, labels: Vec<Label>, value: f64) {
        self.samples.push(Sample { labels, value: Value::Number(value) });
    }

    /// Adds a histogram sample with cumulative buckets.
    pub fn push_histogram(&mut self, labels: Vec<Label>, sum: f64, count: u64, buckets: Vec<(f64, u64)>) {
        self.samples.push(Sample { labels, value: Value::Histogram { sum, count, buckets } });
    }
}

/// A metric's identity: name, help and kind, declared once in [`crate::names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// Family name (counters without `_total`).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Kind.
    pub kind: Kind,
}

impl MetricDef {
    /// A gauge definition.
    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Self { name, help, kind: Kind::Gauge }
    }

    /// A counter definition; `name` is given without `_total`.
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Self { name, help, kind: Kind::Counter }
    }

    /// A histogram definition.
    pub const fn histogram(name: &'static str, help: &'static str) -> Self {
        Self { name, help, kind: Kind::Histogram }
    }

    /// The name a query uses: counters gain `_total`, the others are as declared.
    pub fn exposed(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            _ => self.name.to_string(),
        }
    }
}

/// Builds a label pair.
pub fn label(key: &'static str, value: impl Into<std::sync::Arc<str>>) -> Label {
    (Cow::Borrowed(key), value.into())
}

/// Collects families by name so one family is built from many places without
/// repeating TYPE lines (the exposition format forbids a family appearing twice).
#[derive(Debug, Default)]
pub struct FamilySet {
    families: Vec<Family>,
}

impl FamilySet {
    /// A new empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, def: &MetricDef) -> &mut Family {
        let pos = match self.families.iter().position(|f| f.name == def.name) {
            Some(p) => p,
            None => {
                self.families.push(Family::new(def));
                self.families.len() - 1
            }
        };
        &mut self.families[pos]
    }

    /// Adds a gauge or counter sample.
    pub fn add(&mut self, def: &MetricDef, labels: Vec<Label>, v: f64) {
        self.entry(def).push(labels, v);
    }

    /// Adds a histogram sample with cumulative buckets.
    pub fn histogram(
        &mut self,
        def: &MetricDef,
        labels: Vec<Label>,
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    ) {
        self.entry(def).push_histogram(labels, sum, count, buckets);
    }

    /// Merges whole families (used to combine the snapshots of many collectors).
    pub fn extend(&mut self, families: impl IntoIterator<Item = Family>) {
        for f in families {
            let def = MetricDef { name: f.name, help: f.help, kind: f.kind };
            self.entry(&def).samples.extend(f.samples);
        }
    }

    /// The families, in first-seen order.
    pub fn into_families(self) -> Vec<Family> {
        self.families
    }
}
