//! The response body handed to the client: the upstream body, frame by frame, untouched.
//!
//! It watches the stream without changing it (the shape of linkerd's body-eos and tower-http's
//! in-flight counter: state held by the body until it is dropped):
//! - an idle timeout between chunks, so a stalled upstream cannot hold a client forever;
//! - on an upstream failure mid-stream, an SSE stream ends with one OpenAI error event rather than
//!   a hang or a bare reset;
//! - exactly one `on_complete` for the plugins, at the end, on failure, or when the client goes
//!   away (the body is dropped, which also drops the upstream response and so cancels it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::error::GatewayError;
use crate::plugins::{Completion, Outcome, PluginChain, RequestCtx};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Calls the plugins' `on_complete` once, when dropped. Until told otherwise the request counts
/// as abandoned by the client, so a hang-up is reported even though no code path sees it.
pub struct CompletionGuard {
    ctx: Option<RequestCtx>,
    plugins: Arc<PluginChain>,
    status: StatusCode,
    outcome: Outcome,
    first_byte: Option<Instant>,
    bytes: u64,
}

impl CompletionGuard {
    pub fn new(ctx: RequestCtx, plugins: Arc<PluginChain>, status: StatusCode) -> Self {
        Self {
            ctx: Some(ctx),
            plugins,
            status,
            outcome: Outcome::ClientDisconnected,
            first_byte: None,
            bytes: 0,
        }
    }

    pub fn finish(mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        let Some(ctx) = self.ctx.take() else { return };
        let completion = Completion {
            status: self.status,
            outcome: std::mem::replace(&mut self.outcome, Outcome::Complete),
            time_to_first_byte: self.first_byte.map(|t| t.duration_since(ctx.started)),
            duration: ctx.started.elapsed(),
            response_bytes: self.bytes,
        };
        self.plugins.on_complete(&ctx, &completion);
    }
}

pin_project_lite::pin_project! {
    pub struct ProxyBody {
        #[pin]
        inner: Incoming,
        idle_timeout: Duration,
        idle: Pin<Box<Sleep>>,
        sse: bool,
        // Whether the bytes sent so far end on an SSE event boundary.
        at_event_boundary: bool,
        done: bool,
        guard: Option<CompletionGuard>,
    }
}

impl ProxyBody {
    pub fn new(inner: Incoming, sse: bool, idle_timeout: Duration, guard: CompletionGuard) -> Self {
        // An empty body is never polled: it is complete as it stands.
        let done = inner.is_end_stream();
        let guard = if done {
            guard.finish(Outcome::Complete);
            None
        } else {
            Some(guard)
        };
        Self {
            inner,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            sse,
            at_event_boundary: true,
            done,
            guard,
        }
    }
}

impl ProxyBody {
    /// Ends the body after an upstream failure: an SSE stream gets a closing error event, any
    /// other body an error (the client sees a truncated response, never a silently short one).
    fn fail(
        self: Pin<&mut Self>,
        error: GatewayError,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        *this.done = true;
        if let Some(guard) = this.guard.take() {
            guard.finish(Outcome::UpstreamFailed(error.message.clone()));
        }
        if *this.sse {
            let mut event = Vec::new();
            if !*this.at_event_boundary {
                event.extend_from_slice(b"\n\n");
            }
            event.extend_from_slice(&error.to_sse_event());
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
        } else {
            Poll::Ready(Some(Err(Box::new(error))))
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut this = self.as_mut().project();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + *this.idle_timeout;
                this.idle.as_mut().reset(deadline);
                if let Some(data) = frame.data_ref() {
                    if *this.sse && !data.is_empty() {
                        *this.at_event_boundary = data.ends_with(b"\n\n");
                    }
                    if let Some(guard) = this.guard.as_mut() {
                        guard.first_byte.get_or_insert_with(Instant::now);
                        guard.bytes += data.len() as u64;
                    }
                }
                // A body of known length may not be polled again after its last byte.
                if this.inner.is_end_stream() {
                    *this.done = true;
                    if let Some(guard) = this.guard.take() {
                        guard.finish(Outcome::Complete);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                *this.done = true;
                if let Some(guard) = this.guard.take() {
                    guard.finish(Outcome::Complete);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "upstream body failed mid-response");
                self.fail(GatewayError::bad_gateway(format!(
                    "The upstream connection failed mid-response: {e}"
                )))
            }
            Poll::Pending => {
                ready!(this.idle.as_mut().poll(cx));
                let after = this.idle_timeout.as_millis();
                tracing::warn!(idle_ms = after as u64, "upstream stalled mid-response");
                self.fail(GatewayError::gateway_timeout(format!(
                    "The upstream sent nothing for {after} ms mid-response."
                )))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        if self.sse {
            // An error event may be appended: never promise an exact length.
            let mut hint = SizeHint::new();
            hint.set_lower(self.inner.size_hint().lower());
            hint
        } else {
            self.inner.size_hint()
        }
    }
}
