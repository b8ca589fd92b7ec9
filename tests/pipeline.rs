//! The pipeline as a library call (`Pipeline::chat`, `Pipeline::embeddings`): an in-process
//! caller with a thread, a message and a usage scope goes through every plugin as a /v1 request
//! does (limits refuse it, metering records it with those ids), and the editing and frame
//! phases work on both paths.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gateway::context::{CallContext, Principal, PrincipalKind, Role, UsageScope};
use gateway::pipeline::{ChatAnswer, ChatMessage, ChatRequest};
use gateway::plugins::{Plugin, PluginFuture, RequestCtx};
use serde_json::json;
use sqlx::Row;

use common::limits::start;

fn user(id: &str) -> Principal {
    Principal {
        id: Arc::from(id),
        kind: PrincipalKind::AccessToken,
        role: Role::User,
        key_id: None,
        session_id: None,
        allowed_models: None,
    }
}

/// A thread and a message of `user_id`, written straight into the gateway's database (the
/// thread endpoints come with a later issue).
async fn thread_with_message(pool: &sqlx::SqlitePool, user_id: &str) -> (String, String) {
    let thread = format!("thr_{}", uuid::Uuid::new_v4().simple());
    let message = format!("msg_{}", uuid::Uuid::new_v4().simple());
    sqlx::query("INSERT INTO thread (id, user_id, title) VALUES (?, ?, 'test')")
        .bind(&thread)
        .bind(user_id)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO message (id, thread_id, user_id, role, content) VALUES (?, ?, ?, 'user', 'hi')",
    )
    .bind(&message)
    .bind(&thread)
    .bind(user_id)
    .execute(pool)
    .await
    .unwrap();
    (thread, message)
}

#[tokio::test]
async fn an_in_process_call_goes_through_limits_and_metering_with_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let h = start(
        &db_url,
        r#"
[limits]
user_tier = "two"
[limits.tiers.two]
requests_per_minute = 3
"#,
    )
    .await;
    let (user_id, token) = h.register("pipeline@example.com").await;
    let pool = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let (thread, message) = thread_with_message(&pool, &user_id).await;
    let pipeline = &h.gateway.state.pipeline;
    let call =
        || CallContext::new(user(&user_id), UsageScope::Chat).in_thread(&thread, Some(&message));
    let upstream_before = h.upstream_requests();

    // A whole answer.
    let request = ChatRequest::new("mock-gpt", vec![ChatMessage::user("Hello")]);
    let response = pipeline.chat(call(), request).await.expect("answered");
    let ChatAnswer::Complete(completion) = response.answer else {
        panic!("a whole answer expected")
    };
    assert!(!completion.text().is_empty(), "{completion:?}");
    assert!(completion
        .token_usage()
        .is_some_and(|u| u.prompt_tokens > 0));
    assert_eq!(
        response
            .headers
            .get("x-ratelimit-remaining-requests")
            .and_then(|v| v.to_str().ok()),
        Some("2"),
        "the limits plugin ran for the call"
    );

    // A stream, read to its end.
    let request = ChatRequest::new("mock-gpt", vec![ChatMessage::user("Hello again")]).streaming();
    let response = pipeline.chat(call(), request).await.expect("answered");
    let ChatAnswer::Stream(chunks) = response.answer else {
        panic!("a stream expected")
    };
    let (text, usage) = chunks.collect_text().await.expect("a whole stream");
    assert!(!text.is_empty());
    assert!(
        usage.is_some_and(|u| u.completion_tokens > 0),
        "usage chunk asked for"
    );
    h.wait_completed(2).await;

    // The user's third request this minute comes over /v1: the same bucket counts it.
    let r = h.settled(h.chat(&token, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The fourth, in process again, is refused like a /v1 request: a 429 with its wait.
    let request = ChatRequest::new("mock-gpt", vec![ChatMessage::user("One more")]);
    let error = pipeline.chat(call(), request).await.expect_err("refused");
    assert_eq!(error.status, 429, "{error}");
    assert_eq!(error.code.as_deref(), Some("rate_limit_exceeded"));
    assert!(error.retry_after.is_some_and(|s| s >= 1), "{error:?}");
    assert_eq!(
        h.upstream_requests(),
        upstream_before + 3,
        "a refused call is not forwarded"
    );

    // An unknown model is the caller's error, as on /v1.
    let request = ChatRequest::new("no-such-model", vec![ChatMessage::user("?")]);
    let error = pipeline.chat(call(), request).await.expect_err("unknown");
    assert_eq!(error.status, 404);
    assert_eq!(error.code.as_deref(), Some("model_not_found"));
    h.wait_completed(5).await;

    // Every call left a usage record with the thread, the message and the scope.
    h.gateway.flush_usage().await;
    let rows = sqlx::query(
        "SELECT scope, thread_id, message_id, status, outcome, stream, prompt_tokens \
         FROM usage_record WHERE user_id = ? ORDER BY id",
    )
    .bind(&user_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let seen: Vec<(String, Option<String>, i64, String, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<String, _>("scope"),
                r.get::<Option<String>, _>("message_id"),
                r.get::<i64, _>("status"),
                r.get::<String, _>("outcome"),
                r.get::<bool, _>("stream"),
            )
        })
        .collect();
    let m = Some(message.clone());
    assert_eq!(
        seen,
        [
            ("chat".into(), m.clone(), 200, "complete".into(), false),
            ("chat".into(), m.clone(), 200, "complete".into(), true),
            ("api".into(), None, 200, "complete".into(), false),
            ("chat".into(), m.clone(), 429, "rejected".into(), false),
            ("chat".into(), m.clone(), 404, "rejected".into(), false),
        ]
    );
    for row in rows
        .iter()
        .filter(|r| r.get::<String, _>("scope") == "chat")
    {
        assert_eq!(
            row.get::<Option<String>, _>("thread_id"),
            Some(thread.clone())
        );
    }
    assert!(rows[0].get::<i64, _>("prompt_tokens") > 0);
}

