//! The identity layer over real HTTP: registration and login at every seed's path, access and
//! refresh tokens, logout, password change and reset (mail through a fake SMTP server), API
//! keys on /v1, the admin endpoints, and ownership. The main flows run on every database of
//! `common::db::databases()`.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::rest::{assert_api_error, get, open_store, reply, send, shared_databases, Reply};
use common::smtp::SmtpSink;
use common::{Harness, JWT_SECRET, KEY};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

// ---------------------------------------------------------------------------------------------
// Request helpers

async fn post(h: &Harness, path: &str, token: Option<&str>, body: &Value) -> Reply {
    send(h, Method::POST, path, token, Some(body)).await
}

async fn delete(h: &Harness, path: &str, token: Option<&str>) -> Reply {
    send(h, Method::DELETE, path, token, None).await
}

/// Registers at /api/v1/auth/register and returns the token pair (asserting a 201).
async fn register(h: &Harness, email: &str, password: &str) -> Value {
    let r = post(
        h,
        "/api/v1/auth/register",
        None,
        &json!({"email": email, "password": password}),
    )
    .await;
    assert_eq!(r.status, 201, "registering {email}: {}", r.text);
    r.body
}

async fn login(h: &Harness, login: &str, password: &str) -> Reply {
    post(
        h,
        "/api/v1/auth/login",
        None,
        &json!({"email": login, "password": password}),
    )
    .await
}

/// Logs in and returns the token pair (asserting a 200).
async fn login_ok(h: &Harness, email: &str, password: &str) -> Value {
    let r = login(h, email, password).await;
    assert_eq!(r.status, 200, "logging in as {email}: {}", r.text);
    r.body
}

async fn get_me(h: &Harness, token: &str) -> Reply {
    get(h, "/api/v1/auth/me", Some(token)).await
}

/// A chat completion on /v1 with `token`.
async fn chat_as(h: &Harness, token: &str, model: &str) -> reqwest::Response {
    h.client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(token)
        .json(&common::chat(model))
        .send()
        .await
        .expect("request reaches the gateway")
}

fn access(pair: &Value) -> &str {
    pair["access_token"].as_str().expect("access_token")
}

fn refresh_token(pair: &Value) -> &str {
    pair["refresh_token"].as_str().expect("refresh_token")
}

fn user_id(pair: &Value) -> &str {
    pair["user"]["id"].as_str().expect("user.id")
}

/// The claims of a JWT, read without checking it.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url payload"))
        .expect("JSON claims")
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An access token signed as the gateway signs them (HS256 with the test secret), with `claims`.
fn sign_hs(algorithm: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signing")
}

// ---------------------------------------------------------------------------------------------
// Registration

each_database!(
    register_at_every_path_with_every_seed_shape,
    |engine, url| {
        let h = common::start_on(&url, "").await;
        let cases = [
            (
                "/api/v1/auth/register",
                json!({"email": "one@example.com", "password": PASSWORD, "full_name": "Seed One"}),
                "Seed One",
            ),
            (
                "/api/v1/auth/signup",
                json!({"username": "seedtwo", "email": "two@example.com", "password": PASSWORD}),
                "seedtwo",
            ),
            (
                "/auth/register",
                json!({"email": "three@example.com", "password": PASSWORD, "display_name": "Seed Three"}),
                "Seed Three",
            ),
            (
                "/auth/register",
                json!({"email": "Four@Example.com", "password": PASSWORD}),
                "four",
            ),
        ];
        for (path, body, name) in &cases {
            let r = post(&h, path, None, body).await;
            let context = format!("{engine}: POST {path} {body}");
            assert_eq!(r.status, 201, "{context}: {}", r.text);
            let pair = &r.body;
            assert!(!access(pair).is_empty(), "{context}");
            assert_eq!(pair["token_type"], "bearer", "{context}");
            assert!(refresh_token(pair).starts_with("rt_"), "{context}");
            assert!(pair["expires_in"].as_u64().unwrap() > 0, "{context}");
            let user = &pair["user"];
            assert!(!user_id(pair).is_empty(), "{context}");
            let email = body["email"].as_str().unwrap().to_lowercase();
            assert_eq!(user["email"], email.as_str(), "{context}");
            assert_eq!(user["name"], *name, "{context}");
            assert_eq!(user["full_name"], *name, "{context}");
            assert_eq!(user["display_name"], *name, "{context}");
            assert_eq!(user["role"], "user", "{context}");
            assert!(user.get("password").is_none(), "{context}: {}", r.text);
            if let Some(username) = body.get("username") {
                assert_eq!(user["username"], *username, "{context}");
            }
            // The access token works at once.
            let me = get_me(&h, access(pair)).await;
            assert_eq!(me.status, 200, "{context}: {}", me.text);
            assert_eq!(me.body["id"], user["id"], "{context}");
        }
    }
);

