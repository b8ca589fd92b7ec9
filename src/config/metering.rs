//! The `[metering]` (the usage writer: batches, retries, its bounded queue and spool) and
//! `[metrics]` (the Prometheus endpoint) sections.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::identity::Env;
use super::{interpolate, Secret};

// Raw

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetering {
    enabled: bool,
    batch_size: usize,
    flush_interval_ms: u64,
    max_retries: u32,
    retry_backoff_ms: u64,
    queue_capacity: usize,
    undelivered_file: Option<String>,
}

impl Default for RawMetering {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_size: 500,
            flush_interval_ms: 200,
            max_retries: 8,
            retry_backoff_ms: 250,
            queue_capacity: 20_000,
            undelivered_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    enabled: bool,
    /// When set, `GET /metrics` requires `Authorization: Bearer <token>`.
    bearer_token: Option<String>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            enabled: true,
            bearer_token: None,
        }
    }
}

// Validated

#[derive(Debug, Clone)]
pub struct MeteringConfig {
    pub enabled: bool,
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Attempts per batch before it is written to `undelivered_file` instead.
    pub max_retries: u32,
    pub retry_backoff: Duration,
    /// Records held in memory waiting for the database, at most; beyond it they go to
    /// `undelivered_file` (a long outage costs disk, never unbounded memory).
    pub queue_capacity: usize,
    /// Where records the database would not take are appended (JSON lines), never dropped.
    pub undelivered_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub bearer_token: Option<Secret>,
}

// Validation

pub(super) fn metering(
    raw: RawMetering,
    data_dir: &Path,
    problems: &mut Vec<String>,
) -> MeteringConfig {
    if raw.batch_size == 0 {
        problems.push("metering.batch_size: must be greater than 0".into());
    }
    if raw.flush_interval_ms == 0 {
        problems.push("metering.flush_interval_ms: must be greater than 0".into());
    }
    if raw.queue_capacity < raw.batch_size {
        problems.push("metering.queue_capacity: must be at least metering.batch_size".into());
    }
    MeteringConfig {
        enabled: raw.enabled,
        batch_size: raw.batch_size.max(1),
        flush_interval: Duration::from_millis(raw.flush_interval_ms.max(1)),
        max_retries: raw.max_retries,
        retry_backoff: Duration::from_millis(raw.retry_backoff_ms),
        queue_capacity: raw.queue_capacity.max(raw.batch_size).max(1),
        undelivered_file: raw
            .undelivered_file
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("usage-undelivered.jsonl")),
    }
}

pub(super) fn metrics(raw: RawMetrics, env: Env, problems: &mut Vec<String>) -> MetricsConfig {
    let bearer_token = raw.bearer_token.and_then(|t| match interpolate(&t, env) {
        Ok(t) if t.is_empty() => None,
        Ok(t) => Some(Secret::new(t)),
        Err(e) => {
            problems.push(format!("metrics.bearer_token: {e}"));
            None
        }
    });
    MetricsConfig {
        enabled: raw.enabled,
        bearer_token,
    }
}
