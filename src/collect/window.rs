//! Sends a long pipeline in windows sized by measured cost.
//!
//! Redis runs every command of one socket read back to back before it serves another client.
//! One pipeline of 10,000 queue scripts therefore makes an application on the same server wait
//! ~3 ms behind redline again and again. Instead the commands go out in windows: send a window,
//! await its replies, send the next. A window's size is set from the time the previous ones
//! took (send to last reply, which bounds what Redis spent on them from above), aiming at
//! [`TARGET`] per window and clamped to [`MIN_COMMANDS`]..=[`MAX_COMMANDS`]: round trips grow,
//! bounded by `commands / MIN_COMMANDS`.
//!
//! Commands come in groups (a queue's `MULTI … EXEC`, its script) that are never split across
//! windows, and replies come back in the order of the commands, as one pipeline would give them.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, RedisResult, Value};
use tokio::time::Instant;

/// Time per window aimed at (Redis time plus one loopback round trip). Measured beside an
/// application client at 1,000 and 10,000 BullMQ queues: 400 µs left the application's p99.9
/// ~0.5 ms over its baseline, 200 µs cost Redis 1.9x the floor's CPU in round trips; 300 µs
/// gave +0.33 ms and 1.6x (docs/benchmarks.md).
pub const TARGET: Duration = Duration::from_micros(300);
/// Fewest commands per window (bounds the round trips on a slow or busy server).
pub const MIN_COMMANDS: usize = 4;
/// Most commands per window (cheap commands: one socket read of Redis stays short anyway).
pub const MAX_COMMANDS: usize = 256;
/// Window size before anything was measured.
const START: usize = 8;

/// Window sizing for one connection, kept across collections.
#[derive(Debug, Clone)]
pub struct Window {
    /// Smoothed time per command, microseconds; `None` until measured.
    per_command_us: Option<f64>,
    /// Requests sent (for `redline_redis_round_trips_total`).
    pub trips: u64,
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

impl Window {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Self { per_command_us: None, trips: 0 }
    }

    /// Commands in the next window.
    pub fn size(&self) -> usize {
        match self.per_command_us {
            None => START,
            Some(us) => {
                let n = TARGET.as_secs_f64() * 1e6 / us.max(0.01);
                (n as usize).clamp(MIN_COMMANDS, MAX_COMMANDS)
            }
        }
    }

    /// Learns from a window of `commands` that took `took`.
    fn observe(&mut self, commands: usize, took: Duration) {
        if commands == 0 {
            return;
        }
        let us = took.as_secs_f64() * 1e6 / commands as f64;
        // Smoothed, but quick to shrink: one slow window should shrink the next at once.
        self.per_command_us = Some(match self.per_command_us {
            Some(old) if us < old => 0.7 * old + 0.3 * us,
            Some(old) => 0.3 * old + 0.7 * us,
            None => us,
        });
    }

    /// Sends `cmds` in windows of whole `groups` (command counts, summing to `cmds.len()`;
    /// commands past the groups go one per group) and returns one reply per command, in order.
    /// A window that fails fails the whole call: the connection's state is then unknown.
    pub async fn run(
        &mut self,
        conn: &mut MultiplexedConnection,
        cmds: Vec<Cmd>,
        groups: &[usize],
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let total = cmds.len();
        let mut replies = Vec::with_capacity(total);
        let mut cmds = cmds.into_iter();
        let listed: usize = groups.iter().sum();
        let mut sizes = groups.iter().copied().chain(std::iter::repeat_n(1, total.saturating_sub(listed)));
        let mut carry: Option<usize> = None;
        let mut sent = 0;
        while sent < total {
            let want = self.size();
            let mut n = 0;
            while let Some(g) = carry.take().or_else(|| sizes.next()) {
                if n > 0 && n + g > want {
                    carry = Some(g);
                    break;
                }
                n += g;
                if n >= want {
                    break;
                }
            }
            // Groups summing past the commands (a caller bug) must not loop forever.
            let n = n.clamp(1, total - sent);
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for c in cmds.by_ref().take(n) {
                pipe.add_command(c);
            }
            let started = Instant::now();
            self.trips += 1;
            let got: Vec<RedisResult<Value>> = pipe.query_async(conn).await?;
            self.observe(n, started.elapsed());
            if got.len() != n {
                // Replies that do not line up with the commands would be read as another
                // queue's: fail instead.
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "pipeline window",
                    format!("{} replies for {n} commands", got.len()),
                )));
            }
            replies.extend(got);
            sent += n;
        }
        Ok(replies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_measured_cost_within_its_bounds() {
        let mut w = Window::new();
        assert_eq!(w.size(), START);
        w.observe(8, Duration::from_micros(800)); // 100 us per command
        assert_eq!(w.size(), MIN_COMMANDS);
        for _ in 0..20 {
            w.observe(10, Duration::from_micros(200)); // 20 us per command
        }
        let want = (TARGET.as_micros() / 20) as usize;
        assert!((want - 2..=want + 2).contains(&w.size()), "{} for {want}", w.size());
        for _ in 0..20 {
            w.observe(256, Duration::from_micros(50));
        }
        assert_eq!(w.size(), MAX_COMMANDS);
        w.observe(4, Duration::from_millis(50)); // one slow window shrinks the next at once
        assert_eq!(w.size(), MIN_COMMANDS);
    }
}
