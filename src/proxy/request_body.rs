//! Reads a request body into memory under a size limit, a deadline and the gateway-wide budget
//! of body bytes held at once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::GatewayError;

/// How much of an oversized body is read and thrown away so the client gets its 413 instead of a
/// broken pipe. Past this the connection is simply closed.
const DRAIN_CAP: u64 = 64 * 1024 * 1024;

/// The request bodies all requests together may hold in memory (in KiB permits): a flood of
/// large uploads is refused at the door (503) instead of buffered until memory runs out.
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

/// A body's share of the budget, held until the request no longer needs its bytes.
pub struct BodyPermit(Option<OwnedSemaphorePermit>);

impl BodyBudget {
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(Semaphore::MAX_PERMITS as u32)
            .max(1);
        Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Adds `bytes` to `permit`, or refuses when the budget is spent.
    fn reserve(&self, permit: &mut BodyPermit, bytes: u64) -> Result<(), GatewayError> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        if kib == 0 {
            return Ok(());
        }
        let more = self
            .kib
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| overloaded())?;
        match &mut permit.0 {
            Some(held) => held.merge(more),
            None => permit.0 = Some(more),
        }
        Ok(())
    }
}

fn overloaded() -> GatewayError {
    metrics::counter!("gateway_overload_rejections_total", "resource" => "request_bodies")
        .increment(1);
    let mut error = GatewayError::service_unavailable(
        "The gateway is holding as many request bodies as it may; retry shortly.",
    )
    .with_code("gateway_overloaded");
    error.retry_after = Some(1);
    error
}

/// How a body is read: at most `limit` bytes, complete within `timeout` (a body trickled in
/// slowly must not hold a task forever), out of `budget`.
pub struct BodyLimits<'a> {
    pub limit: u64,
    pub timeout: Duration,
    pub budget: &'a BodyBudget,
}

pub async fn read_limited<B>(
    body: B,
    headers: &HeaderMap,
    limits: BodyLimits<'_>,
) -> Result<(Bytes, BodyPermit), GatewayError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = limits.limit;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        drain(body, declared.unwrap_or(0)).await;
        return Err(GatewayError::payload_too_large(limit));
    }
    // A declared length is reserved whole before a byte is read; a chunked body as it comes.
    let mut permit = BodyPermit(None);
    limits.budget.reserve(&mut permit, declared.unwrap_or(0))?;
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let mut body = body;
    let mut chunks = Vec::new();
    let mut total = 0u64;
    loop {
        // Most bodies are there already: a timer only for one that is still arriving.
        let next = match body.frame().now_or_never() {
            Some(next) => next,
            None => tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| {
                    GatewayError::with_status(
                        http::StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        format!(
                            "The request body did not arrive within {} s.",
                            limits.timeout.as_secs()
                        ),
                    )
                })?,
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(|e| {
            GatewayError::bad_request(format!("Could not read the request body: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                drain(body, 0).await;
                return Err(GatewayError::payload_too_large(limit));
            }
            if declared.is_none() {
                limits.budget.reserve(&mut permit, data.len() as u64)?;
            }
            chunks.push(data);
        }
    }
    Ok((join(chunks), permit))
}

/// One contiguous buffer; a single-chunk body (the common case) is not copied.
fn join(mut chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let total = chunks.iter().map(Bytes::len).sum();
            let mut out = Vec::with_capacity(total);
            for chunk in &chunks {
                out.extend_from_slice(chunk);
            }
            Bytes::from(out)
        }
    }
}

async fn drain<B>(mut body: B, declared: u64)
where
    B: Body<Data = Bytes> + Unpin,
{
    if declared > DRAIN_CAP {
        return;
    }
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            read += data.len() as u64;
            if read > DRAIN_CAP {
                return;
            }
        }
    }
}
