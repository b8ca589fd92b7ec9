//! Plugin-style middleware on the pipeline: every model call, from /v1 or in process, passes
//! through the same chain.
//!
//! A request passes through the chain in order at fixed phases (the shape of pingora's
//! `ProxyHttp` phases), sharing one [`RequestCtx`]; the pipeline never knows which plugins are on:
//! 1. `on_request`, admission, before the body is read (auth);
//! 2. `on_chat_request`, editing, may rewrite the typed chat request (memory and knowledge
//!    injection). Only plugins that say so in `edits_chat` get it, and a /v1 body is parsed for
//!    it only when one does: the passthrough path pays nothing otherwise;
//! 3. `on_routed`, once the model is known (model permissions, limits, budget reservations);
//! 4. `on_frame`, a read-only look at each piece of the answer as it goes to the caller (only
//!    for plugins that say so in `observes_frames`): transcript capture, memory extraction;
//! 5. `on_complete`, exactly once when the response ends, fails or the caller hangs up
//!    (metering, settlement, background jobs).
//!
//! The order of the plugins is declared once, in [`ordered`].

pub mod auth;
pub mod limits;
pub mod metering;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;

use crate::chat::ChatRequest;
pub use crate::context::{
    Completion, Outcome, Principal, PrincipalKind, RequestCtx, Role, Route, UsageScope,
};
use crate::error::GatewayError;
use crate::pricing::PriceTable;

pub type PluginFuture<'a> = Pin<Box<dyn Future<Output = Result<(), GatewayError>> + Send + 'a>>;

pub trait Plugin: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Before the body is read: authenticate, reject early.
    fn on_request<'a>(&'a self, _ctx: &'a mut RequestCtx, _head: &'a Parts) -> PluginFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether this plugin edits chat requests (asked once, when the chain is built).
    fn edits_chat(&self) -> bool {
        false
    }

    /// After admission, before routing: may rewrite the chat request (add context messages).
    /// Called only when `edits_chat` says so.
    fn on_chat_request<'a>(
        &'a self,
        _ctx: &'a mut RequestCtx,
        _request: &'a mut ChatRequest,
    ) -> PluginFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Once the body is parsed and the model is known.
    fn on_routed<'a>(&'a self, _ctx: &'a mut RequestCtx) -> PluginFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether this plugin looks at the answer's frames (asked once, when the chain is built).
    fn observes_frames(&self) -> bool {
        false
    }

    /// Each piece of a successful answer as the caller gets it (OpenAI JSON or SSE bytes, after
    /// any translation), in order. Read-only and on the response's path: keep it cheap.
    fn on_frame(&self, _ctx: &RequestCtx, _bytes: &[u8]) {}

    /// Exactly once per request, at its end. Must not block: hand slow work to a task.
    fn on_complete(&self, _ctx: &RequestCtx, _completion: &Completion) {}
}

/// The chain's order, in one place. Each position matters:
/// - auth first: nothing else may run for a caller who is not known, and every later phase
///   reads the principal;
/// - editing plugins (memory) next, after auth (they need the user) and before limits, so a
///   reservation estimates the request as it will really be sent;
/// - limits before metering: a refused request is still metered (as rejected), and limits settle
///   their reservation in `on_complete` before metering's record is queued;
/// - metering last of the built-ins, so it records what every earlier plugin decided;
/// - `extra` (tests, embedders) after everything, seeing the request as it was served.
pub fn ordered(
    auth: Arc<dyn Plugin>,
    editors: Vec<Arc<dyn Plugin>>,
    limits: Option<Arc<dyn Plugin>>,
    metering: Arc<dyn Plugin>,
    extra: Vec<Arc<dyn Plugin>>,
) -> Vec<Arc<dyn Plugin>> {
    let mut chain = vec![auth];
    chain.extend(editors);
    chain.extend(limits);
    chain.push(metering);
    chain.extend(extra);
    chain
}

/// The ordered plugins of one gateway.
#[derive(Default)]
pub struct PluginChain {
    plugins: Vec<Arc<dyn Plugin>>,
    /// The plugins that edit chat requests / observe frames (most chains have none: then those
    /// phases cost one check of an empty list).
    editors: Vec<Arc<dyn Plugin>>,
    observers: Vec<Arc<dyn Plugin>>,
    /// Prices a finished request once, for every plugin that meters or settles it.
    prices: Arc<PriceTable>,
    /// Set when the drain ran out: responses still streaming end now (each with an error
    /// event) and are reported as interrupted. Kept here because every response holds the chain.
    interrupted: std::sync::atomic::AtomicBool,
}

impl PluginChain {
    pub fn new(plugins: Vec<Arc<dyn Plugin>>, prices: Arc<PriceTable>) -> Self {
        let editors = plugins.iter().filter(|p| p.edits_chat()).cloned().collect();
        let observers = plugins
            .iter()
            .filter(|p| p.observes_frames())
            .cloned()
            .collect();
        Self {
            plugins,
            editors,
            observers,
            prices,
            interrupted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The drain ran out: every response still open ends (see `interrupted`).
    pub fn interrupt(&self) {
        self.interrupted
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn edits_chat(&self) -> bool {
        !self.editors.is_empty()
    }

    /// The prices every finished request is costed by (app endpoints cost their turns the same).
    pub fn prices(&self) -> &Arc<PriceTable> {
        &self.prices
    }

    pub fn observes_frames(&self) -> bool {
        !self.observers.is_empty()
    }

    pub async fn edit_chat(
        &self,
        ctx: &mut RequestCtx,
        request: &mut ChatRequest,
    ) -> Result<(), GatewayError> {
        for plugin in &self.editors {
            plugin.on_chat_request(ctx, request).await?;
        }
        Ok(())
    }

    pub fn on_frame(&self, ctx: &RequestCtx, bytes: &[u8]) {
        for plugin in &self.observers {
            plugin.on_frame(ctx, bytes);
        }
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
