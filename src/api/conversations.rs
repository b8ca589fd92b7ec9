//! Seed 004's conversations: integer ids (its frontend `parseInt`s them and compares with
//! `===`), timestamps as `YYYY-MM-DD HH:MM:SS`, every success a 200, and `POST /chat/` answering
//! in one JSON body: `{conversation_id, request_message_id, response_message_id, answer}`. A
//! new conversation gets a title made by the model (usage scope `title`). The turn itself is
//! [`services::Chat`](crate::services::Chat)'s, the same as every seed's.

use std::sync::Arc;

use axum::extract::{Multipart, Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, QueryParams, UserCaller};
use crate::services::{Chat, Threads};
use crate::state::AppState;
use crate::store::threads::{Message, Thread};

type Shared = State<Arc<AppState>>;

/// The model a chat uses when the form names none (seed 004's default).
const DEFAULT_MODEL: &str = "gpt-4.1-nano";
/// The most messages one conversation lists (seed 004 lists them all, up to this).
const MAX_MESSAGES: i64 = 10_000;
const MAX_TEXT_BYTES: usize = 512 * 1024;

/// Seed 004's timestamp: `YYYY-MM-DD HH:MM:SS` (UTC).
pub(super) fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "Conversation not found")
}

/// A conversation id from the path: an integer (422 otherwise, as FastAPI answers).
fn conversation_id(id: &str) -> ApiResult<i64> {
    id.parse().map_err(|_| {
        ApiError::invalid(
            Some("conversation_id"),
            "conversation_id: must be an integer",
        )
    })
}

/// A conversation of the caller's by its integer id.
async fn conversation(state: &AppState, user_id: &str, id: i64) -> ApiResult<Thread> {
    Threads::new(state)
        .get_by_seq(user_id, id)
        .await
        .map_err(|_| not_found())
}

/// Seed 004's message: `request_id` is the question's id on an answer (null on a question),
/// `price` the answer's cost.
pub(super) fn message_out(
    message: &Message,
    conversation_id: Option<i64>,
    request_id: Option<i64>,
) -> Value {
    json!({
        "id": message.seq,
        "conversation_id": conversation_id,
        "request_id": request_id,
        "role": message.role,
        "text": message.content,
        "summary": null,
        "created_at": timestamp(message.created_at),
        "input_tokens": message.prompt_tokens,
        "output_tokens": message.completion_tokens,
        "cached_tokens": message.prompt_tokens.map(|_| 0),
        "model": message.model,
        "price": message.cost_usd,
    })
}

