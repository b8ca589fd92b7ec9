//! Health, request ids, routing of unknown paths, h2c, and graceful shutdown.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;

#[tokio::test]
async fn health_and_readiness() {
    let h = start().await;
    let health = h.client.get(h.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let value: serde_json::Value = health.json().await.unwrap();
    assert_eq!(value["status"], "ok");
    assert_eq!(value["version"], env!("CARGO_PKG_VERSION"));

    // Anyone sees the status; only an admin the providers and deployments behind it.
    let ready = h.client.get(h.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let value: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(value["status"], "ready");
    assert!(
        value.get("providers").is_none() && value.get("targets").is_none(),
        "{value}"
    );
    let ready = h
        .client
        .get(h.url("/health/ready"))
        .bearer_auth(common::KEY)
        .send()
        .await
        .unwrap();
    let value: serde_json::Value = ready.json().await.unwrap();
    assert!(value["providers"].as_array().unwrap().len() >= 2);
    assert!(value["targets"].is_array());
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let h = start().await;
    let given = h
        .client
        .get(h.url("/health"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "client-chosen-42");

    let made = h.client.get(h.url("/health")).send().await.unwrap();
    let made_id = made.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(made_id.starts_with("req_"));

    let error = h.client.get(h.url("/v1/nothing")).send().await.unwrap();
    assert!(error.headers().contains_key("x-request-id"));

    let unsafe_id = h
        .client
        .get(h.url("/health"))
        .header("x-request-id", "a b\"c")
        .send()
        .await
        .unwrap();
    assert_ne!(unsafe_id.headers()["x-request-id"], "a b\"c");
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let h = start().await;
    let error = expect_error(
        h.client.get(h.url("/v1/nothing")).send().await.unwrap(),
        404,
    )
    .await;
    assert_eq!(error["code"], "unknown_url");
    let wrong_method = h
        .client
        .get(h.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    expect_error(wrong_method, 405).await;
}

#[tokio::test]
async fn serves_http2_cleartext() {
    let h = start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut body = chat("mock-gpt");
    body["stream"] = json!(true);
    let response = client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish() {
    let Harness {
        mock,
        mut gateway,
        client,
    } = start().await;
    let url = format!("{}/v1/chat/completions", gateway.url());
    let body = streamed_chat("mock-gpt", json!({"chunks": 5, "chunk_delay_ms": 100}));
    let response = client
        .post(&url)
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut received = stream.next().await.unwrap().unwrap().to_vec();

    gateway.begin_shutdown();
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.expect("the stream is not cut by the shutdown"));
    }
    let text = String::from_utf8(received).unwrap();
    assert!(text.contains("tok4"));
    assert!(text.ends_with("data: [DONE]\n\n"));
    tokio::time::timeout(Duration::from_secs(10), gateway.wait())
        .await
        .expect("drain finishes")
        .unwrap();
    // After the drain nothing listens.
    let fresh = reqwest::Client::new();
    assert!(fresh.post(&url).json(&body).send().await.is_err());
    mock.stop().await;
}

/// Streams still open when the drain runs out are ended by the gateway, not left to die with the
/// process: a flowing one gets a closing error event, one waiting on a silent upstream has its
/// connection closed, and both are metered as interrupted before the shutdown returns.
#[tokio::test]
async fn streams_that_outlive_the_drain_are_ended_and_metered() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("gw.db").display());
    let Harness {
        mut gateway,
        client,
        mock: _mock,
    } = common::start_config(
        common::config::TestConfig::new()
            .database(&db)
            .server(|s| s.drain_timeout = Duration::from_millis(500)),
    )
    .await;
    let url = format!("{}/v1/chat/completions", gateway.url());
    let open = |mock: serde_json::Value| {
        let request = client
            .post(&url)
            .bearer_auth(KEY)
            .json(&streamed_chat("mock-gpt", mock));
        async move {
            let mut stream = request.send().await.unwrap().bytes_stream();
            let first = stream.next().await.unwrap().unwrap();
            (stream, String::from_utf8_lossy(&first).into_owned())
        }
    };
    let (flowing, flowing_text) = open(json!({"chunks": 500, "chunk_delay_ms": 50})).await;
    let (silent, silent_text) = open(json!({"chunks": 5, "stall_after": 2})).await;
    gateway.begin_shutdown();
    let (flowing_text, silent_text) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(
            read_rest(flowing, flowing_text),
            read_rest(silent, silent_text)
        )
    })
    .await
    .expect("both streams end soon after the drain runs out");
    assert!(
        flowing_text.contains("gateway_shutting_down"),
        "{flowing_text}"
    );
    assert!(!flowing_text.contains("tok499"), "{flowing_text}");
    assert!(!silent_text.contains("[DONE]"), "{silent_text}");
    tokio::time::timeout(Duration::from_secs(10), gateway.wait())
        .await
        .expect("the shutdown finishes")
        .unwrap();
    // Both were metered before the gateway returned.
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let outcomes: Vec<String> = sqlx::query_scalar("SELECT outcome FROM usage_record ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(outcomes, ["interrupted", "interrupted"], "{outcomes:?}");
}

/// The rest of a stream, after `text`, until it ends or breaks.
async fn read_rest(
    mut stream: impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
    mut text: String,
) -> String {
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}
