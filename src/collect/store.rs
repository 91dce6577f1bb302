//! The latest snapshot of every collector, merged once per publish so a scrape only encodes.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::CollectError;
use crate::metrics::{label, Family, FamilySet, Label};
use crate::names;

#[derive(Debug)]
struct Entry {
    kind: &'static str,
    target: String,
    has_endpoint: bool,
    families: Vec<Family>,
    success: Option<bool>,
    duration: Duration,
    errors: u64,
    last_success_unix: f64,
    last_success_at: Option<Instant>,
}

impl Entry {
    fn labels(&self) -> Vec<Label> {
        vec![label("collector", self.kind), label("target", self.target.clone())]
    }
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    /// Families the daemon itself publishes (thresholds reload state, live thresholds).
    daemon: Vec<Family>,
    merged: Arc<Vec<Family>>,
}

/// Shared between the collector tasks (writers) and the HTTP server (readers).
#[derive(Debug, Default)]
pub struct Store {
    state: RwLock<State>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a collector before its first run, so readiness can wait for it.
    pub fn register(&self, kind: &'static str, target: &str) {
        let mut st = self.write();
        if !st.entries.iter().any(|e| e.kind == kind && e.target == target) {
            st.entries.push(Entry {
                kind,
                target: target.to_string(),
                has_endpoint: true,
                families: Vec::new(),
                success: None,
                duration: Duration::ZERO,
                errors: 0,
                last_success_unix: 0.0,
                last_success_at: None,
            });
        }
    }

    /// Stores the outcome of one collection and rebuilds the merged snapshot.
    pub fn publish(
        &self,
        kind: &'static str,
        target: &str,
        has_endpoint: bool,
        outcome: Result<Vec<Family>, CollectError>,
        duration: Duration,
    ) {
        self.register(kind, target);
        let mut st = self.write();
        if let Some(e) = st.entries.iter_mut().find(|e| e.kind == kind && e.target == target) {
            e.has_endpoint = has_endpoint;
            e.duration = duration;
            match outcome {
                Ok(families) => {
                    e.families = families;
                    e.success = Some(true);
                    e.last_success_at = Some(Instant::now());
                    e.last_success_unix =
                        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
                }
                Err(_) => {
                    // Serve no stale values for a target we cannot read; up=0 says why.
                    e.families.clear();
                    e.success = Some(false);
                    e.errors += 1;
                }
            }
        }
        st.merged = Arc::new(merge(&st.entries, &st.daemon));
    }

    /// Replaces the daemon's own families.
    pub fn set_daemon_families(&self, families: Vec<Family>) {
        let mut st = self.write();
        st.daemon = families;
        st.merged = Arc::new(merge(&st.entries, &st.daemon));
    }

    /// Forgets every collector (before a new set starts after a config reload).
    pub fn clear_collectors(&self) {
        let mut st = self.write();
        st.entries.clear();
        st.merged = Arc::new(merge(&st.entries, &st.daemon));
    }

    /// The merged snapshot plus the families that depend on the time of the scrape.
    pub fn snapshot(&self) -> Vec<Arc<Vec<Family>>> {
        let st = self.read();
        let mut age = Family::new(&names::SNAPSHOT_AGE);
        for e in &st.entries {
            if let Some(at) = e.last_success_at {
                age.push(e.labels(), at.elapsed().as_secs_f64());
            }
        }
        vec![st.merged.clone(), Arc::new(vec![age])]
    }

    /// True once every registered collector has finished at least one collection.
    pub fn ready(&self) -> bool {
        let st = self.read();
        st.entries.iter().all(|e| e.success.is_some())
    }

    // A poisoned lock only means a writer panicked mid-update; the data is still usable.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn merge(entries: &[Entry], daemon: &[Family]) -> Vec<Family> {
    let mut set = FamilySet::new();
    set.add(&names::BUILD_INFO, vec![label("version", env!("CARGO_PKG_VERSION"))], 1.0);
    for e in entries.iter().filter(|e| e.success.is_some()) {
        let ok = e.success == Some(true);
        set.add(&names::COLLECTOR_DURATION, e.labels(), e.duration.as_secs_f64());
        set.add(&names::COLLECTOR_SUCCESS, e.labels(), if ok { 1.0 } else { 0.0 });
        set.add(&names::COLLECTOR_ERRORS, e.labels(), e.errors as f64);
        set.add(&names::COLLECTOR_LAST_SUCCESS, e.labels(), e.last_success_unix);
        if e.has_endpoint {
            set.add(&names::TARGET_UP, e.labels(), if ok { 1.0 } else { 0.0 });
        }
    }
    set.extend(daemon.iter().cloned());
    for e in entries {
        set.extend(e.families.iter().cloned());
    }
    set.into_families()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_clears_data_and_sets_up_zero() {
        let s = Store::new();
        s.register("redis", "a");
        assert!(!s.ready());
        let fam = Family::new(&names::REDIS_UPTIME).with(vec![label("target", "a")], 5.0);
        s.publish("redis", "a", true, Ok(vec![fam]), Duration::from_millis(3));
        assert!(s.ready());
        let text = crate::expose::encode(s.snapshot(), crate::expose::Format::Text);
        assert!(text.contains("redline_redis_uptime_seconds{target=\"a\"} 5"), "{text}");
        assert!(text.contains("redline_target_up{collector=\"redis\",target=\"a\"} 1"), "{text}");
        s.publish("redis", "a", true, Err(CollectError::Connect("refused".into())), Duration::ZERO);
        let text = crate::expose::encode(s.snapshot(), crate::expose::Format::Text);
        assert!(!text.contains("redline_redis_uptime_seconds{"), "{text}");
        assert!(text.contains("redline_target_up{collector=\"redis\",target=\"a\"} 0"), "{text}");
        assert!(
            text.contains("redline_collector_errors_total{collector=\"redis\",target=\"a\"} 1"),
            "{text}"
        );
        // The age of the last good data keeps being reported.
        assert!(text.contains("redline_snapshot_age_seconds{collector=\"redis\",target=\"a\"}"), "{text}");
    }
}
