//! The usage endpoints over real HTTP, on every database of `common::db::databases()`: seed
//! 004's message and conversation usage details, a user's summary and records, one key's
//! summary, the admin views across users; ownership (404), admin-only (403/401), bad dates
//! (422), pagination by offset and by keyset, and a table of 100,000 records.
//!
//! Records are written with `Store::insert_usage` on a second store opened on the gateway's
//! database (SQLite in a temporary file so both can open it), threads and messages with SQL.

mod common;

use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::rest::{assert_api_error, get, open_store, shared_databases};
use common::{Harness, KEY};
use gateway::store::{Pool, Store};
use gateway::usage::{TokenUsage, UsageRecord};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

// ---------------------------------------------------------------------------------------------
// Helpers

/// GET expecting a 200, returning the body.
async fn ok(h: &Harness, path: &str, token: &str, context: &str) -> Value {
    let r = get(h, path, Some(token)).await;
    assert_eq!(r.status, 200, "{context}: GET {path}: {}", r.text);
    r.body
}

struct User {
    id: String,
    token: String,
}

async fn register(h: &Harness, email: &str) -> User {
    let response = h
        .client
        .post(h.url("/api/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "registering {email}");
    let body: Value = response.json().await.unwrap();
    User {
        id: body["user"]["id"].as_str().unwrap().to_string(),
        token: body["access_token"].as_str().unwrap().to_string(),
    }
}

async fn login(h: &Harness, email: &str) -> String {
    let response = h
        .client
        .post(h.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "logging in as {email}");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn create_key(h: &Harness, token: &str, name: &str) -> String {
    let response = h
        .client
        .post(h.url("/api/v1/keys"))
        .bearer_auth(token)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "creating key {name}");
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// Runs one statement with text parameters on either engine.
async fn execute(store: &Store, sql: &str, args: &[&str]) {
    match store.pool() {
        Pool::Sqlite(pool) => {
            let mut query = sqlx::query(sql);
            for arg in args {
                query = query.bind(*arg);
            }
            query.execute(pool).await.expect(sql);
        }
        Pool::Postgres(pool) => {
            let mut query = sqlx::query(sql);
            for arg in args {
                query = query.bind(*arg);
            }
            query.execute(pool).await.expect(sql);
        }
    }
}

async fn insert_thread(store: &Store, id: &str, user_id: &str) {
    execute(
        store,
        "INSERT INTO thread (id, user_id, title) VALUES ($1, $2, 'a chat')",
        &[id, user_id],
    )
    .await;
}

async fn insert_message(store: &Store, id: &str, thread_id: &str, user_id: &str) {
    execute(
        store,
        "INSERT INTO message (id, thread_id, user_id, role, content) VALUES ($1, $2, $3, 'assistant', 'hi')",
        &[id, thread_id, user_id],
    )
    .await;
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// One record; the rest of its fields filled as the metering writer would.
struct Rec<'a> {
    user: Option<&'a str>,
    key: Option<&'a str>,
    thread: Option<&'a str>,
    message: Option<&'a str>,
    model: &'a str,
    prompt: u64,
    completion: u64,
    cached: u64,
    reasoning: u64,
    audio_seconds: f64,
    cost: f64,
    at: DateTime<Utc>,
}

impl Default for Rec<'_> {
    fn default() -> Self {
        Rec {
            user: None,
            key: None,
            thread: None,
            message: None,
            model: "gpt-4o",
            prompt: 0,
            completion: 0,
            cached: 0,
            reasoning: 0,
            audio_seconds: 0.0,
            cost: 0.0,
            at: at(2025, 3, 1, 0, 0, 0),
        }
    }
}

fn record(r: &Rec) -> UsageRecord {
    UsageRecord {
        request_id: uuid::Uuid::new_v4().simple().to_string(),
        user_id: r.user.map(str::to_string),
        api_key_id: r.key.map(str::to_string),
        thread_id: r.thread.map(str::to_string),
        message_id: r.message.map(str::to_string),
        route: if r.audio_seconds > 0.0 {
            "audio.transcriptions".into()
        } else {
            "chat.completions".into()
        },
        model: Some(r.model.to_string()),
        provider: Some("mock".into()),
        upstream_model: Some(r.model.to_string()),
        status: 200,
        outcome: "complete".into(),
        stream: false,
        usage: TokenUsage {
            prompt_tokens: r.prompt,
            completion_tokens: r.completion,
            cached_tokens: r.cached,
            reasoning_tokens: r.reasoning,
            audio_seconds: r.audio_seconds,
            ..TokenUsage::default()
        },
        cost_usd: r.cost,
        latency_ms: 120,
        ttfb_ms: Some(40),
        scope: Default::default(),
        created_at: r.at,
    }
}

fn assert_close(value: &Value, expected: f64, context: &str) {
    let got = value
        .as_f64()
        .unwrap_or_else(|| panic!("{context}: {value} is no number"));
    assert!(
        (got - expected).abs() < 1e-9,
        "{context}: {got} != {expected}"
    );
}

fn ids(items: &Value) -> Vec<i64> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The endpoints

#[tokio::test]
async fn usage_summaries_records_details_and_ownership() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in shared_databases(&dir).await {
        let h = common::start_on(&url, "").await;
        let alice = register(&h, "alice@example.com").await;
        let bob = register(&h, "bob@example.com").await;
        let root = register(&h, "root@example.com").await;
        let store = open_store(&url).await;
        assert!(store.set_role(&root.id, "admin").await.unwrap());
        let admin = login(&h, "root@example.com").await;
        let alice_key = create_key(&h, &alice.token, "alice ci").await;
        let bob_key = create_key(&h, &bob.token, "bob ci").await;

        insert_thread(&store, "t-alice", &alice.id).await;
        insert_message(&store, "m-alice-1", "t-alice", &alice.id).await;
        insert_message(&store, "m-alice-2", "t-alice", &alice.id).await;
        insert_thread(&store, "t-bob", &bob.id).await;
        insert_message(&store, "m-bob", "t-bob", &bob.id).await;

        let a = Some(alice.id.as_str());
        let records = [
            // Day 1 (2025-03-01).
            Rec {
                user: a,
                key: Some(&alice_key),
                thread: Some("t-alice"),
                message: Some("m-alice-1"),
                prompt: 100,
                completion: 50,
                cached: 20,
                cost: 0.001,
                at: at(2025, 3, 1, 10, 0, 0),
                ..Rec::default()
            },
            Rec {
                user: a,
                thread: Some("t-alice"),
                message: Some("m-alice-1"),
                prompt: 200,
                completion: 100,
                reasoning: 10,
                cost: 0.002,
                at: at(2025, 3, 1, 11, 0, 0),
                ..Rec::default()
            },
            Rec {
                user: a,
                key: Some(&alice_key),
                thread: Some("t-alice"),
                message: Some("m-alice-2"),
                model: "claude-sonnet-4",
                prompt: 10,
                completion: 5,
                cost: 0.0005,
                at: at(2025, 3, 1, 12, 0, 0),
                ..Rec::default()
            },
            // Day 2 (2025-03-02), the last one a millisecond before midnight.
            Rec {
                user: a,
                key: Some(&alice_key),
                prompt: 1000,
                completion: 500,
                cost: 0.01,
                at: at(2025, 3, 2, 9, 0, 0),
                ..Rec::default()
            },
            Rec {
                user: a,
                model: "whisper-1",
                audio_seconds: 90.0,
                cost: 0.009,
                at: at(2025, 3, 2, 23, 59, 59) + Duration::milliseconds(999),
                ..Rec::default()
            },
            // Bob, and the master key (no user).
            Rec {
                user: Some(&bob.id),
                key: Some(&bob_key),
                thread: Some("t-bob"),
                message: Some("m-bob"),
                prompt: 7,
                completion: 3,
                cost: 0.0001,
                at: at(2025, 3, 1, 10, 30, 0),
                ..Rec::default()
            },
            Rec {
                prompt: 1,
                completion: 1,
                cost: 0.00001,
                at: at(2025, 3, 2, 8, 0, 0),
                ..Rec::default()
            },
        ];
        let rows: Vec<UsageRecord> = records.iter().map(record).collect();
        assert_eq!(store.insert_usage(&rows).await.unwrap(), 7, "{engine}");

        // --- The user's summary by day and model.
        let s = ok(&h, "/api/v1/usage", &alice.token, engine).await;
        assert_eq!(s["total"], 4, "{engine}: {s}");
        assert_eq!(
            (s["limit"].clone(), s["offset"].clone()),
            (json!(50), json!(0))
        );
        let groups: Vec<(String, String, i64)> = s["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["date"].as_str().unwrap().to_string(),
                    g["model"].as_str().unwrap().to_string(),
                    g["requests"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("2025-03-02".to_string(), "gpt-4o".to_string(), 1),
                ("2025-03-02".into(), "whisper-1".into(), 1),
                ("2025-03-01".into(), "claude-sonnet-4".into(), 1),
                ("2025-03-01".into(), "gpt-4o".into(), 2),
            ],
            "{engine}"
        );
        let day1_gpt = &s["items"][3];
        assert_eq!(day1_gpt["input_tokens"], 300, "{engine}");
        assert_eq!(day1_gpt["output_tokens"], 150, "{engine}");
        assert_eq!(day1_gpt["cached_tokens"], 20, "{engine}");
        assert_eq!(day1_gpt["reasoning_tokens"], 10, "{engine}");
        assert_eq!(day1_gpt["total_tokens"], 450, "{engine}");
        assert_close(&day1_gpt["cost_usd"], 0.003, engine);
        assert_close(&s["items"][1]["audio_seconds"], 90.0, engine);
        let t = &s["totals"];
        assert_eq!(t["requests"], 5, "{engine}");
        assert_eq!(t["input_tokens"], 1310, "{engine}");
        assert_eq!(t["output_tokens"], 655, "{engine}");
        assert_eq!(t["cached_tokens"], 20, "{engine}");
        assert_eq!(t["reasoning_tokens"], 10, "{engine}");
        assert_eq!(t["total_tokens"], 1965, "{engine}");
        assert_close(&t["audio_seconds"], 90.0, engine);
        assert_close(&t["cost_usd"], 0.0225, engine);

        // Pages and filters.
        let p = ok(&h, "/api/v1/usage?limit=1&offset=1", &alice.token, engine).await;
        assert_eq!(p["total"], 4, "{engine}");
        assert_eq!(p["items"].as_array().unwrap().len(), 1, "{engine}");
        assert_eq!(p["items"][0]["model"], "whisper-1", "{engine}");
        assert_eq!(
            p["totals"]["requests"], 5,
            "{engine}: totals ignore the page"
        );
        // Past the end: no items, the same total and totals.
        let p = ok(&h, "/api/v1/usage?offset=10", &alice.token, engine).await;
        assert_eq!(p["items"], json!([]), "{engine}");
        assert_eq!(p["total"], 4, "{engine}");
        assert_eq!(p["totals"]["requests"], 5, "{engine}");
        assert_close(&p["totals"]["cost_usd"], 0.0225, engine);
        // Nothing matches.
        let p = ok(&h, "/api/v1/usage?model=nope", &alice.token, engine).await;
        assert_eq!(p["total"], 0, "{engine}");
        assert_eq!(p["totals"]["requests"], 0, "{engine}");
        assert_eq!(p["totals"]["cost_usd"], 0.0, "{engine}");
        let by_key = format!("key_id={alice_key}");
        let cases: [(&str, i64, i64, f64); 7] = [
            ("from=2025-03-02", 2, 2, 0.019),
            ("to=2025-03-01", 2, 3, 0.0035),
            // The whole second day, its last millisecond included.
            ("from=2025-03-02&to=2025-03-02", 2, 2, 0.019),
            // Instants: `to` includes its instant.
            (
                "from=2025-03-01T11:00:00Z&to=2025-03-02T09:00:00%2B00:00",
                3,
                3,
                0.0125,
            ),
            ("to=2025-03-02T23:59:59.998Z", 3, 4, 0.0135),
            ("model=gpt-4o", 2, 3, 0.013),
            (&by_key, 3, 3, 0.0115),
        ];
        for (query, groups, requests, cost) in cases {
            let s = ok(&h, &format!("/api/v1/usage?{query}"), &alice.token, engine).await;
            let context = format!("{engine}: ?{query}: {s}");
            assert_eq!(s["total"], groups, "{context}");
            assert_eq!(s["totals"]["requests"], requests, "{context}");
            assert_close(&s["totals"]["cost_usd"], cost, &context);
        }
        // Bad values are 422s naming the field.
        for (query, field) in [
            ("from=2025-13-01", "from"),
            ("to=yesterday", "to"),
            ("from=2025-03-05&to=2025-03-01", "from"),
            ("from=2025-03-01T25:00:00Z", "from"),
        ] {
            let r = get(&h, &format!("/api/v1/usage?{query}"), Some(&alice.token)).await;
            assert_api_error(&r, 422, "invalid_request", &format!("{engine}: ?{query}"));
            assert_eq!(r.body["field"], field, "{engine}: ?{query}");
            let r = get(
                &h,
                &format!("/api/v1/usage/records?{query}"),
                Some(&alice.token),
            )
            .await;
            assert_api_error(
                &r,
                422,
                "invalid_request",
                &format!("{engine}: records ?{query}"),
            );
        }
        for query in ["limit=abc", "offset=x", "before_id=last"] {
            let r = get(
                &h,
                &format!("/api/v1/usage/records?{query}"),
                Some(&alice.token),
            )
            .await;
            assert_api_error(&r, 422, "invalid_request", &format!("{engine}: ?{query}"));
        }

        // Whose usage: a user may name only themselves; the master key must name someone.
        let r = get(&h, "/api/v1/usage", None).await;
        assert_api_error(&r, 401, "not_authenticated", engine);
        let r = get(
            &h,
            &format!("/api/v1/usage?user_id={}", alice.id),
            Some(&bob.token),
        )
        .await;
        assert_api_error(&r, 404, "not_found", &format!("{engine}: bob reads alice"));
        let r = get(&h, "/api/v1/usage", Some(KEY)).await;
        assert_api_error(
            &r,
            422,
            "invalid_request",
            &format!("{engine}: master, no user"),
        );
        let s = ok(
            &h,
            &format!("/api/v1/usage?user_id={}", alice.id),
            KEY,
            engine,
        )
        .await;
        assert_eq!(s["totals"]["requests"], 5, "{engine}");
        let s = ok(&h, "/api/v1/usage", &bob.token, engine).await;
        assert_eq!(s["totals"]["requests"], 1, "{engine}: bob sees only his");

        // --- Records: newest first, by offset and by keyset.
        let all = ok(&h, "/api/v1/usage/records", &alice.token, engine).await;
        assert_eq!(all["total"], 5, "{engine}");
        let newest_first = ids(&all["items"]);
        assert_eq!(newest_first.len(), 5, "{engine}");
        let models: Vec<&str> = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["model"].as_str().unwrap())
            .collect();
        assert_eq!(
            models,
            ["whisper-1", "gpt-4o", "claude-sonnet-4", "gpt-4o", "gpt-4o"],
            "{engine}"
        );
        assert_eq!(all["next_before_id"], Value::Null, "{engine}: one page");
        let oldest = &all["items"][4];
        assert_eq!(oldest["key_id"], alice_key.as_str(), "{engine}");
        assert_eq!(oldest["thread_id"], "t-alice", "{engine}");
        assert_eq!(oldest["message_id"], "m-alice-1", "{engine}");
        assert_eq!(oldest["input_tokens"], 100, "{engine}");
        assert_eq!(oldest["output_tokens"], 50, "{engine}");
        assert_eq!(oldest["cached_tokens"], 20, "{engine}");
        assert_eq!(oldest["total_tokens"], 150, "{engine}");
        assert_eq!(oldest["status"], 200, "{engine}");
        assert_eq!(oldest["stream"], false, "{engine}");
        assert_eq!(oldest["estimated"], false, "{engine}");
        assert_eq!(oldest["route"], "chat.completions", "{engine}");
        assert_eq!(oldest["ttfb_ms"], 40, "{engine}");
        assert_close(&oldest["cost_usd"], 0.001, engine);
        let created: DateTime<Utc> =
            serde_json::from_value(oldest["created_at"].clone()).expect("created_at");
        assert_eq!(created, at(2025, 3, 1, 10, 0, 0), "{engine}");

        let p = ok(
            &h,
            "/api/v1/usage/records?limit=2&offset=1",
            &alice.token,
            engine,
        )
        .await;
        assert_eq!(ids(&p["items"]), newest_first[1..3], "{engine}: offset");
        assert_eq!(p["total"], 5, "{engine}");
        // Out-of-range paging is clamped, not refused: at most 200 a page, at least 1, no
        // negative offset.
        for (query, limit, offset, first) in [
            ("limit=100000", 200, 0, 0),
            ("limit=0", 1, 0, 0),
            ("limit=-5&offset=-3", 1, 0, 0),
            ("limit=2&offset=4", 2, 4, 4),
        ] {
            let p = ok(
                &h,
                &format!("/api/v1/usage/records?{query}"),
                &alice.token,
                engine,
            )
            .await;
            let context = format!("{engine}: ?{query}");
            assert_eq!(
                (p["limit"].as_i64(), p["offset"].as_i64()),
                (Some(limit), Some(offset)),
                "{context}"
            );
            let expected: Vec<i64> = newest_first
                .iter()
                .skip(first)
                .take(limit as usize)
                .copied()
                .collect();
            assert_eq!(ids(&p["items"]), expected, "{context}");
        }
        // Keyset: each page starts after the last id of the one before.
        let mut cursor: Option<i64> = None;
        let mut walked = Vec::new();
        for _ in 0..5 {
            let path = match cursor {
                Some(c) => format!("/api/v1/usage/records?limit=2&before_id={c}"),
                None => "/api/v1/usage/records?limit=2".to_string(),
            };
            let p = ok(&h, &path, &alice.token, engine).await;
            assert_eq!(p["total"], 5, "{engine}");
            walked.extend(ids(&p["items"]));
            match p["next_before_id"].as_i64() {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(walked, newest_first, "{engine}: keyset walk");
        // A cursor from someone else's records gives nothing.
        let everything = ok(&h, "/api/v1/admin/usage/records?limit=200", KEY, engine).await;
        let bobs = everything["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["user_id"] == bob.id.as_str())
            .expect("bob's record")["id"]
            .as_i64()
            .unwrap();
        let p = ok(
            &h,
            &format!("/api/v1/usage/records?before_id={bobs}"),
            &alice.token,
            engine,
        )
        .await;
        assert_eq!(p["items"], json!([]), "{engine}");
        let p = ok(
            &h,
            "/api/v1/usage/records?model=gpt-4o&from=2025-03-02",
            &alice.token,
            engine,
        )
        .await;
        assert_eq!(p["total"], 1, "{engine}");
        assert_eq!(p["items"][0]["input_tokens"], 1000, "{engine}");

        // --- One message (seed 004).
        let m = ok(
            &h,
            "/chat/messages/m-alice-1/usage-details",
            &alice.token,
            engine,
        )
        .await;
        assert_eq!(m["message_id"], "m-alice-1", "{engine}");
        assert_eq!(m["conversation_id"], "t-alice", "{engine}");
        let items = m["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{engine}: {m}");
        assert_eq!(items[0]["input_tokens"], 100, "{engine}: oldest first");
        assert_eq!(items[0]["scope"], "chat.completions", "{engine}");
        assert_eq!(items[0]["model"], "gpt-4o", "{engine}");
        assert_close(&items[0]["price"], 0.001, engine);
        assert_eq!(items[1]["reasoning_tokens"], 10, "{engine}");
        assert_eq!(m["totals"]["requests"], 2, "{engine}");
        assert_eq!(m["totals"]["input_tokens"], 300, "{engine}");
        assert_eq!(m["totals"]["output_tokens"], 150, "{engine}");
        assert_eq!(m["totals"]["cached_tokens"], 20, "{engine}");
        assert_close(&m["totals"]["price"], 0.003, engine);
        assert_close(&m["totals"]["cost_usd"], 0.003, engine);
        for (who, token) in [("bob", bob.token.as_str())] {
            let r = get(&h, "/chat/messages/m-alice-1/usage-details", Some(token)).await;
            assert_api_error(&r, 404, "not_found", &format!("{engine}: {who}"));
        }
        let r = get(&h, "/chat/messages/nope/usage-details", Some(&alice.token)).await;
        assert_api_error(&r, 404, "not_found", engine);
        let r = get(&h, "/chat/messages/m-alice-1/usage-details", None).await;
        assert_api_error(&r, 401, "not_authenticated", engine);
        let m = ok(&h, "/chat/messages/m-alice-1/usage-details", &admin, engine).await;
        assert_eq!(
            m["totals"]["requests"], 2,
            "{engine}: admins see any message"
        );
        // A message with no usage.
        insert_message(&store, "m-alice-3", "t-alice", &alice.id).await;
        let m = ok(
            &h,
            "/chat/messages/m-alice-3/usage-details",
            &alice.token,
            engine,
        )
        .await;
        assert_eq!(m["items"], json!([]), "{engine}");
        assert_eq!(m["totals"]["requests"], 0, "{engine}");
        assert_close(&m["totals"]["price"], 0.0, engine);

        // --- One conversation.
        let c = ok(&h, "/chat/t-alice/usage-details", &alice.token, engine).await;
        assert_eq!(c["conversation_id"], "t-alice", "{engine}");
        assert_eq!(c["messages"], 2, "{engine}: {c}");
        assert_eq!(c["totals"]["requests"], 3, "{engine}");
        assert_eq!(c["totals"]["input_tokens"], 310, "{engine}");
        assert_eq!(c["totals"]["output_tokens"], 155, "{engine}");
        assert_close(&c["totals"]["price"], 0.0035, engine);
        let by_model: Vec<(&str, i64)> = c["by_model"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["model"].as_str().unwrap(),
                    m["requests"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_model,
            [("claude-sonnet-4", 1), ("gpt-4o", 2)],
            "{engine}"
        );
        let r = get(&h, "/chat/t-alice/usage-details", Some(&bob.token)).await;
        assert_api_error(
            &r,
            404,
            "not_found",
            &format!("{engine}: bob reads alice's thread"),
        );
        let r = get(&h, "/chat/t-nope/usage-details", Some(&bob.token)).await;
        assert_api_error(&r, 404, "not_found", engine);
        let c = ok(&h, "/chat/t-bob/usage-details", &bob.token, engine).await;
        assert_eq!(c["totals"]["requests"], 1, "{engine}");
        // A deleted thread's usage, and its messages', is gone for its owner, kept for admins.
        execute(
            &store,
            "UPDATE thread SET deleted_at = CURRENT_TIMESTAMP WHERE id = $1",
            &["t-alice"],
        )
        .await;
        for path in [
            "/chat/t-alice/usage-details",
            "/chat/messages/m-alice-1/usage-details",
        ] {
            let r = get(&h, path, Some(&alice.token)).await;
            assert_api_error(
                &r,
                404,
                "not_found",
                &format!("{engine}: {path} once deleted"),
            );
            ok(&h, path, &admin, engine).await;
        }
        execute(
            &store,
            "UPDATE thread SET deleted_at = NULL WHERE id = $1",
            &["t-alice"],
        )
        .await;

        // --- One API key.
        let k = ok(
            &h,
            &format!("/api/v1/keys/{alice_key}/usage"),
            &alice.token,
            engine,
        )
        .await;
        assert_eq!(k["key_id"], alice_key.as_str(), "{engine}");
        assert_eq!(k["total"], 3, "{engine}: {k}");
        assert_eq!(k["totals"]["requests"], 3, "{engine}");
        assert_eq!(k["totals"]["input_tokens"], 1110, "{engine}");
        assert_close(&k["totals"]["cost_usd"], 0.0115, engine);
        let k = ok(
            &h,
            &format!("/api/v1/keys/{alice_key}/usage?to=2025-03-01&model=gpt-4o"),
            &alice.token,
            engine,
        )
        .await;
        assert_eq!(k["totals"]["requests"], 1, "{engine}");
        for (path, token, what) in [
            (
                format!("/api/v1/keys/{alice_key}/usage"),
                &bob.token,
                "bob reads alice's key",
            ),
            (
                format!("/api/v1/keys/{bob_key}/usage"),
                &alice.token,
                "alice reads bob's key",
            ),
            (
                "/api/v1/keys/nope/usage".to_string(),
                &alice.token,
                "no such key",
            ),
        ] {
            let r = get(&h, &path, Some(token)).await;
            assert_api_error(&r, 404, "not_found", &format!("{engine}: {what}"));
        }
        let k = ok(&h, &format!("/api/v1/keys/{bob_key}/usage"), &admin, engine).await;
        assert_eq!(k["totals"]["requests"], 1, "{engine}");

        // --- Admin: across users.
        let s = ok(&h, "/api/v1/admin/usage", &admin, engine).await;
        assert_eq!(s["total"], 6, "{engine}: {s}");
        assert_eq!(s["totals"]["requests"], 7, "{engine}");
        assert_close(&s["totals"]["cost_usd"], 0.02261, engine);
        let items = s["items"].as_array().unwrap();
        let day2: Vec<&Value> = items.iter().filter(|g| g["date"] == "2025-03-02").collect();
        assert_eq!(day2.len(), 3, "{engine}");
        assert_eq!(items[0]["date"], "2025-03-02", "{engine}: newest day first");
        assert_eq!(
            day2[2]["user_id"],
            Value::Null,
            "{engine}: the master key's requests last in their day"
        );
        let bob_group = items
            .iter()
            .find(|g| g["user_id"] == bob.id.as_str())
            .expect("bob's group");
        assert_eq!(bob_group["user_email"], "bob@example.com", "{engine}");
        assert_eq!(bob_group["input_tokens"], 7, "{engine}");
        let s = ok(
            &h,
            &format!("/api/v1/admin/usage?user_id={}", bob.id),
            KEY,
            engine,
        )
        .await;
        assert_eq!(s["total"], 1, "{engine}");
        assert_eq!(s["totals"]["requests"], 1, "{engine}");
        let s = ok(&h, "/api/v1/admin/usage?model=gpt-4o", KEY, engine).await;
        assert_eq!(s["total"], 4, "{engine}");
        assert_eq!(s["totals"]["requests"], 5, "{engine}");
        let s = ok(
            &h,
            &format!("/api/v1/admin/usage?key_id={bob_key}&from=2025-03-01&to=2025-03-01"),
            KEY,
            engine,
        )
        .await;
        assert_eq!(s["totals"]["requests"], 1, "{engine}");
        let p = ok(&h, "/api/v1/admin/usage?limit=2&offset=4", KEY, engine).await;
        assert_eq!(p["items"].as_array().unwrap().len(), 2, "{engine}");
        assert_eq!(p["total"], 6, "{engine}");
        let p = ok(&h, "/api/v1/admin/usage?offset=6", KEY, engine).await;
        assert_eq!(p["items"], json!([]), "{engine}");
        assert_eq!(p["total"], 6, "{engine}");
        assert_eq!(p["totals"]["requests"], 7, "{engine}");
        let r = ok(&h, "/api/v1/admin/usage/records", &admin, engine).await;
        assert_eq!(r["total"], 7, "{engine}");
        assert_eq!(
            r["items"][0]["model"], "whisper-1",
            "{engine}: newest first"
        );
        let r = ok(
            &h,
            &format!("/api/v1/admin/usage/records?user_id={}&limit=1", bob.id),
            &admin,
            engine,
        )
        .await;
        assert_eq!(r["total"], 1, "{engine}");
        assert_eq!(r["items"][0]["user_id"], bob.id.as_str(), "{engine}");
        for path in ["/api/v1/admin/usage", "/api/v1/admin/usage/records"] {
            let r = get(&h, path, Some(&alice.token)).await;
            assert_api_error(&r, 403, "forbidden", &format!("{engine}: user on {path}"));
            let r = get(&h, path, None).await;
            assert_api_error(
                &r,
                401,
                "not_authenticated",
                &format!("{engine}: anon {path}"),
            );
            let r = get(&h, &format!("{path}?from=03/01/2025"), Some(KEY)).await;
            assert_api_error(
                &r,
                422,
                "invalid_request",
                &format!("{engine}: {path} bad date"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 100,000 records

#[tokio::test]
async fn a_hundred_thousand_records_still_answer() {
    const N: usize = 100_000;
    const DAYS: i64 = 100;
    let models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"];
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in shared_databases(&dir).await {
        let h = common::start_on(&url, "").await;
        let user = register(&h, "heavy@example.com").await;
        let other = register(&h, "light@example.com").await;
        let store = open_store(&url).await;
        let start = at(2025, 1, 1, 0, 0, 0);
        // Spread over DAYS days; 86,400 * DAYS / N seconds apart.
        let step_ms = 86_400_000 * DAYS / N as i64;
        let mut expected_groups = std::collections::HashSet::new();
        let mut expected_cost = 0.0;
        let timer = Instant::now();
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..N {
            let created_at = start + Duration::milliseconds(step_ms * i as i64);
            let model = models[i % models.len()];
            expected_groups.insert((created_at.date_naive(), model));
            let cost = (i % 7) as f64 * 0.0001;
            expected_cost += cost;
            batch.push(record(&Rec {
                user: Some(&user.id),
                model,
                prompt: 10,
                completion: 5,
                cost,
                at: created_at,
                ..Rec::default()
            }));
            if batch.len() == 10_000 {
                store.insert_usage(&batch).await.expect("insert");
                batch.clear();
            }
        }
        store
            .insert_usage(&[record(&Rec {
                user: Some(&other.id),
                prompt: 1,
                at: start,
                ..Rec::default()
            })])
            .await
            .unwrap();
        println!(
            "{engine}: inserted {N} usage records in {:.2?}",
            timer.elapsed()
        );

        let timed = |what: &'static str| {
            let t = Instant::now();
            move || println!("{engine}: {what}: {:.1?}", t.elapsed())
        };
        let done = timed("records, first page of 50");
        let first = ok(&h, "/api/v1/usage/records", &user.token, engine).await;
        done();
        assert_eq!(first["total"], N, "{engine}");
        assert_eq!(first["items"].as_array().unwrap().len(), 50, "{engine}");
        // Newest first: the last record inserted.
        let newest = start + Duration::milliseconds(step_ms * (N as i64 - 1));
        let created: DateTime<Utc> =
            serde_json::from_value(first["items"][0]["created_at"].clone()).expect("created_at");
        assert_eq!(created, newest, "{engine}");

        // Keyset from deep inside: the page right after the 50,000th record.
        let mid = ok(
            &h,
            "/api/v1/usage/records?limit=1&offset=49999",
            &user.token,
            engine,
        )
        .await;
        let cursor = mid["items"][0]["id"].as_i64().unwrap();
        let done = timed("records, keyset page of 200 at the middle");
        let page = ok(
            &h,
            &format!("/api/v1/usage/records?limit=200&before_id={cursor}"),
            &user.token,
            engine,
        )
        .await;
        done();
        let got = ids(&page["items"]);
        assert_eq!(got.len(), 200, "{engine}");
        assert!(got.iter().all(|id| *id < cursor), "{engine}");
        let done = timed("records, last page by offset");
        let last = ok(
            &h,
            &format!("/api/v1/usage/records?limit=50&offset={}", N - 10),
            &user.token,
            engine,
        )
        .await;
        done();
        assert_eq!(last["items"].as_array().unwrap().len(), 10, "{engine}");
        assert_eq!(last["next_before_id"], Value::Null, "{engine}");

        let done = timed("summary by day and model, 200 groups");
        let summary = ok(&h, "/api/v1/usage?limit=200", &user.token, engine).await;
        done();
        assert_eq!(summary["total"], expected_groups.len(), "{engine}");
        assert_eq!(summary["totals"]["requests"], N, "{engine}");
        assert_eq!(summary["totals"]["input_tokens"], 10 * N, "{engine}");
        let cost = summary["totals"]["cost_usd"].as_f64().unwrap();
        assert!((cost - expected_cost).abs() < 1e-6, "{engine}: {cost}");
        let done = timed("summary for one month and one model");
        let month = ok(
            &h,
            "/api/v1/usage?from=2025-02-01&to=2025-02-28&model=gpt-4o",
            &user.token,
            engine,
        )
        .await;
        done();
        assert_eq!(month["total"], 28, "{engine}: {}", month["total"]);

        let done = timed("admin summary by user, day and model");
        let admin = ok(&h, "/api/v1/admin/usage?limit=10", KEY, engine).await;
        done();
        assert_eq!(admin["totals"]["requests"], N + 1, "{engine}");
        assert_eq!(admin["total"], expected_groups.len() + 1, "{engine}");
        let done = timed("admin records, first page");
        let admin = ok(&h, "/api/v1/admin/usage/records", KEY, engine).await;
        done();
        assert_eq!(admin["total"], N + 1, "{engine}");

        // The light user's view is unaffected by the heavy one's rows.
        let done = timed("another user's records");
        let light = ok(&h, "/api/v1/usage/records", &other.token, engine).await;
        done();
        assert_eq!(light["total"], 1, "{engine}");
    }
}
