//! The attempt loop of one request, owned by routing: the pipeline asks for the next attempt,
//! sends it, and reports how it went; this decides what comes after.
//!
//! Targets are tried in the order the model's strategy picks, each retried with back-off on a
//! connect error, timeout, 429 or 5xx, then the model's fallback models with their own targets
//! (their own fallbacks are not followed, so a cycle in the config cannot loop). A target at its
//! in-flight limit or out of rotation (its breaker open) is passed over. All of this happens
//! before the first byte reaches the client, within the retry budget; once a response is handed
//! on, there is no retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;

use super::breaker::{Admission, ProbeGuard};
use super::retry::{self, Failure, Failures};
use super::{Lease, ModelRoute, Router, Target};
use crate::error::GatewayError;

/// One attempt on one target: it holds the target's in-flight slot, and the breaker's probe when
/// the attempt is one.
pub struct Attempt<'r> {
    pub target: &'r Target,
    lease: Lease,
    probe: Option<ProbeGuard<'r>>,
}

impl Attempt<'_> {
    /// How long to wait for the response headers: the target's first-byte timeout, or its total
    /// limit when that is shorter.
    pub fn first_byte_timeout(&self) -> Duration {
        let timeouts = self.target.timeouts;
        timeouts
            .total
            .map_or(timeouts.first_byte, |t| t.min(timeouts.first_byte))
    }
}

pub struct Attempts<'r> {
    router: &'r Router,
    /// The requested model; its fallbacks follow it in the chain (positions 1 on).
    route: &'r Arc<ModelRoute>,
    /// The next position of the chain to load, and the model being tried (resolved when it is
    /// reached: no list is built per request).
    next_route: usize,
    current: Option<&'r Arc<ModelRoute>>,
    /// The current model's targets in the order to try them, and where we are.
    order: Vec<usize>,
    position: usize,
    /// Attempts made on the current target.
    attempt: u32,
    /// A back-off to wait out before the next attempt on the same target.
    wait: Option<Duration>,
    deadline: Instant,
    failures: Failures,
    request_id: HeaderValue,
    finished: bool,
}

impl<'r> Attempts<'r> {
    /// The attempts for a request on `route` that started at `started` (the retry budget
    /// counts from there).
    pub fn new(
        router: &'r Router,
        route: &'r Arc<ModelRoute>,
        started: Instant,
        request_id: &HeaderValue,
    ) -> Self {
        Self {
            router,
            route,
            next_route: 0,
            current: None,
            order: Vec::new(),
            position: 0,
            attempt: 0,
            wait: None,
            deadline: started + router.routing.retry_budget,
            failures: Failures::default(),
            request_id: request_id.clone(),
            finished: false,
        }
    }

