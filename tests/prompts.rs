//! Seed 000's prompt library over real HTTP, as its frontend calls it: `X-Session-Token` from a
//! better-auth session (and a bearer token), camelCase JSON, favourites per user, full
//! replacement on PUT, and "Prompt not found" for anyone else's or a missing prompt. On every
//! database of `common::db::databases()`.

mod common;

use chrono::Utc;
use common::rest::{
    assert_api_error, better_auth_session, open_store, reply, shared_databases, Reply,
};
use common::Harness;
use gateway::store::Store;
use reqwest::Method;
use serde_json::{json, Value};

/// A better-auth user with a live session, as seed 000's Next.js app makes them; returns the
/// user id and the session token its frontend sends as `X-Session-Token`.
async fn session_user(store: &Store, email: &str) -> (String, String) {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let in_a_week = Utc::now() + chrono::Duration::days(7);
    let id = better_auth_session(store, email, &token, in_a_week).await;
    (id, token)
}

/// A request with seed 000's headers: `X-Session-Token` and `Content-Type: application/json`
/// (it sends the latter on every call, GET and DELETE included).
async fn call(h: &Harness, method: Method, path: &str, token: &str, body: Option<&Value>) -> Reply {
    let mut request = h
        .client
        .request(method, h.url(path))
        .header("x-session-token", token)
        .header("content-type", "application/json");
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    reply(request.send().await.expect("request reaches the gateway")).await
}

fn prompt(name: &str, category: &str, favorite: bool) -> Value {
    // The frontend sends the whole row: a client-made id and the creator too (both ignored).
    json!({"id": "k3j2h1", "name": name, "category": category, "text": format!("{name} text"),
           "creator": {"id": "someone", "name": "Someone"}, "isFavorite": favorite})
}

