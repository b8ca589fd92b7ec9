//! The /v1 hot path: authenticate, read the body under a limit, learn the model, pick a target,
//! forward, and pass the answer back frame by frame.

pub mod json_probe;
pub mod multipart;
pub mod request_body;
pub mod response_body;
pub mod translated;
pub mod usage_tap;

use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};

use crate::error::{ErrorSource, GatewayError};
use crate::plugins::{Completion, Outcome, PluginChain, RequestCtx, Route};
use crate::providers::{UpstreamBody, X_REQUEST_ID};
use crate::routing::attempts::Attempts;
use crate::routing::{retry, Lease, ModelRoute, Router, Target};
use crate::translate::openai::ChatRequest;
use crate::usage::TokenUsage;
use response_body::{CompletionGuard, ProxyBody};
use translated::{Rewritten, Translation};

pub type ApiResponse = Response<Body>;

static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Routing, the plugin chain and the upstream clients: the one path every model call takes. HTTP
/// requests on /v1 enter here byte-level (`chat_completions`, ...); in-process callers enter
/// through the typed calls of the `pipeline` module.
pub struct Pipeline {
    pub router: Router,
    pub plugins: Arc<PluginChain>,
    pub max_request_bytes: u64,
    /// How long a request body may take to arrive.
    pub body_read_timeout: std::time::Duration,
    /// The request bodies every request together may hold.
    pub body_budget: request_body::BodyBudget,
}

/// The request body as it will go upstream, and how to rename the model inside it.
enum Payload {
    Json {
        body: Bytes,
        model_span: Range<usize>,
        stream_options_span: Option<Range<usize>>,
        /// A streamed chat request that did not ask for its usage chunk: the gateway asks
        /// OpenAI-compatible upstreams for it and cuts it from the client's stream.
        wants_usage_chunk: bool,
        /// The request read whole, only for targets whose provider needs a translation.
        parsed: OnceLock<Result<Box<ChatRequest>, GatewayError>>,
    },
    Multipart {
        body: Bytes,
        boundary: String,
    },
}

impl Payload {
    fn chat_request(&self) -> Result<&ChatRequest, GatewayError> {
        match self {
            Payload::Json { body, parsed, .. } => parsed
                .get_or_init(|| ChatRequest::parse(body).map(Box::new))
                .as_ref()
                .map(|chat| &**chat)
                .map_err(Clone::clone),
            Payload::Multipart { .. } => Err(GatewayError::internal(
                "A multipart request cannot be translated.",
            )),
        }
    }

    /// Whether the request sent to `target` asks for a usage chunk the client did not want.
    fn asks_usage_for(&self, target: &Target) -> bool {
        matches!(
            self,
            Payload::Json {
                wants_usage_chunk: true,
                ..
            }
        ) && target.provider.stream_usage
    }

    async fn for_target(&self, requested: &str, target: &Target) -> Result<Bytes, GatewayError> {
        let same_name = *target.model == *requested;
        match self {
            Payload::Json {
                body,
                model_span,
                stream_options_span,
                ..
            } => {
                let mut edits = Vec::new();
                if !same_name {
                    edits.push((model_span.clone(), target.model_json.clone()));
                }
                if self.asks_usage_for(target) {
                    edits.extend(json_probe::ask_for_usage(
                        body,
                        stream_options_span.as_ref(),
                    ));
                }
                if edits.is_empty() {
                    Ok(body.clone())
                } else {
                    Ok(json_probe::splice(body, edits))
                }
            }
            Payload::Multipart { body, .. } if same_name => Ok(body.clone()),
            Payload::Multipart { body, boundary } => {
                multipart::replace_model(body.clone(), boundary, &target.model).await
            }
        }
    }
}

fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&X_REQUEST_ID)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("-"))
}

/// The upstream response headers a client gets: what describes the body and when to retry.
/// Everything else (the provider's organisation and request ids, its own rate-limit headers
/// for the gateway's key, cookies, hop-by-hop headers) stays here.
fn forwarded_from_upstream(name: &http::HeaderName) -> bool {
    name == header::CONTENT_TYPE
        || name == header::CONTENT_LENGTH
        || name == header::CONTENT_ENCODING
        || name == header::CACHE_CONTROL
        || name == header::RETRY_AFTER
        || name.as_str() == "retry-after-ms"
}

