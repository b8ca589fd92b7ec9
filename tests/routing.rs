//! Routing through real HTTP: weights and strategies, retries with back-off, Retry-After, the
//! circuit breaker, per-target concurrency limits and timeouts, fallback models. Each test runs
//! its own gateway in front of several mock providers, one per deployment, and reads what
//! happened from each mock's request count and from `/health/ready`.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{chat, closed_port, expect_error, sse_events, streamed_chat, streamed_text, KEY};
use futures_util::StreamExt;
use gateway::config::Config;
use gateway::mock::MockServer;
use gateway::GatewayHandle;
use serde_json::{json, Value};

/// Small back-offs so retries cost milliseconds; each test adds its own routing settings.
const FAST: &str = "retry_backoff_ms = 5\nretry_max_backoff_ms = 20\n";

/// A gateway in front of `mocks` fresh mock providers.
struct Rig {
    mocks: Vec<MockServer>,
    gateway: GatewayHandle,
    client: reqwest::Client,
}

/// `routing` is the body of the `[routing]` table; `tables` gets each mock's base URL and
/// returns the `[[providers]]` and `[[models]]` tables.
async fn rig(mocks: usize, routing: &str, tables: impl FnOnce(&[String]) -> String) -> Rig {
    let mut started = Vec::new();
    for _ in 0..mocks {
        started.push(MockServer::start().await.expect("mock starts"));
    }
    let urls: Vec<String> = started.iter().map(MockServer::base_url).collect();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "target/test-data"

[auth]
master_keys = ["{KEY}"]

[database]
url = "sqlite::memory:"

[routing]
{routing}

{tables}
"#,
        tables = tables(&urls)
    );
    let config = Config::parse(&text, "test", &|_| None)
        .unwrap_or_else(|e| panic!("test config is valid: {e}\n{text}"));
    let gateway = gateway::spawn(config).await.expect("gateway starts");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    Rig {
        mocks: started,
        gateway,
        client,
    }
}

/// A `[[providers]]` table; `extra` adds keys such as `headers = {...}` or `timeout_ms = 200`.
fn provider(name: &str, base_url: &str, extra: &str) -> String {
    format!("[[providers]]\nname = \"{name}\"\nbase_url = \"{base_url}\"\n{extra}\n\n")
}

/// A `[[models]]` table; `extra` adds keys such as `strategy` or `fallbacks`.
fn model(name: &str, extra: &str, targets: &str) -> String {
    format!("[[models]]\nname = \"{name}\"\n{extra}\ntargets = [{targets}]\n\n")
}

/// A provider base URL nothing listens on.
async fn dead_url() -> String {
    format!("http://127.0.0.1:{}/v1", closed_port().await)
}

impl Rig {
    /// How many requests mock `i` has seen.
    fn requests(&self, i: usize) -> u64 {
        self.mocks[i].stats.requests.load(Ordering::SeqCst)
    }

