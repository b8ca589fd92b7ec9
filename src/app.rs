//! Routes: the /v1 proxy, the app endpoints and the health endpoints on one axum router, behind
//! a thin outer layer that gives every response its `x-request-id`.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use http::StatusCode;
use hyper::body::Incoming;
use serde_json::json;
use tower::ServiceExt;

use crate::error::GatewayError;
use crate::providers::X_REQUEST_ID;
use crate::request_id::RequestIds;
pub use crate::state::{AppState, ProviderStatus, VERSION};

type Shared = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> axum::Router {
    let router = axum::Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/audio/transcriptions", post(audio_transcriptions))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model))
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(
            crate::api::router().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                app_deadline,
            )),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // Only when origins are configured: without CORS no request pays for the layer.
    let router = match &state.cors {
        Some(cors) => router.layer(cors_layer(cors)),
        None => router,
    };
    router.with_state(state)
}

/// Browsers on the configured origins may call every endpoint; preflights are answered here
/// (before auth, as browsers send them without credentials), and the headers a client reads
/// (request id, rate limits, Retry-After) are exposed.
fn cors_layer(config: &crate::config::CorsConfig) -> tower_http::cors::CorsLayer {
    use http::{header, Method};
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    let origins = match &config.origins {
        crate::config::CorsOrigins::Any => AllowOrigin::any(),
        crate::config::CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(config.allow_credentials)
        .expose_headers([
            X_REQUEST_ID.clone(),
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-ratelimit-limit-requests"),
            header::HeaderName::from_static("x-ratelimit-remaining-requests"),
            header::HeaderName::from_static("x-ratelimit-reset-requests"),
            header::HeaderName::from_static("x-ratelimit-limit-tokens"),
            header::HeaderName::from_static("x-ratelimit-remaining-tokens"),
            header::HeaderName::from_static("x-ratelimit-reset-tokens"),
        ])
        .max_age(config.max_age)
}

type HandlerFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

/// The outermost handler: request ids in, request ids out.
pub fn handler(
    router: axum::Router,
) -> impl Fn(http::Request<Incoming>) -> HandlerFuture + Send + Sync + 'static {
    let ids = Arc::new(RequestIds::default());
    move |mut request| {
        let id = ids.ensure(request.headers_mut());
        let call = router.clone().oneshot(request.map(Body::new));
        Box::pin(async move {
            let mut response = call.await?;
            response.headers_mut().insert(X_REQUEST_ID.clone(), id);
            Ok(response)
        })
    }
}

async fn chat_completions(State(state): Shared, request: Request) -> Response {
    state.pipeline.chat_completions(request).await
}

async fn embeddings(State(state): Shared, request: Request) -> Response {
    state.pipeline.embeddings(request).await
}

async fn audio_transcriptions(State(state): Shared, request: Request) -> Response {
    state.pipeline.audio_transcriptions(request).await
}

async fn list_models(State(state): Shared, request: Request) -> Response {
    state.pipeline.list_models(request).await
}

async fn get_model(State(state): Shared, Path(id): Path<String>, request: Request) -> Response {
    state.pipeline.get_model(request, &id).await
}

/// An app endpoint answers within `server.app_request_timeout_secs` (a streamed answer's body
/// aside: its headers count, not the stream); a request trickled in or a stuck handler gets a
/// 504 in the REST shape instead of holding its task.
async fn app_deadline(
    State(state): Shared,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = state.server.app_request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => GatewayError::with_status(
            StatusCode::GATEWAY_TIMEOUT,
            "request_timeout",
            format!("The request took longer than {} s.", limit.as_secs()),
        )
        .into_rest_response(),
    }
}

async fn health() -> Response {
    Json(json!({ "status": "ok", "version": VERSION })).into_response()
}

/// Ready when accepting work and at least one provider is switched on. A target out of
/// rotation does not make the gateway unready: every replica would see the same upstream, and
/// taking them all out of a load balancer helps no one. The status is public (load balancers
/// ask without credentials); providers and deployments, which name upstreams and their
/// errors, are shown only to an admin.
async fn ready(State(state): Shared, headers: http::HeaderMap) -> Response {
    let accepting = state.accepting.load(Ordering::Relaxed);
    let any_provider = state.providers.iter().any(|p| p.disabled_reason.is_none());
    let (status, word) = match (accepting, any_provider) {
        (true, true) => (StatusCode::OK, "ready"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "no_providers"),
    };
    let admin = match crate::identity::bearer_token(&headers) {
        Some(_) => state
            .identity
            .authenticate(&headers)
            .await
            .is_ok_and(|p| p.is_admin()),
        None => false,
    };
    if !admin {
        return (status, Json(json!({ "status": word, "version": VERSION }))).into_response();
    }
    let providers: Vec<_> = state
        .providers
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "enabled": p.disabled_reason.is_none(),
                "reason": p.disabled_reason,
            })
        })
        .collect();
    let targets = state.pipeline.router.health();
    let body = json!({
        "status": word, "version": VERSION, "providers": providers, "targets": targets
    });
    (status, Json(body)).into_response()
}

/// Prometheus text format. Deployment health is read at scrape time.
async fn metrics(State(state): Shared, headers: http::HeaderMap) -> Response {
    let handle = match crate::metering::metrics::install() {
        Some(handle) if state.metrics.enabled => handle,
        _ => return not_found_path("/metrics"),
    };
    if let Some(token) = &state.metrics.bearer_token {
        let given = crate::identity::bearer_token(&headers).unwrap_or_default();
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.expose().as_bytes()).into();
        if !same {
            return GatewayError::unauthorized("GET /metrics needs its bearer token.")
                .into_response();
        }
    }
    for target in state.pipeline.router.health() {
        let labels = [
            ("model", target.model),
            ("provider", target.provider),
            ("upstream_model", target.upstream_model),
        ];
        let healthy = if target.breaker.state == "open" {
            0.0
        } else {
            1.0
        };
        metrics::gauge!("gateway_upstream_healthy", &labels).set(healthy);
        metrics::gauge!("gateway_upstream_in_flight", &labels).set(f64::from(target.in_flight));
    }
    if let Some(writer) = &state.usage_writer {
        metrics::gauge!("gateway_usage_backlog").set(writer.backlog() as f64);
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

fn not_found_path(path: &str) -> Response {
    GatewayError::not_found(format!("Unknown endpoint: GET {path}"))
        .with_code("unknown_url")
        .into_response()
}

async fn not_found(request: Request) -> Response {
    GatewayError::not_found(format!(
        "Unknown endpoint: {} {}",
        request.method(),
        request.uri().path()
    ))
    .with_code("unknown_url")
    .into_response()
}

async fn method_not_allowed() -> Response {
    GatewayError::method_not_allowed().into_response()
}
