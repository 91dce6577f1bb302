//! `redline run`: wires config, collectors, store, reloader and HTTP server together.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::collect::{self, Spec, Store};
use crate::config::Config;
use crate::reload::{Apply, ReloadError, Reloader, Trigger};

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The thresholds file, a target's secrets or a collector are invalid at start-up (there is
    /// no last good state yet).
    #[error(transparent)]
    Setup(#[from] ReloadError),
}

/// How the daemon serves besides its config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve `POST /-/reload` (Prometheus' `--web.enable-lifecycle`). Off by default: anyone who
    /// reaches the port could otherwise make the daemon re-read its files at will. SIGHUP and
    /// file watching reload either way.
    pub enable_lifecycle: bool,
}

/// The running collector tasks, by `(collector, target)`.
#[derive(Default)]
struct Running {
    tasks: HashMap<(&'static str, String), (Spec, JoinHandle<()>)>,
}

impl Running {
    /// Makes the running set match `apply`: unchanged collectors keep running; removed and
    /// changed ones are aborted at once (a collection in flight is dropped, and the store
    /// refuses its ticket); removed targets' series go with them; new ones start.
    fn apply(&mut self, apply: Apply, store: &Arc<Store>) {
        let wanted: HashMap<(&'static str, &str), &Spec> = apply.specs.iter().map(|s| (s.key(), s)).collect();
        self.tasks.retain(|(kind, target), (spec, handle)| {
            let keep = wanted.get(&(*kind, target.as_str())).is_some_and(|w| *w == spec);
            if !keep {
                handle.abort();
                if !wanted.contains_key(&(*kind, target.as_str())) {
                    store.remove(kind, target);
                }
            }
            keep
        });
        for (spec, job) in apply.built {
            let (kind, target) = spec.key();
            let key = (kind, target.to_string());
            if self.tasks.contains_key(&key) {
                continue;
            }
            let ticket = store.register(kind, target);
            let handle = collect::spawn(job, store.clone(), ticket);
            self.tasks.insert(key, (spec, handle));
        }
    }

    fn stop(self) {
        for (_, (_, handle)) in self.tasks {
            handle.abort();
        }
    }
}

/// Runs the daemon on an already-bound listener until `shutdown` completes. `config_path`
/// (when given) is watched and reloaded along with the thresholds and secret files it names.
/// Tests call this with `127.0.0.1:0` and their own shutdown future.
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    options: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let store = Arc::new(Store::new());
    let (apply_tx, mut apply_rx) = mpsc::channel::<Apply>(4);
    let (mut reloader, initial) = Reloader::new(config, config_path, store.clone(), apply_tx).await?;
    let mut running = Running::default();
    running.apply(initial, &store);
    store.started();

    let (trigger_tx, trigger_rx) = mpsc::channel::<Trigger>(16);
    reloader.watch_files(&trigger_tx);
    let reload_task = tokio::spawn(reloader.run(trigger_rx, trigger_tx.clone()));
    spawn_sighup(trigger_tx.clone());

    if let Ok(addr) = listener.local_addr() {
        tracing::info!("serving metrics on http://{addr}/metrics");
    }
    let (server_stop, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let lifecycle = options.enable_lifecycle.then_some(trigger_tx);
    let server = tokio::spawn(crate::serve::serve(listener, store.clone(), lifecycle, async {
        let _ = server_stop_rx.await;
    }));

    // systemd Type=notify: ready once the listener serves and the collectors run.
    notify(sd_notify::NotifyState::Ready);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(apply) = apply_rx.recv() => running.apply(apply, &store),
        }
    }
    tracing::info!("shutting down");
    notify(sd_notify::NotifyState::Stopping);
    let _ = server_stop.send(());
    let _ = server.await;
    reload_task.abort();
    running.stop();
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
            tracing::warn!("cannot listen for SIGHUP; file changes still reload");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            let _ = tx.send(Trigger { reply: None }).await;
        }
    });
}
