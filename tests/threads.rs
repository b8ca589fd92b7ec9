//! Seed 003's threads and chat stream over real HTTP, as its web client calls them: bare lists,
//! `llm_name`, 201/204, "Thread not found" for anyone else's or a deleted thread, the SSE
//! `chunk` / `done` / `error` events read by an SSE client library, regenerate, a title made by
//! the model, 409 on a second send while answering, an upstream failure mid-stream that keeps
//! the question and nothing of the answer, and a client that goes away while the answer is
//! still saved and metered. On every database of `common::db::databases()`.

mod common;

use std::time::Duration;

use common::rest::{assert_api_error, reply, send, Reply};
use common::Harness;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::multipart::Form;
use reqwest::Method;
use serde_json::{json, Value};

/// A model whose answer arrives slowly (10 chunks, 40 ms apart), and one that breaks after two
/// chunks, both on the mock.
const SLOW_AND_BROKEN: &str = r#"
[[providers]]
name = "trickle"
base_url = "http://{MOCK_ADDR}/v1"
headers = { x-mock-chunks = "10", x-mock-chunk-delay-ms = "40" }

[[providers]]
name = "breaking"
base_url = "http://{MOCK_ADDR}/v1"
headers = { x-mock-reset-after = "2" }

[[models]]
name = "slow-answer"
targets = [{ provider = "trickle", model = "mock-gpt" }]

[[models]]
name = "broken-answer"
targets = [{ provider = "breaking", model = "mock-gpt" }]

[pricing.models."mock-gpt"]
input_per_mtok = 1.0
output_per_mtok = 2.0
"#;

