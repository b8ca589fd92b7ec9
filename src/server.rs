//! The accept loop: HTTP/1.1 and h2c on one port (hyper-util's auto builder), TCP_NODELAY on
//! every connection, and a graceful drain on shutdown bounded by a timeout.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::context::ClientAddr;
use crate::forwarded::TrustedProxies;

/// Which requests get their client's address, and how it is found.
#[derive(Clone, Default)]
pub struct Addressing {
    /// /v1 requests too (anonymous callers are limited by it); the app endpoints always.
    pub on_v1: bool,
    pub trusted_proxies: Arc<TrustedProxies>,
}

/// Serves connections until `shutdown` resolves, then stops accepting and waits up to `drain` for
/// in-flight requests (streams included) to finish.
pub async fn serve<H, S, Fut, B>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: S,
    drain: Duration,
    addressing: Addressing,
) where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    S: Future<Output = ()>,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let builder = connection_builder(peer.ip());
                let handler = handler.clone();
                // The client's address rides along for login throttling and session records,
                // which only the app endpoints keep; /v1 requests are spared the extension map
                // unless anonymous callers are limited by it (`on_v1`).
                let addressing = addressing.clone();
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    if addressing.on_v1 || !req.uri().path().starts_with("/v1/") {
                        let client = addressing.trusted_proxies.client(peer.ip(), req.headers());
                        req.extensions_mut().insert(ClientAddr(client));
                    }
                    handler(req)
                });
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(crate::forwarded::with_peer(peer.ip(), async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }));
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: draining in-flight requests"
    );
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("drained"),
        _ = tokio::time::sleep(drain) => {
            tracing::warn!(timeout_secs = drain.as_secs(), "drain timeout reached; closing remaining connections")
        }
    }
}

/// Spawns a connection's HTTP/2 streams with the connection's peer, as its HTTP/1 requests
/// (served on the connection's own task) have it.
#[derive(Clone, Copy)]
struct PeerExecutor(std::net::IpAddr);

impl<F> hyper::rt::Executor<F> for PeerExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(crate::forwarded::with_peer(self.0, future));
    }
}

/// One connection's protocol settings (a builder per connection: its executor knows the peer).
fn connection_builder(peer: std::net::IpAddr) -> auto::Builder<PeerExecutor> {
    let mut builder = auto::Builder::new(PeerExecutor(peer));
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Errors of one connection (reset before accept) are skipped; running out of file descriptors
/// backs off instead of spinning or dying (as axum's listener does).
async fn accept_error(error: io::Error) {
    match error.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset => {}
        _ => {
            tracing::error!(error = %error, "accept failed; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
