//! Model listings with prices: `/v1/models` (OpenAI's shape plus `pricing`, `context_window`
//! and `max_output_tokens` for models the price table knows) and seed 004's `GET /models`
//! catalog.

mod common;

use common::{start_with, Harness, KEY};
use serde_json::{json, Value};

/// Priced by the built-in table under their own name (gpt-4o-mini, whisper-1), under the
/// upstream name with its date stamp (house-claude), and by gateway.toml (custom-model).
const PRICED: &str = r#"
[[models]]
name = "gpt-4o-mini"
targets = [{ provider = "mock" }]

[[models]]
name = "house-claude"
aliases = ["hc"]
targets = [{ provider = "mock", model = "claude-sonnet-4-20250514" }]

[[models]]
name = "whisper-1"
targets = [{ provider = "mock", model = "upstream-whisper" }]

[[models]]
name = "house-embed"
targets = [{ provider = "mock", model = "text-embedding-3-small" }]

[[models]]
name = "custom-model"
targets = [{ provider = "mock" }]

[pricing.models."custom-model"]
input_per_mtok = 1.5
output_per_mtok = 2.5
context_window = 4096
"#;

async fn get_json(h: &Harness, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = h.client.get(h.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request reaches the gateway");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn entry<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed in {list}"))
}

#[tokio::test]
async fn v1_models_carry_prices_for_priced_models_only() {
    let h = start_with(PRICED).await;
    let (status, list) = get_json(&h, "/v1/models", Some(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(list["object"], "list");

    let mini = entry(&list, "gpt-4o-mini");
    assert_eq!(mini["object"], "model");
    assert_eq!(mini["owned_by"], "mock");
    assert!(mini["created"].is_u64(), "{mini}");
    assert_eq!(
        mini["pricing"],
        json!({
            "currency": "USD",
            "input_per_mtok": 0.15,
            "output_per_mtok": 0.6,
            "cached_input_per_mtok": 0.075,
            "audio_per_minute": null,
        })
    );
    assert_eq!(mini["context_window"], 128000);
    assert_eq!(mini["max_output_tokens"], 16384);

    // Found under the upstream name, date stamp dropped; the alias is priced the same.
    for id in ["house-claude", "hc"] {
        let claude = entry(&list, id);
        assert_eq!(claude["pricing"]["input_per_mtok"], 3.0, "{id}");
        assert_eq!(claude["pricing"]["output_per_mtok"], 15.0, "{id}");
        assert_eq!(claude["context_window"], 200000, "{id}");
    }
    // From gateway.toml: cached tokens at the input price, no max output known.
    let custom = entry(&list, "custom-model");
    assert_eq!(custom["pricing"]["input_per_mtok"], 1.5);
    assert_eq!(custom["pricing"]["cached_input_per_mtok"], 1.5);
    assert_eq!(custom["context_window"], 4096);
    assert!(custom.get("max_output_tokens").is_none(), "{custom}");
    let whisper = entry(&list, "whisper-1");
    assert_eq!(whisper["pricing"]["audio_per_minute"], 0.006);

    // Unpriced: exactly OpenAI's four fields.
    let unpriced = entry(&list, "mock-gpt");
    let mut keys: Vec<&str> = unpriced
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created", "id", "object", "owned_by"], "{unpriced}");

    // One model.
    let (status, one) = get_json(&h, "/v1/models/gpt-4o-mini", Some(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(one["id"], "gpt-4o-mini");
    assert_eq!(one["pricing"]["output_per_mtok"], 0.6);
    let (status, one) = get_json(&h, "/v1/models/mock-gpt", Some(KEY)).await;
    assert_eq!(status, 200);
    assert!(one.get("pricing").is_none(), "{one}");
    // Still behind the /v1 credential.
    let (status, _) = get_json(&h, "/v1/models", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn defaults_can_be_switched_off() {
    let extra = PRICED.replace(
        "[pricing.models.\"custom-model\"]",
        "[pricing]\nuse_defaults = false\n\n[pricing.models.\"custom-model\"]",
    );
    let h = start_with(&extra).await;
    let (status, list) = get_json(&h, "/v1/models", Some(KEY)).await;
    assert_eq!(status, 200);
    assert!(entry(&list, "gpt-4o-mini").get("pricing").is_none());
    assert_eq!(
        entry(&list, "custom-model")["pricing"]["input_per_mtok"],
        1.5
    );
}

#[tokio::test]
async fn app_catalog_lists_callable_models_with_prices() {
    let h = start_with(PRICED).await;
    // Without a credential, with the master key, with a bad token: the same public list.
    let (status, anonymous) = get_json(&h, "/models", None).await;
    assert_eq!(status, 200, "{anonymous}");
    let (status, with_key) = get_json(&h, "/models", Some(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(anonymous, with_key);
    let (status, _) = get_json(&h, "/models", Some("garbage")).await;
    assert_eq!(status, 200);

    let models = anonymous["models"].as_array().expect("models");
    let find = |id: &str| models.iter().find(|m| m["id"] == id);
    let claude = find("house-claude").expect("house-claude listed");
    assert_eq!(
        *claude,
        json!({
            "id": "house-claude",
            "provider": "mock",
            "aliases": ["hc"],
            "type": "chat",
            "pricing": {
                "currency": "USD",
                "input_per_mtok": 3.0,
                "output_per_mtok": 15.0,
                "cached_input_per_mtok": 0.3,
                "audio_per_minute": null,
            },
            "context_window": 200000,
            "max_output_tokens": 64000,
        })
    );
    let mock = find("mock-gpt").expect("mock-gpt listed");
    assert_eq!(mock["pricing"], Value::Null);
    assert_eq!(mock["context_window"], Value::Null);
    assert_eq!(mock["aliases"], json!(["alias-gpt"]));
    assert!(
        find("alias-gpt").is_none(),
        "aliases sit inside their model"
    );
    // Chat models only, by default.
    for other in ["whisper-1", "mock-whisper", "mock-embed", "house-embed"] {
        assert!(find(other).is_none(), "{other} is no chat model");
    }
    assert!(find("gpt-4o-mini").is_some());

    let (_, all) = get_json(&h, "/models?type=all", None).await;
    let types: Vec<(&str, &str)> = all["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["type"].as_str().unwrap()))
        .collect();
    for expected in [
        ("whisper-1", "transcription"),
        ("mock-whisper", "transcription"),
        ("mock-embed", "embedding"),
        ("house-embed", "embedding"),
        ("gpt-4o-mini", "chat"),
    ] {
        assert!(types.contains(&expected), "{expected:?} not in {types:?}");
    }
    let (_, audio) = get_json(&h, "/models?type=transcription", None).await;
    let ids: Vec<&str> = audio["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock-whisper", "whisper-1"]);
    let (status, error) = get_json(&h, "/models?type=images", None).await;
    assert_eq!(status, 422);
    assert_eq!(error["field"], "type");
}
