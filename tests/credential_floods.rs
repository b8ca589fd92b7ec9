//! Random credentials cost the database little: a token of the wrong form is refused without a
//! lookup, one token sent many times at once is looked up once, and an address that keeps
//! sending unknown ones is refused (429) without lookups, though a key valid lately still
//! works from there. One test in its own binary: it reads
//! the process-wide `gateway_credential_lookups_total` counter.

mod common;

use common::config::TestConfig;
use common::Harness;

/// `gateway_credential_lookups_total` summed over its kinds, from `/metrics`.
async fn lookups(h: &Harness) -> u64 {
    let text = common::metrics_text(&h.client, &h.gateway.url()).await;
    text.lines()
        .filter(|l| l.starts_with("gateway_credential_lookups_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn chat_status(h: &Harness, header: (&str, String)) -> u16 {
    common::chat_status_with(h, (header.0, &header.1)).await
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// A well-formed API key that was never issued (43 base64url characters after `sk-`).
fn unknown_key(n: usize) -> String {
    format!("sk-{:0>43}", format!("unknown{n}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_credentials_cost_at_most_one_lookup_each_and_floods_are_refused() {
    let h = common::start_config(TestConfig::new().identity(|i| {
        i.unknown_credentials_per_address_per_minute = 30;
        i.principal_cache_ttl = std::time::Duration::from_millis(300);
    }))
    .await;
    // A real user's key, used before the flood.
    let access = h
        .post_json(
            "/api/v1/auth/register",
            &serde_json::json!({"email": "real@example.com", "password": "correct horse battery"}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let real_key = h
        .client
        .post(h.url("/api/v1/keys"))
        .bearer_auth(&access)
        .json(&serde_json::json!({"name": "real"}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(chat_status(&h, bearer(&real_key)).await, 200);
    let start = lookups(&h).await;

    // The wrong form: no lookup at all.
    for token in ["sk-short", "sk-!!!!", "a b", "tiny", &"x".repeat(300)] {
        assert_eq!(chat_status(&h, bearer(token)).await, 401, "{token}");
    }
    assert_eq!(
        chat_status(&h, ("x-session-token", "short".into())).await,
        401
    );
    assert_eq!(
        lookups(&h).await,
        start,
        "a malformed credential was looked up"
    );

    // One unknown key sent twenty times at once: one lookup.
    let same = unknown_key(0);
    let statuses =
        futures_util::future::join_all((0..20).map(|_| chat_status(&h, bearer(&same)))).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(lookups(&h).await, start + 1, "one key, several lookups");

    // Distinct unknown keys from one address: looked up until the address has sent 30, then
    // refused without a lookup.
    let mut refused = 0;
    for n in 1..=40 {
        match chat_status(&h, bearer(&unknown_key(n))).await {
            401 => {}
            429 => refused += 1,
            other => panic!("unknown key {n}: {other}"),
        }
    }
    assert_eq!(refused, 11, "the 31st unknown credential on is refused");
    assert_eq!(lookups(&h).await, start + 30);
    // A session token of the right form counts too, and is refused now.
    let token = "0123456789abcdef0123456789abcdef";
    assert_eq!(
        chat_status(&h, ("x-session-token", token.into())).await,
        429
    );
    assert_eq!(lookups(&h).await, start + 30);
    // The master key and other known credentials need no lookup and still work.
    assert_eq!(chat_status(&h, bearer(common::KEY)).await, 200);

    // The real key's cache entry lapses while its address is refused: it was valid lately, so
    // it is looked up again and works, while a new unknown key is still refused.
    let before = lookups(&h).await;
    let mut looked_up_again = false;
    for _ in 0..100 {
        assert_eq!(chat_status(&h, bearer(&real_key)).await, 200);
        if lookups(&h).await > before {
            looked_up_again = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(looked_up_again, "the real key's entry never lapsed");
    assert_eq!(chat_status(&h, bearer(&unknown_key(99))).await, 429);
}
