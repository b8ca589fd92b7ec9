//! Seed 003's model lists: `GET /api/v1/llm/models` (`[{model, provider}]`, the models a chat
//! can name, each with the provider of its first deployment) and `GET /api/v1/llm/providers`
//! (each provider with its models and whether it is available: configured with its key, and
//! not every deployment's breaker open).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiResult;
use super::extract::UserCaller;
use crate::state::AppState;

pub async fn models(
    State(state): State<Arc<AppState>>,
    _caller: UserCaller,
) -> ApiResult<Json<Vec<Value>>> {
    let mut seen = std::collections::HashSet::new();
    let enabled = |provider: &str| {
        state
            .providers
            .iter()
            .any(|p| p.name == provider && p.disabled_reason.is_none())
    };
    let models = state
        .pipeline
        .router
        .health()
        .into_iter()
        .filter(|t| enabled(&t.provider) && seen.insert(t.model.clone()))
        .map(|t| json!({ "model": t.model, "provider": t.provider }))
        .collect();
    Ok(Json(models))
}

pub async fn providers(
    State(state): State<Arc<AppState>>,
    _caller: UserCaller,
) -> ApiResult<Json<Vec<Value>>> {
    let targets = state.pipeline.router.health();
    let providers = state
        .providers
        .iter()
        .map(|p| {
            let mine: Vec<_> = targets.iter().filter(|t| t.provider == p.name).collect();
            let mut models: Vec<&str> = mine.iter().map(|t| t.model.as_str()).collect();
            models.dedup();
            let healthy = mine.iter().any(|t| t.breaker.state != "open");
            json!({
                "provider": p.name,
                "available": p.disabled_reason.is_none() && healthy,
                "models": models,
                "last_checked": null,
                "last_success": null,
                "last_model_refresh": null,
                "error": p.disabled_reason,
            })
        })
        .collect();
    Ok(Json(providers))
}
