//! Seed 000's frontend calls /v1 with no credential from `http://localhost:3000`: the
//! `[anonymous]` mode (off by default) lets such callers use only the routes and models it
//! names, under limits per client address and a shared budget; `[cors]` answers the browser's
//! preflights. Over real HTTP against the mock.

mod common;

use common::{Harness, KEY};
use gateway::config::Config;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

const ANONYMOUS: &str = r#"
[anonymous]
enabled = true
routes = ["chat.completions", "audio.transcriptions"]
models = ["mock-gpt", "mock-whisper"]
per_address = { requests_per_minute = 3, daily_budget_usd = 1.0 }
total_daily_budget_usd = 5.0

[pricing.models."mock-gpt"]
input_per_mtok = 1.0
output_per_mtok = 1.0
"#;

async fn chat(h: &Harness, model: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = h
        .client
        .post(h.url("/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn error_of(response: reqwest::Response, status: u16) -> Value {
    common::expect_error(response, status).await
}

#[tokio::test]
async fn without_anonymous_mode_no_credential_is_refused() {
    let h = common::start().await;
    let r = chat(&h, "mock-gpt", None).await;
    let e = error_of(r, 401).await;
    assert_eq!(e["type"], "authentication_error");
    assert_eq!(h.upstream_requests(), 0);
}

#[tokio::test]
async fn anonymous_callers_get_the_named_routes_and_models_within_their_limits() {
    let h = common::start_with(ANONYMOUS).await;

    // No credential: the anonymous model answers, with the address's rate headers.
    let r = chat(&h, "mock-gpt", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-ratelimit-limit-requests"].to_str().unwrap(),
        "3"
    );
    let body: Value = r.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"].is_string());

    // Transcription too (a named route and model).
    let form = Form::new().text("model", "mock-whisper").part(
        "file",
        Part::bytes(vec![0u8; 512])
            .file_name("a.mp3")
            .mime_str("audio/mpeg")
            .unwrap(),
    );
    let r = h
        .client
        .post(h.url("/v1/audio/transcriptions"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Another model, or a route not named: a 401 that says a key would do.
    let e = error_of(chat(&h, "renamed", None).await, 401).await;
    assert!(
        e["message"].as_str().unwrap().contains("needs an API key"),
        "{e}"
    );
    let r = h
        .client
        .post(h.url("/v1/embeddings"))
        .json(&json!({"model": "mock-embed", "input": "hi"}))
        .send()
        .await
        .unwrap();
    error_of(r, 401).await;

    // A wrong credential is refused, never served as anonymous.
    let e = error_of(chat(&h, "mock-gpt", Some("sk-not-a-key")).await, 401).await;
    assert_eq!(e["code"], "invalid_api_key", "{e}");

    // Three a minute per address: the fourth anonymous request is refused, naming why.
    let r = chat(&h, "mock-gpt", None).await;
    assert_eq!(r.status(), 200);
    let r = chat(&h, "mock-gpt", None).await;
    assert!(r.headers().contains_key("retry-after"));
    let e = error_of(r, 429).await;
    assert!(
        e["message"].as_str().unwrap().contains("your address"),
        "{e}"
    );

    // A caller with a key is not under the anonymous limits, and may use other models.
    let r = chat(&h, "mock-gpt", Some(KEY)).await;
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("x-ratelimit-limit-requests"));
    assert_eq!(chat(&h, "renamed", Some(KEY)).await.status(), 200);
}

#[tokio::test]
async fn the_shared_budget_bounds_every_anonymous_caller() {
    // A shared budget below one request's worst case (reserved up front): anonymous callers
    // are refused by it, though their own address's budget would allow the request.
    let config = ANONYMOUS.replace(
        "total_daily_budget_usd = 5.0",
        "total_daily_budget_usd = 0.000001",
    );
    let h = common::start_with(&config).await;
    assert_eq!(chat(&h, "mock-gpt", Some(KEY)).await.status(), 200);
    let e = error_of(chat(&h, "mock-gpt", None).await, 429).await;
    assert_eq!(e["type"], "insufficient_quota", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("without an API key together"),
        "{e}"
    );
}

#[test]
fn anonymous_mode_needs_its_bounds_and_known_names() {
    let parse = |extra: &str| {
        Config::parse(
            &format!(
                "[[providers]]\nname = \"p\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
                 [[models]]\nname = \"m\"\ntargets = [{{ provider = \"p\" }}]\n{extra}"
            ),
            "test",
            &|_| None,
        )
    };
    let problems = parse(
        "[anonymous]\nenabled = true\nroutes = [\"chat.completions\", \"images\"]\nmodels = [\"m\", \"nope\"]\n",
    )
    .unwrap_err()
    .problems
    .join("\n");
    for expected in [
        "anonymous.routes[1]: unknown route \"images\"",
        "anonymous.models[1]: no model or alias named \"nope\"",
        "anonymous.per_address.requests_per_minute: required",
        "anonymous.per_address.daily_budget_usd: required",
    ] {
        assert!(problems.contains(expected), "{expected} in {problems}");
    }
    // Off by default, and off when written so: nothing is required then.
    let config = parse("").unwrap();
    assert!(config.anonymous.is_none() && config.limits.is_none());
    assert!(parse("[anonymous]\nenabled = false\n")
        .unwrap()
        .anonymous
        .is_none());
    // On without [limits]: the limits plugin is on (in memory) to enforce it.
    let config = parse(
        "[anonymous]\nenabled = true\nroutes = [\"chat.completions\"]\nmodels = [\"m\"]\n\
         per_address = { requests_per_minute = 5, daily_budget_usd = 0.5 }\n",
    )
    .unwrap();
    assert!(config.anonymous.is_some() && config.limits.is_some());

    let problems = parse("[cors]\nallowed_origins = [\"http://localhost:3000/\", \"localhost\"]\n")
        .unwrap_err()
        .problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
    let problems = parse("[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n")
        .unwrap_err()
        .problems;
    assert!(
        problems[0].starts_with("cors.allow_credentials"),
        "{problems:?}"
    );
}

const CORS: &str = r#"
[cors]
allowed_origins = ["http://localhost:3000"]
"#;

async fn preflight(h: &Harness, path: &str, origin: &str) -> reqwest::Response {
    h.client
        .request(reqwest::Method::OPTIONS, h.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-session-token",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_answers_the_configured_origin_only() {
    let h = common::start_with(&format!("{CORS}{ANONYMOUS}")).await;
    let allowed = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };

    // The preflights seed 000's browser sends before /v1 and /api/prompts.
    for path in [
        "/v1/chat/completions",
        "/api/prompts",
        "/api/prompts/some-id",
    ] {
        let r = preflight(&h, path, "http://localhost:3000").await;
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(
            allowed(&r).as_deref(),
            Some("http://localhost:3000"),
            "{path}"
        );
        let headers = r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(headers.contains("x-session-token"), "{path}: {headers}");
        let methods = r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap();
        assert!(
            methods.contains("PUT") && methods.contains("DELETE"),
            "{methods}"
        );
    }
    // Another origin gets no grant.
    let r = preflight(&h, "/v1/chat/completions", "http://evil.example").await;
    assert_eq!(allowed(&r), None);

    // The real request: granted, with the headers a client reads exposed.
    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("origin", "http://localhost:3000")
        .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(allowed(&r).as_deref(), Some("http://localhost:3000"));
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
    // Errors carry the grant too, so the browser can read them.
    let r = h
        .client
        .get(h.url("/api/prompts"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(allowed(&r).as_deref(), Some("http://localhost:3000"));
}

#[tokio::test]
async fn without_cors_no_grant_is_sent() {
    let h = common::start().await;
    let r = preflight(&h, "/v1/chat/completions", "http://localhost:3000").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
