//! The account holes of the "safe by default" review, each driven through HTTP: pre-registration
//! takeover through Google linking, email verification, mail without SMTP, closed registration,
//! bounded password hashing, per-address throttles behind trusted proxies, login throttle
//! bypasses, admin-scoped API keys and keys revoked by a password reset.

mod common;

use common::config::TestConfig;
use common::jwks::{self, JwksServer, TEST_KID};
use common::rest::{assert_api_error, get, open_store, reply, send, Reply};
use common::smtp::SmtpSink;
use common::Harness;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";
const VERIFY_SUBJECT: &str = "Subject: Verify your email address";
const RESET_SUBJECT: &str = "Subject: Reset your password";

async fn post(h: &Harness, path: &str, token: Option<&str>, body: &Value) -> Reply {
    send(h, Method::POST, path, token, Some(body)).await
}

/// POST from a client a trusted proxy names in `X-Forwarded-For`.
async fn post_from(h: &Harness, path: &str, forwarded_for: &str, body: &Value) -> Reply {
    let response = h
        .client
        .post(h.url(path))
        .header("x-forwarded-for", forwarded_for)
        .json(body)
        .send()
        .await
        .expect("request reaches the gateway");
    reply(response).await
}

async fn register(h: &Harness, email: &str) -> Value {
    let r = post(
        h,
        "/api/v1/auth/register",
        None,
        &json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 201, "registering {email}: {}", r.text);
    r.body
}

async fn login(h: &Harness, email: &str, password: &str) -> Reply {
    post(
        h,
        "/api/v1/auth/login",
        None,
        &json!({"email": email, "password": password}),
    )
    .await
}

fn access(pair: &Value) -> &str {
    pair["access_token"].as_str().expect("access_token")
}

async fn new_key(h: &Harness, token: &str, body: Value) -> Reply {
    post(h, "/api/v1/keys", Some(token), &body).await
}

fn smtp_toml(sink: &SmtpSink) -> String {
    format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"gw@example.com\"\ntls = \"none\"\n",
        sink.port
    )
}

fn google_toml(keys: &JwksServer) -> String {
    format!(
        "[auth.google]\nclient_ids = [\"google-client\"]\njwks_url = \"{}\"\n",
        keys.url()
    )
}

async fn google_as(h: &Harness, sub: &str, email: &str) -> Reply {
    let mut claims = jwks::id_claims("https://accounts.google.com", "google-client", sub);
    claims["email"] = json!(email);
    let token = jwks::sign_id_token(&claims, TEST_KID);
    post(
        h,
        "/api/v1/auth/oauth/google",
        None,
        &json!({"id_token": token}),
    )
    .await
}

// 1. Pre-registration takeover: a squatter registers the victim's address first.
each_database!(
    a_verified_google_sign_in_ends_a_squatters_credentials,
    |engine, url| {
        let keys = JwksServer::start().await;
        let h = common::start_on(&url, &google_toml(&keys)).await;
        let squatter = register(&h, "victim@gmail.com").await;
        assert_eq!(squatter["user"]["email_verified"], false, "{engine}");
        let key = new_key(&h, access(&squatter), json!({"name": "kept"})).await;
        assert_eq!(key.status, 201, "{engine}: {}", key.text);
        let api_key = key.body["key"].as_str().unwrap().to_string();
        assert_eq!(common::chat_status(&h, &api_key).await, 200, "{engine}");

        // The real owner signs in with Google: the account is theirs, and nothing of the squatter's
        // works any more.
        let owner = google_as(&h, "g-victim", "victim@gmail.com").await;
        assert_eq!(owner.status, 200, "{engine}: {}", owner.text);
        assert_eq!(owner.body["user"]["id"], squatter["user"]["id"], "{engine}");
        assert_eq!(owner.body["user"]["email_verified"], true, "{engine}");
        assert_eq!(
            login(&h, "victim@gmail.com", PASSWORD).await.status,
            401,
            "{engine}: the squatter's password still works"
        );
        let me = get(&h, "/api/v1/auth/me", Some(access(&squatter))).await;
        assert_api_error(
            &me,
            401,
            "invalid_token",
            &format!("{engine}: squatter session"),
        );
        assert_eq!(
            common::chat_status(&h, &api_key).await,
            401,
            "{engine}: the squatter's API key still works"
        );
        let me = get(&h, "/api/v1/auth/me", Some(access(&owner.body))).await;
        assert_eq!(me.status, 200, "{engine}: {}", me.text);
        assert_eq!(me.body["email_verified"], true, "{engine}");
    }
);

