//! The state every handler shares: the pipeline, the store, identity, the optional plugins'
//! handles and the health flags. A leaf for the app layer: `app` (the router) and `api` (the
//! handlers) both read it, and it imports neither.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::identity::Identity;
use crate::proxy::Pipeline;
use crate::store::Store;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct ProviderStatus {
    pub name: String,
    pub disabled_reason: Option<String>,
}

pub struct AppState {
    pub pipeline: Pipeline,
    /// The database, owned here: services take it from the state, not through identity.
    pub store: Store,
    pub identity: Arc<Identity>,
    /// The rate limits and budgets plugin, when `[limits]` is configured (the admin API
    /// invalidates its cached overrides).
    pub limits: Option<Arc<crate::limits::Limits>>,
    /// The background usage writer (None when metering.enabled = false).
    pub usage_writer: Option<Arc<crate::metering::UsageWriter>>,
    pub metrics: crate::config::MetricsConfig,
    /// Background jobs of the app (thread summaries; memory extraction next): bounded, skipped
    /// and counted when full, flushed on shutdown.
    pub jobs: Arc<crate::jobs::JobRunner>,
    /// The app's chat settings (`[chat]`).
    pub chat: crate::config::ChatConfig,
    /// Whether callers without a credential are let in on /v1 (`[anonymous]`), so /v1 requests
    /// carry their client address.
    pub anonymous: bool,
    /// The reverse proxies whose `Forwarded` / `X-Forwarded-For` name the client.
    pub trusted_proxies: Arc<crate::forwarded::TrustedProxies>,
    /// `[server]`: connection caps and timeouts the accept loop and app routes apply.
    pub server: crate::config::ServerConfig,
    /// `[server.tls]`, its files read at start-up.
    pub tls: Option<crate::tls::Tls>,
    /// Which browser origins may call (`[cors]`); None: no CORS headers.
    pub cors: Option<crate::config::CorsConfig>,
    pub providers: Vec<ProviderStatus>,
    /// Cleared when shutdown begins, so load balancers stop sending new work during the drain.
    pub accepting: AtomicBool,
}
