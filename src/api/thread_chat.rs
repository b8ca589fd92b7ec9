//! Seed 003's chat: `POST /api/v1/chat/{thread_id}/send` (multipart `prompt`) and
//! `.../regenerate` (no body) answer a 200 `text/event-stream`: `event: chunk` with the raw text
//! of each delta (not JSON), one `event: done` with `{content, model, message_id, usage,
//! cost_usd}` once the answer is saved, or `event: error` with a plain message (an unknown
//! model too) after which nothing is kept of the answer. The user's message is saved before the
//! stream starts. The turn itself is [`services::Chat`](crate::services::Chat)'s.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Path, State};
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::UserCaller;
use crate::services::chat::{Answering, ChatEvent};
use crate::services::{Chat, Threads};
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// The longest prompt accepted (bytes).
const MAX_PROMPT_BYTES: usize = 512 * 1024;

pub async fn send(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    let thread = Threads::new(&state).get(&caller.user_id, &id).await?;
    let prompt =
        read_prompt(multipart.map_err(|e| ApiError::invalid(None, e.body_text()))?).await?;
    let (_, answering) = Chat::new(state.clone())
        .send(&caller.principal, &thread, &prompt)
        .await?;
    Ok(event_stream(answering))
}

pub async fn regenerate(
    State(state): Shared,
    caller: UserCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let thread = Threads::new(&state).get(&caller.user_id, &id).await?;
    let answering = Chat::new(state.clone())
        .regenerate(&caller.principal, &thread)
        .await?;
    Ok(event_stream(answering))
}

/// The form's `prompt`. Files (`files`) are not taken yet: a clear 422 rather than an answer
/// that silently ignores them.
async fn read_prompt(mut form: Multipart) -> ApiResult<String> {
    let mut prompt = None;
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| ApiError::invalid(None, format!("malformed multipart body: {e}")))?;
        let Some(field) = field else { break };
        match field.name() {
            Some("prompt") => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::invalid(Some("prompt"), format!("prompt: {e}")))?;
                if bytes.len() > MAX_PROMPT_BYTES {
                    return Err(ApiError::invalid(
                        Some("prompt"),
                        format!("prompt: must be at most {MAX_PROMPT_BYTES} bytes"),
                    ));
                }
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::invalid(Some("prompt"), "prompt: must be UTF-8 text"))?;
                prompt = Some(text);
            }
            Some("files") => return Err(ApiError::invalid(
                Some("files"),
                "files: attachments are not supported by this gateway yet; send the prompt alone",
            )),
            // Other fields are ignored, as a form handler does.
            _ => {}
        }
    }
    prompt
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| ApiError::invalid(Some("prompt"), "prompt: is required"))
}

/// The answer's events as seed 003's SSE.
fn event_stream(answering: Answering) -> Response {
    let events = futures_util::stream::unfold(Some(answering), |answering| async move {
        let mut answering = answering?;
        let event = answering.events.recv().await?;
        let (bytes, last) = match event {
            ChatEvent::Delta(text) => (sse("chunk", &text), false),
            ChatEvent::Done(answer) => {
                let mut done = json!({
                    "content": answer.message.content,
                    "model": answer.message.model,
                    "message_id": answer.message.id,
                });
                if let Some(usage) = &answer.usage {
                    done["usage"] = json!({
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.total_tokens(),
                    });
                }
                if let Some(cost) = answer.cost_usd {
                    done["cost_usd"] = json!(cost);
                }
                (sse("done", &done.to_string()), true)
            }
            ChatEvent::Failed(error) => (sse("error", &error.message), true),
        };
        let next = (!last).then_some(answering);
        Some((Ok::<_, std::convert::Infallible>(bytes), next))
    });
    let mut response = Response::new(Body::from_stream(events));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One SSE event; a text with line breaks becomes several `data:` lines (SSE joins them back
/// with `\n`).
fn sse(event: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + event.len() + 16);
    out.push_str("event: ");
    out.push_str(event);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_lines_into_data_lines() {
        assert_eq!(sse("chunk", "Hello"), "event: chunk\ndata: Hello\n\n");
        assert_eq!(sse("chunk", "a\nb"), "event: chunk\ndata: a\ndata: b\n\n");
        assert_eq!(sse("chunk", " x "), "event: chunk\ndata:  x \n\n");
    }
}
