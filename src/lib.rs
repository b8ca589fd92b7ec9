//! `gateway`: a fast, self-hostable LLM gateway. An OpenAI-compatible proxy on `/v1` with
//! plugin-style middleware, configured by `gateway.toml`.
//!
//! Tests, benches and the binary all start the whole gateway through [`run`] / [`spawn`].

pub mod allocator;
pub mod api;
pub mod app;
pub mod chat;
pub mod cli;
pub mod config;
pub mod context;
pub mod error;
pub mod forwarded;
pub mod identity;
pub mod jobs;
pub mod limits;
pub mod master_key;
pub mod metering;
pub mod mock;
pub mod pipeline;
pub mod plugins;
pub mod pricing;
pub mod providers;
pub mod proxy;
pub mod request_id;
pub mod routing;
pub mod server;
pub mod services;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod translate;
pub mod usage;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use config::Config;
use identity::Identity;
use plugins::{auth::Auth, Plugin, PluginChain};
use proxy::Pipeline;
use routing::Router;
use state::{AppState, ProviderStatus};
use store::Store;

/// Builds the shared state: the store (migrated unless told not to), identity, providers,
/// routes and the plugin chain.
pub async fn build_state(config: &Config) -> anyhow::Result<Arc<AppState>> {
    build_state_with(config, Vec::new()).await
}

/// The same, with `extra` plugins after the configured ones (tests and embedders use this).
pub async fn build_state_with(
    config: &Config,
    extra: Vec<Arc<dyn Plugin>>,
) -> anyhow::Result<Arc<AppState>> {
    providers::client::install_crypto_provider();
    if config.auth.master_keys.is_empty() {
        bail!("no master key configured (master_key::ensure makes one)");
    }
    let store = Store::connect(&config.database).await?;
    prepare_schema(&store, config.database.auto_migrate).await?;
    let jwt_secret = match &config.identity.jwt.secret {
        Some(secret) => secret.clone(),
        None => {
            tracing::warn!(
                "no auth.jwt_secret: using a random one; access tokens end with this process"
            );
            config::Secret::new(identity::tokens::opaque_token(""))
        }
    };
    let identity = Arc::new(Identity::new(config, store, &jwt_secret)?);
    identity.listen_for_revocations();
    let prices = Arc::new(pricing::PriceTable::load(&config.pricing)?);
    let limits = limits::Limits::from_config(config, identity.store.clone(), prices.clone())
        .await?
        .map(Arc::new);
    metering::metrics::install();
    let usage_writer = config
        .metering
        .enabled
        .then(|| metering::UsageWriter::start(identity.store.clone(), config.metering.clone()));
    if config.identity.min_password_length < 8 {
        tracing::warn!(
            min_password_length = config.identity.min_password_length,
            "passwords shorter than 8 characters are accepted (auth.min_password_length)"
        );
    }
    let user_budget = config.limits.as_ref().is_some_and(|l| {
        let tier = l.tier(l.user_tier.as_deref());
        tier.daily_budget_usd.is_some() || tier.monthly_budget_usd.is_some()
    });
    if config.identity.allow_registration && !user_budget {
        tracing::warn!(
            "registration is OPEN and users have no budget: anyone who signs up may spend the provider keys without limit; give limits.user_tier a tier with daily_budget_usd, or set auth.allow_registration = false"
        );
    }
    if config.identity.smtp.is_none() && config.identity.log_mails {
        tracing::warn!(
            "auth.log_mails is on: mails, password-reset and verification links included, are written to the log at DEBUG; for development only"
        );
    }
    if let Some(anonymous) = &config.anonymous {
        let routes: Vec<&str> = anonymous.routes.iter().map(|r| r.as_str()).collect();
        tracing::warn!(
            routes = ?routes,
            models = ?anonymous.models,
            per_address = ?anonymous.per_address,
            total_daily_budget_usd = ?anonymous.total_daily_budget_usd,
            "anonymous access is ON: callers without any credential may spend the provider keys on these routes and models, within these limits"
        );
    }
    let chain = plugins::ordered(
        Arc::new(Auth::new(identity.clone(), config.anonymous.as_ref())),
        Vec::new(),
        limits.clone().map(|l| l as Arc<dyn Plugin>),
        Arc::new(plugins::metering::Metering::new(usage_writer.clone())),
        extra,
    );
    let plugins = Arc::new(PluginChain::new(chain, prices.clone()));
    tracing::info!(plugins = ?plugins.names(), "plugin chain");
    let router = Router::build_with_prices(config, &prices)?;
    Ok(Arc::new(AppState {
        usage_writer,
        metrics: config.metrics.clone(),
        cors: config.cors.clone(),
        anonymous: config.anonymous.is_some(),
        trusted_proxies: identity.trusted_proxies.clone(),
        server: config.server.clone(),
        tls: config
            .server
            .tls
            .as_ref()
            .map(tls::Tls::from_config)
            .transpose()?,
        chat: config.chat.clone(),
        jobs: jobs::JobRunner::start("app", 1_000, 2),
        store: identity.store.clone(),
        identity,
        limits,
        pipeline: Pipeline {
            router,
            plugins,
            max_request_bytes: config.server.max_request_bytes,
            body_read_timeout: config.server.body_read_timeout,
            body_budget: proxy::request_body::BodyBudget::new(
                config.server.max_inflight_body_bytes,
            ),
        },
        providers: config
            .providers
            .iter()
            .map(|p| ProviderStatus {
                name: p.name.clone(),
                disabled_reason: p.disabled_reason.clone(),
            })
            .collect(),
        accepting: AtomicBool::new(true),
    }))
}

