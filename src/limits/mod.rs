//! Rate limits and budgets (issue 5): per API key, per user and per model, in process or in
//! Redis.
//!
//! Each scope may have requests per minute, tokens per minute, concurrent requests and USD
//! budgets per UTC day and month. Keys and users get their tier's limits (`limits.key_tier`,
//! `limits.user_tier`, or the tier an admin override names) under the override's own values;
//! models get `[limits.models."name"]`, across all callers. The master key is under the model
//! limits only.
//!
//! In `on_routed` the request's needs are taken from every scope at once, or from none: one
//! request of each RPM bucket, an estimate of its tokens from each TPM bucket (prompt ≈ body
//! bytes / 4, plus the client's max tokens; capped at the bucket), a concurrency slot, and its
//! worst-case cost (every body byte a prompt token, the whole output allowance) from each budget.
//! A refusal is a 429 in OpenAI's shape with `Retry-After`. In `on_complete` the reservation is
//! settled with what the request actually used (a failed request used what the provider
//! reported, else nothing): the token bucket is debited the difference (it may go negative,
//! delaying later requests), the slot is freed, the budget's reservation becomes its real cost.
//! A model with no known price costs nothing. Audio is reserved no cost (its length is unknown
//! until transcribed) and is charged after.
//!
//! Backends: [`memory`] (one replica; see there why not governor) and [`redis_backend`] (several
//! replicas, atomic Lua scripts; see there for the keys). When Redis cannot be reached within
//! `redis.timeout_ms`, `limits.on_backend_error` decides: admit without limits (`fail_open`) or
//! answer 503 (`fail_closed`); either way it is logged (at most every 10 s) and counted in
//! `gateway_ratelimit_backend_errors_total`.

pub mod body_gate;
pub mod bucket;
pub mod headers;
pub mod memory;
pub mod overrides;
pub mod plan;
pub mod redis_backend;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Utc;

use crate::config::{Config, FailMode, LimitBackend, LimitSet, LimitsConfig, ModelPrice};
use crate::context::{Completion, Outcome, Principal, PrincipalKind, RequestCtx, Route};
use crate::error::GatewayError;
use crate::pricing::PriceTable;
use crate::store::Store;

use memory::MemoryBackend;
use overrides::Overrides;
use plan::{to_micros, to_usd, Micros, Refusal};
pub use plan::{Actual, Ask, Decision, LimitKind, Periods, ScopeAsk, ScopeKind, ScopeStatus};
use redis_backend::RedisBackend;

/// The scope id under which every anonymous caller's spend adds up.
const ANONYMOUS_TOTAL: &str = "anon:*";

/// The limits plugin.
pub struct Limits {
    config: LimitsConfig,
    overrides: Overrides,
    backend: Backend,
    models: HashMap<String, Arc<LimitSet>>,
    /// The limits of callers without a credential (`[anonymous]`): per client address, and
    /// one daily budget they all share.
    anonymous_per_address: LimitSet,
    anonymous_total: Option<LimitSet>,
    /// The price a budget reserves by, per model: its own, else its priciest target's.
    budget_prices: HashMap<String, Arc<ModelPrice>>,
    /// Request ids for the shared backend: unique across replicas and restarts.
    nonce: String,
    next_id: AtomicU64,
    no_id: Arc<str>,
    /// Large bodies being read, per caller with a concurrency limit.
    body_gate: Arc<body_gate::BodyGate>,
}

/// A request's place among the bodies being read (until its admission replaces it).
#[derive(Clone)]
struct BodyReading {
    _slot: Arc<body_gate::BodyReadSlot>,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<MemoryBackend>),
    Redis(Arc<RedisBackend>),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }
}

