//! Passive health for one target: a circuit breaker fed by the outcomes of real requests.
//!
//! Closed: requests flow. After `threshold` consecutive failures (or an upstream's Retry-After)
//! it opens: the target is skipped for the cool-down. Then it lets one request through as a
//! probe; success closes it, failure opens it again. No synthetic health checks are sent, so an
//! idle gateway costs providers nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

// tokio's clock (the system's, unless a test pauses it): cool-downs can be tested without
// waiting them out.
use tokio::time::Instant;

use serde::Serialize;

pub struct Breaker {
    label: String,
    threshold: u32,
    cooldown: Duration,
    /// True while no failure is on record: the common case answers without taking the lock.
    healthy: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// When the one probe allowed after a cool-down started; another may go after a cool-down
    /// more, in case the first was abandoned without a verdict.
    probing_since: Option<Instant>,
    last_error: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The one request sent to test a target that was out of rotation.
    Probe,
    Refused {
        retry_in: Duration,
    },
}

/// Held while the one probe request is out. If it ends without a verdict (the client went
/// away, or the request could not be built for this target), the next request may probe:
/// otherwise the target would stay out of rotation for another whole cool-down.
pub struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl ProbeGuard<'_> {
    /// The probe got its verdict (`record_success` or `record_failure` was called).
    pub fn settle(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.lock().probing_since = None;
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BreakerSnapshot {
    /// closed, open or half_open
    pub state: &'static str,
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Breaker {
    pub fn new(label: String, threshold: u32, cooldown: Duration) -> Self {
        Self {
            label,
            threshold: threshold.max(1),
            cooldown,
            healthy: AtomicBool::new(true),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few counters; one left by a panicking thread is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn admit(&self) -> Admission {
        if self.healthy.load(Ordering::Acquire) {
            return Admission::Allowed;
        }
        let mut state = self.lock();
        let Some(until) = state.open_until else {
            return Admission::Allowed;
        };
        let now = Instant::now();
        if now < until {
            return Admission::Refused {
                retry_in: until - now,
            };
        }
        match state.probing_since {
            Some(since) if now.duration_since(since) < self.cooldown => Admission::Refused {
                retry_in: self.cooldown - now.duration_since(since),
            },
            _ => {
                state.probing_since = Some(now);
                tracing::info!(target_name = %self.label, "probing a target that was out of rotation");
                Admission::Probe
            }
        }
    }

    /// The guard for a request admitted as [`Admission::Probe`].
    pub fn probe_guard(&self) -> ProbeGuard<'_> {
        ProbeGuard {
            breaker: self,
            armed: true,
        }
    }

    pub fn record_success(&self) {
        if self.healthy.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.lock();
        if state.open_until.is_some() {
            tracing::info!(target_name = %self.label, "target is healthy again; back in rotation");
        }
        *state = State::default();
        self.healthy.store(true, Ordering::Release);
    }

    /// Counts a failure. `retry_after` (an upstream's Retry-After) takes the target out at once
    /// for that long: sending it more work before then only collects more refusals.
    pub fn record_failure(&self, why: &str, retry_after: Option<Duration>) {
        let mut state = self.lock();
        self.healthy.store(false, Ordering::Release);
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.last_error = Some(why.to_string());
        let failed_probe = state.probing_since.is_some();
        if !(failed_probe || retry_after.is_some() || state.consecutive_failures >= self.threshold)
        {
            return;
        }
        // Retry-After arrives already capped by its parser (routing::retry::retry_after).
        let cooldown = retry_after.unwrap_or(self.cooldown);
        let until = Instant::now() + cooldown;
        // Never shorten a longer cool-down already in force (a stream started before the
        // breaker opened may fail later).
        if state.open_until.is_none_or(|current| current < until) {
            state.open_until = Some(until);
        }
        state.probing_since = None;
        tracing::warn!(
            target_name = %self.label, failures = state.consecutive_failures,
            cooldown_ms = cooldown.as_millis() as u64, error = why,
            "target taken out of rotation"
        );
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        let state = self.lock();
        let now = Instant::now();
        let (name, retry_in) = match state.open_until {
            None => ("closed", None),
            Some(until) if now < until => ("open", Some(until - now)),
            Some(_) => ("half_open", None),
        };
        BreakerSnapshot {
            state: name,
            consecutive_failures: state.consecutive_failures,
            retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
            last_error: state.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once_after_cooldown() {
        let breaker = Breaker::new("t".into(), 2, Duration::from_millis(0));
        breaker.record_failure("boom", None);
        assert_eq!(breaker.admit(), Admission::Allowed);
        breaker.record_failure("boom", None);
        assert_eq!(breaker.snapshot().state, "half_open");
        // Zero cool-down: the next request is the probe.
        assert_eq!(breaker.admit(), Admission::Probe);
        breaker.record_success();
        assert_eq!(breaker.admit(), Admission::Allowed);
        assert_eq!(breaker.snapshot().state, "closed");
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        let breaker = Breaker::new("t".into(), 1, Duration::from_millis(0));
        breaker.record_failure("boom", None);
        assert_eq!(breaker.admit(), Admission::Probe);
        drop(breaker.probe_guard());
        assert_eq!(
            breaker.admit(),
            Admission::Probe,
            "not stuck behind a lost probe"
        );
        breaker.probe_guard().settle();
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_for_the_whole_cooldown_then_probes_once() {
        let breaker = Breaker::new("t".into(), 1, Duration::from_secs(30));
        breaker.record_failure("boom", None);
        tokio::time::advance(Duration::from_millis(29_999)).await;
        assert_eq!(
            breaker.admit(),
            Admission::Refused {
                retry_in: Duration::from_millis(1)
            }
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(breaker.admit(), Admission::Probe);
        let probe = breaker.probe_guard();
        // While the probe is out, others wait a cool-down for its verdict.
        assert!(matches!(breaker.admit(), Admission::Refused { .. }));
        breaker.record_failure("still down", None);
        probe.settle();
        assert!(
            matches!(breaker.admit(), Admission::Refused { retry_in } if retry_in == Duration::from_secs(30)),
            "a failed probe reopens for a whole cool-down"
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breaker.admit(), Admission::Probe);
        breaker.record_success();
        assert_eq!(breaker.admit(), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_reopens_and_retry_after_opens_at_once() {
        let breaker = Breaker::new("t".into(), 5, Duration::from_secs(30));
        breaker.record_failure("429", Some(Duration::from_secs(7)));
        match breaker.admit() {
            Admission::Refused { retry_in } => assert!(retry_in <= Duration::from_secs(7)),
            other => panic!("expected refusal, got {other:?}"),
        }
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.state, "open");
        assert_eq!(snapshot.last_error.as_deref(), Some("429"));
    }
}
