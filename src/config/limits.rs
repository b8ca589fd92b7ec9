//! The `[limits]` (rate limits, concurrency and budgets: tiers, per-model limits, the backend)
//! and `[redis]` (the shared store for several replicas) sections.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::identity::Env;
use super::{interpolate, Secret};

// Raw

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    url: String,
    #[serde(default = "default_redis_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_key_prefix")]
    key_prefix: String,
}

fn default_redis_timeout_ms() -> u64 {
    100
}
fn default_key_prefix() -> String {
    "gw".into()
}

/// Limits for one subject (a key, a user or a model). Unset: no limit of that kind.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_budget_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_budget_usd: Option<f64>,
}

impl LimitSet {
    pub fn is_empty(&self) -> bool {
        *self == LimitSet::default()
    }

    /// `self`'s values where set, `base`'s otherwise.
    pub fn over(&self, base: &LimitSet) -> LimitSet {
        LimitSet {
            requests_per_minute: self.requests_per_minute.or(base.requests_per_minute),
            tokens_per_minute: self.tokens_per_minute.or(base.tokens_per_minute),
            max_concurrent: self.max_concurrent.or(base.max_concurrent),
            daily_budget_usd: self.daily_budget_usd.or(base.daily_budget_usd),
            monthly_budget_usd: self.monthly_budget_usd.or(base.monthly_budget_usd),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default = "default_backend")]
    backend: String,
    #[serde(default = "default_on_backend_error")]
    on_backend_error: String,
    key_tier: Option<String>,
    user_tier: Option<String>,
    #[serde(default)]
    tiers: BTreeMap<String, LimitSet>,
    #[serde(default)]
    models: BTreeMap<String, LimitSet>,
    #[serde(default = "default_max_output")]
    default_max_output_tokens: u64,
    #[serde(default = "default_lease_secs")]
    concurrency_lease_secs: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            backend: default_backend(),
            on_backend_error: default_on_backend_error(),
            key_tier: None,
            user_tier: None,
            tiers: BTreeMap::new(),
            models: BTreeMap::new(),
            default_max_output_tokens: default_max_output(),
            concurrency_lease_secs: default_lease_secs(),
        }
    }
}

fn default_backend() -> String {
    "memory".into()
}
fn default_on_backend_error() -> String {
    "fail_open".into()
}
fn default_max_output() -> u64 {
    4_096
}
fn default_lease_secs() -> u64 {
    900
}

// Validated

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: Secret,
    pub timeout: Duration,
    pub key_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitBackend {
    Memory,
    Redis,
}

/// What to do with a request when the shared limit store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Open,
    Closed,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub backend: LimitBackend,
    pub on_backend_error: FailMode,
    /// The tier of keys and users with no override naming another.
    pub key_tier: Option<String>,
    pub user_tier: Option<String>,
    pub tiers: BTreeMap<String, LimitSet>,
    /// Per model, across all callers (protects the providers' own quotas).
    pub models: BTreeMap<String, LimitSet>,
    /// The output assumed for a budget reservation when a request names no max_tokens and the
    /// price table no max output.
    pub default_max_output_tokens: u64,
    /// A concurrency slot held by a replica that died is freed after this long.
    pub concurrency_lease: Duration,
}

impl LimitsConfig {
    pub fn tier(&self, name: Option<&str>) -> LimitSet {
        name.and_then(|n| self.tiers.get(n))
            .cloned()
            .unwrap_or_default()
    }
}

// Validation

pub(super) fn redis(
    raw: Option<RawRedis>,
    env: Env,
    problems: &mut Vec<String>,
) -> Option<RedisConfig> {
    let raw = raw?;
    let url = match interpolate(&raw.url, env) {
        Ok(url) => url,
        Err(e) => {
            problems.push(format!("redis.url: {e}"));
            return None;
        }
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        problems.push("redis.url: must start with redis:// or rediss://".into());
    }
    if raw.timeout_ms == 0 {
        problems.push("redis.timeout_ms: must be greater than 0".into());
    }
    Some(RedisConfig {
        url: Secret::new(url),
        timeout: Duration::from_millis(raw.timeout_ms.max(1)),
        key_prefix: raw.key_prefix,
    })
}

pub(super) fn limits(
    raw: Option<RawLimits>,
    redis: Option<&RedisConfig>,
    problems: &mut Vec<String>,
) -> Option<LimitsConfig> {
    let raw = raw?;
    let backend = match raw.backend.as_str() {
        "memory" => LimitBackend::Memory,
        "redis" => {
            if redis.is_none() {
                problems
                    .push("limits.backend: \"redis\" needs a [redis] section with its url".into());
            }
            LimitBackend::Redis
        }
        other => {
            problems.push(format!(
                "limits.backend: unknown backend \"{other}\" (known: memory, redis)"
            ));
            LimitBackend::Memory
        }
    };
    let on_backend_error = match raw.on_backend_error.as_str() {
        "fail_open" => FailMode::Open,
        "fail_closed" => FailMode::Closed,
        other => {
            problems.push(format!(
                "limits.on_backend_error: unknown mode \"{other}\" (known: fail_open, fail_closed)"
            ));
            FailMode::Open
        }
    };
    for (field, tier) in [("key_tier", &raw.key_tier), ("user_tier", &raw.user_tier)] {
        if let Some(tier) = tier.as_ref().filter(|t| !raw.tiers.contains_key(*t)) {
            problems.push(format!(
                "limits.{field}: no tier named \"{tier}\" under [limits.tiers]"
            ));
        }
    }
    let sets = raw
        .tiers
        .iter()
        .map(|(n, s)| (format!("limits.tiers.{n}"), s))
        .chain(
            raw.models
                .iter()
                .map(|(n, s)| (format!("limits.models.\"{n}\""), s)),
        );
    for (at, set) in sets {
        check_limit_set(&at, set, problems);
    }
    if raw.default_max_output_tokens == 0 {
        problems.push("limits.default_max_output_tokens: must be greater than 0".into());
    }
    Some(LimitsConfig {
        backend,
        on_backend_error,
        key_tier: raw.key_tier,
        user_tier: raw.user_tier,
        tiers: raw.tiers,
        models: raw.models,
        default_max_output_tokens: raw.default_max_output_tokens.max(1),
        concurrency_lease: Duration::from_secs(raw.concurrency_lease_secs.max(1)),
    })
}

/// Problems with one limit set, each named `at.field` (also used for admin overrides).
pub fn check_limit_set(at: &str, set: &LimitSet, problems: &mut Vec<String>) {
    for (field, problem) in limit_set_problems(set) {
        problems.push(format!("{at}.{field}: {problem}"));
    }
}

/// What is wrong with a limit set, field by field (the admin API names the field it refuses).
pub fn limit_set_problems(set: &LimitSet) -> Vec<(&'static str, &'static str)> {
    let mut problems = Vec::new();
    for (field, value) in [
        ("requests_per_minute", set.requests_per_minute),
        ("tokens_per_minute", set.tokens_per_minute),
        ("max_concurrent", set.max_concurrent),
    ] {
        if value == Some(0) {
            problems.push((field, "must be greater than 0 (leave it out for no limit)"));
        }
    }
    for (field, value) in [
        ("daily_budget_usd", set.daily_budget_usd),
        ("monthly_budget_usd", set.monthly_budget_usd),
    ] {
        if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
            problems.push((field, "must be a number >= 0"));
        }
    }
    problems
}