pub async fn list(State(state): Shared, caller: UserCaller) -> ApiResult<Json<Vec<Value>>> {
    let items = Threads::new(&state)
        .list(&caller.user_id, (1_000, 0))
        .await?;
    Ok(Json(
        items
            .iter()
            .map(|item| {
                json!({
                    "id": item.thread.seq,
                    "title": item.thread.title,
                    "summary": item.thread.summary,
                    "created_at": timestamp(item.thread.created_at),
                })
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct CreateBody {
    title: Option<String>,
}

/// `POST /conversations/`: the new conversation's integer id, bare.
pub async fn create(
    State(state): Shared,
    caller: UserCaller,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Json<Value>> {
    let thread = Threads::new(&state)
        .create(&caller.user_id, body.title.as_deref(), DEFAULT_MODEL)
        .await?;
    Ok(Json(json!(thread.seq)))
}

pub async fn messages(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let thread = conversation(&state, &caller.user_id, conversation_id(&id)?).await?;
    let messages = Threads::new(&state)
        .messages(&thread, (MAX_MESSAGES, 0))
        .await?;
    let mut question = None;
    let out: Vec<Value> = messages
        .iter()
        .map(|m| {
            if m.role == "user" {
                question = m.seq;
                message_out(m, thread.seq, None)
            } else {
                message_out(m, thread.seq, question)
            }
        })
        .collect();
    Ok(Json(
        json!({ "conversation_id": thread.seq, "messages": out }),
    ))
}

#[derive(Deserialize)]
pub struct RenameQuery {
    new_title: Option<String>,
}

pub async fn rename(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<RenameQuery>,
) -> ApiResult<Json<Value>> {
    let title = query
        .new_title
        .ok_or_else(|| ApiError::invalid(Some("new_title"), "new_title: is required"))?;
    let thread = conversation(&state, &caller.user_id, conversation_id(&id)?).await?;
    Threads::new(&state)
        .update(&caller.user_id, &thread.id, Some(&title), None)
        .await?;
    Ok(Json(
        json!({ "detail": "Conversation renamed successfully" }),
    ))
}

pub async fn delete(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let thread = conversation(&state, &caller.user_id, conversation_id(&id)?).await?;
    Threads::new(&state)
        .delete(&caller.user_id, &thread.id)
        .await?;
    Ok(Json(json!({ "detail": "Conversation deleted" })))
}

/// The form of `POST /chat/`.
struct ChatForm {
    text: Option<String>,
    model: Option<String>,
    conversation_id: Option<i64>,
}

async fn read_form(mut form: Multipart) -> ApiResult<ChatForm> {
    let mut out = ChatForm {
        text: None,
        model: None,
        conversation_id: None,
    };
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::invalid(None, format!("malformed multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "files" {
            return Err(ApiError::invalid(
                Some("files"),
                "files: attachments are not supported by this gateway yet; send the text alone",
            ));
        }
        if !matches!(name.as_str(), "text" | "model" | "conversation_id") {
            continue;
        }
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::invalid(None, format!("malformed multipart body: {e}")))?;
        if bytes.len() > MAX_TEXT_BYTES {
            return Err(ApiError::invalid(
                None,
                format!("{name}: must be at most {MAX_TEXT_BYTES} bytes"),
            ));
        }
        let value = String::from_utf8(bytes.to_vec())
            .map_err(|_| ApiError::invalid(None, format!("{name}: must be UTF-8 text")))?;
        match name.as_str() {
            "text" => out.text = Some(value),
            "model" => out.model = Some(value).filter(|m| !m.trim().is_empty()),
            _ => {
                let id = value.trim().parse().map_err(|_| {
                    ApiError::invalid(
                        Some("conversation_id"),
                        "conversation_id: must be an integer",
                    )
                })?;
                out.conversation_id = Some(id);
            }
        }
    }
    Ok(out)
}

/// `POST /chat/`: one turn, answered when the whole answer is saved.
pub async fn send(
    State(state): Shared,
    caller: UserCaller,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let form = read_form(multipart.map_err(|e| ApiError::invalid(None, e.body_text()))?).await?;
    let text = form
        .text
        .ok_or_else(|| ApiError::invalid(Some("text"), "text: is required"))?;
    if text.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_text",
            "Empty text",
        ));
    }
    let model = form.model.unwrap_or_else(|| DEFAULT_MODEL.to_string());
    let threads = Threads::new(&state);
    let (thread, is_new) = match form.conversation_id {
        Some(id) => {
            let mut thread = conversation(&state, &caller.user_id, id).await?;
            if thread.model.as_deref() != Some(model.as_str()) {
                thread = threads
                    .update(&caller.user_id, &thread.id, None, Some(&model))
                    .await?;
            }
            (thread, false)
        }
        None => (threads.create(&caller.user_id, None, &model).await?, true),
    };
    let chat = Chat::new(state.clone());
    let (question, answering) = chat.send(&caller.principal, &thread, &text).await?;
    // A failed model call answers in the REST shape with its status; the question is kept.
    let answer = answering.finish().await?;
    if is_new {
        // The seed titles a new conversation from its first exchange.
        threads.generate_title(&caller.principal, &thread).await?;
    }
    Ok(Json(json!({
        "conversation_id": thread.seq,
        "request_message_id": question.seq,
        "response_message_id": answer.message.seq,
        "answer": answer.message.content,
    })))
}
