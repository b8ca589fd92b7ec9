//! A fallback model is checked as a request for it: the key's allowed models, the fallback's
//! own model limits and a budget reserved at its price; and the answer is priced by the target
//! that served it.

mod common;

use common::config::TestConfig;
use common::rest::{get, reply};
use common::Harness;
use serde_json::{json, Value};

/// `primary` always fails (503); its fallback `premium` answers from the mock, at a high price.
const MODELS: &str = r#"
[[models]]
name = "primary"
fallbacks = ["premium"]
targets = [{ provider = "failing" }]

[[models]]
name = "premium"
targets = [{ provider = "mock", model = "mock-premium" }]

[pricing.models."primary"]
input_per_mtok = 0.01
output_per_mtok = 0.01

[pricing.models."mock-premium"]
input_per_mtok = 100.0
output_per_mtok = 200.0
"#;

const LIMITS: &str = r#"
[limits]
user_tier = "metered"

[limits.tiers.metered]
daily_budget_usd = 0.5

[limits.models."premium"]
requests_per_minute = 1
"#;

async fn start(extra: &str) -> Harness {
    common::start_config(TestConfig::new().sections(&format!("{MODELS}\n{extra}"))).await
}

/// A new user's API key, limited to `models` when given.
async fn user_key(h: &Harness, email: &str, models: Option<Value>) -> String {
    let r = h
        .client
        .post(h.url("/api/v1/auth/register"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let pair = reply(r).await;
    assert_eq!(pair.status, 201, "{}", pair.text);
    let mut body = json!({"name": "fallbacks"});
    if let Some(models) = models {
        body["allowed_models"] = models;
    }
    let token = pair.body["access_token"].as_str().unwrap();
    let key = reply(
        h.client
            .post(h.url("/api/v1/keys"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.text);
    key.body["key"].as_str().unwrap().to_string()
}

async fn chat(h: &Harness, key: &str, model: &str, max_tokens: u64) -> common::rest::Reply {
    let mut body = common::chat(model);
    body["max_tokens"] = json!(max_tokens);
    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    reply(r).await
}

#[tokio::test]
async fn a_key_limited_to_a_model_does_not_reach_its_fallback() {
    let h = start("").await;
    let key = user_key(&h, "limited@example.com", Some(json!(["primary"]))).await;
    let r = chat(&h, &key, "primary", 10).await;
    assert_eq!(
        r.status, 503,
        "the fallback served a key not allowed it: {}",
        r.text
    );
    assert!(r.text.contains("premium"), "{}", r.text);
    assert!(r.text.contains("not allowed"), "{}", r.text);
    // A key allowed both gets the fallback's answer.
    let both = user_key(&h, "both@example.com", Some(json!(["primary", "premium"]))).await;
    let r = chat(&h, &both, "primary", 10).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_fallback_is_under_its_own_limits_and_reserves_at_its_price() {
    let h = start(LIMITS).await;
    // 4,000 output tokens cost $0.00004 at primary's price, $0.80 at premium's: over the
    // $0.50 budget only as the fallback.
    let key = user_key(&h, "budget@example.com", None).await;
    let r = chat(&h, &key, "primary", 4_000).await;
    assert_eq!(
        r.status, 503,
        "reserved at the first model's price: {}",
        r.text
    );
    assert!(r.text.contains("budget"), "{}", r.text);

    // premium allows one request a minute across all callers: spent directly, the fallback is
    // refused too.
    let r = chat(&h, &key, "premium", 5).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = chat(&h, &key, "primary", 5).await;
    assert_eq!(
        r.status, 503,
        "the fallback skipped its model limit: {}",
        r.text
    );
}

#[tokio::test]
async fn a_fallback_answer_is_priced_by_the_target_that_served_it() {
    let h = start("").await;
    let key = user_key(&h, "priced@example.com", None).await;
    let r = chat(&h, &key, "primary", 10).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let usage = &r.body["usage"];
    let (input, output) = (
        usage["prompt_tokens"].as_f64().unwrap(),
        usage["completion_tokens"].as_f64().unwrap(),
    );
    h.gateway.flush_usage().await;
    let records = get(&h, "/api/v1/usage/records", Some(&key)).await;
    assert_eq!(records.status, 200, "{}", records.text);
    let record = &records.body["items"][0];
    assert_eq!(record["model"], "premium", "{record}");
    assert_eq!(record["upstream_model"], "mock-premium", "{record}");
    let expected = (input * 100.0 + output * 200.0) / 1e6;
    let cost = record["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - expected).abs() < 1e-9,
        "cost {cost}, expected {expected}: {record}"
    );
}
