//! A cumulative histogram for job wait and processing times: fixed default buckets, plus the
//! thresholds of the SLOs that name the queue, so an SLI is read from an exact bucket.

use std::sync::{Arc, LazyLock};

use super::QueueRef;
use crate::slo::BucketPlan;

/// Default upper bounds in seconds: from 10 ms (fast jobs) to 6 h (overnight backlogs).
pub const BOUNDS: [f64; 15] =
    [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0];

/// The default bounds, shared by every histogram that has no SLO bounds.
static DEFAULT: LazyLock<Arc<[f64]>> = LazyLock::new(|| Arc::from(&BOUNDS[..]));

/// Observations since redline started (Prometheus handles the reset on restart).
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { bounds: DEFAULT.clone(), counts: vec![0; BOUNDS.len()], sum: 0.0, count: 0 }
    }
}

impl Histogram {
    /// Records one duration; negative values (clock skew between producers) count as 0.
    pub fn observe(&mut self, seconds: f64) {
        let v = if seconds.is_finite() { seconds.max(0.0) } else { return };
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// `(sum, count, cumulative buckets)`.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut acc = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(self.counts.iter())
            .map(|(b, c)| {
                acc += c;
                (*b, acc)
            })
            .collect();
        (self.sum, self.count, buckets)
    }

    /// Uses the default bounds plus `extra`. Past observations cannot be re-bucketed, so a
    /// change of bounds starts the histogram afresh (Prometheus sees a counter reset, which
    /// `rate()` handles); unchanged bounds keep everything.
    pub fn set_extra_bounds(&mut self, extra: &[f64]) {
        let fresh: Arc<[f64]> = if extra.is_empty() {
            DEFAULT.clone()
        } else {
            let mut b: Vec<f64> =
                BOUNDS.iter().chain(extra).copied().filter(|v| v.is_finite() && *v > 0.0).collect();
            b.sort_by(f64::total_cmp);
            b.dedup();
            Arc::from(b)
        };
        if Arc::ptr_eq(&fresh, &self.bounds) || fresh[..] == self.bounds[..] {
            return;
        }
        *self = Histogram { counts: vec![0; fresh.len()], bounds: fresh, sum: 0.0, count: 0 };
    }
}

/// Gives a queue's two histograms the buckets its SLOs need; returns whether an SLO names the
/// queue (its histograms are then exposed whatever the histogram limits say).
pub fn apply_slo_bounds(
    plan: &BucketPlan,
    target: &str,
    q: &QueueRef,
    wait: &mut Histogram,
    processing: &mut Histogram,
) -> bool {
    if plan.is_empty() {
        wait.set_extra_bounds(&[]);
        processing.set_extra_bounds(&[]);
        return false;
    }
    let b = plan.for_queue(target, q.system, &q.prefix, &q.name);
    wait.set_extra_bounds(&b.wait);
    processing.set_extra_bounds(&b.processing);
    b.named
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_buckets_and_overflow() {
        let mut h = Histogram::default();
        for v in [0.005, 0.2, 0.2, 50_000.0, -1.0, f64::NAN] {
            h.observe(v);
        }
        let (sum, count, b) = h.snapshot();
        assert_eq!(count, 5);
        assert!((sum - 50_000.405).abs() < 1e-9);
        assert_eq!(b[0], (0.01, 2)); // 0.005 and the clamped -1
        assert_eq!(b[3], (0.5, 4));
        assert_eq!(b.last().map(|x| x.1), Some(4)); // 50,000 s only in +Inf
    }

    #[test]
    fn slo_bounds_are_exact_buckets_and_a_change_starts_afresh() {
        let mut h = Histogram::default();
        h.observe(1.5);
        h.set_extra_bounds(&[]);
        assert_eq!(h.snapshot().1, 1, "same bounds keep the data");
        h.set_extra_bounds(&[2.0, 30.0]);
        assert_eq!(h.snapshot().1, 0, "new bounds start afresh");
        for v in [1.5, 2.0, 2.001] {
            h.observe(v);
        }
        let (_, count, b) = h.snapshot();
        assert_eq!(count, 3);
        assert_eq!(b.len(), BOUNDS.len() + 1, "30 s was a default bound already");
        assert!(b.contains(&(2.0, 2)), "a job of exactly 2 s is within a 2 s objective: {b:?}");
        h.set_extra_bounds(&[30.0, 2.0]);
        assert_eq!(h.snapshot().1, 3, "the same bounds in another order change nothing");
    }
}
