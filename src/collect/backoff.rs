//! Exponential reconnect backoff, so a dead target costs one connect attempt per backoff
//! step instead of one per collection.

use std::time::Duration;

use tokio::time::Instant;

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

    /// Whether an attempt may be made now.
    pub fn ready(&self) -> bool {
        self.next.is_none_or(|n| Instant::now() >= n)
    }

    /// Records a failure and schedules the next attempt.
    pub fn failed(&mut self) {
        let exp = self.failures.min(16);
        let delay = self.base.saturating_mul(1u32 << exp).min(self.max);
        self.failures = self.failures.saturating_add(1);
        self.next = Some(Instant::now() + delay);
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
}
