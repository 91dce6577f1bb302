//! Queue sources in the daemon config: which queue system, under which key prefix, and which
//! queues to watch or discover on a Redis target. Settings only; the collectors that read
//! the queues live in `collect::queues`.

use serde::Deserialize;

/// Supported queue systems (the `system` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// BullMQ (npm `bullmq`) v5 and v6.
    Bullmq,
    /// Bull v3/v4 (npm `bull`).
    Bull,
    /// Celery with the Redis broker (kombu), priority sub-queues included.
    Celery,
    /// RQ (Python `rq`).
    Rq,
    /// Sidekiq.
    Sidekiq,
    /// Redis Streams consumer groups.
    Stream,
}

impl System {
    /// The `system` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            System::Bullmq => "bullmq",
            System::Bull => "bull",
            System::Celery => "celery",
            System::Rq => "rq",
            System::Sidekiq => "sidekiq",
            System::Stream => "stream",
        }
    }

    /// Key prefix used when the config names none: BullMQ/Bull `prefix`, RQ's `rq`, the Sidekiq
    /// namespace (none), kombu's `global_keyprefix` (none), a stream key prefix (none).
    pub fn default_prefix(self) -> &'static str {
        match self {
            System::Bullmq | System::Bull => "bull",
            System::Rq => "rq",
            System::Celery | System::Sidekiq | System::Stream => "",
        }
    }
}

/// Where to find queues of one system on a Redis target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSource {
    /// Queue system.
    pub system: System,
    /// Key prefix (BullMQ/Bull `prefix` option, `{hash-tag}` prefixes included).
    pub prefix: Option<String>,
    /// Queues to watch; they need no discovery.
    #[serde(default)]
    pub names: Vec<String>,
    /// Find more queues with a background SCAN. Defaults to true when `names` is empty.
    pub discover: Option<bool>,
    /// Celery only: kombu's separator between a queue name and its priority step
    /// (`broker_transport_options={'sep': ...}`). Unset: taken from kombu's own binding keys
    /// when discovery finds the queue, else kombu's default `"\x06\x16"`.
    pub sep: Option<String>,
    /// Celery only: kombu's `priority_steps`. Unset: every step kombu can produce (0-9) is
    /// read, which covers any setting at the cost of a few more key lookups per queue.
    pub priority_steps: Option<Vec<i64>>,
}

impl QueueSource {
    /// The prefix in effect.
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(self.system.default_prefix())
    }

    /// Whether discovery is on.
    pub fn discovers(&self) -> bool {
        self.discover.unwrap_or(self.names.is_empty())
    }

    /// Problems with the system-specific settings, one message each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.system != System::Celery {
            if self.sep.is_some() {
                out.push(format!("sep applies to celery only, not {}", self.system.as_str()));
            }
            if self.priority_steps.is_some() {
                out.push(format!("priority_steps applies to celery only, not {}", self.system.as_str()));
            }
            return out;
        }
        if self.sep.as_deref() == Some("") {
            out.push("sep must not be empty".into());
        }
        if let Some(steps) = &self.priority_steps {
            if steps.is_empty() {
                out.push("priority_steps must list at least one step".into());
            }
            if steps.windows(2).any(|w| w[0] >= w[1]) {
                out.push("priority_steps must be in ascending order, as kombu requires".into());
            }
        }
        out
    }
}

/// Which queues get their own wait/processing histograms (`limits.queue_histograms`): 36
/// series per queue, so off by default; every queue's jobs always feed the histograms of its
/// system and prefix (`redline_queue_all_*`). `true` = every queue, `false` = none, or a list of
/// glob patterns (`*`, `?`, `[a-z]`) matched against queue names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueHistograms {
    all: bool,
    patterns: Vec<glob::Pattern>,
}

impl<'de> Deserialize<'de> for QueueHistograms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = QueueHistograms;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a list of queue name patterns")
            }

            fn visit_bool<E: serde::de::Error>(self, all: bool) -> Result<Self::Value, E> {
                Ok(QueueHistograms { all, patterns: Vec::new() })
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut patterns = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    let i = patterns.len();
                    patterns.push(glob::Pattern::new(&p).map_err(|e| {
                        serde::de::Error::custom(format!(
                            "queue_histograms[{i}] is not a glob pattern: {}",
                            e.msg
                        ))
                    })?);
                }
                Ok(QueueHistograms { all: false, patterns })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl QueueHistograms {
    /// Every queue gets its own histograms.
    pub fn all() -> Self {
        Self { all: true, patterns: Vec::new() }
    }

    /// How many patterns were given.
    pub fn patterns(&self) -> usize {
        self.patterns.len()
    }

    /// Whether the queue `name` gets its own histograms.
    pub fn per_queue(&self, name: &str) -> bool {
        self.all || self.patterns.iter().any(|p| p.matches(name))
    }
}

/// kombu's default separator between a queue name and its priority step.
pub const KOMBU_SEP: &str = "\x06\x16";

#[cfg(test)]
mod tests {
    use super::*;

    fn source(yaml: &str) -> QueueSource {
        serde_yaml_ng::from_str(yaml).expect("queue source")
    }

    #[test]
    fn queue_histograms_take_a_flag_or_patterns() {
        let h = |y: &str| serde_yaml_ng::from_str::<QueueHistograms>(y);
        assert!(h("true").expect("flag").per_queue("any"));
        assert!(!h("false").expect("flag").per_queue("any"));
        assert!(!QueueHistograms::default().per_queue("any"), "off by default");
        let p = h("[\"pay*\", \"emails\"]").expect("patterns");
        assert!(p.per_queue("payments") && p.per_queue("emails"));
        assert!(!p.per_queue("emails-2") && !p.per_queue("reports"));
        let e = h("[\"ok\", \"[z-\"]").expect_err("bad pattern").to_string();
        assert!(e.contains("queue_histograms[1] is not a glob pattern"), "{e}");
        let e = h("7").expect_err("a number").to_string();
        assert!(e.contains("expected true, false or a list of queue name patterns"), "{e}");
    }

    #[test]
    fn celery_takes_sep_and_priority_steps() {
        let s = source("system: celery\nsep: \":\"\npriority_steps: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n");
        assert_eq!(s.sep.as_deref(), Some(":"));
        assert_eq!(s.priority_steps.as_ref().map(Vec::len), Some(10));
        assert!(s.problems().is_empty());
    }

    #[test]
    fn kombu_settings_elsewhere_or_malformed_are_problems() {
        assert_eq!(source("system: rq\nsep: \":\"\n").problems().len(), 1);
        assert_eq!(source("system: celery\nsep: \"\"\n").problems().len(), 1);
        assert_eq!(source("system: celery\npriority_steps: [3, 0]\n").problems().len(), 1);
        assert_eq!(source("system: celery\npriority_steps: []\n").problems().len(), 1);
    }
}
