//! Seeds 001 and 002's memory endpoints, on the gateway's memory store:
//!
//! - 001: `POST /api/v1/memories/search` (`{query, limit}`, limit 1-20, default 5) answers
//!   `{memories: [text, ...], user_id, query}`; `DELETE /api/v1/memories` answers `{message}` and
//!   deletes them (the seed's own code left it a no-op).
//! - 002: the same under `/api/v1/chat/{user_id}/memories` (the search body also carries
//!   `user_id`: 400 on a mismatch, as the seed answers), `{user_id}` the caller (or anyone, for
//!   an admin).
//!
//! Search is keyword search for now (SQLite FTS5 / PostgreSQL full text); the hybrid search of
//! issue 15 (embeddings fused with keywords) replaces it behind [`search_texts`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, UserCaller};
use crate::services::access::path_user;
use crate::state::AppState;
use crate::store::memories::MemoryScope;

type Shared = State<Arc<AppState>>;

/// The longest query searched (characters).
const MAX_QUERY_CHARS: usize = 2_000;

#[derive(Deserialize)]
pub struct SearchBody {
    query: Option<String>,
    limit: Option<i64>,
    user_id: Option<String>,
}

fn checked(body: &SearchBody) -> ApiResult<(&str, i64)> {
    let query = body
        .query
        .as_deref()
        .ok_or_else(|| ApiError::invalid(Some("query"), "query: is required"))?;
    if query.trim().is_empty() || query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(
            Some("query"),
            format!("query: must be 1 to {MAX_QUERY_CHARS} characters"),
        ));
    }
    let limit = body.limit.unwrap_or(5);
    if !(1..=20).contains(&limit) {
        return Err(ApiError::invalid(Some("limit"), "limit: must be 1 to 20"));
    }
    Ok((query, limit))
}

/// The texts of `user_id`'s memories that best match `query`, best first.
async fn search_texts(
    state: &AppState,
    user_id: &str,
    query: &str,
    limit: i64,
) -> ApiResult<Vec<String>> {
    let found = state
        .store
        .keyword_search(&MemoryScope::user(user_id), query, limit)
        .await?;
    Ok(found.into_iter().map(|(m, _)| m.content).collect())
}

/// `POST /api/v1/memories/search` (seed 001).
pub async fn search_001(
    State(state): Shared,
    caller: UserCaller,
    JsonBody(body): JsonBody<SearchBody>,
) -> ApiResult<Json<Value>> {
    let (query, limit) = checked(&body)?;
    let memories = search_texts(&state, &caller.user_id, query, limit).await?;
    Ok(Json(json!({
        "memories": memories,
        "user_id": caller.user_id,
        "query": query,
    })))
}

/// `DELETE /api/v1/memories` (seed 001).
pub async fn delete_001(State(state): Shared, caller: UserCaller) -> ApiResult<Json<Value>> {
    delete_all(&state, &caller.user_id, &caller.user_id).await
}

/// `POST /api/v1/chat/{user_id}/memories/search` (seed 002).
pub async fn search_002(
    State(state): Shared,
    Caller(principal): Caller,
    Path(user): Path<String>,
    JsonBody(body): JsonBody<SearchBody>,
) -> ApiResult<Json<Value>> {
    if body.user_id.as_deref().is_some_and(|b| b != user) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "user_id_mismatch",
            "User ID mismatch",
        ));
    }
    let (query, limit) = checked(&body)?;
    let user_id = path_user(&state, &principal, &user).await?;
    let memories = search_texts(&state, &user_id, query, limit).await?;
    Ok(Json(json!({
        "memories": memories,
        "user_id": user,
        "query": query,
    })))
}

/// `DELETE /api/v1/chat/{user_id}/memories` (seed 002).
pub async fn delete_002(
    State(state): Shared,
    Caller(principal): Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user_id = path_user(&state, &principal, &user).await?;
    delete_all(&state, &user_id, &user).await
}

async fn delete_all(state: &AppState, user_id: &str, named: &str) -> ApiResult<Json<Value>> {
    let deleted = state
        .store
        .delete_memories(&MemoryScope::user(user_id))
        .await?;
    tracing::info!(deleted, "memories deleted");
    Ok(Json(
        json!({ "message": format!("Memories deleted for user {named}") }),
    ))
}
