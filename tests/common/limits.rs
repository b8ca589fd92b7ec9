//! Set-up for the limits tests: a gateway with a last plugin that counts completions, so a test
//! can wait until a request has been settled (the limits plugin's `on_complete` runs before it)
//! instead of sleeping; and helpers to register users and keys through REST.

pub use super::rest::{reply, Reply};
use std::sync::Arc;
use std::time::Duration;

use gateway::mock::MockServer;
use gateway::plugins::{Completion, Plugin, RequestCtx};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{Harness, KEY};

/// Counts `on_complete` calls (it runs after every configured plugin's).
pub struct Completions(watch::Sender<u64>);

impl Plugin for Completions {
    fn name(&self) -> &'static str {
        "test-completions"
    }

    fn on_complete(&self, _ctx: &RequestCtx, _completion: &Completion) {
        self.0.send_modify(|n| *n += 1);
    }
}

pub struct LimitsHarness {
    pub h: Harness,
    completions: watch::Receiver<u64>,
}

impl std::ops::Deref for LimitsHarness {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

/// A gateway on `db_url` with `extra` config (`{MOCK_ADDR}` is replaced by the mock's address).
pub async fn start(db_url: &str, extra: &str) -> LimitsHarness {
    let mock = MockServer::start().await.expect("mock starts");
    let config = super::config::TestConfig::new()
        .mock(&mock.base_url())
        .database(db_url)
        .sections(extra)
        .mock_addr(&mock.addr.to_string())
        .build()
        .await;
    let (tx, rx) = watch::channel(0);
    let plugin: Arc<dyn Plugin> = Arc::new(Completions(tx));
    let gateway = gateway::spawn_with(config, vec![plugin])
        .await
        .expect("gateway starts");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(200)
        .build()
        .unwrap();
    LimitsHarness {
        h: Harness {
            mock,
            gateway,
            client,
        },
        completions: rx,
    }
}

impl LimitsHarness {
    /// Requests completed (and settled) so far.
    pub fn completed(&self) -> u64 {
        *self.completions.borrow()
    }

    /// Waits (bounded) until `n` requests have completed.
    pub async fn wait_completed(&self, n: u64) {
        let mut rx = self.completions.clone();
        tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} completions expected, {} seen", self.completed()))
            .expect("gateway alive");
    }

    /// Sends a request and waits until the gateway has settled it.
    pub async fn settled(&self, request: reqwest::RequestBuilder) -> Reply {
        let before = self.completed();
        let reply = reply(request.send().await.expect("request reaches the gateway")).await;
        self.wait_completed(before + 1).await;
        reply
    }

    /// A chat completion with `token` and this body.
    pub fn chat(&self, token: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(token)
            .json(body)
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        reply(request.send().await.expect("request reaches the gateway")).await
    }

    /// Registers a user: (user id, access token).
    pub async fn register(&self, email: &str) -> (String, String) {
        let r = self
            .api(
                reqwest::Method::POST,
                "/api/v1/auth/register",
                None,
                Some(&json!({"email": email, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(r.status, 201, "registering {email}: {}", r.text);
        (
            r.body["user"]["id"].as_str().unwrap().to_string(),
            r.body["access_token"].as_str().unwrap().to_string(),
        )
    }

    /// Creates an API key for the user of `token`: (key id, key).
    pub async fn create_key(&self, token: &str) -> (String, String) {
        let r = self
            .api(
                reqwest::Method::POST,
                "/api/v1/keys",
                Some(token),
                Some(&json!({"name": "limits"})),
            )
            .await;
        assert_eq!(r.status, 201, "creating a key: {}", r.text);
        (
            r.body["id"].as_str().unwrap().to_string(),
            r.body["key"].as_str().unwrap().to_string(),
        )
    }

    pub async fn admin_put(&self, path: &str, body: &Value) -> Reply {
        self.api(reqwest::Method::PUT, path, Some(KEY), Some(body))
            .await
    }
}

/// Asserts an OpenAI-shaped 429 of this type and code, with a Retry-After of at least 1 s.
pub fn assert_limited(r: &Reply, kind: &str, code: &str) -> u64 {
    assert_eq!(r.status, 429, "expected a 429: {}", r.text);
    let error = &r.body["error"];
    assert_eq!(error["type"], kind, "{}", r.text);
    assert_eq!(error["code"], code, "{}", r.text);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(error.get("param").is_some(), "{}", r.text);
    let retry = r
        .header_u64("retry-after")
        .expect("a 429 has a whole-seconds Retry-After");
    assert!(retry >= 1, "Retry-After {retry}");
    assert!(r.header_u64("retry-after-ms").is_some());
    retry
}
