//! The metering plugin: at the end of every /v1 request, metrics (always) and a usage record
//! (for an authenticated caller) with tokens, cost, latency and time to first byte.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use metrics::{Counter, Gauge, Histogram};

use crate::metering::UsageWriter;
use crate::plugins::{Completion, Outcome, Plugin, RequestCtx, Route};
use crate::usage::UsageRecord;

pub struct Metering {
    writer: Option<Arc<UsageWriter>>,
    /// Metric handles per route, model and provider, registered on first use: the labels are
    /// built and hashed once, not on every request.
    handles: RwLock<HashMap<SeriesKey, Arc<Series>>>,
}

type SeriesKey = (Route, Arc<str>, Arc<str>);

/// The metrics of one route, model and provider.
struct Series {
    /// Requests answered 200 (other statuses are rarer and take the labelled path).
    ok: Counter,
    duration: Histogram,
    ttfb: Histogram,
    /// Prompt, completion, cached, reasoning.
    tokens: [Counter; 4],
    cost: Gauge,
}

impl Series {
    fn new(route: Route, model: &str, provider: &str) -> Series {
        let (route, model, provider) = (route.as_str(), model.to_string(), provider.to_string());
        let token = |kind: &'static str| {
            metrics::counter!("gateway_tokens_total", "model" => model.clone(),
                "provider" => provider.clone(), "kind" => kind)
        };
        Series {
            ok: metrics::counter!("gateway_requests_total", "route" => route,
                "model" => model.clone(), "provider" => provider.clone(), "status" => "200"),
            duration: metrics::histogram!("gateway_request_duration_seconds", "route" => route,
                "model" => model.clone(), "provider" => provider.clone()),
            ttfb: metrics::histogram!("gateway_time_to_first_byte_seconds", "route" => route,
                "model" => model.clone(), "provider" => provider.clone()),
            tokens: [
                token("prompt"),
                token("completion"),
                token("cached"),
                token("reasoning"),
            ],
            // A gauge only because counters are integers; it never goes down.
            cost: metrics::gauge!("gateway_cost_usd_total", "model" => model.clone(),
                "provider" => provider.clone()),
        }
    }
}

impl Metering {
    /// `writer` None: metrics only (metering.enabled = false).
    pub fn new(writer: Option<Arc<UsageWriter>>) -> Self {
        Self {
            writer,
            handles: RwLock::new(HashMap::new()),
        }
    }

    fn series(&self, route: Route, model: &Arc<str>, provider: &Arc<str>) -> Arc<Series> {
        let key = (route, model.clone(), provider.clone());
        if let Some(series) = self.handles.read().ok().and_then(|h| h.get(&key).cloned()) {
            return series;
        }
        let series = Arc::new(Series::new(route, model, provider));
        if let Ok(mut handles) = self.handles.write() {
            handles.entry(key).or_insert_with(|| series.clone());
        }
        series
    }

    fn record_metrics(&self, ctx: &RequestCtx, completion: &Completion) {
        let route = ctx.route.as_str();
        let failed = completion.outcome != Outcome::Complete || !completion.status.is_success();
        // Only names from the config become labels (a client's made-up model name does not):
        // `ctx.model` is set once the name resolved to a configured model.
        let Some(model) = &ctx.model else {
            metrics::counter!("gateway_requests_total", "route" => route, "model" => "",
                "provider" => "", "status" => completion.status.as_str().to_string())
            .increment(1);
            if failed {
                metrics::counter!("gateway_request_errors_total", "route" => route,
                    "model" => "", "reason" => failure_reason(&completion.outcome))
                .increment(1);
            }
            return;
        };
        let provider = ctx.provider.clone().unwrap_or_else(|| Arc::from(""));
        let series = self.series(ctx.route, model, &provider);
        if completion.status == http::StatusCode::OK {
            series.ok.increment(1);
        } else {
            metrics::counter!("gateway_requests_total", "route" => route,
                "model" => model.to_string(), "provider" => provider.to_string(),
                "status" => completion.status.as_str().to_string())
            .increment(1);
        }
        if failed {
            metrics::counter!("gateway_request_errors_total", "route" => route,
                "model" => model.to_string(), "reason" => failure_reason(&completion.outcome))
            .increment(1);
        }
        series.duration.record(completion.duration.as_secs_f64());
        if let Some(ttfb) = completion.time_to_first_byte {
            series.ttfb.record(ttfb.as_secs_f64());
        }
        if let Some(usage) = &completion.usage {
            let counts = [
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
                usage.reasoning_tokens,
            ];
            for (counter, tokens) in series.tokens.iter().zip(counts) {
                if tokens > 0 {
                    counter.increment(tokens);
                }
            }
            if completion.cost_usd > 0.0 {
                series.cost.increment(completion.cost_usd);
            }
        }
    }
}

fn failure_reason(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Complete => "status",
        other => other.as_str(),
    }
}

impl Plugin for Metering {
    fn name(&self) -> &'static str {
        "metering"
    }

    fn on_complete(&self, ctx: &RequestCtx, completion: &Completion) {
        self.record_metrics(ctx, completion);
        let (Some(writer), Some(principal)) = (&self.writer, &ctx.principal) else {
            return;
        };
        writer.record(UsageRecord {
            request_id: String::from_utf8_lossy(ctx.request_id.as_bytes()).into_owned(),
            user_id: principal.user_id().map(str::to_string),
            api_key_id: principal.key_id.as_deref().map(str::to_string),
            thread_id: ctx.thread_id.as_deref().map(str::to_string),
            message_id: ctx.message_id.as_deref().map(str::to_string),
            route: ctx.route.as_str().to_string(),
            model: ctx.model.as_deref().map(str::to_string),
            provider: ctx.provider.as_deref().map(str::to_string),
            upstream_model: ctx.upstream_model.as_deref().map(str::to_string),
            status: completion.status.as_u16(),
            outcome: completion.outcome.as_str().to_string(),
            stream: ctx.stream,
            usage: completion.usage.unwrap_or_default(),
            cost_usd: completion.cost_usd,
            latency_ms: completion.duration.as_millis() as u64,
            ttfb_ms: completion.time_to_first_byte.map(|t| t.as_millis() as u64),
            created_at: crate::store::now(),
            scope: ctx.scope,
        });
    }
}