#[tokio::test]
async fn in_process_embeddings_carry_their_scope() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let h = start(&db_url, "").await;
    let (user_id, _) = h.register("embed@example.com").await;
    let call = CallContext::new(user(&user_id), UsageScope::Embedding);
    let inputs = ["first".to_string(), "second".to_string()];
    let embeddings = h
        .gateway
        .state
        .pipeline
        .embed(call, "mock-embed", &inputs)
        .await
        .expect("embedded");
    assert_eq!(embeddings.vectors.len(), 2);
    assert!(!embeddings.vectors[0].is_empty());
    h.wait_completed(1).await;
    h.gateway.flush_usage().await;
    let pool = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let (scope, route): (String, String) =
        sqlx::query_as("SELECT scope, route FROM usage_record WHERE user_id = ?")
            .bind(&user_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (scope.as_str(), route.as_str()),
        ("embedding", "embeddings")
    );
}

/// Adds a system message to every chat request and counts the answer bytes it sees.
#[derive(Default)]
struct Injector {
    seen_bytes: AtomicUsize,
    frames_text: Mutex<String>,
}

impl Plugin for Injector {
    fn name(&self) -> &'static str {
        "test-injector"
    }

    fn edits_chat(&self) -> bool {
        true
    }

    fn on_chat_request<'a>(
        &'a self,
        _ctx: &'a mut RequestCtx,
        request: &'a mut ChatRequest,
    ) -> PluginFuture<'a> {
        request
            .messages
            .insert(0, ChatMessage::system("Remember: the user likes tea."));
        Box::pin(std::future::ready(Ok(())))
    }

    fn observes_frames(&self) -> bool {
        true
    }

    fn on_frame(&self, _ctx: &RequestCtx, bytes: &[u8]) {
        self.seen_bytes.fetch_add(bytes.len(), Ordering::SeqCst);
        if let Ok(mut text) = self.frames_text.lock() {
            text.push_str(&String::from_utf8_lossy(bytes));
        }
    }
}

