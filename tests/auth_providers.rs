//! Sign-in with Google and Apple (ID tokens checked against a local JWKS), and better-auth
//! sessions (the `X-Session-Token` header and the signed cookie) over real HTTP, on every
//! database of `common::db::databases()`.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use common::jwks::{self, JwksServer, TEST_KID};
use common::rest::{reply, Reply};
use common::Harness;
use gateway::config::{DatabaseConfig, Secret};
use gateway::store::Store;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const PASSWORD: &str = "correct horse battery";
const GOOGLE_ISS: &str = "https://accounts.google.com";
const APPLE_ISS: &str = "https://appleid.apple.com";
const BETTER_AUTH_SECRET: &str = "better-auth-test-secret-0123456789abcdef";

async fn post(h: &Harness, path: &str, body: &Value) -> Reply {
    let response = h.client.post(h.url(path)).json(body).send().await;
    reply(response.expect("request reaches the gateway")).await
}

/// GET /api/v1/auth/me with a header (name, value) as the only credential.
async fn me_with(h: &Harness, header: &str, value: &str) -> Reply {
    let response = h
        .client
        .get(h.url("/api/v1/auth/me"))
        .header(header, value)
        .send()
        .await;
    reply(response.expect("request reaches the gateway")).await
}

async fn get_me(h: &Harness, token: &str) -> Reply {
    me_with(h, "authorization", &format!("Bearer {token}")).await
}

async fn google(h: &Harness, id_token: &str) -> Reply {
    post(
        h,
        "/api/v1/auth/oauth/google",
        &json!({"id_token": id_token}),
    )
    .await
}

/// `[auth.google]` and `[auth.apple]` trusting the keys at `jwks_url`.
fn providers_toml(jwks_url: &str) -> String {
    format!(
        "[auth.google]\nclient_ids = [\"google-client\"]\njwks_url = \"{jwks_url}\"\n\n\
         [auth.apple]\nclient_ids = [\"com.example.app\"]\njwks_url = \"{jwks_url}\"\n"
    )
}

fn google_claims(sub: &str) -> Value {
    jwks::id_claims(GOOGLE_ISS, "google-client", sub)
}

fn assert_status(r: &Reply, status: u16, code: &str, context: &str) {
    assert_eq!(r.status, status, "{context}: {}", r.text);
    assert_eq!(r.body["code"], code, "{context}: {}", r.text);
}

