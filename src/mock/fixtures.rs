//! Recorded Anthropic and Gemini answers, played back by the mock provider so translation is
//! tested against each provider's own wire format (written from their published formats).
//!
//! The upstream model name picks the fixture (`model = "tool_use"` in a target); an unknown
//! name gets the plain text answer. Failure options (`x-mock-*` headers from the provider's
//! `headers`) apply as for OpenAI-style answers: a status, latency, reset or stall mid-stream.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::chat::sse_response;
use super::{json_response, raw_response, MockBody, MockOptions, MockStats};

struct Fixture {
    name: &'static str,
    status: u16,
    json: Option<&'static str>,
    sse: Option<&'static str>,
}

macro_rules! fixture {
    ($dir:literal, $name:literal, $status:expr, json) => {
        Fixture {
            name: $name,
            status: $status,
            json: Some(include_str!(concat!(
                "fixtures/",
                $dir,
                "/",
                $name,
                ".json"
            ))),
            sse: None,
        }
    };
    ($dir:literal, $name:literal, $status:expr, sse) => {
        Fixture {
            name: $name,
            status: $status,
            json: None,
            sse: Some(include_str!(concat!("fixtures/", $dir, "/", $name, ".sse"))),
        }
    };
    ($dir:literal, $name:literal, $status:expr, both) => {
        Fixture {
            name: $name,
            status: $status,
            json: Some(include_str!(concat!(
                "fixtures/",
                $dir,
                "/",
                $name,
                ".json"
            ))),
            sse: Some(include_str!(concat!("fixtures/", $dir, "/", $name, ".sse"))),
        }
    };
}

const ANTHROPIC: &[Fixture] = &[
    fixture!("anthropic", "text", 200, both),
    fixture!("anthropic", "tool_use", 200, both),
    fixture!("anthropic", "max_tokens", 200, json),
    fixture!("anthropic", "error_mid_stream", 200, sse),
    fixture!("anthropic", "overloaded", 529, json),
    fixture!("anthropic", "invalid_request", 400, json),
];

const GEMINI: &[Fixture] = &[
    fixture!("gemini", "text", 200, both),
    fixture!("gemini", "function_call", 200, both),
    fixture!("gemini", "thinking", 200, both),
    fixture!("gemini", "safety", 200, json),
    fixture!("gemini", "error_mid_stream", 200, sse),
    fixture!("gemini", "invalid_argument", 400, json),
];

fn find(table: &'static [Fixture], model: &str) -> &'static Fixture {
    table.iter().find(|f| f.name == model).unwrap_or(&table[0])
}

#[derive(Deserialize)]
struct AnthropicRequest {
    model: String,
    #[serde(default)]
    stream: bool,
}

pub(super) async fn anthropic(
    stats: &Arc<MockStats>,
    defaults: &MockOptions,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<MockBody> {
    let options = MockOptions::resolve(defaults, None, headers);
    if let Some(status) = failure(&options).await {
        let body = json!({"type": "error", "error": {"type": "api_error", "message": "mock failure requested"}});
        let mut response = json_response(status, &body);
        super::with_retry_after(&mut response, &options);
        return response;
    }
    let request: AnthropicRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": format!("mock: {e}")}});
            return json_response(StatusCode::BAD_REQUEST, &body);
        }
    };
    play(
        stats,
        &options,
        find(ANTHROPIC, &request.model),
        request.stream,
    )
}

/// `path` is `/v1beta/models/{model}:{method}`; `stream` is whether `alt=sse` was asked for.
pub(super) async fn gemini(
    stats: &Arc<MockStats>,
    defaults: &MockOptions,
    headers: &HeaderMap,
    path: &str,
    stream: bool,
) -> Response<MockBody> {
    let options = MockOptions::resolve(defaults, None, headers);
    if let Some(status) = failure(&options).await {
        let body = json!({"error": {"code": status.as_u16(), "message": "mock failure requested", "status": "UNAVAILABLE"}});
        let mut response = json_response(status, &body);
        super::with_retry_after(&mut response, &options);
        return response;
    }
    let model = path
        .rsplit('/')
        .next()
        .and_then(|last| last.split(':').next())
        .unwrap_or("");
    play(stats, &options, find(GEMINI, model), stream)
}

async fn failure(options: &MockOptions) -> Option<StatusCode> {
    if options.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(options.latency_ms)).await;
    }
    options
        .status
        .map(|s| StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
}

fn play(
    stats: &Arc<MockStats>,
    options: &MockOptions,
    fixture: &'static Fixture,
    stream: bool,
) -> Response<MockBody> {
    let status = StatusCode::from_u16(fixture.status).unwrap_or(StatusCode::OK);
    match (stream, fixture.sse, fixture.json) {
        (true, Some(sse), _) => sse_response(stats, events(sse), options),
        (_, _, Some(json)) => raw_response(
            status,
            "application/json",
            Bytes::from_static(json.as_bytes()),
        ),
        (false, Some(_), None) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("mock: fixture {} is stream-only", fixture.name)}),
        ),
        (_, None, None) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "mock: fixture without content"}),
        ),
    }
}

/// Splits a recorded stream into its events (each with its closing blank line), so each is
/// sent as its own chunk, the way providers flush them.
fn events(recorded: &'static str) -> Vec<Bytes> {
    let bytes = recorded.as_bytes();
    let mut frames = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = if bytes[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if bytes[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        };
        match end {
            Some(end) => {
                frames.push(Bytes::from_static(&bytes[start..end]));
                start = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if start < bytes.len() && !recorded[start..].trim().is_empty() {
        frames.push(Bytes::from_static(&bytes[start..]));
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_streams_split_into_whole_events() {
        for fixture in ANTHROPIC.iter().chain(GEMINI) {
            let Some(sse) = fixture.sse else { continue };
            let frames = events(sse);
            assert!(frames.len() > 1, "{}", fixture.name);
            for frame in &frames {
                let closed = frame.ends_with(b"\n\n") || frame.ends_with(b"\r\n\r\n");
                assert!(closed, "{}: {frame:?}", fixture.name);
            }
            assert_eq!(frames.concat(), sse.as_bytes(), "{}", fixture.name);
        }
    }
}