each_database!(registration_is_validated, |engine, url| {
    let h = common::start_on(&url, "").await;
    register(&h, "taken@example.com", PASSWORD).await;

    // The same email again, in another case: a conflict.
    let r = post(
        &h,
        "/api/v1/auth/register",
        None,
        &json!({"email": "TAKEN@example.com", "password": PASSWORD}),
    )
    .await;
    assert_api_error(&r, 409, "conflict", &format!("{engine}: duplicate email"));

    // Malformed JSON.
    let response = h
        .client
        .post(h.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(r#"{"email": "x@example.com", "password": "#)
        .send()
        .await
        .unwrap();
    let r = reply(response).await;
    assert_api_error(&r, 422, "invalid_request", &format!("{engine}: bad JSON"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{engine}: {}",
        r.text
    );

    // A missing password names the field in the detail.
    let r = post(
        &h,
        "/api/v1/auth/register",
        None,
        &json!({"email": "nopw@example.com"}),
    )
    .await;
    assert_api_error(
        &r,
        422,
        "invalid_request",
        &format!("{engine}: no password"),
    );
    assert!(
        r.body["detail"].as_str().unwrap().contains("password"),
        "{engine}: {}",
        r.text
    );

    // A short password.
    let r = post(
        &h,
        "/api/v1/auth/register",
        None,
        &json!({"email": "short@example.com", "password": "short"}),
    )
    .await;
    assert_api_error(
        &r,
        422,
        "invalid_request",
        &format!("{engine}: short password"),
    );
    assert_eq!(r.body["field"], "password", "{engine}: {}", r.text);

    // Bad emails.
    for email in ["not-an-email", "a@b", "@example.com", "a b@example.com", ""] {
        let r = post(
            &h,
            "/api/v1/auth/register",
            None,
            &json!({"email": email, "password": PASSWORD}),
        )
        .await;
        assert_api_error(
            &r,
            422,
            "invalid_request",
            &format!("{engine}: email {email:?}"),
        );
        assert_eq!(r.body["field"], "email", "{engine}: {}", r.text);
    }

    // A bad username.
    let r = post(
        &h,
        "/api/v1/auth/signup",
        None,
        &json!({"username": "a b", "email": "u@example.com", "password": PASSWORD}),
    )
    .await;
    assert_api_error(&r, 422, "invalid_request", &format!("{engine}: username"));
    assert_eq!(r.body["field"], "username", "{engine}: {}", r.text);

    // A body over 64 KiB.
    let big = json!({
        "email": "big@example.com",
        "password": PASSWORD,
        "full_name": "x".repeat(70 * 1024),
    });
    let r = post(&h, "/api/v1/auth/register", None, &big).await;
    assert_eq!(r.status, 413, "{engine}: oversized body: {}", r.text);

    // None of the refused registrations created an account.
    let r = login(&h, "nopw@example.com", PASSWORD).await;
    assert_eq!(r.status, 401, "{engine}: {}", r.text);
    let r = login(&h, "short@example.com", "short").await;
    assert_eq!(r.status, 401, "{engine}: {}", r.text);
});

// ---------------------------------------------------------------------------------------------
// Login and profile

each_database!(login_at_every_path_and_profile_updates, |engine, url| {
    let h = common::start_on(&url, "").await;
    let r = post(
        &h,
        "/api/v1/auth/signup",
        None,
        &json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 201, "{engine}: {}", r.text);
    let id = user_id(&r.body).to_string();

    let bodies = [
        json!({"email": "alice@example.com", "password": PASSWORD}),
        json!({"email": "  ALICE@example.com ", "password": PASSWORD}),
        json!({"username": "alice", "password": PASSWORD}),
        json!({"username": "alice@example.com", "password": PASSWORD}),
    ];
    for path in ["/api/v1/auth/login", "/api/v1/auth/signin", "/auth/login"] {
        for body in &bodies {
            let r = post(&h, path, None, body).await;
            let context = format!("{engine}: POST {path} {body}");
            assert_eq!(r.status, 200, "{context}: {}", r.text);
            assert_eq!(r.body["user"]["id"], id.as_str(), "{context}");
            assert_eq!(r.body["token_type"], "bearer", "{context}");
            assert!(!refresh_token(&r.body).is_empty(), "{context}");
        }
    }

    // OAuth2's password grant as a form.
    let form = h
        .client
        .post(h.url("/auth/token"))
        .form(&[
            ("username", "alice@example.com"),
            ("password", PASSWORD),
            ("grant_type", "password"),
        ])
        .send()
        .await
        .unwrap();
    let r = reply(form).await;
    assert_eq!(r.status, 200, "{engine}: /auth/token: {}", r.text);
    let token = access(&r.body).to_string();
    // Another grant is refused.
    let form = h
        .client
        .post(h.url("/api/v1/auth/token"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    let r = reply(form).await;
    assert_api_error(&r, 422, "invalid_request", &format!("{engine}: grant"));

    // /users/me and /api/v1/auth/me.
    for path in ["/users/me", "/api/v1/auth/me", "/auth/me"] {
        let r = get(&h, path, Some(&token)).await;
        assert_eq!(r.status, 200, "{engine}: GET {path}: {}", r.text);
        assert_eq!(r.body["id"], id.as_str(), "{engine}: {path}");
        assert_eq!(r.body["email"], "alice@example.com", "{engine}: {path}");
        assert_eq!(r.body["username"], "alice", "{engine}: {path}");
    }
    let r = get(&h, "/api/v1/auth/me", None).await;
    assert_api_error(&r, 401, "not_authenticated", &format!("{engine}: no token"));

    // PUT and PATCH change only what they are sent.
    let r = send(
        &h,
        Method::PUT,
        "/api/v1/auth/me",
        Some(&token),
        Some(&json!({"full_name": "Alice Liddell"})),
    )
    .await;
    assert_eq!(r.status, 200, "{engine}: PUT me: {}", r.text);
    assert_eq!(r.body["name"], "Alice Liddell", "{engine}");
    assert_eq!(r.body["username"], "alice", "{engine}");
    let r = send(
        &h,
        Method::PATCH,
        "/users/me",
        Some(&token),
        Some(&json!({"username": "Alice2"})),
    )
    .await;
    assert_eq!(r.status, 200, "{engine}: PATCH me: {}", r.text);
    assert_eq!(r.body["username"], "alice2", "{engine}");
    assert_eq!(r.body["name"], "Alice Liddell", "{engine}");
    let r = get_me(&h, &token).await;
    assert_eq!(r.body["username"], "alice2", "{engine}: {}", r.text);
    assert_eq!(r.body["display_name"], "Alice Liddell", "{engine}");
    // The new username logs in; the old one no longer does.
    let r = post(
        &h,
        "/api/v1/auth/login",
        None,
        &json!({"username": "alice2", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    let r = post(
        &h,
        "/api/v1/auth/login",
        None,
        &json!({"username": "alice", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 401, "{engine}: old username: {}", r.text);

    // Another user's username is taken; an empty name is refused.
    let bob = post(
        &h,
        "/api/v1/auth/signup",
        None,
        &json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(bob.status, 201, "{engine}: {}", bob.text);
    let r = send(
        &h,
        Method::PATCH,
        "/api/v1/auth/me",
        Some(&token),
        Some(&json!({"username": "BOB"})),
    )
    .await;
    assert_api_error(&r, 409, "conflict", &format!("{engine}: username taken"));
    let r = send(
        &h,
        Method::PUT,
        "/api/v1/auth/me",
        Some(&token),
        Some(&json!({"name": "  "})),
    )
    .await;
    assert_api_error(&r, 422, "invalid_request", &format!("{engine}: empty name"));
    assert_eq!(r.body["field"], "name", "{engine}");
    let r = get_me(&h, &token).await;
    assert_eq!(r.body["username"], "alice2", "{engine}: {}", r.text);
    assert_eq!(r.body["name"], "Alice Liddell", "{engine}");

    // The master key is no user.
    let r = get_me(&h, KEY).await;
    assert_api_error(&r, 403, "forbidden", &format!("{engine}: master key me"));
});

each_database!(
    failed_logins_do_not_tell_which_part_was_wrong,
    |engine, url| {
        let h = common::start_on(&url, "").await;
        register(&h, "carol@example.com", PASSWORD).await;
        let secret = "Hunter2-very-secret-guess";
        let wrong = login(&h, "carol@example.com", secret).await;
        let unknown = login(&h, "nobody@example.com", secret).await;
        assert_api_error(
            &wrong,
            401,
            "invalid_credentials",
            &format!("{engine}: wrong password"),
        );
        assert_eq!(wrong.status, unknown.status, "{engine}");
        assert_eq!(wrong.body, unknown.body, "{engine}: bodies differ");
        for r in [&wrong, &unknown] {
            assert!(!r.text.contains(secret), "{engine}: password echoed");
        }
        // A username that doesn't exist, and the form grant, answer the same too.
        let form = h
            .client
            .post(h.url("/auth/token"))
            .form(&[("username", "nobody"), ("password", secret)])
            .send()
            .await
            .unwrap();
        let r = reply(form).await;
        assert_eq!(r.status, 401, "{engine}: {}", r.text);
        assert_eq!(r.body, wrong.body, "{engine}");
        // A missing login field is a 422, not a 401.
        let r = post(&h, "/api/v1/auth/login", None, &json!({"password": secret})).await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: no login"));
        assert!(!r.text.contains(secret), "{engine}: password echoed");
    }
);

each_database!(repeated_wrong_passwords_lock_the_account, |engine, url| {
    let h = common::start_on(&url, "").await;
    register(&h, "dave@example.com", PASSWORD).await;
    for attempt in 1..=5 {
        let r = login(&h, "dave@example.com", "wrong password!").await;
        assert_eq!(r.status, 401, "{engine}: attempt {attempt}: {}", r.text);
    }
    // Locked, even with the right password, and by the other login paths too.
    let r = login(&h, "dave@example.com", PASSWORD).await;
    assert_api_error(&r, 429, "too_many_attempts", &format!("{engine}: locked"));
    let retry: u64 = r.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is seconds");
    assert!((1..=15 * 60).contains(&retry), "{engine}: {retry}");
    let r = post(
        &h,
        "/auth/login",
        None,
        &json!({"username": "DAVE@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 429, "{engine}: {}", r.text);
    // Other accounts are not locked.
    register(&h, "erin@example.com", PASSWORD).await;
    login_ok(&h, "erin@example.com", PASSWORD).await;
});

// ---------------------------------------------------------------------------------------------
// Access tokens

each_database!(bad_access_tokens_are_refused_everywhere, |engine, url| {
    let h = common::start_on(&url, "").await;
    let pair = register(&h, "frank@example.com", PASSWORD).await;
    let good = access(&pair).to_string();
    let claims = claims_of(&good);
    assert_eq!(claims["iss"], "gateway", "{engine}: {claims}");
    let sid = claims["sid"].as_str().expect("sid").to_string();
    let sub = claims["sub"].as_str().expect("sub").to_string();
    let now = unix_now();
    let fresh = json!({"sub": sub, "sid": sid, "role": "user", "iss": "gateway", "iat": now, "exp": now + 600});

    // A token we sign the way the gateway does is accepted: the forgeries below are
    // refused for what is wrong with them, not for how this test signs.
    let control = sign_hs(Algorithm::HS256, JWT_SECRET, &fresh);
    let r = get_me(&h, &control).await;
    assert_eq!(r.status, 200, "{engine}: control token: {}", r.text);

    let parts: Vec<&str> = good.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let rs_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let admin_payload = URL_SAFE_NO_PAD.encode(
        json!({"sub": sub, "sid": sid, "role": "admin", "iss": "gateway", "iat": now, "exp": now + 600})
            .to_string(),
    );
    let mut expired = fresh.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let mut other_issuer = fresh.clone();
    other_issuer["iss"] = json!("someone-else");
    let mut other_user = fresh.clone();
    other_user["sub"] = json!("another-user-id");
    let bad = [
        (
            "forged signature",
            sign_hs(
                Algorithm::HS256,
                "another-secret-that-is-at-least-32-bytes",
                &fresh,
            ),
        ),
        ("alg none", format!("{none_header}.{}.", parts[1])),
        (
            "alg none with signature",
            format!("{none_header}.{}.{}", parts[1], parts[2]),
        ),
        (
            "RS256 header",
            format!("{rs_header}.{}.{}", parts[1], parts[2]),
        ),
        (
            "RS256 signed",
            jsonwebtoken::encode(
                &Header::new(Algorithm::RS256),
                &fresh,
                &EncodingKey::from_rsa_pem(common::jwks::TEST_RSA_PRIVATE_PEM.as_bytes()).unwrap(),
            )
            .unwrap(),
        ),
        ("HS384", sign_hs(Algorithm::HS384, JWT_SECRET, &fresh)),
        (
            "payload swapped",
            format!("{}.{admin_payload}.{}", parts[0], parts[2]),
        ),
        ("expired", sign_hs(Algorithm::HS256, JWT_SECRET, &expired)),
        (
            "other issuer",
            sign_hs(Algorithm::HS256, JWT_SECRET, &other_issuer),
        ),
        (
            "sub not the session's user",
            sign_hs(Algorithm::HS256, JWT_SECRET, &other_user),
        ),
        ("garbage", "garbage".to_string()),
        ("garbage JWT", "a.b.c".to_string()),
        ("truncated", good[..good.len() - 3].to_string()),
        ("sk- garbage", "sk-not-a-real-key".to_string()),
    ];
    for (what, token) in &bad {
        let context = format!("{engine}: {what}");
        let r = get_me(&h, token).await;
        assert_api_error(&r, 401, "invalid_token", &context);
        let response = h
            .client
            .get(h.url("/v1/models"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let error = common::expect_error(response, 401).await;
        assert!(
            error["message"].as_str().unwrap().contains("Incorrect"),
            "{context}: {error}"
        );
    }
    // The real token still works after all that.
    let r = get_me(&h, &good).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    let models = h
        .client
        .get(h.url("/v1/models"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200, "{engine}");

    // A correctly signed token for a session that was logged out.
    let r = post(&h, "/api/v1/auth/logout", Some(&good), &json!({})).await;
    assert_eq!(r.status, 200, "{engine}: logout: {}", r.text);
    let r = get_me(&h, &control).await;
    assert_api_error(
        &r,
        401,
        "invalid_token",
        &format!("{engine}: ended session"),
    );
    let resigned = sign_hs(Algorithm::HS256, JWT_SECRET, &fresh);
    let r = get_me(&h, &resigned).await;
    assert_api_error(
        &r,
        401,
        "invalid_token",
        &format!("{engine}: ended session"),
    );
});

// ---------------------------------------------------------------------------------------------
// Refresh tokens

each_database!(refresh_rotates_and_reuse_ends_the_session, |engine, url| {
    let h = common::start_on(&url, "").await;
    register(&h, "grace@example.com", PASSWORD).await;
    let first = login_ok(&h, "grace@example.com", PASSWORD).await;
    let r = get_me(&h, access(&first)).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);

    let r = post(
        &h,
        "/api/v1/auth/refresh",
        None,
        &json!({"refresh_token": refresh_token(&first)}),
    )
    .await;
    assert_eq!(r.status, 200, "{engine}: refresh: {}", r.text);
    let second = r.body;
    assert_ne!(refresh_token(&second), refresh_token(&first), "{engine}");
    assert_eq!(second["user"]["id"], first["user"]["id"], "{engine}");
    assert_eq!(
        claims_of(access(&second))["sid"],
        claims_of(access(&first))["sid"],
        "{engine}: a refresh keeps the session"
    );
    let r = get_me(&h, access(&second)).await;
    assert_eq!(r.status, 200, "{engine}: new access token: {}", r.text);

    // The used refresh token presented again: refused, and the whole family with it.
    let r = post(
        &h,
        "/auth/refresh",
        None,
        &json!({"refresh_token": refresh_token(&first)}),
    )
    .await;
    assert_api_error(&r, 401, "invalid_token", &format!("{engine}: reuse"));
    let r = post(
        &h,
        "/api/v1/auth/refresh",
        None,
        &json!({"refresh_token": refresh_token(&second)}),
    )
    .await;
    assert_api_error(
        &r,
        401,
        "invalid_token",
        &format!("{engine}: successor after reuse"),
    );
    for token in [access(&first), access(&second)] {
        let r = get_me(&h, token).await;
        assert_api_error(
            &r,
            401,
            "invalid_token",
            &format!("{engine}: access after reuse"),
        );
    }

    // Other sessions are untouched; garbage refresh tokens are refused.
    let other = login_ok(&h, "grace@example.com", PASSWORD).await;
    let r = get_me(&h, access(&other)).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    for token in ["rt_nonsense", ""] {
        let r = post(
            &h,
            "/api/v1/auth/refresh",
            None,
            &json!({"refresh_token": token}),
        )
        .await;
        assert_api_error(&r, 401, "invalid_token", &format!("{engine}: {token:?}"));
    }
    let r = post(&h, "/api/v1/auth/refresh", None, &json!({})).await;
    assert_eq!(r.status, 422, "{engine}: no refresh_token: {}", r.text);
});

// ---------------------------------------------------------------------------------------------
// Logout

each_database!(logout_ends_the_session_at_once, |engine, url| {
    let h = common::start_on(&url, "").await;
    register(&h, "heidi@example.com", PASSWORD).await;
    for path in [
        "/api/v1/auth/logout",
        "/api/v1/auth/signout",
        "/auth/logout",
    ] {
        let pair = login_ok(&h, "heidi@example.com", PASSWORD).await;
        let token = access(&pair);
        // Used first, so the session sits in the principal cache.
        assert_eq!(get_me(&h, token).await.status, 200, "{engine}");
        assert_eq!(
            chat_as(&h, token, "mock-gpt").await.status(),
            200,
            "{engine}"
        );

        let response = h
            .client
            .post(h.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let r = reply(response).await;
        assert_eq!(r.status, 200, "{engine}: POST {path}: {}", r.text);

        let r = get_me(&h, token).await;
        assert_api_error(&r, 401, "invalid_token", &format!("{engine}: after {path}"));
        common::expect_error(chat_as(&h, token, "mock-gpt").await, 401).await;
        // Its refresh token ended with it.
        let r = post(
            &h,
            "/api/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token(&pair)}),
        )
        .await;
        assert_eq!(r.status, 401, "{engine}: refresh after {path}: {}", r.text);
    }

    // A refresh token alone, without an access token, ends its session too.
    let pair = login_ok(&h, "heidi@example.com", PASSWORD).await;
    assert_eq!(get_me(&h, access(&pair)).await.status, 200, "{engine}");
    let r = post(
        &h,
        "/api/v1/auth/logout",
        None,
        &json!({"refresh_token": refresh_token(&pair)}),
    )
    .await;
    assert_eq!(r.status, 200, "{engine}: refresh-token logout: {}", r.text);
    let r = get_me(&h, access(&pair)).await;
    assert_api_error(&r, 401, "invalid_token", &format!("{engine}: after logout"));

    // Nothing to log out with; a refresh token of no session.
    let response = h
        .client
        .post(h.url("/api/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    let r = reply(response).await;
    assert_api_error(&r, 401, "not_authenticated", &format!("{engine}: nothing"));
    let r = post(
        &h,
        "/api/v1/auth/logout",
        None,
        &json!({"refresh_token": "rt_unknown"}),
    )
    .await;
    assert_api_error(&r, 401, "invalid_token", &format!("{engine}: unknown rt"));
    // Other sessions of the user are unaffected.
    let kept = login_ok(&h, "heidi@example.com", PASSWORD).await;
    let ended = login_ok(&h, "heidi@example.com", PASSWORD).await;
    let r = post(&h, "/api/v1/auth/logout", Some(access(&ended)), &json!({})).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert_eq!(get_me(&h, access(&kept)).await.status, 200, "{engine}");
});

// ---------------------------------------------------------------------------------------------
// Password change and reset

each_database!(
    changing_the_password_signs_out_other_sessions,
    |engine, url| {
        let h = common::start_on(&url, "").await;
        let current = register(&h, "ivan@example.com", PASSWORD).await;
        let other = login_ok(&h, "ivan@example.com", PASSWORD).await;
        // Both sessions resolved once, so both are cached.
        assert_eq!(get_me(&h, access(&current)).await.status, 200, "{engine}");
        assert_eq!(get_me(&h, access(&other)).await.status, 200, "{engine}");
        let new_password = "a brand new passphrase";

        let r = post(
            &h,
            "/api/v1/auth/change-password",
            Some(access(&current)),
            &json!({"current_password": "not my password", "new_password": new_password}),
        )
        .await;
        assert_api_error(
            &r,
            401,
            "invalid_credentials",
            &format!("{engine}: wrong current"),
        );
        assert!(!r.text.contains(new_password), "{engine}: {}", r.text);
        // Nothing changed.
        assert_eq!(get_me(&h, access(&other)).await.status, 200, "{engine}");

        let r = post(
            &h,
            "/api/v1/auth/change-password",
            Some(access(&current)),
            &json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: short"));
        assert_eq!(r.body["field"], "password", "{engine}");

        let r = post(
            &h,
            "/api/v1/auth/change-password",
            Some(access(&current)),
            &json!({"old_password": PASSWORD, "new_password": new_password}),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: change: {}", r.text);

        assert_eq!(
            get_me(&h, access(&current)).await.status,
            200,
            "{engine}: the changing session stays"
        );
        let r = get_me(&h, access(&other)).await;
        assert_api_error(
            &r,
            401,
            "invalid_token",
            &format!("{engine}: other session"),
        );
        let r = login(&h, "ivan@example.com", PASSWORD).await;
        assert_eq!(r.status, 401, "{engine}: old password: {}", r.text);
        login_ok(&h, "ivan@example.com", new_password).await;

        // Without a token: 401; with the master key: 403.
        let r = post(
            &h,
            "/api/v1/auth/change-password",
            None,
            &json!({"current_password": new_password, "new_password": PASSWORD}),
        )
        .await;
        assert_eq!(r.status, 401, "{engine}: {}", r.text);
        let r = post(
            &h,
            "/auth/change-password",
            Some(KEY),
            &json!({"current_password": new_password, "new_password": PASSWORD}),
        )
        .await;
        assert_eq!(r.status, 403, "{engine}: {}", r.text);
    }
);

/// The text of a mail's body with quoted-printable soft breaks and `=3D` undone.
const RESET_SUBJECT: &str = "Subject: Reset your password";

/// The reset token in a mail sent without `reset_url`: the word after "Reset it with: ".
fn reset_token(mail: &str) -> String {
    common::smtp::token_after(mail, "Reset it with: ")
}

/// The mail's `To:` header value.
fn mail_to(mail: &str) -> String {
    mail.lines()
        .find_map(|l| l.strip_prefix("To: "))
        .unwrap_or_else(|| panic!("no To: header in:\n{mail}"))
        .to_string()
}

each_database!(password_reset_by_mail, |engine, url| {
    let sink = SmtpSink::start().await;
    let extra = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"gw@example.com\"\ntls = \"none\"\n",
        sink.port
    );
    let h = common::start_on(&url, &extra).await;
    let old_session = register(&h, "judy@example.com", PASSWORD).await;
    assert_eq!(get_me(&h, access(&old_session)).await.status, 200);

    // An unknown address first: the same answer, and no mail.
    let unknown = post(
        &h,
        "/api/v1/auth/reset-password",
        None,
        &json!({"email": "nobody@example.com"}),
    )
    .await;
    let known = post(
        &h,
        "/api/v1/auth/reset-password",
        None,
        &json!({"email": "Judy@Example.com"}),
    )
    .await;
    assert_eq!(known.status, 202, "{engine}: {}", known.text);
    assert_eq!(unknown.status, 202, "{engine}: {}", unknown.text);
    assert_eq!(known.body, unknown.body, "{engine}: answers differ");

    let mail = sink.next_mail_with(RESET_SUBJECT).await;
    assert!(
        mail_to(&mail).contains("judy@example.com"),
        "{engine}: first mail went to {}",
        mail_to(&mail)
    );
    assert!(!mail.contains("nobody@example.com"), "{engine}");
    let token = reset_token(&mail);
    // The token is not a password: logging in with it fails.
    assert_eq!(login(&h, "judy@example.com", &token).await.status, 401);

    // A short new password is refused without using the token up.
    let r = post(
        &h,
        "/api/v1/auth/reset-password/confirm",
        None,
        &json!({"token": token, "new_password": "short"}),
    )
    .await;
    assert_api_error(&r, 422, "invalid_request", &format!("{engine}: short"));

    let new_password = "reset to something long";
    let r = post(
        &h,
        "/api/v1/auth/reset-password/confirm",
        None,
        &json!({"token": token, "new_password": new_password}),
    )
    .await;
    assert_eq!(r.status, 200, "{engine}: confirm: {}", r.text);
    let r = post(
        &h,
        "/api/v1/auth/reset-password/confirm",
        None,
        &json!({"token": token, "new_password": "yet another password"}),
    )
    .await;
    assert_api_error(&r, 401, "invalid_token", &format!("{engine}: second use"));
    let r = post(
        &h,
        "/api/v1/auth/reset-password/confirm",
        None,
        &json!({"token": "made-up-token", "new_password": "yet another password"}),
    )
    .await;
    assert_api_error(&r, 401, "invalid_token", &format!("{engine}: bad token"));

    login_ok(&h, "judy@example.com", new_password).await;
    assert_eq!(
        login(&h, "judy@example.com", PASSWORD).await.status,
        401,
        "{engine}: the old password still works"
    );
    let r = get_me(&h, access(&old_session)).await;
    assert_api_error(&r, 401, "invalid_token", &format!("{engine}: old session"));
    let r = post(
        &h,
        "/api/v1/auth/refresh",
        None,
        &json!({"refresh_token": refresh_token(&old_session)}),
    )
    .await;
    assert_eq!(r.status, 401, "{engine}: old refresh token: {}", r.text);

    // The one-path form (seed 004) does both steps too, and the next mail is this one:
    // the unknown address above sent none.
    register(&h, "kim@example.com", PASSWORD).await;
    let r = post(
        &h,
        "/auth/reset-password",
        None,
        &json!({"email": "kim@example.com"}),
    )
    .await;
    assert_eq!(r.status, 202, "{engine}: {}", r.text);
    let mail = sink.next_mail_with(RESET_SUBJECT).await;
    assert!(mail_to(&mail).contains("kim@example.com"), "{engine}");
    let r = post(
        &h,
        "/auth/reset-password",
        None,
        &json!({"token": reset_token(&mail), "password": "kim's new password"}),
    )
    .await;
    assert_eq!(r.status, 200, "{engine}: one-path confirm: {}", r.text);
    login_ok(&h, "kim@example.com", "kim's new password").await;

    // A malformed address is a 422, not a silent 202.
    let r = post(
        &h,
        "/api/v1/auth/reset-password",
        None,
        &json!({"email": "not-an-email"}),
    )
    .await;
    assert_eq!(r.status, 422, "{engine}: {}", r.text);
});

// ---------------------------------------------------------------------------------------------
// API keys

each_database!(
    api_keys_are_shown_once_limited_and_revocable,
    |engine, url| {
        let h = common::start_on(&url, "").await;
        let alice = register(&h, "ak-alice@example.com", PASSWORD).await;
        let bob = register(&h, "ak-bob@example.com", PASSWORD).await;
        let a = access(&alice);

        let r = post(
            &h,
            "/api/v1/keys",
            Some(a),
            &json!({"name": "ci", "allowed_models": ["mock-gpt"]}),
        )
        .await;
        assert_eq!(r.status, 201, "{engine}: create: {}", r.text);
        let key = r.body["key"].as_str().expect("key").to_string();
        let id = r.body["id"].as_str().expect("id").to_string();
        assert!(key.starts_with("sk-") && key.len() > 30, "{engine}: {key}");
        assert_eq!(r.body["prefix"], &key[..11], "{engine}");
        assert_eq!(r.body["allowed_models"], json!(["mock-gpt"]), "{engine}");
        assert!(r.body["expires_at"].is_null(), "{engine}");

        // Listed with its prefix only.
        let r = get(&h, "/api/v1/keys", Some(a)).await;
        assert_eq!(r.status, 200, "{engine}: list: {}", r.text);
        assert_eq!(r.body["total"], 1, "{engine}: {}", r.text);
        assert_eq!(r.body["items"][0]["id"], id.as_str(), "{engine}");
        assert_eq!(r.body["items"][0]["prefix"], &key[..11], "{engine}");
        assert!(r.body["items"][0].get("key").is_none(), "{engine}");
        assert!(!r.text.contains(&key), "{engine}: the key is listed");

        // Usable on /v1 for its model, refused for another.
        let response = chat_as(&h, &key, "mock-gpt").await;
        assert_eq!(response.status(), 200, "{engine}: chat with key");
        let error = common::expect_error(chat_as(&h, &key, "renamed").await, 403).await;
        assert_eq!(error["code"], "model_not_allowed", "{engine}: {error}");
        // An unlimited key may use any model.
        let r = post(&h, "/api/v1/keys", Some(a), &json!({"name": "any"})).await;
        assert_eq!(r.status, 201, "{engine}: {}", r.text);
        let unlimited = r.body["key"].as_str().unwrap().to_string();
        assert_eq!(chat_as(&h, &unlimited, "renamed").await.status(), 200);
        // An API key is a credential for the app endpoints too.
        let r = get_me(&h, &key).await;
        assert_eq!(r.status, 200, "{engine}: me with key: {}", r.text);
        assert_eq!(r.body["id"], user_id(&alice), "{engine}");
        // ...but not for managing keys: the model-limited key can neither mint an unlimited one
        // nor revoke or list its owner's keys.
        let r = post(&h, "/api/v1/keys", Some(&key), &json!({"name": "escape"})).await;
        assert_api_error(
            &r,
            403,
            "forbidden",
            &format!("{engine}: key creates a key"),
        );
        let unlimited_id = r.body["id"].as_str().map(str::to_string);
        assert!(unlimited_id.is_none(), "{engine}: no key was made");
        let r = delete(&h, &format!("/api/v1/keys/{id}"), Some(&key)).await;
        assert_api_error(
            &r,
            403,
            "forbidden",
            &format!("{engine}: key revokes a key"),
        );
        let r = get(&h, "/api/v1/keys", Some(&key)).await;
        assert_api_error(&r, 403, "forbidden", &format!("{engine}: key lists keys"));
        assert_eq!(
            chat_as(&h, &key, "mock-gpt").await.status(),
            200,
            "{engine}: still live"
        );

        // Another user can't revoke it, and can't tell it exists.
        let r = delete(&h, &format!("/api/v1/keys/{id}"), Some(access(&bob))).await;
        assert_api_error(&r, 404, "not_found", &format!("{engine}: bob revokes"));
        assert_eq!(
            chat_as(&h, &key, "mock-gpt").await.status(),
            200,
            "{engine}"
        );
        let r = get(&h, "/api/v1/keys", Some(access(&bob))).await;
        assert_eq!(r.body["total"], 0, "{engine}: bob's list: {}", r.text);

        // The owner can, and it stops working at once.
        let r = delete(&h, &format!("/api/v1/keys/{id}"), Some(a)).await;
        assert_eq!(r.status, 200, "{engine}: revoke: {}", r.text);
        let error = common::expect_error(chat_as(&h, &key, "mock-gpt").await, 401).await;
        assert!(error["message"].is_string(), "{engine}");
        let r = get_me(&h, &key).await;
        assert_eq!(r.status, 401, "{engine}: {}", r.text);
        let r = delete(&h, &format!("/api/v1/keys/{id}"), Some(a)).await;
        assert_eq!(r.status, 404, "{engine}: revoked twice: {}", r.text);
        assert_eq!(chat_as(&h, &unlimited, "mock-gpt").await.status(), 200);

        // Expiry: in days, or a time that must be in the future.
        let r = post(
            &h,
            "/api/v1/keys",
            Some(a),
            &json!({"name": "month", "expires_in_days": 30}),
        )
        .await;
        assert_eq!(r.status, 201, "{engine}: {}", r.text);
        let month_id = r.body["id"].as_str().unwrap().to_string();
        let month_key = r.body["key"].as_str().unwrap().to_string();
        let r = get(&h, "/api/v1/keys?limit=200", Some(a)).await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        let listed = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == month_id.as_str())
            .unwrap_or_else(|| panic!("{engine}: key not listed: {}", r.text))
            .clone();
        let expires: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(listed["expires_at"].clone()).expect("expires_at is a time");
        let days = (expires - chrono::Utc::now()).num_hours();
        assert!((29 * 24..=30 * 24).contains(&days), "{engine}: {expires}");
        assert_eq!(chat_as(&h, &month_key, "mock-gpt").await.status(), 200);

        let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        let r = post(
            &h,
            "/api/v1/keys",
            Some(a),
            &json!({"name": "old", "expires_at": past}),
        )
        .await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: past"));
        assert_eq!(r.body["field"], "expires_at", "{engine}");
        for body in [
            json!({"name": "zero", "expires_in_days": 0}),
            json!({"name": "both", "expires_in_days": 1, "expires_at": chrono::Utc::now().to_rfc3339()}),
            json!({"name": ""}),
            json!({"name": "blank model", "allowed_models": [" "]}),
        ] {
            let r = post(&h, "/api/v1/keys", Some(a), &body).await;
            assert_eq!(r.status, 422, "{engine}: {body}: {}", r.text);
        }

        // Unauthenticated: 401 everywhere.
        assert_eq!(get(&h, "/api/v1/keys", None).await.status, 401);
        assert_eq!(
            post(&h, "/api/v1/keys", None, &json!({"name": "x"}))
                .await
                .status,
            401
        );

        // The master key acts for a named user only.
        let r = get(&h, "/api/v1/keys", Some(KEY)).await;
        assert_api_error(&r, 422, "invalid_request", &format!("{engine}: master"));
        let r = get(
            &h,
            &format!("/api/v1/keys?user_id={}", user_id(&alice)),
            Some(KEY),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(r.body["total"], 3, "{engine}: {}", r.text);
        // Paged.
        let r = get(
            &h,
            &format!("/api/v1/keys?user_id={}&limit=1&offset=2", user_id(&alice)),
            Some(KEY),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: paged: {}", r.text);
        assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{engine}");
        assert_eq!(
            (r.body["limit"].clone(), r.body["offset"].clone()),
            (json!(1), json!(2))
        );
        assert_eq!(r.body["total"], 3, "{engine}: {}", r.text);
        let r = post(
            &h,
            "/api/v1/keys",
            Some(KEY),
            &json!({"name": "for bob", "user_id": user_id(&bob)}),
        )
        .await;
        assert_eq!(r.status, 201, "{engine}: {}", r.text);
        let bobs = r.body["key"].as_str().unwrap().to_string();
        let r = get_me(&h, &bobs).await;
        assert_eq!(r.body["id"], user_id(&bob), "{engine}: {}", r.text);
        let r = post(
            &h,
            "/api/v1/keys",
            Some(KEY),
            &json!({"name": "for nobody", "user_id": "no-such-user"}),
        )
        .await;
        assert_eq!(r.status, 404, "{engine}: {}", r.text);
    }
);

each_database!(users_cannot_reach_each_others_things, |engine, url| {
    let h = common::start_on(&url, "").await;
    let alice = register(&h, "own-alice@example.com", PASSWORD).await;
    let bob = register(&h, "own-bob@example.com", PASSWORD).await;
    let (a, b) = (access(&alice), access(&bob));
    let alice_id = user_id(&alice);
    let r = post(&h, "/api/v1/keys", Some(a), &json!({"name": "mine"})).await;
    assert_eq!(r.status, 201, "{engine}: {}", r.text);
    let key = r.body["key"].as_str().unwrap().to_string();
    let key_id = r.body["id"].as_str().unwrap().to_string();

    let r = get(&h, &format!("/api/v1/keys?user_id={alice_id}"), Some(b)).await;
    assert_api_error(&r, 404, "not_found", &format!("{engine}: list A's keys"));
    assert!(!r.text.contains(&key_id), "{engine}");
    let r = delete(
        &h,
        &format!("/api/v1/keys/{key_id}?user_id={alice_id}"),
        Some(b),
    )
    .await;
    assert_api_error(&r, 404, "not_found", &format!("{engine}: revoke A's key"));
    let r = post(
        &h,
        "/api/v1/keys",
        Some(b),
        &json!({"name": "sneaky", "user_id": alice_id}),
    )
    .await;
    assert_api_error(&r, 404, "not_found", &format!("{engine}: key for A"));
    // Alice's key is untouched and she still has one key.
    assert_eq!(chat_as(&h, &key, "mock-gpt").await.status(), 200);
    let r = get(&h, &format!("/api/v1/keys?user_id={alice_id}"), Some(a)).await;
    assert_eq!(r.status, 200, "{engine}: own user_id: {}", r.text);
    assert_eq!(r.body["total"], 1, "{engine}: {}", r.text);

    // Admin endpoints are closed to users, and to a user's API key.
    for token in [b, key.as_str()] {
        let r = delete(&h, &format!("/api/v1/admin/users/{alice_id}"), Some(token)).await;
        assert_api_error(&r, 403, "forbidden", &format!("{engine}: delete A"));
        let r = get(&h, "/api/v1/admin/users", Some(token)).await;
        assert_api_error(&r, 403, "forbidden", &format!("{engine}: list users"));
        let r = get(&h, "/api/v1/admin/login-sessions", Some(token)).await;
        assert_api_error(&r, 403, "forbidden", &format!("{engine}: sessions"));
    }
    assert_eq!(get_me(&h, a).await.status, 200, "{engine}: A still exists");
    // Bob's token shows Bob.
    let r = get_me(&h, b).await;
    assert_eq!(r.body["id"], user_id(&bob), "{engine}");
});

// ---------------------------------------------------------------------------------------------
// Admin

#[tokio::test]
async fn admins_list_and_delete_users() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, url) in shared_databases(&dir).await {
        let h = common::start_on(&url, "").await;
        let admin_reg = register(&h, "root@example.com", PASSWORD).await;
        let user = register(&h, "victim@example.com", PASSWORD).await;
        register(&h, "bystander@example.com", PASSWORD).await;
        let store = open_store(&url).await;
        assert!(
            store
                .set_role(user_id(&admin_reg), "admin")
                .await
                .expect("set_role"),
            "{engine}: no such user"
        );
        let admin_pair = login_ok(&h, "root@example.com", PASSWORD).await;
        assert_eq!(admin_pair["user"]["role"], "admin", "{engine}");
        let admin = access(&admin_pair);
        let u = access(&user);
        let victim = user_id(&user).to_string();

        // The user list: admin and master key yes, a user no, nobody 401.
        let r = get(&h, "/api/v1/admin/users", Some(admin)).await;
        assert_eq!(r.status, 200, "{engine}: admin lists: {}", r.text);
        assert_eq!(r.body["total"], 3, "{engine}: {}", r.text);
        assert_eq!(r.body["limit"], 50, "{engine}");
        assert_eq!(r.body["offset"], 0, "{engine}");
        let items = r.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{engine}");
        assert!(items.iter().any(|i| i["id"] == victim.as_str()), "{engine}");
        assert!(!r.text.contains("argon2"), "{engine}: a hash is listed");
        let r = get(&h, "/api/v1/admin/users?limit=1&offset=1", Some(KEY)).await;
        assert_eq!(r.status, 200, "{engine}: master lists: {}", r.text);
        assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{engine}");
        assert_eq!(
            (r.body["limit"].clone(), r.body["offset"].clone()),
            (json!(1), json!(1))
        );
        assert_eq!(r.body["total"], 3, "{engine}");
        let r = get(&h, "/api/v1/admin/users", Some(u)).await;
        assert_api_error(&r, 403, "forbidden", &format!("{engine}: user lists"));
        let r = get(&h, "/api/v1/admin/users", None).await;
        assert_api_error(&r, 401, "not_authenticated", &format!("{engine}: anon"));

        // Sessions.
        let r = get(&h, "/api/v1/admin/login-sessions", Some(admin)).await;
        assert_eq!(r.status, 200, "{engine}: sessions: {}", r.text);
        assert!(
            r.body["total"].as_i64().unwrap() >= 4,
            "{engine}: {}",
            r.text
        );
        assert!(r.text.contains(&victim), "{engine}: {}", r.text);
        assert_eq!(
            get(&h, "/api/v1/admin/login-sessions", Some(u))
                .await
                .status,
            403
        );

        // An admin sees and manages another user's keys.
        let r = post(&h, "/api/v1/keys", Some(u), &json!({"name": "victim's"})).await;
        assert_eq!(r.status, 201, "{engine}: {}", r.text);
        let key = r.body["key"].as_str().unwrap().to_string();
        let r = get(&h, &format!("/api/v1/keys?user_id={victim}"), Some(admin)).await;
        assert_eq!(r.body["total"], 1, "{engine}: {}", r.text);

        // Deleting the user: their token and key stop at once (both were cached), login fails.
        assert_eq!(get_me(&h, u).await.status, 200, "{engine}");
        assert_eq!(chat_as(&h, &key, "mock-gpt").await.status(), 200);
        assert_eq!(chat_as(&h, u, "mock-gpt").await.status(), 200);
        let r = delete(&h, &format!("/api/v1/admin/users/{victim}"), Some(admin)).await;
        assert_eq!(r.status, 200, "{engine}: delete: {}", r.text);
        let r = get_me(&h, u).await;
        assert_api_error(
            &r,
            401,
            "invalid_token",
            &format!("{engine}: deleted token"),
        );
        common::expect_error(chat_as(&h, u, "mock-gpt").await, 401).await;
        common::expect_error(chat_as(&h, &key, "mock-gpt").await, 401).await;
        let r = login(&h, "victim@example.com", PASSWORD).await;
        assert_api_error(&r, 401, "invalid_credentials", &format!("{engine}: login"));
        let r = post(
            &h,
            "/api/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token(&user)}),
        )
        .await;
        assert_eq!(r.status, 401, "{engine}: refresh: {}", r.text);
        let r = delete(&h, &format!("/api/v1/admin/users/{victim}"), Some(admin)).await;
        assert_api_error(&r, 404, "not_found", &format!("{engine}: deleted twice"));
        let r = get(&h, "/api/v1/admin/users", Some(admin)).await;
        assert_eq!(r.body["total"], 2, "{engine}: {}", r.text);
        // The master key deletes too; the email is free again afterwards.
        let r = delete(
            &h,
            &format!("/api/v1/admin/users/{}", user_id(&admin_reg)),
            Some(KEY),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: master deletes: {}", r.text);
        assert_eq!(get_me(&h, admin).await.status, 401, "{engine}");
        register(&h, "victim@example.com", PASSWORD).await;
        store.close().await;
    }
}

each_database!(auth_health, |engine, url| {
    let h = common::start_on(&url, "").await;
    for path in ["/api/v1/auth/health", "/auth/health"] {
        let r = get(&h, path, None).await;
        assert_eq!(r.status, 200, "{engine}: {path}: {}", r.text);
        assert_eq!(r.body["status"], "healthy", "{engine}: {}", r.text);
    }
});

/// A malformed query string gets the REST error shape, not a plain-text 400.
#[tokio::test]
async fn malformed_paging_is_a_422_in_the_rest_shape() {
    let h = common::start_on(common::db::SQLITE_MEMORY, "").await;
    for path in [
        "/api/v1/admin/users?limit=abc",
        "/api/v1/keys?offset=x&user_id=u",
    ] {
        let r = get(&h, path, Some(common::KEY)).await;
        assert_api_error(&r, 422, "invalid_request", path);
    }
}

#[tokio::test]
async fn password_reset_mails_are_capped_per_address() {
    let sink = SmtpSink::start().await;
    let extra = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"gw@example.com\"\ntls = \"none\"\n",
        sink.port
    );
    let h = common::start_on(common::db::SQLITE_MEMORY, &extra).await;
    register(&h, "flooded@example.com", PASSWORD).await;
    register(&h, "other@example.com", PASSWORD).await;
    // Seven asks for one address (login_max_failures is 5): every answer is the same 202, but
    // only five mails go out.
    let ask = |email: &'static str| {
        let h = &h;
        async move {
            let r = post(
                h,
                "/api/v1/auth/reset-password",
                None,
                &json!({ "email": email }),
            )
            .await;
            assert_eq!(r.status, 202, "{email}: {}", r.text);
        }
    };
    for _ in 0..7 {
        ask("flooded@example.com").await;
    }
    for n in 0..5 {
        let mail = sink.next_mail_with(RESET_SUBJECT).await;
        assert!(
            mail_to(&mail).contains("flooded@"),
            "mail {n}: {}",
            mail_to(&mail)
        );
    }
    // The next mail is another address's: the sixth and seventh asks sent none.
    ask("other@example.com").await;
    let mail = sink.next_mail_with(RESET_SUBJECT).await;
    assert!(
        mail_to(&mail).contains("other@"),
        "a capped ask still mailed: {}",
        mail_to(&mail)
    );
}