each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    prompt_library_as_seed_000_calls_it,
    |engine, url| {
        let dir = tempfile::tempdir().unwrap();
        let url = match engine {
            "sqlite" => shared_databases(&dir).await[0].1.clone(),
            _ => url,
        };
        let h = common::start_on(&url, "").await;
        let store = open_store(&url).await;
        let (ann_id, ann) = session_user(&store, "ann@example.com").await;
        let (_, bob) = session_user(&store, "bob@example.com").await;

        // Empty at first: a bare list.
        let r = call(&h, Method::GET, "/api/prompts", &ann, None).await;
        assert_eq!(
            (r.status, &r.body),
            (200, &json!([])),
            "{engine}: {}",
            r.text
        );

        // Create: 201, camelCase, the creator from the session, the favourite echoed.
        let r = call(
            &h,
            Method::POST,
            "/api/prompts",
            &ann,
            Some(&prompt("Meeting", "Detaljeret referat", true)),
        )
        .await;
        assert_eq!(r.status, 201, "{engine}: {}", r.text);
        let first = r.body.clone();
        let id = first["id"].as_str().unwrap().to_string();
        assert_ne!(id, "k3j2h1", "{engine}: the client's id is not used");
        assert_eq!(
            uuid::Uuid::parse_str(&id).map(|u| u.to_string()),
            Ok(id.clone()),
            "{engine}"
        );
        assert_eq!(first["name"], "Meeting");
        assert_eq!(first["category"], "Detaljeret referat");
        assert_eq!(first["isFavorite"], true);
        assert_eq!(first["text"], "Meeting text");
        assert_eq!(
            first["creator"],
            json!({"id": ann_id, "name": "Bett Auth"}),
            "{engine}"
        );
        assert!(
            first["createdAt"].as_str().unwrap().ends_with('Z'),
            "{engine}: {first}"
        );
        assert_eq!(first["createdAt"], first["updatedAt"]);
        let keys: Vec<&str> = first
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "name",
            "category",
            "isFavorite",
            "text",
            "id",
            "creator",
            "createdAt",
            "updatedAt",
        ] {
            assert!(keys.contains(&key), "{engine}: {key} in {first}");
        }

        // `is_favorite` is accepted too; a second prompt lists first (newest first).
        let mut second = prompt("Todo", "To do liste", false);
        second["is_favorite"] = json!(true);
        second.as_object_mut().unwrap().remove("isFavorite");
        let r = call(&h, Method::POST, "/api/prompts", &ann, Some(&second)).await;
        assert_eq!(r.status, 201, "{engine}: {}", r.text);
        assert_eq!(r.body["isFavorite"], true, "{engine}: is_favorite");
        let second_id = r.body["id"].as_str().unwrap().to_string();
        let r = call(&h, Method::GET, "/api/prompts", &ann, None).await;
        let ids: Vec<&str> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [second_id.as_str(), id.as_str()],
            "{engine}: newest first"
        );
        // Paging is bounded and optional.
        let r = call(&h, Method::GET, "/api/prompts?limit=1&offset=1", &ann, None).await;
        assert_eq!(r.body.as_array().unwrap().len(), 1, "{engine}");
        assert_eq!(r.body[0]["id"], id.as_str(), "{engine}");

        // GET one; the same by a bearer session token.
        let r = call(&h, Method::GET, &format!("/api/prompts/{id}"), &ann, None).await;
        assert_eq!((r.status, &r.body), (200, &first), "{engine}");

        // PUT replaces the whole prompt; leaving isFavorite out clears the mark.
        let r = call(
            &h,
            Method::PUT,
            &format!("/api/prompts/{id}"),
            &ann,
            Some(&json!({"name": "Meeting v2", "category": "Kort referat", "text": "Shorter."})),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(r.body["name"], "Meeting v2");
        assert_eq!(r.body["category"], "Kort referat");
        assert_eq!(r.body["isFavorite"], false, "{engine}: unmarked");
        assert_eq!(r.body["createdAt"], first["createdAt"]);
        // The favourite toggle: the frontend re-sends the whole prompt with the flag flipped.
        let mut toggled = r.body.clone();
        toggled["isFavorite"] = json!(true);
        let r = call(
            &h,
            Method::PUT,
            &format!("/api/prompts/{id}"),
            &ann,
            Some(&toggled),
        )
        .await;
        assert_eq!(r.body["isFavorite"], true, "{engine}: {}", r.text);
        let r = call(
            &h,
            Method::PUT,
            &format!("/api/prompts/{id}"),
            &ann,
            Some(&toggled),
        )
        .await;
        assert_eq!(
            (r.status, &r.body["isFavorite"]),
            (200, &json!(true)),
            "{engine}: marking twice"
        );

        // Bad bodies: a 422 naming the field, nothing written.
        for (body, field) in [
            (
                json!({"name": "x", "category": "Nope", "text": "t"}),
                "category",
            ),
            (
                json!({"name": "x", "category": "api", "text": "t"}),
                "category",
            ),
            (json!({"name": "x", "text": "t"}), "category"),
            (json!({"category": "API", "text": "t"}), "name"),
            (json!({"name": "x", "category": "API"}), "text"),
            (
                json!({"name": "  ", "category": "API", "text": "t"}),
                "name",
            ),
            (
                json!({"name": "x".repeat(501), "category": "API", "text": "t"}),
                "name",
            ),
            (json!({"name": 5, "category": "API", "text": "t"}), "name"),
            (
                json!({"name": "x", "category": "API", "text": "y".repeat(50_001)}),
                "text",
            ),
        ] {
            let r = call(&h, Method::POST, "/api/prompts", &ann, Some(&body)).await;
            assert_api_error(&r, 422, "invalid_request", &format!("{engine}: {body}"));
            assert!(
                r.text.contains(field),
                "{engine}: {field} named in {}",
                r.text
            );
        }
        let r = h
            .client
            .post(h.url("/api/prompts"))
            .header("x-session-token", &ann)
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap();
        assert_api_error(
            &reply(r).await,
            422,
            "invalid_request",
            &format!("{engine}: malformed JSON"),
        );
        // A body over the REST limit: 413, before anything is parsed.
        let huge = json!({"name": "x", "category": "API", "text": "y".repeat(70_000)});
        let r = call(&h, Method::POST, "/api/prompts", &ann, Some(&huge)).await;
        assert_eq!(r.status, 413, "{engine}: {}", r.text);
        let r = call(&h, Method::GET, "/api/prompts", &ann, None).await;
        assert_eq!(
            r.body.as_array().unwrap().len(),
            2,
            "{engine}: nothing written"
        );

        // Another user sees none of it: their list is empty, every id is "Prompt not found".
        let r = call(&h, Method::GET, "/api/prompts", &bob, None).await;
        assert_eq!(r.body, json!([]), "{engine}");
        let not_found = |r: &Reply, what: &str| {
            assert_api_error(r, 404, "not_found", &format!("{engine}: {what}"));
            assert_eq!(r.body["detail"], "Prompt not found", "{engine}: {what}");
        };
        let path = format!("/api/prompts/{id}");
        not_found(&call(&h, Method::GET, &path, &bob, None).await, "bob reads");
        not_found(
            &call(
                &h,
                Method::PUT,
                &path,
                &bob,
                Some(&prompt("Mine", "API", true)),
            )
            .await,
            "bob replaces",
        );
        not_found(
            &call(&h, Method::DELETE, &path, &bob, None).await,
            "bob deletes",
        );
        not_found(
            &call(&h, Method::GET, "/api/prompts/not-a-uuid", &ann, None).await,
            "not a uuid",
        );
        let r = call(&h, Method::GET, &path, &ann, None).await;
        assert_eq!(r.body["name"], "Meeting v2", "{engine}: untouched by bob");

        // Without a credential, or with a dead one: 401.
        let r = reply(h.client.get(h.url("/api/prompts")).send().await.unwrap()).await;
        assert_api_error(&r, 401, "not_authenticated", &format!("{engine}: no token"));
        let r = call(&h, Method::GET, "/api/prompts", "not-a-session", None).await;
        assert_eq!(r.status, 401, "{engine}: {}", r.text);

        // DELETE: 200 {"id"}; then it is gone.
        let r = call(&h, Method::DELETE, &path, &ann, None).await;
        assert_eq!((r.status, &r.body), (200, &json!({"id": id})), "{engine}");
        not_found(&call(&h, Method::GET, &path, &ann, None).await, "deleted");
        not_found(
            &call(&h, Method::DELETE, &path, &ann, None).await,
            "deleted twice",
        );
        let r = call(&h, Method::GET, "/api/prompts/", &ann, None).await;
        assert_eq!(
            r.body.as_array().unwrap().len(),
            1,
            "{engine}: trailing slash lists too"
        );
    }
);