    async fn post(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.gateway.url()))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .expect("request reaches the gateway")
    }

    /// Posts a chat request and asserts a 200, returning the answer.
    async fn ok(&self, body: &Value) -> Value {
        let response = self.post(body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// One target's entry in `/health/ready`.
    async fn target(&self, model: &str, provider: &str) -> Value {
        let health: Value = self
            .client
            .get(format!("{}/health/ready", self.gateway.url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["targets"]
            .as_array()
            .expect("targets listed")
            .iter()
            .find(|t| t["model"] == model && t["provider"] == provider)
            .cloned()
            .unwrap_or_else(|| panic!("no target {provider} of {model} in {health}"))
    }
}

fn message(error: &Value) -> &str {
    error["message"].as_str().expect("message is a string")
}

/// The body of a streamed answer, bounded in time.
async fn stream_text(response: reqwest::Response) -> String {
    tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the stream ends instead of hanging")
        .unwrap()
}

#[tokio::test]
async fn weights_split_traffic_in_proportion() {
    let rig = rig(2, FAST, |u| {
        provider("heavy", &u[0], "")
            + &provider("light", &u[1], "")
            + &model(
                "weighted",
                "",
                r#"{ provider = "heavy", weight = 3 }, { provider = "light", weight = 1 }"#,
            )
    })
    .await;
    let statuses: Vec<u16> = futures_util::stream::iter(0..400)
        .map(|_| async { rig.post(&chat("weighted")).await.status().as_u16() })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (heavy, light) = (rig.requests(0), rig.requests(1));
    assert_eq!(
        heavy + light,
        400,
        "one upstream request per client request"
    );
    let share = heavy as f64 / 400.0;
    assert!(
        (0.65..=0.85).contains(&share),
        "weight 3 of 4 should get about 75%, got {heavy} of 400"
    );
}

#[tokio::test]
async fn priority_uses_the_first_target_while_it_is_healthy() {
    let rig = rig(2, FAST, |u| {
        provider("first", &u[0], "")
            + &provider("second", &u[1], "")
            + &model(
                "ordered",
                "strategy = \"priority\"",
                r#"{ provider = "first" }, { provider = "second" }"#,
            )
    })
    .await;
    for _ in 0..20 {
        rig.ok(&chat("ordered")).await;
    }
    assert_eq!((rig.requests(0), rig.requests(1)), (20, 0));
}

#[tokio::test]
async fn least_busy_avoids_the_target_with_a_request_in_flight() {
    let rig = rig(2, FAST, |u| {
        provider("a", &u[0], "")
            + &provider("b", &u[1], "")
            + &model(
                "spread",
                "strategy = \"least_busy\"",
                r#"{ provider = "a" }, { provider = "b" }"#,
            )
    })
    .await;
    // A stream that stalls keeps one target busy for as long as the client holds it.
    let held = rig
        .post(&streamed_chat("spread", json!({"stall_after": 2})))
        .await;
    assert_eq!(held.status(), 200);
    let busy = if rig.requests(0) == 1 { 0 } else { 1 };
    assert_eq!(rig.requests(busy), 1);
    for _ in 0..10 {
        rig.ok(&chat("spread")).await;
    }
    assert_eq!(rig.requests(busy), 1, "the busy target got nothing more");
    assert_eq!(rig.requests(1 - busy), 10);
    drop(held);
}

#[tokio::test]
async fn latency_strategy_prefers_the_faster_target() {
    let rig = rig(2, FAST, |u| {
        provider("slow", &u[0], "headers = { x-mock-latency-ms = \"300\" }")
            + &provider("fast", &u[1], "")
            + &model(
                "quick",
                "strategy = \"latency\"",
                r#"{ provider = "slow" }, { provider = "fast" }"#,
            )
    })
    .await;
    // Unmeasured targets come first, in the order written: one request each, then the
    // measured times decide.
    for _ in 0..10 {
        rig.ok(&chat("quick")).await;
    }
    assert_eq!((rig.requests(0), rig.requests(1)), (1, 9));
}

#[tokio::test]
async fn a_dead_deployment_is_taken_out_of_rotation() {
    let dead = dead_url().await;
    let routing = format!("{FAST}retries = 2\nfailure_threshold = 3\ncooldown_ms = 60000\n");
    let rig = rig(1, &routing, |u| {
        provider("dead", &dead, "connect_timeout_ms = 1000")
            + &provider("live", &u[0], "")
            + &model(
                "pair",
                "",
                r#"{ provider = "dead" }, { provider = "live" }"#,
            )
    })
    .await;
    // Weighted 1:1: the dead target comes first for about half the requests; the first time
    // it does, its three attempts (one try, two retries) reach the threshold.
    for _ in 0..30 {
        rig.ok(&chat("pair")).await;
    }
    assert_eq!(rig.requests(0), 30, "the live target served every request");
    let dead_state = rig.target("pair", "dead").await;
    assert_eq!(dead_state["state"], "open", "{dead_state}");
    assert_eq!(dead_state["consecutive_failures"], 3, "{dead_state}");
    assert!(
        dead_state["last_error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{dead_state}"
    );
    assert!(dead_state["retry_in_ms"].as_u64().unwrap() > 30_000);
    assert_eq!(rig.target("pair", "live").await["state"], "closed");

    // Out of rotation: later requests never try it, so its failure count stays put.
    let started = Instant::now();
    for _ in 0..20 {
        rig.ok(&chat("pair")).await;
    }
    assert_eq!(rig.requests(0), 50);
    let dead_state = rig.target("pair", "dead").await;
    assert_eq!(dead_state["state"], "open", "{dead_state}");
    assert_eq!(
        dead_state["consecutive_failures"], 3,
        "no new attempt: {dead_state}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_deployment_stalling_before_headers_is_skipped_after_its_timeout() {
    let routing = format!("{FAST}retries = 1\nfailure_threshold = 2\ncooldown_ms = 60000\n");
    let rig = rig(2, &routing, |u| {
        provider(
            "stall",
            &u[0],
            "headers = { x-mock-latency-ms = \"10000\" }",
        ) + &provider("healthy", &u[1], "")
            + &model(
                "guarded",
                "strategy = \"priority\"",
                r#"{ provider = "stall", timeout_ms = 200 }, { provider = "healthy" }"#,
            )
    })
    .await;
    let started = Instant::now();
    rig.ok(&chat("guarded")).await;
    let first = started.elapsed();
    // Two attempts of 200 ms on the staller, then the healthy target: far below its 10 s.
    assert!(first >= Duration::from_millis(400), "{first:?}");
    assert!(first < Duration::from_secs(3), "{first:?}");
    assert_eq!((rig.requests(0), rig.requests(1)), (2, 1));
    let stall = rig.target("guarded", "stall").await;
    assert_eq!(stall["state"], "open", "{stall}");
    assert!(
        stall["last_error"]
            .as_str()
            .unwrap()
            .contains("no response headers within 200 ms"),
        "{stall}"
    );

    // Out of rotation now: straight to the healthy target.
    let started = Instant::now();
    for _ in 0..5 {
        rig.ok(&chat("guarded")).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((rig.requests(0), rig.requests(1)), (2, 6));
}

#[tokio::test]
async fn a_429_with_retry_after_cools_the_target_down_for_that_long() {
    let routing = format!("{FAST}retries = 2\n");
    let rig = rig(2, &routing, |u| {
        provider(
            "limited",
            &u[0],
            "headers = { x-mock-status = \"429\", x-mock-retry-after = \"30\" }",
        ) + &provider("spare", &u[1], "")
            + &model(
                "storm",
                "strategy = \"priority\"",
                r#"{ provider = "limited" }, { provider = "spare" }"#,
            )
    })
    .await;
    let started = Instant::now();
    for _ in 0..10 {
        rig.ok(&chat("storm")).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no waiting for Retry-After while another target remains: {:?}",
        started.elapsed()
    );
    assert_eq!(rig.requests(0), 1, "one 429, then cooled down");
    assert_eq!(rig.requests(1), 10);
    let limited = rig.target("storm", "limited").await;
    assert_eq!(limited["state"], "open", "{limited}");
    assert!(
        limited["retry_in_ms"].as_u64().unwrap() > 20_000,
        "{limited}"
    );
    assert_eq!(limited["consecutive_failures"], 1, "{limited}");
}

#[tokio::test]
async fn a_retry_after_moves_on_to_the_next_target_without_waiting() {
    let routing = format!("{FAST}retries = 2\n");
    let rig = rig(2, &routing, |u| {
        provider(
            "limited",
            &u[0],
            "headers = { x-mock-status = \"429\", x-mock-retry-after = \"1\" }",
        ) + &provider("spare", &u[1], "")
            + &model(
                "hurry",
                "strategy = \"priority\"",
                r#"{ provider = "limited" }, { provider = "spare" }"#,
            )
    })
    .await;
    // A Retry-After short enough to wait for within the budget: still no wait and no retry
    // on that target while another one remains.
    let started = Instant::now();
    rig.ok(&chat("hurry")).await;
    let elapsed = started.elapsed();
    assert_eq!((rig.requests(0), rig.requests(1)), (1, 1));
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
}

#[tokio::test]
async fn the_only_target_is_retried_after_its_retry_after() {
    let routing = format!("{FAST}retries = 1\n");
    let rig = rig(1, &routing, |u| {
        provider(
            "limited",
            &u[0],
            "headers = { x-mock-status = \"429\", x-mock-retry-after = \"1\" }",
        ) + &model("alone", "", r#"{ provider = "limited" }"#)
    })
    .await;
    let started = Instant::now();
    let response = rig.post(&chat("alone")).await;
    let elapsed = started.elapsed();
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "the upstream's Retry-After is passed on"
    );
    let error = expect_error(response, 429).await;
    assert_eq!(error["type"], "mock_error", "the upstream's own answer");
    assert_eq!(rig.requests(0), 2, "one try and one retry");
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited for Retry-After: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn server_errors_are_retried_with_back_off() {
    // Back-off 100 ms doubling: waits of 50..100 ms then 100..200 ms (equal jitter).
    let routing = "retries = 2\nretry_backoff_ms = 100\nretry_max_backoff_ms = 1000\n";
    let rig = rig(1, routing, |u| {
        provider("failing", &u[0], "headers = { x-mock-status = \"503\" }")
            + &model("flaky", "", r#"{ provider = "failing" }"#)
    })
    .await;
    let started = Instant::now();
    let response = rig.post(&chat("flaky")).await;
    let elapsed = started.elapsed();
    let error = expect_error(response, 503).await;
    assert_eq!(message(&error), "mock failure requested");
    assert_eq!(rig.requests(0), 3, "one try and two retries");
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let failing = rig.target("flaky", "failing").await;
    assert_eq!(failing["consecutive_failures"], 3, "{failing}");
    assert_eq!(failing["state"], "closed", "below the default threshold");
}

#[tokio::test]
async fn no_retry_once_a_stream_has_started() {
    let rig = rig(2, FAST, |u| {
        provider(
            "resetting",
            &u[0],
            "headers = { x-mock-reset-after = \"2\", x-mock-chunk-delay-ms = \"20\" }",
        ) + &provider("healthy", &u[1], "")
            + &model(
                "fragile",
                "strategy = \"priority\"",
                r#"{ provider = "resetting" }, { provider = "healthy" }"#,
            )
    })
    .await;
    let response = rig.post(&streamed_chat("fragile", json!({}))).await;
    assert_eq!(response.status(), 200);
    let text = stream_text(response).await;
    let events = sse_events(&text);
    assert_eq!(streamed_text(&events), "tok0 ", "{text}");
    let last = events.last().unwrap();
    assert_eq!(last["error"]["code"], "upstream_unreachable", "{text}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(rig.requests(0), 1);
    assert_eq!(rig.requests(1), 0, "no retry after bytes were sent");
    let resetting = rig.target("fragile", "resetting").await;
    assert!(
        resetting["consecutive_failures"].as_u64().unwrap() >= 1,
        "the broken stream counts against the target: {resetting}"
    );
}

#[tokio::test]
async fn all_targets_down_is_503_and_all_timing_out_is_504() {
    let (down1, down2) = (dead_url().await, dead_url().await);
    let routing = format!("{FAST}retries = 1\n");
    let rig = rig(2, &routing, |u| {
        provider("down1", &down1, "connect_timeout_ms = 1000")
            + &provider("down2", &down2, "connect_timeout_ms = 1000")
            + &provider("slow1", &u[0], "headers = { x-mock-latency-ms = \"10000\" }")
            + &provider("slow2", &u[1], "headers = { x-mock-latency-ms = \"10000\" }")
            + &model(
                "nowhere",
                "",
                r#"{ provider = "down1" }, { provider = "down2" }"#,
            )
            + &model(
                "sluggish",
                "",
                r#"{ provider = "slow1", timeout_ms = 200 }, { provider = "slow2", timeout_ms = 200 }"#,
            )
    })
    .await;
    let error = expect_error(rig.post(&chat("nowhere")).await, 503).await;
    assert_eq!(error["code"], "upstream_unavailable");
    let text = message(&error);
    for label in [
        "down1/nowhere could not connect",
        "down2/nowhere could not connect",
    ] {
        assert!(text.contains(label), "{text}");
    }
    assert_eq!(text.matches("(2 attempts)").count(), 2, "{text}");

    let started = Instant::now();
    let error = expect_error(rig.post(&chat("sluggish")).await, 504).await;
    assert_eq!(error["code"], "upstream_timeout");
    let text = message(&error);
    for label in [
        "slow1/sluggish sent no response",
        "slow2/sluggish sent no response",
    ] {
        assert!(text.contains(label), "{text}");
    }
    assert_eq!((rig.requests(0), rig.requests(1)), (2, 2));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_fallback_model_serves_when_every_target_failed() {
    let dead = dead_url().await;
    let routing = format!("{FAST}retries = 1\n");
    let rig = rig(1, &routing, |u| {
        provider("dead", &dead, "connect_timeout_ms = 1000")
            + &provider("backup", &u[0], "")
            + &model(
                "primary",
                "fallbacks = [\"secondary\"]",
                r#"{ provider = "dead" }"#,
            )
            + &model(
                "secondary",
                "",
                r#"{ provider = "backup", model = "backup-model" }"#,
            )
    })
    .await;
    let answer = rig.ok(&chat("primary")).await;
    assert_eq!(answer["model"], "backup-model");
    assert_eq!(rig.requests(0), 1);
    let seen = rig.mocks[0].stats.last_request().unwrap();
    let upstream: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        upstream["model"], "backup-model",
        "renamed for the fallback"
    );
    let dead_state = rig.target("primary", "dead").await;
    assert_eq!(dead_state["consecutive_failures"], 2, "{dead_state}");
}

#[tokio::test]
async fn the_breaker_opens_refuses_then_probes_and_closes() {
    // The brief suggested 300 ms; 500 leaves room for the checks made during the cool-down
    // on a busy machine (a late check would become the probe and fail the test).
    let cooldown = Duration::from_millis(500);
    let routing = format!(
        "{FAST}retries = 0\nfailure_threshold = 2\ncooldown_ms = {}\n",
        cooldown.as_millis()
    );
    let rig = rig(1, &routing, |u| {
        provider("m", &u[0], "") + &model("fickle", "", r#"{ provider = "m" }"#)
    })
    .await;
    let mut failing = chat("fickle");
    failing["mock"] = json!({"status": 503});
    for _ in 0..2 {
        let error = expect_error(rig.post(&failing).await, 503).await;
        assert_eq!(message(&error), "mock failure requested");
    }
    assert_eq!(rig.requests(0), 2);
    let state = rig.target("fickle", "m").await;
    assert_eq!(state["state"], "open", "{state}");
    assert_eq!(state["consecutive_failures"], 2, "{state}");

    // During the cool-down: refused at once, the mock never sees it.
    let started = Instant::now();
    let error = expect_error(rig.post(&chat("fickle")).await, 503).await;
    assert_eq!(error["code"], "upstream_unavailable");
    assert!(message(&error).contains("out of rotation"), "{error}");
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(rig.requests(0), 2);

    // After the configured cool-down the next request is the probe. The cool-down is passed
    // on tokio's clock (paused, moved on, resumed: this test's runtime runs the gateway too),
    // not waited out.
    tokio::time::pause();
    tokio::time::advance(cooldown + Duration::from_millis(100)).await;
    tokio::time::resume();
    assert_eq!(rig.target("fickle", "m").await["state"], "half_open");
    rig.ok(&chat("fickle")).await;
    assert_eq!(rig.requests(0), 3);
    let state = rig.target("fickle", "m").await;
    assert_eq!(state["state"], "closed", "{state}");
    assert_eq!(state["consecutive_failures"], 0, "{state}");
    assert!(state.get("last_error").is_none(), "{state}");
    rig.ok(&chat("fickle")).await;
    assert_eq!(rig.requests(0), 4);
}

#[tokio::test]
async fn a_target_at_its_limit_spills_over_or_refuses() {
    let rig = rig(3, FAST, |u| {
        provider("small", &u[0], "")
            + &provider("big", &u[1], "")
            + &provider("only", &u[2], "")
            + &model(
                "spill",
                "strategy = \"priority\"",
                r#"{ provider = "small", max_in_flight = 1 }, { provider = "big" }"#,
            )
            + &model("single", "", r#"{ provider = "only", max_in_flight = 1 }"#)
    })
    .await;
    // A stream that stalls holds the target's only slot for as long as the client keeps it,
    // so the second request surely finds the first target busy (no race on timing).
    let held = rig
        .post(&streamed_chat("spill", json!({"stall_after": 2})))
        .await;
    assert_eq!(held.status(), 200);
    let small = rig.target("spill", "small").await;
    assert_eq!(small["in_flight"], 1, "{small}");
    assert_eq!(small["max_in_flight"], 1, "{small}");
    rig.ok(&chat("spill")).await;
    assert_eq!((rig.requests(0), rig.requests(1)), (1, 1), "one per mock");

    // Released when the client lets go: the first target takes work again.
    drop(held);
    assert!(
        rig.mocks[0]
            .stats
            .wait_until(Duration::from_secs(5), |s| s
                .streams_cancelled
                .load(Ordering::SeqCst)
                == 1)
            .await
    );
    rig.ok(&chat("spill")).await;
    assert_eq!((rig.requests(0), rig.requests(1)), (2, 1));
    assert_eq!(rig.target("spill", "small").await["in_flight"], 0);

    // A single target at its limit: 503 at once, the upstream never asked.
    let held = rig
        .post(&streamed_chat("single", json!({"stall_after": 2})))
        .await;
    assert_eq!(held.status(), 200);
    let error = expect_error(rig.post(&chat("single")).await, 503).await;
    assert_eq!(error["code"], "upstream_unavailable");
    assert!(message(&error).contains("limit of 1"), "{error}");
    assert_eq!(rig.requests(2), 1);
    drop(held);
}

#[tokio::test]
async fn a_stream_over_its_total_time_ends_with_a_timeout_event() {
    let rig = rig(1, FAST, |u| {
        provider("m", &u[0], "")
            + &model(
                "bounded",
                "",
                r#"{ provider = "m", total_timeout_ms = 300 }"#,
            )
    })
    .await;
    let started = Instant::now();
    let body = streamed_chat("bounded", json!({"chunks": 20, "chunk_delay_ms": 100}));
    let response = rig.post(&body).await;
    assert_eq!(response.status(), 200);
    let text = stream_text(response).await;
    let elapsed = started.elapsed();
    let events = sse_events(&text);
    assert!(streamed_text(&events).starts_with("tok0 "), "{text}");
    let last = events.last().unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{text}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("total time limit"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"));
    // The whole stream would take about 2 s.
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert!(
        rig.mocks[0]
            .stats
            .wait_until(Duration::from_secs(5), |s| s
                .streams_cancelled
                .load(Ordering::SeqCst)
                == 1)
            .await,
        "the upstream stream is dropped"
    );
}

#[tokio::test]
async fn a_later_failure_does_not_shorten_a_retry_after_cool_down() {
    let routing = format!("{FAST}retries = 0\nfailure_threshold = 5\ncooldown_ms = 1000\n");
    let rig = rig(1, &routing, |u| {
        provider("m", &u[0], "idle_timeout_ms = 1000")
            + &model("shared", "", r#"{ provider = "m" }"#)
    })
    .await;
    // A stream in flight that will fail mid-response (idle timeout) ...
    let held = rig
        .post(&streamed_chat("shared", json!({"stall_after": 2})))
        .await;
    assert_eq!(held.status(), 200);
    // ... while the provider says "come back in 30 s".
    let mut limited = chat("shared");
    limited["mock"] = json!({"status": 429, "retry_after": 30});
    expect_error(rig.post(&limited).await, 429).await;
    let state = rig.target("shared", "m").await;
    assert_eq!(state["state"], "open", "{state}");
    assert!(state["retry_in_ms"].as_u64().unwrap() > 20_000, "{state}");
    assert_eq!(
        state["consecutive_failures"], 1,
        "the stream is still open: {state}"
    );

    let text = stream_text(held).await;
    assert!(text.contains(r#""code":"upstream_timeout""#), "{text}");
    let state = rig.target("shared", "m").await;
    assert_eq!(state["consecutive_failures"], 2, "{state}");
    assert!(
        state["retry_in_ms"].as_u64().unwrap() > 20_000,
        "the upstream's Retry-After of 30 s still holds: {state}"
    );
}

/// Both limits of the next two tests: a retry loop whose own failures open the breaker.
async fn breaker_opening_mid_request() -> Rig {
    let dead = dead_url().await;
    let routing = format!("{FAST}retries = 2\nfailure_threshold = 2\ncooldown_ms = 60000\n");
    rig(1, &routing, |u| {
        provider("dead", &dead, "connect_timeout_ms = 1000")
            + &provider("slow", &u[0], "headers = { x-mock-latency-ms = \"10000\" }")
            + &model("down", "", r#"{ provider = "dead" }"#)
            + &model("late", "", r#"{ provider = "slow", timeout_ms = 200 }"#)
    })
    .await
}

#[tokio::test]
async fn a_breaker_opening_mid_request_keeps_the_real_reason_and_count() {
    let rig = breaker_opening_mid_request().await;
    // Two attempts fail and open the breaker: the third is never made.
    let error = expect_error(rig.post(&chat("down")).await, 503).await;
    let text = message(&error);
    assert_eq!(rig.target("down", "dead").await["consecutive_failures"], 2);
    assert!(text.contains("dead/down could not connect"), "{text}");
    assert!(text.contains("(2 attempts)"), "{text}");
}

#[tokio::test]
async fn a_breaker_opening_mid_request_still_gives_504_when_every_attempt_timed_out() {
    let rig = breaker_opening_mid_request().await;
    let error = expect_error(rig.post(&chat("late")).await, 504).await;
    assert_eq!(rig.requests(0), 2, "two attempts, then out of rotation");
    assert!(
        message(&error).contains("sent no response headers"),
        "{error}"
    );
}

#[tokio::test]
async fn a_target_that_cannot_take_the_request_gives_way_to_one_that_can() {
    // `logprobs` has no Anthropic equivalent: the Anthropic deployment is skipped for this
    // request and the OpenAI-compatible one answers, whatever the order.
    let rig = rig(2, FAST, |u| {
        provider("claude", &u[0], "kind = \"anthropic\"")
            + &provider("openai", &u[1], "")
            + &model(
                "mixed",
                "strategy = \"priority\"",
                r#"{ provider = "claude", model = "text" }, { provider = "openai", model = "mock-gpt" }"#,
            )
    })
    .await;
    let mut body = chat("mixed");
    body["logprobs"] = json!(true);
    rig.ok(&body).await;
    assert_eq!((rig.requests(0), rig.requests(1)), (0, 1));
    // Without the parameter the first deployment answers.
    rig.ok(&chat("mixed")).await;
    assert_eq!(rig.requests(0), 1);
}

/// A deployment whose provider refuses the gateway's key (401/403) fails every request alike:
/// it goes out of rotation at once (shown in /health/ready), the other deployment answers, and
/// with no other the caller gets a 503 naming the key, not the provider's 401. A 400 or 404
/// the request itself caused does not count against a deployment.
#[tokio::test]
async fn a_deployment_with_a_refused_key_leaves_rotation() {
    let rig = rig(3, FAST, |u| {
        provider("bad-key", &u[0], "headers = { x-mock-status = \"401\" }")
            + &provider("good", &u[1], "")
            + &provider("forbidden", &u[2], "headers = { x-mock-status = \"403\" }")
            + &provider("picky", &u[1], "headers = { x-mock-status = \"400\" }")
            + &model(
                "split",
                "",
                r#"{ provider = "bad-key", weight = 1 }, { provider = "good", weight = 1 }"#,
            )
            + &model("only-forbidden", "", r#"{ provider = "forbidden" }"#)
            + &model("only-picky", "", r#"{ provider = "picky" }"#)
    })
    .await;
    for _ in 0..20 {
        rig.ok(&chat("split")).await;
    }
    assert_eq!(rig.requests(0), 1, "the refused key was tried again");
    let bad = rig.target("split", "bad-key").await;
    assert_eq!(bad["state"], "open", "{bad}");
    assert!(
        bad["last_error"].as_str().unwrap().contains("api_key"),
        "{bad}"
    );

    let error = expect_error(rig.post(&chat("only-forbidden")).await, 503).await;
    assert!(
        message(&error).contains("refused the provider API key"),
        "{error}"
    );
    assert_eq!(rig.requests(2), 1, "no retry on a refused key");
    let error = expect_error(rig.post(&chat("only-forbidden")).await, 503).await;
    assert!(message(&error).contains("out of rotation"), "{error}");
    assert_eq!(rig.requests(2), 1);

    // The request's own 400: handed on every time, the deployment stays in.
    let before = rig.requests(1);
    for _ in 0..3 {
        expect_error(rig.post(&chat("only-picky")).await, 400).await;
    }
    assert_eq!(rig.requests(1), before + 3);
    assert_eq!(rig.target("only-picky", "picky").await["state"], "closed");
}
