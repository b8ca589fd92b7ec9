//! Client-facing model names (and aliases) -> upstream targets (deployments), and the state
//! that decides which target a request tries first: weights, requests in flight, recent
//! latency and passive health ([`breaker`]).

pub mod attempts;
pub mod breaker;
pub mod retry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::config::{Config, ModelPrice, RoutingConfig, Strategy};
use crate::pricing::PriceTable;
use crate::providers::Provider;
use breaker::{Breaker, BreakerSnapshot};

pub struct Target {
    pub provider: Arc<Provider>,
    /// The model name the provider knows.
    pub model: Arc<str>,
    /// `model` as a JSON string literal, spliced into request bodies that need it.
    pub model_json: Bytes,
    pub weight: u32,
    pub timeouts: Timeouts,
    pub state: Arc<TargetState>,
}

#[derive(Clone, Copy)]
pub struct Timeouts {
    /// Until the response headers.
    pub first_byte: Duration,
    /// Between two body chunks.
    pub idle: Duration,
    /// For the whole response, when limited.
    pub total: Option<Duration>,
}

/// What is known about one target at run time, shared with the responses it is serving.
pub struct TargetState {
    /// "provider/model", for logs and the health report.
    pub label: String,
    pub breaker: Breaker,
    in_flight: AtomicU32,
    max_in_flight: Option<u32>,
    /// Smoothed time to response headers, in microseconds; 0 until measured.
    latency_us: AtomicU64,
}

/// A slot in a target's concurrency limit, held until the response is finished.
pub struct Lease {
    state: Arc<TargetState>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lease {
    pub fn state(&self) -> &TargetState {
        &self.state
    }
}

impl TargetState {
    /// Takes a slot, or `None` when the target is at its `max_in_flight`.
    pub fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        let limit = self.max_in_flight.unwrap_or(u32::MAX);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(Lease {
            state: self.clone(),
        })
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn max_in_flight(&self) -> Option<u32> {
        self.max_in_flight
    }

    /// Folds one time-to-headers into the moving average (weight 1/5 for the newest).
    pub fn record_latency(&self, elapsed: Duration) {
        let sample = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let _ = self
            .latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    (old * 4 + sample) / 5
                })
            });
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }
}

pub struct ModelRoute {
    pub name: Arc<str>,
    pub targets: Vec<Target>,
    pub strategy: Strategy,
    /// Models tried, in order, once every target of this one failed.
    pub fallbacks: Vec<Arc<str>>,
    /// Set when every target's provider is switched off; requests then get a 503 saying why.
    pub unavailable: Option<String>,
}

impl ModelRoute {
    /// The order in which this request tries the targets.
    pub fn attempt_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        if order.len() < 2 {
            return order;
        }
        match self.strategy {
            Strategy::Priority => {}
            Strategy::Weighted => {
                // Weighted shuffle (Efraimidis-Spirakis): key = u^(1/w), largest first. The
                // first pick is proportional to weight, and the rest stay weighted for fallback.
                let mut keyed: Vec<(f64, usize)> = order
                    .iter()
                    .map(|&i| {
                        let u: f64 = rand::random::<f64>().max(f64::MIN_POSITIVE);
                        (u.powf(1.0 / f64::from(self.targets[i].weight)), i)
                    })
                    .collect();
                keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
                order = keyed.into_iter().map(|(_, i)| i).collect();
            }
            Strategy::LeastBusy => {
                // Ties broken at random so equal targets share the load.
                let offset = rand::random::<u32>() as usize % order.len();
                order.rotate_left(offset);
                order.sort_by_key(|&i| self.targets[i].state.in_flight());
            }
            Strategy::Latency => {
                order.sort_by_key(|&i| self.targets[i].state.latency());
            }
        }
        order
    }
}

/// One target's state, as `/health/ready` shows it.
#[derive(Serialize)]
pub struct TargetHealth {
    pub model: String,
    pub provider: String,
    pub upstream_model: String,
    pub in_flight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    #[serde(flatten)]
    pub breaker: BreakerSnapshot,
}

