//! Mock `/audio/transcriptions`: every `response_format`, and the `transcript.text.*` SSE stream.
//! The answer names the file's size and FNV hash (also as `x-mock-file-*` headers), so a test
//! can check the upload reached the upstream byte for byte.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::json;

use super::chat::{sse_data, sse_response};
use super::{
    before_response, error, json_response, raw_response, MockBody, MockOptions, MockStats,
};

#[derive(Default)]
struct Form {
    file: Option<Bytes>,
    model: Option<String>,
    response_format: Option<String>,
    stream: bool,
    granularities: Vec<String>,
}

async fn read_form(headers: &HeaderMap, body: Bytes) -> Result<Form, String> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|e| e.to_string())?;
    let mut parts =
        multer::Multipart::new(stream::iter([Ok::<Bytes, std::io::Error>(body)]), boundary);
    let mut form = Form::default();
    while let Some(field) = parts.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or("").to_string();
        let data = field.bytes().await.map_err(|e| e.to_string())?;
        let text = || String::from_utf8_lossy(&data).trim().to_string();
        match name.as_str() {
            "file" => form.file = Some(data.clone()),
            "model" => form.model = Some(text()),
            "response_format" => form.response_format = Some(text()),
            "stream" => form.stream = text() == "true",
            "timestamp_granularities[]" => form.granularities.push(text()),
            _ => {}
        }
    }
    Ok(form)
}

pub(super) async fn transcriptions(
    stats: &Arc<MockStats>,
    defaults: &MockOptions,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<MockBody> {
    let form = match read_form(headers, body).await {
        Ok(form) => form,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("mock: bad form: {e}")),
    };
    let options = MockOptions::resolve(defaults, None, headers);
    if let Some(failure) = before_response(&options).await {
        return failure;
    }
    let (Some(file), Some(model)) = (form.file, form.model) else {
        return error(StatusCode::BAD_REQUEST, "mock: file and model are required");
    };
    let hash = super::fnv1a(&file);
    let text = format!("mock transcript of {} bytes by {model}", file.len());
    let usage = json!({"type": "tokens", "input_tokens": 14,
        "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
        "output_tokens": 9, "total_tokens": 23});

    let mut response = if form.stream {
        let mut frames: Vec<Bytes> = text
            .split_inclusive(' ')
            .map(|word| sse_data(&json!({"type": "transcript.text.delta", "delta": word})))
            .collect();
        frames.push(sse_data(
            &json!({"type": "transcript.text.done", "text": text, "usage": usage}),
        ));
        sse_response(stats, frames, &options)
    } else {
        match form.response_format.as_deref().unwrap_or("json") {
            "json" => json_response(StatusCode::OK, &json!({"text": text, "usage": usage})),
            "text" => raw_response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                Bytes::from(format!("{text}\n")),
            ),
            "srt" => raw_response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                Bytes::from(format!("1\n00:00:00,000 --> 00:00:01,500\n{text}\n\n")),
            ),
            "vtt" => raw_response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                Bytes::from(format!(
                    "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n{text}\n\n"
                )),
            ),
            "verbose_json" => {
                let mut value = json!({"task": "transcribe", "language": "english", "duration": 1.5,
                    "text": text,
                    "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 1.5, "text": text,
                                  "tokens": [1, 2, 3], "temperature": 0.0, "avg_logprob": -0.2,
                                  "compression_ratio": 1.0, "no_speech_prob": 0.01}],
                    "usage": {"type": "duration", "seconds": 2}});
                if form.granularities.iter().any(|g| g == "word") {
                    value["words"] = json!(text
                        .split(' ')
                        .enumerate()
                        .map(|(i, w)| json!({
                            "word": w, "start": i as f64 * 0.1, "end": i as f64 * 0.1 + 0.1
                        }))
                        .collect::<Vec<_>>());
                }
                json_response(StatusCode::OK, &value)
            }
            other => error(
                StatusCode::BAD_REQUEST,
                &format!("mock: unsupported response_format {other}"),
            ),
        }
    };
    let headers = response.headers_mut();
    headers.insert("x-mock-file-bytes", HeaderValue::from(file.len()));
    headers.insert("x-mock-file-fnv", HeaderValue::from(hash));
    response
}