// 1. Email verification: a mailed link; a verified account links to Google and keeps its password.
each_database!(email_verification_by_mailed_link, |engine, url| {
    let sink = SmtpSink::start().await;
    let keys = JwksServer::start().await;
    let extra = format!("{}\n{}", smtp_toml(&sink), google_toml(&keys));
    let h = common::start_on(&url, &extra).await;
    let pair = register(&h, "vera@example.com").await;
    let mail = sink.next_mail_with(VERIFY_SUBJECT).await;
    let token = common::smtp::token_after(&mail, "Confirm that this address is yours with: ");

    let r = post(
        &h,
        "/api/v1/auth/verify-email",
        None,
        &json!({"token": "made-up"}),
    )
    .await;
    assert_api_error(
        &r,
        401,
        "invalid_token",
        &format!("{engine}: made-up token"),
    );
    let r = get(&h, &format!("/auth/verify-email?token={token}"), None).await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert_eq!(r.body["user"]["email_verified"], true, "{engine}");
    let r = post(
        &h,
        "/api/v1/auth/verify-email",
        None,
        &json!({"token": token}),
    )
    .await;
    assert_api_error(&r, 401, "invalid_token", &format!("{engine}: second use"));
    let me = get(&h, "/api/v1/auth/me", Some(access(&pair))).await;
    assert_eq!(me.body["email_verified"], true, "{engine}");
    // Asking again once verified sends nothing.
    let r = post(
        &h,
        "/api/v1/auth/verify-email/request",
        Some(access(&pair)),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);

    // A verified account links to Google and its password keeps working.
    let r = google_as(&h, "g-vera", "vera@example.com").await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert_eq!(r.body["user"]["id"], pair["user"]["id"], "{engine}");
    assert_eq!(
        login(&h, "vera@example.com", PASSWORD).await.status,
        200,
        "{engine}"
    );

    // A new link on request, for an account not yet verified.
    let other = register(&h, "otto@example.com").await;
    sink.next_mail_with(VERIFY_SUBJECT).await;
    let r = post(
        &h,
        "/auth/send-verification-email",
        Some(access(&other)),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 202, "{engine}: {}", r.text);
    let mail = sink.next_mail_with(VERIFY_SUBJECT).await;
    assert!(mail.contains("otto@example.com"), "{engine}: {mail}");
});

