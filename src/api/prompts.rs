//! Seed 000's prompt library at `/api/prompts`: camelCase JSON as its frontend parses it
//! (`isFavorite`, `creator: {id, name}`, `createdAt`). The rules are
//! [`services::Prompts`](crate::services::Prompts)'.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiResult;
use super::extract::{JsonBody, QueryParams, UserCaller};
use crate::services::prompts::PromptBody;
use crate::services::Prompts;
use crate::state::AppState;
use crate::store::prompts::Prompt;

type Shared = State<Arc<AppState>>;

/// The seed lists every prompt at once; the list is bounded all the same (`?limit=` up to
/// this, `?offset=` to page on).
const MAX_LIST: i64 = 1_000;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PromptOut<'a> {
    name: &'a str,
    category: Option<&'a str>,
    is_favorite: bool,
    text: &'a str,
    id: &'a str,
    creator: Creator<'a>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct Creator<'a> {
    id: &'a str,
    name: &'a str,
}

fn out(prompt: &Prompt) -> PromptOut<'_> {
    PromptOut {
        name: &prompt.name,
        category: prompt.category.as_deref(),
        is_favorite: prompt.is_favorite,
        text: &prompt.text,
        id: &prompt.id,
        creator: Creator {
            id: &prompt.user_id,
            name: &prompt.creator_name,
        },
        created_at: prompt.created_at,
        updated_at: prompt.updated_at,
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn list(
    State(state): Shared,
    caller: UserCaller,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let bounds = (
        query.limit.unwrap_or(MAX_LIST).clamp(1, MAX_LIST),
        query.offset.unwrap_or(0).max(0),
    );
    let prompts = Prompts::new(&state).list(&caller.user_id, bounds).await?;
    Ok(Json(prompts.iter().map(|p| json!(out(p))).collect()))
}

pub async fn get(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let prompt = Prompts::new(&state).get(&caller.user_id, &id).await?;
    Ok(Json(json!(out(&prompt))))
}

pub async fn create(
    State(state): Shared,
    caller: UserCaller,
    JsonBody(body): JsonBody<PromptBody>,
) -> ApiResult<Response> {
    let prompt = Prompts::new(&state).create(&caller.user_id, body).await?;
    Ok((StatusCode::CREATED, Json(json!(out(&prompt)))).into_response())
}

pub async fn replace(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PromptBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let prompt = Prompts::new(&state)
        .replace(&caller.user_id, &id, body)
        .await?;
    Ok(Json(json!(out(&prompt))))
}

pub async fn delete(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    Prompts::new(&state).delete(&caller.user_id, &id).await?;
    Ok(Json(json!({ "id": id })))
}
