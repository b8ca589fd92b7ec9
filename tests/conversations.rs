//! Seed 004's conversations over real HTTP, as its frontend calls them: `POST /chat/` answering
//! in one body with integer ids, a title made by the model for a new conversation, the list and
//! the messages with `request_id` and `price`, rename by query parameter, delete, usage details
//! with `usage_details` (scopes `title` and `final`), `GET /models` with its `chat` list, and
//! the unhappy paths. On every database of `common::db::databases()`.

mod common;

use common::rest::{assert_api_error, reply, send, Reply};
use common::Harness;
use reqwest::multipart::Form;
use reqwest::Method;
use serde_json::{json, Value};

const PRICED: &str = r#"
[pricing.models."mock-gpt"]
input_per_mtok = 1.0
output_per_mtok = 2.0
"#;

async fn register(h: &Harness, email: &str) -> String {
    let r = send(
        h,
        Method::POST,
        "/auth/register",
        None,
        // Seed 004's example password, let in by `auth.min_password_length = 6`.
        Some(&json!({"email": email, "password": "secret", "display_name": "Ben"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_string()
}

async fn chat(h: &Harness, token: &str, form: Form) -> Reply {
    reply(
        h.client
            .post(h.url("/chat/"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn is_timestamp(value: &Value) -> bool {
    // YYYY-MM-DD HH:MM:SS
    let text = value.as_str().unwrap_or_default();
    text.len() == 19 && chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").is_ok()
}

each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    conversations_as_seed_004_calls_them,
    |engine, url| {
        let h = common::start_config(
            common::config::TestConfig::new()
                .database(&url)
                .sections(PRICED)
                .identity(|i| i.min_password_length = 6),
        )
        .await;
        let ben = register(&h, "ben@example.com").await;
        let eve = register(&h, "eve@example.com").await;

        // The model picker reads `chat`.
        let r = send(&h, Method::GET, "/models", None, None).await;
        let chat_models = r.body["chat"].as_array().unwrap();
        assert!(
            chat_models.iter().any(|m| m == "mock-gpt"),
            "{engine}: {}",
            r.text
        );
        assert!(chat_models.iter().all(Value::is_string));

        // A new conversation: one JSON answer with integer ids.
        let r = chat(
            &h,
            &ben,
            Form::new().text("text", "Hello").text("model", "mock-gpt"),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        let conversation = r.body["conversation_id"].as_i64().expect("an integer id");
        let question = r.body["request_message_id"].as_i64().unwrap();
        let answer = r.body["response_message_id"].as_i64().unwrap();
        assert!(answer > question, "{engine}");
        assert!(
            r.body["answer"].as_str().unwrap().starts_with("tok0"),
            "{engine}"
        );
        assert_eq!(
            r.body.as_object().unwrap().len(),
            4,
            "{engine}: exactly four fields"
        );

        // The list: its integer id, a title made by the model, the seed's timestamp.
        let r = send(&h, Method::GET, "/conversations/", Some(&ben), None).await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        let first = &r.body[0];
        assert_eq!(first["id"].as_i64(), Some(conversation), "{engine}");
        assert!(
            first["title"].as_str().unwrap().starts_with("tok0"),
            "{engine}: {first}"
        );
        assert!(is_timestamp(&first["created_at"]), "{engine}: {first}");
        assert!(first.get("summary").is_some());

        // The next turn in the same conversation (the id sent as a form field).
        let r = chat(
            &h,
            &ben,
            Form::new()
                .text("text", "And then?")
                .text("model", "mock-gpt")
                .text("conversation_id", conversation.to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(r.body["conversation_id"].as_i64(), Some(conversation));
        let second_answer = r.body["response_message_id"].as_i64().unwrap();

        // The messages, oldest first: an answer names its question in `request_id`.
        let r = send(
            &h,
            Method::GET,
            &format!("/conversations/{conversation}/messages"),
            Some(&ben),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(r.body["conversation_id"].as_i64(), Some(conversation));
        let messages = r.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4, "{engine}: {}", r.text);
        assert_eq!(messages[0]["id"].as_i64(), Some(question));
        assert_eq!(messages[0]["request_id"], Value::Null);
        assert_eq!(messages[0]["role"], "user");
        assert_eq!(messages[0]["text"], "Hello");
        assert_eq!(messages[1]["id"].as_i64(), Some(answer));
        assert_eq!(
            messages[1]["request_id"].as_i64(),
            Some(question),
            "{engine}"
        );
        assert_eq!(messages[1]["role"], "assistant");
        assert!(
            messages[1]["price"].as_f64().unwrap() > 0.0,
            "{engine}: {}",
            messages[1]
        );
        assert!(messages[1]["input_tokens"].as_i64().unwrap() > 0);
        assert_eq!(messages[1]["model"], "mock-gpt");
        assert!(is_timestamp(&messages[1]["created_at"]), "{engine}");
        assert_eq!(
            messages[3]["request_id"].as_i64(),
            messages[2]["id"].as_i64()
        );
        for key in [
            "id",
            "conversation_id",
            "request_id",
            "role",
            "text",
            "summary",
            "created_at",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "model",
            "price",
        ] {
            assert!(messages[1].get(key).is_some(), "{engine}: {key}");
        }

        // Usage details by the answer's integer id: the answer's own record is `final`.
        h.gateway.flush_usage().await;
        let r = send(
            &h,
            Method::GET,
            &format!("/chat/messages/{second_answer}/usage-details"),
            Some(&ben),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        let details = r.body["usage_details"].as_array().unwrap();
        assert_eq!(details.len(), 1, "{engine}: {}", r.text);
        assert_eq!(details[0]["scope"], "final");
        assert_eq!(details[0]["message_id"].as_i64(), Some(second_answer));
        assert!(details[0]["price"].as_f64().unwrap() > 0.0);
        assert_eq!(r.body["message"]["id"].as_i64(), Some(second_answer));
        // The whole conversation: the title's call too.
        let r = send(
            &h,
            Method::GET,
            &format!("/chat/{conversation}/usage-details"),
            Some(&ben),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        let scopes: Vec<&str> = r.body["usage_details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["scope"].as_str().unwrap())
            .collect();
        assert_eq!(scopes, ["final", "title", "final"], "{engine}: {}", r.text);

        // Rename by query parameter; delete; both answer {"detail"}.
        let r = send(
            &h,
            Method::PUT,
            &format!("/conversations/{conversation}/rename?new_title=Ben%27s%20chat"),
            Some(&ben),
            None,
        )
        .await;
        assert_eq!(
            (r.status, &r.body["detail"]),
            (200, &json!("Conversation renamed successfully")),
            "{engine}: {}",
            r.text
        );
        let r = send(&h, Method::GET, "/conversations/", Some(&ben), None).await;
        assert_eq!(r.body[0]["title"], "Ben's chat", "{engine}");
        let r = send(
            &h,
            Method::PUT,
            &format!("/conversations/{conversation}/rename"),
            Some(&ben),
            None,
        )
        .await;
        assert_api_error(
            &r,
            422,
            "invalid_request",
            &format!("{engine}: no new_title"),
        );

        // Unhappy paths.
        let r = chat(
            &h,
            &ben,
            Form::new().text("text", "   ").text("model", "mock-gpt"),
        )
        .await;
        assert_api_error(&r, 400, "empty_text", &format!("{engine}: blank"));
        assert_eq!(r.body["detail"], "Empty text");
        let r = chat(&h, &ben, Form::new().text("model", "mock-gpt")).await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: no text"));
        let r = chat(
            &h,
            &ben,
            Form::new()
                .text("text", "hi")
                .text("conversation_id", "seven"),
        )
        .await;
        assert_api_error(
            &r,
            422,
            "invalid_request",
            &format!("{engine}: conversation_id"),
        );
        let not_found = |r: &Reply, what: &str| {
            assert_api_error(r, 404, "not_found", &format!("{engine}: {what}"));
            assert_eq!(
                r.body["detail"], "Conversation not found",
                "{engine}: {what}"
            );
        };
        let r = chat(
            &h,
            &eve,
            Form::new()
                .text("text", "mine now")
                .text("model", "mock-gpt")
                .text("conversation_id", conversation.to_string()),
        )
        .await;
        not_found(&r, "eve sends to ben's");
        not_found(
            &send(
                &h,
                Method::GET,
                &format!("/conversations/{conversation}/messages"),
                Some(&eve),
                None,
            )
            .await,
            "eve reads",
        );
        not_found(
            &send(
                &h,
                Method::PUT,
                &format!("/conversations/{conversation}/rename?new_title=x"),
                Some(&eve),
                None,
            )
            .await,
            "eve renames",
        );
        not_found(
            &send(
                &h,
                Method::DELETE,
                &format!("/conversations/{conversation}"),
                Some(&eve),
                None,
            )
            .await,
            "eve deletes",
        );
        let r = send(
            &h,
            Method::GET,
            &format!("/chat/messages/{answer}/usage-details"),
            Some(&eve),
            None,
        )
        .await;
        assert_eq!(r.status, 404, "{engine}: eve's usage details");
        assert_eq!(
            send(&h, Method::GET, "/conversations/", Some(&eve), None)
                .await
                .body,
            json!([])
        );
        // An unknown model: the upstream's error in the REST shape.
        let r = chat(
            &h,
            &ben,
            Form::new()
                .text("text", "hi")
                .text("model", "no-such-model"),
        )
        .await;
        assert_eq!(r.status, 404, "{engine}: {}", r.text);
        assert!(
            r.body["detail"].as_str().unwrap().contains("no-such-model"),
            "{engine}"
        );

        let r = send(
            &h,
            Method::DELETE,
            &format!("/conversations/{conversation}"),
            Some(&ben),
            None,
        )
        .await;
        assert_eq!(
            (r.status, &r.body["detail"]),
            (200, &json!("Conversation deleted")),
            "{engine}: {}",
            r.text
        );
        not_found(
            &send(
                &h,
                Method::GET,
                &format!("/conversations/{conversation}/messages"),
                Some(&ben),
                None,
            )
            .await,
            "deleted",
        );
    }
);