impl Limits {
    /// The plugin for `config.limits`, or None when no `[limits]` section is configured.
    pub async fn from_config(
        config: &Config,
        store: Store,
        prices: Arc<PriceTable>,
    ) -> anyhow::Result<Option<Limits>> {
        let Some(limits) = &config.limits else {
            return Ok(None);
        };
        let backend = match limits.backend {
            LimitBackend::Memory => Backend::Memory(MemoryBackend::new(Some(store.clone()))),
            LimitBackend::Redis => {
                let redis = config.redis.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("limits.backend = \"redis\" needs a [redis] section")
                })?;
                Backend::Redis(RedisBackend::new(redis, limits.concurrency_lease)?)
            }
        };
        for name in limits.models.keys() {
            if !config.models.iter().any(|m| &m.name == name) {
                tracing::warn!(
                    model = %name,
                    "limits.models names no configured model (limits follow a model's name, not its aliases)"
                );
            }
        }
        tracing::info!(
            backend = backend.name(),
            on_backend_error = ?limits.on_backend_error,
            tiers = limits.tiers.len(),
            models = limits.models.len(),
            "rate limits and budgets on"
        );
        Ok(Some(Limits {
            models: limits
                .models
                .iter()
                .filter(|(_, set)| !set.is_empty())
                .map(|(name, set)| (name.clone(), Arc::new(set.clone())))
                .collect(),
            config: limits.clone(),
            anonymous_per_address: config
                .anonymous
                .as_ref()
                .map(|a| a.per_address.clone())
                .unwrap_or_default(),
            anonymous_total: config
                .anonymous
                .as_ref()
                .and_then(|a| a.total_daily_budget_usd)
                .map(|usd| LimitSet {
                    daily_budget_usd: Some(usd),
                    ..LimitSet::default()
                }),
            budget_prices: budget_prices(config, &prices),
            overrides: Overrides::new(store, config.identity.principal_cache_ttl),
            backend,
            nonce: crate::store::new_id()[..12].to_string(),
            next_id: AtomicU64::new(0),
            no_id: Arc::from(""),
            body_gate: Arc::default(),
        }))
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Forgets the cached limits of a key or user whose override changed.
    pub fn invalidate(&self, kind: ScopeKind, id: &str) {
        self.overrides.invalidate(kind, id);
    }

    /// The scopes a request is under, each with its limits (scopes with none left out).
    async fn scopes(
        &self,
        principal: Option<&Principal>,
        model: Option<&Arc<str>>,
        token_estimate: u64,
    ) -> Vec<ScopeAsk> {
        let mut scopes = Vec::with_capacity(3);
        if let Some(p) = principal.filter(|p| p.kind == PrincipalKind::Anonymous) {
            // Their own set, not a tier's or an override's: there is no account to look up.
            scopes.push(ScopeAsk::new(
                ScopeKind::User,
                p.id.clone(),
                &self.anonymous_per_address,
                token_estimate,
            ));
            if let Some(total) = &self.anonymous_total {
                scopes.push(ScopeAsk::new(
                    ScopeKind::User,
                    Arc::from(ANONYMOUS_TOTAL),
                    total,
                    token_estimate,
                ));
            }
        } else if let Some(p) = principal.filter(|p| p.kind != PrincipalKind::MasterKey) {
            if let Some(key) = &p.key_id {
                let set = self
                    .overrides
                    .limits(&self.config, ScopeKind::Key, key)
                    .await;
                if !set.is_empty() {
                    scopes.push(ScopeAsk::new(
                        ScopeKind::Key,
                        key.clone(),
                        &set,
                        token_estimate,
                    ));
                }
            }
            let set = self
                .overrides
                .limits(&self.config, ScopeKind::User, &p.id)
                .await;
            if !set.is_empty() {
                scopes.push(ScopeAsk::new(
                    ScopeKind::User,
                    p.id.clone(),
                    &set,
                    token_estimate,
                ));
            }
        }
        if let Some((model, set)) = model.and_then(|m| Some((m, self.models.get(&**m)?))) {
            scopes.push(ScopeAsk::new(
                ScopeKind::Model,
                model.clone(),
                set,
                token_estimate,
            ));
        }
        scopes
    }

    /// The request's id in the shared backend (the in-process one needs none).
    fn request_id(&self) -> Arc<str> {
        match self.backend {
            Backend::Memory(_) => self.no_id.clone(),
            Backend::Redis(_) => {
                let n = self.next_id.fetch_add(1, Ordering::Relaxed);
                Arc::from(format!("{}-{n:x}", self.nonce))
            }
        }
    }

    /// The most a request can cost (USD): every body byte a prompt token, and the whole output
    /// allowance (the request's max tokens, else the model's max output, else the configured
    /// default). Embeddings have no output; audio is charged after the fact only.
    fn worst_case(&self, ctx: &RequestCtx, price: &ModelPrice) -> f64 {
        match ctx.route {
            Route::AudioTranscriptions | Route::Models => 0.0,
            Route::Embeddings => price.worst_case(ctx.request_bytes, 0),
            Route::ChatCompletions => {
                let output = match (ctx.max_output_tokens, price.max_output_tokens) {
                    (Some(asked), Some(max)) => asked.min(max),
                    (Some(asked), None) => asked,
                    (None, Some(max)) => max,
                    (None, None) => self.config.default_max_output_tokens,
                };
                price.worst_case(ctx.request_bytes, output)
            }
        }
    }

    /// Admits the request or refuses it: takes its needs from every scope at once (the limits
    /// plugin's `on_routed`).
    ///
    /// Called again when a fallback model is tried: the reservation made for the model before
    /// is given back, and the request is admitted anew for the fallback (its model limits, a
    /// budget at its price), without counting it a second time against the key's and user's
    /// requests per minute.
    /// Before the body is read: a caller with a concurrency limit may read only that many large
    /// (or undeclared) bodies at once; one more is refused now, not after it is read.
    pub async fn gate_body(
        &self,
        ctx: &mut RequestCtx,
        head: &http::request::Parts,
    ) -> Result<(), GatewayError> {
        if head.method != http::Method::POST {
            return Ok(());
        }
        let declared = head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n <= body_gate::SMALL_BODY) {
            return Ok(());
        }
        let caps: Vec<_> = self
            .scopes(ctx.principal.as_ref(), None, 0)
            .await
            .into_iter()
            .filter_map(|s| Some((s.kind, s.id, s.max_concurrent?)))
            .collect();
        if caps.is_empty() {
            return Ok(());
        }
        match self.body_gate.enter(caps) {
            Ok(slot) => {
                ctx.extensions.insert(BodyReading {
                    _slot: Arc::new(slot),
                });
                Ok(())
            }
            Err((kind, id, cap)) => {
                metrics::counter!(
                    "gateway_ratelimit_rejections_total",
                    "scope" => kind.as_str(),
                    "limit" => "concurrent_bodies"
                )
                .increment(1);
                headers::set_retry_after(&mut ctx.response_headers, Duration::from_secs(1));
                Err(GatewayError::rate_limited(
                    "requests",
                    "rate_limit_exceeded",
                    format!(
                        "Too many concurrent requests on {}: limit {cap} at a time, counting uploads still being sent. Please retry when one of them has finished.",
                        whose(kind, &id)
                    ),
                ))
            }
        }
    }

    pub async fn check(&self, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        // The body is read: the request's concurrency slot (taken below) stands for it now.
        ctx.extensions.remove::<BodyReading>();
        if let Some(Held(earlier)) = ctx.extensions.remove::<Held>() {
            earlier.settle(Actual {
                tokens: 0,
                cost: 0,
                periods: Periods::at(Utc::now()),
            });
        }
        let prompt_estimate = match ctx.route {
            Route::AudioTranscriptions => 0,
            _ => ctx.request_bytes / 4,
        };
        let estimate = prompt_estimate.saturating_add(ctx.max_output_tokens.unwrap_or(0));
        let mut scopes = self
            .scopes(ctx.principal.as_ref(), ctx.model.as_ref(), estimate)
            .await;
        if ctx.fallback_of.is_some() {
            for scope in scopes.iter_mut().filter(|s| s.kind != ScopeKind::Model) {
                scope.rpm = None;
            }
        }
        if scopes.is_empty() {
            return Ok(());
        }
        let cost = if scopes.iter().any(ScopeAsk::has_budget) {
            let price = ctx.model.as_deref().and_then(|m| self.budget_prices.get(m));
            price.map_or(0, |p| to_micros(self.worst_case(ctx, p)))
        } else {
            0
        };
        let now = Utc::now();
        let ask = Ask {
            id: self.request_id(),
            scopes,
            cost,
            periods: Periods::at(now),
            now,
        };
        let decision = match &self.backend {
            Backend::Memory(memory) => {
                if ask.scopes.iter().any(ScopeAsk::has_budget) {
                    memory.seed_budgets(&ask).await;
                }
                Ok(memory.admit(&ask))
            }
            Backend::Redis(redis) => redis.admit(&ask).await,
        };
        match decision {
            Ok(Decision::Admitted(statuses)) => {
                let (requests, tokens) = plan::tightest(&statuses);
                headers::set_rate_headers(&mut ctx.response_headers, requests, tokens);
                ctx.extensions.insert(Held(Arc::new(Reservation {
                    backend: self.backend.clone(),
                    ask: Arc::new(ask),
                    settled: AtomicBool::new(false),
                })));
                Ok(())
            }
            Ok(Decision::Refused(refusal, statuses)) => {
                let (requests, tokens) = plan::tightest(&statuses);
                headers::set_rate_headers(&mut ctx.response_headers, requests, tokens);
                headers::set_retry_after(&mut ctx.response_headers, refusal.wait);
                let scope = &ask.scopes[refusal.scope];
                metrics::counter!(
                    "gateway_ratelimit_rejections_total",
                    "scope" => scope.kind.as_str(),
                    "limit" => refusal.limit.as_str()
                )
                .increment(1);
                Err(refusal_error(&ask, &refusal, &statuses[refusal.scope]))
            }
            Err(e) => {
                backend_error(&e);
                if let (true, Backend::Redis(redis)) = (e.may_have_run(), &self.backend) {
                    // The admit may have run (or still run) in Redis without our seeing its reply:
                    // release it, or its slots and reservations would stay until their lease
                    // ends (`concurrency_lease_secs`) and refuse other requests meanwhile.
                    let redis = redis.clone();
                    let tracker = redis.in_flight.clone();
                    tracker.spawn(async move {
                        if let Err(e) = redis.release(&ask).await {
                            backend_error(&e);
                        }
                    });
                }
                match self.config.on_backend_error {
                    FailMode::Open => Ok(()),
                    FailMode::Closed => Err(GatewayError::service_unavailable(
                        "Rate limiting is unavailable (its Redis backend does not answer), and \
                         this gateway is set to refuse requests until it is back. Please retry \
                         shortly.",
                    )
                    .with_code("rate_limiter_unavailable")),
                }
            }
        }
    }

    /// The current state of some scopes without taking anything (`GET /api/v1/limits`); None
    /// when the backend does not answer.
    pub async fn peek(&self, scopes: Vec<ScopeAsk>) -> Option<Vec<ScopeStatus>> {
        let now = Utc::now();
        let ask = Ask {
            id: self.no_id.clone(),
            scopes,
            cost: 0,
            periods: Periods::at(now),
            now,
        };
        match &self.backend {
            Backend::Memory(memory) => {
                if ask.scopes.iter().any(ScopeAsk::has_budget) {
                    memory.seed_budgets(&ask).await;
                }
                Some(memory.peek(&ask))
            }
            Backend::Redis(redis) => match redis.peek(&ask).await {
                Ok(statuses) => Some(statuses),
                Err(e) => {
                    backend_error(&e);
                    None
                }
            },
        }
    }
}

