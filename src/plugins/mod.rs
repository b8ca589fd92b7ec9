//! Plugin-style middleware on the /v1 path.
//!
//! A request passes through the chain in order at fixed phases (the shape of pingora's
//! `ProxyHttp` phases): `on_request` before the body is read (auth), `on_routed` once the model
//! is known (limits, budgets), and `on_complete` exactly once when the response ends, fails or the
//! client hangs up (metering). Plugins share one [`RequestCtx`]; the proxy never knows which
//! plugins are on.

pub mod auth;
pub mod metering;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::{Extensions, HeaderMap, HeaderValue, StatusCode};

use crate::error::GatewayError;
use crate::pricing::PriceTable;
use crate::usage::TokenUsage;

pub type PluginFuture<'a> = Pin<Box<dyn Future<Output = Result<(), GatewayError>> + Send + 'a>>;

/// Which /v1 operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    ChatCompletions,
    Embeddings,
    AudioTranscriptions,
    Models,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::ChatCompletions => "chat.completions",
            Route::Embeddings => "embeddings",
            Route::AudioTranscriptions => "audio.transcriptions",
            Route::Models => "models",
        }
    }
}

/// Who is calling: a user (through an API key, an access token or a session), or the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user id, or `master` for the master key.
    pub id: Arc<str>,
    pub kind: PrincipalKind,
    pub role: Role,
    /// The API key used, if any.
    pub key_id: Option<Arc<str>>,
    /// The sign-in session used, if any.
    pub session_id: Option<Arc<str>>,
    /// The models an API key is limited to; None allows all.
    pub allowed_models: Option<Arc<[String]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    MasterKey,
    ApiKey,
    /// A JWT access token from this gateway's login.
    AccessToken,
    /// A better-auth session token (header or signed cookie).
    SessionToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn from_db(role: Option<&str>) -> Role {
        if role == Some("admin") {
            Role::Admin
        } else {
            Role::User
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl Principal {
    pub fn master() -> Principal {
        Principal {
            id: Arc::from("master"),
            kind: PrincipalKind::MasterKey,
            role: Role::Admin,
            key_id: None,
            session_id: None,
            allowed_models: None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The user behind the request; None for the master key, which is no user.
    pub fn user_id(&self) -> Option<&str> {
        (self.kind != PrincipalKind::MasterKey).then_some(&*self.id)
    }

    pub fn may_use_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

/// Everything the plugins and the proxy know about one request.
#[derive(Debug)]
pub struct RequestCtx {
    pub request_id: HeaderValue,
    pub route: Route,
    pub started: Instant,
    pub principal: Option<Principal>,
    /// The model name the client asked for.
    pub model: Option<Arc<str>>,
    pub stream: bool,
    /// The provider and provider model that served the request.
    pub provider: Option<Arc<str>>,
    pub upstream_model: Option<Arc<str>>,
    /// The request body's size (the prompt-token estimate of limits and hang-ups).
    pub request_bytes: u64,
    /// The client's `max_completion_tokens` / `max_tokens`, if it gave one.
    pub max_output_tokens: Option<u64>,
    /// Headers the plugins add to the response, whatever it is (rate-limit headers).
    pub response_headers: HeaderMap,
    /// Each plugin's own per-request state (a limit reservation), by type.
    pub extensions: Extensions,
}

impl RequestCtx {
    pub fn new(request_id: HeaderValue, route: Route) -> Self {
        Self {
            request_id,
            route,
            started: Instant::now(),
            principal: None,
            model: None,
            stream: false,
            provider: None,
            upstream_model: None,
            request_bytes: 0,
            max_output_tokens: None,
            response_headers: HeaderMap::new(),
            extensions: Extensions::new(),
        }
    }
}

/// How a request ended, handed to `on_complete`.
#[derive(Debug, Clone)]
pub struct Completion {
    pub status: StatusCode,
    pub outcome: Outcome,
    pub time_to_first_byte: Option<Duration>,
    pub duration: Duration,
    pub response_bytes: u64,
    /// Tokens used, as the provider reported them (or estimated when it could not).
    pub usage: Option<TokenUsage>,
    /// What `usage` cost in USD at the price table's price (0 when unpriced); set by the chain.
    pub cost_usd: f64,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Rejected => "rejected",
            Outcome::UpstreamFailed(_) => "upstream_failed",
            Outcome::ClientDisconnected => "client_disconnected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The whole response reached the client.
    Complete,
    /// The gateway answered with an error before (or instead of) forwarding.
    Rejected,
    /// The upstream failed or stalled after the response had started.
    UpstreamFailed(String),
    /// The client went away before the end of the response.
    ClientDisconnected,
}

pub trait Plugin: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Before the body is read: authenticate, reject early.
    fn on_request<'a>(&'a self, _ctx: &'a mut RequestCtx, _head: &'a Parts) -> PluginFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Once the body is parsed and the model is known.
    fn on_routed<'a>(&'a self, _ctx: &'a mut RequestCtx) -> PluginFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Exactly once per request, at its end. Must not block: hand slow work to a task.
    fn on_complete(&self, _ctx: &RequestCtx, _completion: &Completion) {}
}

/// The ordered plugins of one gateway.
#[derive(Default)]
pub struct PluginChain {
    plugins: Vec<Arc<dyn Plugin>>,
    /// Prices a finished request once, for every plugin that meters or settles it.
    prices: Arc<PriceTable>,
}

impl PluginChain {
    pub fn new(plugins: Vec<Arc<dyn Plugin>>, prices: Arc<PriceTable>) -> Self {
        Self { plugins, prices }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    pub async fn on_request(&self, ctx: &mut RequestCtx, head: &Parts) -> Result<(), GatewayError> {
        for plugin in &self.plugins {
            plugin.on_request(ctx, head).await?;
        }
        Ok(())
    }

    pub async fn on_routed(&self, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        for plugin in &self.plugins {
            plugin.on_routed(ctx).await?;
        }
        Ok(())
    }

    pub fn on_complete(&self, ctx: &RequestCtx, mut completion: Completion) {
        if let Some(usage) = &completion.usage {
            completion.cost_usd = self.prices.request_cost(
                ctx.model.as_deref(),
                ctx.upstream_model.as_deref(),
                usage,
            );
        }
        for plugin in &self.plugins {
            plugin.on_complete(ctx, &completion);
        }
    }
}
