//! The latest snapshot of every collector, merged once per publish, with its encoded bodies
//! ([`Exposition`]) so a scrape of an unchanged snapshot only hands out bytes.
//!
//! Each collector publishes under a [`Ticket`]: removing or replacing a target invalidates its
//! ticket, so a collection that was in flight at a reload can never bring a removed target back.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::CollectError;
use crate::expose::Exposition;
use crate::metrics::{label, Family, FamilySet, Label};
use crate::names;

/// The right of one collector task to publish for its `(kind, target)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    kind: &'static str,
    target: String,
    generation: u64,
}

#[derive(Debug)]
struct Entry {
    kind: &'static str,
    target: String,
    generation: u64,
    has_endpoint: bool,
    /// Shared with the exposition: a new snapshot references it instead of copying it (at
    /// 10,000 queues a copy is tens of megabytes).
    families: Arc<Vec<Family>>,
    success: Option<bool>,
    duration: Duration,
    errors: u64,
    last_success_unix: f64,
}

impl Entry {
    fn labels(&self) -> Vec<Label> {
        vec![label("collector", self.kind), label("target", self.target.clone())]
    }
}

#[derive(Debug)]
struct State {
    entries: Vec<Entry>,
    /// Families the daemon itself publishes (thresholds reload state, live thresholds).
    daemon: Arc<Vec<Family>>,
    next_generation: u64,
    /// The first set of collectors is registered: readiness may be decided.
    started: bool,
    /// Set once every collector has reported; stays set (a reload must not make a serving
    /// daemon unready).
    ready: bool,
    exposition: Arc<Exposition>,
}

impl Default for State {
    fn default() -> Self {
        State {
            entries: Vec::new(),
            daemon: Arc::default(),
            next_generation: 1,
            started: false,
            ready: false,
            exposition: Arc::new(Exposition::new(vec![Arc::new(meta(&[]))])),
        }
    }
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

    /// Declares a collector before its first run (readiness waits for it) and returns the ticket
    /// it publishes with. Registering a target that exists already (its settings changed)
    /// invalidates the old ticket but keeps the last data until the new collector reports.
    pub fn register(&self, kind: &'static str, target: &str) -> Ticket {
        let mut st = self.write();
        let generation = st.next_generation;
        st.next_generation += 1;
        match st.entries.iter_mut().find(|e| e.kind == kind && e.target == target) {
            Some(e) => e.generation = generation,
            None => st.entries.push(Entry {
                kind,
                target: target.to_string(),
                generation,
                has_endpoint: true,
                families: Arc::default(),
                success: None,
                duration: Duration::ZERO,
                errors: 0,
                last_success_unix: 0.0,
            }),
        }
        Ticket { kind, target: target.to_string(), generation }
    }

    /// Forgets a collector: its series are gone from the next scrape, and its ticket is void.
    pub fn remove(&self, kind: &str, target: &str) {
        let mut st = self.write();
        st.entries.retain(|e| !(e.kind == kind && e.target == target));
        rebuild(&mut st);
    }

    /// Stores the outcome of one collection and rebuilds the merged snapshot. Returns false,
    /// storing nothing, when the ticket is void (the target was removed or replaced).
    pub fn publish(
        &self,
        ticket: &Ticket,
        has_endpoint: bool,
        outcome: Result<Vec<Family>, CollectError>,
        duration: Duration,
    ) -> bool {
        let mut st = self.write();
        let Some(e) = st.entries.iter_mut().find(|e| {
            e.kind == ticket.kind && e.target == ticket.target && e.generation == ticket.generation
        }) else {
            return false;
        };
        e.has_endpoint = has_endpoint;
        e.duration = duration;
        match outcome {
            Ok(families) => {
                e.families = Arc::new(families);
                e.success = Some(true);
                e.last_success_unix =
                    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            }
            Err(_) => {
                // Serve no stale values for a target we cannot read; up=0 says why.
                e.families = Arc::default();
                e.success = Some(false);
                e.errors += 1;
            }
        }
        rebuild(&mut st);
        true
    }

    /// Says the collectors of the start-up config are all registered: from now on the daemon
    /// is ready once each has reported.
    pub fn started(&self) {
        let mut st = self.write();
        st.started = true;
        rebuild(&mut st);
    }

    /// Replaces the daemon's own families.
    pub fn set_daemon_families(&self, families: Vec<Family>) {
        let mut st = self.write();
        st.daemon = Arc::new(families);
        rebuild(&mut st);
    }

    /// The current snapshot with its (lazily) encoded bodies.
    pub fn exposition(&self) -> Arc<Exposition> {
        self.read().exposition.clone()
    }

    /// The current snapshot: parts that [`crate::expose::encode`] merges by family name.
    pub fn snapshot(&self) -> Vec<Arc<Vec<Family>>> {
        self.read().exposition.parts().to_vec()
    }

    /// True once every collector registered at start has finished a collection; it stays true
    /// through reloads (new targets do not make a serving daemon unready).
    pub fn ready(&self) -> bool {
        self.read().ready
    }