#[tokio::test]
async fn editing_and_frame_plugins_run_on_v1_and_in_process() {
    let injector = Arc::new(Injector::default());
    let h = common::start_with_plugins(
        common::TRANSLATED_PROVIDERS,
        &[injector.clone() as Arc<dyn Plugin>],
    )
    .await;

    // /v1: the body reaches the upstream edited, and the observer sees what the client got.
    let body = json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.25, "stream": true});
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let client_text = response.text().await.unwrap();
    let sent: serde_json::Value =
        serde_json::from_slice(&h.mock.stats.last_request().unwrap().body).unwrap();
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][1]["content"], "hi");
    assert_eq!(sent["temperature"], 0.25, "other fields kept");
    assert_eq!(
        *injector.frames_text.lock().unwrap(),
        client_text,
        "the observer saw exactly the client's bytes"
    );

    // A translated stream: the observer sees the translator's closing chunks and `[DONE]` too.
    injector.frames_text.lock().unwrap().clear();
    let body = json!({"model": "claude-text", "messages": [{"role": "user", "content": "hi"}],
        "stream": true});
    let response = h.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let client_text = response.text().await.unwrap();
    assert!(client_text.ends_with("data: [DONE]\n\n"), "{client_text}");
    assert_eq!(*injector.frames_text.lock().unwrap(), client_text);

    // In process: the same edit.
    let call = CallContext::new(Principal::master(), UsageScope::Summary);
    let request = ChatRequest::new("mock-gpt", vec![ChatMessage::user("summarise")]);
    let before = injector.seen_bytes.load(Ordering::SeqCst);
    let response = h.gateway.state.pipeline.chat(call, request).await.unwrap();
    assert!(matches!(response.answer, ChatAnswer::Complete(_)));
    let sent: serde_json::Value =
        serde_json::from_slice(&h.mock.stats.last_request().unwrap().body).unwrap();
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(injector.seen_bytes.load(Ordering::SeqCst) > before);

    // A /v1 body the editing phase cannot read is the client's error, before any upstream call.
    let response = h
        .client
        .post(format!("{}/v1/chat/completions", h.gateway.url()))
        .bearer_auth(common::KEY)
        .header("content-type", "application/json")
        .body(r#"{"model": "mock-gpt", "messages": "#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

/// In-process streams fail like /v1 ones: an upstream that stalls mid-stream ends the stream
/// with an error (not a silent short answer), and a caller that drops the stream is metered as
/// a client hang-up.
#[tokio::test]
async fn an_in_process_stream_that_breaks_or_is_dropped_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let h = start(&db_url, "").await;
    let (user_id, _) = h.register("streams@example.com").await;
    let pipeline = &h.gateway.state.pipeline;
    let call = || CallContext::new(user(&user_id), UsageScope::Chat);
    let stalling =
        || ChatRequest::new("stalling-model", vec![ChatMessage::user("tell me")]).streaming();

    // The upstream sends two chunks, then nothing: the idle timeout ends the stream.
    let ChatAnswer::Stream(chunks) = pipeline.chat(call(), stalling()).await.unwrap().answer else {
        panic!("a stream expected")
    };
    let error = chunks
        .collect_text()
        .await
        .expect_err("a broken stream is an error");
    assert_eq!(error.code.as_deref(), Some("upstream_timeout"), "{error:?}");
    h.wait_completed(1).await;

    // The caller reads one chunk and walks away.
    let ChatAnswer::Stream(mut chunks) = pipeline.chat(call(), stalling()).await.unwrap().answer
    else {
        panic!("a stream expected")
    };
    assert!(chunks.next().await.expect("a first chunk").is_ok());
    drop(chunks);
    h.wait_completed(2).await;

    h.gateway.flush_usage().await;
    let pool = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM usage_record WHERE user_id = ? ORDER BY id")
            .bind(&user_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(outcomes, ["upstream_failed", "client_disconnected"]);
}
