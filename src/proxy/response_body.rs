//! The response body handed to the client: the upstream body, frame by frame, untouched (or,
//! for a provider with another stream format, translated event by event as frames arrive).
//!
//! It watches the stream (the shape of linkerd's body-eos and tower-http's in-flight counter:
//! state held by the body until it is dropped):
//! - an idle timeout between chunks and an optional total time, so a stalled upstream cannot
//!   hold a client forever;
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
use crate::plugins::{Completion, Outcome, PluginChain, RequestCtx, Route};
use crate::proxy::usage_tap::UsageTap;
use crate::routing::{Lease, Timeouts};
use crate::translate::TranslatedStream;
use crate::usage::TokenUsage;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// After a client hangs up on a passed-through stream whose answer had ended, the upstream is
/// read this much longer for the usage chunk that follows; then the record is estimated.
const USAGE_AFTER_HANGUP: Duration = Duration::from_secs(2);

/// Calls the plugins' `on_complete` once, when dropped. Until told otherwise the request counts
/// as abandoned by the client, so a hang-up is reported even though no code path sees it.
pub struct CompletionGuard {
    ctx: Option<RequestCtx>,
    plugins: Arc<PluginChain>,
    status: StatusCode,
    outcome: Outcome,
    first_byte: Option<Instant>,
    bytes: u64,
    /// What the answer said it used (from the usage tap or the stream translator).
    usage: Option<TokenUsage>,
    /// Watches a passed-through answer for its usage.
    tap: Option<UsageTap>,
    /// Translated events that produced output (the completion estimate without usage).
    translated_events: u64,
    /// Counted in the in-flight streams gauge until dropped.
    streaming: bool,
    /// The usage came after the client hung up (read on for it): the counts are the
    /// provider's, not an estimate.
    usage_after_hangup: bool,
    /// The target's concurrency slot, released when the response ends; a failure mid-stream
    /// also counts against the target's health.
    lease: Option<Lease>,
}

impl CompletionGuard {
    pub fn new(
        ctx: RequestCtx,
        plugins: Arc<PluginChain>,
        status: StatusCode,
        lease: Option<Lease>,
    ) -> Self {
        Self {
            ctx: Some(ctx),
            plugins,
            status,
            outcome: Outcome::ClientDisconnected,
            first_byte: None,
            bytes: 0,
            usage: None,
            tap: None,
            translated_events: 0,
            streaming: false,
            usage_after_hangup: false,
            lease,
        }
    }

    /// A request still looking for an answer: a hang-up before any response (while targets
    /// are tried, during a back-off) is reported as status 499, client disconnected.
    pub fn pending(ctx: RequestCtx, plugins: Arc<PluginChain>) -> Self {
        let status = StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(ctx, plugins, status, None)
    }

    pub fn ctx(&self) -> &RequestCtx {
        // Present until `into_ctx` consumes the guard or it is dropped.
        self.ctx.as_ref().expect("request context present")
    }

    pub fn ctx_mut(&mut self) -> &mut RequestCtx {
        self.ctx.as_mut().expect("request context present")
    }

    /// Takes the context back (someone else reports the completion now).
    pub fn into_ctx(mut self) -> RequestCtx {
        self.ctx.take().expect("request context present")
    }

    /// The response has started: its status, and the target slot it holds until it ends.
    pub fn respond_with(&mut self, status: StatusCode, lease: Option<Lease>) {
        self.status = status;
        self.lease = lease;
    }

    /// Metering for a passed-through answer: `strip` cuts the usage chunk the gateway asked for.
    pub fn tap(&mut self, sse: bool, strip: bool) {
        self.tap = Some(UsageTap::new(sse, strip));
    }

    /// An SSE answer starts: counted among the in-flight streams until it ends.
    pub fn count_stream(&mut self) {
        if !self.streaming {
            self.streaming = true;
            metrics::gauge!("gateway_inflight_streams").increment(1.0);
        }
    }

    /// Shows a piece of a successful answer to the plugins that observe frames.
    fn observe(&self, bytes: &[u8]) {
        if self.plugins.observes_frames() && self.status.is_success() {
            if let Some(ctx) = &self.ctx {
                self.plugins.on_frame(ctx, bytes);
            }
        }
    }

    pub fn finish(mut self, outcome: Outcome) {
        self.outcome = outcome;
    }

    /// A passed-through stream the client left after the answer had ended, before its usage
    /// chunk: worth reading on for that usage.
    fn awaits_usage(&self) -> bool {
        self.status.is_success()
            && self
                .tap
                .as_ref()
                .is_some_and(|tap| tap.usage.is_none() && tap.answer_complete())
    }

    /// Reads `upstream` (bounded by [`USAGE_AFTER_HANGUP`]) until its usage shows, then
    /// reports the request.
    async fn read_usage_after_hangup(mut self, mut upstream: Incoming) {
        use http_body_util::BodyExt;
        let read = async {
            while let Some(Ok(frame)) = upstream.frame().await {
                if let (Ok(data), Some(tap)) = (frame.into_data(), self.tap.as_mut()) {
                    tap.frame(data);
                    if tap.usage.is_some() {
                        return true;
                    }
                }
            }
            false
        };
        let found = tokio::time::timeout(USAGE_AFTER_HANGUP, read)
            .await
            .unwrap_or(false);
        self.usage_after_hangup = found;
    }