    // A poisoned lock only means a writer panicked mid-update; the data is still usable.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// New snapshot; its bodies are encoded when first scraped. The collectors' families are
/// shared, not copied: only the per-collector self-metrics are built here.
fn rebuild(st: &mut State) {
    if st.started && !st.ready && st.entries.iter().all(|e| e.success.is_some()) {
        st.ready = true;
    }
    let mut parts = Vec::with_capacity(st.entries.len() + 2);
    parts.push(Arc::new(meta(&st.entries)));
    parts.push(st.daemon.clone());
    parts.extend(st.entries.iter().map(|e| e.families.clone()));
    st.exposition = Arc::new(Exposition::new(parts));
}

/// redline's own families about its collectors (build info, up, duration, errors).
fn meta(entries: &[Entry]) -> Vec<Family> {
    let mut set = FamilySet::new();
    set.add(&names::BUILD_INFO, vec![label("version", env!("CARGO_PKG_VERSION"))], 1.0);
    for e in entries.iter().filter(|e| e.success.is_some()) {
        let ok = e.success == Some(true);
        set.add(&names::COLLECTOR_DURATION, e.labels(), e.duration.as_secs_f64());
        set.add(&names::COLLECTOR_SUCCESS, e.labels(), if ok { 1.0 } else { 0.0 });
        set.add(&names::COLLECTOR_ERRORS, e.labels(), e.errors as f64);
        // Absent until a first success: RedlineDataStale computes the age from it, and a
        // collector that never succeeded is RedlineCollectorFailing's case, not a stale one.
        if e.last_success_unix > 0.0 {
            set.add(&names::COLLECTOR_LAST_SUCCESS, e.labels(), e.last_success_unix);
        }
        if e.has_endpoint {
            set.add(&names::TARGET_UP, e.labels(), if ok { 1.0 } else { 0.0 });
        }
    }
    set.into_families()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::{encode, Format};

    fn uptime(target: &str) -> Vec<Family> {
        vec![Family::new(&names::REDIS_UPTIME).with(vec![label("target", target)], 5.0)]
    }

    #[test]
    fn failure_clears_data_and_sets_up_zero() {
        let s = Store::new();
        let t = s.register("redis", "a");
        s.started();
        assert!(!s.ready());
        assert!(s.publish(&t, true, Ok(uptime("a")), Duration::from_millis(3)));
        assert!(s.ready());
        let text = encode(s.snapshot(), Format::Text);
        assert!(text.contains("redline_redis_uptime_seconds{target=\"a\"} 5"), "{text}");
        assert!(text.contains("redline_target_up{collector=\"redis\",target=\"a\"} 1"), "{text}");
        s.publish(&t, true, Err(CollectError::Connect("refused".into())), Duration::ZERO);
        let text = encode(s.snapshot(), Format::Text);
        assert!(!text.contains("redline_redis_uptime_seconds{"), "{text}");
        assert!(text.contains("redline_target_up{collector=\"redis\",target=\"a\"} 0"), "{text}");
        assert!(
            text.contains("redline_collector_errors_total{collector=\"redis\",target=\"a\"} 1"),
            "{text}"
        );
        // When the last good data was collected keeps being reported.
        assert!(text
            .contains("redline_collector_last_success_timestamp_seconds{collector=\"redis\",target=\"a\"}"));
    }

    #[test]
    fn last_success_time_is_absent_until_a_first_success() {
        let s = Store::new();
        let t = s.register("redis", "a");
        s.publish(&t, true, Err(CollectError::Connect("refused".into())), Duration::ZERO);
        let text = encode(s.snapshot(), Format::Text);
        assert!(text.contains("redline_collector_success{collector=\"redis\",target=\"a\"} 0"), "{text}");
        assert!(!text.contains("redline_collector_last_success_timestamp_seconds{"), "{text}");
    }

    #[test]
    fn removed_or_replaced_targets_cannot_publish_again() {
        let s = Store::new();
        let old = s.register("redis", "a");
        s.publish(&old, true, Ok(uptime("a")), Duration::ZERO);
        // Replaced (new settings): the old task's publish is refused, the data stays.
        let new = s.register("redis", "a");
        assert!(!s.publish(&old, true, Err(CollectError::Connect("x".into())), Duration::ZERO));
        assert!(encode(s.snapshot(), Format::Text).contains("redline_redis_uptime_seconds{target=\"a\"} 5"));
        // Removed: gone at once, and a late publish cannot bring it back.
        s.remove("redis", "a");
        assert!(!s.publish(&new, true, Ok(uptime("a")), Duration::ZERO));
        let text = encode(s.snapshot(), Format::Text);
        assert!(!text.contains("target=\"a\""), "{text}");
    }

    #[test]
    fn readiness_stays_once_reached() {
        let s = Store::new();
        s.set_daemon_families(Vec::new());
        assert!(!s.ready(), "not before the start-up collectors are registered");
        let a = s.register("redis", "a");
        s.started();
        assert!(!s.ready());
        s.publish(&a, true, Ok(uptime("a")), Duration::ZERO);
        assert!(s.ready());
        s.register("redis", "b");
        assert!(s.ready(), "a target added by a reload must not make the daemon unready");
    }

    #[test]
    fn unchanged_snapshot_keeps_its_encoded_body() {
        let s = Store::new();
        let a = s.register("redis", "a");
        s.publish(&a, true, Ok(uptime("a")), Duration::ZERO);
        let first = s.exposition().body(Format::Text, false);
        let again = s.exposition().body(Format::Text, false);
        assert_eq!(first.as_ptr(), again.as_ptr(), "served from the cache, not re-encoded");
        s.publish(&a, true, Ok(uptime("a")), Duration::ZERO);
        assert!(s.exposition().cached(Format::Text, false).is_none(), "a new snapshot is encoded anew");
    }
}