#[tokio::test]
async fn google_sign_in() {
    let keys = JwksServer::start().await;
    for (engine, url) in common::db::databases().await {
        let h = common::start_on(&url, &providers_toml(&keys.url())).await;

        let mut claims = google_claims("g-123");
        claims["name"] = json!("Gina Google");
        claims["picture"] = json!("https://example.com/g.png");
        let r = google(&h, &jwks::sign_id_token(&claims, TEST_KID)).await;
        assert_eq!(r.status, 200, "{engine}: first sign-in: {}", r.text);
        assert_eq!(r.body["token_type"], "bearer", "{engine}");
        assert!(r.body["refresh_token"].is_string(), "{engine}");
        let user = r.body["user"].clone();
        assert_eq!(user["email"], "g-123@example.com", "{engine}");
        assert_eq!(user["name"], "Gina Google", "{engine}");
        assert_eq!(user["email_verified"], true, "{engine}");
        assert_eq!(user["image"], "https://example.com/g.png", "{engine}");
        let me = get_me(&h, r.body["access_token"].as_str().unwrap()).await;
        assert_eq!(me.status, 200, "{engine}: {}", me.text);
        assert_eq!(me.body["id"], user["id"], "{engine}");

        // The same subject again (via the button's `credential` field): the same user.
        let again = post(
            &h,
            "/auth/oauth/google",
            &json!({"credential": jwks::sign_id_token(&google_claims("g-123"), TEST_KID)}),
        )
        .await;
        assert_eq!(
            again.status, 200,
            "{engine}: second sign-in: {}",
            again.text
        );
        assert_eq!(again.body["user"]["id"], user["id"], "{engine}");

        // Refused tokens: wrong audience, expired, forged, wrong issuer, unknown kid.
        let mut wrong_aud = google_claims("g-123");
        wrong_aud["aud"] = json!("someone-elses-client");
        let mut expired = google_claims("g-123");
        expired["iat"] = json!(jwks::now() - 7200);
        expired["exp"] = json!(jwks::now() - 3600);
        let mut wrong_iss = google_claims("g-123");
        wrong_iss["iss"] = json!(APPLE_ISS);
        let bad = [
            ("wrong audience", jwks::sign_id_token(&wrong_aud, TEST_KID)),
            ("expired", jwks::sign_id_token(&expired, TEST_KID)),
            (
                "forged",
                jwks::sign_with_other_key(&google_claims("g-123"), TEST_KID),
            ),
            ("wrong issuer", jwks::sign_id_token(&wrong_iss, TEST_KID)),
            ("garbage", "not.a.token".to_string()),
        ];
        for (what, token) in &bad {
            let r = google(&h, token).await;
            assert_status(&r, 401, "invalid_token", &format!("{engine}: {what}"));
        }

        // A verified email of an existing password user links to that user; the account's
        // address was never verified, so its password ends (anyone could have registered it).
        let reg = post(
            &h,
            "/api/v1/auth/register",
            &json!({"email": "pat@example.com", "password": PASSWORD, "full_name": "Pat"}),
        )
        .await;
        assert_eq!(reg.status, 201, "{engine}: {}", reg.text);
        let mut linked = google_claims("g-pat");
        linked["email"] = json!("Pat@Example.com");
        let r = google(&h, &jwks::sign_id_token(&linked, TEST_KID)).await;
        assert_eq!(r.status, 200, "{engine}: linking: {}", r.text);
        assert_eq!(r.body["user"]["id"], reg.body["user"]["id"], "{engine}");
        assert_eq!(r.body["user"]["name"], "Pat", "{engine}");
        // ... and stays linked even if the email changes at Google later.
        linked["email"] = json!("pat-new@example.com");
        let r = google(&h, &jwks::sign_id_token(&linked, TEST_KID)).await;
        assert_eq!(r.body["user"]["id"], reg.body["user"]["id"], "{engine}");
        // The password of the unverified registration no longer works.
        let r = post(
            &h,
            "/api/v1/auth/login",
            &json!({"email": "pat@example.com", "password": PASSWORD}),
        )
        .await;
        assert_eq!(r.status, 401, "{engine}: {}", r.text);

        // An unverified email does not take over an existing account.
        let reg = post(
            &h,
            "/api/v1/auth/register",
            &json!({"email": "quinn@example.com", "password": PASSWORD}),
        )
        .await;
        assert_eq!(reg.status, 201, "{engine}: {}", reg.text);
        let mut unverified = google_claims("g-quinn");
        unverified["email"] = json!("quinn@example.com");
        unverified["email_verified"] = json!(false);
        let r = google(&h, &jwks::sign_id_token(&unverified, TEST_KID)).await;
        assert_status(&r, 409, "conflict", &format!("{engine}: unverified email"));

        // A nonce the app sends must be the token's (as is, or its SHA-256 in hex as Apple's
        // native flow puts it); without one in the body nothing is checked.
        let raw = "nonce-for-this-sign-in";
        let hashed = gateway::identity::tokens::token_hash(raw);
        for (carried, sent, status) in [
            (Some(raw.to_string()), Some(raw), 200),
            (Some(hashed.clone()), Some(raw), 200),
            (Some(raw.to_string()), Some("another sign-in's"), 401),
            (None, Some(raw), 401),
            (Some(raw.to_string()), None, 200),
        ] {
            let mut claims = google_claims("g-nonce");
            if let Some(carried) = &carried {
                claims["nonce"] = json!(carried);
            }
            let mut body = json!({"id_token": jwks::sign_id_token(&claims, TEST_KID)});
            if let Some(sent) = sent {
                body["nonce"] = json!(sent);
            }
            let r = post(&h, "/api/v1/auth/oauth/google", &body).await;
            assert_eq!(
                r.status, status,
                "{engine}: nonce {carried:?} / {sent:?}: {}",
                r.text
            );
        }

        // Missing token field.
        let r = post(&h, "/api/v1/auth/oauth/google", &json!({})).await;
        assert_eq!(r.status, 422, "{engine}: {}", r.text);
    }
}

