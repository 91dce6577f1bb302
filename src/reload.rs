//! Hot reload: watches the config file, the thresholds file and every password/TLS file the
//! targets read (their directories, because editors and Kubernetes replace files by rename),
//! debounces, and on a change, SIGHUP or `POST /-/reload` validates everything before swapping
//! anything. A bad, empty, huge or too deeply nested file keeps the last good state, is logged
//! with its file:line problems and sets `redline_thresholds_reload_success` to 0.
//!
//! Parsing, validation, secret reading and rule generation run on the blocking pool, never on
//! the runtime's worker threads, so `/metrics` keeps answering during a heavy reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot};

use crate::artifacts;
use crate::collect::{self, BuildError, Scheduled, Spec, Store};
use crate::config::{Config, ConfigError};
use crate::metrics::{label, Family, FamilySet};
use crate::names as n;
use crate::secret::HttpUrl;
use crate::thresholds::Thresholds;

/// Why a reload (or the start-up load) was refused. Messages name files and lines, never a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config or thresholds file cannot be read or is invalid.
    #[error(transparent)]
    File(#[from] ConfigError),
    /// A target's secrets cannot be read or its collector cannot be built.
    #[error(transparent)]
    Collectors(#[from] BuildError),
    /// Problems in more than one file.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ReloadError>),
    /// The validation task died (a bug); nothing was swapped.
    #[error("reload failed unexpectedly: {0}")]
    Internal(String),
}

impl ReloadError {
    /// Whether the only problem is a file that does not exist (mid-rename by an editor).
    fn is_missing_file(&self) -> bool {
        match self {
            ReloadError::File(ConfigError::Read { cause, .. }) => {
                cause.kind() == std::io::ErrorKind::NotFound
            }
            ReloadError::Several(all) => all.iter().all(ReloadError::is_missing_file),
            _ => false,
        }
    }
}

/// A request to reload; `reply` gets the outcome (for `POST /-/reload`).
#[derive(Debug)]
pub struct Trigger {
    /// Where to send the outcome.
    pub reply: Option<oneshot::Sender<Result<(), Arc<ReloadError>>>>,
}

/// Sends reload requests to the reloader.
pub type TriggerSender = mpsc::Sender<Trigger>;

/// A new set of collectors for the daemon to run.
pub struct Apply {
    /// Every collector the config wants now.
    pub specs: Vec<Spec>,
    /// Collectors built for the specs that are new or changed; the rest keep running.
    pub built: Vec<(Spec, Scheduled)>,
}

/// Time to wait after a file event for the writes that usually follow it.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// How long a file may be missing (mid-rename) before that counts as a failure.
const MISSING_GRACE: Duration = Duration::from_secs(2);

/// Everything one reload validated and generated, ready to swap in.
struct Prepared {
    config: Config,
    specs: Vec<Spec>,
    built: Vec<(Spec, Scheduled)>,
    artifacts: Vec<(PathBuf, String)>,
    threshold_families: Vec<Family>,
    /// Histogram buckets the new thresholds' SLOs need.
    buckets: crate::slo::BucketPlan,
    /// What the SLOs found against the new config (logged when swapped in).
    slo_findings: crate::slo::ConfigFindings,
}

/// Reads and validates both files and the targets' secrets, builds the collectors that
/// changed, renders the artifacts: all of it or nothing. Blocking; runs on the blocking pool.
/// Without `config_path` the current config is kept (only the thresholds are re-read).
fn prepare(
    config_path: Option<&Path>,
    current: &Config,
    current_specs: &[Spec],
) -> Result<Prepared, ReloadError> {
    let mut config = match config_path.map(Config::load).transpose() {
        Ok(c) => c.unwrap_or_else(|| current.clone()),
        Err(e) => {
            // Report the thresholds file in force too, so one edit round fixes both.
            let mut all = vec![ReloadError::File(e)];
            if let Some(Err(t)) = current.thresholds.file.as_deref().map(Thresholds::load) {
                all.push(t.into());
            }
            return Err(if all.len() == 1 { all.remove(0) } else { ReloadError::Several(all) });
        }
    };
    // One bucket plan for the life of the daemon: running collectors keep reading it.
    config.limits.slo_buckets = current.limits.slo_buckets.clone();
    let thresholds = match &config.thresholds.file {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::defaults(),
    };
    let slo_findings = crate::slo::check_against_config(&thresholds.slos, &config);
    let buckets = crate::slo::BucketPlan::from_slos(&thresholds.slos);
    let specs = collect::plan(&config).map_err(BuildError::from)?;
    let built = specs
        .iter()
        .filter(|s| !current_specs.contains(s))
        .map(|s| Ok((s.clone(), collect::build(s)?)))
        .collect::<Result<Vec<_>, BuildError>>()?;
    let mut artifacts = Vec::new();
    if let Some(dir) = &config.thresholds.rules_dir {
        artifacts.extend(artifacts::render_rules(&thresholds, dir));
    }
    if let Some(dir) = &config.thresholds.dashboards_dir {
        artifacts.extend(artifacts::render_dashboards(&thresholds, dir));
    }
    Ok(Prepared {
        threshold_families: threshold_families(&thresholds),
        config,
        specs,
        built,
        artifacts,
        buckets,
        slo_findings,
    })
}

/// Hands the SLOs' histogram buckets to the running collectors and logs what the SLOs found
/// against the config (a queue no collector reads, …).
fn apply_slos(p: &Prepared) {
    p.config.limits.slo_buckets.set(p.buckets.clone());
    p.slo_findings.problems.iter().for_each(|f| tracing::warn!("{f}"));
    p.slo_findings.notes.iter().for_each(|f| tracing::info!("{f}"));
}

/// The live thresholds as `redline_threshold` series.
fn threshold_families(t: &Thresholds) -> Vec<Family> {
    let mut set = FamilySet::new();
    for a in t.alerts.iter().filter(|a| a.enabled) {
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
    set.into_families()
}

/// Runs [`prepare`] on the blocking pool.
async fn prepare_off_runtime(
    config_path: Option<PathBuf>,
    current: Config,
    current_specs: Vec<Spec>,
) -> Result<Prepared, ReloadError> {
    tokio::task::spawn_blocking(move || prepare(config_path.as_deref(), &current, &current_specs))
        .await
        .unwrap_or_else(|e| Err(ReloadError::Internal(e.to_string())))
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Owns the current config, collectors' specs and thresholds, and applies changes.
pub struct Reloader {
    config_path: Option<PathBuf>,
    config: Config,
    specs: Vec<Spec>,
    threshold_families: Vec<Family>,
    store: Arc<Store>,
    apply_tx: mpsc::Sender<Apply>,
    success: bool,
    last_success: f64,
    failures: u64,
    /// The files watched now, and the watcher (dropping it stops watching).
    watched: Vec<PathBuf>,
    watcher: Option<notify::RecommendedWatcher>,
}

impl Reloader {
    /// Validates the start-up state (thresholds named by `config`, or the built-in defaults;
    /// the targets' secrets), writes the artifacts, publishes the thresholds, and returns the
    /// collectors to start. A bad thresholds file at start-up is an error: there is no last
    /// good one yet.
    pub async fn new(
        config: Config,
        config_path: Option<PathBuf>,
        store: Arc<Store>,
        apply_tx: mpsc::Sender<Apply>,
    ) -> Result<(Self, Apply), ReloadError> {
        let p = prepare_off_runtime(None, config.clone(), Vec::new()).await?;
        apply_slos(&p);
        let r = Reloader {
            config_path,
            config: p.config,
            specs: p.specs.clone(),
            threshold_families: p.threshold_families,
            store,
            apply_tx,
            success: true,
            last_success: now(),
            failures: 0,
            watched: Vec::new(),
            watcher: None,
        };
        r.write_artifacts(p.artifacts, false).await;
        r.publish();
        let specs = r.specs.clone();
        Ok((r, Apply { specs, built: p.built }))
    }

    /// The files whose change triggers a reload.
    fn watched(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> =
            self.config_path.iter().chain(self.config.thresholds.file.iter()).cloned().collect();
        files.extend(self.config.secret_files());
        files.sort();
        files.dedup();
        files
    }

    /// Applies the files as they are now, all or nothing.
    async fn reload(&mut self) -> Result<(), Arc<ReloadError>> {
        let deadline = tokio::time::Instant::now() + MISSING_GRACE;
        let prepared = loop {
            let r =
                prepare_off_runtime(self.config_path.clone(), self.config.clone(), self.specs.clone()).await;
            match r {
                Err(e) if e.is_missing_file() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other,
            }
        };
        let result = match prepared {
            Ok(p) => {
                self.swap(p).await;
                self.success = true;
                self.last_success = now();
                tracing::info!("thresholds and config reloaded");
                Ok(())
            }
            Err(e) => {
                self.success = false;
                self.failures += 1;
                tracing::error!("reload rejected, keeping the last good files:\n{e}");
                Err(Arc::new(e))
            }
        };
        self.publish();
        result
    }

    /// Swaps in a validated state: collectors first, then thresholds and artifacts.
    async fn swap(&mut self, p: Prepared) {
        if p.config.listen != self.config.listen {
            tracing::warn!("listen address changes take effect after a restart");
        }
        if p.specs != self.specs {
            let kept = p.specs.iter().filter(|s| self.specs.contains(s)).count();
            tracing::info!(
                "configuration changed: {} collectors kept, {} started, {} stopped",
                kept,
                p.built.len(),
                self.specs.len() - kept
            );
            apply_slos(&p);
            // The daemon loop only stops when the process does.
            let _ = self.apply_tx.send(Apply { specs: p.specs.clone(), built: p.built }).await;
        } else {
            apply_slos(&p);
        }
        self.specs = p.specs;
        self.config = p.config;
        self.threshold_families = p.threshold_families;
        self.write_artifacts(p.artifacts, true).await;
    }

    /// Writes the rendered outputs (on the blocking pool); tells Prometheus when rules changed.
    async fn write_artifacts(&self, files: Vec<(PathBuf, String)>, notify_prometheus: bool) {
        if files.is_empty() {
            return;
        }
        let changed = match tokio::task::spawn_blocking(move || artifacts::write(files)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::error!("cannot write generated files: {e}");
                return;
            }
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
        if let (true, true, Some(url)) =
            (notify_prometheus, rules_changed, self.config.thresholds.prometheus_reload_url.clone())
        {
            tokio::spawn(async move {
                // `url` and the error print without credentials (HttpUrl keeps them apart).
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
        set.extend(self.threshold_families.iter().cloned());
        self.store.set_daemon_families(set.into_families());
    }

    /// Starts (or re-aims) the file watcher: changes to the watched files send a trigger to
    /// `file_events`. Called before the daemon serves, so no change can slip by unwatched.
    pub fn watch_files(&mut self, file_events: &mpsc::Sender<Trigger>) {
        let files = self.watched();
        if self.watcher.is_none() || files != self.watched {
            self.watcher = watch(&files, file_events.clone());
            self.watched = files;
        }
    }

    /// Runs until `triggers` closes: debounces triggers and reloads. A config that reads other
    /// password or TLS files re-aims the watcher at them.
    pub async fn run(mut self, mut triggers: mpsc::Receiver<Trigger>, file_events: mpsc::Sender<Trigger>) {
        self.watch_files(&file_events);
        while let Some(first) = triggers.recv().await {
            let mut replies: Vec<_> = first.reply.into_iter().collect();
            // Editors write in bursts: wait, then take everything that queued up.
            tokio::time::sleep(DEBOUNCE).await;
            while let Ok(t) = triggers.try_recv() {
                replies.extend(t.reply);
            }
            crate::daemon::notify(sd_notify::NotifyState::Reloading);
            let result = self.reload().await;
            crate::daemon::notify(sd_notify::NotifyState::Ready);
            self.watch_files(&file_events);
            for r in replies {
                let _ = r.send(result.clone());
            }
        }
    }
}

/// Watches the directories of `files`; events on those files become triggers, and so does
/// Kubernetes' swap of a mounted ConfigMap or Secret (its `..data` symlink).
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
        let relevant = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| names.iter().any(|x| x == n) || n.to_string_lossy().starts_with(".."))
        });
        if relevant {
            // A full channel already holds a pending reload; dropping this one loses nothing.
            let _ = tx.try_send(Trigger { reply: None });
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch files for changes (SIGHUP still works): {e}");
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

/// Why Prometheus' reload endpoint was not reached or refused.
#[derive(Debug, thiserror::Error)]
enum PostError {
    #[error(transparent)]
    Http(#[from] crate::http_client::HttpError),
    #[error("answered HTTP {0}")]
    Status(u16),
}

/// POSTs to Prometheus' lifecycle API (credentials as basic auth) and checks for a 2xx answer.
async fn post(url: &HttpUrl) -> Result<(), PostError> {
    match crate::http_client::request(hyper::Method::POST, url, Duration::from_secs(5)).await? {
        (s, _) if (200..300).contains(&s) => Ok(()),
        (s, _) => Err(PostError::Status(s)),
    }
}
