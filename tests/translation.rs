//! OpenAI clients talking to Anthropic and Gemini models through the gateway. The mock provider
//! plays recorded wire-format answers of each provider (src/mock/fixtures); the tests check both
//! what the provider received and what the client got back.

mod common;

use common::{expect_error, sse_events, streamed_text, Harness};
use serde_json::{json, Value};

async fn start() -> Harness {
    common::start_with(common::TRANSLATED_PROVIDERS).await
}

fn upstream_body(h: &Harness) -> Value {
    let request = h.mock.stats.last_request().expect("the mock saw a request");
    serde_json::from_slice(&request.body).expect("upstream body is JSON")
}

async fn stream(h: &Harness, body: Value) -> Vec<Value> {
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    sse_events(&response.text().await.unwrap())
}

fn tool_arguments(events: &[Value], index: u64) -> (String, String, String) {
    let mut id = String::new();
    let mut name = String::new();
    let mut arguments = String::new();
    for event in events {
        for call in event["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if call["index"] != index {
                continue;
            }
            if let Some(v) = call["id"].as_str() {
                id = v.into();
            }
            if let Some(v) = call["function"]["name"].as_str() {
                name = v.into();
            }
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    (id, name, arguments)
}

fn finish_reason(events: &[Value]) -> Value {
    events
        .iter()
        .map(|e| e["choices"][0]["finish_reason"].clone())
        .find(|f| !f.is_null())
        .unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Anthropic

#[tokio::test]
async fn anthropic_request_is_translated_and_answer_comes_back_in_openai_shape() {
    let h = start().await;
    let body = json!({
        "model": "claude-text",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And its river?"}
        ],
        "temperature": 0.2, "top_p": 0.9, "stop": "END", "user": "user-42", "seed": 7
    });
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();

    let recorded = h.mock.stats.last_request().unwrap();
    assert_eq!(recorded.path, "/messages");
    assert_eq!(recorded.headers["x-api-key"], "anthropic-secret");
    assert_eq!(recorded.headers["anthropic-version"], "2023-06-01");
    assert!(recorded.headers.get("authorization").is_none());
    let sent = upstream_body(&h);
    assert_eq!(sent["model"], "text");
    assert_eq!(
        sent["max_tokens"], 4096,
        "Anthropic needs max_tokens: default applied"
    );
    assert_eq!(sent["system"], "Be brief.\nAnswer in English.");
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["top_p"], 0.9);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["metadata"]["user_id"], "user-42");
    assert!(sent.get("seed").is_none(), "seed is documented as dropped");
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);

    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "claude-sonnet-4-5-20250929");
    let choice = &answer["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "Paris is the capital of France.\nIt sits on the Seine."
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(answer["usage"]["prompt_tokens"], 21 + 1024);
    assert_eq!(answer["usage"]["completion_tokens"], 14);
    assert_eq!(answer["usage"]["total_tokens"], 21 + 1024 + 14);
    assert_eq!(
        answer["usage"]["prompt_tokens_details"]["cached_tokens"],
        1024
    );
}

#[tokio::test]
async fn anthropic_tool_history_and_images_are_translated() {
    let h = start().await;
    let body = json!({
        "model": "claude-text",
        "max_completion_tokens": 300,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these pictures, and the weather there?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/paris.jpg"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "4C"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false
    });
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let sent = upstream_body(&h);
    assert_eq!(sent["max_tokens"], 300);
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        3,
        "two tool results merge into one user turn: {sent}"
    );
    let user = &messages[0]["content"];
    assert_eq!(user[1]["type"], "image");
    assert_eq!(user[1]["source"]["type"], "base64");
    assert_eq!(user[1]["source"]["media_type"], "image/png");
    assert_eq!(user[1]["source"]["data"], "iVBORw0KGgo=");
    assert_eq!(
        user[2]["source"],
        json!({"type": "url", "url": "https://example.com/paris.jpg"})
    );
    let assistant = &messages[1]["content"];
    assert_eq!(assistant[0]["type"], "tool_use");
    assert_eq!(assistant[0]["id"], "call_1");
    assert_eq!(assistant[0]["input"], json!({"city": "Paris"}));
    let results = &messages[2]["content"];
    assert_eq!(
        results[0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": "18C"})
    );
    assert_eq!(results[1]["tool_use_id"], "call_2");
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
    );
}