pub struct Router {
    pub routing: RoutingConfig,
    routes: Vec<Arc<ModelRoute>>,
    by_name: HashMap<Box<str>, Arc<ModelRoute>>,
    /// The `/v1/models` answer, serialised once at start.
    models_json: Bytes,
    model_entries: HashMap<Box<str>, Bytes>,
    /// The callable models with their prices, for `GET /models`.
    catalog: Vec<CatalogModel>,
}

/// One `/v1/models` entry: OpenAI's fields, then what the price table knows about the model.
#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pricing: Option<ModelPricing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_window: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: &'a [ModelEntry<'a>],
}

/// A model's prices as the listings show them: USD per million tokens, and per audio minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelPricing {
    pub currency: &'static str,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// What cached prompt tokens cost (the input price when the table sets none).
    pub cached_input_per_mtok: f64,
    /// Transcription by the minute; null for models priced by token only.
    pub audio_per_minute: Option<f64>,
}

impl ModelPricing {
    fn from_price(price: &ModelPrice) -> Self {
        Self {
            currency: "USD",
            input_per_mtok: price.input_per_mtok,
            output_per_mtok: price.output_per_mtok,
            cached_input_per_mtok: price.cached_input_per_mtok.unwrap_or(price.input_per_mtok),
            audio_per_minute: price.audio_per_minute,
        }
    }
}

/// One callable model as the app catalog (`GET /models`) lists it: one entry per configured
/// model, its aliases inside.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogModel {
    pub id: String,
    /// The provider of the first target.
    pub provider: String,
    pub aliases: Vec<String>,
    /// chat, embedding or transcription: from the price (audio by the minute, or no output
    /// price) and the names, chat when nothing says otherwise.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Null when the price table does not know the model.
    pub pricing: Option<ModelPricing>,
    pub context_window: Option<u64>,
    pub max_output_tokens: Option<u64>,
}

/// What kind of model `names` (the model's, then its upstream ones) priced at `price` is.
fn model_kind(names: &[&str], price: Option<&ModelPrice>) -> &'static str {
    let named = |words: &[&str]| {
        names.iter().any(|n| {
            let n = n.to_ascii_lowercase();
            words.iter().any(|w| n.contains(w))
        })
    };
    if price.is_some_and(|p| p.audio_per_minute.is_some()) || named(&["whisper", "transcribe"]) {
        "transcription"
    } else if named(&["embed"])
        || price.is_some_and(|p| p.output_per_mtok == 0.0 && p.input_per_mtok > 0.0)
    {
        "embedding"
    } else {
        "chat"
    }
}

