//! Every alert redline knows, defined once: its PromQL (built from the metric names in
//! `names`), how it compares, its default levels, its text, and the input series that make
//! it fire in promtool unit tests. Rules, dashboards and rule tests are all derived from here
//! and the thresholds file, so the page, the rule and the graph cannot disagree.

use std::time::Duration;

use crate::names as n;

/// Rule group / dashboard an alert belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Area {
    /// Redis servers.
    Redis,
    /// Job queues.
    Queues,
    /// PostgreSQL servers.
    Postgres,
    /// The host.
    Host,
    /// redline itself.
    Redline,
}

impl Area {
    /// All areas in output order.
    pub const ALL: [Area; 5] = [Area::Redis, Area::Queues, Area::Postgres, Area::Host, Area::Redline];

    /// Lower-case name (rule group suffix, dashboard file name).
    pub fn name(self) -> &'static str {
        match self {
            Area::Redis => "redis",
            Area::Queues => "queues",
            Area::Postgres => "postgres",
            Area::Host => "host",
            Area::Redline => "redline",
        }
    }
}

/// Which labels identify what an alert is about (and what overrides may match on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A Redis target: `target`.
    Target,
    /// A queue: `target`, `system`, `prefix`, `queue`.
    Queue,
    /// The host redline runs on: `instance` (Prometheus' own label).
    Host,
    /// A redline collector: `collector`, `target`.
    Redline,
}

impl Scope {
    /// Labels an override may match.
    pub fn override_labels(self) -> &'static [&'static str] {
        match self {
            Scope::Target => &["target"],
            Scope::Queue => &["target", "system", "prefix", "queue"],
            Scope::Host => &["instance"],
            Scope::Redline => &["collector", "target"],
        }
    }
}

/// Direction of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Fires when the value is above the threshold.
    Above,
    /// Fires when the value is below the threshold.
    Below,
}

impl Op {
    /// PromQL comparison operator.
    pub fn promql(self) -> &'static str {
        match self {
            Op::Above => ">",
            Op::Below => "<",
        }
    }

    /// For messages.
    pub fn word(self) -> &'static str {
        match self {
            Op::Above => "above the threshold",
            Op::Below => "below the threshold",
        }
    }
}

/// Unit of an alert's value: formats descriptions and sets Grafana's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// 0-1.
    Ratio,
    /// Seconds.
    Seconds,
    /// A count.
    Count,
    /// Events per second.
    PerSecond,
    /// Bytes.
    Bytes,
    /// 0/1 state.
    Bool,
}

impl Unit {
    /// Whether thresholds must lie in 0..=1.
    pub fn is_ratio(self) -> bool {
        self == Unit::Ratio
    }

    /// Grafana unit id.
    pub fn grafana(self) -> &'static str {
        match self {
            Unit::Ratio => "percentunit",
            Unit::Seconds => "s",
            Unit::Count => "short",
            Unit::PerSecond => "ops",
            Unit::Bytes => "bytes",
            Unit::Bool => "bool",
        }
    }

    /// Prometheus template formatting `$value` in descriptions.
    pub fn template(self) -> &'static str {
        match self {
            Unit::Ratio => "{{ $value | humanizePercentage }}",
            Unit::Seconds => "{{ $value | humanizeDuration }}",
            Unit::Bytes => "{{ $value | humanize1024 }}B",
            Unit::PerSecond => "{{ $value | humanize }}/s",
            Unit::Count | Unit::Bool => "{{ $value | humanize }}",
        }
    }
}

/// Default levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// Warning threshold.
    pub warning: Option<f64>,
    /// Critical threshold.
    pub critical: Option<f64>,
    /// `for` duration.
    pub for_: Duration,
}

/// A promtool input series: `(series selector, values notation)`. `{L}` in the selector is
/// replaced by the fixture's identifying labels.
pub type Series = (String, String);

/// One alert.
#[derive(Debug)]
pub struct AlertDef {
    /// Key in the thresholds file.
    pub key: &'static str,
    /// Alert name (CamelCase); warning and critical share it and differ by `severity`.
    pub alert: &'static str,
    /// Rule group and dashboard.
    pub area: Area,
    /// What the alert is about.
    pub scope: Scope,
    /// Comparison.
    pub op: Op,
    /// Unit of the value.
    pub unit: Unit,
    /// The value expression, given extra label matchers (`target="a",queue!="b"`, may be empty).
    pub expr: fn(&str) -> String,
    /// Summary (may use `{{ $labels.x }}`).
    pub summary: &'static str,
    /// What it means and what to check first; `{value}` and `{threshold}` are filled in.
    pub description: &'static str,
    /// Default levels.
    pub default: Defaults,
    /// Dashboard panel title.
    pub panel: &'static str,
    /// promtool input series making the value equal `v`, and the labels the alert then carries
    /// besides `alertname` and `severity` (`{L}` in selectors = these identifying labels).
    pub fixture: fn(f64) -> Vec<Series>,
    /// Labels of the alert fired from the fixture.
    pub fixture_labels: &'static [(&'static str, &'static str)],
}

