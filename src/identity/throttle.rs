//! Login throttling against password guessing: per key (an account or `ip:<addr>`), a fixed
//! window opens at the first failure; `max_failures` failures within it lock the key until it ends.

use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;

/// Bounds memory under a flood of distinct keys; beyond it moka evicts the least useful entries.
const MAX_KEYS: u64 = 100_000;
/// A lockout never tells the client to retry sooner than this.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    started: Instant,
}

pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    /// The time-to-live only reclaims memory; the window itself is checked against `started`,
    /// and every write restarts the TTL, so an entry never expires before its window ends.
    entries: Cache<String, Window>,
}

impl LoginThrottle {
    /// `max_failures == 0` disables throttling.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            entries: Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(window.max(Duration::from_millis(1)))
                .build(),
        }
    }

    /// Before checking a password: Err(retry_after) when `key` (an account identifier, lowercased by the caller, or "ip:<addr>") is locked out.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    pub fn record_failure(&self, key: &str) {
        self.record_failure_at(key, Instant::now());
    }

    /// Checks and counts an attempt in one step (serialised per key), so attempts made at once
    /// cannot all pass the check before any of them is counted: Err(retry_after) when locked
    /// (nothing counted), else the attempt counts as a failure until `record_success`.
    pub fn attempt(&self, key: &str) -> Result<(), Duration> {
        self.attempt_at(key, Instant::now())
    }

    fn attempt_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let (window, max) = (self.window, self.max_failures);
        let mut locked = None;
        self.entries.entry_by_ref(key).and_compute_with(|existing| {
            match existing.map(|e| e.into_value()) {
                Some(w) if now.saturating_duration_since(w.started) < window => {
                    if w.failures >= max {
                        let left = window - now.saturating_duration_since(w.started);
                        locked = Some(left.max(MIN_RETRY_AFTER));
                        Op::Nop
                    } else {
                        Op::Put(Window {
                            failures: w.failures.saturating_add(1),
                            started: w.started,
                        })
                    }
                }
                _ => Op::Put(Window {
                    failures: 1,
                    started: now,
                }),
            }
        });
        locked.map_or(Ok(()), Err)
    }

    /// Clears the key.
    pub fn record_success(&self, key: &str) {
        if self.max_failures > 0 {
            self.entries.invalidate(key);
        }
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let Some(w) = self.entries.get(key) else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(w.started);
        if w.failures >= self.max_failures && elapsed < self.window {
            return Err((self.window - elapsed).max(MIN_RETRY_AFTER));
        }
        Ok(())
    }

    fn record_failure_at(&self, key: &str, now: Instant) {
        if self.max_failures == 0 {
            return;
        }
        let window = self.window;
        // Serialised per key by moka, so concurrent failures are all counted.
        self.entries.entry_by_ref(key).and_compute_with(|existing| {
            let next = match existing.map(|e| e.into_value()) {
                Some(w) if now.saturating_duration_since(w.started) < window => Window {
                    failures: w.failures.saturating_add(1),
                    started: w.started,
                },
                // No window yet, or the last one is over: this failure opens a new one.
                _ => Window {
                    failures: 1,
                    started: now,
                },
            };
            Op::Put(next)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn locks_after_max_failures() {
        let t = LoginThrottle::new(3, MINUTE);
        for _ in 0..2 {
            t.record_failure("alice@example.com");
            assert_eq!(t.check("alice@example.com"), Ok(()));
        }
        t.record_failure("alice@example.com");
        let retry = t.check("alice@example.com").unwrap_err();
        assert!(
            retry > Duration::from_secs(55) && retry <= MINUTE,
            "{retry:?}"
        );
    }

    #[test]
    fn success_clears_the_key() {
        let t = LoginThrottle::new(2, MINUTE);
        t.record_failure("a");
        t.record_failure("a");
        assert!(t.check("a").is_err());
        t.record_success("a");
        assert_eq!(t.check("a"), Ok(()));
        // The count starts over too.
        t.record_failure("a");
        assert_eq!(t.check("a"), Ok(()));
    }

    #[test]
    fn keys_are_independent() {
        let t = LoginThrottle::new(1, MINUTE);
        t.record_failure("a");
        assert!(t.check("a").is_err());
        assert_eq!(t.check("b"), Ok(()));
        assert_eq!(t.check("ip:127.0.0.1"), Ok(()));
    }

    #[test]
    fn zero_disables() {
        let t = LoginThrottle::new(0, MINUTE);
        for _ in 0..100 {
            t.record_failure("a");
        }
        assert_eq!(t.check("a"), Ok(()));
    }

    #[test]
    fn window_is_fixed_from_the_first_failure() {
        let t = LoginThrottle::new(2, MINUTE);
        let start = Instant::now();
        t.record_failure_at("a", start);
        // A later failure in the same window does not move its start.
        t.record_failure_at("a", start + Duration::from_secs(50));
        let retry = t
            .check_at("a", start + Duration::from_secs(50))
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(10));
        // Near the end the client is still told to wait at least a second.
        let retry = t
            .check_at("a", start + Duration::from_millis(59_900))
            .unwrap_err();
        assert_eq!(retry, MIN_RETRY_AFTER);
        assert_eq!(t.check_at("a", start + MINUTE), Ok(()));
    }

    #[test]
    fn failures_in_an_expired_window_start_a_new_one() {
        let t = LoginThrottle::new(2, MINUTE);
        let start = Instant::now();
        t.record_failure_at("a", start);
        t.record_failure_at("a", start + Duration::from_secs(61));
        assert_eq!(t.check_at("a", start + Duration::from_secs(61)), Ok(()));
        t.record_failure_at("a", start + Duration::from_secs(62));
        let retry = t
            .check_at("a", start + Duration::from_secs(62))
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(59));
    }

    #[test]
    fn expires_in_real_time() {
        let t = LoginThrottle::new(1, Duration::from_millis(50));
        t.record_failure("a");
        assert!(t.check("a").is_err());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(t.check("a"), Ok(()));
    }

    #[test]
    fn concurrent_failures_are_all_counted() {
        let t = Arc::new(LoginThrottle::new(400, MINUTE));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        t.record_failure("a");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(t.check("a").is_err());
    }

    #[test]
    fn attempts_check_and_count_in_one_step() {
        let t = Arc::new(LoginThrottle::new(3, MINUTE));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || (0..10).filter(|_| t.attempt("a").is_ok()).count())
            })
            .collect();
        let passed: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(passed, 3);
        t.record_success("a");
        assert_eq!(t.attempt("a"), Ok(()));
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LoginThrottle>();
    }
}