impl Limits {
    /// Waits (bounded) for the settlements still on their way to Redis: called at shutdown,
    /// once every request has ended.
    pub async fn flush(&self) {
        if let Backend::Redis(redis) = &self.backend {
            redis.in_flight.close();
            let wait = redis.in_flight.wait();
            if tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .is_err()
            {
                tracing::warn!("some rate-limit settlements did not reach Redis before shutdown");
            }
        }
    }

    /// Settles the request's reservation with what it used (the limits plugin's
    /// `on_complete`). An answer whose client hung up before its usage came is settled at the
    /// reservation's worst case: an estimate from what the client read would let a client
    /// that hangs up early pay for less than it was served.
    pub fn settle(&self, ctx: &RequestCtx, completion: &Completion) {
        if let Some(Held(reservation)) = ctx.extensions.get::<Held>() {
            let mut cost = to_micros(completion.cost_usd);
            let unreported = completion.usage.is_none_or(|u| u.estimated);
            if completion.outcome == Outcome::ClientDisconnected
                && completion.status.is_success()
                && unreported
            {
                cost = cost.max(reservation.ask.cost);
            }
            reservation.settle(Actual {
                tokens: completion.usage.map_or(0, |u| u.total_tokens()),
                cost,
                periods: Periods::at(Utc::now()),
            });
        }
    }
}

