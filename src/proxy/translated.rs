//! The proxy's side of translation: the upstream request for a target whose provider speaks
//! another format, and the rewriting of what it answers.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::error::GatewayError;
use crate::providers::{Adapter, UpstreamBody};
use crate::routing::Target;
use crate::translate::openai::ChatRequest;
use crate::translate::{StreamTranslator, TranslatedStream};

/// An error answer larger than this is cut: only its message is wanted.
const MAX_ERROR_BYTES: usize = 1024 * 1024;
/// A whole (non-streamed) answer larger than this is refused rather than held in memory.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// How the answer to one translated attempt is rewritten.
pub struct Translation {
    adapter: &'static dyn Adapter,
    model: std::sync::Arc<str>,
    /// Set for streamed requests.
    stream: Option<Box<dyn StreamTranslator>>,
}

/// The upstream request for `target`, written in its provider's format.
pub fn upstream_request(
    chat: &ChatRequest,
    target: &Target,
    request_id: &HeaderValue,
) -> Result<(Request<UpstreamBody>, Translation), GatewayError> {
    let provider = &target.provider;
    let model = &*target.model;
    let adapter = provider.adapter;
    let body = adapter.request_body(chat, model, provider.default_max_tokens)?;
    let stream = if chat.stream {
        adapter.stream_translator(chat, model)
    } else {
        None
    };
    let uri = provider
        .chat_uri(model, chat.stream)
        .map_err(|e| GatewayError::internal(format!("Bad upstream URL for {model}: {e}")))?;
    let request = provider.build_request_to(uri, Bytes::from(body), request_id);
    Ok((
        request,
        Translation {
            adapter,
            model: target.model.clone(),
            stream,
        },
    ))
}

/// What a translated answer becomes.
pub enum Rewritten {
    /// A 2xx stream: the body is translated event by event as it arrives.
    Stream(Incoming, TranslatedStream),
    /// Anything else, read whole and rewritten: status, OpenAI JSON.
    Whole(StatusCode, Bytes),
}

impl Translation {
    /// Reads what must be read whole (errors, non-streamed answers) and rewrites it; a
    /// successful stream is left to be translated as it flows.
    pub async fn rewrite(
        self,
        response: Response<Incoming>,
        idle: Duration,
    ) -> (http::response::Parts, Rewritten) {
        let (parts, body) = response.into_parts();
        let status = parts.status;
        if status.is_success() {
            if let Some(translator) = self.stream {
                let stream = TranslatedStream::new(translator);
                return (parts, Rewritten::Stream(body, stream));
            }
        }
        let limit = if status.is_success() {
            MAX_ANSWER_BYTES
        } else {
            MAX_ERROR_BYTES
        };
        let bytes = match read_whole(body, limit, idle).await {
            Ok(bytes) => bytes,
            Err(e) => return (parts, Rewritten::Whole(e.status, e.to_json())),
        };
        let rewritten = if status.is_success() {
            match self.answer(&bytes) {
                Ok(json) => Rewritten::Whole(status, Bytes::from(json)),
                Err(e) => Rewritten::Whole(e.status, e.to_json()),
            }
        } else {
            let error = self.adapter.error(status, &bytes);
            Rewritten::Whole(error.status, error.to_json())
        };
        (parts, rewritten)
    }

    fn answer(&self, bytes: &[u8]) -> Result<Vec<u8>, GatewayError> {
        self.adapter.answer(bytes, &self.model)
    }
}

async fn read_whole(body: Incoming, limit: usize, idle: Duration) -> Result<Bytes, GatewayError> {
    match tokio::time::timeout(idle, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => Err(GatewayError::bad_gateway(format!(
            "Could not read the provider's answer: {e}"
        ))),
        Err(_) => Err(GatewayError::gateway_timeout(format!(
            "The provider's answer did not arrive within {} ms.",
            idle.as_millis()
        ))),
    }
}

/// The client's response for a rewritten whole answer, keeping the upstream headers that still
/// hold (Retry-After, request ids) and dropping those that described the old body.
pub fn whole_response(
    mut parts: http::response::Parts,
    status: StatusCode,
    body: Bytes,
) -> Response<Body> {
    parts.status = status;
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
    ] {
        parts.headers.remove(name);
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}
