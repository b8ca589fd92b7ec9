//! /v1/embeddings and /v1/models.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn embeddings_are_forwarded() {
    let h = start().await;
    let response = h
        .post_json(
            "/v1/embeddings",
            &json!({"model": "mock-embed", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let value: serde_json::Value = response.json().await.unwrap();
    assert_eq!(value["data"].as_array().unwrap().len(), 2);
    assert_eq!(value["model"], "mock-embed");
    assert_eq!(h.mock.stats.last_request().unwrap().path, "/embeddings");
}

#[tokio::test]
async fn embeddings_need_model_and_input() {
    let h = start().await;
    let error = expect_error(
        h.post_json("/v1/embeddings", &json!({"input": "a"})).await,
        400,
    )
    .await;
    assert_eq!(error["param"], "model");
    let error = expect_error(
        h.post_json("/v1/embeddings", &json!({"model": "mock-embed"}))
            .await,
        400,
    )
    .await;
    assert_eq!(error["param"], "input");
    let error = expect_error(
        h.post_json("/v1/embeddings", &json!({"model": "nope", "input": "a"}))
            .await,
        404,
    )
    .await;
    assert_eq!(error["code"], "model_not_found");
}

#[tokio::test]
async fn models_lists_configured_names_and_aliases() {
    let h = start().await;
    let response = h
        .client
        .get(h.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let value: serde_json::Value = response.json().await.unwrap();
    assert_eq!(value["object"], "list");
    let ids: Vec<&str> = value["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for expected in [
        "mock-gpt",
        "alias-gpt",
        "renamed",
        "mock-whisper",
        "fallback-down",
    ] {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }

    let one = h
        .client
        .get(h.url("/v1/models/alias-gpt"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let value: serde_json::Value = one.json().await.unwrap();
    assert_eq!(value["id"], "alias-gpt");
    assert_eq!(value["object"], "model");

    let missing = h
        .client
        .get(h.url("/v1/models/nope"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    expect_error(missing, 404).await;
}

#[tokio::test]
async fn models_whose_provider_has_no_key_are_hidden_and_answer_503() {
    let mock = gateway::mock::MockServer::start().await.unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[auth]
master_keys = ["{KEY}"]
[database]
url = "sqlite::memory:"
[[providers]]
name = "openai"
base_url = "{}"
api_key = "${{UNSET_TEST_KEY_VARIABLE}}"
[[models]]
name = "gpt-4o"
targets = [{{ provider = "openai" }}]
"#,
        mock.base_url()
    );
    let config = gateway::config::Config::parse(&text, "test", &|_| None).unwrap();
    let gw = gateway::spawn(config).await.unwrap();
    let client = reqwest::Client::new();
    let models: serde_json::Value = client
        .get(format!("{}/v1/models", gw.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 0);
    let response = client
        .post(format!("{}/v1/chat/completions", gw.url()))
        .bearer_auth(KEY)
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 503).await;
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("UNSET_TEST_KEY_VARIABLE"));
    let ready = client
        .get(format!("{}/health/ready", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}
