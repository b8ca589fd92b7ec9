//! `[routing]`: retries and passive health, the same for every model.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRouting {
    retries: u32,
    retry_backoff_ms: u64,
    retry_max_backoff_ms: u64,
    retry_budget_ms: u64,
    failure_threshold: u32,
    cooldown_ms: u64,
    rejected_key_cooldown_ms: u64,
}

impl Default for RawRouting {
    fn default() -> Self {
        Self {
            retries: 2,
            retry_backoff_ms: 200,
            retry_max_backoff_ms: 5_000,
            retry_budget_ms: 30_000,
            failure_threshold: 5,
            cooldown_ms: 30_000,
            rejected_key_cooldown_ms: 300_000,
        }
    }
}

/// Retries and passive health, the same for every model.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// Extra attempts on one target after a connect error, timeout, 429 or 5xx.
    pub retries: u32,
    /// The first back-off; it doubles per retry (with jitter) up to `retry_max_backoff`.
    pub retry_backoff: Duration,
    pub retry_max_backoff: Duration,
    /// No new attempt starts once this much time has gone since the request arrived.
    pub retry_budget: Duration,
    /// Consecutive failures that take a target out of rotation.
    pub failure_threshold: u32,
    /// How long a failing target stays out before one request probes it.
    pub cooldown: Duration,
    /// How long a target whose provider refused its API key (401/403) stays out.
    pub rejected_key_cooldown: Duration,
}

pub(super) fn routing(r: &RawRouting, problems: &mut Vec<String>) -> RoutingConfig {
    for (field, value) in [
        ("retry_backoff_ms", r.retry_backoff_ms),
        ("retry_max_backoff_ms", r.retry_max_backoff_ms),
        ("retry_budget_ms", r.retry_budget_ms),
        ("cooldown_ms", r.cooldown_ms),
        ("rejected_key_cooldown_ms", r.rejected_key_cooldown_ms),
        ("failure_threshold", u64::from(r.failure_threshold)),
    ] {
        if value == 0 {
            problems.push(format!("routing.{field}: must be greater than 0"));
        }
    }
    RoutingConfig {
        retries: r.retries,
        retry_backoff: Duration::from_millis(r.retry_backoff_ms),
        retry_max_backoff: Duration::from_millis(r.retry_max_backoff_ms.max(r.retry_backoff_ms)),
        retry_budget: Duration::from_millis(r.retry_budget_ms),
        failure_threshold: r.failure_threshold,
        cooldown: Duration::from_millis(r.cooldown_ms),
        rejected_key_cooldown: Duration::from_millis(r.rejected_key_cooldown_ms),
    }
}
