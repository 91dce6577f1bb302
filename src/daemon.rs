//! `redline run`: wires config, collectors, store and HTTP server together.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::collect::{self, Store};
use crate::config::Config;

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A collector could not be built from the config.
    #[error("cannot set up collectors: {0}")]
    Setup(String),
}

/// Runs the daemon on an already-bound listener until `shutdown` completes, then stops
/// the collectors. Tests call this with `127.0.0.1:0` and their own shutdown future.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let jobs = collect::build(&config).map_err(RunError::Setup)?;
    let store = Arc::new(Store::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks = collect::spawn_all(jobs, store.clone(), stop_rx);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("serving metrics on http://{addr}/metrics");
    }
    crate::serve::serve(listener, store, shutdown).await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for t in tasks {
        // A collector stuck past its deadline is cancelled with the runtime; don't wait on it.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
    }
    Ok(())
}
