//! Retry decisions before the first byte: what counts as retryable, how long to wait (back-off
//! with jitter, at least the upstream's Retry-After), and the summary a client gets when no
//! target could answer.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, Response, StatusCode};

use super::Target;
use crate::config::RoutingConfig;
use crate::error::GatewayError;

/// Statuses worth another attempt: timeouts, rate limits, server errors.
pub fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || rejects_key(status)
}

/// 401 / 403 from a provider: it refused the gateway's own key for this deployment (the
/// caller's credential was checked by the gateway, not sent on). Not the caller's fault, and
/// the same key fails every request: the deployment goes out of rotation, the next one is
/// tried. 400 / 404 are about the request and hand on as they are.
pub fn rejects_key(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    Status,
    /// The provider refused the deployment's API key.
    KeyRejected,
    Connect,
    Timeout,
}

/// One failed attempt.
pub struct Failure {
    pub reason: String,
    /// The upstream's Retry-After (or retry-after-ms), when it sent one.
    pub retry_after: Option<Duration>,
    kind: FailureKind,
}

impl Failure {
    pub fn status<B>(response: &Response<B>) -> Self {
        if rejects_key(response.status()) {
            return Self {
                reason: format!(
                    "refused the provider API key ({}): check the provider's api_key",
                    response.status()
                ),
                retry_after: None,
                kind: FailureKind::KeyRejected,
            };
        }
        Self {
            reason: format!("answered {}", response.status()),
            retry_after: retry_after(response.headers()),
            kind: FailureKind::Status,
        }
    }

    /// The provider refused the deployment's key: retrying it is pointless.
    pub fn rejects_key(&self) -> bool {
        self.kind == FailureKind::KeyRejected
    }

    pub fn connect(error: &dyn std::error::Error) -> Self {
        Self {
            reason: format!("could not connect ({})", crate::error::error_chain(error)),
            retry_after: None,
            kind: FailureKind::Connect,
        }
    }

    pub fn timeout(limit: Duration) -> Self {
        Self {
            reason: format!("sent no response headers within {} ms", limit.as_millis()),
            retry_after: None,
            kind: FailureKind::Timeout,
        }
    }
}

/// An upstream's Retry-After longer than this is not believed (nor allowed to overflow).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// `retry-after-ms` (OpenAI, Azure) or `retry-after` in seconds or as an HTTP date, capped at
/// [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        let wait = Duration::try_from_secs_f64(ms / 1000.0).ok()?;
        return Some(wait.min(MAX_RETRY_AFTER));
    }
    let value = text("retry-after")?;
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let wait = when.duration_since(SystemTime::now()).unwrap_or_default();
    Some(wait.min(MAX_RETRY_AFTER))
}

/// How long to wait before trying the same target again, or `None` to move on to the next
/// target (or give up): retries are spent, the wait would overrun the retry budget, or the
/// upstream named a wait and another target may answer sooner.
pub fn next_wait(
    policy: &RoutingConfig,
    attempt: u32,
    failure: &Failure,
    is_last_target: bool,
    deadline: Instant,
) -> Option<Duration> {
    if attempt > policy.retries || failure.rejects_key() {
        return None;
    }
    if failure.retry_after.is_some() && !is_last_target {
        return None;
    }
    let wait = backoff(policy, attempt).max(failure.retry_after.unwrap_or_default());
    Instant::now()
        .checked_add(wait)
        .is_some_and(|at| at < deadline)
        .then_some(wait)
}

