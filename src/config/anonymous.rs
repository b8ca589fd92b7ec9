//! `[anonymous]`: requests on /v1 with no credential at all (seed 000's frontend sends none).
//! Off by default. When on, a caller without a credential may use only the routes and models
//! named here, under limits per client address (`per_address`, required: a rate and a daily
//! budget) and, optionally, one daily budget shared by every anonymous caller. A wrong or
//! expired credential is still refused: anonymous means no credential, not a bad one.

use serde::Deserialize;

use super::limits::{check_limit_set, LimitSet};
use crate::context::Route;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnonymous {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    per_address: LimitSet,
    total_daily_budget_usd: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct AnonymousConfig {
    pub routes: Vec<Route>,
    pub models: Vec<String>,
    /// Limits per client address.
    pub per_address: LimitSet,
    /// One daily budget for all anonymous callers together.
    pub total_daily_budget_usd: Option<f64>,
}

const ROUTES: [Route; 3] = [
    Route::ChatCompletions,
    Route::Embeddings,
    Route::AudioTranscriptions,
];

/// None when anonymous access is off.
pub(super) fn anonymous(
    raw: RawAnonymous,
    model_names: &dyn Fn(&str) -> bool,
    problems: &mut Vec<String>,
) -> Option<AnonymousConfig> {
    if !raw.enabled {
        return None;
    }
    let mut routes = Vec::new();
    for (i, name) in raw.routes.iter().enumerate() {
        match ROUTES.iter().find(|r| r.as_str() == name) {
            Some(route) => routes.push(*route),
            None => problems.push(format!(
                "anonymous.routes[{i}]: unknown route \"{name}\" (known: chat.completions, embeddings, audio.transcriptions)"
            )),
        }
    }
    if raw.routes.is_empty() {
        problems.push(
            "anonymous.routes: name the routes anonymous callers may use (hint: [\"chat.completions\"])"
                .into(),
        );
    }
    if raw.models.is_empty() {
        problems.push("anonymous.models: name the models anonymous callers may use".into());
    }
    for (i, model) in raw.models.iter().enumerate() {
        if !model_names(model) {
            problems.push(format!(
                "anonymous.models[{i}]: no model or alias named \"{model}\" under [[models]]"
            ));
        }
    }
    check_limit_set("anonymous.per_address", &raw.per_address, problems);
    // Strangers spend the provider keys: both bounds are required, never implied.
    if raw.per_address.requests_per_minute.is_none() {
        problems.push(
            "anonymous.per_address.requests_per_minute: required when anonymous access is on"
                .into(),
        );
    }
    if raw.per_address.daily_budget_usd.is_none() {
        problems.push(
            "anonymous.per_address.daily_budget_usd: required when anonymous access is on".into(),
        );
    }
    if let Some(total) = raw.total_daily_budget_usd {
        if !(total.is_finite() && total > 0.0) {
            problems.push("anonymous.total_daily_budget_usd: must be a positive amount".into());
        }
    }
    Some(AnonymousConfig {
        routes,
        models: raw.models,
        per_address: raw.per_address,
        total_daily_budget_usd: raw.total_daily_budget_usd,
    })
}
