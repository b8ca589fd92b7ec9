//! /v1/chat/completions through real HTTP: JSON, streaming passthrough, model mapping, fallback,
//! and every failure the proxy must turn into the right OpenAI error.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;

#[tokio::test]
async fn json_completion_passes_through_unchanged() {
    let h = start().await;
    let body = chat("mock-gpt");
    let via_gateway = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(via_gateway.status(), 200);
    assert_eq!(via_gateway.headers()["content-type"], "application/json");
    let via_gateway = via_gateway.bytes().await.unwrap();
    let direct = h.direct_bytes("/v1/chat/completions", &body).await;
    assert_eq!(via_gateway, direct);
    let value: serde_json::Value = serde_json::from_slice(&via_gateway).unwrap();
    assert_eq!(value["choices"][0]["message"]["content"], "tok0 tok1 tok2");
}

#[tokio::test]
async fn upstream_gets_provider_credentials_not_the_clients() {
    let h = start().await;
    let response = h.post_json("/v1/chat/completions", &chat("mock-gpt")).await;
    assert_eq!(response.status(), 200);
    let seen = h.mock.stats.last_request().unwrap();
    assert_eq!(seen.path, "/chat/completions");
    assert_eq!(seen.headers["authorization"], "Bearer upstream-secret");
    assert_eq!(seen.headers["x-extra-header"], "extra-value");
    assert_eq!(
        seen.headers["x-request-id"],
        response.headers()["x-request-id"]
    );
    let raw = String::from_utf8_lossy(&seen.body);
    assert!(!raw.contains(KEY));
}

#[tokio::test]
async fn stream_is_forwarded_byte_for_byte() {
    let h = start().await;
    let mut body = chat("mock-gpt");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["tools"] =
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]);
    for body in [body.clone(), {
        let mut plain = body.clone();
        plain.as_object_mut().unwrap().remove("tools");
        plain
    }] {
        let response = h.post_json("/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let via_gateway = response.bytes().await.unwrap();
        let direct = h.direct_bytes("/v1/chat/completions", &body).await;
        assert_eq!(via_gateway, direct);
        let text = String::from_utf8(via_gateway.to_vec()).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert!(text.contains("\"usage\""));
    }
}

