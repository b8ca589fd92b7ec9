//! A Mem0-compatible REST surface (Mem0's platform API shapes) for callers that use Mem0's
//! client against the gateway: list, get, update, delete, delete all, and history. Mem0's
//! `Authorization: Token KEY` is taken as well as `Bearer`. `user_id` names whose memories (the
//! caller's own id, username or email; an admin may name anyone; left out, the caller);
//! `agent_id` and `run_id` narrow them. Honoured fields: `user_id`, `agent_id`, `run_id`,
//! `page` and `page_size` (list), `text` and `metadata` (update). Add and search (extraction and
//! hybrid search) come with the rest of issue 15.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, QueryParams};
use crate::context::Principal;
use crate::services::access::path_user;
use crate::state::AppState;
use crate::store::memories::{content_hash, Memory, MemoryEvent, MemoryScope};

type Shared = State<Arc<AppState>>;

#[derive(Deserialize, Default)]
pub struct Filters {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

/// The user the request acts for: its `user_id`, else the caller.
async fn acting_for(
    state: &AppState,
    principal: &Principal,
    named: Option<&str>,
) -> ApiResult<String> {
    match named {
        Some(named) => Ok(path_user(state, principal, named).await?),
        None => principal.user_id().map(str::to_string).ok_or_else(|| {
            ApiError::invalid(Some("user_id"), "user_id: is required with this credential")
        }),
    }
}

fn memory_json(memory: &Memory) -> Value {
    let metadata = memory
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .unwrap_or(Value::Null);
    json!({
        "id": memory.id,
        "memory": memory.content,
        "hash": content_hash(&memory.content),
        "user_id": memory.user_id,
        "agent_id": memory.agent_id,
        "run_id": memory.run_id,
        "metadata": metadata,
        "created_at": memory.created_at.to_rfc3339(),
        "updated_at": memory.updated_at.to_rfc3339(),
    })
}

fn event_json(user_id: &str, event: &MemoryEvent) -> Value {
    json!({
        "id": event.id,
        "memory_id": event.memory_id,
        "user_id": user_id,
        "event": event.event,
        "old_memory": event.old_memory,
        "new_memory": event.new_memory,
        "created_at": event.created_at.to_rfc3339(),
    })
}

/// `GET /v1/memories/`: newest first, `page` (from 1) of `page_size` (1-1000, default 100).
pub async fn list(
    State(state): Shared,
    Caller(principal): Caller,
    QueryParams(filters): QueryParams<Filters>,
) -> ApiResult<Json<Value>> {
    let user_id = acting_for(&state, &principal, filters.user_id.as_deref()).await?;
    let page_size = filters.page_size.unwrap_or(100);
    if !(1..=1_000).contains(&page_size) {
        return Err(ApiError::invalid(
            Some("page_size"),
            "page_size: must be 1 to 1000",
        ));
    }
    let page = filters.page.unwrap_or(1);
    if page < 1 {
        return Err(ApiError::invalid(Some("page"), "page: must be 1 or more"));
    }
    let scope = MemoryScope {
        user_id: &user_id,
        agent_id: filters.agent_id.as_deref(),
        run_id: filters.run_id.as_deref(),
    };
    let offset = (page - 1).saturating_mul(page_size);
    let memories = state.store.memories(&scope, page_size, offset).await?;
    Ok(Json(Value::Array(
        memories.iter().map(memory_json).collect(),
    )))
}

/// `DELETE /v1/memories/`: every memory of the scope.
pub async fn delete_all(
    State(state): Shared,
    Caller(principal): Caller,
    QueryParams(filters): QueryParams<Filters>,
) -> ApiResult<Json<Value>> {
    let user_id = acting_for(&state, &principal, filters.user_id.as_deref()).await?;
    let scope = MemoryScope {
        user_id: &user_id,
        agent_id: filters.agent_id.as_deref(),
        run_id: filters.run_id.as_deref(),
    };
    state.store.delete_memories(&scope).await?;
    Ok(Json(json!({ "message": "Memories deleted successfully!" })))
}

/// A memory of the acting user, or 404 (another user's is not told apart from a missing one).
async fn owned(
    state: &AppState,
    principal: &Principal,
    named: Option<&str>,
    id: &str,
) -> ApiResult<(String, Memory)> {
    let user_id = acting_for(state, principal, named).await?;
    match state.store.memory(&user_id, id).await? {
        Some(memory) => Ok((user_id, memory)),
        None => Err(ApiError::not_found()),
    }
}

/// `GET /v1/memories/{id}/`.
pub async fn get(
    State(state): Shared,
    Caller(principal): Caller,
    Path(id): Path<String>,
    QueryParams(filters): QueryParams<Filters>,
) -> ApiResult<Json<Value>> {
    let (_, memory) = owned(&state, &principal, filters.user_id.as_deref(), &id).await?;
    Ok(Json(memory_json(&memory)))
}

#[derive(Deserialize)]
pub struct UpdateBody {
    text: Option<String>,
}

/// `PUT /v1/memories/{id}/` with `{text}`.
pub async fn update(
    State(state): Shared,
    Caller(principal): Caller,
    Path(id): Path<String>,
    QueryParams(filters): QueryParams<Filters>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let text = body
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.chars().count() <= 10_000)
        .ok_or_else(|| ApiError::invalid(Some("text"), "text: must be 1 to 10000 characters"))?;
    let (user_id, _) = owned(&state, &principal, filters.user_id.as_deref(), &id).await?;
    // The embedding of the old text no longer fits: it goes, and is made again with the text.
    let memory = match state.store.update_memory(&user_id, &id, text, None).await {
        Ok(Some(memory)) => memory,
        Ok(None) => return Err(ApiError::not_found()),
        // The user keeps each fact once: the text of another of their memories is refused.
        Err(crate::store::StoreError::Conflict) => {
            return Err(ApiError::new(
                http::StatusCode::CONFLICT,
                "memory_exists",
                "Another memory already holds this text.",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(memory_json(&memory)))
}

/// `DELETE /v1/memories/{id}/`.
pub async fn delete(
    State(state): Shared,
    Caller(principal): Caller,
    Path(id): Path<String>,
    QueryParams(filters): QueryParams<Filters>,
) -> ApiResult<Json<Value>> {
    let (user_id, _) = owned(&state, &principal, filters.user_id.as_deref(), &id).await?;
    state.store.delete_memory(&user_id, &id).await?;
    Ok(Json(json!({ "message": "Memory deleted successfully!" })))
}

/// `GET /v1/memories/{id}/history/`: its changes, oldest first (a deleted memory's too).
pub async fn history(
    State(state): Shared,
    Caller(principal): Caller,
    Path(id): Path<String>,
    QueryParams(filters): QueryParams<Filters>,
) -> ApiResult<Json<Value>> {
    let user_id = acting_for(&state, &principal, filters.user_id.as_deref()).await?;
    let events = state.store.memory_history(&user_id, &id).await?;
    if events.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(
        events.iter().map(|e| event_json(&user_id, e)).collect(),
    )))
}
