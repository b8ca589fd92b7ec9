//! The pipeline as a library call: the app's own model calls (thread and chat endpoints, memory
//! extraction, summaries, embeddings for search) take exactly the path of a /v1 request
//! (admission, editing plugins, routing with retries and fallbacks, limits and budgets, the
//! upstream and its translation, metering) with a typed request and a [`CallContext`] instead of
//! an HTTP request. The ids and usage scope of the context land on the usage record.
//!
//! ```ignore
//! let call = CallContext::new(principal, UsageScope::Chat).in_thread(&thread_id, Some(&msg_id));
//! let request = ChatRequest::new("gpt-4o-mini", vec![ChatMessage::user("Hello")]);
//! match state.pipeline.chat(call, request).await?.answer {
//!     ChatAnswer::Complete(completion) => completion.text(),
//!     ChatAnswer::Stream(mut chunks) => { while let Some(chunk) = chunks.next().await { .. } }
//! }
//! ```
//!
//! The call enters behind the HTTP layer: the request is written as the JSON a client would send
//! and handed to the same `forward_json` the /v1 handler uses, and the answer is read back from
//! the same response body a client would get. That costs an encode and a decode per call (not on
//! /v1) and buys one code path, with every plugin, for every caller.

pub mod stream;

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;

pub use crate::chat::{ChatChunk, ChatCompletion, ChatMessage, ChatRequest, Embeddings};
pub use crate::context::{CallContext, UsageScope};
use crate::context::{RequestCtx, Route};
use crate::error::GatewayError;
pub use crate::proxy::Pipeline;
pub use stream::ChunkStream;

/// An error answer larger than this is cut: only its message is wanted.
const MAX_ERROR_BYTES: usize = 1024 * 1024;
/// A whole answer larger than this is refused rather than held.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// What a chat call answered, and the headers a /v1 client would have got with it (rate-limit
/// state), for endpoints that pass them on.
#[derive(Debug)]
pub struct ChatResponse {
    pub headers: HeaderMap,
    pub answer: ChatAnswer,
}

pub enum ChatAnswer {
    Complete(ChatCompletion),
    /// The request asked to stream: chunks as the upstream sends them.
    Stream(ChunkStream),
}

impl std::fmt::Debug for ChatAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatAnswer::Complete(c) => f.debug_tuple("Complete").field(c).finish(),
            ChatAnswer::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

impl Pipeline {
    /// A chat completion for an in-process caller, through every plugin.
    pub async fn chat(
        &self,
        call: CallContext,
        mut request: ChatRequest,
    ) -> Result<ChatResponse, GatewayError> {
        let mut ctx = self
            .admit(RequestCtx::for_call(call, Route::ChatCompletions))
            .await?;
        if self.plugins.edits_chat() {
            if let Err(e) = self.plugins.edit_chat(&mut ctx, &mut request).await {
                return Err(self.refuse(ctx, e));
            }
        }
        let body = match serde_json::to_vec(&request) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                let error = GatewayError::internal(format!("Could not write the request: {e}"));
                return Err(self.refuse(ctx, error));
            }
        };
        let response = self.forward_json(ctx, body).await;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            return Err(error_from(parts.status, &parts.headers, body).await);
        }
        let answer = if is_event_stream(&parts.headers) {
            ChatAnswer::Stream(ChunkStream::new(body))
        } else {
            ChatAnswer::Complete(read_json(body).await?)
        };
        Ok(ChatResponse {
            headers: parts.headers,
            answer,
        })
    }

    /// Embeddings of `inputs` for an in-process caller (memory search), through every plugin.
    pub async fn embed(
        &self,
        call: CallContext,
        model: &str,
        inputs: &[String],
    ) -> Result<Embeddings, GatewayError> {
        let ctx = self
            .admit(RequestCtx::for_call(call, Route::Embeddings))
            .await?;
        let body = serde_json::json!({ "model": model, "input": inputs });
        let body = Bytes::from(body.to_string());
        let response = self.forward_json(ctx, body).await;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            return Err(error_from(parts.status, &parts.headers, body).await);
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            model: String,
            data: Vec<Item>,
            usage: Option<crate::usage::UsageJson>,
        }
        #[derive(Deserialize)]
        struct Item {
            #[serde(default)]
            index: usize,
            embedding: Vec<f32>,
        }
        let mut answer: Answer = read_json(body).await?;
        answer.data.sort_by_key(|item| item.index);
        Ok(Embeddings {
            model: answer.model,
            vectors: answer.data.into_iter().map(|i| i.embedding).collect(),
            usage: answer
                .usage
                .as_ref()
                .map(crate::usage::TokenUsage::from_usage_json),
        })
    }

    /// The admission phase for a call whose caller is already known.
    async fn admit(&self, mut ctx: RequestCtx) -> Result<RequestCtx, GatewayError> {
        // An empty request head: there is no HTTP request, and no credential to look at.
        let (head, ()) = http::Request::new(()).into_parts();
        match self.plugins.on_request(&mut ctx, &head).await {
            Ok(()) => Ok(ctx),
            Err(e) => Err(self.refuse(ctx, e)),
        }
    }

    /// Ends a call refused before routing: the plugins hear of it as of a refused /v1 request.
    fn refuse(&self, ctx: RequestCtx, error: GatewayError) -> GatewayError {
        drop(self.reject(ctx, error.clone()));
        error
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, GatewayError> {
    let bytes = Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| GatewayError::bad_gateway(format!("Could not read the answer: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| GatewayError::bad_gateway(format!("An unreadable answer: {e}")))
}

/// The error a failed answer carried, with its Retry-After.
async fn error_from(status: StatusCode, headers: &HeaderMap, body: Body) -> GatewayError {
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let bytes = Limited::new(body, MAX_ERROR_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    GatewayError::from_answer(status, &bytes, retry_after)
}
