//! Seeds 001 and 002's chat over real HTTP: `{response, user_id, session_id, memories_used,
//! timestamp}` answers, 002's sessions under the caller's own `{user_id}` (id, username or
//! email; anyone else's is a 404, an admin may name anyone), the README's extra forms, the
//! `/stream` variants, the admin's list of chat sessions, and the health answers. On every
//! database of `common::db::databases()`.

mod common;

use common::rest::{assert_api_error, reply, send, Reply};
use common::{Harness, KEY};
use reqwest::Method;
use serde_json::{json, Value};

const CHAT: &str = "[chat]\ndefault_model = \"mock-gpt\"\n";

async fn register(h: &Harness, email: &str, username: &str) -> (String, String) {
    let r = send(
        h,
        Method::POST,
        "/api/v1/auth/register",
        None,
        Some(&json!({"email": email, "username": username, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_string();
    let me = send(h, Method::GET, "/api/v1/auth/me", Some(&token), None).await;
    (token, me.body["id"].as_str().unwrap().to_string())
}

async fn post(h: &Harness, path: &str, token: &str, body: Value) -> Reply {
    send(h, Method::POST, path, Some(token), Some(&body)).await
}

fn assert_chat_answer(r: &Reply, user: &str, context: &str) -> String {
    assert_eq!(r.status, 200, "{context}: {}", r.text);
    assert!(
        r.body["response"].as_str().unwrap().starts_with("tok0"),
        "{context}: {}",
        r.text
    );
    assert_eq!(r.body["user_id"], user, "{context}");
    assert_eq!(r.body["memories_used"], json!([]), "{context}");
    let timestamp = r.body["timestamp"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.6f").is_ok(),
        "{context}: {timestamp}"
    );
    r.body["session_id"].as_str().unwrap().to_string()
}

each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    sessions_as_seeds_001_and_002_call_them,
    |engine, url| {
        let h = common::start_on(&url, CHAT).await;
        let (kim, kim_id) = register(&h, "kim@example.com", "kim").await;
        let (lee, _) = register(&h, "lee@example.com", "lee").await;

        // Seed 002's frontend: `/new` with {message, user_id}, the username as the path's user.
        let long =
            "Plan a trip to Copenhagen   with bikes, museums and a harbour bath in the morning";
        let r = post(
            &h,
            "/api/v1/chat/kim/new",
            &kim,
            json!({"message": long, "user_id": "kim"}),
        )
        .await;
        let session = assert_chat_answer(&r, "kim", engine);
        // Continue in it.
        let r = post(
            &h,
            &format!("/api/v1/chat/kim/{session}"),
            &kim,
            json!({"message": "And food?", "user_id": "kim"}),
        )
        .await;
        assert_eq!(assert_chat_answer(&r, "kim", engine), session);

        // The sessions list (active only by default), newest activity first.
        let r = send(
            &h,
            Method::GET,
            "/api/v1/chat/kim/sessions",
            Some(&kim),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(r.body["user_id"], "kim");
        assert_eq!(r.body["total_count"], 1);
        let s = &r.body["sessions"][0];
        assert_eq!(s["session_id"], session.as_str());
        assert_eq!(
            s["title"], "Plan a trip to Copenhagen with bikes, museums and ...",
            "{engine}"
        );
        assert_eq!(s["message_count"], 4);
        assert_eq!(s["is_active"], true);
        assert_eq!(s["user_id"], kim_id.as_str());
        for key in ["created_at", "last_activity"] {
            assert!(s[key].is_string(), "{engine}: {key}");
        }
        // One session with its messages.
        let r = send(
            &h,
            Method::GET,
            &format!("/api/v1/chat/kim/sessions/{session}"),
            Some(&kim),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        let messages = r.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4);
        assert_eq!(
            (
                messages[0]["role"].as_str(),
                messages[0]["content"].as_str()
            ),
            (Some("user"), Some(long))
        );
        assert_eq!(messages[1]["role"], "assistant");
        assert!(messages[1]["timestamp"].is_string());

        // PUT: title and is_active; a closed session is listed only with active_only=false.
        let path = format!("/api/v1/chat/kim/sessions/{session}");
        let r = send(
            &h,
            Method::PUT,
            &path,
            Some(&kim),
            Some(&json!({"title": "Copenhagen", "is_active": false})),
        )
        .await;
        assert_eq!(
            (r.status, &r.body["message"]),
            (200, &json!("Session updated successfully")),
            "{engine}: {}",
            r.text
        );
        let r = send(
            &h,
            Method::GET,
            "/api/v1/chat/kim/sessions",
            Some(&kim),
            None,
        )
        .await;
        assert_eq!(r.body["total_count"], 0, "{engine}: {}", r.text);
        let r = send(
            &h,
            Method::GET,
            "/api/v1/chat/kim/sessions?active_only=false",
            Some(&kim),
            None,
        )
        .await;
        assert_eq!(
            r.body["sessions"][0]["title"], "Copenhagen",
            "{engine}: {}",
            r.text
        );
        assert_eq!(r.body["sessions"][0]["is_active"], false);
        let r = send(
            &h,
            Method::PUT,
            &path,
            Some(&kim),
            Some(&json!({"title": "x".repeat(101)})),
        )
        .await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: long title"));

        // The README's forms: POST /chat/{user_id} (new, or the body's session) and .../sessions.
        let r = post(
            &h,
            &format!("/api/v1/chat/{kim_id}"),
            &kim,
            json!({"message": "Hi", "session_id": session}),
        )
        .await;
        assert_eq!(
            assert_chat_answer(&r, &kim_id, engine),
            session,
            "{engine}: by id, into the body's session"
        );
        let r = post(
            &h,
            "/api/v1/chat/kim@example.com/sessions",
            &kim,
            json!({"title": "Empty"}),
        )
        .await;
        assert_eq!(r.status, 201, "{engine}: {}", r.text);
        assert_eq!(
            (r.body["title"].as_str(), r.body["message_count"].as_i64()),
            (Some("Empty"), Some(0))
        );

        // A stream: a data line per delta, the text adding up.
        let r = h
            .client
            .post(h.url(&format!("/api/v1/chat/kim/{session}/stream")))
            .bearer_auth(&kim)
            .json(&json!({"message": "Stream it", "user_id": "kim"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let text = r.text().await.unwrap();
        let joined: String = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .collect();
        assert!(
            joined.starts_with("tok0") && !joined.contains("[error]"),
            "{engine}: {text}"
        );

        // Seed 001: the caller from the token; a new session each time unless one is named.
        let r = post(
            &h,
            "/api/v1/chat",
            &kim,
            json!({"message": "Hello from 001"}),
        )
        .await;
        let new_one = assert_chat_answer(&r, &kim_id, engine);
        assert_ne!(new_one, session);
        let r = post(
            &h,
            "/api/v1/chat",
            &kim,
            json!({"message": "Again", "session_id": new_one}),
        )
        .await;
        assert_eq!(assert_chat_answer(&r, &kim_id, engine), new_one);
        let r = h
            .client
            .post(h.url("/api/v1/chat/stream"))
            .bearer_auth(&kim)
            .json(&json!({"message": "Stream 001"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.text().await.unwrap().starts_with("data: tok0"),
            "{engine}"
        );

        // Bad input.
        let r = post(&h, "/api/v1/chat", &kim, json!({"message": ""})).await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: empty"));
        let r = post(
            &h,
            "/api/v1/chat",
            &kim,
            json!({"message": "x".repeat(2001)}),
        )
        .await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: too long"));
        let r = post(
            &h,
            "/api/v1/chat/kim/new",
            &kim,
            json!({"message": "hi", "user_id": "lee"}),
        )
        .await;
        assert_api_error(
            &r,
            400,
            "user_id_mismatch",
            &format!("{engine}: body and path differ"),
        );
        let r = post(
            &h,
            "/api/v1/chat/kim/no-such-session",
            &kim,
            json!({"message": "hi"}),
        )
        .await;
        assert_api_error(&r, 404, "not_found", &format!("{engine}: unknown session"));
        assert_eq!(r.body["detail"], "Session not found");

        // Another user's name in the path, or their session: 404 everywhere.
        for (method, path) in [
            (Method::GET, "/api/v1/chat/kim/sessions".to_string()),
            (Method::GET, format!("/api/v1/chat/kim/sessions/{session}")),
            (
                Method::DELETE,
                format!("/api/v1/chat/kim/sessions/{session}"),
            ),
            (Method::GET, format!("/api/v1/chat/lee/sessions/{session}")),
        ] {
            let r = send(&h, method.clone(), &path, Some(&lee), None).await;
            assert_api_error(
                &r,
                404,
                "not_found",
                &format!("{engine}: lee {method} {path}"),
            );
        }
        let r = post(
            &h,
            &format!("/api/v1/chat/kim/{session}"),
            &lee,
            json!({"message": "hi"}),
        )
        .await;
        assert_eq!(r.status, 404, "{engine}: lee writes into kim's session");
        let r = post(
            &h,
            &format!("/api/v1/chat/lee/{session}"),
            &lee,
            json!({"message": "hi"}),
        )
        .await;
        assert_eq!(r.status, 404, "{engine}: kim's session under lee's name");

        // An admin (the master key) may name anyone, and lists every chat session.
        let r = send(
            &h,
            Method::GET,
            "/api/v1/chat/kim/sessions?active_only=false",
            Some(KEY),
            None,
        )
        .await;
        assert_eq!(r.body["total_count"], 4, "{engine}: {}", r.text);
        let r = send(&h, Method::GET, "/api/v1/admin/sessions", Some(KEY), None).await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(r.body["total"], 4, "{engine}: {}", r.text);
        let r = send(&h, Method::GET, "/api/v1/admin/sessions", Some(&kim), None).await;
        assert_eq!(r.status, 403, "{engine}");

        // DELETE, then gone.
        let r = send(&h, Method::DELETE, &path, Some(&kim), None).await;
        assert_eq!(
            (r.status, &r.body["message"]),
            (200, &json!("Session deleted successfully")),
            "{engine}"
        );
        let r = send(&h, Method::GET, &path, Some(&kim), None).await;
        assert_api_error(&r, 404, "not_found", &format!("{engine}: deleted"));

        // Health answers.
        let r = reply(h.client.get(h.url("/")).send().await.unwrap()).await;
        assert_eq!(r.body["message"], "Homi Chatbot API is running!");
        for path in ["/api/v1/health", "/api/v1/chat/health"] {
            let r = reply(h.client.get(h.url(path)).send().await.unwrap()).await;
            assert_eq!(
                (r.status, &r.body["status"]),
                (200, &json!("healthy")),
                "{engine}: {path}"
            );
        }
    }
);

each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    memories_as_seeds_001_and_002_search_and_delete_them,
    |engine, url| {
        use gateway::store::memories::MemoryScope;
        let h = common::start_on(&url, CHAT).await;
        let (kim, kim_id) = register(&h, "kim@example.com", "kim").await;
        let (lee, lee_id) = register(&h, "lee@example.com", "lee").await;
        let store = &h.gateway.state.store;
        for fact in [
            "Kim drinks green tea",
            "Kim lives in Porto",
            "Kim's cat is Miso",
        ] {
            store
                .add_memory(&MemoryScope::user(&kim_id), fact, None, None)
                .await
                .unwrap();
        }
        store
            .add_memory(
                &MemoryScope::user(&lee_id),
                "Lee drinks green tea too",
                None,
                None,
            )
            .await
            .unwrap();

        // Seed 001: the caller's own memories, as texts.
        let r = post(
            &h,
            "/api/v1/memories/search",
            &kim,
            json!({"query": "what tea?", "limit": 5}),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(
            r.body["memories"],
            json!(["Kim drinks green tea"]),
            "{engine}"
        );
        assert_eq!(r.body["user_id"], kim_id.as_str(), "{engine}");
        assert_eq!(r.body["query"], "what tea?", "{engine}");
        // Seed 002: under the path's user (the username here), echoed as given.
        let r = post(
            &h,
            "/api/v1/chat/kim/memories/search",
            &kim,
            json!({"query": "Porto", "user_id": "kim"}),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(
            r.body["memories"],
            json!(["Kim lives in Porto"]),
            "{engine}"
        );
        assert_eq!(r.body["user_id"], "kim", "{engine}");

        // Unhappy paths: a mismatched body user, another user's path, bad fields, no token.
        let r = post(
            &h,
            "/api/v1/chat/kim/memories/search",
            &kim,
            json!({"query": "tea", "user_id": "lee"}),
        )
        .await;
        assert_api_error(&r, 400, "user_id_mismatch", engine);
        let r = post(
            &h,
            "/api/v1/chat/kim/memories/search",
            &lee,
            json!({"query": "tea"}),
        )
        .await;
        assert_eq!(r.status, 404, "{engine}: {}", r.text);
        for bad in [
            json!({}),
            json!({"query": ""}),
            json!({"query": "tea", "limit": 21}),
            json!({"query": "tea", "limit": 0}),
        ] {
            let r = post(&h, "/api/v1/memories/search", &kim, bad.clone()).await;
            assert_eq!(r.status, 422, "{engine}: {bad}: {}", r.text);
        }
        let r = send(
            &h,
            Method::POST,
            "/api/v1/memories/search",
            None,
            Some(&json!({"query": "tea"})),
        )
        .await;
        assert_eq!(r.status, 401, "{engine}");
        let r = send(
            &h,
            Method::DELETE,
            "/api/v1/chat/kim/memories",
            Some(&lee),
            None,
        )
        .await;
        assert_eq!(r.status, 404, "{engine}: lee may not delete kim's");

        // Delete really deletes (the seed's own was a no-op), and only the caller's.
        let r = send(&h, Method::DELETE, "/api/v1/memories", Some(&kim), None).await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(
            r.body["message"],
            format!("Memories deleted for user {kim_id}"),
            "{engine}"
        );
        assert!(
            store
                .memories(&MemoryScope::user(&kim_id), 10, 0)
                .await
                .unwrap()
                .is_empty(),
            "{engine}"
        );
        let r = post(&h, "/api/v1/memories/search", &lee, json!({"query": "tea"})).await;
        assert_eq!(
            r.body["memories"],
            json!(["Lee drinks green tea too"]),
            "{engine}"
        );
        // Seed 002's delete, and an admin acting for a user.
        let r = send(
            &h,
            Method::DELETE,
            "/api/v1/chat/lee/memories",
            Some(KEY),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(
            r.body["message"], "Memories deleted for user lee",
            "{engine}"
        );
        assert!(
            store
                .memories(&MemoryScope::user(&lee_id), 10, 0)
                .await
                .unwrap()
                .is_empty(),
            "{engine}"
        );
    }
);

each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    memories_through_the_mem0_rest_surface,
    |engine, url| {
        use gateway::store::memories::MemoryScope;
        let h = common::start_on(&url, CHAT).await;
        let (kim, kim_id) = register(&h, "kim@example.com", "kim").await;
        let (lee, _) = register(&h, "lee@example.com", "lee").await;
        let store = &h.gateway.state.store;
        let scope = MemoryScope::user(&kim_id);
        let tea = store
            .add_memory(&scope, "Drinks green tea", Some(r#"{"from":"chat"}"#), None)
            .await
            .unwrap()
            .unwrap();
        let travel = MemoryScope {
            user_id: &kim_id,
            agent_id: Some("travel"),
            run_id: None,
        };
        store
            .add_memory(&travel, "Flies to Lisbon in May", None, None)
            .await
            .unwrap()
            .unwrap();
        // Mem0's client authenticates with `Token KEY`.
        let mem0 = |method: Method, path: &str, token: &str| {
            h.client
                .request(method, h.url(path))
                .header("authorization", format!("Token {token}"))
        };
        let list: Value = mem0(Method::GET, "/v1/memories/?user_id=kim", &kim)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list.as_array().unwrap().len(), 2, "{engine}: {list}");
        let only_travel = reply(
            mem0(Method::GET, "/v1/memories/?agent_id=travel", &kim)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(only_travel.body.as_array().unwrap().len(), 1, "{engine}");
        assert_eq!(
            only_travel.body[0]["memory"], "Flies to Lisbon in May",
            "{engine}"
        );
        assert_eq!(only_travel.body[0]["agent_id"], "travel", "{engine}");

        let one = reply(
            mem0(Method::GET, &format!("/v1/memories/{}/", tea.id), &kim)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(one.status, 200, "{engine}: {}", one.text);
        assert_eq!(one.body["memory"], "Drinks green tea", "{engine}");
        assert_eq!(one.body["metadata"], json!({"from": "chat"}), "{engine}");
        assert_eq!(one.body["user_id"], kim_id.as_str(), "{engine}");
        assert_eq!(one.body["hash"].as_str().unwrap().len(), 64, "{engine}");

        let updated = reply(
            mem0(Method::PUT, &format!("/v1/memories/{}/", tea.id), &kim)
                .json(&json!({"text": "Drinks black tea"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(updated.status, 200, "{engine}: {}", updated.text);
        assert_eq!(updated.body["memory"], "Drinks black tea", "{engine}");
        let bad = reply(
            mem0(Method::PUT, &format!("/v1/memories/{}/", tea.id), &kim)
                .json(&json!({"text": " "}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(bad.status, 422, "{engine}: {}", bad.text);
        // Into the text of another of kim's memories: a conflict, not a server error.
        let lisbon = &only_travel.body[0]["id"].as_str().unwrap().to_string();
        let taken = reply(
            mem0(Method::PUT, &format!("/v1/memories/{lisbon}/"), &kim)
                .json(&json!({"text": "drinks BLACK tea"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_api_error(&taken, 409, "memory_exists", engine);

        // Another user's memory is a 404 for every verb; naming another user is too.
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let r = reply(
                mem0(method.clone(), &format!("/v1/memories/{}/", tea.id), &lee)
                    .json(&json!({"text": "mine now"}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, 404, "{engine}: {method}: {}", r.text);
        }
        let r = reply(
            mem0(Method::GET, "/v1/memories/?user_id=kim", &lee)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 404, "{engine}");
        let r = reply(
            mem0(
                Method::GET,
                &format!("/v1/memories/{}/history/", tea.id),
                &lee,
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(r.status, 404, "{engine}");
        let r = reply(h.client.get(h.url("/v1/memories/")).send().await.unwrap()).await;
        assert_eq!(r.status, 401, "{engine}");

        let gone = reply(
            mem0(Method::DELETE, &format!("/v1/memories/{}/", tea.id), &kim)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            gone.body["message"], "Memory deleted successfully!",
            "{engine}"
        );
        let history = reply(
            mem0(
                Method::GET,
                &format!("/v1/memories/{}/history/", tea.id),
                &kim,
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        let events: Vec<&str> = history
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(
            events,
            ["ADD", "UPDATE", "DELETE"],
            "{engine}: {}",
            history.text
        );
        assert_eq!(
            history.body[1]["old_memory"], "Drinks green tea",
            "{engine}"
        );
        assert_eq!(
            history.body[1]["new_memory"], "Drinks black tea",
            "{engine}"
        );

        // Delete all, by an admin acting for kim (the master key names the user).
        let r = reply(
            mem0(Method::DELETE, "/v1/memories/?user_id=kim", KEY)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert!(
            store.memories(&scope, 10, 0).await.unwrap().is_empty(),
            "{engine}"
        );
        let r = reply(
            mem0(Method::GET, "/v1/memories/", KEY)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            r.status, 422,
            "{engine}: the master key must name a user: {}",
            r.text
        );
    }
);
