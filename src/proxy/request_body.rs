//! Reads a request body into memory under a size limit.

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

use crate::error::GatewayError;

/// How much of an oversized body is read and thrown away so the client gets its 413 instead of a
/// broken pipe. Past this the connection is simply closed.
const DRAIN_CAP: u64 = 64 * 1024 * 1024;

pub async fn read_limited<B>(
    body: B,
    headers: &HeaderMap,
    limit: u64,
) -> Result<Bytes, GatewayError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        drain(body, declared.unwrap_or(0)).await;
        return Err(GatewayError::payload_too_large(limit));
    }
    let mut body = body;
    let mut chunks = Vec::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            GatewayError::bad_request(format!("Could not read the request body: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                drain(body, 0).await;
                return Err(GatewayError::payload_too_large(limit));
            }
            chunks.push(data);
        }
    }
    Ok(join(chunks))
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