#[tokio::test]
async fn apple_sign_in() {
    let keys = JwksServer::start().await;
    for (engine, url) in common::db::databases().await {
        let h = common::start_on(&url, &providers_toml(&keys.url())).await;
        let mut claims = jwks::id_claims(APPLE_ISS, "com.example.app", "apple-001");
        claims["email"] = json!("ada@privaterelay.appleid.com");
        claims["email_verified"] = json!("true");
        let token = jwks::sign_id_token(&claims, TEST_KID);
        let r = post(
            &h,
            "/api/v1/auth/oauth/apple",
            &json!({"identity_token": token, "name": "Ada Lovelace"}),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: apple: {}", r.text);
        let user = r.body["user"].clone();
        assert_eq!(user["name"], "Ada Lovelace", "{engine}");
        assert_eq!(user["email"], "ada@privaterelay.appleid.com", "{engine}");
        assert_eq!(user["email_verified"], true, "{engine}");
        let me = get_me(&h, r.body["access_token"].as_str().unwrap()).await;
        assert_eq!(me.body["name"], "Ada Lovelace", "{engine}: {}", me.text);

        // Later sign-ins carry no name; the user is the same, the name kept.
        let r = post(
            &h,
            "/auth/oauth/apple",
            &json!({"identityToken": jwks::sign_id_token(&claims, TEST_KID)}),
        )
        .await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);
        assert_eq!(r.body["user"]["id"], user["id"], "{engine}");
        assert_eq!(r.body["user"]["name"], "Ada Lovelace", "{engine}");

        // A Google token is not an Apple token (issuer and audience differ).
        let r = post(
            &h,
            "/api/v1/auth/oauth/apple",
            &json!({"identity_token": jwks::sign_id_token(&google_claims("apple-001"), TEST_KID)}),
        )
        .await;
        assert_status(&r, 401, "invalid_token", &format!("{engine}: google token"));
        let mut other_aud = claims.clone();
        other_aud["aud"] = json!("google-client");
        let r = post(
            &h,
            "/api/v1/auth/oauth/apple",
            &json!({"identity_token": jwks::sign_id_token(&other_aud, TEST_KID)}),
        )
        .await;
        assert_status(&r, 401, "invalid_token", &format!("{engine}: audience"));
    }
}

#[tokio::test]
async fn unconfigured_providers_are_forbidden() {
    let keys = JwksServer::start().await;
    let google_only = format!(
        "[auth.google]\nclient_ids = [\"google-client\"]\njwks_url = \"{}\"\n",
        keys.url()
    );
    for (engine, url) in common::db::databases().await {
        let h = common::start_on(&url, &google_only).await;
        let mut claims = jwks::id_claims(APPLE_ISS, "com.example.app", "apple-002");
        claims["email_verified"] = json!("true");
        let r = post(
            &h,
            "/api/v1/auth/oauth/apple",
            &json!({"identity_token": jwks::sign_id_token(&claims, TEST_KID)}),
        )
        .await;
        assert_status(&r, 403, "forbidden", &format!("{engine}: apple"));
        // Google, configured, works on the same gateway.
        let r = google(&h, &jwks::sign_id_token(&google_claims("g-9"), TEST_KID)).await;
        assert_eq!(r.status, 200, "{engine}: {}", r.text);

        let h = common::start_on(&url, "").await;
        let r = google(&h, &jwks::sign_id_token(&google_claims("g-9"), TEST_KID)).await;
        assert_status(&r, 403, "forbidden", &format!("{engine}: google"));
    }
}

// ---------------------------------------------------------------------------------------------
// better-auth sessions