/// Applies pending migrations, or (with `database.auto_migrate = false`) refuses to start on a
/// schema that is behind, rather than failing on the first query.
async fn prepare_schema(store: &Store, auto_migrate: bool) -> anyhow::Result<()> {
    if auto_migrate {
        let applied = store.migrate_up().await?;
        if applied > 0 {
            tracing::info!(
                applied,
                engine = store.engine(),
                "database migrations applied"
            );
        }
        return Ok(());
    }
    let pending = store
        .migration_status()
        .await?
        .into_iter()
        .filter(|m| !m.applied)
        .count();
    if pending > 0 {
        bail!("{pending} database migration(s) pending and database.auto_migrate is off: run `gateway migrate up`");
    }
    Ok(())
}

/// Serves the gateway on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let state = build_state(&config).await?;
    serve_state(state, listener, shutdown, config.server.drain_timeout).await;
    Ok(())
}

/// Serves an already built gateway (the binary builds first, so it logs "listening" only once
/// the database is migrated and the gateway can answer).
pub async fn serve_state(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain_timeout: std::time::Duration,
) {
    let handler = Arc::new(app::handler(app::router(state.clone())));
    let stop_accepting = async {
        shutdown.await;
        state.accepting.store(false, Ordering::Relaxed);
    };
    let serving = server::Serving {
        addressing: server::Addressing {
            on_v1: state.anonymous,
            trusted_proxies: state.trusted_proxies.clone(),
        },
        max_connections: state.server.max_connections,
        max_connections_per_address: state.server.max_connections_per_address,
        http2_keep_alive: state.server.http2_keep_alive,
        tls: state.tls.clone(),
        on_drain_timeout: Some({
            let plugins = state.pipeline.plugins.clone();
            Arc::new(move || plugins.interrupt())
        }),
    };
    server::serve(listener, handler, stop_accepting, drain_timeout, serving).await;
    // Every request has ended: the background jobs they started finish, then what they all
    // used is written before the process goes.
    state.jobs.flush().await;
    // Settlements of the last requests (Redis) land before the process goes, or other replicas
    // would see their slots and reservations held until the leases end.
    if let Some(limits) = &state.limits {
        limits.flush().await;
    }
    if let Some(writer) = &state.usage_writer {
        writer.flush().await;
        tracing::info!("usage records flushed");
    }
}

/// A gateway running on a background task, as tests and benches use it.
pub struct GatewayHandle {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl GatewayHandle {
    /// `http://ADDR` (the OpenAI base URL is this plus `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until every background job started so far (thread summaries) has run.
    pub async fn flush_jobs(&self) {
        self.state.jobs.flush().await;
    }

    /// Waits until the usage records of every request ended so far are written.
    pub async fn flush_usage(&self) {
        if let Some(writer) = &self.state.usage_writer {
            writer.flush().await;
        }
    }

    /// Starts the graceful shutdown and waits for the drain to end.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.context("gateway task panicked")?
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.task).await.context("gateway task panicked")?
    }
}

/// Binds `config.server.listen` (port 0 picks a free port) and runs the gateway in the background.
pub async fn spawn(config: Config) -> anyhow::Result<GatewayHandle> {
    spawn_with(config, Vec::new()).await
}

/// [`spawn`] with `extra` plugins after the configured ones.
pub async fn spawn_with(
    config: Config,
    extra: Vec<Arc<dyn Plugin>>,
) -> anyhow::Result<GatewayHandle> {
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    // Fail here, not in the task, when the config cannot make a gateway.
    let state = build_state_with(&config, extra).await?;
    let (tx, rx) = oneshot::channel();
    let drain = config.server.drain_timeout;
    let handle_state = state.clone();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        serve_state(state, listener, shutdown, drain).await;
        Ok(())
    });
    Ok(GatewayHandle {
        addr,
        state: handle_state,
        shutdown: Some(tx),
        task,
    })
}
