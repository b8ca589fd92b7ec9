//! Plugin-style middleware on the /v1 path.
//!
//! A request passes through the chain in order at fixed phases (the shape of pingora's
//! `ProxyHttp` phases): `on_request` before the body is read (auth), `on_routed` once the model
//! is known (limits, budgets), and `on_complete` exactly once when the response ends, fails or the
//! client hangs up (metering). Plugins share one [`RequestCtx`]; the proxy never knows which
//! plugins are on.

pub mod auth;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::error::GatewayError;

pub type PluginFuture<'a> = Pin<Box<dyn Future<Output = Result<(), GatewayError>> + Send + 'a>>;

/// Which /v1 operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Who is calling. Later identity sources (users, API keys, sessions) resolve to this too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: Arc<str>,
    pub kind: PrincipalKind,
    pub admin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    MasterKey,
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
}

impl PluginChain {
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        Self { plugins }
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

    pub fn on_complete(&self, ctx: &RequestCtx, completion: &Completion) {
        for plugin in &self.plugins {
            plugin.on_complete(ctx, completion);
        }
    }
}