/// The price each configured model's budget reservations use: the priciest of its targets'
/// (each priced as a request on it is: its upstream model's price, else the model's own), as
/// the target is chosen only after the limits, so the reservation assumes the dearest.
fn budget_prices(config: &Config, prices: &PriceTable) -> HashMap<String, Arc<ModelPrice>> {
    let weight = |p: &ModelPrice| p.input_per_mtok + p.output_per_mtok;
    config
        .models
        .iter()
        .filter_map(|model| {
            let price = model
                .targets
                .iter()
                .filter_map(|t| prices.find(&[&t.model, &model.name]))
                .max_by(|a, b| weight(a).total_cmp(&weight(b)))
                .or_else(|| prices.find(&[&model.name]))
                .cloned()?;
            Some((model.name.clone(), price))
        })
        .collect()
}

/// A request's reservation, kept in its context until `on_complete` settles it. Dropped
/// unsettled (which `on_complete` being called exactly once should rule out), it settles as
/// having used nothing, so a slot is never lost.
#[derive(Clone)]
struct Held(Arc<Reservation>);

struct Reservation {
    backend: Backend,
    ask: Arc<Ask>,
    settled: AtomicBool,
}

impl Reservation {
    fn settle(&self, actual: Actual) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        match &self.backend {
            Backend::Memory(memory) => memory.settle(&self.ask, &actual),
            Backend::Redis(redis) => {
                let (redis, ask) = (redis.clone(), self.ask.clone());
                // on_complete must not block; a runtime is there unless it is shutting down, and
                // then the lease expiry frees what this would have.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let tracker = redis.in_flight.clone();
                    let tracked = tracker.track_future(async move {
                        if let Err(e) = redis.settle(&ask, &actual).await {
                            backend_error(&e);
                        }
                    });
                    runtime.spawn(tracked);
                }
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled.load(Ordering::Acquire) {
            self.settle(Actual {
                tokens: 0,
                cost: 0,
                periods: Periods::at(Utc::now()),
            });
        }
    }
}

