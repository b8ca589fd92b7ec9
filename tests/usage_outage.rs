//! Usage records through a database outage: the gateway's PostgreSQL connection runs through a
//! relay the test can cut. Requests keep being answered while it is down; their records wait in
//! the bounded queue and overflow to the spool file; when the database is back they are written,
//! each exactly once. The same holds across a graceful restart with a non-empty spool.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use gateway::config::Config;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use common::config::TestConfig;

/// A TCP relay to PostgreSQL that can be switched off: then it closes every relayed connection
/// and drops new ones as soon as they arrive (a database that went away).
struct SwitchRelay {
    addr: std::net::SocketAddr,
    up: watch::Sender<bool>,
}

impl SwitchRelay {
    async fn start(target: String) -> SwitchRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let switch = up.subscribe();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut switch = switch.clone();
                if !*switch.borrow() {
                    continue;
                }
                let Ok(mut server) = TcpStream::connect(&target).await else {
                    continue;
                };
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = switch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        SwitchRelay { addr, up }
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// `host:port` of a PostgreSQL URL.
fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap().to_string()
}

/// Small batches, a queue of 20 (an outage overflows it fast), one quick retry.
async fn config(mock_url: &str, db_url: &str, spool: &std::path::Path) -> Config {
    TestConfig::new()
        .mock(mock_url)
        .database(db_url)
        .metering(|m| {
            m.batch_size = 10;
            m.flush_interval = Duration::from_millis(20);
            m.max_retries = 1;
            m.retry_backoff = Duration::from_millis(10);
            m.queue_capacity = 20;
        })
        .usage_spool(spool)
        .build()
        .await
}

async fn send(client: &reqwest::Client, gateway: &str, ids: &[String]) {
    for id in ids {
        let r = client
            .post(format!("{gateway}/v1/chat/completions"))
            .bearer_auth(common::KEY)
            .header("x-request-id", id)
            .json(&common::chat("mock-gpt"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "answered whatever the database does");
        r.bytes().await.unwrap();
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// How many records each request id has, read past the relay.
async fn written(pool: &sqlx::PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT request_id, count(*) FROM usage_record GROUP BY request_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

fn assert_exactly_once(seen: &HashMap<String, i64>, expected: &[String]) {
    for id in expected {
        assert_eq!(seen.get(id), Some(&1), "record of {id}");
    }
    assert_eq!(seen.len(), expected.len(), "no other records: {seen:?}");
}

#[tokio::test]
async fn every_record_is_written_once_through_an_outage_and_a_restart() {
    let direct_url = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => common::db::fresh_postgres(&url).await,
        _ => {
            eprintln!("skipped: no PostgreSQL at TEST_DATABASE_URL (unset)");
            return;
        }
    };
    let relay = SwitchRelay::start(host_port(&direct_url)).await;
    let relayed_url = direct_url.replacen(&host_port(&direct_url), &relay.addr.to_string(), 1);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("usage-spool.jsonl");
    let mock = gateway::mock::MockServer::start().await.unwrap();
    let client = reqwest::Client::new();
    let direct = sqlx::PgPool::connect(&direct_url).await.unwrap();

    let gw = gateway::spawn(config(&mock.base_url(), &relayed_url, &spool).await)
        .await
        .unwrap();
    let mut expected = ids("up", 20);
    send(&client, &gw.url(), &expected).await;
    gw.flush_usage().await;
    assert_exactly_once(&written(&direct).await, &expected);

    // Down: 60 requests, three times the queue. All answered; their records go to the spool.
    relay.set(false);
    let during = ids("down", 60);
    send(&client, &gw.url(), &during).await;
    tokio::time::timeout(Duration::from_secs(30), gw.flush_usage())
        .await
        .expect("the queue drains into the spool while the database is down");
    assert_eq!(gw.state.usage_writer.as_ref().unwrap().backlog(), 0);
    let spooled = std::fs::read_to_string(&spool).expect("a spool");
    assert_eq!(spooled.lines().count(), 60, "every record of the outage");
    assert_exactly_once(&written(&direct).await, &expected);
    expected.extend(during);

    // Back: the next batch written brings the spool in with it.
    relay.set(true);
    let after = ids("back", 10);
    send(&client, &gw.url(), &after).await;
    gw.flush_usage().await;
    expected.extend(after);
    assert_exactly_once(&written(&direct).await, &expected);
    assert!(!spool.exists(), "the spool is replayed and removed");
    let metrics = common::metrics_text(&client, &gw.url()).await;
    for name in [
        "gateway_usage_records_undelivered_total",
        "gateway_usage_records_replayed_total",
        "gateway_jobs_queue_depth",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics");
    }

    // Down again, then a graceful restart: the spool outlives the process.
    relay.set(false);
    let before_restart = ids("restart", 30);
    send(&client, &gw.url(), &before_restart).await;
    gw.shutdown().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&spool).unwrap().lines().count(),
        30,
        "shutdown spools what the database did not take"
    );
    expected.extend(before_restart);
    relay.set(true);
    let gw = gateway::spawn(config(&mock.base_url(), &relayed_url, &spool).await)
        .await
        .unwrap();
    // The writer replays the spool before its first batch; a flush waits for both.
    let last = ids("fresh", 1);
    send(&client, &gw.url(), &last).await;
    gw.flush_usage().await;
    expected.extend(last);
    assert_exactly_once(&written(&direct).await, &expected);
    assert!(!spool.exists());
    gw.shutdown().await.unwrap();
}
