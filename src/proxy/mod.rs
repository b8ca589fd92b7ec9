//! The /v1 hot path: authenticate, read the body under a limit, learn the model, pick a target,
//! forward, and pass the answer back frame by frame.

pub mod json_probe;
pub mod multipart;
pub mod request_body;
pub mod response_body;

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};

use crate::error::{ErrorSource, GatewayError};
use crate::plugins::{Completion, Outcome, PluginChain, RequestCtx, Route};
use crate::providers::X_REQUEST_ID;
use crate::routing::{ModelRoute, Router, Target};
use response_body::{CompletionGuard, ProxyBody};

pub type ApiResponse = Response<Body>;

static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

pub struct Proxy {
    pub router: Router,
    pub plugins: Arc<PluginChain>,
    pub max_request_bytes: u64,
}

/// The request body as it will go upstream, and how to rename the model inside it.
enum Payload {
    Json {
        body: Bytes,
        model_span: Range<usize>,
    },
    Multipart {
        body: Bytes,
        boundary: String,
    },
}

impl Payload {
    async fn for_target(&self, requested: &str, target: &Target) -> Result<Bytes, GatewayError> {
        let same_name = *target.model == *requested;
        match self {
            Payload::Json { body, .. } | Payload::Multipart { body, .. } if same_name => {
                Ok(body.clone())
            }
            Payload::Json { body, model_span } => Ok(json_probe::replace_model(
                body,
                model_span,
                &target.model_json,
            )),
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

/// Headers that describe one hop, not the message, plus the upstream's cookies.
const NOT_FORWARDED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "set-cookie",
];

impl Proxy {
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
        let body =
            match request_body::read_limited(body, &head.headers, self.max_request_bytes).await {
                Ok(body) => body,
                Err(e) => return self.reject(ctx, e),
            };
        let parsed = match json_probe::probe(&body, route) {
            Ok(parsed) => parsed,
            Err(e) => return self.reject(ctx, e),
        };
        ctx.stream = parsed.stream;
        let payload = Payload::Json {
            body,
            model_span: parsed.model_span,
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
        let body =
            match request_body::read_limited(body, &head.headers, self.max_request_bytes).await {
                Ok(body) => body,
                Err(e) => return self.reject(ctx, e),
            };
        let form = match multipart::inspect(body.clone(), boundary).await {
            Ok(form) => form,
            Err(e) => return self.reject(ctx, e),
        };
        ctx.stream = form.stream;
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
        let completion = Completion {
            status: StatusCode::OK,
            outcome: Outcome::Complete,
            time_to_first_byte: None,
            duration: ctx.started.elapsed(),
            response_bytes: json.len() as u64,
        };
        self.plugins.on_complete(&ctx, &completion);
        let mut response = Response::new(Body::from(json));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
        response
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
        if let Some(reason) = &route.unavailable {
            let message = format!("The model `{model}` is configured but not available: {reason}.");
            return self.reject(ctx, GatewayError::service_unavailable(message));
        }
        if let Err(e) = self.plugins.on_routed(&mut ctx).await {
            return self.reject(ctx, e);
        }
        self.forward(ctx, route, &model, payload, content_type)
            .await
    }

    /// Tries the model's targets in order. A target that cannot be reached, times out before its
    /// response headers, or answers 429/5xx while another target remains is skipped; nothing has
    /// reached the client at that point, so the next target is safe to try.
    async fn forward(
        &self,
        mut ctx: RequestCtx,
        route: &ModelRoute,
        requested: &str,
        payload: Payload,
        content_type: &HeaderValue,
    ) -> ApiResponse {
        let mut last_error = None;
        for (i, target) in route.targets.iter().enumerate() {
            let has_next = i + 1 < route.targets.len();
            let provider = &target.provider;
            let body = match payload.for_target(requested, target).await {
                Ok(body) => body,
                Err(e) => return self.reject(ctx, e),
            };
            let upstream_request =
                provider.build_request(ctx.route, body, content_type, &ctx.request_id);
            let error = match tokio::time::timeout(
                provider.timeout,
                provider.send(upstream_request),
            )
            .await
            {
                Ok(Ok(response)) => {
                    let status = response.status();
                    if has_next
                        && (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                    {
                        tracing::warn!(
                            request_id = ?ctx.request_id, provider = %provider.name,
                            status = status.as_u16(), "upstream answered with an error; trying the next target"
                        );
                        last_error = Some(GatewayError::bad_gateway(format!(
                            "Provider {} answered {status}.",
                            provider.name
                        )));
                        continue;
                    }
                    ctx.provider = Some(provider.name.clone());
                    ctx.upstream_model = Some(target.model.clone());
                    return self.respond(ctx, response, provider.idle_timeout);
                }
                Ok(Err(e)) => GatewayError::bad_gateway(format!(
                    "Could not reach provider {}: {}",
                    provider.name,
                    error_chain(&e)
                )),
                Err(_) => GatewayError::gateway_timeout(format!(
                    "Provider {} did not answer within {} ms.",
                    provider.name,
                    provider.timeout.as_millis()
                )),
            };
            tracing::warn!(
                request_id = ?ctx.request_id, provider = %provider.name, error = %error.message,
                fallback = has_next, "upstream attempt failed"
            );
            last_error = Some(error);
        }
        let error = last_error
            .unwrap_or_else(|| GatewayError::internal("The model has no targets configured."));
        self.reject(ctx, error)
    }

    fn respond(
        &self,
        ctx: RequestCtx,
        response: Response<hyper::body::Incoming>,
        idle_timeout: std::time::Duration,
    ) -> ApiResponse {
        let (mut parts, incoming) = response.into_parts();
        let sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        for name in NOT_FORWARDED {
            parts.headers.remove(name);
        }
        if sse {
            // A closing error event may be appended to a stream that breaks.
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        let guard = CompletionGuard::new(ctx, self.plugins.clone(), parts.status);
        let body = ProxyBody::new(incoming, sse, idle_timeout, guard);
        Response::from_parts(parts, Body::new(body))
    }

    /// Answers with an error before anything was forwarded, telling the plugins.
    fn reject(&self, ctx: RequestCtx, error: GatewayError) -> ApiResponse {
        match error.source {
            ErrorSource::Client => {
                tracing::debug!(request_id = ?ctx.request_id, route = ctx.route.as_str(), error = %error, "request rejected")
            }
            ErrorSource::Upstream | ErrorSource::Internal => {
                tracing::warn!(request_id = ?ctx.request_id, route = ctx.route.as_str(), error = %error, "request failed")
            }
        }
        let completion = Completion {
            status: error.status,
            outcome: Outcome::Rejected,
            time_to_first_byte: None,
            duration: ctx.started.elapsed(),
            response_bytes: 0,
        };
        self.plugins.on_complete(&ctx, &completion);
        error.into_response()
    }
}

/// "client error (Connect): tcp connect error: Connection refused" rather than the outer layer only.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
