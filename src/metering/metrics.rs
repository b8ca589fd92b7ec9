//! Prometheus metrics: one process-wide recorder (the `metrics` crate's facade), rendered by
//! `GET /metrics`. Histograms have fixed buckets; a background thread drains their samples so
//! memory stays flat when nothing scrapes.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Seconds: from 1 ms (the gateway's own answers) to 10 min (long streams).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

/// Installs the recorder once per process (later calls reuse it). None when another recorder
/// was installed first (an embedding application's own).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics is off");
                return None;
            }
            describe();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep thread not started");
            }
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "gateway_requests_total",
        "Requests on /v1, by route, model, provider and status."
    );
    describe_counter!(
        "gateway_credential_lookups_total",
        "Database lookups of API keys and session tokens missing from the cache, by kind."
    );
    describe_counter!(
        "gateway_password_hashing_refused_total",
        "Password checks refused with 503 because the hashing pool was full."
    );
    describe_counter!(
        "gateway_request_errors_total",
        "Requests on /v1 that did not end with a complete 2xx answer, by reason."
    );
    describe_histogram!(
        "gateway_request_duration_seconds",
        Unit::Seconds,
        "Time from request to the end of the answer."
    );
    describe_histogram!(
        "gateway_time_to_first_byte_seconds",
        Unit::Seconds,
        "Time from request to the first byte of the answer."
    );
    describe_counter!(
        "gateway_tokens_total",
        "Tokens used, by model, provider and kind (prompt, completion, cached, reasoning)."
    );
    describe_gauge!(
        "gateway_cost_usd_total",
        "Spend in USD from the price table, by model and provider (only grows)."
    );
    describe_gauge!(
        "gateway_inflight_streams",
        "Streamed answers being sent now."
    );
    describe_gauge!(
        "gateway_upstream_healthy",
        "1 when a deployment is in rotation (breaker closed or probing), 0 when out."
    );
    describe_gauge!(
        "gateway_upstream_in_flight",
        "Requests in flight to a deployment."
    );
    describe_counter!(
        "gateway_ratelimit_rejections_total",
        "Requests refused by a rate limit or budget."
    );
    describe_counter!(
        "gateway_ratelimit_backend_errors_total",
        "Rate-limit store (Redis) calls that failed."
    );
    describe_gauge!(
        "gateway_usage_backlog",
        "Usage records queued and not yet written."
    );
    describe_counter!(
        "gateway_usage_records_written_total",
        "Usage records written to the database."
    );
    describe_counter!(
        "gateway_usage_write_errors_total",
        "Failed usage batch writes (each retried)."
    );
    describe_counter!(
        "gateway_usage_records_undelivered_total",
        "Usage records set aside in the undelivered file after every retry failed."
    );
    describe_counter!(
        "gateway_usage_records_lost_total",
        "Usage records neither the database nor the undelivered file took."
    );
}