    /// The next attempt (after the back-off the last failure asked for), or None when every
    /// target is spent or the retry budget is.
    pub async fn next(&mut self) -> Option<Attempt<'r>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(wait) = self.wait.take() {
                tokio::time::sleep(wait).await;
            }
            if self.position >= self.order.len() {
                if !self.load_next_route() {
                    self.finished = true;
                    return None;
                }
                continue;
            }
            if Instant::now() >= self.deadline {
                self.failures.budget_spent(self.router.routing.retry_budget);
                self.finished = true;
                return None;
            }
            let Some(route) = self.current else {
                self.finished = true;
                return None;
            };
            let target: &'r Target = &route.targets[self.order[self.position]];
            // The slot first: a probe admitted by the breaker must really be sent.
            let Some(lease) = target.state.try_lease() else {
                if self.attempt == 0 {
                    self.failures.busy(target);
                }
                self.next_target();
                continue;
            };
            let probe = match target.state.breaker.admit() {
                Admission::Allowed => None,
                Admission::Probe => Some(target.state.breaker.probe_guard()),
                Admission::Refused { retry_in } => {
                    // Refused on a retry: this request's own failures opened the breaker, and
                    // their reason is the one worth reporting.
                    if self.attempt == 0 {
                        self.failures.out_of_rotation(target, retry_in);
                    }
                    self.next_target();
                    continue;
                }
            };
            return Some(Attempt {
                target,
                lease,
                probe,
            });
        }
    }

    /// The target answered (with a status not worth a retry): its health improves, and the
    /// slot goes with the response until it ends.
    pub fn succeeded(&mut self, attempt: Attempt<'r>, latency: Duration) -> Lease {
        let Attempt {
            target,
            lease,
            probe,
        } = attempt;
        target.state.record_latency(latency);
        target.state.breaker.record_success();
        if let Some(probe) = probe {
            probe.settle();
        }
        self.finished = true;
        lease
    }

    /// The attempt failed: counted against the target, then the same target again after a
    /// back-off, or the next one.
    pub fn failed(&mut self, attempt: Attempt<'r>, failure: Failure) {
        let Attempt {
            target,
            lease,
            probe,
        } = attempt;
        drop(lease);
        // A refused key fails every request alike: out at once, for long.
        let out_for = if failure.rejects_key() {
            tracing::error!(
                target_name = %target.state.label, error = %failure.reason,
                cooldown_ms = self.router.routing.rejected_key_cooldown.as_millis() as u64,
                "the provider refused this deployment's API key; it is out of rotation"
            );
            metrics::counter!("gateway_upstream_key_rejected_total", "target" => target.state.label.clone())
                .increment(1);
            Some(self.router.routing.rejected_key_cooldown)
        } else {
            failure.retry_after
        };
        target
            .state
            .breaker
            .record_failure(&failure.reason, out_for);
        if let Some(probe) = probe {
            probe.settle();
        }
        self.attempt += 1;
        let policy = &self.router.routing;
        let wait = retry::next_wait(
            policy,
            self.attempt,
            &failure,
            self.is_last_target(),
            self.deadline,
        );
        tracing::warn!(
            request_id = ?self.request_id, target_name = %target.state.label,
            attempt = self.attempt, error = %failure.reason,
            retry_in_ms = wait.map(|w| w.as_millis() as u64), "upstream attempt failed"
        );
        self.failures.failed(target, failure);
        match wait {
            Some(wait) => self.wait = Some(wait),
            None => self.next_target(),
        }
    }

    /// The model the attempts are on now: the requested one, or a fallback.
    pub fn model(&self) -> Option<&'r Arc<ModelRoute>> {
        self.current
    }

    /// This request may not use the current model (a per-model check refused it): its
    /// remaining targets are passed over, and the next fallback comes.
    pub fn refuse_model(&mut self, attempt: Attempt<'r>, reason: &str) {
        drop(attempt);
        if let Some(route) = self.current {
            self.failures.skipped(&route.name, reason);
        }
        self.position = self.order.len();
        self.attempt = 0;
        self.wait = None;
    }

    /// This target's provider cannot take the request (a parameter it lacks); another may.
    pub fn unusable(&mut self, attempt: Attempt<'r>, error: &GatewayError) {
        self.failures.unusable(attempt.target, error);
        self.next_target();
    }

    /// Why nothing answered: 504 when every attempt timed out, else 503, naming each target's
    /// failure.
    pub fn into_error(self, model: &str) -> GatewayError {
        self.failures.into_error(model)
    }

    fn is_last_target(&self) -> bool {
        self.next_route > self.route.fallbacks.len() && self.position + 1 == self.order.len()
    }

    fn next_target(&mut self) {
        self.position += 1;
        self.attempt = 0;
        self.wait = None;
    }

    /// Moves on to the next model of the chain that can be tried; false when none is left.
    fn load_next_route(&mut self) -> bool {
        while self.next_route <= self.route.fallbacks.len() {
            let position = self.next_route;
            self.next_route += 1;
            let route = match position {
                0 => self.route,
                // (Fallback names were checked against the models when the config was loaded.)
                n => match self.router.resolve(&self.route.fallbacks[n - 1]) {
                    Some(route) => route,
                    None => continue,
                },
            };
            self.current = Some(route);
            if let Some(reason) = &route.unavailable {
                self.failures.skipped(&route.name, reason);
                continue;
            }
            self.order = route.attempt_order();
            self.position = 0;
            self.attempt = 0;
            return true;
        }
        false
    }
}