#[tokio::test]
async fn tool_call_deltas_and_unknown_fields_survive() {
    let h = start().await;
    let mut body = chat("mock-gpt");
    body["stream"] = json!(true);
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather"}}]);
    let text = h
        .post_json("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#""tool_calls":[{"function":{"arguments":"","name":"get_weather"}"#));
    assert!(text.contains(r#""finish_reason":"tool_calls""#));

    body.as_object_mut().unwrap().remove("tools");
    let text = h
        .post_json("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#""x_mock_extra":{"seq":1}"#));
    assert!(text.contains(r#""logprobs":{"content":[{"bytes":[116,111,107,48,32]"#));
}

#[tokio::test]
async fn first_chunk_arrives_before_the_upstream_finishes() {
    let h = start().await;
    // The mock sends two frames and then nothing: only a gateway that forwards as it reads
    // can deliver them.
    let body = streamed_chat("mock-gpt", json!({"stall_after": 2}));
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("tok0") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("chunks arrive while the upstream is still open")
            .expect("stream not ended")
            .unwrap();
        received.extend_from_slice(&chunk);
    }
    assert_eq!(
        h.mock
            .stats
            .streams_completed
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn aliases_and_renamed_models_rewrite_only_the_model_field() {
    let h = start().await;
    let mut body = chat("renamed");
    body["logprobs"] = json!(true);
    body["metadata"] = json!({"model": "leave-me"});
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let seen = h.mock.stats.last_request().unwrap();
    let upstream: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(upstream["model"], "upstream-name");
    assert_eq!(upstream["metadata"]["model"], "leave-me");
    assert_eq!(upstream["logprobs"], true);

    let response = h
        .post_json("/v1/chat/completions", &chat("alias-gpt"))
        .await;
    assert_eq!(response.status(), 200);
    let seen = h.mock.stats.last_request().unwrap();
    let upstream: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(upstream["model"], "mock-gpt");
}

#[tokio::test]
async fn same_name_bodies_are_forwarded_verbatim() {
    let h = start().await;
    let raw = "{ \"model\" : \"mock-gpt\",\n \"messages\": [{\"role\":\"user\",\"content\":\"h\\u00e9\"}], \"zz\": 1.50 }";
    let response = h
        .client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.mock.stats.last_request().unwrap().body, raw.as_bytes());
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let h = start().await;
    let send_raw = |body: &'static str| {
        h.client
            .post(h.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let error = expect_error(send_raw("{\"model\": \"mock-gpt\", ").await.unwrap(), 400).await;
    assert_eq!(error["type"], "invalid_request_error");
    let error = expect_error(send_raw("").await.unwrap(), 400).await;
    assert!(error["message"].as_str().unwrap().contains("empty"));
    let error = expect_error(send_raw("{\"messages\": []}").await.unwrap(), 400).await;
    assert_eq!(error["param"], "model");
    let error = expect_error(send_raw("{\"model\": \"mock-gpt\"}").await.unwrap(), 400).await;
    assert_eq!(error["param"], "messages");
    let error = expect_error(
        h.post_json("/v1/chat/completions", &chat("no-such-model"))
            .await,
        404,
    )
    .await;
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(h.upstream_requests(), 0);
}

#[tokio::test]
async fn missing_or_wrong_keys_are_refused() {
    let h = start().await;
    let url = h.url("/v1/chat/completions");
    let none = h
        .client
        .post(&url)
        .json(&chat("mock-gpt"))
        .send()
        .await
        .unwrap();
    let error = expect_error(none, 401).await;
    assert_eq!(error["type"], "authentication_error");
    let wrong = h
        .client
        .post(&url)
        .bearer_auth("test-master-kez")
        .json(&chat("mock-gpt"))
        .send()
        .await
        .unwrap();
    let error = expect_error(wrong, 401).await;
    assert!(!error["message"].as_str().unwrap().contains("kez"));
    let models = h.client.get(h.url("/v1/models")).send().await.unwrap();
    expect_error(models, 401).await;
    assert_eq!(h.upstream_requests(), 0);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let h = start().await;
    let mut body = chat("mock-gpt");
    body["messages"][0]["content"] = json!("x".repeat(LIMIT as usize + 1));
    let error = expect_error(h.post_json("/v1/chat/completions", &body).await, 413).await;
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains(&LIMIT.to_string()));

    // Without a Content-Length the limit holds too (chunked upload).
    let chunks =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 8 * 1024])));
    let response = h
        .client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    expect_error(response, 413).await;
}

#[tokio::test]
async fn upstream_errors_pass_through_with_their_status() {
    let h = start().await;
    let mut body = chat("mock-gpt");
    body["mock"] = json!({"status": 429});
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 429);
    let value: serde_json::Value = response.json().await.unwrap();
    assert_eq!(value["error"]["type"], "mock_error");

    let response = h
        .post_json("/v1/chat/completions", &chat("failing-model"))
        .await;
    assert_eq!(response.status(), 503);
    let value: serde_json::Value = response.json().await.unwrap();
    assert_eq!(value["error"]["message"], "mock failure requested");
}

#[tokio::test]
async fn unreachable_upstream_is_503_and_slow_upstream_is_504() {
    let h = start().await;
    let error = expect_error(
        h.post_json("/v1/chat/completions", &chat("down-model"))
            .await,
        503,
    )
    .await;
    assert_eq!(error["code"], "upstream_unavailable");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("down/down-model could not connect"),
        "{message}"
    );
    assert!(message.contains("3 attempts"), "two retries: {message}");
    let error = expect_error(
        h.post_json("/v1/chat/completions", &chat("slow-model"))
            .await,
        504,
    )
    .await;
    assert_eq!(error["code"], "upstream_timeout");
}

#[tokio::test]
async fn falls_back_to_the_next_target_before_the_first_byte() {
    let h = start().await;
    for model in ["fallback-down", "fallback-failing"] {
        let response = h.post_json("/v1/chat/completions", &chat(model)).await;
        assert_eq!(response.status(), 200, "{model}");
        let value: serde_json::Value = response.json().await.unwrap();
        assert_eq!(value["model"], "mock-gpt");
    }
}

#[tokio::test]
async fn reset_mid_stream_ends_with_an_sse_error_event() {
    let h = start().await;
    // The delay lets the first frames leave the mock before it breaks the connection.
    let body = streamed_chat("mock-gpt", json!({"reset_after": 2, "chunk_delay_ms": 20}));
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the stream ends instead of hanging")
        .unwrap();
    assert!(text.contains("tok0"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let event: serde_json::Value =
        serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(event["error"]["code"], "upstream_unreachable");
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn stalled_stream_ends_with_a_timeout_event() {
    let h = start().await;
    let mut body = chat("stalling-model");
    body["stream"] = json!(true);
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the idle timeout ends the stream")
        .unwrap();
    assert!(text.contains(r#""code":"upstream_timeout""#), "{text}");
    // The upstream request is dropped with the stream.
    assert!(h.wait_streams_cancelled(1).await);
}

#[tokio::test]
async fn client_hang_up_cancels_the_upstream_stream() {
    let h = start().await;
    let body = streamed_chat("mock-gpt", json!({"stall_after": 2}));
    let response = h.post_json("/v1/chat/completions", &body).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream);
    let cancelled = h.wait_streams_cancelled(1).await;
    assert!(cancelled, "the upstream stream was not cancelled");
}

/// The provider's headers about itself and the gateway's key (organisation, its request id and
/// rate limits, cookies) never reach the client; the body's type and the gateway's own request
/// id do. JSON, streams and upstream errors alike.
#[tokio::test]
async fn upstream_headers_are_forwarded_by_an_allow_list() {
    let h = start().await;
    let answers = [
        h.post_json("/v1/chat/completions", &chat("mock-gpt")).await,
        h.post_json(
            "/v1/chat/completions",
            &streamed_chat("mock-gpt", json!({})),
        )
        .await,
        h.post_json(
            "/v1/chat/completions",
            &streamed_chat("mock-gpt", json!({"status": 400})),
        )
        .await,
    ];
    for response in answers {
        let headers = response.headers();
        for leaked in [
            "openai-organization",
            "openai-processing-ms",
            "set-cookie",
            "x-ratelimit-remaining-requests",
        ] {
            assert!(
                headers.get(leaked).is_none(),
                "{leaked} reached the client: {headers:?}"
            );
        }
        assert_ne!(headers["x-request-id"], "req_mock_upstream", "{headers:?}");
        assert!(headers.get("content-type").is_some(), "{headers:?}");
    }
}
