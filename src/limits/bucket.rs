//! Token-bucket arithmetic, shared by the in-process backend and (line for line, in Lua) by the
//! Redis scripts, so both enforce the same limits.
//!
//! A bucket holds up to `capacity` tokens (the per-minute limit) and refills continuously at
//! `capacity / 60` tokens per second. A request takes what it needs only if the bucket holds that
//! much; settling after the fact may take more than was there, leaving the level negative, which
//! delays later requests until the refill has paid the debt back.

/// Milliseconds in the window a per-minute limit is spread over.
pub const WINDOW_MS: f64 = 60_000.0;

/// A bucket's level at some instant (milliseconds on the backend's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub level: f64,
    pub at_ms: u64,
}

impl Bucket {
    /// A full bucket, as an unseen subject starts.
    pub fn full(capacity: u64, now_ms: u64) -> Bucket {
        Bucket {
            level: capacity as f64,
            at_ms: now_ms,
        }
    }

    /// The level at `now_ms`, refilled at `capacity` per minute and never above `capacity`
    /// (a limit lowered since the last visit clamps the level at once).
    pub fn level_at(&self, capacity: u64, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        let cap = capacity as f64;
        (self.level + elapsed * cap / WINDOW_MS).min(cap)
    }

    /// Refills to `now_ms`, then takes `amount` (a negative amount gives back).
    pub fn take(&mut self, capacity: u64, now_ms: u64, amount: f64) {
        let level = self.level_at(capacity, now_ms) - amount;
        self.level = level.min(capacity as f64);
        self.at_ms = now_ms.max(self.at_ms);
    }
}

/// Milliseconds until a bucket at `level` holds `need` (0 when it already does).
pub fn wait_ms(level: f64, need: f64, capacity: u64) -> u64 {
    if level >= need || capacity == 0 {
        return 0;
    }
    ((need - level) * WINDOW_MS / capacity as f64).ceil() as u64
}

/// Milliseconds until a bucket at `level` is full again (OpenAI's `x-ratelimit-reset-*`).
pub fn reset_ms(level: f64, capacity: u64) -> u64 {
    wait_ms(level, capacity as f64, capacity)
}

/// What a request reserves of a tokens-per-minute bucket: the estimate, but never more than the
/// whole bucket, so a request larger than the limit waits for a full bucket instead of being
/// refused forever.
pub fn reservation(estimate: u64, capacity: u64) -> u64 {
    estimate.min(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_continuously_up_to_capacity() {
        let b = Bucket {
            level: 0.0,
            at_ms: 1_000,
        };
        // 60 per minute: one per second.
        assert_eq!(b.level_at(60, 1_000), 0.0);
        assert!((b.level_at(60, 1_500) - 0.5).abs() < 1e-9);
        assert!((b.level_at(60, 11_000) - 10.0).abs() < 1e-9);
        assert_eq!(b.level_at(60, 1_000_000), 60.0);
        // A clock that went backwards refills nothing.
        assert_eq!(b.level_at(60, 10), 0.0);
    }

    #[test]
    fn take_may_go_negative_and_the_debt_delays_the_next_request() {
        let mut b = Bucket::full(600, 0);
        b.take(600, 0, 100.0);
        assert_eq!(b.level, 500.0);
        // Settling: 900 more tokens were used than reserved.
        b.take(600, 0, 900.0);
        assert_eq!(b.level, -400.0);
        // 10 per second: 400 + 50 needs 45 s.
        assert_eq!(wait_ms(b.level, 50.0, 600), 45_000);
        assert_eq!(wait_ms(b.level_at(600, 45_000), 50.0, 600), 0);
    }

    #[test]
    fn a_refund_never_overfills() {
        let mut b = Bucket::full(100, 0);
        b.take(100, 0, 10.0);
        b.take(100, 0, -50.0);
        assert_eq!(b.level, 100.0);
    }

    #[test]
    fn a_lowered_limit_clamps_the_level() {
        let b = Bucket::full(100, 0);
        assert_eq!(b.level_at(10, 0), 10.0);
    }

    #[test]
    fn waits_and_resets_round_up() {
        // 3 per minute: one every 20 s.
        assert_eq!(wait_ms(0.0, 1.0, 3), 20_000);
        assert_eq!(wait_ms(0.5, 1.0, 3), 10_000);
        assert_eq!(wait_ms(1.0, 1.0, 3), 0);
        assert_eq!(reset_ms(2.0, 3), 20_000);
        assert_eq!(reset_ms(3.0, 3), 0);
        // 7 per minute: 1/7 of a minute is 8571.4 ms, rounded up.
        assert_eq!(wait_ms(0.0, 1.0, 7), 8_572);
    }

    #[test]
    fn reservations_are_capped_at_the_bucket() {
        assert_eq!(reservation(50, 1_000), 50);
        assert_eq!(reservation(5_000, 1_000), 1_000);
    }
}
