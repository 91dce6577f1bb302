//! A fixed-bucket cumulative histogram for job wait and processing times.

/// Upper bounds in seconds: from 10 ms (fast jobs) to 6 h (overnight backlogs).
pub const BOUNDS: [f64; 15] =
    [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0];

/// Observations since redline started (Prometheus handles the reset on restart).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: [u64; BOUNDS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Records one duration; negative values (clock skew between producers) count as 0.
    pub fn observe(&mut self, seconds: f64) {
        let v = if seconds.is_finite() { seconds.max(0.0) } else { return };
        if let Some(i) = BOUNDS.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// `(sum, count, cumulative buckets)`.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut acc = 0;
        let buckets = BOUNDS
            .iter()
            .zip(self.counts.iter())
            .map(|(b, c)| {
                acc += c;
                (*b, acc)
            })
            .collect();
        (self.sum, self.count, buckets)
    }
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
}
