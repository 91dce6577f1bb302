//! Reconnect backoff. A dead target is retried by every collection when collections are at
//! least 1 s apart; faster collections back off exponentially from 0.5 s to 1 s. Either way a
//! target that comes back is seen within one interval (or 1 s), not up to 30 s later as with
//! the former fixed 30 s cap.

use std::time::Duration;

use tokio::time::Instant;

/// First delay after a failure (shorter when the interval is).
const BASE: Duration = Duration::from_millis(500);
/// Longest delay for collectors faster than this.
const FLOOR_CAP: Duration = Duration::from_secs(1);

/// Tracks consecutive failures and when the next attempt is due.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
    next: Option<Instant>,
}

impl Backoff {
    /// A backoff doubling from `base` up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max, failures: 0, next: None }
    }

    /// The backoff of a collector that runs every `interval`: delays double from 500 ms and are
    /// capped at the interval (at least 1 s), so the collection after a failed one may try
    /// again — only sub-second collectors skip ticks, for at most 1 s.
    pub fn for_interval(interval: Duration) -> Self {
        Self::new(BASE.min(interval), interval.max(FLOOR_CAP))
    }

    /// Whether an attempt may be made now.
    pub fn ready(&self) -> bool {
        self.next.is_none_or(|n| Instant::now() >= n)
    }

    /// Records a failure of an attempt that started at `started`; the delay counts from there,
    /// so a slow failure (a connect timeout) does not push the next try past the next tick.
    pub fn failed_since(&mut self, started: Instant) {
        let exp = self.failures.min(16);
        let delay = self.base.saturating_mul(1u32 << exp).min(self.max);
        self.failures = self.failures.saturating_add(1);
        self.next = Some(started + delay);
    }

    /// Records a failure of an attempt that started now.
    pub fn failed(&mut self) {
        self.failed_since(Instant::now());
    }

    /// Records a success: the next failure starts from `base` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn doubles_up_to_max_and_resets_on_success() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));
        assert!(b.ready());
        b.failed();
        assert!(!b.ready());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(b.ready());
        b.failed(); // 1s
        tokio::time::advance(Duration::from_millis(900)).await;
        assert!(!b.ready());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(b.ready());
        b.failed(); // 2s (capped)
        b.failed(); // still 2s
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(b.ready());
        b.succeeded();
        b.failed();
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(b.ready());
    }

    /// A target down for a long time (the old 30 s cap made recovery take 31 s) is tried
    /// again on the first tick after it comes back, whatever the interval.
    #[tokio::test(start_paused = true)]
    async fn a_returning_target_is_tried_on_the_next_tick() {
        for interval_ms in [200u64, 1_000, 5_000, 10_000, 60_000] {
            let interval = Duration::from_millis(interval_ms);
            // Each failed attempt takes some time (a connect that times out takes 80% of it).
            let attempt_cost = interval.mul_f64(0.8);
            let mut b = Backoff::for_interval(interval);
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let comes_back_at = 40;
            let mut attempts = 0;
            let mut recovered_on = None;
            for tick in 0..60 {
                ticker.tick().await;
                if !b.ready() {
                    continue;
                }
                attempts += 1;
                let started = Instant::now();
                if tick >= comes_back_at {
                    b.succeeded();
                    recovered_on = Some(tick);
                    break;
                }
                tokio::time::advance(attempt_cost).await;
                b.failed_since(started);
            }
            if interval_ms >= 1_000 {
                assert_eq!(recovered_on, Some(comes_back_at), "interval {interval:?}");
                assert_eq!(attempts, comes_back_at + 1, "one attempt per tick at {interval:?}");
            } else {
                // Sub-second collectors skip ticks while backing off, for at most 1 s.
                let late = recovered_on.expect("recovered") - comes_back_at;
                assert!(late as u64 * interval_ms <= 1_000, "recovered {late} ticks late");
                assert!(attempts < comes_back_at, "{attempts} attempts in {comes_back_at} ticks");
            }
        }
    }

    /// After a collection overran its deadline, the delay counts from the collection's start.
    #[tokio::test(start_paused = true)]
    async fn a_timed_out_collection_is_retried_on_the_next_tick() {
        let interval = Duration::from_secs(1);
        let timeout = Duration::from_millis(900);
        let mut b = Backoff::for_interval(interval);
        for _ in 0..10 {
            let start = Instant::now();
            tokio::time::advance(timeout).await;
            b.failed_since(start);
            tokio::time::advance(interval - timeout).await;
        }
        assert!(b.ready());
    }
}