impl Router {
    /// Builds the table, with the model listings priced from `config.pricing`.
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_prices(config, &PriceTable::load(&config.pricing)?)
    }

    /// Builds the table. Providers switched off in the config are skipped, each with one log
    /// line. The model listings carry each model's price from `prices`, when it knows one.
    pub fn build_with_prices(config: &Config, prices: &PriceTable) -> anyhow::Result<Self> {
        let mut providers = HashMap::new();
        let mut skipped = HashMap::new();
        for p in &config.providers {
            if let Some(reason) = &p.disabled_reason {
                tracing::warn!(provider = %p.name, "provider skipped: {reason}");
                skipped.insert(p.name.as_str(), reason.as_str());
                continue;
            }
            let provider = Provider::from_config(p)
                .map_err(|e| anyhow::anyhow!("provider {}: bad base_url: {e}", p.name))?;
            providers.insert(p.name.as_str(), Arc::new(provider));
        }

        let mut by_name = HashMap::new();
        let mut routes = Vec::new();
        let mut entries = Vec::new();
        let mut catalog = Vec::new();
        let routing = &config.routing;
        for m in &config.models {
            let targets: Vec<Target> = m
                .targets
                .iter()
                .filter_map(|t| {
                    let provider = providers.get(t.provider.as_str())?;
                    let label = format!("{}/{}", t.provider, t.model);
                    Some(Target {
                        provider: provider.clone(),
                        model: Arc::from(t.model.as_str()),
                        model_json: Bytes::from(serde_json::to_vec(&t.model).ok()?),
                        weight: t.weight.max(1),
                        timeouts: Timeouts {
                            first_byte: t.timeout.unwrap_or(provider.timeout),
                            idle: t.idle_timeout.unwrap_or(provider.idle_timeout),
                            total: t.total_timeout.or(provider.total_timeout),
                        },
                        state: Arc::new(TargetState {
                            breaker: Breaker::new(
                                label.clone(),
                                routing.failure_threshold,
                                routing.cooldown,
                            ),
                            label,
                            in_flight: AtomicU32::new(0),
                            max_in_flight: t.max_in_flight.or(provider.max_in_flight),
                            latency_us: AtomicU64::new(0),
                        }),
                    })
                })
                .collect();
            let unavailable = targets.is_empty().then(|| {
                let reasons: Vec<String> = m
                    .targets
                    .iter()
                    .map(|t| {
                        let why = skipped
                            .get(t.provider.as_str())
                            .copied()
                            .unwrap_or("not usable");
                        format!("provider {} is switched off ({why})", t.provider)
                    })
                    .collect();
                let reason = reasons.join("; ");
                tracing::debug!(model = %m.name, "model unavailable: {reason}");
                reason
            });
            let route = Arc::new(ModelRoute {
                name: Arc::from(m.name.as_str()),
                targets,
                strategy: m.strategy,
                fallbacks: m.fallbacks.iter().map(|f| Arc::from(f.as_str())).collect(),
                unavailable,
            });
            routes.push(route.clone());
            let owned_by = m.targets.first().map(|t| t.provider.as_str()).unwrap_or("");
            // The price: under the model's name, then its targets' upstream names.
            let mut names: Vec<&str> = vec![m.name.as_str()];
            names.extend(m.targets.iter().map(|t| t.model.as_str()));
            let price = prices.find(&names);
            if route.unavailable.is_none() {
                catalog.push(CatalogModel {
                    id: m.name.clone(),
                    provider: owned_by.to_string(),
                    aliases: m.aliases.clone(),
                    kind: model_kind(&names, price.map(|p| &**p)),
                    pricing: price.map(|p| ModelPricing::from_price(p)),
                    context_window: price.and_then(|p| p.context_window),
                    max_output_tokens: price.and_then(|p| p.max_output_tokens),
                });
            }
            for name in std::iter::once(&m.name).chain(&m.aliases) {
                by_name.insert(Box::from(name.as_str()), route.clone());
                if route.unavailable.is_none() {
                    // An alias priced under its own name wins over the model's price.
                    let price = prices.find(&[name.as_str()]).or(price);
                    entries.push((name.as_str(), owned_by, price));
                }
            }
        }

        let data: Vec<ModelEntry> = entries
            .iter()
            .map(|(id, owned_by, price)| ModelEntry {
                id,
                object: "model",
                created: 0,
                owned_by,
                pricing: price.map(|p| ModelPricing::from_price(p)),
                context_window: price.and_then(|p| p.context_window),
                max_output_tokens: price.and_then(|p| p.max_output_tokens),
            })
            .collect();
        let models_json = Bytes::from(serde_json::to_vec(&ModelList {
            object: "list",
            data: &data,
        })?);
        let model_entries = data
            .iter()
            .map(|e| Ok((Box::from(e.id), Bytes::from(serde_json::to_vec(e)?))))
            .collect::<Result<_, serde_json::Error>>()?;
        Ok(Self {
            routing: config.routing.clone(),
            routes,
            by_name,
            models_json,
            model_entries,
            catalog,
        })
    }

    pub fn resolve(&self, model: &str) -> Option<&Arc<ModelRoute>> {
        self.by_name.get(model)
    }

    /// Every target's health, for `/health/ready`.
    pub fn health(&self) -> Vec<TargetHealth> {
        self.routes
            .iter()
            .flat_map(|route| {
                route.targets.iter().map(|t| TargetHealth {
                    model: route.name.to_string(),
                    provider: t.provider.name.to_string(),
                    upstream_model: t.model.to_string(),
                    in_flight: t.state.in_flight(),
                    max_in_flight: t.state.max_in_flight(),
                    breaker: t.state.breaker.snapshot(),
                })
            })
            .collect()
    }

    pub fn models_json(&self) -> Bytes {
        self.models_json.clone()
    }

    pub fn model_json(&self, id: &str) -> Option<Bytes> {
        self.model_entries.get(id).cloned()
    }

    /// The callable models (not those whose providers are all switched off), in config order.
    pub fn catalog(&self) -> &[CatalogModel] {
        &self.catalog
    }
}