#[tokio::test]
async fn anthropic_tool_calls_answer_json() {
    let h = start().await;
    let mut body = common::chat("claude-tools");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather"}}]);
    body["tool_choice"] = json!("required");
    let answer: Value = h
        .post_json("/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    let sent = upstream_body(&h);
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    assert_eq!(sent["tools"][0]["input_schema"]["type"], "object");
    let message = &answer["choices"][0]["message"];
    assert_eq!(message["content"], "I'll check the weather in Paris.");
    let call = &message["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris", "unit": "celsius"}));
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn anthropic_stream_reassembles_tool_call_deltas_with_stable_indexes() {
    let h = start().await;
    let mut body = common::chat("claude-tools");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather"}}]);
    let events = stream(&h, body).await;
    assert_eq!(upstream_body(&h)["stream"], true);

    assert_eq!(events[0]["object"], "chat.completion.chunk");
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(events[0]["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
    assert_eq!(streamed_text(&events), "Let me check both cities.");
    let (id, name, arguments) = tool_arguments(&events, 0);
    assert_eq!(
        (id.as_str(), name.as_str()),
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
    );
    assert_eq!(arguments, "{\"city\": \"Paris\"}");
    let (id, _, arguments) = tool_arguments(&events, 1);
    assert_eq!(id, "toolu_02Bq8pX9mK3dNcR7sT1vW4yZ");
    assert_eq!(arguments, "{\"city\": \"Oslo\"}");
    assert_eq!(finish_reason(&events), "tool_calls");

    let usage = &events[events.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 472);
    assert_eq!(
        usage["usage"]["completion_tokens"], 89,
        "the cumulative output count, not a sum"
    );
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn anthropic_stream_without_include_usage_has_no_usage_chunk() {
    let h = start().await;
    let mut body = common::chat("claude-text");
    body["stream"] = json!(true);
    let events = stream(&h, body).await;
    assert_eq!(
        streamed_text(&events),
        "Paris is the capital of France.\nIt sits on the Seine."
    );
    assert_eq!(finish_reason(&events), "stop");
    assert!(events.iter().all(|e| e.get("usage").is_none()));
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn anthropic_max_tokens_is_length_and_thinking_is_not_content() {
    let h = start().await;
    let answer: Value = h
        .post_json("/v1/chat/completions", &common::chat("claude-long"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Here are the first items: one, two, three"
    );
    assert_eq!(
        answer["usage"]["prompt_tokens"], 212,
        "cache writes count as input"
    );
}

#[tokio::test]
async fn anthropic_errors_come_back_in_openai_shape() {
    let h = start().await;
    let error = expect_error(
        h.post_json("/v1/chat/completions", &common::chat("claude-invalid"))
            .await,
        400,
    )
    .await;
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens: 999999"));

    // 529 "overloaded" becomes 503 (retried first: the mock keeps answering 529).
    let error = expect_error(
        h.post_json("/v1/chat/completions", &common::chat("claude-overloaded"))
            .await,
        503,
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("Overloaded"),
        "{error}"
    );
}

#[tokio::test]
async fn anthropic_error_event_mid_stream_ends_the_stream_with_an_openai_error() {
    let h = start().await;
    let mut body = common::chat("claude-broken");
    body["stream"] = json!(true);
    let events = stream(&h, body).await;
    assert_eq!(streamed_text(&events), "Once upon");
    let last = events.last().unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Overloaded"));
    assert!(!events.iter().any(|e| e == "[DONE]"));
}

#[tokio::test]
async fn untranslatable_parameters_are_refused_by_name() {
    let h = start().await;
    for (param, value) in [
        ("logprobs", json!(true)),
        ("presence_penalty", json!(0.5)),
        ("n", json!(2)),
        ("response_format", json!({"type": "json_object"})),
        ("audio", json!({"voice": "alloy"})),
    ] {
        let mut body = common::chat("claude-text");
        body[param] = value;
        let error = expect_error(h.post_json("/v1/chat/completions", &body).await, 400).await;
        assert_eq!(error["param"], param, "{error}");
    }
    // Structured output with a schema is translated.
    let mut body = common::chat("claude-text");
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "x",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}});
    assert_eq!(
        h.post_json("/v1/chat/completions", &body).await.status(),
        200
    );
    assert_eq!(
        upstream_body(&h)["output_config"]["format"]["type"],
        "json_schema"
    );

    // A malformed message is a 400 naming its path, before anything is sent.
    let before = h.upstream_requests();
    let body = json!({"model": "claude-text", "messages": [{"role": "wizard", "content": "hi"}]});
    let error = expect_error(h.post_json("/v1/chat/completions", &body).await, 400).await;
    assert_eq!(error["param"], "messages[0].role");
    assert_eq!(h.upstream_requests(), before);
    let body = json!({"model": "claude-text", "input": "x"});
    let error = expect_error(h.post_json("/v1/embeddings", &body).await, 400).await;
    assert!(
        error["message"].as_str().unwrap().contains("anthropic"),
        "{error}"
    );
}

#[tokio::test]
async fn a_translated_stream_is_passed_on_as_it_arrives() {
    let h = start().await;
    // The provider sends four events, then nothing: the client must already have the first
    // chunks, and then a timeout error, not a hang.
    let mut body = common::chat("claude-stalling");
    body["stream"] = json!(true);
    let mut response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(first.contains("\"role\":\"assistant\""), "{first}");
    let mut rest = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events = sse_events(&format!("{first}{rest}"));
    assert_eq!(streamed_text(&events), "Paris is the");
    assert_eq!(events.last().unwrap()["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn a_provider_rate_limit_comes_back_as_openai_429_with_its_retry_after() {
    let h = start().await;
    let response = h
        .post_json("/v1/chat/completions", &common::chat("claude-limited"))
        .await;
    // Retry-After (40 s) is beyond the retry budget's reach: no wait, the answer is handed on.
    assert_eq!(response.headers()["retry-after"], "40");
    let error = expect_error(response, 429).await;
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(
        h.upstream_requests(),
        1,
        "one attempt, no retry into the cool-down"
    );
}

#[tokio::test]
async fn a_client_hanging_up_mid_translated_stream_cancels_the_upstream() {
    let h = start().await;
    let mut body = common::chat("claude-stalling");
    body["stream"] = json!(true);
    let mut response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    assert!(
        h.wait_streams_cancelled(1).await,
        "the upstream stream was dropped with the client"
    );
}

// ---------------------------------------------------------------------------------------------
// Gemini

#[tokio::test]
async fn gemini_json_answer_and_request_shape() {
    let h = start().await;
    let body = json!({
        "model": "gemini-text",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Tell me something."}
        ],
        "max_tokens": 100, "temperature": 0.5, "stop": ["x", "y"],
        "response_format": {"type": "json_object"}
    });
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let recorded = h.mock.stats.last_request().unwrap();
    assert_eq!(recorded.path, "/v1beta/models/text:generateContent");
    assert_eq!(recorded.headers["x-goog-api-key"], "google-secret");
    let sent = upstream_body(&h);
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    let roles: Vec<&str> = sent["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user"]);
    let config = &sent["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 100);
    assert_eq!(config["temperature"], 0.5);
    assert_eq!(config["stopSequences"], json!(["x", "y"]));
    assert_eq!(config["responseMimeType"], "application/json");

    assert_eq!(answer["object"], "chat.completion");
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len()
            > 5
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn gemini_stream_with_function_calls_and_usage() {
    let h = start().await;
    let mut body = common::chat("gemini-tools");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["tools"] = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_local_time"}}
    ]);
    body["tool_choice"] = json!("auto");
    let events = stream(&h, body).await;
    let recorded = h.mock.stats.last_request().unwrap();
    assert_eq!(
        recorded.path,
        "/v1beta/models/function_call:streamGenerateContent"
    );
    let sent = upstream_body(&h);
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");

    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let (id0, name0, args0) = tool_arguments(&events, 0);
    assert!(!id0.is_empty());
    assert_eq!(name0, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&args0).unwrap(),
        json!({"city": "Paris"})
    );
    let (id1, name1, _) = tool_arguments(&events, 1);
    assert_eq!(name1, "get_local_time");
    assert_ne!(id0, id1);
    assert_eq!(
        finish_reason(&events),
        "tool_calls",
        "Gemini says STOP; a call means tool_calls"
    );
    let usage = &events[events.len() - 2]["usage"];
    assert_eq!(usage["prompt_tokens"], 96);
    assert_eq!(usage["completion_tokens"], 37 + 70);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 70);
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn gemini_thinking_is_counted_not_shown_and_safety_is_content_filter() {
    let h = start().await;
    let answer: Value = h
        .post_json("/v1/chat/completions", &common::chat("gemini-thinking"))
        .await
        .json()
        .await
        .unwrap();
    let usage = &answer["usage"];
    assert!(
        usage["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    let mut body = common::chat("gemini-thinking");
    body["stream"] = json!(true);
    let events = stream(&h, body).await;
    assert_eq!(
        streamed_text(&events),
        answer["choices"][0]["message"]["content"].as_str().unwrap(),
        "the streamed and whole answers carry the same text, without the thoughts"
    );

    let answer: Value = h
        .post_json("/v1/chat/completions", &common::chat("gemini-safety"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn gemini_errors_keep_their_status_and_break_streams_cleanly() {
    let h = start().await;
    let error = expect_error(
        h.post_json("/v1/chat/completions", &common::chat("gemini-invalid"))
            .await,
        400,
    )
    .await;
    assert_eq!(error["type"], "invalid_request_error");

    let mut body = common::chat("gemini-broken");
    body["stream"] = json!(true);
    let events = stream(&h, body).await;
    assert!(!streamed_text(&events).is_empty());
    let last = events.last().unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded"),
        "{last}"
    );
}
