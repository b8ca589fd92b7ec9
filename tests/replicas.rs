//! Two replicas on one database and one Redis: a logout or a key revocation on one replica is
//! honoured by the other at once (Redis pub/sub), not after its cache entry expires, and
//! password guesses spread over both count once. Needs Redis at `TEST_REDIS_URL`; prints a
//! "skipped" line without one.

mod common;

use std::time::Duration;

use common::config::TestConfig;
use common::rest::{get, send, Reply};
use common::Harness;
use reqwest::Method;
use serde_json::{json, Value};

/// Waits (bounded) until `channel` has `n` subscribers: both replicas listen.
async fn wait_for_subscribers(redis_url: &str, channel: &str, n: i64) {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .unwrap();
        if counts.first().is_some_and(|(_, c)| *c >= n) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded, far under the 30 s cache TTL) until `check` answers `status`.
async fn becomes<F, Fut>(status: u16, check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        if check().await == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn post(h: &Harness, path: &str, token: Option<&str>, body: &Value) -> Reply {
    send(h, Method::POST, path, token, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_replica_holds_on_the_other_at_once() {
    let Some(redis) = common::redis_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("gw.db").display());
    let prefix = format!("gw-revoke-{}", uuid::Uuid::new_v4().simple());
    let sections = format!("[redis]\nurl = \"{redis}\"\nkey_prefix = \"{prefix}\"\n");
    let config = || TestConfig::new().database(&db).sections(&sections);
    let a = common::start_config(config()).await;
    let b = common::start_config(config()).await;
    wait_for_subscribers(&redis, &format!("{prefix}:identity:forget"), 2).await;

    // A session: signed in on A, used (and cached) on B, ended on A.
    let r = post(
        &a,
        "/api/v1/auth/register",
        None,
        &json!({"email": "twice@example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let access = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(get(&b, "/api/v1/auth/me", Some(&access)).await.status, 200);
    let r = post(&a, "/api/v1/auth/logout", Some(&access), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        becomes(401, || async {
            get(&b, "/api/v1/auth/me", Some(&access)).await.status
        })
        .await,
        "replica B still honours a session ended on A"
    );

    // An API key: made on A, used (and cached) on B, revoked on A.
    let r = post(
        &a,
        "/api/v1/auth/login",
        None,
        &json!({"email": "twice@example.com", "password": "correct horse battery"}),
    )
    .await;
    let access = r.body["access_token"].as_str().unwrap().to_string();
    let key = post(
        &a,
        "/api/v1/keys",
        Some(&access),
        &json!({"name": "shared"}),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let (secret, id) = (
        key.body["key"].as_str().unwrap().to_string(),
        key.body["id"].as_str().unwrap().to_string(),
    );
    assert_eq!(common::chat_status(&b, &secret).await, 200);
    let r = send(
        &a,
        Method::DELETE,
        &format!("/api/v1/keys/{id}"),
        Some(&access),
        None,
    )
    .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    assert!(
        becomes(401, || common::chat_status(&b, &secret)).await,
        "replica B still honours a key revoked on A"
    );
}

/// Logs in as `email` with `password` on `h`: the status.
async fn login_status(h: &Harness, email: &str, password: &str) -> u16 {
    post(
        h,
        "/api/v1/auth/login",
        None,
        &json!({"email": email, "password": password}),
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guesses_on_two_replicas_count_once() {
    let Some(redis) = common::redis_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("gw.db").display());
    let prefix = format!("gw-throttle-{}", uuid::Uuid::new_v4().simple());
    let sections = format!("[redis]\nurl = \"{redis}\"\nkey_prefix = \"{prefix}\"\n");
    let config = || {
        TestConfig::new()
            .database(&db)
            .sections(&sections)
            .identity(|i| i.login_max_failures = 3)
    };
    let a = common::start_config(config()).await;
    let b = common::start_config(config()).await;
    let email = "guessed@example.com";
    let r = post(
        &a,
        "/api/v1/auth/register",
        None,
        &json!({"email": email, "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Three guesses, spread over both replicas, use up the account's three.
    for h in [&a, &b, &a] {
        assert_eq!(login_status(h, email, "wrong guess").await, 401);
    }
    // Locked on both: counted per replica, B would have allowed two more.
    for h in [&b, &a] {
        assert_eq!(login_status(h, email, "correct horse battery").await, 429);
    }
    // Nothing about the account or the address is written to Redis in the clear.
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:throttle:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|k| !k.contains("guessed") && !k.contains("127.0.0.1")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn with_redis_down_guesses_are_still_throttled_and_logouts_still_end_sessions() {
    let port = common::closed_port().await;
    let h = common::start_config(
        TestConfig::new()
            .sections(&format!(
                "[redis]\nurl = \"redis://127.0.0.1:{port}\"\ntimeout_ms = 200\n"
            ))
            .identity(|i| i.login_max_failures = 2),
    )
    .await;
    let email = "alone@example.com";
    let r = post(
        &h,
        "/api/v1/auth/register",
        None,
        &json!({"email": email, "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let access = r.body["access_token"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(login_status(&h, email, "wrong guess").await, 401);
    }
    assert_eq!(login_status(&h, email, "correct horse battery").await, 429);
    // A logout with nowhere to publish it still ends the session here, at once.
    let started = std::time::Instant::now();
    let r = post(&h, "/api/v1/auth/logout", Some(&access), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(get(&h, "/api/v1/auth/me", Some(&access)).await.status, 401);
    let metrics = common::metrics_text(&h.client, &h.gateway.url()).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gateway_throttle_backend_errors_total")),
        "the fallback is counted"
    );
}
