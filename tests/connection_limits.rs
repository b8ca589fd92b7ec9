//! Exhaustion at the connection level, driven over raw TCP: a body trickled in is cut off at
//! its deadline (408 on /v1, 504 on the app routes), request bodies together stay under the
//! in-flight budget (503 beyond), and connections are capped in all and per address.

mod common;

use std::time::Duration;

use common::config::TestConfig;
use common::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `head` (and `body`) on a fresh connection and returns it, still open.
async fn send_partial(h: &Harness, head: &str, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(h.gateway.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream
}

/// What the gateway answers on `stream` (bounded wait), as text.
async fn answer(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn post_head(path: &str, length: usize, key: Option<&str>) -> String {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n{auth}Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_its_deadline() {
    let h = common::start_config(TestConfig::new().server(|s| {
        s.body_read_timeout = Duration::from_millis(500);
        s.app_request_timeout = Duration::from_millis(800);
    }))
    .await;
    let head = post_head("/v1/chat/completions", 500, Some(common::KEY));
    let mut stream = send_partial(&h, &head, b"{\"model\":\"mock-gpt\",").await;
    let text = answer(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive"), "{text}");
    assert_eq!(h.upstream_requests(), 0);

    // An app endpoint: its whole answer has a deadline.
    let head = post_head("/api/v1/auth/login", 200, None);
    let mut stream = send_partial(&h, &head, b"{\"email\":").await;
    let text = answer(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test]
async fn request_bodies_in_flight_stay_within_the_budget() {
    let h =
        common::start_config(TestConfig::new().server(|s| s.max_inflight_body_bytes = 100 * 1024))
            .await;
    // One upload of 60 KiB, half sent: its whole length is reserved.
    let head = post_head("/v1/chat/completions", 60 * 1024, Some(common::KEY));
    let mut held = send_partial(&h, &head, b"{\"model\":").await;
    // Wait (bounded) until the gateway has read its headers and reserved it: a second 60 KiB
    // upload is then refused at once, before its body is read.
    let big = serde_json::json!({"model": "mock-gpt",
        "messages": [{"role": "user", "content": "x".repeat(60 * 1024 - 100)}]});
    let mut refused = None;
    for _ in 0..100 {
        let r = h.post_json("/v1/chat/completions", &big).await;
        if r.status() == 503 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a second large body beside the held one is refused");
    assert_eq!(refused.headers()["retry-after"], "1");
    let error = common::expect_error(refused, 503).await;
    assert_eq!(error["code"], "gateway_overloaded");
    // Small bodies still fit beside it.
    let r = h
        .post_json("/v1/chat/completions", &common::chat("mock-gpt"))
        .await;
    assert_eq!(r.status(), 200);
    // The held upload goes away: its share comes back.
    held.shutdown().await.unwrap();
    drop(held);
    let mut ok = false;
    for _ in 0..100 {
        if h.post_json("/v1/chat/completions", &big).await.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "the budget came back once the held body was gone");
}

/// Whether the gateway serves a request on `stream` (false: it closed the connection).
async fn serves(stream: &mut TcpStream) -> bool {
    let request = "GET /health HTTP/1.1\r\nHost: gw\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    answer(stream).await.starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn connections_are_capped_per_address_and_in_all() {
    let h = common::start_config(TestConfig::new().server(|s| {
        s.max_connections_per_address = 2;
        s.max_connections = 3;
    }))
    .await;
    let mut first = TcpStream::connect(h.gateway.addr).await.unwrap();
    let mut second = TcpStream::connect(h.gateway.addr).await.unwrap();
    assert!(serves(&mut first).await && serves(&mut second).await);
    let mut third = TcpStream::connect(h.gateway.addr).await.unwrap();
    assert!(
        !serves(&mut third).await,
        "a third connection from one address was served"
    );
    // One closes: its place is free again.
    drop(first);
    let mut ok = false;
    for _ in 0..100 {
        let mut again = TcpStream::connect(h.gateway.addr).await.unwrap();
        if serves(&mut again).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "the closed connection's place did not come back");
    assert!(serves(&mut second).await);
}

/// A chunked body (no declared length) is counted against the budget as its chunks arrive.
#[tokio::test]
async fn a_chunked_body_counts_against_the_budget_as_it_arrives() {
    let h =
        common::start_config(TestConfig::new().server(|s| s.max_inflight_body_bytes = 100 * 1024))
            .await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        common::KEY
    );
    let chunk = format!("{:x}\r\n{}\r\n", 50 * 1024, "x".repeat(50 * 1024));
    let mut held = send_partial(&h, &head, chunk.as_bytes()).await;
    let big = serde_json::json!({"model": "mock-gpt",
        "messages": [{"role": "user", "content": "x".repeat(60 * 1024 - 100)}]});
    let mut refused = false;
    for _ in 0..100 {
        let r = h.post_json("/v1/chat/completions", &big).await;
        if r.status() == 503 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "50 KiB of chunks held did not count against the budget"
    );
    held.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_http2_client_that_stops_answering_pings_is_dropped() {
    let h = common::start_config(TestConfig::new().server(|s| {
        s.http2_keep_alive = Duration::from_millis(200);
    }))
    .await;
    // An h2c connection: the preface and an empty SETTINGS frame, then silence (no SETTINGS
    // ack, no PING ack), as from a client whose network went away.
    let mut stream = TcpStream::connect(h.gateway.addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    // The gateway pings after 200 ms of silence and closes 200 ms after an unanswered ping.
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent connection is still open");
    // Frames: 9-byte headers, type at offset 3. A PING (type 6) was among them.
    let mut at = 0;
    let mut pinged = false;
    while at + 9 <= received.len() {
        let len = usize::from(received[at]) << 16
            | usize::from(received[at + 1]) << 8
            | usize::from(received[at + 2]);
        pinged |= received[at + 3] == 6;
        at += 9 + len;
    }
    assert!(pinged, "no PING before the close: {received:?}");
}
