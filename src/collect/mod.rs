//! Collectors: the trait every source implements, the registry that builds them from the
//! config, and the scheduler that runs each on its own cadence with a deadline.

pub mod backoff;
pub mod filesystems;
pub mod host;
pub mod postgres;
pub mod postgres_sql;
pub mod postgres_tls;
pub mod queues;
pub mod redis;
pub mod redis_cluster;
pub mod redis_replies;
pub mod sentinel;
mod store;
pub mod topology;
pub mod window;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::{Config, Limits, ResolveError, ResolvedPostgres, ResolvedRedis};
use crate::metrics::Family;

pub use store::{Store, Ticket};

/// A boxed, sendable future (keeps [`Collector`] usable as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a collection produced no data. Messages never contain secrets.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CollectError {
    /// Could not connect or authenticate.
    #[error("connect: {0}")]
    Connect(String),
    /// Connected, but the target failed the request.
    #[error("query: {0}")]
    Query(String),
    /// The collection did not finish before its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A reconnect is not due yet (backing off after failures).
    #[error("reconnect backing off after earlier failure: {0}")]
    BackingOff(String),
}

/// One source of metrics (a Redis target, the host, …).
pub trait Collector: Send + 'static {
    /// Collector kind, the `collector` label: `redis`, `host`, …
    fn kind(&self) -> &'static str;
    /// The `target` label.
    fn target(&self) -> &str;
    /// Whether `redline_target_up` is meaningful (a remote endpoint).
    fn has_endpoint(&self) -> bool {
        true
    }
    /// Gathers one snapshot. Must not hold locks shared with `/metrics`.
    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, CollectError>>;
    /// Called when a collection overran its deadline: drop connections whose state is unknown.
    fn reset(&mut self) {}
}

/// A collector with its cadence.
pub struct Scheduled {
    /// The collector.
    pub collector: Box<dyn Collector>,
    /// Time between collection starts.
    pub interval: Duration,
    /// Deadline for one collection.
    pub timeout: Duration,
}

/// The `target` label of the host collector (what `HostCollector::target` answers).
pub const HOST_TARGET: &str = "localhost";

/// Everything one collector is built from, secrets and TLS material included. Two equal specs
/// build collectors that behave the same, so a reload keeps a running collector whose spec did
/// not change and rebuilds one whose password, certificate or settings did.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// The host collector.
    Host {
        /// Time between collections.
        interval: Duration,
        /// Deadline for one collection.
        timeout: Duration,
    },
    /// One Redis target (the limits bound its queue work).
    Redis {
        /// The target, resolved.
        target: ResolvedRedis,
        /// Cardinality and work bounds.
        limits: Limits,
    },
    /// One PostgreSQL target.
    Postgres {
        /// The target, resolved.
        target: ResolvedPostgres,
    },
}

impl Spec {
    /// The `collector` and `target` labels of the collector this builds.
    pub fn key(&self) -> (&'static str, &str) {
        match self {
            Spec::Host { .. } => ("host", HOST_TARGET),
            Spec::Redis { target, .. } => ("redis", &target.name),
            Spec::Postgres { target } => ("postgres", &target.name),
        }
    }
}

/// Why a collector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A target's password or TLS files could not be read.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The Redis client refused the target's settings.
    #[error("redis target {target}: {reason}")]
    Redis {
        /// The target's name.
        target: String,
        /// The client's reason (never holds the password).
        reason: String,
    },
}

/// The collectors the config enables, resolved (reads password and TLS files). The one list of
/// collector kinds.
pub fn plan(config: &Config) -> Result<Vec<Spec>, ResolveError> {
    let mut out = Vec::new();
    if config.host.enabled {
        out.push(Spec::Host {
            interval: config.host_interval(),
            timeout: config.collection.timeout.min(config.host_interval()),
        });
    }
    for target in config.postgres_targets()? {
        out.push(Spec::Postgres { target });
    }
    for target in config.redis_targets()? {
        out.push(Spec::Redis { target, limits: config.limits.clone() });
    }
    Ok(out)
}

