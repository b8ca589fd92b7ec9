//! Rate limits and budgets over real HTTP, with the in-process backend: requests, tokens and
//! concurrency per key, user and model; budgets under 100 concurrent requests; admin overrides
//! (on every database of `common::db::databases()`). Tests wait for settlement through a
//! completion-counting plugin, never by sleeping.

mod common;

use common::limits::{assert_limited, start, LimitsHarness, Reply};
use common::KEY;
use reqwest::Method;
use serde_json::{json, Value};

const SQLITE: &str = common::db::SQLITE_MEMORY;

/// Mock prices: $1000 per million tokens in and out, so a request costs cents.
const PRICES: &str = r#"
[pricing.models."mock-gpt"]
input_per_mtok = 1000.0
output_per_mtok = 1000.0
"#;

/// The gateway's Prometheus metrics (the recorder is process-wide: counters add up over tests).
async fn metrics_text(h: &LimitsHarness) -> String {
    let response = h.client.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn chat_body(extra: Value) -> Value {
    let mut body = common::chat("mock-gpt");
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

#[tokio::test]
async fn requests_per_minute_per_key_with_openai_headers() {
    let h = start(
        SQLITE,
        r#"
[limits]
key_tier = "three"
[limits.tiers.three]
requests_per_minute = 3
"#,
    )
    .await;
    let (_, token) = h.register("rpm@example.com").await;
    let (_, key) = h.create_key(&token).await;

    let mut remaining = Vec::new();
    for i in 0..3 {
        let r = h.settled(h.chat(&key, &common::chat("mock-gpt"))).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text);
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
        let reset = r
            .header("x-ratelimit-reset-requests")
            .expect("reset header");
        assert!(reset.ends_with('s'), "an OpenAI duration: {reset}");
        remaining.push(r.header_u64("x-ratelimit-remaining-requests").unwrap());
    }
    assert_eq!(remaining, [2, 1, 0], "remaining requests go down");
    let upstream = h.upstream_requests();

    let r = h.settled(h.chat(&key, &common::chat("mock-gpt"))).await;
    let retry = assert_limited(&r, "requests", "rate_limit_exceeded");
    // One request comes back every 20 s.
    assert!(retry <= 20, "Retry-After {retry}");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requests per minute"));
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(
        h.upstream_requests(),
        upstream,
        "a refused request is not forwarded"
    );
    let metrics = metrics_text(&h).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gateway_ratelimit_rejections_total{")
                && l.contains(r#"scope="key""#)
                && l.contains(r#"limit="requests""#)),
        "{metrics}"
    );

    // The key's limit is the key's: the same user signed in (no key) is not under it.
    let r = h.settled(h.chat(&token, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("x-ratelimit-limit-requests").is_none());
    // Another key of the same user has its own bucket.
    let (_, other) = h.create_key(&token).await;
    let r = h.settled(h.chat(&other, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("2"));
}

#[tokio::test]
async fn tokens_per_minute_are_settled_by_actual_use() {
    let h = start(
        SQLITE,
        r#"
[limits]
user_tier = "small"
[limits.tiers.small]
tokens_per_minute = 1000
"#,
    )
    .await;
    // A request asking for more output than the whole bucket is capped at the bucket, not
    // refused forever.
    let (_, bob) = h.register("tpm-bob@example.com").await;
    let r = h
        .settled(h.chat(&bob, &chat_body(json!({"max_tokens": 50_000}))))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let (_, alice) = h.register("tpm-alice@example.com").await;
    // The estimate (body / 4) is small: admitted; then it turns out to use ~3000 tokens.
    let r = h
        .settled(h.chat(&alice, &chat_body(json!({"mock": {"chunks": 3000}}))))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("1000"));
    let left = r.header_u64("x-ratelimit-remaining-tokens").unwrap();
    assert!(
        (950..1000).contains(&left),
        "only the estimate was taken: {left}"
    );
    let used = r.body["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used > 3000, "{used}");

    // Settled: the bucket is ~2000 in debt, so the next request waits about two minutes.
    let r = h.settled(h.chat(&alice, &common::chat("mock-gpt"))).await;
    let retry = assert_limited(&r, "tokens", "rate_limit_exceeded");
    assert!((100..=200).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("0"));
    let reset = r.header("x-ratelimit-reset-tokens").unwrap();
    assert!(
        reset.starts_with("3m") || reset.starts_with("2m"),
        "{reset}"
    );
}

#[tokio::test]
async fn concurrent_requests_hold_a_slot_until_they_end() {
    let h = start(
        SQLITE,
        r#"
[[providers]]
name = "patient"
base_url = "http://{MOCK_ADDR}/v1"
idle_timeout_ms = 30000

[[models]]
name = "patient-model"
targets = [{ provider = "patient" }]

[limits]
user_tier = "two"
[limits.tiers.two]
max_concurrent = 2
requests_per_minute = 1000
"#,
    )
    .await;
    let (_, token) = h.register("conc@example.com").await;
    // Streams that stall after one chunk: they stay open until the client goes.
    let stalled = common::streamed_chat("patient-model", json!({"stall_after": 1}));
    let first = h.chat(&token, &stalled).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = h.chat(&token, &stalled).send().await.unwrap();
    assert_eq!(second.status(), 200);
    assert!(first.headers().contains_key("x-ratelimit-limit-requests"));

    let r = h.settled(h.chat(&token, &stalled)).await;
    assert_limited(&r, "requests", "rate_limit_exceeded");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("concurrent"));

    // One stream ends (the client hangs up): its slot is free again.
    let before = h.completed();
    drop(first);
    h.wait_completed(before + 1).await;
    let third = h.chat(&token, &stalled).send().await.unwrap();
    assert_eq!(third.status(), 200);
    let r = h.settled(h.chat(&token, &common::chat("mock-gpt"))).await;
    assert_limited(&r, "requests", "rate_limit_exceeded");

    // A request that fails upstream frees its slot too, and still carries the headers.
    let before = h.completed();
    drop(second);
    drop(third);
    h.wait_completed(before + 2).await;
    let r = h
        .settled(h.chat(&token, &common::chat("failing-model")))
        .await;
    assert!(r.status >= 500, "{}", r.text);
    assert!(
        r.header("x-ratelimit-limit-requests").is_some(),
        "{:?}",
        r.headers
    );
    for _ in 0..3 {
        let r = h.settled(h.chat(&token, &common::chat("mock-gpt"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

/// What a mock answer cost at [`PRICES`].
fn cost_of(r: &Reply) -> f64 {
    let usage = &r.body["usage"];
    let tokens =
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap();
    tokens as f64 * 1000.0 / 1_000_000.0
}

each_database!(
    a_budget_is_never_overshot_by_concurrent_requests,
    |engine, url| {
        let h = start(
            &url,
            &format!(
                r#"{PRICES}
[limits]
user_tier = "budget"
[limits.tiers.budget]
daily_budget_usd = 0.5
"#
            ),
        )
        .await;
        let (_, token) = h.register("budget@example.com").await;
        // Worst case ~$0.09 (every body byte a token, 10 output tokens); actual ~$0.023.
        let body = chat_body(json!({"max_tokens": 10}));
        let before = h.completed();
        let requests = (0..100).map(|_| {
            let request = h.chat(&token, &body);
            async move { common::limits::reply(request.send().await.unwrap()).await }
        });
        let replies = futures_util::future::join_all(requests).await;
        h.wait_completed(before + 100).await;

        let mut spent = 0.0;
        let mut admitted = 0;
        for r in &replies {
            match r.status {
                200 => {
                    admitted += 1;
                    spent += cost_of(r);
                }
                _ => {
                    assert_limited(r, "insufficient_quota", "insufficient_quota");
                    let retry = r.header_u64("retry-after").unwrap();
                    assert!(retry <= 86_400, "until the end of the UTC day: {retry}");
                }
            }
        }
        assert!(spent <= 0.5 + 1e-9, "{engine}: spent ${spent} of $0.5");
        assert!(
            admitted >= 5,
            "{engine}: at least budget / worst case: {admitted}"
        );
        assert!(admitted < 100, "{engine}: some were refused");

        // The user sees what is left; the spend settled equals what the answers cost.
        let r = h
            .api(Method::GET, "/api/v1/limits", Some(&token), None)
            .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        let scope = &r.body["scopes"][0];
        assert_eq!(scope["scope"], "user");
        assert_eq!(scope["limits"]["daily_budget_usd"], 0.5);
        let recorded = scope["remaining"]["daily_spent_usd"].as_f64().unwrap();
        assert!(
            (recorded - spent).abs() < 1e-3,
            "{engine}: settled ${recorded}, answers cost ${spent}"
        );
        let left = scope["remaining"]["daily_budget_usd"].as_f64().unwrap();
        assert!((left - (0.5 - recorded)).abs() < 1e-6, "{engine}: {left}");
    }
);

#[tokio::test]
async fn model_limits_apply_to_every_caller_and_the_master_key() {
    let h = start(
        SQLITE,
        r#"
[limits]
[limits.models."mock-embed"]
requests_per_minute = 2
"#,
    )
    .await;
    let embed = json!({"model": "mock-embed", "input": "hello"});
    let send = |token: &str| {
        h.client
            .post(h.url("/v1/embeddings"))
            .bearer_auth(token.to_string())
            .json(&embed)
    };
    for _ in 0..2 {
        let r = h.settled(send(KEY)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("2"));
    }
    let r = h.settled(send(KEY)).await;
    assert_limited(&r, "requests", "rate_limit_exceeded");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("mock-embed"));
    // Shared by all callers: a user is refused too; other models are not limited.
    let (_, token) = h.register("model@example.com").await;
    let r = h.settled(send(&token)).await;
    assert_limited(&r, "requests", "rate_limit_exceeded");
    let r = h.settled(h.chat(KEY, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("x-ratelimit-limit-requests").is_none());
    // The master key has no account, so no limits of its own to show.
    let r = h.api(Method::GET, "/api/v1/limits", Some(KEY), None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.body["detail"].as_str().unwrap().contains("master key"));
}

each_database!(
    admin_overrides_change_a_users_and_a_keys_limits,
    |engine, url| {
        let h = start(
            &url,
            &format!(
                r#"{PRICES}
[limits]
user_tier = "base"
[limits.tiers.base]
requests_per_minute = 100
[limits.tiers.tiny]
daily_budget_usd = 0.0001
"#
            ),
        )
        .await;
        admin_flow(&h, engine).await;
    }
);

async fn admin_flow(h: &LimitsHarness, engine: &str) {
    let (alice_id, alice) = h.register("override-alice@example.com").await;
    let path = format!("/api/v1/admin/users/{alice_id}/limits");
    let r = h.settled(h.chat(&alice, &common::chat("mock-gpt"))).await;
    assert_eq!(
        r.header("x-ratelimit-limit-requests"),
        Some("100"),
        "{engine}"
    );

    // No override yet: the tier's limits.
    let r = h.api(Method::GET, &path, Some(KEY), None).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert!(r.body["override"].is_null(), "{engine}: {}", r.text);
    assert_eq!(r.body["effective"]["tier"], "base");
    assert_eq!(r.body["effective"]["requests_per_minute"], 100);

    // Lowered: effective at once (the cached limits are invalidated).
    let r = h.admin_put(&path, &json!({"requests_per_minute": 7})).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert_eq!(r.body["override"]["requests_per_minute"], 7);
    assert_eq!(r.body["effective"]["requests_per_minute"], 7);
    assert_eq!(r.body["effective"]["tier"], "base");
    let r = h.settled(h.chat(&alice, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert_eq!(
        r.header("x-ratelimit-limit-requests"),
        Some("7"),
        "{engine}"
    );

    // Another tier: its tiny budget refuses; raising the budget admits again.
    let r = h.admin_put(&path, &json!({"tier": "tiny"})).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert!(r.body["effective"]["requests_per_minute"].is_null());
    assert_eq!(r.body["effective"]["daily_budget_usd"], 0.0001);
    let r = h.settled(h.chat(&alice, &common::chat("mock-gpt"))).await;
    assert_limited(&r, "insufficient_quota", "insufficient_quota");
    let r = h
        .admin_put(&path, &json!({"tier": "tiny", "daily_budget_usd": 100.0}))
        .await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    let r = h.settled(h.chat(&alice, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "{engine}: raised budget: {}", r.text);

    // The user sees their own limits.
    let r = h
        .api(Method::GET, "/api/v1/limits", Some(&alice), None)
        .await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert_eq!(r.body["enforced"], true);
    assert_eq!(r.body["scopes"][0]["tier"], "tiny");
    assert_eq!(r.body["scopes"][0]["limits"]["daily_budget_usd"], 100.0);

    // Deleted: back to the default tier.
    let r = h.api(Method::DELETE, &path, Some(KEY), None).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert_eq!(r.body["deleted"], true);
    let r = h.api(Method::GET, &path, Some(KEY), None).await;
    assert!(r.body["override"].is_null(), "{engine}: {}", r.text);
    assert_eq!(r.body["effective"]["requests_per_minute"], 100);
    let r = h.settled(h.chat(&alice, &common::chat("mock-gpt"))).await;
    assert_eq!(
        r.header("x-ratelimit-limit-requests"),
        Some("100"),
        "{engine}"
    );

    // A key's override: the tighter of the key's and the user's limits shows.
    let (key_id, key) = h.create_key(&alice).await;
    let key_path = format!("/api/v1/admin/keys/{key_id}/limits");
    let r = h
        .admin_put(
            &key_path,
            &json!({"requests_per_minute": 4, "max_concurrent": 3}),
        )
        .await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert_eq!(r.body["key_id"], key_id.as_str());
    assert_eq!(r.body["effective"]["max_concurrent"], 3);
    let r = h.settled(h.chat(&key, &common::chat("mock-gpt"))).await;
    assert_eq!(
        r.header("x-ratelimit-limit-requests"),
        Some("4"),
        "{engine}"
    );
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("3"));
    let r = h.api(Method::GET, "/api/v1/limits", Some(&key), None).await;
    assert_eq!(r.body["scopes"][0]["scope"], "key", "{engine}: {}", r.text);
    assert_eq!(r.body["scopes"][0]["remaining"]["requests"], 3);
    assert_eq!(r.body["scopes"][0]["remaining"]["concurrent"], 3);
    assert_eq!(r.body["scopes"][1]["scope"], "user");

    // Only admins; unknown subjects are 404; bad bodies 422 naming the field.
    let r = h.api(Method::GET, &path, Some(&alice), None).await;
    assert_eq!(r.status, 403, "{engine}: {}", r.text);
    assert_eq!(r.body["code"], "forbidden");
    let r = h
        .api(
            Method::PUT,
            &path,
            Some(&alice),
            Some(&json!({"requests_per_minute": 1000})),
        )
        .await;
    assert_eq!(r.status, 403, "{engine}: {}", r.text);
    assert_eq!(h.api(Method::GET, &path, None, None).await.status, 401);
    for unknown in [
        "/api/v1/admin/users/nobody/limits",
        "/api/v1/admin/keys/nokey/limits",
    ] {
        let r = h.api(Method::GET, unknown, Some(KEY), None).await;
        assert_eq!(r.status, 404, "{engine}: {unknown}: {}", r.text);
        assert_eq!(r.body["code"], "not_found");
        let r = h.admin_put(unknown, &json!({"max_concurrent": 1})).await;
        assert_eq!(r.status, 404, "{engine}: {unknown}: {}", r.text);
    }
    let bad = [
        (
            json!({"requests_per_minute": 0}),
            Some("requests_per_minute"),
        ),
        (json!({"daily_budget_usd": -1.0}), Some("daily_budget_usd")),
        (json!({"tier": "platinum"}), Some("tier")),
        (json!({"max_concurrent": "many"}), None),
        (json!({"tokens_per_minute": -5}), None),
        (json!({"rpm": 3}), None),
    ];
    for (body, field) in bad {
        let r = h.admin_put(&path, &body).await;
        assert_eq!(r.status, 422, "{engine}: {body}: {}", r.text);
        assert_eq!(r.body["code"], "invalid_request", "{engine}: {body}");
        assert!(r.body["detail"].is_string());
        if let Some(field) = field {
            assert_eq!(r.body["field"], field, "{engine}: {body}: {}", r.text);
        }
    }
    // Nothing was stored by the refused bodies.
    let r = h.api(Method::GET, &path, Some(KEY), None).await;
    assert!(r.body["override"].is_null(), "{engine}: {}", r.text);
}

#[tokio::test]
async fn budgets_price_a_model_by_its_target_and_unpriced_models_cost_nothing() {
    let h = start(
        SQLITE,
        r#"
[pricing.models."upstream-name"]
input_per_mtok = 1000.0
output_per_mtok = 1000.0

[limits]
user_tier = "thrifty"
[limits.tiers.thrifty]
daily_budget_usd = 0.001
monthly_budget_usd = 100.0
"#,
    )
    .await;
    let (_, token) = h.register("thrifty@example.com").await;
    // "renamed" has no price of its own; its target "upstream-name" has: the worst case of
    // ~4000 output tokens at $1000/M is far over $0.001.
    let r = h.settled(h.chat(&token, &common::chat("renamed"))).await;
    let retry = assert_limited(&r, "insufficient_quota", "insufficient_quota");
    assert!(retry <= 86_400, "{retry}");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("daily budget"));
    // A model the price table does not know costs nothing: always within budget.
    for _ in 0..3 {
        let r = h.settled(h.chat(&token, &common::chat("mock-gpt"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

/// In process, budgets survive a restart: a new gateway counts what the usage records say was
/// already spent today before admitting anything.
#[tokio::test]
async fn an_in_process_budget_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in common::db::databases().await {
        let url = match engine {
            "sqlite" => format!("sqlite://{}", dir.path().join("restart.db").display()),
            _ => url,
        };
        let config = format!(
            r#"{PRICES}
[limits]
user_tier = "budget"
[limits.tiers.budget]
daily_budget_usd = 0.15
"#
        );
        let first = start(&url, &config).await;
        let (_, token) = first.register("restart@example.com").await;
        let body = chat_body(json!({"max_tokens": 10}));
        let mut admitted = 0;
        loop {
            let r = first.settled(first.chat(&token, &body)).await;
            if r.status != 200 {
                assert_limited(&r, "insufficient_quota", "insufficient_quota");
                break;
            }
            admitted += 1;
            assert!(admitted < 10, "{engine}: the budget never refused");
        }
        assert!(admitted >= 1, "{engine}");
        first.gateway.flush_usage().await;
        let spent = |r: &Reply| r.body["scopes"][0]["remaining"]["daily_spent_usd"].as_f64();
        let before = first
            .api(Method::GET, "/api/v1/limits", Some(&token), None)
            .await;
        let spent_before = spent(&before).unwrap();
        assert!(spent_before > 0.0, "{engine}: {}", before.text);

        // A new process (its limits start empty) on the same database.
        let second = start(&url, &config).await;
        let r = second
            .api(Method::GET, "/api/v1/limits", Some(&token), None)
            .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        let seeded = spent(&r).unwrap();
        assert!(
            (seeded - spent_before).abs() < 1e-4,
            "{engine}: spent ${spent_before} before the restart, ${seeded} after"
        );
        let r = second.settled(second.chat(&token, &body)).await;
        assert_limited(&r, "insufficient_quota", "insufficient_quota");
    }
}

/// A chunked `/v1/chat/completions` upload with `token`, its head and `first` chunk sent.
async fn chunked_upload(h: &LimitsHarness, token: &str, first: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(h.gateway.addr)
        .await
        .unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    if !first.is_empty() {
        let chunk = format!("{:x}\r\n", first.len());
        stream.write_all(chunk.as_bytes()).await.unwrap();
        stream.write_all(first).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    stream
}

/// The status line and headers the gateway answers on `stream` (bounded wait).
async fn answer_head(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !out.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read).await;
    String::from_utf8_lossy(&out).to_lowercase()
}

#[tokio::test]
async fn a_caller_at_its_concurrency_limit_is_refused_before_its_upload_is_read() {
    use tokio::io::AsyncWriteExt;
    let h = start(
        SQLITE,
        r#"
[limits]
user_tier = "one"
[limits.tiers.one]
max_concurrent = 1
requests_per_minute = 1000
"#,
    )
    .await;
    let (_, token) = h.register("uploader@example.com").await;
    // Two uploads under way, each with its first chunk sent and the rest held back: whichever
    // the gateway takes second is answered at once, before the rest of its body arrives.
    let part = br#"{"model":"mock-gpt","#;
    let mut one = chunked_upload(&h, &token, part).await;
    let mut two = chunked_upload(&h, &token, part).await;
    let (head, refused_first) = tokio::select! {
        head = answer_head(&mut one) => (head, true),
        head = answer_head(&mut two) => (head, false),
    };
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    let first = if refused_first { two } else { one };

    // A small request is not gated (and the upload holds no concurrency slot yet).
    let r = h.settled(h.chat(&token, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The first upload given up: its place is free again, and a whole upload goes through.
    drop(first);
    let body = serde_json::to_vec(&common::chat("mock-gpt")).unwrap();
    let mut admitted = false;
    for _ in 0..100 {
        let mut upload = chunked_upload(&h, &token, &body).await;
        upload.write_all(b"0\r\n\r\n").await.unwrap();
        if answer_head(&mut upload).await.starts_with("http/1.1 200") {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        admitted,
        "the abandoned upload's place was never given back"
    );
}
