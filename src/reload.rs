//! Hot reload: watches the thresholds and config files (their directories, because editors and
//! Kubernetes replace files by rename), debounces, and on a change, SIGHUP or `POST /-/reload`
//! validates before swapping. A bad file keeps the last good one, is logged with its
//! file:line problems and sets `redline_thresholds_reload_success` to 0.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot};

use crate::artifacts;
use crate::collect::Store;
use crate::config::{Config, ConfigError};
use crate::metrics::{label, Family, FamilySet};
use crate::names as n;
use crate::thresholds::Thresholds;

/// A request to reload; `reply` gets the outcome (for `POST /-/reload`).
#[derive(Debug)]
pub struct Trigger {
    /// Where to send the outcome.
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
}

/// Sends reload requests to the reloader.
pub type TriggerSender = mpsc::Sender<Trigger>;

/// Time to wait after a file event for the writes that usually follow it.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// How long a file may be missing (mid-rename) before that counts as a failure.
const MISSING_GRACE: Duration = Duration::from_secs(2);

/// Owns the current thresholds and applies changes.
pub struct Reloader {
    config_path: Option<PathBuf>,
    config: Config,
    thresholds: Thresholds,
    store: Arc<Store>,
    config_tx: mpsc::Sender<Config>,
    success: bool,
    last_success: f64,
    failures: u64,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Loads a file, waiting out a short absence (an editor's rename-and-replace).
async fn load_with_grace<T>(
    path: &Path,
    load: impl Fn(&Path) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let deadline = tokio::time::Instant::now() + MISSING_GRACE;
    loop {
        match load(path) {
            Err(ConfigError::Read { cause, .. })
                if cause.kind() == std::io::ErrorKind::NotFound && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

impl Reloader {
    /// Loads the thresholds named by `config` (or the built-in defaults) and publishes them.
    /// A bad thresholds file at start-up is an error: there is no last good one yet.
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        store: Arc<Store>,
        config_tx: mpsc::Sender<Config>,
    ) -> Result<Self, ConfigError> {
        let thresholds = match &config.thresholds.file {
            Some(p) => Thresholds::load(p)?,
            None => Thresholds::defaults(),
        };
        config.limits.slo_buckets.set(crate::slo::BucketPlan::from_slos(&thresholds.slos));
        let found = crate::slo::check_against_config(&thresholds.slos, &config);
        found.problems.iter().for_each(|p| tracing::warn!("{p}"));
        found.notes.iter().for_each(|p| tracing::info!("{p}"));
        let r = Reloader {
            config_path,
            config,
            thresholds,
            store,
            config_tx,
            success: true,
            last_success: now(),
            failures: 0,
        };
        r.write_artifacts(false);
        r.publish();
        Ok(r)
    }

    /// The files to watch.
    fn watched(&self) -> Vec<PathBuf> {
        self.config_path.iter().chain(self.config.thresholds.file.iter()).cloned().collect()
    }

    /// Applies the files as they are now.
    async fn reload(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(path) = self.config_path.clone() {
            match load_with_grace(&path, Config::load).await {
                Ok(mut cfg) => {
                    // One bucket plan for the life of the daemon: collectors keep reading it.
                    cfg.limits.slo_buckets = self.config.limits.slo_buckets.clone();
                    if cfg.listen != self.config.listen {
                        tracing::warn!("listen address changes take effect after a restart");
                    }
                    if format!("{:?}", cfg.redis) != format!("{:?}", self.config.redis)
                        || format!("{:?}", cfg.postgres) != format!("{:?}", self.config.postgres)
                        || format!("{:?}", cfg.host) != format!("{:?}", self.config.host)
                        || format!("{:?}", cfg.limits) != format!("{:?}", self.config.limits)
                        || format!("{:?}", cfg.collection) != format!("{:?}", self.config.collection)
                    {
                        tracing::info!("configuration changed: restarting collectors");
                        let _ = self.config_tx.send(cfg.clone()).await;
                    }
                    self.config = cfg;
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if problems.is_empty() {
            if let Some(path) = self.config.thresholds.file.clone() {
                match load_with_grace(&path, Thresholds::load).await {
                    Ok(t) => {
                        self.config.limits.slo_buckets.set(crate::slo::BucketPlan::from_slos(&t.slos));
                        let found = crate::slo::check_against_config(&t.slos, &self.config);
                        found.problems.iter().for_each(|p| tracing::warn!("{p}"));
                        found.notes.iter().for_each(|p| tracing::info!("{p}"));
                        self.thresholds = t;
                        self.write_artifacts(true);
                    }
                    Err(e) => problems.push(e.to_string()),
                }
            }
        }
        let result = if problems.is_empty() {
            self.success = true;
            self.last_success = now();
            tracing::info!("thresholds and config reloaded");
            Ok(())
        } else {
            self.success = false;
            self.failures += 1;
            let text = problems.join("\n");
            tracing::error!("reload rejected, keeping the last good files:\n{text}");
            Err(text)
        };
        self.publish();
        result
    }

    /// Rewrites the configured outputs; tells Prometheus when rules changed.
    fn write_artifacts(&self, notify_prometheus: bool) {
        let t = &self.config.thresholds;
        let mut files = Vec::new();
        if let Some(dir) = &t.rules_dir {
            files.extend(artifacts::render_rules(&self.thresholds, dir));
        }
        if let Some(dir) = &t.dashboards_dir {
            files.extend(artifacts::render_dashboards(&self.thresholds, dir));
        }
        let changed = match artifacts::write(files) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot write generated files: {e}");
                return;
            }
        };
        if changed.is_empty() {
            return;
        }
        tracing::info!("regenerated {} files", changed.len());
        let rules_changed = changed.iter().any(|p| p.file_name().is_some_and(|n| n == artifacts::RULE_FILE));
        if let (true, true, Some(url)) = (notify_prometheus, rules_changed, t.prometheus_reload_url.clone()) {
            tokio::spawn(async move {
                match post(&url).await {
                    Ok(()) => tracing::info!("Prometheus reloaded its rules"),
                    Err(e) => tracing::warn!("Prometheus reload at {url} failed: {e}"),
                }
            });
        }
    }

    /// Publishes reload state and the live thresholds as metrics.
    fn publish(&self) {
        let mut set = FamilySet::new();
        set.add(&n::RELOAD_SUCCESS, vec![], if self.success { 1.0 } else { 0.0 });
        set.add(&n::RELOAD_TIMESTAMP, vec![], self.last_success);
        set.add(&n::RELOAD_FAILURES, vec![], self.failures as f64);
        for a in self.thresholds.alerts.iter().filter(|a| a.enabled) {
            let mut levels = vec![(String::new(), &a.levels)];
            levels.extend(a.overrides.iter().map(|(m, l)| (crate::thresholds::override_name(m), l)));
            for (over, l) in levels {
                for (sev, v) in [("warning", l.warning), ("critical", l.critical)] {
                    let Some(v) = v else { continue };
                    let mut labels =
                        vec![label("alert", a.def.alert), label("key", a.def.key), label("severity", sev)];
                    if !over.is_empty() {
                        labels.push(label("override", over.clone()));
                    }
                    set.add(&n::THRESHOLD, labels, v);
                }
            }
        }
        let families: Vec<Family> = set.into_families();
        self.store.set_daemon_families(families);
    }

    /// Runs until `triggers` closes: watches files, debounces, reloads.
    pub async fn run(mut self, mut triggers: mpsc::Receiver<Trigger>, file_events: mpsc::Sender<Trigger>) {
        let _watcher = watch(&self.watched(), file_events);
        while let Some(first) = triggers.recv().await {
            let mut replies: Vec<oneshot::Sender<Result<(), String>>> = first.reply.into_iter().collect();
            // Editors write in bursts: wait, then take everything that queued up.
            tokio::time::sleep(DEBOUNCE).await;
            while let Ok(t) = triggers.try_recv() {
                replies.extend(t.reply);
            }
            crate::daemon::notify(sd_notify::NotifyState::Reloading);
            let result = self.reload().await;
            crate::daemon::notify(sd_notify::NotifyState::Ready);
            for r in replies {
                let _ = r.send(result.clone());
            }
        }
    }
}

/// Watches the directories of `files`; events on those files become triggers.
fn watch(files: &[PathBuf], tx: mpsc::Sender<Trigger>) -> Option<notify::RecommendedWatcher> {
    if files.is_empty() {
        return None;
    }
    let names: Vec<std::ffi::OsString> =
        files.iter().filter_map(|f| f.file_name().map(|n| n.to_os_string())).collect();
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if event.kind.is_access() {
            return;
        }
        if event.paths.iter().any(|p| p.file_name().is_some_and(|n| names.iter().any(|x| x == n))) {
            // A full channel already holds a pending reload; dropping this one loses nothing.
            let _ = tx.try_send(Trigger { reply: None });
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch files for changes (SIGHUP and POST /-/reload still work): {e}");
            return None;
        }
    };
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .map(|f| f.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf())
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        if let Err(e) = watcher.watch(&d, RecursiveMode::NonRecursive) {
            tracing::error!("cannot watch {}: {e}", d.display());
        }
    }
    Some(watcher)
}

/// POSTs to an `http://` URL (Prometheus' lifecycle API) and checks for a 2xx answer.
async fn post(url: &str) -> Result<(), String> {
    match crate::http_client::request(hyper::Method::POST, url, Duration::from_secs(5)).await? {
        (s, _) if (200..300).contains(&s) => Ok(()),
        (s, _) => Err(format!("HTTP {s}")),
    }
}