/// `{a,b}` from matchers, dropping empty parts.
pub fn sel(parts: &[&str]) -> String {
    let parts: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

const fn d(warning: Option<f64>, critical: Option<f64>, for_secs: u64) -> Defaults {
    Defaults { warning, critical, for_: Duration::from_secs(for_secs) }
}

/// A constant gauge series.
fn gauge(name: String, labels: &str, v: f64) -> Series {
    (format!("{name}{labels}"), format!("{v}x40"))
}

/// A timestamp gauge that is always `age` seconds behind the sample time (one sample a minute
/// from time 0), so `time() - series` equals `age` at every whole-minute evaluation.
fn since(name: String, labels: &str, age: f64) -> Series {
    (format!("{name}{labels}"), format!("{}+60x40", 0.0 - age))
}

/// A counter growing by `per_sec` each second, sampled every minute.
fn counter(name: String, labels: &str, per_sec: f64) -> Series {
    (format!("{name}{labels}"), format!("0+{}x40", per_sec * 60.0))
}

const T: &str = "{target=\"t\"}";
const T_LABELS: &[(&str, &str)] = &[("target", "t")];
const Q: &str = "{target=\"t\",system=\"bullmq\",queue=\"q\"}";
const Q_LABELS: &[(&str, &str)] = &[("target", "t"), ("system", "bullmq"), ("queue", "q")];

/// The catalogue.
pub static ALERTS: &[AlertDef] = &[
    // ---------------- Redis ----------------
    AlertDef {
        key: "redis_down",
        alert: "RedisDown",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Below,
        unit: Unit::Bool,
        expr: |s| format!("{}{}", n::TARGET_UP.exposed(), sel(&["collector=\"redis\"", s])),
        summary: "Redis {{ $labels.target }} is unreachable",
        description: "redline cannot connect to or read Redis {{ $labels.target }}. Queues on it are not being served or watched. Check the server, the network and credentials (redline's log names the error).",
        default: d(None, Some(1.0), 60),
        panel: "Up",
        fixture: |v| vec![gauge(n::TARGET_UP.exposed(), "{collector=\"redis\",target=\"t\"}", v)],
        fixture_labels: &[("collector", "redis"), ("target", "t")],
    },
    AlertDef {
        key: "redis_evicting",
        alert: "RedisEvictingKeys",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::PerSecond,
        expr: |s| format!("rate({}{}[5m])", n::REDIS_EVICTED_KEYS.exposed(), sel(&[s])),
        summary: "Redis {{ $labels.target }} is evicting keys",
        description: "Redis {{ $labels.target }} evicts {value} under maxmemory (threshold {threshold}). On a queue backend evictions delete jobs. Raise maxmemory, cut memory use, or set maxmemory-policy noeviction.",
        default: d(None, Some(0.0), 60),
        panel: "Evictions",
        fixture: |v| vec![counter(n::REDIS_EVICTED_KEYS.exposed(), T, v)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_memory_near_limit",
        alert: "RedisMemoryNearLimit",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Ratio,
        // Only where maxmemory is set: with maxmemory 0 there is no limit to approach.
        expr: |s| {
            format!(
                "{}{} / ({}{} > 0)",
                n::REDIS_MEMORY_USED.exposed(),
                sel(&[s]),
                n::REDIS_MEMORY_MAX.exposed(),
                sel(&[s])
            )
        },
        summary: "Redis {{ $labels.target }} memory is near maxmemory",
        description: "Redis {{ $labels.target }} uses {value} of maxmemory (threshold {threshold}). At 100% it evicts keys or refuses writes, depending on maxmemory-policy.",
        default: d(Some(0.8), Some(0.9), 300),
        panel: "Memory used / maxmemory",
        fixture: |v| {
            vec![gauge(n::REDIS_MEMORY_USED.exposed(), T, v * 1000.0), gauge(n::REDIS_MEMORY_MAX.exposed(), T, 1000.0)]
        },
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_fragmentation",
        alert: "RedisMemoryFragmented",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Count,
        // Small instances show large ratios that mean nothing: only above 100 MiB used.
        expr: |s| {
            format!(
                "{}{} and {}{} > 104857600",
                n::REDIS_MEMORY_FRAGMENTATION.exposed(),
                sel(&[s]),
                n::REDIS_MEMORY_USED.exposed(),
                sel(&[s])
            )
        },
        summary: "Redis {{ $labels.target }} memory is fragmented",
        description: "Redis {{ $labels.target }} RSS is {value} times the memory it uses (threshold {threshold}). Consider activedefrag or a restart in a quiet hour.",
        default: d(Some(1.5), None, 1800),
        panel: "Fragmentation ratio",
        fixture: |v| {
            vec![
                gauge(n::REDIS_MEMORY_FRAGMENTATION.exposed(), T, v),
                gauge(n::REDIS_MEMORY_USED.exposed(), T, 209715200.0),
            ]
        },
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_clients_near_limit",
        alert: "RedisClientsNearLimit",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Ratio,
        expr: |s| {
            format!(
                "{}{} / ({}{} > 0)",
                n::REDIS_CLIENTS_CONNECTED.exposed(),
                sel(&[s]),
                n::REDIS_CLIENTS_MAX.exposed(),
                sel(&[s])
            )
        },
        summary: "Redis {{ $labels.target }} is running out of client connections",
        description: "Redis {{ $labels.target }} has {value} of maxclients in use (threshold {threshold}). New workers will be refused; look for connection leaks.",
        default: d(Some(0.8), Some(0.95), 300),
        panel: "Clients / maxclients",
        fixture: |v| {
            vec![gauge(n::REDIS_CLIENTS_CONNECTED.exposed(), T, v * 1000.0), gauge(n::REDIS_CLIENTS_MAX.exposed(), T, 1000.0)]
        },
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_rejected_connections",
        alert: "RedisRejectingConnections",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::PerSecond,
        expr: |s| format!("rate({}{}[5m])", n::REDIS_REJECTED_CONNECTIONS.exposed(), sel(&[s])),
        summary: "Redis {{ $labels.target }} is rejecting connections",
        description: "Redis {{ $labels.target }} rejects {value} connections because maxclients is reached (threshold {threshold}).",
        default: d(None, Some(0.0), 60),
        panel: "Rejected connections",
        fixture: |v| vec![counter(n::REDIS_REJECTED_CONNECTIONS.exposed(), T, v)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_latency_p99",
        alert: "RedisCommandLatencyHigh",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Seconds,
        expr: |s| {
            format!(
                "histogram_quantile(0.99, sum by (target, le) (rate({}_bucket{}[5m])))",
                n::REDIS_COMMAND_LATENCY.exposed(),
                sel(&[s])
            )
        },
        summary: "Redis {{ $labels.target }} commands are slow",
        description: "99th percentile command latency on Redis {{ $labels.target }} is {value} (threshold {threshold}). Check the slow log, large keys and the host's CPU.",
        default: d(Some(0.01), Some(0.05), 300),
        panel: "Command latency p99",
        fixture: |v| {
            // Every observation in the lowest bucket, bound v/0.99: p99 interpolates to v.
            let name = format!("{}_bucket", n::REDIS_COMMAND_LATENCY.exposed());
            vec![
                (format!("{name}{{target=\"t\",cmd=\"get\",le=\"{}\"}}", v / 0.99), "0+600x40".into()),
                (format!("{name}{{target=\"t\",cmd=\"get\",le=\"+Inf\"}}"), "0+600x40".into()),
            ]
        },
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_replication_broken",
        alert: "RedisReplicationBroken",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Below,
        unit: Unit::Bool,
        expr: |s| format!("{}{}", n::REDIS_MASTER_LINK_UP.exposed(), sel(&[s])),
        summary: "Redis replica {{ $labels.target }} lost its primary",
        description: "The link from replica {{ $labels.target }} to its primary is down. Reads from it go stale and failover will lose data.",
        default: d(None, Some(1.0), 120),
        panel: "Replica link up",
        fixture: |v| vec![gauge(n::REDIS_MASTER_LINK_UP.exposed(), T, v)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_replica_lag",
        alert: "RedisReplicaLagging",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Seconds,
        expr: |s| format!("max by (target) ({}{})", n::REDIS_REPLICA_LAG_SECONDS.exposed(), sel(&[s])),
        summary: "A replica of Redis {{ $labels.target }} is lagging",
        description: "A replica of {{ $labels.target }} last acknowledged {value} ago (threshold {threshold}).",
        default: d(Some(10.0), Some(30.0), 120),
        panel: "Replica lag",
        fixture: |v| {
            vec![gauge(n::REDIS_REPLICA_LAG_SECONDS.exposed(), "{target=\"t\",replica=\"10.0.0.2:6379\"}", v)]
        },
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_persistence_failing",
        alert: "RedisPersistenceFailing",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Below,
        unit: Unit::Bool,
        expr: |s| {
            format!(
                "min by (target) ({{__name__=~\"{}|{}\"{}}})",
                n::REDIS_RDB_LAST_BGSAVE_OK.exposed(),
                n::REDIS_AOF_LAST_WRITE_OK.exposed(),
                if s.is_empty() { String::new() } else { format!(",{s}") }
            )
        },
        summary: "Redis {{ $labels.target }} cannot persist to disk",
        description: "The last RDB save or AOF write on Redis {{ $labels.target }} failed. A restart would lose data; check disk space and the Redis log.",
        default: d(None, Some(1.0), 300),
        panel: "Persistence OK",
        fixture: |v| {
            vec![gauge(n::REDIS_RDB_LAST_BGSAVE_OK.exposed(), T, v), gauge(n::REDIS_AOF_LAST_WRITE_OK.exposed(), T, 1.0)]
        },
        fixture_labels: T_LABELS,
    },
    // ---------------- Redis Cluster and Sentinel ----------------
    AlertDef {
        key: "redis_cluster_state",
        alert: "RedisClusterStateNotOk",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Below,
        unit: Unit::Bool,
        expr: |s| format!("{}{}", n::REDIS_CLUSTER_STATE.exposed(), sel(&[s])),
        summary: "Redis Cluster {{ $labels.target }} is not ok",
        description: "CLUSTER INFO on {{ $labels.target }} says cluster_state is not ok: the cluster refuses commands for some or all keys (a shard without a reachable primary, or a node cut off from the majority). Check redline_redis_node_up and the slots panel.",
        default: d(None, Some(1.0), 60),
        panel: "Cluster state ok",
        fixture: |v| vec![gauge(n::REDIS_CLUSTER_STATE.exposed(), T, v)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_cluster_slots_uncovered",
        alert: "RedisClusterSlotsNotCovered",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Count,
        // Slots not served by a healthy primary: unassigned, or owned by a failing node.
        expr: |s| {
            format!("16384 - max by (target) ({}{})", n::REDIS_CLUSTER_SLOTS.exposed(), sel(&["state=\"ok\"", s]))
        },
        summary: "Redis Cluster {{ $labels.target }} does not serve every hash slot",
        description: "{value} of the 16384 hash slots of {{ $labels.target }} are unassigned or owned by a failing primary (threshold {threshold}); commands on their keys fail. A replica should take over within cluster-node-timeout; if not, fail over by hand or reassign the slots.",
        default: d(None, Some(0.0), 60),
        panel: "Slots not covered",
        fixture: |v| {
            vec![gauge(n::REDIS_CLUSTER_SLOTS.exposed(), "{target=\"t\",state=\"ok\"}", 16384.0 - v)]
        },
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_node_down",
        alert: "RedisNodeDown",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Below,
        unit: Unit::Bool,
        expr: |s| format!("{}{}", n::REDIS_NODE_UP.exposed(), sel(&[s])),
        summary: "Redis node {{ $labels.node }} of {{ $labels.target }} is down",
        description: "redline cannot read node {{ $labels.node }} ({{ $labels.role }}) of {{ $labels.target }}. A dead primary is failed over by the cluster or Sentinel; a dead replica leaves its shard without a spare. Restart it, or forget it (CLUSTER FORGET / SENTINEL RESET) if it is gone for good.",
        default: d(Some(1.0), None, 60),
        panel: "Nodes up",
        fixture: |v| {
            vec![gauge(n::REDIS_NODE_UP.exposed(), "{target=\"t\",node=\"10.0.0.1:7000\",role=\"replica\"}", v)]
        },
        fixture_labels: &[("target", "t"), ("node", "10.0.0.1:7000"), ("role", "replica")],
    },
    AlertDef {
        key: "redis_failover",
        alert: "RedisFailoverHappened",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Count,
        // Rounded: increase() extrapolates, and a failover count reads best as a whole number.
        expr: |s| format!("round(sum by (target) (increase({}{}[15m])))", n::REDIS_FAILOVERS.exposed(), sel(&[s])),
        summary: "A replica of {{ $labels.target }} was promoted to primary",
        description: "redline saw {value} failovers on {{ $labels.target }} in the last 15 minutes (threshold {threshold}). Find out why the old primary failed, and check the clients reconnected (BullMQ workers log reconnections) and no jobs were lost in the switch.",
        default: d(Some(0.0), None, 0),
        panel: "Failovers (15m)",
        // A counter growing so that 15 minutes add exactly `v`.
        fixture: |v| vec![counter(n::REDIS_FAILOVERS.exposed(), T, v / 900.0)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redis_sentinel_quorum",
        alert: "RedisSentinelQuorumLost",
        area: Area::Redis,
        scope: Scope::Target,
        op: Op::Below,
        unit: Unit::Bool,
        // Any sentinel that can still authorise a failover is enough.
        expr: |s| format!("max by (target) ({}{})", n::REDIS_SENTINEL_QUORUM_OK.exposed(), sel(&[s])),
        summary: "Sentinels of {{ $labels.target }} cannot fail it over",
        description: "No sentinel of {{ $labels.target }} reaches the quorum and a majority (SENTINEL CKQUORUM): if the primary dies now, nobody promotes a replica. Bring sentinels back or fix their network.",
        default: d(None, Some(1.0), 120),
        panel: "Sentinel quorum ok",
        fixture: |v| {
            vec![gauge(n::REDIS_SENTINEL_QUORUM_OK.exposed(), "{target=\"t\",sentinel=\"10.0.0.5:26379\"}", v)]
        },
        fixture_labels: T_LABELS,
    },
    // ---------------- Queues ----------------
    AlertDef {
        key: "queue_oldest_ready_age",
        alert: "QueueJobsWaitingTooLong",
        area: Area::Queues,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Seconds,
        // Age at evaluation time from the job's own timestamp: pages as soon as Prometheus
        // evaluates past the threshold, not one collection + scrape later.
        expr: |s| format!("time() - {}{}", n::QUEUE_OLDEST_READY_TIMESTAMP.exposed(), sel(&[s])),
        summary: "Jobs in {{ $labels.system }} queue {{ $labels.queue }} wait too long",
        description: "The oldest job ready to run in {{ $labels.system }} queue {{ $labels.queue }} on {{ $labels.target }} has waited {value} (threshold {threshold}). Workers are missing, stuck or too few.",
        default: d(Some(300.0), Some(900.0), 120),
        panel: "Oldest ready job age",
        fixture: |v| vec![since(n::QUEUE_OLDEST_READY_TIMESTAMP.exposed(), Q, v)],
        fixture_labels: Q_LABELS,
    },
    AlertDef {
        key: "queue_backlog",
        alert: "QueueBacklogHigh",
        area: Area::Queues,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Count,
        expr: |s| format!("{}{}", n::QUEUE_JOBS.exposed(), sel(&["state=\"waiting\"", s])),
        summary: "{{ $labels.system }} queue {{ $labels.queue }} has a large backlog",
        description: "{{ $labels.system }} queue {{ $labels.queue }} on {{ $labels.target }} holds {value} waiting jobs (threshold {threshold}).",
        default: d(Some(10000.0), Some(100000.0), 600),
        panel: "Waiting jobs",
        fixture: |v| {
            vec![gauge(n::QUEUE_JOBS.exposed(), "{target=\"t\",system=\"bullmq\",queue=\"q\",state=\"waiting\"}", v)]
        },
        fixture_labels: &[("target", "t"), ("system", "bullmq"), ("queue", "q"), ("state", "waiting")],
    },
    AlertDef {
        key: "queue_failure_ratio",
        alert: "QueueJobsFailing",
        area: Area::Queues,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Ratio,
        // Share of finished jobs that failed; silent when nothing finished (no division by 0).
        expr: |s| {
            let (f, c) = (n::QUEUE_JOBS_FAILED.exposed(), n::QUEUE_JOBS_COMPLETED.exposed());
            let m = sel(&[s]);
            format!("rate({f}{m}[10m]) / ((rate({f}{m}[10m]) + rate({c}{m}[10m])) > 0)")
        },
        summary: "Jobs in {{ $labels.system }} queue {{ $labels.queue }} are failing",
        description: "{value} of the jobs finished in {{ $labels.system }} queue {{ $labels.queue }} on {{ $labels.target }} over 10 minutes failed (threshold {threshold}).",
        default: d(Some(0.05), Some(0.25), 300),
        panel: "Failure ratio",
        fixture: |v| vec![counter(n::QUEUE_JOBS_FAILED.exposed(), Q, v), counter(n::QUEUE_JOBS_COMPLETED.exposed(), Q, 1.0 - v)],
        fixture_labels: Q_LABELS,
    },
    AlertDef {
        key: "queue_no_workers",
        alert: "QueueHasNoWorkers",
        area: Area::Queues,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Count,
        // Waiting jobs of queues whose system reports workers and has none.
        expr: |s| {
            format!(
                "{}{} and on (target, system, prefix, queue) ({}{} == 0)",
                n::QUEUE_JOBS.exposed(),
                sel(&["state=\"waiting\"", s]),
                n::QUEUE_WORKERS.exposed(),
                sel(&[s])
            )
        },
        summary: "{{ $labels.system }} queue {{ $labels.queue }} has jobs and no workers",
        description: "{value} jobs wait in {{ $labels.system }} queue {{ $labels.queue }} on {{ $labels.target }} and no worker is connected (threshold {threshold}).",
        default: d(None, Some(0.0), 300),
        panel: "Workers",
        fixture: |v| {
            vec![
                gauge(n::QUEUE_JOBS.exposed(), "{target=\"t\",system=\"bullmq\",queue=\"q\",state=\"waiting\"}", v),
                gauge(n::QUEUE_WORKERS.exposed(), Q, 0.0),
            ]
        },
        fixture_labels: &[("target", "t"), ("system", "bullmq"), ("queue", "q"), ("state", "waiting")],
    },
    AlertDef {
        key: "queue_paused",
        alert: "QueuePausedTooLong",
        area: Area::Queues,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Bool,
        expr: |s| format!("{}{}", n::QUEUE_PAUSED.exposed(), sel(&[s])),
        summary: "{{ $labels.system }} queue {{ $labels.queue }} has been paused for long",
        description: "{{ $labels.system }} queue {{ $labels.queue }} on {{ $labels.target }} is paused. Resume it, or raise `for` if pauses this long are normal.",
        default: d(Some(0.0), None, 3600),
        panel: "Paused",
        fixture: |v| vec![gauge(n::QUEUE_PAUSED.exposed(), Q, v)],
        fixture_labels: Q_LABELS,
    },
    AlertDef {
        key: "queue_stalled_jobs",
        alert: "QueueJobsStalled",
        area: Area::Queues,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Count,
        expr: |s| format!("{}{}", n::QUEUE_JOBS_STALLED.exposed(), sel(&[s])),
        summary: "{{ $labels.system }} queue {{ $labels.queue }} has stalled jobs",
        description: "{value} active jobs in {{ $labels.system }} queue {{ $labels.queue }} on {{ $labels.target }} have lost their lock or heartbeat (threshold {threshold}): the worker holding them died, or (BullMQ, Bull) a CPU-bound job blocked its event loop past lockDuration. A live worker's stalled check or registry cleanup retries or fails them, so this lasting means no live worker is checking.",
        default: d(Some(0.0), None, 120),
        panel: "Stalled jobs",
        fixture: |v| vec![gauge(n::QUEUE_JOBS_STALLED.exposed(), Q, v)],
        fixture_labels: Q_LABELS,
    },
    AlertDef {
        key: "queue_oldest_active_age",
        alert: "QueueJobRunningTooLong",
        area: Area::Queues,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Seconds,
        expr: |s| format!("time() - {}{}", n::QUEUE_OLDEST_ACTIVE_TIMESTAMP.exposed(), sel(&[s])),
        summary: "A job in {{ $labels.system }} queue {{ $labels.queue }} has run for too long",
        description: "The longest-running active job in {{ $labels.system }} queue {{ $labels.queue }} on {{ $labels.target }} started {value} ago (threshold {threshold}): it is hung on a call without a timeout, or the queue needs its own level (an override).",
        default: d(Some(1800.0), None, 300),
        panel: "Longest-running job",
        fixture: |v| vec![since(n::QUEUE_OLDEST_ACTIVE_TIMESTAMP.exposed(), Q, v)],
        fixture_labels: Q_LABELS,
    },
    AlertDef {
        key: "stream_consumer_lag",
        alert: "StreamConsumerGroupLagging",
        area: Area::Queues,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Count,
        expr: |s| format!("{}{}", n::QUEUE_STREAM_GROUP_LAG.exposed(), sel(&[s])),
        summary: "Consumer group {{ $labels.group }} lags on stream {{ $labels.queue }}",
        description: "Consumer group {{ $labels.group }} has {value} entries of stream {{ $labels.queue }} on {{ $labels.target }} not yet delivered (threshold {threshold}).",
        default: d(Some(1000.0), Some(10000.0), 600),
        panel: "Stream group lag",
        fixture: |v| {
            vec![gauge(n::QUEUE_STREAM_GROUP_LAG.exposed(), "{target=\"t\",system=\"stream\",queue=\"q\",group=\"g\"}", v)]
        },
        fixture_labels: &[("target", "t"), ("system", "stream"), ("queue", "q"), ("group", "g")],
    },
    AlertDef {
        key: "stream_pending_age",
        alert: "StreamEntriesUnacknowledged",
        area: Area::Queues,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Seconds,
        expr: |s| format!("{}{}", n::QUEUE_STREAM_GROUP_OLDEST_PENDING_AGE.exposed(), sel(&[s])),
        summary: "Stream {{ $labels.queue }} has entries delivered long ago and never acknowledged",
        description: "The oldest unacknowledged entry of group {{ $labels.group }} on stream {{ $labels.queue }} was delivered {value} ago (threshold {threshold}): a consumer died holding it. XAUTOCLAIM it.",
        default: d(Some(600.0), Some(3600.0), 300),
        panel: "Oldest pending entry age",
        fixture: |v| {
            vec![gauge(
                n::QUEUE_STREAM_GROUP_OLDEST_PENDING_AGE.exposed(),
                "{target=\"t\",system=\"stream\",queue=\"q\",group=\"g\"}",
                v,
            )]
        },
        fixture_labels: &[("target", "t"), ("system", "stream"), ("queue", "q"), ("group", "g")],
    },
    // ---------------- PostgreSQL ----------------
    AlertDef {
        key: "pg_down",
        alert: "PostgresDown",
        area: Area::Postgres,
        scope: Scope::Target,
        op: Op::Below,
        unit: Unit::Bool,
        expr: |s| format!("{}{}", n::TARGET_UP.exposed(), sel(&["collector=\"postgres\"", s])),
        summary: "PostgreSQL {{ $labels.target }} is unreachable",
        description: "redline cannot connect to or query PostgreSQL {{ $labels.target }}. Check the server, pg_hba.conf and the credentials (redline's log names the error).",
        default: d(None, Some(1.0), 60),
        panel: "Up",
        fixture: |v| vec![gauge(n::TARGET_UP.exposed(), "{collector=\"postgres\",target=\"t\"}", v)],
        fixture_labels: &[("collector", "postgres"), ("target", "t")],
    },
    AlertDef {
        key: "pg_connections_near_limit",
        alert: "PostgresConnectionsNearLimit",
        area: Area::Postgres,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Ratio,
        // Against what ordinary roles can use: max_connections minus the reserved slots.
        expr: |s| {
            format!(
                "sum by (target) ({}{}) / (max by (target) ({}{}) - max by (target) ({}{}) > 0)",
                n::PG_CONNECTIONS.exposed(),
                sel(&[s]),
                n::PG_CONNECTIONS_MAX.exposed(),
                sel(&[s]),
                n::PG_CONNECTIONS_RESERVED.exposed(),
                sel(&[s])
            )
        },
        summary: "PostgreSQL {{ $labels.target }} is running out of connections",
        description: "PostgreSQL {{ $labels.target }} uses {value} of the connections ordinary roles may open (threshold {threshold}). New connections will fail; check pools and idle sessions.",
        default: d(Some(0.8), Some(0.9), 300),
        panel: "Connections / available",
        fixture: |v| {
            vec![
                gauge(n::PG_CONNECTIONS.exposed(), "{target=\"t\",database=\"app\",state=\"active\"}", v * 100.0),
                gauge(n::PG_CONNECTIONS_MAX.exposed(), T, 103.0),
                gauge(n::PG_CONNECTIONS_RESERVED.exposed(), T, 3.0),
            ]
        },
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "pg_cache_hit_ratio",
        alert: "PostgresCacheHitRatioLow",
        area: Area::Postgres,
        scope: Scope::Target,
        op: Op::Below,
        unit: Unit::Ratio,
        // Silent without reads (no division by zero, no page on an idle server).
        expr: |s| {
            let (h, r) = (n::PG_BLOCKS_HIT.exposed(), n::PG_BLOCKS_READ.exposed());
            let m = sel(&[s]);
            format!(
                "sum by (target) (rate({h}{m}[10m])) / (sum by (target) (rate({h}{m}[10m]) + rate({r}{m}[10m])) > 0)"
            )
        },
        summary: "PostgreSQL {{ $labels.target }} reads too much from disk",
        description: "Only {value} of block reads on {{ $labels.target }} are served from shared buffers (threshold {threshold}). Consider shared_buffers, missing indexes or a working set larger than memory.",
        default: d(Some(0.95), Some(0.9), 900),
        panel: "Cache hit ratio",
        fixture: |v| {
            let l = "{target=\"t\",database=\"app\"}";
            vec![counter(n::PG_BLOCKS_HIT.exposed(), l, v * 100.0), counter(n::PG_BLOCKS_READ.exposed(), l, (1.0 - v) * 100.0)]
        },
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "pg_deadlocks",
        alert: "PostgresDeadlocks",
        area: Area::Postgres,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::PerSecond,
        expr: |s| format!("sum by (target) (rate({}{}[5m]))", n::PG_DEADLOCKS.exposed(), sel(&[s])),
        summary: "PostgreSQL {{ $labels.target }} is detecting deadlocks",
        description: "PostgreSQL {{ $labels.target }} aborts {value} transactions for deadlocks (threshold {threshold}). The server log names the statements.",
        default: d(Some(0.0), None, 0),
        panel: "Deadlocks",
        fixture: |v| vec![counter(n::PG_DEADLOCKS.exposed(), "{target=\"t\",database=\"app\"}", v)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "pg_long_transaction",
        alert: "PostgresLongTransaction",
        area: Area::Postgres,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Seconds,
        expr: |s| format!("{}{}", n::PG_OLDEST_XACT.exposed(), sel(&[s])),
        summary: "A transaction on PostgreSQL {{ $labels.target }} has been open for long",
        description: "The oldest transaction on {{ $labels.target }} has been open {value} (threshold {threshold}). It holds back vacuum and may hold locks.",
        default: d(Some(300.0), Some(1800.0), 60),
        panel: "Oldest transaction age",
        fixture: |v| vec![gauge(n::PG_OLDEST_XACT.exposed(), T, v)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "pg_idle_in_transaction",
        alert: "PostgresIdleInTransaction",
        area: Area::Postgres,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Seconds,
        expr: |s| format!("{}{}", n::PG_OLDEST_IDLE_XACT.exposed(), sel(&[s])),
        summary: "A session on PostgreSQL {{ $labels.target }} sits idle in a transaction",
        description: "A session on {{ $labels.target }} has been idle inside a transaction for {value} (threshold {threshold}): usually an application that forgot to commit. Consider idle_in_transaction_session_timeout.",
        default: d(Some(300.0), None, 60),
        panel: "Idle in transaction",
        fixture: |v| vec![gauge(n::PG_OLDEST_IDLE_XACT.exposed(), T, v)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "pg_replication_lag",
        alert: "PostgresReplicationLagging",
        area: Area::Postgres,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Seconds,
        // Replay lag seen from the primary, or from the standby itself.
        expr: |s| {
            format!(
                "max by (target) ({}{}) or max by (target) ({}{})",
                n::PG_REPLICA_LAG_SECONDS.exposed(),
                sel(&["kind=\"replay\"", s]),
                n::PG_STANDBY_REPLAY_LAG.exposed(),
                sel(&[s])
            )
        },
        summary: "PostgreSQL replication on {{ $labels.target }} is lagging",
        description: "Replay on {{ $labels.target }} (or its replica) is {value} behind (threshold {threshold}).",
        default: d(Some(30.0), Some(300.0), 120),
        panel: "Replication lag",
        fixture: |v| {
            vec![gauge(n::PG_REPLICA_LAG_SECONDS.exposed(), "{target=\"t\",replica=\"r@10.0.0.2\",kind=\"replay\"}", v)]
        },
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "pg_slot_wal_retained",
        alert: "PostgresSlotRetainingWal",
        area: Area::Postgres,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Bytes,
        expr: |s| format!("max by (target) ({}{})", n::PG_SLOT_RETAINED.exposed(), sel(&[s])),
        summary: "A replication slot on {{ $labels.target }} keeps a lot of WAL",
        description: "A replication slot on {{ $labels.target }} retains {value} of WAL (threshold {threshold}); an abandoned slot fills the disk.",
        default: d(Some(5368709120.0), Some(21474836480.0), 600),
        panel: "WAL kept by slots",
        fixture: |v| vec![gauge(n::PG_SLOT_RETAINED.exposed(), "{target=\"t\",slot=\"s\",slot_type=\"physical\"}", v)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "pg_slow_statements",
        alert: "PostgresSlowStatements",
        area: Area::Postgres,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Count,
        expr: |s| format!("{}{}", n::PG_STATEMENTS_SLOW.exposed(), sel(&[s])),
        summary: "PostgreSQL {{ $labels.target }} has slow statements",
        description: "{value} statements on {{ $labels.target }} take longer than slow_statement on average (threshold {threshold}). See the statements panel.",
        default: d(Some(0.0), None, 900),
        panel: "Slow statements",
        fixture: |v| vec![gauge(n::PG_STATEMENTS_SLOW.exposed(), T, v)],
        fixture_labels: T_LABELS,
    },
    // ---------------- Host ----------------
    AlertDef {
        key: "host_cpu_busy",
        alert: "HostCpuBusy",
        area: Area::Host,
        scope: Scope::Host,
        op: Op::Above,
        unit: Unit::Ratio,
        expr: |s| format!("{}{}", n::HOST_CPU_BUSY.exposed(), sel(&[s])),
        summary: "CPU of {{ $labels.instance }} is busy",
        description: "The CPUs of {{ $labels.instance }} are {value} busy (threshold {threshold}).",
        default: d(Some(0.9), None, 900),
        panel: "CPU busy",
        fixture: |v| vec![gauge(n::HOST_CPU_BUSY.exposed(), "{instance=\"h\"}", v)],
        fixture_labels: &[("instance", "h")],
    },
    AlertDef {
        key: "host_memory_usage",
        alert: "HostMemoryLow",
        area: Area::Host,
        scope: Scope::Host,
        op: Op::Above,
        unit: Unit::Ratio,
        expr: |s| {
            format!(
                "1 - {}{} / ({}{} > 0)",
                n::HOST_MEMORY_AVAILABLE.exposed(),
                sel(&[s]),
                n::HOST_MEMORY_TOTAL.exposed(),
                sel(&[s])
            )
        },
        summary: "{{ $labels.instance }} is running out of memory",
        description: "{value} of the memory of {{ $labels.instance }} is in use (threshold {threshold}). Redis may be killed by the OOM killer.",
        default: d(Some(0.9), Some(0.95), 300),
        panel: "Memory in use",
        fixture: |v| {
            vec![
                gauge(n::HOST_MEMORY_AVAILABLE.exposed(), "{instance=\"h\"}", (1.0 - v) * 1000.0),
                gauge(n::HOST_MEMORY_TOTAL.exposed(), "{instance=\"h\"}", 1000.0),
            ]
        },
        fixture_labels: &[("instance", "h")],
    },
    AlertDef {
        key: "host_disk_usage",
        alert: "HostDiskFilling",
        area: Area::Host,
        scope: Scope::Host,
        op: Op::Above,
        unit: Unit::Ratio,
        expr: |s| {
            format!(
                "1 - {}{} / ({}{} > 0)",
                n::HOST_FS_AVAILABLE.exposed(),
                sel(&[s]),
                n::HOST_FS_SIZE.exposed(),
                sel(&[s])
            )
        },
        summary: "Disk {{ $labels.mountpoint }} on {{ $labels.instance }} is filling up",
        description: "{value} of {{ $labels.mountpoint }} on {{ $labels.instance }} is used (threshold {threshold}). Redis persistence and PostgreSQL stop when it is full.",
        default: d(Some(0.85), Some(0.95), 300),
        panel: "Disk used",
        fixture: |v| {
            let l = "{instance=\"h\",mountpoint=\"/\",device=\"vda\",fstype=\"ext4\"}";
            vec![gauge(n::HOST_FS_AVAILABLE.exposed(), l, (1.0 - v) * 1000.0), gauge(n::HOST_FS_SIZE.exposed(), l, 1000.0)]
        },
        fixture_labels: &[("instance", "h"), ("mountpoint", "/"), ("device", "vda"), ("fstype", "ext4")],
    },
    AlertDef {
        key: "host_load",
        alert: "HostLoadHigh",
        area: Area::Host,
        scope: Scope::Host,
        op: Op::Above,
        unit: Unit::Count,
        expr: |s| format!("{}{} / ({}{} > 0)", n::HOST_LOAD5.exposed(), sel(&[s]), n::HOST_CPUS.exposed(), sel(&[s])),
        summary: "Load on {{ $labels.instance }} is high",
        description: "The 5-minute load on {{ $labels.instance }} is {value} per CPU (threshold {threshold}).",
        default: d(Some(2.0), None, 900),
        panel: "Load per CPU",
        fixture: |v| vec![gauge(n::HOST_LOAD5.exposed(), "{instance=\"h\"}", v * 2.0), gauge(n::HOST_CPUS.exposed(), "{instance=\"h\"}", 2.0)],
        fixture_labels: &[("instance", "h")],
    },
    // ---------------- redline itself ----------------
    AlertDef {
        key: "redline_collector_failing",
        alert: "RedlineCollectorFailing",
        area: Area::Redline,
        scope: Scope::Redline,
        op: Op::Below,
        unit: Unit::Bool,
        expr: |s| format!("{}{}", n::COLLECTOR_SUCCESS.exposed(), sel(&[s])),
        summary: "redline cannot collect {{ $labels.collector }} {{ $labels.target }}",
        description: "redline's {{ $labels.collector }} collector for {{ $labels.target }} keeps failing; its metrics are missing and its alerts blind. redline's log names the error.",
        default: d(Some(1.0), None, 600),
        panel: "Collector success",
        fixture: |v| vec![gauge(n::COLLECTOR_SUCCESS.exposed(), "{collector=\"redis\",target=\"t\"}", v)],
        fixture_labels: &[("collector", "redis"), ("target", "t")],
    },
    AlertDef {
        key: "redline_snapshot_stale",
        alert: "RedlineDataStale",
        area: Area::Redline,
        scope: Scope::Redline,
        op: Op::Above,
        unit: Unit::Seconds,
        // The age is computed here from the last-success time rather than exposed by redline:
        // a scrape-time age would change every scrape and force /metrics to be re-encoded.
        expr: |s| format!("time() - {}{}", n::COLLECTOR_LAST_SUCCESS.exposed(), sel(&[s])),
        summary: "redline's {{ $labels.collector }} data for {{ $labels.target }} is stale",
        description: "The {{ $labels.collector }} data for {{ $labels.target }} was collected {value} ago (threshold {threshold}).",
        default: d(Some(300.0), None, 300),
        panel: "Snapshot age",
        // A timestamp that keeps `v` seconds behind promtool's clock (1m steps of 60 s).
        fixture: |v| {
            vec![(
                format!("{}{{collector=\"redis\",target=\"t\"}}", n::COLLECTOR_LAST_SUCCESS.exposed()),
                format!("{}+60x40", -v),
            )]
        },
        fixture_labels: &[("collector", "redis"), ("target", "t")],
    },
    AlertDef {
        key: "redline_target_vanished",
        alert: "RedlineTargetVanished",
        area: Area::Redline,
        scope: Scope::Redline,
        op: Op::Above,
        unit: Unit::Count,
        // Reported within the last hour but not now: removed from redline's config (on purpose
        // or by a bad reload), or redline itself is not scraped. RedisDown and the like cannot
        // fire for a series that no longer exists; this can. Compared by (collector, target)
        // only, so a restarted redline whose `instance`/`pod` labels changed does not count.
        expr: |s| {
            let m = n::COLLECTOR_SUCCESS.exposed();
            let sel = sel(&[s]);
            format!(
                "count by (collector, target) (max_over_time({m}{sel}[{VANISHED_WINDOW}])) unless count by (collector, target) ({m}{sel})"
            )
        },
        summary: "redline no longer reports {{ $labels.collector }} {{ $labels.target }}",
        description: "redline collected {{ $labels.collector }} {{ $labels.target }} within the last hour but reports nothing for it now, so its alerts (RedisDown and the rest) cannot fire. Expected for an hour after the target was removed from redline's config on purpose; otherwise check the last config reload and whether Prometheus still scrapes redline.",
        default: d(Some(0.0), None, 300),
        panel: "Vanished collectors",
        // One collector reported for a few minutes, then gone (Prometheus marks it stale).
        fixture: |v| {
            let series = format!("{}{{collector=\"redis\",target=\"t\"}}", n::COLLECTOR_SUCCESS.exposed());
            if v >= 1.0 {
                vec![(series, "1x4 stale".into())]
            } else {
                vec![(series, "1x40".into())]
            }
        },
        fixture_labels: &[("collector", "redis"), ("target", "t")],
    },
    AlertDef {
        key: "redline_queue_unreadable",
        alert: "RedlineQueueUnreadable",
        area: Area::Redline,
        scope: Scope::Queue,
        op: Op::Above,
        unit: Unit::Bool,
        expr: |s| format!("max by (target, system, prefix, queue, reason) ({}{})", n::QUEUE_UNREADABLE.exposed(), sel(&[s])),
        summary: "redline cannot read {{ $labels.system }} queue {{ $labels.queue }} ({{ $labels.reason }})",
        description: "redline did not read {{ $labels.system }} queue {{ $labels.queue }} on {{ $labels.target }}: {{ $labels.reason }}. Its age and backlog alerts cannot fire. cross_slot: give the queue a {hash-tag} prefix; node_down / no_owner: check the cluster.",
        default: d(Some(0.0), None, 600),
        panel: "Unreadable queues",
        fixture: |v| {
            vec![gauge(n::QUEUE_UNREADABLE.exposed(), "{target=\"t\",system=\"bullmq\",queue=\"q\",reason=\"cross_slot\"}", v)]
        },
        fixture_labels: &[("target", "t"), ("system", "bullmq"), ("queue", "q"), ("reason", "cross_slot")],
    },
    AlertDef {
        key: "redline_queues_dropped",
        alert: "RedlineQueuesDropped",
        area: Area::Redline,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::Count,
        expr: |s| format!("{}{}", n::QUEUE_DROPPED.exposed(), sel(&[s])),
        summary: "redline leaves {{ $labels.target }} queues unmonitored (limits.max_queues)",
        description: "{value} queues on {{ $labels.target }} are not collected because of limits.max_queues (threshold {threshold}): redline keeps the named queues and the largest backlogs, the rest have no age or backlog alerts. Raise limits.max_queues, name the queues that matter, or raise this threshold if the cap is deliberate.",
        default: d(Some(0.0), None, 1800),
        panel: "Queues left out by the cap",
        fixture: |v| vec![gauge(n::QUEUE_DROPPED.exposed(), T, v)],
        fixture_labels: T_LABELS,
    },
    AlertDef {
        key: "redline_queue_read_errors",
        alert: "RedlineQueueReadErrors",
        area: Area::Redline,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::PerSecond,
        // Queue reads and discovery both: either way part of what on-call relies on is unseen.
        // `(a + b) or a or b`: either counter may not exist yet (they appear at the first skip).
        expr: |s| {
            let a = format!("sum by (target, system) (rate({}{}[10m]))", n::QUEUE_ERRORS.exposed(), sel(&[s]));
            let b = format!(
                "sum by (target, system) (rate({}{}[10m]))",
                n::QUEUE_DISCOVERY_ERRORS.exposed(),
                sel(&[s])
            );
            format!("({a} + {b}) or {a} or {b}")
        },
        summary: "redline skips {{ $labels.system }} queue data on {{ $labels.target }}",
        description: "redline skips {value} bad or unreadable {{ $labels.system }} queue keys on {{ $labels.target }} (threshold {threshold}): wrong key types, garbage job data, refused reads or keys that are not UTF-8. The queues (or parts) involved are not counted. redline's debug log names them; check the ACL and the application writing those keys.",
        default: d(Some(0.0), None, 900),
        panel: "Skipped queue data",
        fixture: |v| {
            vec![
                counter(n::QUEUE_ERRORS.exposed(), "{target=\"t\",system=\"bullmq\",reason=\"bad_data\"}", v),
                counter(n::QUEUE_DISCOVERY_ERRORS.exposed(), "{target=\"t\",system=\"bullmq\",reason=\"bad_key\"}", 0.0),
            ]
        },
        fixture_labels: &[("target", "t"), ("system", "bullmq")],
    },
    AlertDef {
        key: "redline_pg_query_errors",
        alert: "RedlinePostgresQueryErrors",
        area: Area::Redline,
        scope: Scope::Target,
        op: Op::Above,
        unit: Unit::PerSecond,
        expr: |s| format!("sum by (target, query) (rate({}{}[10m]))", n::PG_QUERY_ERRORS.exposed(), sel(&[s])),
        summary: "redline's {{ $labels.query }} queries on {{ $labels.target }} keep failing",
        description: "redline's {{ $labels.query }} query group on PostgreSQL {{ $labels.target }} fails {value} times a second (threshold {threshold}): statement or lock timeouts, cancels. Its metrics are missing while it fails; a server this slow to answer catalogue queries is itself in trouble.",
        default: d(Some(0.0), None, 900),
        panel: "Failing PostgreSQL query groups",
        fixture: |v| vec![counter(n::PG_QUERY_ERRORS.exposed(), "{target=\"t\",query=\"locks\",sqlstate=\"57014\"}", v)],
        fixture_labels: &[("target", "t"), ("query", "locks")],
    },
    AlertDef {
        key: "host_filesystem_stuck",
        alert: "HostFilesystemStuck",
        area: Area::Host,
        scope: Scope::Host,
        op: Op::Above,
        unit: Unit::Bool,
        expr: |s| format!("{}{}", n::HOST_FS_STUCK.exposed(), sel(&[s])),
        summary: "Filesystem {{ $labels.mountpoint }} on {{ $labels.instance }} does not answer",
        description: "statfs on {{ $labels.mountpoint }} ({{ $labels.fstype }}) on {{ $labels.instance }} has not returned within redline's collection timeout: a hung NFS/FUSE mount. Processes touching it hang too; its disk usage is unknown.",
        default: d(Some(0.0), None, 300),
        panel: "Stuck filesystems",
        fixture: |v| {
            let l = "{instance=\"h\",mountpoint=\"/mnt/nfs\",device=\"srv:/x\",fstype=\"nfs\"}";
            vec![gauge(n::HOST_FS_STUCK.exposed(), l, v)]
        },
        fixture_labels: &[("instance", "h"), ("mountpoint", "/mnt/nfs"), ("device", "srv:/x"), ("fstype", "nfs")],
    },
    AlertDef {
        key: "redline_reload_failed",
        alert: "RedlineThresholdsReloadFailed",
        area: Area::Redline,
        scope: Scope::Redline,
        op: Op::Below,
        unit: Unit::Bool,
        expr: |s| format!("{}{}", n::RELOAD_SUCCESS.exposed(), sel(&[s])),
        summary: "redline rejected a changed thresholds file",
        description: "The last change to the thresholds or config file was invalid; redline keeps the last good one. Run `redline check` to see every problem.",
        default: d(Some(1.0), None, 0),
        panel: "Last reload OK",
        fixture: |v| vec![gauge(n::RELOAD_SUCCESS.exposed(), "", v)],
        fixture_labels: &[],
    },
];

/// How far back RedlineTargetVanished looks for collectors that used to be reported.
pub const VANISHED_WINDOW: &str = "1h";

/// The longest `for` an alert can take: RedlineTargetVanished stops matching an hour after
/// the collector vanished, so a `for` near that would never let it fire.
pub fn max_for(def: &AlertDef) -> Option<Duration> {
    (def.key == "redline_target_vanished").then_some(Duration::from_secs(30 * 60))
}

/// The entry with this key.
pub fn find(key: &str) -> Option<&'static AlertDef> {
    ALERTS.iter().find(|a| a.key == key)
}

/// All keys, for error messages.
pub fn keys() -> String {
    ALERTS.iter().map(|a| a.key).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_names_are_unique() {
        let mut keys: Vec<_> = ALERTS.iter().map(|a| a.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), ALERTS.len());
        let mut names: Vec<_> = ALERTS.iter().map(|a| a.alert).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALERTS.len());
    }

    #[test]
    fn selectors_merge() {
        assert_eq!(sel(&[]), "");
        assert_eq!(sel(&["", "a=\"1\""]), "{a=\"1\"}");
        assert_eq!(sel(&["a=\"1\"", "b!=\"2\""]), "{a=\"1\",b!=\"2\"}");
    }
}
