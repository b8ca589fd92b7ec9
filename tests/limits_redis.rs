//! The Redis limits backend: two real `gateway` processes sharing one Redis enforce one limit
//! (requests, concurrency, budget), not twice it; and an unreachable Redis fails open or closed
//! as configured without stopping the gateway from starting. The two-replica test needs a Redis
//! at `TEST_REDIS_URL` and prints a "skipped" line without one.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::limits::{assert_limited, reply, Reply};
use common::KEY;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// One gateway process, killed when dropped (a failing test leaves no orphan).
struct Replica {
    _child: Child,
    url: String,
    _logs: tokio::task::JoinHandle<()>,
}

async fn start_replica(dir: &Path, name: &str, mock_url: &str, extra: &str) -> Replica {
    let db = format!("sqlite://{}", dir.join(format!("{name}.db")).display());
    let text = common::config::TestConfig::new()
        .mock(mock_url)
        .database(&db)
        .sections(extra)
        .text()
        .await;
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--log-format", "json", "--config"])
        .arg(&config)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .env_remove("GATEWAY_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("reading the log") {
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["message"] == "gateway listening" {
                return event["listen"].as_str().map(str::to_string);
            }
        }
        None
    })
    .await
    .expect("the gateway logs where it listens in time")
    .expect("the gateway started");
    // Keep reading, so the process never blocks on a full pipe.
    let logs = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Replica {
        _child: child,
        url: format!("http://{listening}"),
        _logs: logs,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn chat_on(client: &reqwest::Client, replica: &Replica, body: &Value) -> Reply {
    let response = client
        .post(format!("{}/v1/chat/completions", replica.url))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .expect("request reaches a replica");
    reply(response).await
}

#[tokio::test]
async fn two_replicas_enforce_one_set_of_limits() {
    let Some(redis) = common::redis_url() else {
        return;
    };
    let mock = gateway::mock::MockServer::start().await.unwrap();
    let prefix = format!("gwtest-{}", uuid::Uuid::new_v4().simple());
    let extra = format!(
        r#"
[[providers]]
name = "patient"
base_url = "{mock}"
idle_timeout_ms = 30000

[[models]]
name = "patient-model"
targets = [{{ provider = "patient" }}]

[pricing.models."renamed"]
input_per_mtok = 1000.0
output_per_mtok = 1000.0

[redis]
url = "{redis}"
key_prefix = "{prefix}"
timeout_ms = 1000

[limits]
backend = "redis"
on_backend_error = "fail_closed"
user_tier = "basic"
[limits.tiers.basic]
requests_per_minute = 10
daily_budget_usd = 5.0
[limits.models."mock-gpt"]
requests_per_minute = 5
[limits.models."patient-model"]
max_concurrent = 2
[limits.models."renamed"]
daily_budget_usd = 0.5
"#,
        mock = mock.base_url(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mock_url = mock.base_url();
    let (a, b) = tokio::join!(
        start_replica(dir.path(), "a", &mock_url, &extra),
        start_replica(dir.path(), "b", &mock_url, &extra),
    );
    let replicas = [&a, &b];
    let client = client();

    // Requests per minute: 16 at once, half on each replica; exactly 5 get through.
    let body = common::chat("mock-gpt");
    let replies =
        futures_util::future::join_all((0..16).map(|i| chat_on(&client, replicas[i % 2], &body)))
            .await;
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(admitted, 5, "one limit across both replicas");
    for r in replies.iter().filter(|r| r.status != 200) {
        let retry = assert_limited(r, "requests", "rate_limit_exceeded");
        assert!(retry <= 12, "one request back every 12 s: {retry}");
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("5"));
    }

    // Concurrency: a stream held open on each replica uses both slots.
    let stalled = common::streamed_chat("patient-model", json!({"stall_after": 1}));
    let send = |replica: &Replica| {
        client
            .post(format!("{}/v1/chat/completions", replica.url))
            .bearer_auth(KEY)
            .json(&stalled)
            .send()
    };
    let first = send(&a).await.unwrap();
    assert_eq!(first.status(), 200);
    let second = send(&b).await.unwrap();
    assert_eq!(second.status(), 200);
    for replica in replicas {
        let r = reply(send(replica).await.unwrap()).await;
        assert_limited(&r, "requests", "rate_limit_exceeded");
    }
    // One ends: its slot frees (settled asynchronously, so allow it a moment, bounded).
    drop(first);
    let mut freed = None;
    for _ in 0..100 {
        let response = send(&b).await.unwrap();
        if response.status() == 200 {
            freed = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed.is_some(), "the slot of a finished stream is freed");
    drop((second, freed));

    // A budget: 60 concurrent requests over both replicas never spend more than it.
    let body = json!({"model": "renamed", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "Hello!"}]});
    let replies =
        futures_util::future::join_all((0..60).map(|i| chat_on(&client, replicas[i % 2], &body)))
            .await;
    let mut spent = 0.0;
    let mut admitted = 0;
    for r in &replies {
        if r.status == 200 {
            admitted += 1;
            let usage = &r.body["usage"];
            let tokens = usage["prompt_tokens"].as_u64().unwrap()
                + usage["completion_tokens"].as_u64().unwrap();
            spent += tokens as f64 * 1000.0 / 1_000_000.0;
        } else {
            assert_limited(r, "insufficient_quota", "insufficient_quota");
        }
    }
    assert!(spent <= 0.5 + 1e-9, "spent ${spent} of $0.5");
    assert!(admitted >= 5, "at least budget / worst case: {admitted}");
    assert!(admitted < 60, "some were refused");

    // A user's own limits, read back from Redis without taking anything.
    let register = client
        .post(format!("{}/api/v1/auth/register", a.url))
        .json(&json!({"email": "redis@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let registered = reply(register).await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let token = registered.body["access_token"].as_str().unwrap();
    for _ in 0..2 {
        let response = client
            .post(format!("{}/v1/embeddings", a.url))
            .bearer_auth(token)
            .json(&json!({"model": "mock-embed", "input": "hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let mine = client
        .get(format!("{}/api/v1/limits", a.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let mine = reply(mine).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(mine.body["backend"], "redis");
    let remaining = &mine.body["scopes"][0]["remaining"];
    assert_eq!(remaining["requests"], 8, "{}", mine.text);
    assert!(remaining["daily_budget_usd"].as_f64().unwrap() <= 5.0);
}

#[tokio::test]
async fn an_unreachable_redis_fails_open_or_closed_as_configured() {
    let port = common::closed_port().await;
    let config = |mode: &str| {
        format!(
            r#"
[redis]
url = "redis://127.0.0.1:{port}"
timeout_ms = 100

[limits]
backend = "redis"
on_backend_error = "{mode}"
[limits.models."mock-gpt"]
requests_per_minute = 1
"#
        )
    };
    // The gateway starts with Redis down either way.
    let open = common::limits::start(common::db::SQLITE_MEMORY, &config("fail_open")).await;
    for _ in 0..3 {
        let r = open
            .settled(open.chat(KEY, &common::chat("mock-gpt")))
            .await;
        assert_eq!(r.status, 200, "fail_open admits: {}", r.text);
        assert!(r.header("x-ratelimit-limit-requests").is_none());
    }

    let metrics = common::metrics_text(&open.client, &open.gateway.url()).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(r#"gateway_ratelimit_backend_errors_total{backend="redis"}"#)),
        "backend errors are counted: {metrics}"
    );

    let closed = common::limits::start(common::db::SQLITE_MEMORY, &config("fail_closed")).await;
    let r = closed
        .settled(closed.chat(KEY, &common::chat("mock-gpt")))
        .await;
    assert_eq!(r.status, 503, "fail_closed refuses: {}", r.text);
    assert_eq!(
        r.body["error"]["code"], "rate_limiter_unavailable",
        "{}",
        r.text
    );
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Redis"));
    assert_eq!(closed.upstream_requests(), 0, "nothing was forwarded");
    // A model with no limits needs no Redis.
    let r = closed
        .settled(closed.chat(KEY, &common::chat("renamed")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A TCP relay to Redis that can hold what clients send for a while: Redis then answers after
/// the gateway's `redis.timeout_ms`, as on a network hiccup.
struct StallingRelay {
    addr: std::net::SocketAddr,
    hold_until: tokio::sync::watch::Sender<tokio::time::Instant>,
}

impl StallingRelay {
    async fn start(redis_url: &str) -> StallingRelay {
        let upstream = redis_url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hold_until, watch) = tokio::sync::watch::channel(tokio::time::Instant::now());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (mut client_rx, client_tx) = client.into_split();
                let (server_rx, mut server_tx) = server.into_split();
                let watch = watch.clone();
                // Client to Redis: each chunk waits out the hold; order is kept.
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_rx.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let until = *watch.borrow();
                        tokio::time::sleep_until(until).await;
                        if server_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let (mut from, mut to) = (server_rx, client_tx);
                    let _ = tokio::io::copy(&mut from, &mut to).await;
                });
            }
        });
        StallingRelay { addr, hold_until }
    }

    fn hold_for(&self, duration: Duration) {
        let _ = self.hold_until.send(tokio::time::Instant::now() + duration);
    }
}

#[tokio::test]
async fn an_admit_answered_too_late_leaves_no_slot_behind() {
    let Some(redis_url) = common::redis_url() else {
        return;
    };
    let relay = StallingRelay::start(&redis_url).await;
    let prefix = format!("gwtest-{}", uuid::Uuid::new_v4().simple());
    let h = common::limits::start(
        common::db::SQLITE_MEMORY,
        &format!(
            r#"
[redis]
url = "redis://{}"
timeout_ms = 100
key_prefix = "{prefix}"

[limits]
backend = "redis"
on_backend_error = "fail_open"
[limits.models."mock-gpt"]
requests_per_minute = 1000
max_concurrent = 1
"#,
            relay.addr
        ),
    )
    .await;
    // Connected and working first.
    let r = h.settled(h.chat(KEY, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("1000"));

    // Redis answers the next admit after 600 ms: the gateway gives up at 100 ms and, failing
    // open, serves the request without limits.
    relay.hold_for(Duration::from_millis(600));
    let r = h.settled(h.chat(KEY, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "fail_open admits: {}", r.text);
    assert!(r.header("x-ratelimit-limit-requests").is_none());

    // Once Redis gets the late admit, it takes nothing or gives it straight back: the release
    // marks the request cancelled. Wait (bounded) for that marker, read past the relay.
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let marked: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:lim:cancel:*"))
            .query_async(&mut redis)
            .await
            .unwrap();
        if !marked.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the timed-out admit is released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first request's settlement travels on another connection through the same held
    // relay and may land just after the marker: wait (bounded) for the set to empty.
    loop {
        let in_flight: u64 = redis::cmd("ZCARD")
            .arg(format!("{prefix}:lim:conc:m:mock-gpt"))
            .query_async(&mut redis)
            .await
            .unwrap();
        if in_flight == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no concurrency slot is left behind ({in_flight} held)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // So the one slot is free: the next request is admitted, not refused for 15 minutes.
    let r = h.settled(h.chat(KEY, &common::chat("mock-gpt"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("1000"));
}

/// A request's Redis settlement lands before a shutdown returns, even with Redis slow to answer:
/// a stream still open when the drain runs out is ended, and its concurrency slot is given back
/// in Redis, not left to other replicas until its lease ends.
#[tokio::test]
async fn a_shutdown_returns_only_once_settlements_reached_redis() {
    use futures_util::StreamExt;
    let Some(redis_url) = common::redis_url() else {
        return;
    };
    let relay = StallingRelay::start(&redis_url).await;
    let prefix = format!("gwtest-{}", uuid::Uuid::new_v4().simple());
    let common::Harness {
        mut gateway,
        client,
        mock: _mock,
    } = common::start_config(
        common::config::TestConfig::new()
            .sections(&format!(
                r#"
[redis]
url = "redis://{relay}"
timeout_ms = 4000
key_prefix = "{prefix}"

[limits]
backend = "redis"
[limits.models."mock-gpt"]
max_concurrent = 5
requests_per_minute = 1000
"#,
                relay = relay.addr
            ))
            .server(|s| s.drain_timeout = Duration::from_millis(300)),
    )
    .await;
    let in_flight = || {
        let redis_url = redis_url.clone();
        let key = format!("{prefix}:lim:conc:m:mock-gpt");
        async move {
            let client = redis::Client::open(redis_url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            redis::cmd("ZCARD")
                .arg(key)
                .query_async::<u64>(&mut conn)
                .await
                .unwrap()
        }
    };
    // A stream that stalls after two chunks: still open when the drain runs out.
    let response = client
        .post(format!("{}/v1/chat/completions", gateway.url()))
        .bearer_auth(KEY)
        .json(&common::streamed_chat(
            "mock-gpt",
            json!({"chunks": 5, "stall_after": 2}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    stream.next().await;
    assert_eq!(in_flight().await, 1, "the stream holds its slot");

    // Redis now answers late: the stream is ended (drain 300 ms, then 1 s to close) while
    // Redis holds its settlement until 2.5 s from now.
    relay.hold_for(Duration::from_millis(2500));
    gateway.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(15), gateway.wait())
        .await
        .expect("the shutdown finishes")
        .unwrap();
    assert_eq!(
        in_flight().await,
        0,
        "the interrupted stream's slot is given back before the shutdown returns"
    );
    drop(stream);
}
