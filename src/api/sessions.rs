//! Seeds 001 and 002's chat: `{message, session_id?}` (002 adds `user_id`, also in the path)
//! answered by `{response, user_id, session_id, memories_used, timestamp}`, and 002's sessions
//! (`{user_id}` must be the caller's id, username or email; admins may name anyone). A session
//! is a thread: the same store and the same chat path as every seed
//! ([`services::Chat`](crate::services::Chat)), with the model of `[chat] default_model`.
//!
//! - 001: `POST /api/v1/chat`, `POST /api/v1/chat/stream`
//! - 002: `POST /api/v1/chat/{user_id}/new`, `/{user_id}/{session_id}` (and `/stream` after
//!   either), its README's `POST /api/v1/chat/{user_id}` and `POST .../sessions`;
//!   `GET .../sessions?active_only=`, `GET|PUT|DELETE .../sessions/{session_id}`

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, QueryParams, UserCaller};
use crate::services::access::path_user;
use crate::services::chat::{Answering, ChatEvent};
use crate::services::{Chat, Threads};
use crate::state::AppState;
use crate::store::threads::{Thread, ThreadItem};

type Shared = State<Arc<AppState>>;

/// The longest message accepted (characters), as the seeds bound it.
const MAX_MESSAGE_CHARS: usize = 2_000;
/// The most messages a session shows.
const MAX_SESSION_MESSAGES: i64 = 1_000;

#[derive(Deserialize)]
pub struct ChatBody {
    message: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
}

fn message_of(body: &ChatBody) -> ApiResult<&str> {
    let message = body
        .message
        .as_deref()
        .ok_or_else(|| ApiError::invalid(Some("message"), "message: is required"))?;
    let chars = message.chars().count();
    if message.trim().is_empty() || chars > MAX_MESSAGE_CHARS {
        return Err(ApiError::invalid(
            Some("message"),
            format!("message: must be 1 to {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    Ok(message)
}

/// The seeds' `timestamp`: UTC without a zone, microseconds (`2025-06-20T12:34:56.789012`).
fn naive(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Seed 002's title: the first message, whitespace collapsed, cut to 50 characters.
fn title_from(message: &str) -> String {
    let collapsed = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return format!("Conversation {}", Utc::now().format("%b %d"));
    }
    let mut title: String = collapsed.chars().take(50).collect();
    if collapsed.chars().count() > 50 {
        title.push_str("...");
    }
    title
}

fn session_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "Session not found")
}

/// The caller's session, or a 404.
async fn session(state: &AppState, user_id: &str, id: &str) -> ApiResult<Thread> {
    Threads::new(state)
        .get(user_id, id)
        .await
        .map_err(|_| session_not_found())
}

/// A turn's user and session: seed 001's caller, or seed 002's path user (checked against
/// the body's `user_id`: 400 on a mismatch, as the seed answers); the session named, or a new
/// one titled after the message. Returns the user's id and the `user_id` the answer names.
async fn prepare<'b>(
    state: &AppState,
    caller: &UserCaller,
    path: Option<&str>,
    session_id: Option<&str>,
    body: &'b ChatBody,
) -> ApiResult<(Thread, String, &'b str)> {
    let (user_id, shown) = match path {
        None => (caller.user_id.clone(), caller.user_id.clone()),
        Some(path) => {
            if body.user_id.as_deref().is_some_and(|b| b != path) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "user_id_mismatch",
                    "User ID mismatch",
                ));
            }
            (
                path_user(state, &caller.principal, path).await?,
                path.to_string(),
            )
        }
    };
    let message = message_of(body)?;
    let thread = match session_id.or(body.session_id.as_deref()) {
        Some(id) => session(state, &user_id, id).await?,
        None => {
            Threads::new(state)
                .create(
                    &user_id,
                    Some(&title_from(message)),
                    &state.chat.default_model,
                )
                .await?
        }
    };
    Ok((thread, shown, message))
}

/// One turn, answered in one body.
async fn turn(
    state: &Arc<AppState>,
    caller: &UserCaller,
    path: Option<&str>,
    session_id: Option<&str>,
    body: &ChatBody,
) -> ApiResult<Json<Value>> {
    let (thread, shown, message) = prepare(state, caller, path, session_id, body).await?;
    let (_, answering) = Chat::new(state.clone())
        .send(&caller.principal, &thread, message)
        .await?;
    let answer = answering.finish().await?;
    Ok(Json(json!({
        "response": answer.message.content,
        "user_id": shown,
        "session_id": thread.id,
        "memories_used": [],
        "timestamp": naive(Utc::now()),
    })))
}