/// better-auth's signed cookie value: percent-encoded `token.base64(HMAC-SHA256(secret, token))`.
fn signed_cookie(secret: &str, token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(token.as_bytes());
    let value = format!("{token}.{}", STANDARD.encode(mac.finalize().into_bytes()));
    percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn better_auth_sessions_and_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let databases = common::db::databases()
        .await
        .into_iter()
        .map(|(engine, url)| {
            if engine == "sqlite" {
                // A file, so a second store can write to the gateway's database.
                let path = dir.path().join("better-auth.db");
                (engine, format!("sqlite://{}", path.display()))
            } else {
                (engine, url)
            }
        });
    let extra = format!("[auth.better_auth]\nsecret = \"{BETTER_AUTH_SECRET}\"\n");
    for (engine, url) in databases {
        let h = common::start_on(&url, &extra).await;
        let store = Store::connect(&DatabaseConfig {
            url: Secret::new(url.as_str()),
            auto_migrate: false,
            max_connections: 2,
        })
        .await
        .expect("a second store on the gateway's database");
        let token = uuid::Uuid::new_v4().simple().to_string();
        let in_a_week = Utc::now() + chrono::Duration::days(7);
        let id =
            common::rest::better_auth_session(&store, "ba@example.com", &token, in_a_week).await;

        // The X-Session-Token header, and the same token as a bearer.
        let r = me_with(&h, "x-session-token", &token).await;
        assert_eq!(r.status, 200, "{engine}: X-Session-Token: {}", r.text);
        assert_eq!(r.body["id"], id.as_str(), "{engine}");
        assert_eq!(r.body["email"], "ba@example.com", "{engine}");
        let r = get_me(&h, &token).await;
        assert_eq!(r.status, 200, "{engine}: bearer session token: {}", r.text);
        assert_eq!(r.body["id"], id.as_str(), "{engine}");

        // The signed cookie.
        let cookie = format!(
            "theme=dark; better-auth.session_token={}",
            signed_cookie(BETTER_AUTH_SECRET, &token)
        );
        let r = me_with(&h, "cookie", &cookie).await;
        assert_eq!(r.status, 200, "{engine}: cookie: {}", r.text);
        assert_eq!(r.body["id"], id.as_str(), "{engine}");
        // A state-changing request carried by the cookie alone must come from this origin (or
        // a [cors] one): another site's page cannot make the browser send it (CSRF).
        let own = h.gateway.url();
        for (credential, origin, status) in [
            (("cookie", cookie.as_str()), "https://evil.example", 403),
            (("cookie", cookie.as_str()), own.as_str(), 200),
            (
                ("x-session-token", token.as_str()),
                "https://evil.example",
                200,
            ),
        ] {
            let r = h
                .client
                .patch(h.url("/api/v1/auth/me"))
                .header(credential.0, credential.1)
                .header("origin", origin)
                .json(&json!({"name": "Bett Auth"}))
                .send()
                .await
                .unwrap();
            let r = reply(r).await;
            assert_eq!(
                r.status, status,
                "{engine}: {} from {origin}: {}",
                credential.0, r.text
            );
            if status == 403 {
                assert_eq!(r.body["code"], "cross_site_request", "{engine}");
            }
        }
        // Tampered: signed with another secret, or the signature of another token.
        let forged = format!(
            "better-auth.session_token={}",
            signed_cookie("not-the-better-auth-secret", &token)
        );
        let r = me_with(&h, "cookie", &forged).await;
        assert_status(&r, 401, "not_authenticated", &format!("{engine}: forged"));
        let other_sig = signed_cookie(BETTER_AUTH_SECRET, "another-token");
        let (_, sig) = other_sig.rsplit_once("%2E").expect("an encoded dot");
        let swapped = format!("better-auth.session_token={token}%2E{sig}");
        let r = me_with(&h, "cookie", &swapped).await;
        assert_status(&r, 401, "not_authenticated", &format!("{engine}: swapped"));
        let unsigned = format!("better-auth.session_token={token}");
        let r = me_with(&h, "cookie", &unsigned).await;
        assert_eq!(r.status, 401, "{engine}: unsigned cookie: {}", r.text);

        // Expired and unknown sessions.
        let old = uuid::Uuid::new_v4().simple().to_string();
        let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
        common::rest::better_auth_session(&store, "ba@example.com", &old, an_hour_ago).await;
        let r = me_with(&h, "x-session-token", &old).await;
        assert_status(&r, 401, "invalid_token", &format!("{engine}: expired"));
        let r = me_with(
            &h,
            "cookie",
            &format!(
                "better-auth.session_token={}",
                signed_cookie(BETTER_AUTH_SECRET, &old)
            ),
        )
        .await;
        assert_status(
            &r,
            401,
            "invalid_token",
            &format!("{engine}: expired cookie"),
        );
        let r = me_with(&h, "x-session-token", "no-such-session-token").await;
        assert_status(&r, 401, "invalid_token", &format!("{engine}: unknown"));

        // /v1 takes the header too.
        let response = h
            .client
            .post(h.url("/v1/chat/completions"))
            .header("x-session-token", &token)
            .json(&common::chat("mock-gpt"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{engine}: /v1 with X-Session-Token");
        let response = h
            .client
            .post(h.url("/v1/chat/completions"))
            .header("x-session-token", "no-such-session-token")
            .json(&common::chat("mock-gpt"))
            .send()
            .await
            .unwrap();
        common::expect_error(response, 401).await;
        let response = h
            .client
            .post(h.url("/v1/chat/completions"))
            .header("cookie", &cookie)
            .json(&common::chat("mock-gpt"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{engine}: /v1 with the cookie");
        store.close().await;
    }
}