async fn register(h: &Harness, email: &str) -> String {
    let r = send(
        h,
        Method::POST,
        "/api/v1/auth/register",
        None,
        Some(&json!({"email": email, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_string()
}

async fn new_thread(h: &Harness, token: &str, model: &str) -> String {
    let r = send(
        h,
        Method::POST,
        "/api/v1/threads/",
        Some(token),
        Some(&json!({"llm_name": model})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

/// One SSE event as the client library parsed it.
#[derive(Debug)]
struct Event {
    event: String,
    data: String,
}

async fn post_form(h: &Harness, path: &str, token: &str, form: Option<Form>) -> reqwest::Response {
    let mut request = h.client.post(h.url(path)).bearer_auth(token);
    if let Some(form) = form {
        request = request.multipart(form);
    }
    request.send().await.unwrap()
}

/// Sends `prompt` and reads the whole stream with the SSE client.
async fn chat(h: &Harness, token: &str, thread: &str, prompt: &str) -> Vec<Event> {
    let r = post_form(
        h,
        &format!("/api/v1/chat/{thread}/send"),
        token,
        Some(Form::new().text("prompt", prompt.to_string())),
    )
    .await;
    read_events(r).await
}

async fn read_events(r: reqwest::Response) -> Vec<Event> {
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    r.bytes_stream()
        .eventsource()
        .map(|e| {
            let e = e.expect("well-formed SSE");
            Event {
                event: e.event,
                data: e.data,
            }
        })
        .collect()
        .await
}

fn done_of(events: &[Event]) -> Value {
    let last = events.last().expect("some events");
    assert_eq!(last.event, "done", "{events:?}");
    serde_json::from_str(&last.data).expect("done carries JSON")
}

async fn detail(h: &Harness, token: &str, thread: &str) -> Reply {
    send(
        h,
        Method::GET,
        &format!("/api/v1/threads/{thread}"),
        Some(token),
        None,
    )
    .await
}

each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    threads_and_chat_as_seed_003_calls_them,
    |engine, url| {
        let h = common::start_on(&url, SLOW_AND_BROKEN).await;
        let ann = register(&h, "ann@example.com").await;
        let bob = register(&h, "bob@example.com").await;

        // Empty, then a thread: 201 with the default title; `llm` is read as `llm_name`.
        let r = send(&h, Method::GET, "/api/v1/threads/", Some(&ann), None).await;
        assert_eq!(
            (r.status, &r.body),
            (200, &json!([])),
            "{engine}: {}",
            r.text
        );
        let thread = new_thread(&h, &ann, "mock-gpt").await;
        let r = send(
            &h,
            Method::POST,
            "/api/v1/threads",
            Some(&ann),
            Some(&json!({"llm": "renamed", "title": "Second"})),
        )
        .await;
        assert_eq!(r.status, 201, "{engine}: {}", r.text);
        assert_eq!(r.body["llm_name"], "renamed");
        let second = r.body["id"].as_str().unwrap().to_string();
        let r = send(
            &h,
            Method::POST,
            "/api/v1/threads/",
            Some(&ann),
            Some(&json!({"title": "x"})),
        )
        .await;
        assert_api_error(
            &r,
            422,
            "invalid_request",
            &format!("{engine}: no llm_name"),
        );

        // A chat turn: chunks of raw text, then `done` with the saved answer.
        let events = chat(&h, &ann, &thread, "Hello there").await;
        let chunks: String = events
            .iter()
            .filter(|e| e.event == "chunk")
            .map(|e| e.data.as_str())
            .collect();
        let done = done_of(&events);
        assert_eq!(
            chunks,
            done["content"].as_str().unwrap(),
            "{engine}: chunks add up to done.content"
        );
        assert!(chunks.starts_with("tok0"), "{engine}: {chunks}");
        assert_eq!(done["model"], "mock-gpt");
        assert!(
            done["usage"]["completion_tokens"].as_u64().unwrap() > 0,
            "{engine}: {done}"
        );
        assert!(done["cost_usd"].as_f64().unwrap() > 0.0, "{engine}: {done}");
        let answer_id = done["message_id"].as_str().unwrap().to_string();

        // The thread: both messages, oldest first, the answer with its usage.
        let r = detail(&h, &ann, &thread).await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(r.body["title"], "New chat");
        let messages = r.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2, "{engine}: {}", r.text);
        assert_eq!(
            (
                messages[0]["role"].as_str(),
                messages[0]["content"].as_str()
            ),
            (Some("user"), Some("Hello there"))
        );
        assert_eq!(messages[1]["id"], answer_id.as_str());
        assert_eq!(messages[1]["content"], done["content"]);
        assert_eq!(
            messages[1]["token_count"].as_i64(),
            done["usage"]["total_tokens"].as_i64()
        );
        assert_eq!(messages[1]["attachments"], json!([]));
        let keys: Vec<&str> = messages[1]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "id",
            "role",
            "content",
            "model",
            "prompt_tokens",
            "completion_tokens",
            "token_count",
            "cost_usd",
            "created_at",
            "attachments",
        ] {
            assert!(keys.contains(&key), "{engine}: {key}");
        }
        // Paging the messages, and past the end.
        let r = send(
            &h,
            Method::GET,
            &format!("/api/v1/threads/{thread}?msg_offset=1&msg_limit=1"),
            Some(&ann),
            None,
        )
        .await;
        assert_eq!(r.body["messages"][0]["role"], "assistant", "{engine}");
        let r = send(
            &h,
            Method::GET,
            &format!("/api/v1/threads/{thread}?msg_offset=9"),
            Some(&ann),
            None,
        )
        .await;
        assert_eq!(r.body["messages"], json!([]), "{engine}");
        let r = send(
            &h,
            Method::GET,
            &format!("/api/v1/threads/{thread}?msg_limit=201"),
            Some(&ann),
            None,
        )
        .await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: msg_limit"));

        // The list: the answered thread first, with a preview of its last message.
        let r = send(&h, Method::GET, "/api/v1/threads/", Some(&ann), None).await;
        let list = r.body.as_array().unwrap();
        assert_eq!(list.len(), 2, "{engine}");
        assert_eq!(
            list[0]["id"],
            thread.as_str(),
            "{engine}: newest-updated first"
        );
        assert!(
            list[0]["last_message_preview"]
                .as_str()
                .unwrap()
                .starts_with("tok0"),
            "{engine}"
        );
        assert_eq!(list[1]["last_message_preview"], Value::Null);
        let r = send(
            &h,
            Method::GET,
            "/api/v1/threads/?limit=1&offset=1",
            Some(&ann),
            None,
        )
        .await;
        assert_eq!(r.body[0]["id"], second.as_str(), "{engine}");
        let r = send(
            &h,
            Method::GET,
            "/api/v1/threads/?limit=0",
            Some(&ann),
            None,
        )
        .await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: limit 0"));

        // Regenerate: the last answer is replaced, the question is not repeated.
        let r = post_form(&h, &format!("/api/v1/chat/{thread}/regenerate"), &ann, None).await;
        let again = done_of(&read_events(r).await);
        assert_ne!(again["message_id"], answer_id.as_str());
        let r = detail(&h, &ann, &thread).await;
        let messages = r.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2, "{engine}: {}", r.text);
        assert_eq!(messages[1]["id"], again["message_id"]);
        // Nothing to regenerate from in an empty thread.
        let r =
            reply(post_form(&h, &format!("/api/v1/chat/{second}/regenerate"), &ann, None).await)
                .await;
        assert_api_error(&r, 400, "no_user_message", &format!("{engine}: regenerate"));
        assert_eq!(r.body["detail"], "No user message to regenerate from");

        // A title from the model (usage scope `title`).
        let r = send(
            &h,
            Method::POST,
            &format!("/api/v1/threads/{thread}/generate-title"),
            Some(&ann),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        let title = r.body["title"].as_str().unwrap().to_string();
        assert!(title.starts_with("tok0"), "{engine}: {title}");
        assert_eq!(
            detail(&h, &ann, &thread).await.body["title"],
            title.as_str()
        );

        // An unknown model: the question is kept, the error is an event, no answer is saved.
        let lost = new_thread(&h, &ann, "no-such-model").await;
        let events = chat(&h, &ann, &lost, "Anyone?").await;
        assert_eq!(events.len(), 1, "{engine}: {events:?}");
        assert_eq!(events[0].event, "error");
        assert!(
            events[0].data.contains("no-such-model"),
            "{engine}: {}",
            events[0].data
        );
        let r = detail(&h, &ann, &lost).await;
        assert_eq!(
            r.body["messages"].as_array().unwrap().len(),
            1,
            "{engine}: only the question"
        );

        // An upstream that breaks mid-answer: some chunks, then an error; nothing half-written.
        let broken = new_thread(&h, &ann, "broken-answer").await;
        let events = chat(&h, &ann, &broken, "Tell me").await;
        assert_eq!(
            events.last().unwrap().event,
            "error",
            "{engine}: {events:?}"
        );
        let r = detail(&h, &ann, &broken).await;
        let messages = r.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "{engine}: {}", r.text);
        assert_eq!(messages[0]["role"], "user");
        // The thread is free again: a send after a failure is answered (here: fails again).
        let events = chat(&h, &ann, &broken, "Again").await;
        assert_eq!(events.last().unwrap().event, "error", "{engine}");

        // Malformed or empty forms: 422 before anything is saved.
        let r = reply(
            post_form(
                &h,
                &format!("/api/v1/chat/{second}/send"),
                &ann,
                Some(Form::new().text("prompt", "  ")),
            )
            .await,
        )
        .await;
        assert_api_error(
            &r,
            422,
            "invalid_request",
            &format!("{engine}: empty prompt"),
        );
        let r = reply(
            h.client
                .post(h.url(&format!("/api/v1/chat/{second}/send")))
                .bearer_auth(&ann)
                .header("content-type", "multipart/form-data; boundary=x")
                .body("--x\r\nbroken")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_api_error(
            &r,
            422,
            "invalid_request",
            &format!("{engine}: malformed multipart"),
        );
        let r = reply(
            post_form(
                &h,
                &format!("/api/v1/chat/{second}/send"),
                &ann,
                Some(Form::new().text("prompt", "hi").part(
                    "files",
                    reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("a.png"),
                )),
            )
            .await,
        )
        .await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: files"));
        assert_eq!(
            detail(&h, &ann, &second).await.body["messages"],
            json!([]),
            "{engine}"
        );

        // Another user's thread is "Thread not found" everywhere.
        let not_found = |r: &Reply, what: &str| {
            assert_api_error(r, 404, "not_found", &format!("{engine}: {what}"));
            assert_eq!(r.body["detail"], "Thread not found", "{engine}: {what}");
        };
        not_found(&detail(&h, &bob, &thread).await, "bob reads");
        not_found(
            &send(
                &h,
                Method::PATCH,
                &format!("/api/v1/threads/{thread}"),
                Some(&bob),
                Some(&json!({"title": "mine"})),
            )
            .await,
            "bob renames",
        );
        not_found(
            &send(
                &h,
                Method::DELETE,
                &format!("/api/v1/threads/{thread}"),
                Some(&bob),
                None,
            )
            .await,
            "bob deletes",
        );
        not_found(
            &reply(
                post_form(
                    &h,
                    &format!("/api/v1/chat/{thread}/send"),
                    &bob,
                    Some(Form::new().text("prompt", "hi")),
                )
                .await,
            )
            .await,
            "bob sends",
        );
        not_found(
            &send(
                &h,
                Method::POST,
                &format!("/api/v1/threads/{thread}/generate-title"),
                Some(&bob),
                None,
            )
            .await,
            "bob titles",
        );
        assert_eq!(
            send(&h, Method::GET, "/api/v1/threads/", Some(&bob), None)
                .await
                .body,
            json!([])
        );

        // PATCH changes what is sent; the model too.
        let r = send(
            &h,
            Method::PATCH,
            &format!("/api/v1/threads/{second}"),
            Some(&ann),
            Some(&json!({"title": "Renamed", "llm_name": "mock-gpt"})),
        )
        .await;
        assert_eq!(
            (r.status, &r.body["title"], &r.body["llm_name"]),
            (200, &json!("Renamed"), &json!("mock-gpt")),
            "{engine}: {}",
            r.text
        );

        // Spend: the answers' costs.
        let r = send(&h, Method::GET, "/api/v1/auth/usage", Some(&ann), None).await;
        assert!(
            r.body["total_spent_usd"].as_f64().unwrap() > 0.0,
            "{engine}: {}",
            r.text
        );

        // DELETE: 204, then gone everywhere; the spend no longer counts it.
        let r = send(
            &h,
            Method::DELETE,
            &format!("/api/v1/threads/{thread}"),
            Some(&ann),
            None,
        )
        .await;
        assert_eq!((r.status, r.text.as_str()), (204, ""), "{engine}");
        not_found(&detail(&h, &ann, &thread).await, "deleted");
        not_found(
            &send(
                &h,
                Method::DELETE,
                &format!("/api/v1/threads/{thread}"),
                Some(&ann),
                None,
            )
            .await,
            "deleted twice",
        );
        not_found(
            &reply(
                post_form(
                    &h,
                    &format!("/api/v1/chat/{thread}/send"),
                    &ann,
                    Some(Form::new().text("prompt", "hi")),
                )
                .await,
            )
            .await,
            "send to deleted",
        );
        let r = send(&h, Method::GET, "/api/v1/auth/usage", Some(&ann), None).await;
        assert_eq!(
            r.body["total_spent_usd"].as_f64(),
            Some(0.0),
            "{engine}: {}",
            r.text
        );

        // The model lists.
        let r = send(&h, Method::GET, "/api/v1/llm/models", Some(&ann), None).await;
        assert!(
            r.body
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["model"] == "mock-gpt" && m["provider"] == "mock"),
            "{engine}: {}",
            r.text
        );
        let r = send(&h, Method::GET, "/api/v1/llm/providers", Some(&ann), None).await;
        let mock = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["provider"] == "mock")
            .cloned()
            .unwrap();
        assert_eq!(mock["available"], true, "{engine}: {mock}");
        // Without a credential: 401.
        let r = send(&h, Method::GET, "/api/v1/threads/", None, None).await;
        assert_api_error(&r, 401, "not_authenticated", &format!("{engine}: no token"));
    }
);

each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    an_answer_outlives_its_client_and_a_second_send_waits,
    |engine, url| {
        let h = common::start_on(&url, SLOW_AND_BROKEN).await;
        let ann = register(&h, "ann@example.com").await;
        let thread = new_thread(&h, &ann, "slow-answer").await;

        // Read the first chunk, then hang up.
        let r = post_form(
            &h,
            &format!("/api/v1/chat/{thread}/send"),
            &ann,
            Some(Form::new().text("prompt", "Take your time")),
        )
        .await;
        let mut events = r.bytes_stream().eventsource();
        let first = events.next().await.unwrap().unwrap();
        assert_eq!(first.event, "chunk", "{engine}");

        // Still answering: a second send is refused with 409, and nothing of it is saved.
        let r = reply(
            post_form(
                &h,
                &format!("/api/v1/chat/{thread}/send"),
                &ann,
                Some(Form::new().text("prompt", "Hello?")),
            )
            .await,
        )
        .await;
        assert_api_error(&r, 409, "conflict", &format!("{engine}: concurrent send"));
        drop(events);

        // The answer is finished and saved all the same: a reload shows it (bounded wait).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let messages = loop {
            let r = detail(&h, &ann, &thread).await;
            let messages = r.body["messages"].as_array().unwrap().clone();
            if messages.len() == 2 {
                break messages;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{engine}: the answer never landed: {}",
                r.text
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(messages[0]["content"], "Take your time");
        assert_eq!(
            messages[1]["content"]
                .as_str()
                .unwrap()
                .matches("tok")
                .count(),
            10,
            "{engine}"
        );

        // Metered, with the thread and the answer's id on the record.
        h.gateway.flush_usage().await;
        let r = send(
            &h,
            Method::GET,
            &format!(
                "/chat/messages/{}/usage-details",
                messages[1]["id"].as_str().unwrap()
            ),
            Some(&ann),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(
            r.body["items"].as_array().unwrap().len(),
            1,
            "{engine}: {}",
            r.text
        );
        assert_eq!(
            r.body["items"][0]["scope"], "chat.completions",
            "{engine}: {}",
            r.text
        );
        assert_eq!(r.body["conversation_id"], thread.as_str());

        // And the thread takes the next message.
        let events = chat(&h, &ann, &thread, "Thanks").await;
        assert_eq!(events.last().unwrap().event, "done", "{engine}");
    }
);

/// A model whose context window holds about two long turns (150 tokens after the answer's
/// allowance), so a third is sent without the first.
const SMALL_WINDOW: &str = r#"
[[models]]
name = "small-window"
targets = [{ provider = "mock", model = "mock-gpt" }]

[pricing.models."small-window"]
input_per_mtok = 1.0
output_per_mtok = 1.0
context_window = 200
max_output_tokens = 50
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_the_window_drops_are_folded_into_a_running_summary() {
    let h = common::start_with(SMALL_WINDOW).await;
    let ann = register(&h, "ann@example.com").await;
    let thread = new_thread(&h, &ann, "small-window").await;
    let long = "word ".repeat(60);
    // The first turn fits; the second pushes the first question out of the window.
    for _ in 0..2 {
        let events = chat(&h, &ann, &thread, &long).await;
        assert_eq!(events.last().unwrap().event, "done", "{events:?}");
    }
    h.gateway.flush_jobs().await;
    h.gateway.flush_usage().await;

    // The summary (made by the model, usage scope `summary`) is the thread's: seed 004's list
    // shows it.
    let r = send(&h, Method::GET, "/conversations/", Some(&ann), None).await;
    let summary = r.body[0]["summary"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(summary.starts_with("tok0"), "{}", r.text);
    let r = send(
        &h,
        Method::GET,
        &format!("/chat/{thread}/usage-details"),
        Some(&ann),
        None,
    )
    .await;
    let scopes: Vec<&str> = r.body["usage_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["final", "final", "summary"], "{}", r.text);

    // A short turn drops nothing the summary has not covered: no new summary. The summary
    // rides along as a system message.
    let events = chat(&h, &ann, &thread, "short").await;
    assert_eq!(events.last().unwrap().event, "done", "{events:?}");
    h.gateway.flush_jobs().await;
    h.gateway.flush_usage().await;
    let r = send(
        &h,
        Method::GET,
        &format!("/chat/{thread}/usage-details"),
        Some(&ann),
        None,
    )
    .await;
    let count = |r: &Reply| {
        r.body["usage_details"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["scope"] == "summary")
            .count()
    };
    assert_eq!(count(&r), 1, "{}", r.text);
    // A long one pushes more out: the summary moves on over them.
    let events = chat(&h, &ann, &thread, &long).await;
    assert_eq!(events.last().unwrap().event, "done", "{events:?}");
    h.gateway.flush_jobs().await;
    h.gateway.flush_usage().await;
    let r = send(
        &h,
        Method::GET,
        &format!("/chat/{thread}/usage-details"),
        Some(&ann),
        None,
    )
    .await;
    assert_eq!(count(&r), 2, "{}", r.text);

    // A thread whose history fits is never summarized.
    let small = new_thread(&h, &ann, "mock-gpt").await;
    chat(&h, &ann, &small, "hi").await;
    chat(&h, &ann, &small, "again").await;
    h.gateway.flush_jobs().await;
    h.gateway.flush_usage().await;
    let r = send(
        &h,
        Method::GET,
        &format!("/chat/{small}/usage-details"),
        Some(&ann),
        None,
    )
    .await;
    assert!(
        r.body["usage_details"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["scope"] == "final"),
        "{}",
        r.text
    );
}

/// An answer that outlasts its thread's lease (1 s here, taking 2.5 s) keeps the thread: the
/// lease is renewed while it runs, so a second send is still refused past the first lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_keeps_renewing_its_hold_on_the_thread() {
    let h = common::start_with(
        r#"
[chat]
answer_lease_secs = 1

[[providers]]
name = "long"
base_url = "http://{MOCK_ADDR}/v1"
headers = { x-mock-chunks = "25", x-mock-chunk-delay-ms = "100" }

[[models]]
name = "long-answer"
targets = [{ provider = "long", model = "mock-gpt" }]
"#,
    )
    .await;
    let ann = register(&h, "ann@example.com").await;
    let thread = new_thread(&h, &ann, "long-answer").await;
    let r = post_form(
        &h,
        &format!("/api/v1/chat/{thread}/send"),
        &ann,
        Some(Form::new().text("prompt", "Go on")),
    )
    .await;
    let mut events = r.bytes_stream().eventsource();
    assert_eq!(events.next().await.unwrap().unwrap().event, "chunk");
    // Past the first lease, with the answer still running: still the answer's.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let r = reply(
        post_form(
            &h,
            &format!("/api/v1/chat/{thread}/send"),
            &ann,
            Some(Form::new().text("prompt", "Me too")),
        )
        .await,
    )
    .await;
    assert_api_error(&r, 409, "conflict", "a send past the first lease");
    // The answer ends; then the thread takes the next message.
    let mut last = None;
    while let Some(event) = events.next().await {
        last = Some(event.unwrap().event);
    }
    assert_eq!(last.as_deref(), Some("done"));
    let events = chat(&h, &ann, &thread, "Thanks").await;
    assert_eq!(events.last().unwrap().event, "done");
}
