//! The mock provider: an OpenAI-compatible fake upstream for tests, benches and demos.
//!
//! Serves chat completions (JSON and SSE, with tool calls, logprobs and usage), transcriptions
//! (every `response_format`, and the SSE stream), embeddings and models. It can be told to fail:
//! a status code, latency, a reset or a stall mid-stream (see [`options::MockOptions`]). It counts
//! what happened ([`MockStats`]) so tests can see, for instance, that a stream was cancelled.

mod audio;
mod chat;
mod fixtures;
pub mod options;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

pub use options::MockOptions;

pub type MockBody = BoxBody<Bytes, std::io::Error>;

/// What the mock saw, for assertions.
#[derive(Default)]
pub struct MockStats {
    pub requests: AtomicU64,
    pub streams_completed: AtomicU64,
    pub streams_cancelled: AtomicU64,
    last_request: Mutex<Option<RecordedRequest>>,
    changed: Notify,
}

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl MockStats {
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.last_request.lock().ok().and_then(|r| r.clone())
    }

    fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Waits (up to `timeout`) until `check` holds; no polling loop with sleeps.
    pub async fn wait_until(&self, timeout: Duration, check: impl Fn(&MockStats) -> bool) -> bool {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if check(self) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// Counts a stream as cancelled if it is dropped before its last frame.
struct StreamGuard {
    stats: Arc<MockStats>,
    finished: bool,
}

impl StreamGuard {
    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.stats.bump(&self.stats.streams_completed);
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.stats.bump(&self.stats.streams_cancelled);
        }
    }
}

struct Mock {
    stats: Arc<MockStats>,
    defaults: MockOptions,
}

/// A mock provider running in the background.
pub struct MockServer {
    pub addr: SocketAddr,
    pub stats: Arc<MockStats>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl MockServer {
    /// Starts on 127.0.0.1 at a free port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(
            MockOptions::default(),
            "127.0.0.1:0".parse().expect("valid address"),
        )
        .await
    }

    pub async fn start_with(defaults: MockOptions, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(MockStats::default());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, stats.clone(), defaults, async {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            stats,
            shutdown: Some(tx),
            task,
        })
    }

    /// The base URL to configure as a provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

pub async fn serve(
    listener: TcpListener,
    stats: Arc<MockStats>,
    defaults: MockOptions,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mock = Arc::new(Mock { stats, defaults });
    let handler = Arc::new(move |request: Request<Incoming>| {
        let mock = mock.clone();
        async move { Ok::<_, Infallible>(mock.handle(request).await) }
    });
    crate::server::serve(
        listener,
        handler,
        shutdown,
        Duration::from_secs(5),
        crate::server::Serving::default(),
    )
    .await;
}

impl Mock {
    async fn handle(&self, request: Request<Incoming>) -> Response<MockBody> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let (head, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("unreadable body: {e}")),
        };
        let path = head.uri.path();
        // Gemini's paths start with /v1beta and are kept whole; the others drop /v1.
        let path = if path.starts_with("/v1beta/") {
            path.to_string()
        } else {
            path.strip_prefix("/v1").unwrap_or(path).to_string()
        };
        if let Ok(mut last) = self.stats.last_request.lock() {
            *last = Some(RecordedRequest {
                method: head.method.clone(),
                path: path.clone(),
                headers: head.headers.clone(),
                body: body.clone(),
            });
        }
        let mut response = match (&head.method, path.as_str()) {
            (&Method::POST, "/messages") => {
                fixtures::anthropic(&self.stats, &self.defaults, &head.headers, &body).await
            }
            (&Method::POST, p) if p.starts_with("/v1beta/models/") => {
                let stream = p.ends_with(":streamGenerateContent")
                    && head.uri.query().is_some_and(|q| q.contains("alt=sse"));
                fixtures::gemini(&self.stats, &self.defaults, &head.headers, p, stream).await
            }
            (&Method::POST, "/chat/completions") => {
                chat::completions(&self.stats, &self.defaults, &head.headers, body).await
            }
            (&Method::POST, "/embeddings") => {
                chat::embeddings(&self.defaults, &head.headers, body).await
            }
            (&Method::POST, "/audio/transcriptions") => {
                audio::transcriptions(&self.stats, &self.defaults, &head.headers, body).await
            }
            (&Method::GET, "/models") => json_response(
                StatusCode::OK,
                &json!({"object": "list", "data": [
                    {"id": "mock-gpt", "object": "model", "created": 0, "owned_by": "mock"},
                    {"id": "mock-embed", "object": "model", "created": 0, "owned_by": "mock"},
                    {"id": "mock-whisper", "object": "model", "created": 0, "owned_by": "mock"}
                ]}),
            ),
            _ => error(StatusCode::NOT_FOUND, &format!("no mock route for {path}")),
        };
        provider_headers(response.headers_mut());
        response
    }
}

/// What a real provider adds to every answer about itself and the key used (OpenAI's names):
/// none of it is the gateway's client's business.
fn provider_headers(headers: &mut http::HeaderMap) {
    for (name, value) in [
        ("openai-organization", "mock-org-secret"),
        ("openai-processing-ms", "1"),
        ("x-request-id", "req_mock_upstream"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("set-cookie", "__cf_bm=mock-cookie; path=/"),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
}

/// Applies the failure options that come before any byte: latency, then an error status.
async fn before_response(options: &MockOptions) -> Option<Response<MockBody>> {
    if options.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(options.latency_ms)).await;
    }
    let status = options.status?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = error(status, "mock failure requested");
    with_retry_after(&mut response, options);
    Some(response)
}

fn with_retry_after(response: &mut Response<MockBody>, options: &MockOptions) {
    if let Some(seconds) = options.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
}

fn full(bytes: impl Into<Bytes>) -> MockBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<MockBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    raw_response(status, "application/json", Bytes::from(bytes))
}

fn raw_response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<MockBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<MockBody> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "mock_error", "param": null, "code": status.as_u16().to_string()}}),
    )
}

/// FNV-1a: lets a test check the upstream got a file's exact bytes.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
