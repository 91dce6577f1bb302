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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::metrics::Family;

pub use store::Store;

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

/// Builds every collector the config enables. The one list of collector factories.
pub fn build(config: &Config) -> Result<Vec<Scheduled>, String> {
    let mut out = Vec::new();
    if config.host.enabled {
        let timeout = config.collection.timeout.min(config.host_interval());
        out.push(Scheduled {
            collector: Box::new(host::HostCollector::new(timeout)),
            interval: config.host_interval(),
            timeout,
        });
    }
    for t in config.postgres_targets()? {
        let (interval, timeout) = (t.interval, t.timeout);
        out.push(Scheduled { collector: Box::new(postgres::PostgresCollector::new(t)), interval, timeout });
    }
    for t in config.redis_targets()? {
        let (interval, timeout) = (t.interval, t.timeout);
        let collector: Box<dyn Collector> = match t.topology.clone() {
            crate::config::Topology::Single => {
                Box::new(redis::RedisCollector::new(t, config.limits.clone())?)
            }
            crate::config::Topology::Cluster { seeds } => {
                let source = redis_cluster::ClusterSource::new(t.clone(), seeds);
                Box::new(topology::TopologyCollector::new(t, config.limits.clone(), Box::new(source)))
            }
            crate::config::Topology::Sentinel { .. } => {
                let source = sentinel::SentinelSource::new(t.clone())?;
                Box::new(topology::TopologyCollector::new(t, config.limits.clone(), Box::new(source)))
            }
        };
        out.push(Scheduled { collector, interval, timeout });
    }
    Ok(out)
}

/// Starts one background task per collector. Each stops when `shutdown` flips to true.
pub fn spawn_all(
    jobs: Vec<Scheduled>,
    store: Arc<Store>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    for j in &jobs {
        store.register(j.collector.kind(), j.collector.target());
    }
    jobs.into_iter().map(|j| tokio::spawn(run_one(j, store.clone(), shutdown.clone()))).collect()
}

async fn run_one(job: Scheduled, store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
    let Scheduled { mut collector, interval, timeout } = job;
    let (kind, target) = (collector.kind(), collector.target().to_string());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
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
        store.publish(kind, &target, collector.has_endpoint(), outcome, elapsed);
    }
    tracing::debug!(collector = kind, target = %target, "collector stopped");
}

/// Runs every collector for `redline snapshot`: a first pass connects, starts queue discovery
/// and takes the first CPU sample; after a settling pause, the second pass is the capture.
pub async fn collect_once(config: &Config) -> Result<Vec<Arc<Vec<crate::metrics::Family>>>, String> {
    let mut jobs = build(config)?;
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
                    store.publish(
                        collector.kind(),
                        collector.target(),
                        collector.has_endpoint(),
                        outcome,
                        start.elapsed(),
                    );
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
