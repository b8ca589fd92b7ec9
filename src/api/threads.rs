//! Seed 003's threads at `/api/v1/threads` (its web client writes the collection with a
//! trailing slash; both forms are served): bare lists, `llm_name` (also read as `llm`), 201 on
//! create, 204 on delete, "Thread not found" for anyone else's, a deleted or a missing thread.
//! The rules are [`services::Threads`](crate::services::Threads)'.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, QueryParams, UserCaller};
use crate::services::Threads;
use crate::state::AppState;
use crate::store::threads::{Message, Thread};

type Shared = State<Arc<AppState>>;

#[derive(Serialize)]
struct ThreadOut<'a> {
    id: &'a str,
    title: &'a str,
    llm_name: &'a str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn thread_out(thread: &Thread) -> ThreadOut<'_> {
    ThreadOut {
        id: &thread.id,
        title: thread
            .title
            .as_deref()
            .unwrap_or(crate::services::threads::DEFAULT_TITLE),
        llm_name: thread.model.as_deref().unwrap_or_default(),
        created_at: thread.created_at,
        updated_at: thread.updated_at,
    }
}

/// Seed 003's message: its token counts and cost are the answer's (null on user messages).
pub(super) fn message_out(message: &Message) -> Value {
    let total = match (message.prompt_tokens, message.completion_tokens) {
        (Some(p), Some(c)) => Some(p + c),
        _ => None,
    };
    json!({
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "model": message.model,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "token_count": total,
        "cost_usd": message.cost_usd,
        "created_at": message.created_at,
        "attachments": [],
    })
}

/// `offset` and `limit` as seed 003 bounds them; out of range is a 422 naming the field.
fn bounded(
    value: Option<i64>,
    field: &'static str,
    default: i64,
    (min, max): (i64, i64),
) -> ApiResult<i64> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            Some(field),
            format!("{field}: must be {min} to {max}"),
        ))
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    offset: Option<i64>,
    limit: Option<i64>,
}

pub async fn list(
    State(state): Shared,
    caller: UserCaller,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let limit = bounded(query.limit, "limit", 20, (1, 100))?;
    let offset = bounded(query.offset, "offset", 0, (0, i64::MAX))?;
    let items = Threads::new(&state)
        .list(&caller.user_id, (limit, offset))
        .await?;
    Ok(Json(
        items
            .iter()
            .map(|item| {
                let out = thread_out(&item.thread);
                json!({
                    "id": out.id,
                    "title": out.title,
                    "llm_name": out.llm_name,
                    "updated_at": out.updated_at,
                    "last_message_preview": item.last_message_preview,
                })
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct CreateBody {
    #[serde(alias = "llm")]
    llm_name: Option<String>,
    title: Option<String>,
}

pub async fn create(
    State(state): Shared,
    caller: UserCaller,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    let model = body
        .llm_name
        .ok_or_else(|| ApiError::invalid(Some("llm_name"), "llm_name: is required"))?;
    let thread = Threads::new(&state)
        .create(&caller.user_id, body.title.as_deref(), &model)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(thread_out(&thread)))).into_response())
}

#[derive(Deserialize)]
pub struct DetailQuery {
    msg_offset: Option<i64>,
    msg_limit: Option<i64>,
}

pub async fn detail(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<DetailQuery>,
) -> ApiResult<Json<Value>> {
    let limit = bounded(query.msg_limit, "msg_limit", 50, (1, 200))?;
    let offset = bounded(query.msg_offset, "msg_offset", 0, (0, i64::MAX))?;
    let threads = Threads::new(&state);
    let thread = threads.get(&caller.user_id, &id).await?;
    let messages = threads.messages(&thread, (limit, offset)).await?;
    let mut out = json!(thread_out(&thread));
    out["messages"] = messages.iter().map(message_out).collect();
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct UpdateBody {
    #[serde(alias = "llm")]
    llm_name: Option<String>,
    title: Option<String>,
}

pub async fn update(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let thread = Threads::new(&state)
        .update(
            &caller.user_id,
            &id,
            body.title.as_deref(),
            body.llm_name.as_deref(),
        )
        .await?;
    Ok(Json(json!(thread_out(&thread))))
}

pub async fn delete(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    Threads::new(&state).delete(&caller.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn generate_title(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let threads = Threads::new(&state);
    let thread = threads.get(&caller.user_id, &id).await?;
    let title = threads.generate_title(&caller.principal, &thread).await?;
    Ok(Json(json!({ "title": title })))
}

/// `GET /api/v1/auth/usage`: what the caller's live threads' answers cost.
pub async fn spend(State(state): Shared, caller: UserCaller) -> ApiResult<Json<Value>> {
    let total = Threads::new(&state).spend(&caller.user_id).await?;
    Ok(Json(json!({ "total_spent_usd": total })))
}