// 2. Without SMTP nothing mails a secret anywhere: reset and verification requests are a 503.
#[tokio::test]
async fn without_smtp_mail_requests_are_refused() {
    let h = common::start().await;
    let pair = register(&h, "nomail@example.com").await;
    let r = post(
        &h,
        "/api/v1/auth/reset-password",
        None,
        &json!({"email": "nomail@example.com"}),
    )
    .await;
    assert_api_error(&r, 503, "mail_unavailable", "reset without SMTP");
    assert!(!r.text.contains("token"), "{}", r.text);
    let r = post(
        &h,
        "/api/v1/auth/verify-email/request",
        Some(access(&pair)),
        &json!({}),
    )
    .await;
    assert_api_error(&r, 503, "mail_unavailable", "verification without SMTP");

    // The explicit development setting lets reset requests through (the mail goes to the log).
    let h = common::start_config(TestConfig::new().identity(|i| i.log_mails = true)).await;
    register(&h, "devmail@example.com").await;
    let r = post(
        &h,
        "/api/v1/auth/reset-password",
        None,
        &json!({"email": "devmail@example.com"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
}

// 3. Registration is closed unless the config opens it.
#[tokio::test]
async fn registration_is_closed_by_default() {
    let config = gateway::config::Config::parse("", "test", &|_| None).expect("empty config");
    assert!(!config.identity.allow_registration);
    let h =
        common::start_config(TestConfig::new().identity(|i| i.allow_registration = false)).await;
    let r = post(
        &h,
        "/api/v1/auth/register",
        None,
        &json!({"email": "stranger@example.com", "password": PASSWORD}),
    )
    .await;
    assert_api_error(&r, 403, "forbidden", "closed registration");
}

// 3. The shipped config: sign-up closed, and every user under a daily budget if it is opened.
#[test]
fn the_shipped_config_is_closed_and_budgeted() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = gateway::config::Config::parse(&text, path, &|_| None).expect("shipped config");
    assert!(!config.identity.allow_registration);
    assert!(config.server.listen.ip().is_loopback());
    let limits = config.limits.expect("the shipped config has [limits]");
    let tier = limits.tier(limits.user_tier.as_deref());
    assert!(
        tier.daily_budget_usd.is_some_and(|b| b > 0.0 && b <= 5.0),
        "{tier:?}"
    );
}

// 3 and 4. Sign-ups and reset mails are limited per client address.
#[tokio::test]
async fn register_and_reset_are_throttled_per_address() {
    let sink = SmtpSink::start().await;
    let h = common::start_config(TestConfig::new().sections(&smtp_toml(&sink)).identity(|i| {
        i.registrations_per_address_per_hour = 3;
        i.password_resets_per_address_per_hour = 2;
    }))
    .await;
    for n in 0..3 {
        register(&h, &format!("bulk{n}@example.com")).await;
    }
    let r = post(
        &h,
        "/api/v1/auth/register",
        None,
        &json!({"email": "bulk9@example.com", "password": PASSWORD}),
    )
    .await;
    assert_api_error(&r, 429, "too_many_attempts", "fourth sign-up");
    assert!(
        r.header_u64("retry-after").is_some_and(|s| s > 0),
        "{:?}",
        r.headers
    );
    for _ in 0..2 {
        let r = post(
            &h,
            "/api/v1/auth/reset-password",
            None,
            &json!({"email": "bulk0@example.com"}),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    let r = post(
        &h,
        "/api/v1/auth/reset-password",
        None,
        &json!({"email": "bulk1@example.com"}),
    )
    .await;
    assert_api_error(&r, 429, "too_many_attempts", "third reset ask");
}

// 4. Hashing is bounded: beyond the pool a fast 503, and a duplicate email never hashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashing_is_bounded_and_duplicates_skip_it() {
    let h = common::start_config(TestConfig::new().identity(|i| {
        i.password_hash_concurrency = 1;
        i.password_hash_queue = 0;
    }))
    .await;
    register(&h, "taken@example.com").await;
    // With one hash at a time and no queue, only a duplicate check that skips hashing makes
    // every one of these a 409 (hashing, some would be 503s).
    let duplicate = json!({"email": "Taken@Example.com", "password": PASSWORD});
    let duplicates = (0..8).map(|_| post(&h, "/api/v1/auth/register", None, &duplicate));
    for r in futures_util::future::join_all(duplicates).await {
        assert_api_error(&r, 409, "conflict", "duplicate sign-up");
    }
    let logins: Vec<Value> = (0..8)
        .map(|n| json!({"email": format!("nobody{n}@example.com"), "password": PASSWORD}))
        .collect();
    let fresh = logins
        .iter()
        .map(|body| post(&h, "/api/v1/auth/login", None, body));
    let replies = futures_util::future::join_all(fresh).await;
    let busy: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(
        !busy.is_empty(),
        "eight verifies at once all ran on a pool of one"
    );
    for r in busy {
        assert_api_error(r, 503, "busy", "a full hashing pool");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    for r in replies.iter().filter(|r| r.status != 503) {
        assert_eq!(r.status, 401, "{}", r.text);
    }
}

// 5. Behind a trusted proxy the client is the forwarded address: one guesser cannot lock out
// the others, is slowed but never refused a correct password, and sessions record the client.
#[tokio::test]
async fn trusted_proxies_name_the_client_for_throttles_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let h = common::start_config(
        TestConfig::new()
            .database(&url)
            .sections("")
            .identity(|i| {
                i.login_max_failures = 2;
                i.login_address_delay = std::time::Duration::from_millis(20);
            })
            .server(|s| s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]),
    )
    .await;
    for n in 0..4 {
        register(&h, &format!("user{n}@example.com")).await;
    }
    // The guesser (198.51.100.66, forging 6.6.6.6 on the left) fails on many accounts: its
    // address throttle (8 failures) fills.
    let login_from = |forwarded: &'static str, email: String, password: &'static str| {
        let body = json!({"email": email, "password": password});
        let h = &h;
        async move { post_from(h, "/api/v1/auth/login", forwarded, &body).await }
    };
    for n in 0..12 {
        let ghost = format!("ghost{n}@example.com");
        let r = login_from("6.6.6.6, 198.51.100.66", ghost, "wrong guess").await;
        assert_eq!(r.status, 401, "guess {n}: {}", r.text);
    }
    // Another client behind the same balancer logs in at once.
    let r = login_from("198.51.100.7", "user1@example.com".into(), PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The guesser's address with a correct password: slowed, not refused.
    let r = login_from("198.51.100.66", "user2@example.com".into(), PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The session remembers the client, not the balancer nor the forged entry.
    let store = open_store(&url).await;
    let (sessions, _) = store.list_sessions(50, 0).await.unwrap();
    let addresses: Vec<_> = sessions
        .iter()
        .filter_map(|s| s.ip_address.clone())
        .collect();
    assert!(
        addresses.contains(&"198.51.100.7".to_string()),
        "{addresses:?}"
    );
    assert!(
        addresses.contains(&"198.51.100.66".to_string()),
        "{addresses:?}"
    );
    assert!(!addresses.iter().any(|a| a == "6.6.6.6"), "{addresses:?}");
}

// 5. Without trusted proxies a forwarding header is the client's own words: ignored.
#[tokio::test]
async fn forwarding_headers_from_untrusted_peers_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let h = common::start_on(&url, "").await;
    register(&h, "plain@example.com").await;
    let r = post_from(
        &h,
        "/api/v1/auth/login",
        "203.0.113.50",
        &json!({"email": "plain@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let store = open_store(&url).await;
    let (sessions, _) = store.list_sessions(50, 0).await.unwrap();
    assert!(
        sessions
            .iter()
            .all(|s| s.ip_address.as_deref() == Some("127.0.0.1")),
        "{:?}",
        sessions
            .iter()
            .map(|s| s.ip_address.clone())
            .collect::<Vec<_>>()
    );
}

/// A gateway that locks an account after 3 failures, with the user `name` (`name@example.com`).
async fn three_failures_with_user(name: &str) -> Harness {
    let h = common::start_config(TestConfig::new().identity(|i| i.login_max_failures = 3)).await;
    let body =
        json!({"email": format!("{name}@example.com"), "username": name, "password": PASSWORD});
    let r = post(&h, "/api/v1/auth/register", None, &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    h
}

// 6. Guesses sent at once are all counted, and an account is one bucket by any of its names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttle_counts_concurrent_guesses_and_names_one_account() {
    let h = three_failures_with_user("ada").await;
    let guesses = (0..10).map(|n| login(&h, "ada@example.com", if n % 2 == 0 { "a" } else { "b" }));
    let replies = futures_util::future::join_all(guesses).await;
    let checked = replies.iter().filter(|r| r.status == 401).count();
    let refused = replies.iter().filter(|r| r.status == 429).count();
    assert_eq!(checked + refused, 10);
    assert!(
        checked <= 3,
        "{checked} of 10 concurrent guesses were checked"
    );

    // The username is the same account: locked too.
    let h = three_failures_with_user("bea").await;
    for name in ["bea", "bea@example.com", "BEA"] {
        assert_eq!(login(&h, name, "wrong").await.status, 401, "{name}");
    }
    let r = login(&h, "bea@example.com", "wrong").await;
    assert_api_error(
        &r,
        429,
        "too_many_attempts",
        "fourth guess under another name",
    );
}

// 7. An admin's API key is an admin credential only with the admin scope.
#[tokio::test]
async fn admin_endpoints_take_only_admin_scoped_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let h = common::start_on(&url, "").await;
    let admin = register(&h, "boss@example.com").await;
    let user = register(&h, "worker@example.com").await;
    let store = open_store(&url).await;
    store
        .set_role(admin["user"]["id"].as_str().unwrap(), "admin")
        .await
        .unwrap();
    let admin = login(&h, "boss@example.com", PASSWORD).await.body;

    let plain = new_key(&h, access(&admin), json!({"name": "ci"})).await;
    assert_eq!(plain.status, 201, "{}", plain.text);
    assert_eq!(plain.body["admin"], false);
    let plain = plain.body["key"].as_str().unwrap().to_string();
    let r = get(&h, "/api/v1/admin/users", Some(&plain)).await;
    assert_api_error(&r, 403, "forbidden", "admin endpoint with a plain key");
    // The plain key still works on /v1.
    assert_eq!(common::chat_status(&h, &plain).await, 200);

    let scoped = new_key(&h, access(&admin), json!({"name": "ops", "admin": true})).await;
    assert_eq!(scoped.status, 201, "{}", scoped.text);
    assert_eq!(scoped.body["admin"], true);
    let r = get(
        &h,
        "/api/v1/admin/users",
        Some(scoped.body["key"].as_str().unwrap()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Nobody else gets the scope.
    let r = new_key(&h, access(&user), json!({"name": "sneaky", "admin": true})).await;
    assert_api_error(&r, 422, "invalid_request", "a user's admin-scoped key");
}

// 8. A password reset ends the API keys too, and the mail says so.
each_database!(a_password_reset_revokes_api_keys, |engine, url| {
    let sink = SmtpSink::start().await;
    let h = common::start_on(&url, &smtp_toml(&sink)).await;
    let pair = register(&h, "reclaim@example.com").await;
    let key = new_key(&h, access(&pair), json!({"name": "squatter's"})).await;
    let key = key.body["key"].as_str().unwrap().to_string();
    assert_eq!(common::chat_status(&h, &key).await, 200, "{engine}");
    let r = post(
        &h,
        "/api/v1/auth/reset-password",
        None,
        &json!({"email": "reclaim@example.com"}),
    )
    .await;
    assert_eq!(r.status, 202, "{engine}: {}", r.text);
    let mail = sink.next_mail_with(RESET_SUBJECT).await;
    assert!(
        common::smtp::decode_mail(&mail).contains("revokes every API key"),
        "{engine}: {mail}"
    );
    let token = common::smtp::token_after(&mail, "Reset it with: ");
    let r = post(
        &h,
        "/api/v1/auth/reset-password/confirm",
        None,
        &json!({"token": token, "new_password": "a brand new password"}),
    )
    .await;
    assert_eq!(r.status, 200, "{engine}: {}", r.text);
    assert_eq!(
        common::chat_status(&h, &key).await,
        401,
        "{engine}: the key survived the reset"
    );
});
