//! `redline run`: wires config, collectors, store, reloader and HTTP server together.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::collect::{self, Store};
use crate::config::{Config, ConfigError};
use crate::reload::{Reloader, Trigger};

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A collector could not be built from the config.
    #[error("cannot set up collectors: {0}")]
    Setup(String),
    /// The thresholds file is invalid at start-up (there is no last good one yet).
    #[error(transparent)]
    Thresholds(#[from] ConfigError),
}

/// A running set of collectors.
struct Collectors {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Collectors {
    fn start(config: &Config, store: &Arc<Store>) -> Result<Self, String> {
        let jobs = collect::build(config)?;
        let (stop, stop_rx) = watch::channel(false);
        let tasks = collect::spawn_all(jobs, store.clone(), stop_rx);
        Ok(Collectors { stop, tasks })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            // A collector stuck past its deadline is dropped; don't wait on it.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
        }
    }
}

/// Runs the daemon on an already-bound listener until `shutdown` completes. `config_path`
/// (when given) is watched and reloaded along with the thresholds file it names. Tests call
/// this with `127.0.0.1:0` and their own shutdown future.
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let store = Arc::new(Store::new());
    let (config_tx, mut config_rx) = mpsc::channel::<Config>(4);
    let reloader = Reloader::new(config.clone(), config_path, store.clone(), config_tx)?;
    let mut collectors = Some(Collectors::start(&config, &store).map_err(RunError::Setup)?);

    let (trigger_tx, trigger_rx) = mpsc::channel::<Trigger>(16);
    let reload_task = tokio::spawn(reloader.run(trigger_rx, trigger_tx.clone()));
    spawn_sighup(trigger_tx.clone());

    if let Ok(addr) = listener.local_addr() {
        tracing::info!("serving metrics on http://{addr}/metrics");
    }
    let (server_stop, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve::serve(listener, store.clone(), Some(trigger_tx), async {
        let _ = server_stop_rx.await;
    }));

    // systemd Type=notify: ready once the listener serves and the collectors run.
    notify(sd_notify::NotifyState::Ready);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(new) = config_rx.recv() => {
                if let Some(c) = collectors.take() {
                    c.stop().await;
                }
                store.clear_collectors();
                // The config was validated already; a failure here is logged and the HTTP
                // side keeps serving until the next good config.
                collectors = Collectors::start(&new, &store)
                    .map_err(|e| tracing::error!("cannot start collectors for the new config: {e}"))
                    .ok();
            }
        }
    }
    tracing::info!("shutting down");
    notify(sd_notify::NotifyState::Stopping);
    let _ = server_stop.send(());
    let _ = server.await;
    reload_task.abort();
    if let Some(c) = collectors {
        c.stop().await;
    }
    Ok(())
}

/// Tells systemd (when started with `NOTIFY_SOCKET`) about a state change; a no-op otherwise.
pub fn notify(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// SIGHUP (`systemctl reload`) asks for a reload.
fn spawn_sighup(tx: mpsc::Sender<Trigger>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; use POST /-/reload");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            let _ = tx.send(Trigger { reply: None }).await;
        }
    });
}