fn refusal_error(ask: &Ask, refusal: &Refusal, status: &ScopeStatus) -> GatewayError {
    let scope = &ask.scopes[refusal.scope];
    let whose = whose(scope.kind, &scope.id);
    let wait = headers::openai_duration(refusal.wait);
    let usd = |m: Micros| format!("${:.6}", to_usd(m));
    match refusal.limit {
        LimitKind::Requests => GatewayError::rate_limited(
            "requests",
            "rate_limit_exceeded",
            format!(
                "Rate limit reached for requests per minute (RPM) on {whose}: limit {}. Please try again in {wait}.",
                scope.rpm.unwrap_or(0)
            ),
        ),
        LimitKind::Tokens => GatewayError::rate_limited(
            "tokens",
            "rate_limit_exceeded",
            format!(
                "Rate limit reached for tokens per minute (TPM) on {whose}: limit {}, remaining {}, requested about {}. Please try again in {wait}.",
                scope.tpm.unwrap_or(0),
                status.tokens.map_or(0, |t| t.remaining.max(0)),
                scope.tokens
            ),
        ),
        LimitKind::Concurrency => GatewayError::rate_limited(
            "requests",
            "rate_limit_exceeded",
            format!(
                "Too many concurrent requests on {whose}: limit {} at a time. Please retry when one of them has finished.",
                scope.max_concurrent.unwrap_or(0)
            ),
        ),
        LimitKind::DailyBudget | LimitKind::MonthlyBudget => {
            let (period, budget, state) = if refusal.limit == LimitKind::DailyBudget {
                ("daily", scope.daily_budget, status.daily)
            } else {
                ("monthly", scope.monthly_budget, status.monthly)
            };
            let state = state.unwrap_or_default();
            GatewayError::rate_limited(
                "insufficient_quota",
                "insufficient_quota",
                format!(
                    "You exceeded the {period} budget of {whose}: {} per UTC {}, {} spent and {} held by requests in progress; this request may cost up to {}. It renews in {wait}.",
                    usd(budget.unwrap_or(0)),
                    if period == "daily" { "day" } else { "month" },
                    usd(state.spent),
                    usd(state.reserved),
                    usd(ask.cost),
                ),
            )
        }
    }
}

/// Whose limit a refusal names.
fn whose(kind: ScopeKind, id: &str) -> String {
    match kind {
        ScopeKind::Key => "this API key".to_string(),
        ScopeKind::User if id == ANONYMOUS_TOTAL => {
            "all callers without an API key together".to_string()
        }
        ScopeKind::User if id.starts_with("anon:") => {
            "your address (calling without an API key)".to_string()
        }
        ScopeKind::User => "your account".to_string(),
        ScopeKind::Model => format!("the model `{id}` (shared by all callers)"),
    }
}

/// A gate that lets a log line through at most every 10 s, counting what it held back.
pub struct LogGate {
    last: AtomicU64,
    held: AtomicU64,
}

impl LogGate {
    pub const fn new() -> LogGate {
        LogGate {
            last: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }
}

impl Default for LogGate {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) static BACKEND_ERRORS: LogGate = LogGate::new();
pub(crate) static STORE_ERRORS: LogGate = LogGate::new();

/// Runs `log` unless the gate let a line through in the last 10 seconds.
pub(crate) fn log_throttled(gate: &LogGate, log: impl FnOnce()) {
    const EVERY: u64 = 10;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let last = gate.last.load(Ordering::Relaxed);
    if now >= last + EVERY
        && gate
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        log();
    } else {
        gate.held.fetch_add(1, Ordering::Relaxed);
    }
}

fn backend_error(error: &redis_backend::BackendError) {
    metrics::counter!("gateway_ratelimit_backend_errors_total", "backend" => "redis").increment(1);
    log_throttled(&BACKEND_ERRORS, || {
        let held = BACKEND_ERRORS.held.swap(0, Ordering::Relaxed);
        tracing::error!(
            error = %error,
            similar_errors_not_logged = held,
            "the rate-limit backend (Redis) failed"
        );
    });
}
