//! How a test asks the mock to behave: `x-mock-*` request headers (which a provider's `headers`
//! in `gateway.toml` can set), or a `"mock": {...}` object in a JSON body (which the gateway
//! forwards untouched). Headers win.

use http::HeaderMap;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockOptions {
    /// Answer with this status and an OpenAI error body.
    pub status: Option<u16>,
    /// Wait this long before the response headers.
    pub latency_ms: u64,
    /// Content chunks in a streamed answer (words in a non-streamed one).
    pub chunks: usize,
    /// Wait between two streamed chunks.
    pub chunk_delay_ms: u64,
    /// Break the connection after this many chunks.
    pub reset_after: Option<usize>,
    /// Send nothing more after this many chunks (until the client goes away).
    pub stall_after: Option<usize>,
    /// A `Retry-After` (seconds) sent with an error status.
    pub retry_after: Option<u64>,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            status: None,
            latency_ms: 0,
            chunks: 3,
            chunk_delay_ms: 0,
            reset_after: None,
            stall_after: None,
            retry_after: None,
        }
    }
}

impl MockOptions {
    /// Defaults < server-wide settings < body's `mock` object < `x-mock-*` headers.
    pub fn resolve(base: &MockOptions, body: Option<MockOptions>, headers: &HeaderMap) -> Self {
        let mut options = body.unwrap_or_else(|| base.clone());
        let number = |name: &str| -> Option<u64> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        };
        if let Some(v) = number("x-mock-status") {
            options.status = u16::try_from(v).ok();
        }
        if let Some(v) = number("x-mock-latency-ms") {
            options.latency_ms = v;
        }
        if let Some(v) = number("x-mock-chunks") {
            options.chunks = v as usize;
        }
        if let Some(v) = number("x-mock-chunk-delay-ms") {
            options.chunk_delay_ms = v;
        }
        if let Some(v) = number("x-mock-reset-after") {
            options.reset_after = Some(v as usize);
        }
        if let Some(v) = number("x-mock-stall-after") {
            options.stall_after = Some(v as usize);
        }
        if let Some(v) = number("x-mock-retry-after") {
            options.retry_after = Some(v);
        }
        options
    }
}
