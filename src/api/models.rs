//! `GET /models` (seed 004's models catalog): the models a client can call through this
//! gateway, each with its prices and context window from the price table. Readable with or
//! without a credential (it lists nothing but names and public prices).
//!
//! `?type=chat` (the default: the seed's frontend offers these in its model picker),
//! `embedding`, `transcription` or `all`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct CatalogQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn catalog(
    State(state): State<Arc<AppState>>,
    QueryParams(query): QueryParams<CatalogQuery>,
) -> ApiResult<Json<Value>> {
    let kind = query.kind.as_deref().map(str::trim).unwrap_or("chat");
    if !matches!(kind, "chat" | "embedding" | "transcription" | "all") {
        return Err(ApiError::invalid(
            Some("type"),
            format!(
                "type: unknown model type {kind:?} (known: chat, embedding, transcription, all)"
            ),
        ));
    }
    let models: Vec<_> = state
        .pipeline
        .router
        .catalog()
        .iter()
        .filter(|m| kind == "all" || m.kind == kind)
        .collect();
    // Seed 004's frontend reads `chat`: the chat models' names, its picker's first the default.
    let chat: Vec<&str> = state
        .pipeline
        .router
        .catalog()
        .iter()
        .filter(|m| m.kind == "chat")
        .map(|m| m.id.as_str())
        .collect();
    Ok(Json(json!({ "models": models, "chat": chat })))
}
