//! Shared test set-up: the mock provider and the gateway, each in-process on port 0.
#![allow(dead_code)]

use std::time::Duration;

use gateway::mock::MockServer;
use gateway::GatewayHandle;

pub mod config;
pub mod db;
pub mod jwks;
pub mod limits;
pub mod rest;
pub mod smtp;

pub const KEY: &str = "test-master-key";
pub const JWT_SECRET: &str = "test-jwt-secret-at-least-32-bytes-long";
/// The request limit the test gateways run with, small so 413s are cheap to provoke.
pub const LIMIT: u64 = 64 * 1024;

pub struct Harness {
    pub mock: MockServer,
    pub gateway: GatewayHandle,
    pub client: reqwest::Client,
}

/// A port nothing listens on: bound, then released.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

pub async fn config_text(mock_url: &str, extra: &str) -> String {
    config_text_on(mock_url, "sqlite::memory:", extra).await
}

/// The test config on the database at `db_url`.
pub async fn config_text_on(mock_url: &str, db_url: &str, extra: &str) -> String {
    let down = closed_port().await;
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_request_bytes = {LIMIT}
drain_timeout_secs = 10
data_dir = "target/test-data"

[auth]
master_keys = ["{KEY}"]
jwt_secret = "{JWT_SECRET}"
allow_registration = true

[database]
url = "{db_url}"

[routing]
retry_backoff_ms = 5
retry_max_backoff_ms = 20

[[providers]]
name = "mock"
base_url = "{mock_url}"
api_key = "upstream-secret"
headers = {{ x-extra-header = "extra-value" }}
timeout_ms = 5000
idle_timeout_ms = 2000

[[providers]]
name = "slow"
base_url = "{mock_url}"
timeout_ms = 300
headers = {{ x-mock-latency-ms = "5000" }}

[[providers]]
name = "stalling"
base_url = "{mock_url}"
idle_timeout_ms = 300
headers = {{ x-mock-stall-after = "2" }}

[[providers]]
name = "failing"
base_url = "{mock_url}"
headers = {{ x-mock-status = "503" }}

[[providers]]
name = "down"
base_url = "http://127.0.0.1:{down}/v1"
connect_timeout_ms = 1000

[[models]]
name = "mock-gpt"
aliases = ["alias-gpt"]
targets = [{{ provider = "mock" }}]

[[models]]
name = "renamed"
targets = [{{ provider = "mock", model = "upstream-name" }}]

[[models]]
name = "mock-embed"
targets = [{{ provider = "mock" }}]

[[models]]
name = "mock-whisper"
aliases = ["alias-whisper"]
targets = [{{ provider = "mock", model = "upstream-whisper" }}]

[[models]]
name = "slow-model"
targets = [{{ provider = "slow" }}]

[[models]]
name = "stalling-model"
targets = [{{ provider = "stalling" }}]

[[models]]
name = "down-model"
targets = [{{ provider = "down" }}]

[[models]]
name = "failing-model"
targets = [{{ provider = "failing" }}]

[[models]]
name = "fallback-down"
strategy = "priority"
targets = [{{ provider = "down" }}, {{ provider = "mock", model = "mock-gpt" }}]

[[models]]
name = "fallback-failing"
strategy = "priority"
targets = [{{ provider = "failing" }}, {{ provider = "mock", model = "mock-gpt" }}]
{extra}
"#
    )
}

/// Anthropic and Gemini providers served by the mock's recorded answers, and one model per
/// recorded answer (the upstream model name picks it).
pub const TRANSLATED_PROVIDERS: &str = r#"
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "http://{MOCK_ADDR}/v1"
api_key = "anthropic-secret"

[[providers]]
name = "claude-stalling"
kind = "anthropic"
base_url = "http://{MOCK_ADDR}/v1"
api_key = "anthropic-secret"
idle_timeout_ms = 300
headers = { x-mock-stall-after = "4" }

[[providers]]
name = "claude-limited"
kind = "anthropic"
base_url = "http://{MOCK_ADDR}/v1"
headers = { x-mock-status = "429", x-mock-retry-after = "40" }

[[providers]]
name = "google"
kind = "gemini"
base_url = "http://{MOCK_ADDR}/v1beta"
api_key = "google-secret"

[[models]]
name = "claude-text"
targets = [{ provider = "claude", model = "text" }]

[[models]]
name = "claude-tools"
targets = [{ provider = "claude", model = "tool_use" }]

[[models]]
name = "claude-long"
targets = [{ provider = "claude", model = "max_tokens" }]

[[models]]
name = "claude-broken"
targets = [{ provider = "claude", model = "error_mid_stream" }]

[[models]]
name = "claude-overloaded"
targets = [{ provider = "claude", model = "overloaded" }]

[[models]]
name = "claude-invalid"
targets = [{ provider = "claude", model = "invalid_request" }]

[[models]]
name = "claude-stalling"
targets = [{ provider = "claude-stalling", model = "text" }]

[[models]]
name = "claude-limited"
targets = [{ provider = "claude-limited", model = "text" }]

[[models]]
name = "gemini-text"
targets = [{ provider = "google", model = "text" }]

[[models]]
name = "gemini-tools"
targets = [{ provider = "google", model = "function_call" }]

