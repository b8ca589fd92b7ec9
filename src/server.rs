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

/// What the accept loop allows: open connections (in all, and from one address) and HTTP/2's
/// keep-alive.
#[derive(Clone)]
pub struct Serving {
    pub addressing: Addressing,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub http2_keep_alive: Duration,
    /// Called when the drain runs out: responses still open end with an error event.
    pub on_drain_timeout: Option<Arc<dyn Fn() + Send + Sync>>,
    /// TLS termination; None serves plain HTTP/1.1 and h2c.
    pub tls: Option<crate::tls::Tls>,
}

/// After the drain runs out and open responses are told to end, how long they get to write
/// their closing event before their connections are dropped.
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);

impl Default for Serving {
    fn default() -> Self {
        Self {
            addressing: Addressing::default(),
            max_connections: usize::MAX,
            max_connections_per_address: usize::MAX,
            http2_keep_alive: Duration::from_secs(30),
            on_drain_timeout: None,
            tls: None,
        }
    }
}

/// The open connections, in all and per client address.
#[derive(Default)]
struct Connections {
    open: std::sync::atomic::AtomicUsize,
    per_address: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One open connection's place: given back when the connection ends.
struct ConnectionSlot {
    connections: Arc<Connections>,
    address: Option<std::net::IpAddr>,
}

impl Connections {
    /// A place for a connection from `peer`, or None (with the reason) when a cap is reached.
    /// `per_address` is None for a trusted proxy, which carries many clients.
    fn open(
        self: &Arc<Self>,
        peer: std::net::IpAddr,
        max: usize,
        per_address: Option<usize>,
    ) -> Result<ConnectionSlot, &'static str> {
        use std::sync::atomic::Ordering;
        if self.open.fetch_add(1, Ordering::AcqRel) >= max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err("max_connections");
        }
        let mut slot = ConnectionSlot {
            connections: self.clone(),
            address: None,
        };
        if let Some(cap) = per_address {
            let mut map = self
                .per_address
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = map.entry(peer).or_insert(0);
            if *count >= cap {
                if *count == 0 {
                    map.remove(&peer);
                }
                return Err("max_connections_per_address");
            }
            *count += 1;
            slot.address = Some(peer);
        }
        Ok(slot)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        self.connections.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(address) = self.address {
            let mut map = self
                .connections
                .per_address
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(count) = map.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&address);
                }
            }
        }
    }
}

/// Serves connections until `shutdown` resolves, then stops accepting and waits up to `drain` for
/// in-flight requests (streams included) to finish.
pub async fn serve<H, S, Fut, B>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: S,
    drain: Duration,
    serving: Serving,
) where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    S: Future<Output = ()>,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Connections::default());
    // Every connection's task, so those still open when the drain runs out can be ended (and
    // their responses reported) before this returns, not dropped later with the runtime.
    let mut tasks = tokio::task::JoinSet::new();
    let addressing = serving.addressing.clone();
    tokio::pin!(shutdown);
    let certificate_watch = serving
        .tls
        .clone()
        .map(|tls| tokio::spawn(tls.watch_files()));

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
                let per_address = (!addressing.trusted_proxies.trusts(peer.ip()))
                    .then_some(serving.max_connections_per_address);
                let slot = match connections.open(peer.ip(), serving.max_connections, per_address) {
                    Ok(slot) => slot,
                    Err(cap) => {
                        // Closed at once: cheaper for everyone than a connection left waiting.
                        metrics::counter!("gateway_connections_refused_total", "limit" => cap)
                            .increment(1);
                        tracing::debug!(peer = %peer.ip(), limit = cap, "connection refused");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let builder = connection_builder(peer.ip(), serving.http2_keep_alive);
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
                let watcher = graceful.watcher();
                let tls = serving.tls.clone();
                while tasks.try_join_next().is_some() {}
                tasks.spawn(crate::forwarded::with_peer(peer.ip(), async move {
                    match tls {
                        None => serve_connection(TokioIo::new(stream), builder, service, watcher).await,
                        Some(tls) => {
                            let handshake = tls.acceptor.accept(stream);
                            match tokio::time::timeout(tls.handshake_timeout, handshake).await {
                                Ok(Ok(stream)) => {
                                    serve_connection(TokioIo::new(stream), builder, service, watcher).await
                                }
                                Ok(Err(e)) => {
                                    metrics::counter!("gateway_tls_handshakes_failed_total", "reason" => "error").increment(1);
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                }
                                Err(_) => {
                                    metrics::counter!("gateway_tls_handshakes_failed_total", "reason" => "timeout").increment(1);
                                    tracing::debug!("TLS handshake timed out");
                                }
                            }
                        }
                    }
                    drop(slot);
                }));
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if let Some(watch) = certificate_watch {
        watch.abort();
    }
    tracing::info!(
        connections = graceful.count(),
        "shutting down: draining in-flight requests"
    );
    let drained = graceful.shutdown();
    tokio::pin!(drained);
    tokio::select! {
        _ = &mut drained => tracing::info!("drained"),
        _ = tokio::time::sleep(drain) => {
            tracing::warn!(
                timeout_secs = drain.as_secs(), connections = tasks.len(),
                "drain timeout reached; ending the responses still open"
            );
            if let Some(interrupt) = &serving.on_drain_timeout {
                interrupt();
            }
            // Streams that are flowing write their closing error event now; the rest (waiting
            // on a silent upstream) are dropped with their connections, and reported so.
            let _ = tokio::time::timeout(INTERRUPT_GRACE, &mut drained).await;
            tasks.abort_all();
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Serves one connection (plain or after its TLS handshake) until it ends or the drain ends it.
async fn serve_connection<I, S, B>(
    io: I,
    builder: auto::Builder<PeerExecutor>,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = builder.serve_connection(io, service).into_owned();
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
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
fn connection_builder(peer: std::net::IpAddr, keep_alive: Duration) -> auto::Builder<PeerExecutor> {
    let mut builder = auto::Builder::new(PeerExecutor(peer));
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    // A silent peer is pinged, and dropped when the ping goes unanswered: a dead client must
    // not hold its connection (and its streams' upstream sockets) forever.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(keep_alive))
        .keep_alive_timeout(keep_alive);
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
