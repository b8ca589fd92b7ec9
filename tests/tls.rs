//! TLS termination (`[server.tls]`) with certificates made by the test: h2 and HTTP/1.1 chosen by
//! ALPN, a renewed pair served without a restart (and a broken one not), a pair that does not fit
//! refused at start-up, and sockets that never finish a handshake dropped.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::config::TestConfig;
use common::Harness;
use gateway::config::TlsConfig;
use tokio::io::AsyncReadExt;

/// The name the certificates are made for; clients resolve it to the gateway's address.
const HOST: &str = "gw.test";

struct Pair {
    cert_pem: String,
    key_pem: String,
}

fn new_pair() -> Pair {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec![HOST.to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Writes a pair as a renewal tool would: each file replaced whole (written aside, renamed).
fn install(pair: &Pair, dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    for (path, text) in [(&cert, &pair.cert_pem), (&key, &pair.key_pem)] {
        let aside = path.with_extension("new");
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, path).unwrap();
    }
    (cert, key)
}

fn tls_config(cert_file: PathBuf, key_file: PathBuf, handshake: Duration) -> TlsConfig {
    TlsConfig {
        cert_file,
        key_file,
        reload_check: Duration::from_millis(50),
        handshake_timeout: handshake,
    }
}

async fn start_tls(dir: &Path, pair: &Pair, handshake: Duration) -> Harness {
    let (cert, key) = install(pair, dir);
    common::start_config(TestConfig::new().server(move |s| {
        s.tls = Some(tls_config(cert, key, handshake));
    }))
    .await
}

/// A client that trusts only `pair` and reaches the gateway as `https://gw.test`.
fn client_trusting(pair: &Pair, addr: SocketAddr, http1_only: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pair.cert_pem.as_bytes()).unwrap())
        .resolve(HOST, addr)
        .timeout(Duration::from_secs(10));
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

fn https(addr: SocketAddr, path: &str) -> String {
    format!("https://{HOST}:{}{path}", addr.port())
}

/// `/health` through `client`: its status, or the error (a refused certificate) as None.
async fn health(client: &reqwest::Client, addr: SocketAddr) -> Option<u16> {
    let answer = client.get(https(addr, "/health")).send().await.ok()?;
    Some(answer.status().as_u16())
}

/// Polls until `done` (bounded): the gateway checks its files on its own clock.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn serves_h2_and_http1_by_alpn_and_proxies_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pair = new_pair();
    let h = start_tls(dir.path(), &pair, Duration::from_secs(10)).await;
    let addr = h.gateway.addr;

    let h2 = client_trusting(&pair, addr, false);
    let answer = h2.get(https(addr, "/health")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.version(), reqwest::Version::HTTP_2, "ALPN chose h2");

    let h1 = client_trusting(&pair, addr, true);
    let answer = h1.get(https(addr, "/health")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.version(), reqwest::Version::HTTP_11);

    // The proxy path, streamed, through TLS on both protocols.
    for client in [&h1, &h2] {
        let answer = client
            .post(https(addr, "/v1/chat/completions"))
            .bearer_auth(common::KEY)
            .json(&common::streamed_chat(
                "mock-gpt",
                serde_json::json!({"chunks": 3}),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let text = answer.text().await.unwrap();
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }

    // Plain HTTP on the TLS port gets no answer.
    let plain = h.client.get(h.url("/health")).send().await;
    assert!(plain.is_err(), "plain HTTP answered on a TLS port");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let first = new_pair();
    let h = start_tls(dir.path(), &first, Duration::from_secs(10)).await;
    let addr = h.gateway.addr;
    let trusts_first = client_trusting(&first, addr, true);
    assert_eq!(health(&trusts_first, addr).await, Some(200));

    let second = new_pair();
    let trusts_second = client_trusting(&second, addr, true);
    assert_eq!(
        health(&trusts_second, addr).await,
        None,
        "the renewed certificate is not installed yet"
    );
    install(&second, dir.path());
    eventually("the renewed certificate is served", || async {
        health(&trusts_second, addr).await.is_some()
    })
    .await;
    let fresh_first = client_trusting(&first, addr, true);
    assert!(
        fresh_first
            .get(https(addr, "/health"))
            .send()
            .await
            .is_err(),
        "new handshakes no longer get the old certificate"
    );

    // A broken renewal (not PEM) is refused: the second certificate stays, and it is counted.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    eventually("the broken renewal is counted", || async {
        common::metrics_text(&trusts_second, &https(addr, ""))
            .await
            .lines()
            .any(|l| l.starts_with("gateway_tls_reloads_total{outcome=\"failed\"}"))
    })
    .await;
    let fresh_second = client_trusting(&second, addr, true);
    assert_eq!(
        health(&fresh_second, addr).await,
        Some(200),
        "the last good certificate is still served"
    );
}

#[tokio::test]
async fn a_socket_that_never_finishes_its_handshake_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_tls(dir.path(), &new_pair(), Duration::from_millis(300)).await;
    let mut silent = tokio::net::TcpStream::connect(h.gateway.addr)
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("the gateway closed the silent socket");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn a_key_that_does_not_fit_or_a_missing_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = install(&new_pair(), dir.path());
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, new_pair().key_pem).unwrap();
    let missing = dir.path().join("missing.pem");
    let mock = gateway::mock::MockServer::start().await.unwrap();

    for (key_file, expected) in [(other_key, "does not fit"), (missing, "cannot read")] {
        let cert = cert.clone();
        let config = TestConfig::new()
            .mock(&mock.base_url())
            .server(move |s| {
                s.tls = Some(tls_config(cert, key_file, Duration::from_secs(10)));
            })
            .build()
            .await;
        let error = match gateway::spawn_with(config, Vec::new()).await {
            Ok(_) => panic!("started with a broken TLS pair"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains(expected), "{error}");
        assert!(
            !error.contains("PRIVATE KEY"),
            "no key material in errors: {error}"
        );
    }
}
