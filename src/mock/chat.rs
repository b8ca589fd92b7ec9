//! Mock chat completions (JSON and SSE) and embeddings.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{before_response, error, json_response, MockBody, MockOptions, MockStats, StreamGuard};

const CREATED: u64 = 1_700_000_000;

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    tools: Option<Vec<Value>>,
    mock: Option<MockOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

pub(super) async fn completions(
    stats: &Arc<MockStats>,
    defaults: &MockOptions,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<MockBody> {
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("mock: bad chat body: {e}"),
            )
        }
    };
    let options = MockOptions::resolve(defaults, request.mock, headers);
    if let Some(failure) = before_response(&options).await {
        return failure;
    }
    let tool = request
        .tools
        .as_ref()
        .and_then(|tools| tools.first())
        .and_then(|t| t["function"]["name"].as_str())
        .map(str::to_string);
    let prompt_tokens = (body.len() / 4) as u64;
    let completion_tokens = options.chunks as u64;
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    if !request.stream {
        let message = match &tool {
            Some(name) => {
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    {"id": "call_mock", "type": "function", "function": {"name": name, "arguments": "{\"city\":\"Paris\"}"}}
                ]})
            }
            None => json!({"role": "assistant", "content": words(options.chunks), "refusal": null}),
        };
        return json_response(
            StatusCode::OK,
            &json!({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED,
                "model": request.model, "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "message": message, "logprobs": null,
                             "finish_reason": if tool.is_some() { "tool_calls" } else { "stop" }}],
                "usage": usage,
            }),
        );
    }

    let chunk = |choices: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED,
               "model": request.model, "system_fingerprint": "fp_mock", "choices": choices})
    };
    let mut events = vec![chunk(json!([{"index": 0,
        "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]))];
    match &tool {
        Some(name) => {
            events.push(chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0,
                "id": "call_mock", "type": "function", "function": {"name": name, "arguments": ""}}]},
                "logprobs": null, "finish_reason": null}])));
            for piece in ["{\"city\":", "\"Paris\"}"] {
                events.push(chunk(
                    json!([{"index": 0, "delta": {"tool_calls": [{"index": 0,
                    "function": {"arguments": piece}}]}, "logprobs": null, "finish_reason": null}]),
                ));
            }
        }
        None => {
            for i in 0..options.chunks {
                let token = format!("tok{i} ");
                events.push(chunk(json!([{"index": 0, "delta": {"content": token},
                    "logprobs": {"content": [{"token": token, "logprob": -0.25,
                                              "bytes": token.as_bytes(), "top_logprobs": []}]},
                    "finish_reason": null, "x_mock_extra": {"seq": i}}])));
            }
        }
    }
    let finish = if tool.is_some() { "tool_calls" } else { "stop" };
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}]),
    ));
    if request.stream_options.is_some_and(|o| o.include_usage) {
        let mut last = chunk(json!([]));
        last["usage"] = usage;
        events.push(last);
    }
    let mut frames: Vec<Bytes> = events.iter().map(sse_data).collect();
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    sse_response(stats, frames, &options)
}

fn words(n: usize) -> String {
    (0..n)
        .map(|i| format!("tok{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn sse_data(event: &Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&serde_json::to_vec(event).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

struct StreamState {
    frames: std::vec::IntoIter<Bytes>,
    sent: usize,
    options: MockOptions,
    failed: bool,
    guard: StreamGuard,
}

/// Sends `frames` one by one, honouring delay, reset and stall options.
pub(super) fn sse_response(
    stats: &Arc<MockStats>,
    frames: Vec<Bytes>,
    options: &MockOptions,
) -> Response<MockBody> {
    let state = StreamState {
        frames: frames.into_iter(),
        sent: 0,
        options: options.clone(),
        failed: false,
        guard: StreamGuard {
            stats: stats.clone(),
            finished: false,
        },
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.failed {
            return None;
        }
        if st.sent > 0 && st.options.chunk_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(st.options.chunk_delay_ms)).await;
        }
        if st.options.reset_after == Some(st.sent) {
            st.failed = true;
            let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock reset");
            return Some((Err(reset), st));
        }
        if st.options.stall_after == Some(st.sent) {
            std::future::pending::<()>().await;
        }
        match st.frames.next() {
            Some(frame) => {
                st.sent += 1;
                Some((Ok(Frame::data(frame)), st))
            }
            None => {
                st.guard.finish();
                None
            }
        }
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: Value,
    dimensions: Option<usize>,
    mock: Option<MockOptions>,
}

pub(super) async fn embeddings(
    defaults: &MockOptions,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<MockBody> {
    let request: EmbeddingRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("mock: bad embeddings body: {e}"),
            )
        }
    };
    let options = MockOptions::resolve(defaults, request.mock, headers);
    if let Some(failure) = before_response(&options).await {
        return failure;
    }
    let inputs: Vec<String> = match &request.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_number) => {
            vec![request.input.to_string()]
        }
        Value::Array(items) => items.iter().map(Value::to_string).collect(),
        other => vec![other.to_string()],
    };
    let dims = request.dimensions.unwrap_or(8).clamp(1, 4096);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let seed = super::fnv1a(text.as_bytes());
            let vector: Vec<f32> = (0..dims)
                .map(|d| ((seed.rotate_left(d as u32 * 7) % 2000) as f32 / 1000.0) - 1.0)
                .collect();
            json!({"object": "embedding", "index": index, "embedding": vector})
        })
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.len().div_ceil(4)).sum();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": request.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}
