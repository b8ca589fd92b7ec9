//! Client-facing model names (and aliases) -> ordered upstream targets.
//!
//! Targets are tried in order when one cannot be reached before the first byte (a simple
//! fallback). Weighted choice, retries and health come with the routing issue.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::config::Config;
use crate::providers::Provider;

pub struct Target {
    pub provider: Arc<Provider>,
    /// The model name the provider knows.
    pub model: Arc<str>,
    /// `model` as a JSON string literal, spliced into request bodies that need it.
    pub model_json: Bytes,
}

pub struct ModelRoute {
    pub name: Arc<str>,
    pub targets: Vec<Target>,
    /// Set when every target's provider is switched off; requests then get a 503 saying why.
    pub unavailable: Option<String>,
}

pub struct Router {
    by_name: HashMap<Box<str>, Arc<ModelRoute>>,
    /// The `/v1/models` answer, serialised once at start.
    models_json: Bytes,
    model_entries: HashMap<Box<str>, Bytes>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: &'a [ModelEntry<'a>],
}

impl Router {
    /// Builds the table. Providers switched off in the config are skipped, each with one log line.
    pub fn build(config: &Config) -> anyhow::Result<Self> {
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
        let mut entries = Vec::new();
        for m in &config.models {
            let targets: Vec<Target> = m
                .targets
                .iter()
                .filter_map(|t| {
                    let provider = providers.get(t.provider.as_str())?;
                    Some(Target {
                        provider: provider.clone(),
                        model: Arc::from(t.model.as_str()),
                        model_json: Bytes::from(serde_json::to_vec(&t.model).ok()?),
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
                unavailable,
            });
            for name in std::iter::once(&m.name).chain(&m.aliases) {
                by_name.insert(Box::from(name.as_str()), route.clone());
                if route.unavailable.is_none() {
                    let owned_by = m.targets.first().map(|t| t.provider.as_str()).unwrap_or("");
                    entries.push((name.as_str(), owned_by));
                }
            }
        }

        let data: Vec<ModelEntry> = entries
            .iter()
            .map(|(id, owned_by)| ModelEntry {
                id,
                object: "model",
                created: 0,
                owned_by,
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
            by_name,
            models_json,
            model_entries,
        })
    }

    pub fn resolve(&self, model: &str) -> Option<&Arc<ModelRoute>> {
        self.by_name.get(model)
    }

    pub fn models_json(&self) -> Bytes {
        self.models_json.clone()
    }

    pub fn model_json(&self, id: &str) -> Option<Bytes> {
        self.model_entries.get(id).cloned()
    }
}