impl Pipeline {
    fn body_limits(&self) -> request_body::BodyLimits<'_> {
        request_body::BodyLimits {
            limit: self.max_request_bytes,
            timeout: self.body_read_timeout,
            budget: &self.body_budget,
        }
    }

    pub async fn chat_completions(&self, request: Request<Body>) -> ApiResponse {
        self.handle_json(request, Route::ChatCompletions).await
    }

    pub async fn embeddings(&self, request: Request<Body>) -> ApiResponse {
        self.handle_json(request, Route::Embeddings).await
    }

    async fn handle_json(&self, request: Request<Body>, route: Route) -> ApiResponse {
        let (head, body) = request.into_parts();
        let mut ctx = RequestCtx::new(request_id(&head.headers), route);
        if let Err(e) = self.plugins.on_request(&mut ctx, &head).await {
            return self.reject(ctx, e);
        }
        // The body's share of the memory budget is held until the request is forwarded.
        let (body, _held) =
            match request_body::read_limited(body, &head.headers, self.body_limits()).await {
                Ok(read) => read,
                Err(e) => return self.reject(ctx, e),
            };
        // The editing phase costs a parse only when a plugin asks for it.
        let body = if route == Route::ChatCompletions && self.plugins.edits_chat() {
            match self.edit_chat_body(&mut ctx, &body).await {
                Ok(edited) => edited,
                Err(e) => return self.reject(ctx, e),
            }
        } else {
            body
        };
        self.forward_json(ctx, body).await
    }

    /// Reads a /v1 chat body into the typed request, lets the editing plugins change it, and
    /// writes it back.
    async fn edit_chat_body(
        &self,
        ctx: &mut RequestCtx,
        body: &Bytes,
    ) -> Result<Bytes, GatewayError> {
        let mut request: crate::chat::ChatRequest = serde_json::from_slice(body)
            .map_err(|e| GatewayError::bad_request(format!("Invalid request body: {e}")))?;
        self.plugins.edit_chat(ctx, &mut request).await?;
        serde_json::to_vec(&request)
            .map(Bytes::from)
            .map_err(|e| GatewayError::internal(format!("Could not write the request: {e}")))
    }

    /// From a JSON body on: learn the model and the stream flag, then route and forward. Both
    /// the /v1 handlers and in-process calls come through here.
    pub(crate) async fn forward_json(&self, mut ctx: RequestCtx, body: Bytes) -> ApiResponse {
        let route = ctx.route;
        let parsed = match json_probe::probe(&body, route) {
            Ok(parsed) => parsed,
            Err(e) => return self.reject(ctx, e),
        };
        ctx.stream = parsed.stream;
        ctx.request_bytes = body.len() as u64;
        ctx.max_output_tokens = parsed.max_output_tokens;
        let payload = Payload::Json {
            body,
            model_span: parsed.model_span,
            stream_options_span: parsed.stream_options_span,
            wants_usage_chunk: route == Route::ChatCompletions
                && parsed.stream
                && !parsed.include_usage,
            parsed: OnceLock::new(),
        };
        self.route_and_forward(ctx, parsed.model, payload, &APPLICATION_JSON)
            .await
    }

    pub async fn audio_transcriptions(&self, request: Request<Body>) -> ApiResponse {
        let (head, body) = request.into_parts();
        let mut ctx = RequestCtx::new(request_id(&head.headers), Route::AudioTranscriptions);
        if let Err(e) = self.plugins.on_request(&mut ctx, &head).await {
            return self.reject(ctx, e);
        }
        let content_type = head.headers.get(header::CONTENT_TYPE);
        let boundary = match multipart::boundary(content_type) {
            Ok(b) => b,
            Err(e) => return self.reject(ctx, e),
        };
        let (body, _held) =
            match request_body::read_limited(body, &head.headers, self.body_limits()).await {
                Ok(read) => read,
                Err(e) => return self.reject(ctx, e),
            };
        let form = match multipart::inspect(body.clone(), boundary).await {
            Ok(form) => form,
            Err(e) => return self.reject(ctx, e),
        };
        ctx.stream = form.stream;
        ctx.request_bytes = body.len() as u64;
        let content_type = content_type.cloned().unwrap_or(APPLICATION_JSON.clone());
        let payload = Payload::Multipart {
            body,
            boundary: form.boundary,
        };
        self.route_and_forward(ctx, form.model, payload, &content_type)
            .await
    }

    pub async fn list_models(&self, request: Request<Body>) -> ApiResponse {
        self.answer_models(request, None).await
    }

    pub async fn get_model(&self, request: Request<Body>, id: &str) -> ApiResponse {
        self.answer_models(request, Some(id)).await
    }

    async fn answer_models(&self, request: Request<Body>, id: Option<&str>) -> ApiResponse {
        let (head, _) = request.into_parts();
        let mut ctx = RequestCtx::new(request_id(&head.headers), Route::Models);
        if let Err(e) = self.plugins.on_request(&mut ctx, &head).await {
            return self.reject(ctx, e);
        }
        let json = match id {
            None => self.router.models_json(),
            Some(id) => match self.router.model_json(id) {
                Some(json) => json,
                None => return self.reject(ctx, GatewayError::model_not_found(id)),
            },
        };
        self.report_now(&ctx, StatusCode::OK, Outcome::Complete, json.len(), None);
        let mut response = Response::new(Body::from(json));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
        with_plugin_headers(response, ctx.response_headers)
    }

    async fn route_and_forward(
        &self,
        mut ctx: RequestCtx,
        model: String,
        payload: Payload,
        content_type: &HeaderValue,
    ) -> ApiResponse {
        let Some(route) = self.router.resolve(&model) else {
            return self.reject(ctx, GatewayError::model_not_found(&model));
        };
        ctx.model = Some(route.name.clone());
        // With fallbacks, a model whose own providers are all off can still be served.
        if let Some(reason) = route
            .unavailable
            .as_ref()
            .filter(|_| route.fallbacks.is_empty())
        {
            let message = format!("The model `{model}` is configured but not available: {reason}.");
            return self.reject(ctx, GatewayError::service_unavailable(message));
        }
        if let Err(e) = self.plugins.on_routed(&mut ctx).await {
            return self.reject(ctx, e);
        }
        self.forward(ctx, route, &model, payload, content_type)
            .await
    }

    /// A fallback model is next: the request is checked again as a request for it (which
    /// models its key may use, the fallback's own limits, a budget reserved at its price).
    async fn reroute(&self, ctx: &mut RequestCtx, model: &Arc<str>) -> Result<(), GatewayError> {
        let asked = ctx.model.replace(model.clone());
        if ctx.fallback_of.is_none() {
            ctx.fallback_of = asked;
        }
        self.plugins.on_routed(ctx).await
    }

    /// The upstream request for one attempt on `target`: the client's bytes (with the model
    /// renamed if needed) for OpenAI-compatible providers, a translation for the others.
    async fn upstream_request(
        &self,
        ctx: &RequestCtx,
        payload: &Payload,
        requested: &str,
        target: &Target,
        content_type: &HeaderValue,
    ) -> Result<(http::Request<UpstreamBody>, Option<Translation>), GatewayError> {
        let provider = &target.provider;
        if provider.adapter.passes_through() {
            let body = payload.for_target(requested, target).await?;
            let request = provider.build_request(ctx.route, body, content_type, &ctx.request_id);
            return Ok((request, None));
        }
        if ctx.route != Route::ChatCompletions {
            return Err(GatewayError::bad_request(format!(
                "The model `{requested}` is served by a {} provider, which has no {} endpoint.",
                provider.adapter.name(),
                ctx.route.as_str()
            ))
            .with_param("model"));
        }
        let chat = payload.chat_request()?;
        let (request, translation) = translated::upstream_request(chat, target, &ctx.request_id)?;
        Ok((request, Some(translation)))
    }

    /// Tries targets until one answers, as routing's [`Attempts`] decides: the pipeline builds
    /// and sends each attempt and reports how it went. If nothing succeeds, the last attempt's
    /// own error answer is handed on, else the summary of every failure.
    async fn forward(
        &self,
        ctx: RequestCtx,
        route: &Arc<ModelRoute>,
        requested: &str,
        payload: Payload,
        content_type: &HeaderValue,
    ) -> ApiResponse {
        let mut attempts = Attempts::new(&self.router, route, ctx.started, &ctx.request_id);
        // From here on a client hang-up (during an attempt or a back-off) is still reported.
        let mut ctx = CompletionGuard::pending(ctx, self.plugins.clone());
        // A 400 from a target whose provider cannot take the request, kept in case no target
        // can: then it is the answer.
        let mut client_error: Option<GatewayError> = None;
        let mut attempted = false;
        // The last attempt's own error answer, handed on if nothing succeeds.
        let mut last_answer: Option<(
            Response<hyper::body::Incoming>,
            &Target,
            Option<Translation>,
        )> = None;
        while let Some(attempt) = attempts.next().await {
            let fallback = attempts
                .model()
                .filter(|m| ctx.ctx().model.as_deref() != Some(&*m.name));
            if let Some(fallback) = fallback {
                if let Err(e) = self.reroute(ctx.ctx_mut(), &fallback.name).await {
                    attempts.refuse_model(attempt, &e.message);
                    // The summary names why the fallback was not used, beside the failures.
                    last_answer = None;
                    continue;
                }
            }
            let target = attempt.target;
            let (request, translation) = match self
                .upstream_request(ctx.ctx(), &payload, requested, target, content_type)
                .await
            {
                Ok(built) => built,
                // This target's provider cannot take the request; another may.
                Err(e) if e.source == ErrorSource::Client => {
                    attempts.unusable(attempt, &e);
                    client_error.get_or_insert(e);
                    continue;
                }
                Err(e) => return self.reject(ctx.into_ctx(), e),
            };
            attempted = true;
            let attempt_started = Instant::now();
            let first_byte = attempt.first_byte_timeout();
            let sent = tokio::time::timeout(first_byte, target.provider.send(request)).await;
            let failure = match sent {
                Ok(Ok(response)) if !retry::is_retryable(response.status()) => {
                    let lease = attempts.succeeded(attempt, attempt_started.elapsed());
                    ctx.ctx_mut().provider = Some(target.provider.name.clone());
                    ctx.ctx_mut().upstream_model = Some(target.model.clone());
                    let strip_usage = payload.asks_usage_for(target);
                    return self
                        .respond(
                            ctx,
                            response,
                            target,
                            Some(lease),
                            (translation, strip_usage),
                            attempt_started,
                        )
                        .await;
                }
                Ok(Ok(response)) => {
                    let failure = retry::Failure::status(&response);
                    // A provider refusing the gateway's own key is not the caller's 401: the
                    // summary (503) says what went wrong instead.
                    last_answer =
                        (!failure.rejects_key()).then_some((response, target, translation));
                    failure
                }
                Ok(Err(e)) => {
                    last_answer = None;
                    retry::Failure::connect(&e)
                }
                Err(_) => {
                    last_answer = None;
                    retry::Failure::timeout(first_byte)
                }
            };
            attempts.failed(attempt, failure);
        }
        if let Some((response, target, translation)) = last_answer {
            ctx.ctx_mut().provider = Some(target.provider.name.clone());
            ctx.ctx_mut().upstream_model = Some(target.model.clone());
            return self
                .respond(
                    ctx,
                    response,
                    target,
                    None,
                    (translation, false),
                    Instant::now(),
                )
                .await;
        }
        if let (false, Some(error)) = (attempted, client_error) {
            return self.reject(ctx.into_ctx(), error);
        }
        let error = attempts.into_error(&route.name);
        self.reject(ctx.into_ctx(), error)
    }

    async fn respond(
        &self,
        mut pending: CompletionGuard,
        response: Response<hyper::body::Incoming>,
        target: &Target,
        lease: Option<Lease>,
        (translation, strip_usage): (Option<Translation>, bool),
        attempt_started: Instant,
    ) -> ApiResponse {
        let timeouts = target.timeouts;
        let (mut parts, incoming, translator) = match translation {
            None => {
                let (parts, incoming) = response.into_parts();
                (parts, incoming, None)
            }
            Some(translation) => match translation.rewrite(response, timeouts.idle).await {
                (parts, Rewritten::Stream(incoming, stream)) => (parts, incoming, Some(stream)),
                (mut parts, Rewritten::Whole(status, body)) => {
                    let mut ctx = pending.into_ctx();
                    if status.is_success() && self.plugins.observes_frames() {
                        self.plugins.on_frame(&ctx, &body);
                    }
                    let usage = TokenUsage::from_answer(&body);
                    self.report_now(&ctx, status, Outcome::Complete, body.len(), usage);
                    strip_hop_headers(&mut parts.headers);
                    add_plugin_headers(&mut parts.headers, &mut ctx.response_headers);
                    return translated::whole_response(parts, status, body);
                }
            },
        };
        let sse = translator.is_some()
            || parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
        strip_hop_headers(&mut parts.headers);
        if sse {
            // A closing error event may be appended to a stream that breaks.
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        if translator.is_some() {
            parts.headers.remove(header::CONTENT_ENCODING);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        if translator.is_none() && parts.status.is_success() {
            pending.tap(sse, strip_usage);
        }
        if sse {
            pending.count_stream();
        }
        add_plugin_headers(&mut parts.headers, &mut pending.ctx_mut().response_headers);
        pending.respond_with(parts.status, lease);
        let body = ProxyBody::new(
            incoming,
            sse,
            timeouts,
            attempt_started,
            pending,
            translator,
        );
        Response::from_parts(parts, Body::new(body))
    }

    /// Answers with an error before anything was forwarded, telling the plugins.
    pub(crate) fn reject(&self, ctx: RequestCtx, error: GatewayError) -> ApiResponse {
        match error.source {
            ErrorSource::Client => {
                tracing::debug!(request_id = ?ctx.request_id, route = ctx.route.as_str(), error = %error, "request rejected")
            }
            ErrorSource::Upstream | ErrorSource::Internal => {
                tracing::warn!(request_id = ?ctx.request_id, route = ctx.route.as_str(), error = %error, "request failed")
            }
        }
        self.report_now(&ctx, error.status, Outcome::Rejected, 0, None);
        with_plugin_headers(error.into_response(), ctx.response_headers)
    }

    /// Tells the plugins about a request answered in one piece, now.
    fn report_now(
        &self,
        ctx: &RequestCtx,
        status: StatusCode,
        outcome: Outcome,
        bytes: usize,
        usage: Option<TokenUsage>,
    ) {
        let elapsed = ctx.started.elapsed();
        let completion = Completion {
            status,
            // An answer sent whole: its first byte leaves now.
            time_to_first_byte: (outcome == Outcome::Complete).then_some(elapsed),
            outcome,
            duration: elapsed,
            response_bytes: bytes as u64,
            usage,
            cost_usd: 0.0,
        };
        self.plugins.on_complete(ctx, completion);
    }
}

/// The headers plugins set for this request (rate-limit state), on the response.
fn add_plugin_headers(headers: &mut HeaderMap, from_plugins: &mut HeaderMap) {
    if !from_plugins.is_empty() {
        headers.extend(std::mem::take(from_plugins));
    }
}

fn with_plugin_headers(mut response: ApiResponse, mut from_plugins: HeaderMap) -> ApiResponse {
    add_plugin_headers(response.headers_mut(), &mut from_plugins);
    response
}

/// Keeps only the headers [`forwarded_from_upstream`] lets through (every value of each). An
/// answer with nothing to drop costs one scan; otherwise the map is rebuilt from what stays,
/// which beats removing one by one at the dozen headers a real provider adds.
fn strip_hop_headers(headers: &mut HeaderMap) {
    if headers.keys().all(forwarded_from_upstream) {
        return;
    }
    let mut keep: Option<http::HeaderName> = None;
    for (name, value) in std::mem::take(headers) {
        // A name comes once, before its first value; later values of it come without one.
        if let Some(name) = name {
            keep = forwarded_from_upstream(&name).then_some(name);
        }
        if let Some(name) = &keep {
            headers.append(name.clone(), value);
        }
    }
}