/// One turn as the seeds' `/stream`: `text/plain` with a `data: <text>` line per delta (the
/// seeds send the whole answer as one such line); an error ends it with `data: [error] ...`.
async fn turn_stream(
    state: &Arc<AppState>,
    caller: &UserCaller,
    path: Option<&str>,
    session_id: Option<&str>,
    body: &ChatBody,
) -> ApiResult<Response> {
    let (thread, _, message) = prepare(state, caller, path, session_id, body).await?;
    let (_, answering) = Chat::new(state.clone())
        .send(&caller.principal, &thread, message)
        .await?;
    Ok(plain_stream(answering))
}

fn plain_stream(answering: Answering) -> Response {
    let events = futures_util::stream::unfold(Some(answering), |answering| async move {
        let mut answering = answering?;
        let event = answering.events.recv().await?;
        let (bytes, last) = match event {
            ChatEvent::Delta(text) => (Bytes::from(format!("data: {text}\n\n")), false),
            ChatEvent::Done(_) => return None,
            ChatEvent::Failed(error) => (
                Bytes::from(format!("data: [error] {}\n\n", error.message)),
                true,
            ),
        };
        Some((
            Ok::<_, std::convert::Infallible>(bytes),
            (!last).then_some(answering),
        ))
    });
    let mut response = Response::new(Body::from_stream(events));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Seed 001's `POST /api/v1/chat`: the caller from the credential.
pub async fn chat_001(
    State(state): Shared,
    caller: UserCaller,
    JsonBody(body): JsonBody<ChatBody>,
) -> ApiResult<Json<Value>> {
    turn(&state, &caller, None, None, &body).await
}

pub async fn stream_001(
    State(state): Shared,
    caller: UserCaller,
    JsonBody(body): JsonBody<ChatBody>,
) -> ApiResult<Response> {
    turn_stream(&state, &caller, None, None, &body).await
}

/// Seed 002's `POST .../{user_id}/new`: always a new session (a body's `session_id` is
/// ignored, as the seed does).
pub async fn new_002(
    State(state): Shared,
    caller: UserCaller,
    Path(user): Path<String>,
    JsonBody(mut body): JsonBody<ChatBody>,
) -> ApiResult<Json<Value>> {
    body.session_id = None;
    turn(&state, &caller, Some(&user), None, &body).await
}

pub async fn new_stream_002(
    State(state): Shared,
    caller: UserCaller,
    Path(user): Path<String>,
    JsonBody(mut body): JsonBody<ChatBody>,
) -> ApiResult<Response> {
    body.session_id = None;
    turn_stream(&state, &caller, Some(&user), None, &body).await
}

/// The README's `POST /api/v1/chat/{user_id}`: the body's `session_id`, or a new session.
pub async fn chat_002(
    State(state): Shared,
    caller: UserCaller,
    Path(user): Path<String>,
    JsonBody(body): JsonBody<ChatBody>,
) -> ApiResult<Json<Value>> {
    turn(&state, &caller, Some(&user), None, &body).await
}

pub async fn continue_002(
    State(state): Shared,
    caller: UserCaller,
    Path((user, session_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ChatBody>,
) -> ApiResult<Json<Value>> {
    turn(&state, &caller, Some(&user), Some(&session_id), &body).await
}

pub async fn continue_stream_002(
    State(state): Shared,
    caller: UserCaller,
    Path((user, session_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ChatBody>,
) -> ApiResult<Response> {
    turn_stream(&state, &caller, Some(&user), Some(&session_id), &body).await
}

fn summary(item: &ThreadItem) -> Value {
    let t = &item.thread;
    json!({
        "session_id": t.id,
        "user_id": t.user_id,
        "title": t.title,
        "created_at": naive(t.created_at),
        "last_activity": naive(t.updated_at),
        "message_count": item.message_count,
        "is_active": t.is_active,
    })
}

#[derive(Deserialize)]
pub struct SessionsQuery {
    active_only: Option<bool>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn list_002(
    State(state): Shared,
    Caller(principal): Caller,
    Path(user): Path<String>,
    QueryParams(query): QueryParams<SessionsQuery>,
) -> ApiResult<Json<Value>> {
    let user_id = path_user(&state, &principal, &user).await?;
    let active_only = query.active_only.unwrap_or(true);
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    let offset = query.offset.unwrap_or(0).max(0);
    let store = &state.store;
    let items = store
        .thread_list(Some(&user_id), active_only, limit, offset)
        .await?;
    let total = store.thread_count(Some(&user_id), active_only).await?;
    Ok(Json(json!({
        "sessions": items.iter().map(summary).collect::<Vec<_>>(),
        "user_id": user,
        "total_count": total,
    })))
}

#[derive(Deserialize)]
pub struct NewSessionBody {
    title: Option<String>,
}

/// The README's `POST .../sessions`: an empty session.
pub async fn create_002(
    State(state): Shared,
    Caller(principal): Caller,
    Path(user): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let user_id = path_user(&state, &principal, &user).await?;
    // The body is optional: none, or `{"title": ...}`.
    let body: NewSessionBody = if body.iter().all(u8::is_ascii_whitespace) {
        NewSessionBody { title: None }
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(None, format!("malformed JSON body: {e}")))?
    };
    let title = body.title.unwrap_or_else(|| title_from(""));
    let thread = Threads::new(&state)
        .create(&user_id, Some(&title), &state.chat.default_model)
        .await?;
    let item = ThreadItem {
        thread,
        last_message_preview: None,
        message_count: 0,
    };
    Ok((StatusCode::CREATED, Json(summary(&item))).into_response())
}

pub async fn get_002(
    State(state): Shared,
    Caller(principal): Caller,
    Path((user, session_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let user_id = path_user(&state, &principal, &user).await?;
    let thread = session(&state, &user_id, &session_id).await?;
    let messages = Threads::new(&state)
        .messages(&thread, (MAX_SESSION_MESSAGES, 0))
        .await?;
    let item = ThreadItem {
        message_count: messages.len() as i64,
        thread,
        last_message_preview: None,
    };
    let mut out = summary(&item);
    out["messages"] = messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content, "timestamp": m.created_at}))
        .collect();
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    title: Option<String>,
    is_active: Option<bool>,
}

pub async fn update_002(
    State(state): Shared,
    Caller(principal): Caller,
    Path((user, session_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let user_id = path_user(&state, &principal, &user).await?;
    let thread = session(&state, &user_id, &session_id).await?;
    if body
        .title
        .as_deref()
        .is_some_and(|t| t.chars().count() > 100)
    {
        return Err(ApiError::invalid(
            Some("title"),
            "title: must be at most 100 characters",
        ));
    }
    let threads = Threads::new(&state);
    threads
        .update(&user_id, &thread.id, body.title.as_deref(), None)
        .await?;
    if let Some(active) = body.is_active {
        state
            .store
            .set_thread_active(&user_id, &thread.id, active)
            .await?;
    }
    Ok(Json(json!({ "message": "Session updated successfully" })))
}

pub async fn delete_002(
    State(state): Shared,
    Caller(principal): Caller,
    Path((user, session_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let user_id = path_user(&state, &principal, &user).await?;
    let thread = session(&state, &user_id, &session_id).await?;
    Threads::new(&state).delete(&user_id, &thread.id).await?;
    Ok(Json(json!({ "message": "Session deleted successfully" })))
}

/// `GET /api/v1/admin/sessions` (seed 002's README): every user's chat sessions.
pub async fn admin_list(
    State(state): Shared,
    _admin: super::extract::AdminCaller,
    QueryParams(query): QueryParams<SessionsQuery>,
) -> ApiResult<Json<Value>> {
    let active_only = query.active_only.unwrap_or(false);
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let offset = query.offset.unwrap_or(0).max(0);
    let store = &state.store;
    let items = store.thread_list(None, active_only, limit, offset).await?;
    let sessions: Vec<Value> = items.iter().map(summary).collect();
    let total = store.thread_count(None, active_only).await?;
    Ok(Json(json!({
        "items": &sessions,
        "sessions": &sessions,
        "total": total,
        "total_count": total,
        "limit": limit,
        "offset": offset,
    })))
}

/// The seeds' health answers: `GET /` and `GET /api/v1/health` (001), `/api/v1/chat/health`
/// (002's code).
pub async fn root() -> Json<Value> {
    Json(json!({ "message": "Homi Chatbot API is running!" }))
}

pub async fn chat_health(State(state): Shared) -> Response {
    let database = state.store.ping().await.is_ok();
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if database { "healthy" } else { "unhealthy" },
        "service": "chat",
        "database": { "status": if database { "healthy" } else { "unhealthy" } },
        "timestamp": Utc::now(),
    });
    let mut response = Json(body).into_response();
    *response.status_mut() = status;
    response
}