/// Builds the collector a spec describes (no I/O: connections are made on the first run).
pub fn build(spec: &Spec) -> Result<Scheduled, BuildError> {
    Ok(match spec {
        Spec::Host { interval, timeout } => Scheduled {
            collector: Box::new(host::HostCollector::new(*timeout)),
            interval: *interval,
            timeout: *timeout,
        },
        Spec::Postgres { target } => Scheduled {
            collector: Box::new(postgres::PostgresCollector::new(target.clone())),
            interval: target.interval,
            timeout: target.timeout,
        },
        Spec::Redis { target, limits } => {
            let err = |reason| BuildError::Redis { target: target.name.clone(), reason };
            let t = target.clone();
            let collector: Box<dyn Collector> = match t.topology.clone() {
                crate::config::Topology::Single => {
                    Box::new(redis::RedisCollector::new(t, limits.clone()).map_err(err)?)
                }
                crate::config::Topology::Cluster { seeds } => {
                    let source = redis_cluster::ClusterSource::new(t.clone(), seeds);
                    Box::new(topology::TopologyCollector::new(t, limits.clone(), Box::new(source)))
                }
                crate::config::Topology::Sentinel { .. } => {
                    let source = sentinel::SentinelSource::new(t.clone()).map_err(err)?;
                    Box::new(topology::TopologyCollector::new(t, limits.clone(), Box::new(source)))
                }
            };
            Scheduled { collector, interval: target.interval, timeout: target.timeout }
        }
    })
}

/// Builds every collector the config enables.
pub fn build_all(config: &Config) -> Result<Vec<Scheduled>, BuildError> {
    plan(config)?.iter().map(build).collect()
}

/// Starts a collector's background task. It publishes under `ticket` and stops by itself once
/// the store no longer honours the ticket (the target was removed or replaced); the caller also
/// aborts its handle, so a collection in flight never publishes after a removal.
pub fn spawn(job: Scheduled, store: Arc<Store>, ticket: Ticket) -> JoinHandle<()> {
    tokio::spawn(run_one(job, store, ticket))
}

async fn run_one(job: Scheduled, store: Arc<Store>, ticket: Ticket) {
    let Scheduled { mut collector, interval, timeout } = job;
    let (kind, target) = (collector.kind(), collector.target().to_string());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        ticker.tick().await;
        let start = tokio::time::Instant::now();
        let outcome = match tokio::time::timeout(timeout, collector.collect()).await {
            Ok(r) => r,
            Err(_) => {
                collector.reset();
                Err(CollectError::Timeout(timeout))
            }
        };
        let elapsed = start.elapsed();
        // Log transitions only: a target that stays down must not flood the journal.
        match &outcome {
            Ok(_) => {
                if let Some(prev) = last_error.take() {
                    tracing::info!(collector = kind, target = %target, "collection recovered (was: {prev})");
                }
            }
            Err(CollectError::BackingOff(_)) => {}
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(collector = kind, target = %target, "collection failed: {msg}");
                }
                last_error = Some(msg);
            }
        }
        if !store.publish(&ticket, collector.has_endpoint(), outcome, elapsed) {
            break;
        }
    }
    tracing::debug!(collector = kind, target = %target, "collector stopped");
}

/// Runs every collector for `redline snapshot`: a first pass connects, starts queue discovery
/// and takes the first CPU sample; after a settling pause, the second pass is the capture.
pub async fn collect_once(config: &Config) -> Result<Vec<Arc<Vec<crate::metrics::Family>>>, BuildError> {
    let mut jobs = build_all(config)?;
    let store = Arc::new(Store::new());
    for pass in 0..2 {
        if pass == 1 {
            tokio::time::sleep(config.limits.discovery_budget.max(Duration::from_secs(1))).await;
        }
        let mut tasks = Vec::new();
        for j in jobs.drain(..) {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let Scheduled { mut collector, interval, timeout } = j;
                let start = tokio::time::Instant::now();
                let outcome = match tokio::time::timeout(timeout, collector.collect()).await {
                    Ok(r) => r,
                    Err(_) => Err(CollectError::Timeout(timeout)),
                };
                if pass == 1 {
                    if let Err(e) = &outcome {
                        tracing::warn!(
                            collector = collector.kind(),
                            target = collector.target(),
                            "collection failed: {e}"
                        );
                    }
                    let ticket = store.register(collector.kind(), collector.target());
                    store.publish(&ticket, collector.has_endpoint(), outcome, start.elapsed());
                }
                Scheduled { collector, interval, timeout }
            }));
        }
        for t in tasks {
            if let Ok(j) = t.await {
                jobs.push(j);
            }
        }
    }
    Ok(store.snapshot())
}