    /// What the request used: the provider's counts, or (none came: the client hung up, the
    /// upstream failed, or it does not report usage) an estimate from the sizes seen. A stream
    /// cut short also marks its counts as estimated, the output being at least the events sent.
    fn final_usage(&mut self, ctx: &RequestCtx) -> Option<TokenUsage> {
        let (reported, events) = match self.tap.as_mut() {
            Some(tap) => {
                tap.finish();
                (tap.usage.take().or(self.usage.take()), tap.events)
            }
            None => (self.usage.take(), self.translated_events),
        };
        let answered = self.status.is_success();
        let complete = self.outcome == Outcome::Complete || self.usage_after_hangup;
        match reported {
            Some(usage) if complete => Some(usage),
            Some(mut usage) => {
                usage.estimated = true;
                usage.completion_tokens = usage.completion_tokens.max(events);
                Some(usage)
            }
            None if answered && ctx.route != Route::Models => Some(TokenUsage {
                prompt_tokens: ctx.request_bytes / 4,
                completion_tokens: if ctx.stream { events } else { self.bytes / 4 },
                estimated: true,
                ..TokenUsage::default()
            }),
            None => None,
        }
    }
}

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        if self.streaming {
            metrics::gauge!("gateway_inflight_streams").decrement(1.0);
        }
        // Dropped by the shutdown, not by its client.
        if self.outcome == Outcome::ClientDisconnected && self.plugins.is_interrupted() {
            self.outcome = Outcome::Interrupted;
        }
        if let (Some(lease), Outcome::UpstreamFailed(why)) = (&self.lease, &self.outcome) {
            lease.state().breaker.record_failure(why, None);
        }
        let Some(ctx) = self.ctx.take() else { return };
        let usage = self.final_usage(&ctx);
        let completion = Completion {
            status: self.status,
            outcome: std::mem::replace(&mut self.outcome, Outcome::Complete),
            time_to_first_byte: self.first_byte.map(|t| t.duration_since(ctx.started)),
            duration: ctx.started.elapsed(),
            response_bytes: self.bytes,
            usage,
            cost_usd: 0.0,
        };
        self.plugins.on_complete(&ctx, completion);
    }
}

pin_project_lite::pin_project! {
    pub struct ProxyBody {
        // Taken only when dropped, to read on for a usage chunk after a hang-up.
        inner: Option<Incoming>,
        idle_timeout: Duration,
        // One timer for both limits: it fires at the idle deadline or the total one, if sooner.
        idle: Pin<Box<Sleep>>,
        total_deadline: Option<tokio::time::Instant>,
        translator: Option<TranslatedStream>,
        sse: bool,
        // Whether the bytes sent so far end on an SSE event boundary.
        at_event_boundary: bool,
        done: bool,
        guard: Option<CompletionGuard>,
    }

    impl PinnedDrop for ProxyBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Ended (the guard reported already), or nothing to wait for: the guard reports now.
            let Some(guard) = this.guard.take() else { return };
            if !guard.awaits_usage() {
                return;
            }
            if let (Some(upstream), Ok(runtime)) =
                (this.inner.take(), tokio::runtime::Handle::try_current())
            {
                runtime.spawn(guard.read_usage_after_hangup(upstream));
            }
        }
    }
}

impl ProxyBody {
    /// `started` is when the attempt began: the total limit counts from there.
    pub fn new(
        inner: Incoming,
        sse: bool,
        timeouts: Timeouts,
        started: Instant,
        guard: CompletionGuard,
        translator: Option<TranslatedStream>,
    ) -> Self {
        // An empty passthrough body is never polled: it is complete as it stands. A translated
        // one still has its closing events to write.
        let done = inner.is_end_stream() && translator.is_none();
        let guard = if done {
            guard.finish(Outcome::Complete);
            None
        } else {
            Some(guard)
        };
        let total_deadline = timeouts
            .total
            .map(|total| tokio::time::Instant::from_std(started) + total);
        let mut body = Self {
            inner: Some(inner),
            idle_timeout: timeouts.idle,
            idle: Box::pin(tokio::time::sleep(timeouts.idle)),
            total_deadline,
            translator,
            sse,
            at_event_boundary: true,
            done,
            guard,
        };
        let first = body.next_deadline();
        body.idle.as_mut().reset(first);
        body
    }

