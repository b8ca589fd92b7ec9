//! /v1/audio/transcriptions: multipart uploads forwarded byte for byte, every response format,
//! the SSE stream, and the form's unhappy paths.

mod common;

use common::*;
use reqwest::multipart::{Form, Part};

fn audio(len: usize) -> Vec<u8> {
    // Binary content with CR/LF and dashes, which a careless multipart rewrite would corrupt.
    (0..len)
        .map(|i| (i * 31 % 251) as u8)
        .chain(*b"\r\n--\r\n")
        .collect()
}

fn form(model: &str, file: Vec<u8>) -> Form {
    Form::new()
        .part(
            "file",
            Part::bytes(file)
                .file_name("speech.mp3")
                .mime_str("audio/mpeg")
                .unwrap(),
        )
        .text("model", model.to_string())
}

/// Whether the last upload the mock received holds `file` byte for byte.
fn upstream_got_file(h: &Harness, file: &[u8]) -> bool {
    let seen = h
        .mock
        .stats
        .last_request()
        .expect("the mock saw the upload");
    seen.body.windows(file.len()).any(|w| w == file)
}

async fn send(h: &Harness, form: Form) -> reqwest::Response {
    h.client
        .post(h.url("/v1/audio/transcriptions"))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn json_transcription_forwards_the_upload_unchanged() {
    let h = start().await;
    let file = audio(20_000);
    let response = send(
        &h,
        form("mock-whisper", file.clone()).text("language", "da"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(upstream_got_file(&h, &file));
    let value: serde_json::Value = response.json().await.unwrap();
    let text = value["text"].as_str().unwrap();
    assert!(text.contains("upstream-whisper"), "{text}");
    assert!(text.contains(&format!("of {} bytes", file.len())), "{text}");
    assert_eq!(value["usage"]["type"], "tokens");
}

#[tokio::test]
async fn same_model_name_forwards_the_exact_body() {
    let h = start_with(
        "[[models]]\nname = \"upstream-whisper\"\ntargets = [{ provider = \"mock\" }]\n",
    )
    .await;
    let response = send(&h, form("upstream-whisper", audio(1000))).await;
    assert_eq!(response.status(), 200);
    let seen = h.mock.stats.last_request().unwrap();
    // The boundary the client chose is still the one upstream sees, and the bytes are its own.
    let content_type = seen.headers["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("multipart/form-data; boundary="));
    let boundary = content_type.split("boundary=").nth(1).unwrap();
    assert!(String::from_utf8_lossy(&seen.body).contains(boundary));
}

#[tokio::test]
async fn alias_rewrites_the_model_field_and_keeps_the_file() {
    let h = start().await;
    let file = audio(5_000);
    let response = send(
        &h,
        form("alias-whisper", file.clone()).text("prompt", "names: Åse"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(upstream_got_file(&h, &file));
    let seen = String::from_utf8_lossy(&h.mock.stats.last_request().unwrap().body).to_string();
    assert!(seen.contains("upstream-whisper"));
    assert!(seen.contains("names: Åse"));
    assert!(!seen.contains("alias-whisper"));
}

#[tokio::test]
async fn every_response_format_comes_back_as_the_upstream_sent_it() {
    let h = start().await;
    for (format, content_type, marker) in [
        ("text", "text/plain", "mock transcript"),
        ("srt", "text/plain", "00:00:00,000 -->"),
        ("vtt", "text/plain", "WEBVTT"),
        ("verbose_json", "application/json", "\"segments\""),
    ] {
        let response = send(
            &h,
            form("mock-whisper", audio(100))
                .text("response_format", format)
                .text("timestamp_granularities[]", "word")
                .text("temperature", "0.2"),
        )
        .await;
        assert_eq!(response.status(), 200, "{format}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(content_type));
        let text = response.text().await.unwrap();
        assert!(text.contains(marker), "{format}: {text}");
        if format == "verbose_json" {
            assert!(text.contains("\"words\""));
        }
    }
}

#[tokio::test]
async fn streamed_transcription_sends_delta_and_done_events() {
    let h = start().await;
    let response = send(&h, form("mock-whisper", audio(100)).text("stream", "true")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""type":"transcript.text.delta""#));
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.contains(r#""type":"transcript.text.done""#), "{last}");
}

#[tokio::test]
async fn bad_forms_are_refused() {
    let h = start().await;
    let no_file = Form::new().text("model", "mock-whisper");
    let error = expect_error(send(&h, no_file).await, 400).await;
    assert_eq!(error["param"], "file");

    let no_model = Form::new().part("file", Part::bytes(audio(10)).file_name("a.mp3"));
    let error = expect_error(send(&h, no_model).await, 400).await;
    assert_eq!(error["param"], "model");

    // Two model fields: the gateway would check one, the upstream might read the other.
    let two_models = form("mock-whisper", audio(10)).text("model", "another-model");
    let error = expect_error(send(&h, two_models).await, 400).await;
    assert_eq!(error["param"], "model");

    let unknown = form("no-such-model", audio(10));
    let error = expect_error(send(&h, unknown).await, 404).await;
    assert_eq!(error["code"], "model_not_found");

    let json_body = h
        .post_json(
            "/v1/audio/transcriptions",
            &serde_json::json!({"model": "mock-whisper"}),
        )
        .await;
    let error = expect_error(json_body, 400).await;
    assert!(error["message"].as_str().unwrap().contains("multipart"));

    let broken = h
        .client
        .post(h.url("/v1/audio/transcriptions"))
        .bearer_auth(KEY)
        .header("content-type", "multipart/form-data; boundary=abc")
        .body("--abc\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nmock-whisper")
        .send()
        .await
        .unwrap();
    expect_error(broken, 400).await;

    let huge = form("mock-whisper", audio(LIMIT as usize + 10));
    let error = expect_error(send(&h, huge).await, 413).await;
    assert_eq!(error["code"], "request_too_large");

    let no_key = h
        .client
        .post(h.url("/v1/audio/transcriptions"))
        .multipart(form("mock-whisper", audio(10)))
        .send()
        .await
        .unwrap();
    expect_error(no_key, 401).await;
    assert_eq!(h.upstream_requests(), 0);
}
