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
}