    fn next_deadline(&self) -> tokio::time::Instant {
        let idle = tokio::time::Instant::now() + self.idle_timeout;
        match self.total_deadline {
            Some(total) if total < idle => total,
            _ => idle,
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
        self.fail_after(Bytes::new(), error)
    }

    /// Like `fail`, sending `prefix` (chunks already translated) ahead of the error event.
    fn fail_after(
        self: Pin<&mut Self>,
        prefix: Bytes,
        error: GatewayError,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let outcome = Outcome::UpstreamFailed(error.message.clone());
        self.end_with(prefix, error, outcome)
    }

    /// Ends the body with `error` (an SSE event, else a body error), reported as `outcome`.
    fn end_with(
        self: Pin<&mut Self>,
        prefix: Bytes,
        error: GatewayError,
        outcome: Outcome,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        *this.done = true;
        if let Some(guard) = this.guard.take() {
            guard.finish(outcome);
        }
        if *this.sse {
            let mut event = prefix.to_vec();
            if !*this.at_event_boundary && prefix.is_empty() {
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
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            if self
                .guard
                .as_ref()
                .is_some_and(|g| g.plugins.is_interrupted())
            {
                let error = GatewayError::service_unavailable(
                    "The gateway is shutting down; this answer was cut short. Please retry.",
                )
                .with_code("gateway_shutting_down");
                return self.end_with(Bytes::new(), error, Outcome::Interrupted);
            }
            let this = self.as_mut().project();
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            let frame = match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(None) => {
                    // The upstream finished: a translated stream writes its closing events.
                    let tail = match this.translator.as_mut().map(TranslatedStream::end) {
                        Some(Err(e)) => return self.fail(e),
                        Some(Ok(tail)) => {
                            if let Some(guard) = this.guard.as_mut() {
                                guard.usage = this.translator.as_ref().and_then(|t| t.usage());
                            }
                            tail
                        }
                        None => match this.guard.as_mut().and_then(|g| g.tap.as_mut()) {
                            Some(tap) => tap.finish(),
                            None => Bytes::new(),
                        },
                    };
                    *this.done = true;
                    if let Some(guard) = this.guard.take() {
                        if !tail.is_empty() {
                            guard.observe(&tail);
                        }
                        guard.finish(Outcome::Complete);
                    }
                    return if tail.is_empty() {
                        Poll::Ready(None)
                    } else {
                        Poll::Ready(Some(Ok(Frame::data(tail))))
                    };
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "upstream body failed mid-response");
                    return self.fail(GatewayError::bad_gateway(format!(
                        "The upstream connection failed mid-response: {e}"
                    )));
                }
                Poll::Pending => {
                    ready!(this.idle.as_mut().poll(cx));
                    let now = tokio::time::Instant::now();
                    if this.total_deadline.is_some_and(|total| now >= total) {
                        tracing::warn!("upstream response exceeded its total time limit");
                        return self.fail(GatewayError::gateway_timeout(
                            "The upstream response exceeded its total time limit.",
                        ));
                    }
                    let after = this.idle_timeout.as_millis();
                    tracing::warn!(idle_ms = after as u64, "upstream stalled mid-response");
                    return self.fail(GatewayError::gateway_timeout(format!(
                        "The upstream sent nothing for {after} ms mid-response."
                    )));
                }
            };
            let deadline = self.next_deadline();
            let this = self.as_mut().project();
            this.idle.as_mut().reset(deadline);
            let frame = match (this.translator.as_mut(), frame.into_data()) {
                (Some(translator), Ok(data)) => match translator.push(&data) {
                    // Bytes that complete no event: nothing to send yet.
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => {
                        if let Some(guard) = this.guard.as_mut() {
                            guard.translated_events += 1;
                            guard.usage = translator.usage();
                        }
                        Frame::data(out)
                    }
                    Err(e) => {
                        let prefix = translator.take_partial();
                        return self.fail_after(prefix, e);
                    }
                },
                (_, Ok(data)) => match this.guard.as_mut().and_then(|g| g.tap.as_mut()) {
                    Some(tap) => {
                        let out = tap.frame(data);
                        // All held back (an event split across frames): read on.
                        if out.is_empty() && !this.inner.as_ref().is_none_or(|i| i.is_end_stream())
                        {
                            continue;
                        }
                        Frame::data(out)
                    }
                    None => Frame::data(data),
                },
                (_, Err(frame)) => frame,
            };
            if let Some(data) = frame.data_ref() {
                if *this.sse && !data.is_empty() {
                    *this.at_event_boundary = data.ends_with(b"\n\n");
                }
                if let Some(guard) = this.guard.as_mut() {
                    guard.first_byte.get_or_insert_with(Instant::now);
                    guard.bytes += data.len() as u64;
                    guard.observe(data);
                }
            }
            // A body of known length may not be polled again after its last byte.
            if this.translator.is_none() && this.inner.as_ref().is_none_or(|i| i.is_end_stream()) {
                *this.done = true;
                if let Some(guard) = this.guard.take() {
                    guard.finish(Outcome::Complete);
                }
            }
            return Poll::Ready(Some(Ok(frame)));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        if self.translator.is_some() {
            SizeHint::new()
        } else if self.sse {
            // An error event may be appended: never promise an exact length.
            let mut hint = SizeHint::new();
            hint.set_lower(self.inner.as_ref().map_or(0, |i| i.size_hint().lower()));
            hint
        } else {
            self.inner
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), |i| i.size_hint())
        }
    }
}
