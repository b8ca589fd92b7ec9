//! The metering plugin: at the end of every /v1 request, metrics (always) and a usage record
//! (for an authenticated caller) with tokens, cost, latency and time to first byte.

use std::sync::Arc;

use crate::metering::UsageWriter;
use crate::plugins::{Completion, Outcome, Plugin, RequestCtx};
use crate::pricing::PriceTable;
use crate::usage::{TokenUsage, UsageRecord};

pub struct Metering {
    prices: Arc<PriceTable>,
    writer: Option<Arc<UsageWriter>>,
}

impl Metering {
    /// `writer` None: metrics only (metering.enabled = false).
    pub fn new(prices: Arc<PriceTable>, writer: Option<Arc<UsageWriter>>) -> Self {
        Self { prices, writer }
    }
}

/// What `usage` cost at the price of the model asked for, else the provider's model.
pub fn cost_of(prices: &PriceTable, ctx: &RequestCtx, usage: &TokenUsage) -> f64 {
    let names = [ctx.model.as_deref(), ctx.upstream_model.as_deref()];
    let names: Vec<&str> = names.into_iter().flatten().collect();
    prices.find(&names).map_or(0.0, |price| price.cost(usage))
}

impl Plugin for Metering {
    fn name(&self) -> &'static str {
        "metering"
    }

    fn on_complete(&self, ctx: &RequestCtx, completion: &Completion) {
        let cost = completion
            .usage
            .as_ref()
            .map_or(0.0, |u| cost_of(&self.prices, ctx, u));
        record_metrics(ctx, completion, cost);
        let (Some(writer), Some(principal)) = (&self.writer, &ctx.principal) else {
            return;
        };
        writer.record(UsageRecord {
            request_id: String::from_utf8_lossy(ctx.request_id.as_bytes()).into_owned(),
            user_id: principal.user_id().map(str::to_string),
            api_key_id: principal.key_id.as_deref().map(str::to_string),
            thread_id: None,
            message_id: None,
            route: ctx.route.as_str().to_string(),
            model: ctx.model.as_deref().map(str::to_string),
            provider: ctx.provider.as_deref().map(str::to_string),
            upstream_model: ctx.upstream_model.as_deref().map(str::to_string),
            status: completion.status.as_u16(),
            outcome: completion.outcome.as_str().to_string(),
            stream: ctx.stream,
            usage: completion.usage.unwrap_or_default(),
            cost_usd: cost,
            latency_ms: completion.duration.as_millis() as u64,
            ttfb_ms: completion.time_to_first_byte.map(|t| t.as_millis() as u64),
            created_at: crate::store::now(),
        });
    }
}

fn record_metrics(ctx: &RequestCtx, completion: &Completion, cost: f64) {
    let route = ctx.route.as_str();
    // Only names from the config become labels: a client's made-up model name does not.
    let model = ctx.model.as_deref().unwrap_or("").to_string();
    let provider = ctx.provider.as_deref().unwrap_or("").to_string();
    let status = completion.status.as_str().to_string();
    metrics::counter!("gateway_requests_total", "route" => route, "model" => model.clone(),
        "provider" => provider.clone(), "status" => status)
    .increment(1);
    let failed = completion.outcome != Outcome::Complete || !completion.status.is_success();
    if failed {
        let reason = match completion.outcome {
            Outcome::Complete => "status",
            ref other => other.as_str(),
        };
        metrics::counter!("gateway_request_errors_total", "route" => route,
            "model" => model.clone(), "reason" => reason)
        .increment(1);
    }
    if ctx.model.is_none() {
        return;
    }
    metrics::histogram!("gateway_request_duration_seconds", "route" => route,
        "model" => model.clone(), "provider" => provider.clone())
    .record(completion.duration.as_secs_f64());
    if let Some(ttfb) = completion.time_to_first_byte {
        metrics::histogram!("gateway_time_to_first_byte_seconds", "route" => route,
            "model" => model.clone(), "provider" => provider.clone())
        .record(ttfb.as_secs_f64());
    }
    if let Some(usage) = &completion.usage {
        for (kind, tokens) in [
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
            ("cached", usage.cached_tokens),
            ("reasoning", usage.reasoning_tokens),
        ] {
            if tokens > 0 {
                metrics::counter!("gateway_tokens_total", "model" => model.clone(),
                    "provider" => provider.clone(), "kind" => kind)
                .increment(tokens);
            }
        }
        if cost > 0.0 {
            // A gauge only because counters are integers; it never goes down.
            metrics::gauge!("gateway_cost_usd_total", "model" => model, "provider" => provider)
                .increment(cost);
        }
    }
}