[[models]]
name = "gemini-thinking"
targets = [{ provider = "google", model = "thinking" }]

[[models]]
name = "gemini-safety"
targets = [{ provider = "google", model = "safety" }]

[[models]]
name = "gemini-broken"
targets = [{ provider = "google", model = "error_mid_stream" }]

[[models]]
name = "gemini-invalid"
targets = [{ provider = "google", model = "invalid_argument" }]
"#;

pub async fn start() -> Harness {
    start_with("").await
}

pub async fn start_with(extra: &str) -> Harness {
    start_on("sqlite::memory:", extra).await
}

/// A gateway on the database at `db_url` (see [`db::databases`]).
pub async fn start_on(db_url: &str, extra: &str) -> Harness {
    start_full(db_url, extra, Vec::new()).await
}

/// The test gateway with `extra` config and `plugins` after the configured ones.
pub async fn start_with_plugins(
    extra: &str,
    plugins: &[std::sync::Arc<dyn gateway::plugins::Plugin>],
) -> Harness {
    start_full("sqlite::memory:", extra, plugins.to_vec()).await
}

async fn start_full(
    db_url: &str,
    extra: &str,
    plugins: Vec<std::sync::Arc<dyn gateway::plugins::Plugin>>,
) -> Harness {
    let config = config::TestConfig::new().database(db_url).sections(extra);
    start_config_with(config, plugins).await
}

/// The test gateway on `config`, pointed at a mock started for it.
pub async fn start_config(config: config::TestConfig) -> Harness {
    start_config_with(config, Vec::new()).await
}

async fn start_config_with(
    config: config::TestConfig,
    plugins: Vec<std::sync::Arc<dyn gateway::plugins::Plugin>>,
) -> Harness {
    let mock = MockServer::start().await.expect("mock starts");
    let config = config
        .mock(&mock.base_url())
        .mock_addr(&mock.addr.to_string())
        .build()
        .await;
    let gateway = gateway::spawn_with(config, plugins)
        .await
        .expect("gateway starts");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    Harness {
        mock,
        gateway,
        client,
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url())
    }

    pub fn mock_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.mock.addr)
    }

    /// POST JSON to the gateway with the master key.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .expect("request reaches the gateway")
    }

    /// Waits (bounded) until the mock has seen `n` streams cancelled before their end.
    pub async fn wait_streams_cancelled(&self, n: u64) -> bool {
        self.mock
            .stats
            .wait_until(Duration::from_secs(5), |s| {
                s.streams_cancelled
                    .load(std::sync::atomic::Ordering::SeqCst)
                    == n
            })
            .await
    }

    /// How many requests reached the mock provider.
    pub fn upstream_requests(&self) -> u64 {
        self.mock
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// POST JSON straight to the mock, bypassing the gateway: the reference answer.
    pub async fn direct_bytes(&self, path: &str, body: &serde_json::Value) -> bytes::Bytes {
        self.client
            .post(self.mock_url(path))
            .json(body)
            .send()
            .await
            .expect("request reaches the mock")
            .bytes()
            .await
            .expect("mock body")
    }
}

/// Asserts an OpenAI-shaped error with this status, returning its `error` object.
pub async fn expect_error(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let body: serde_json::Value = response.json().await.expect("error body is JSON");
    let error = body["error"].clone();
    assert!(error["message"].is_string(), "no message in {body}");
    assert!(error["type"].is_string(), "no type in {body}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{body}"
    );
    error
}

/// The status of a mock-gpt chat completion sent with `header` (name, value) as its credential.
pub async fn chat_status_with(h: &Harness, header: (&str, &str)) -> u16 {
    h.client
        .post(h.url("/v1/chat/completions"))
        .header(header.0, header.1)
        .json(&chat("mock-gpt"))
        .send()
        .await
        .expect("request reaches the gateway")
        .status()
        .as_u16()
}

/// The status of a mock-gpt chat completion with `token` as its bearer credential.
pub async fn chat_status(h: &Harness, token: &str) -> u16 {
    chat_status_with(h, ("authorization", &format!("Bearer {token}"))).await
}

/// The gateway's `/metrics` text (served at `base`, e.g. `http://127.0.0.1:PORT`).
pub async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics text")
}

/// `TEST_REDIS_URL`, or None after printing the "skipped" line.
pub fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: no Redis at TEST_REDIS_URL (unset)");
            None
        }
    }
}

pub fn chat(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
}

/// A streamed chat request carrying instructions for the mock provider.
pub fn streamed_chat(model: &str, mock: serde_json::Value) -> serde_json::Value {
    let mut body = chat(model);
    body["stream"] = serde_json::Value::Bool(true);
    body["mock"] = mock;
    body
}

/// The events of an SSE body: each `data:` payload as JSON, `[DONE]` as the string "[DONE]".
pub fn sse_events(text: &str) -> Vec<serde_json::Value> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| {
            if data == "[DONE]" {
                serde_json::Value::String(data.into())
            } else {
                serde_json::from_str(data).unwrap_or_else(|e| panic!("bad event {data}: {e}"))
            }
        })
        .collect()
}

/// The text content of a stream of chat chunks, concatenated.
pub fn streamed_text(events: &[serde_json::Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect()
}