/// Exponential back-off with "equal jitter": half fixed, half random, so retries from many
/// clients spread out instead of arriving together.
fn backoff(policy: &RoutingConfig, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let full = policy
        .retry_backoff
        .saturating_mul(1 << exponent)
        .min(policy.retry_max_backoff);
    let half = full / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Why each target failed, for the error a client gets when none answered.
#[derive(Default)]
pub struct Failures {
    lines: Vec<(String, String, u32)>,
    only_timeouts: Option<bool>,
}

impl Failures {
    fn note(&mut self, label: &str, reason: String, is_timeout: bool) {
        self.only_timeouts = Some(self.only_timeouts.unwrap_or(true) && is_timeout);
        match self.lines.last_mut() {
            Some((last, why, attempts)) if last == label => {
                *why = reason;
                *attempts += 1;
            }
            _ => self.lines.push((label.to_string(), reason, 1)),
        }
    }

    pub fn failed(&mut self, target: &Target, failure: Failure) {
        let timeout = failure.kind == FailureKind::Timeout;
        self.note(&target.state.label, failure.reason, timeout);
    }

    /// The request cannot be written for this target (a parameter its provider lacks).
    pub fn unusable(&mut self, target: &Target, error: &GatewayError) {
        let reason = format!("cannot take this request ({})", error.message);
        self.note(&target.state.label, reason, false);
    }

    pub fn out_of_rotation(&mut self, target: &Target, retry_in: Duration) {
        let reason = format!(
            "out of rotation after repeated failures (next try in {} ms)",
            retry_in.as_millis()
        );
        self.note(&target.state.label, reason, false);
    }

    pub fn busy(&mut self, target: &Target) {
        let limit = target.state.max_in_flight().unwrap_or(0);
        let reason = format!("at its limit of {limit} requests in flight");
        self.note(&target.state.label, reason, false);
    }

    pub fn skipped(&mut self, model: &str, reason: &str) {
        self.note(model, reason.to_string(), false);
    }

    pub fn budget_spent(&mut self, budget: Duration) {
        let reason = format!("retry budget of {} ms spent", budget.as_millis());
        self.note("gateway", reason, false);
    }

    /// 504 when every attempt timed out, else 503; the message names each target's failure.
    pub fn into_error(self, model: &str) -> GatewayError {
        if self.lines.is_empty() {
            return GatewayError::service_unavailable(format!(
                "The model `{model}` has no target that can be tried."
            ));
        }
        let details: Vec<String> = self
            .lines
            .iter()
            .map(|(label, why, attempts)| match attempts {
                1 => format!("{label} {why}"),
                n => format!("{label} {why} ({n} attempts)"),
            })
            .collect();
        let message = format!(
            "No target of model `{model}` could answer: {}.",
            details.join("; ")
        );
        if self.only_timeouts == Some(true) {
            GatewayError::gateway_timeout(message)
        } else {
            GatewayError::upstream(StatusCode::SERVICE_UNAVAILABLE, "upstream_error", message)
                .with_code("upstream_unavailable")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RoutingConfig {
        RoutingConfig {
            retries: 2,
            retry_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_millis(300),
            retry_budget: Duration::from_secs(10),
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
            rejected_key_cooldown: Duration::from_secs(300),
        }
    }

    #[test]
    fn reads_retry_after_in_every_form() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        let mut headers = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        headers.insert("retry-after", later.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
        // Absurd values are capped or ignored, never a panic.
        let mut headers = HeaderMap::new();
        headers.insert("retry-after-ms", "1e30".parse().unwrap());
        assert_eq!(retry_after(&headers), None, "not representable: ignored");
        headers.insert("retry-after-ms", "1e12".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "18446744073709551615".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn backoff_grows_is_capped_and_respects_retry_after() {
        let policy = policy();
        let far = Instant::now() + Duration::from_secs(60);
        let plain = Failure::timeout(Duration::from_secs(1));
        let first = next_wait(&policy, 1, &plain, true, far).unwrap();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let second = next_wait(&policy, 2, &plain, true, far).unwrap();
        assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
        assert_eq!(
            next_wait(&policy, 3, &plain, true, far),
            None,
            "retries spent"
        );
        let named = Failure {
            reason: "429".into(),
            retry_after: Some(Duration::from_secs(2)),
            kind: FailureKind::Status,
        };
        assert_eq!(
            next_wait(&policy, 1, &named, true, far),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            next_wait(&policy, 1, &named, false, far),
            None,
            "another target first"
        );
        let near = Instant::now() + Duration::from_secs(1);
        assert_eq!(
            next_wait(&policy, 1, &named, true, near),
            None,
            "over budget"
        );
    }
}
