//! `[[models]]`: the model names clients ask for, their aliases, targets (a provider and its
//! model name), the strategy that spreads requests over them and their fallbacks.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    fallbacks: Vec<String>,
    targets: Vec<RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    provider: String,
    model: Option<String>,
    #[serde(default = "default_weight")]
    weight: u32,
    max_in_flight: Option<u32>,
    timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
}

/// How a model spreads requests over its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Random, in proportion to the targets' weights.
    Weighted,
    /// The order written, the next one only when the one before fails.
    Priority,
    /// The target with the fewest requests in flight.
    LeastBusy,
    /// The target with the lowest recent time to response headers.
    Latency,
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub name: String,
    pub aliases: Vec<String>,
    pub strategy: Strategy,
    /// Other models tried, in order, when every target of this one failed.
    pub fallbacks: Vec<String>,
    pub targets: Vec<TargetConfig>,
}

/// One deployment of a model. Unset limits and timeouts come from the provider.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub provider: String,
    pub model: String,
    pub weight: u32,
    pub max_in_flight: Option<u32>,
    pub timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub total_timeout: Option<Duration>,
}

pub(super) fn models(
    raw: Vec<RawModel>,
    provider_names: &HashSet<String>,
    problems: &mut Vec<String>,
) -> Vec<ModelConfig> {
    let mut models = Vec::new();
    let mut model_names = HashSet::new();
    for (i, m) in raw.into_iter().enumerate() {
        let at = format!("models[{i}]");
        if m.name.trim().is_empty() {
            problems.push(format!("{at}.name: must not be empty"));
        }
        for (j, name) in std::iter::once(&m.name).chain(&m.aliases).enumerate() {
            if !model_names.insert(name.clone()) {
                let key = if j == 0 {
                    format!("{at}.name")
                } else {
                    format!("{at}.aliases[{}]", j - 1)
                };
                problems.push(format!(
                    "{key}: the model name \"{name}\" is already used by another model or alias"
                ));
            }
        }
        if m.targets.is_empty() {
            problems.push(format!(
                "{at}.targets: a model needs at least one target (hint: targets = [{{ provider = \"openai\", model = \"{}\" }}])",
                m.name
            ));
        }
        let mut targets = Vec::new();
        for (j, t) in m.targets.into_iter().enumerate() {
            if !provider_names.contains(&t.provider) {
                let mut known: Vec<_> = provider_names.iter().map(String::as_str).collect();
                known.sort_unstable();
                problems.push(format!(
                    "{at}.targets[{j}].provider: no provider named \"{}\" (known: {})",
                    t.provider,
                    if known.is_empty() {
                        "none; add a [[providers]] table".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            let target_at = format!("{at}.targets[{j}]");
            if t.weight == 0 {
                problems.push(format!(
                    "{target_at}.weight: must be at least 1 (remove the target to take it out)"
                ));
            }
            let positive = |field: &str, value: Option<u64>, problems: &mut Vec<String>| {
                if value == Some(0) {
                    problems.push(format!("{target_at}.{field}: must be greater than 0"));
                }
                value.map(Duration::from_millis)
            };
            let timeout = positive("timeout_ms", t.timeout_ms, problems);
            let idle_timeout = positive("idle_timeout_ms", t.idle_timeout_ms, problems);
            let total_timeout = positive("total_timeout_ms", t.total_timeout_ms, problems);
            if t.max_in_flight == Some(0) {
                problems.push(format!("{target_at}.max_in_flight: must be greater than 0"));
            }
            targets.push(TargetConfig {
                model: t.model.unwrap_or_else(|| m.name.clone()),
                provider: t.provider,
                weight: t.weight,
                max_in_flight: t.max_in_flight,
                timeout,
                idle_timeout,
                total_timeout,
            });
        }
        let strategy = match m.strategy.as_deref() {
            None | Some("weighted") => Strategy::Weighted,
            Some("priority") => Strategy::Priority,
            Some("least_busy") => Strategy::LeastBusy,
            Some("latency") => Strategy::Latency,
            Some(other) => {
                problems.push(format!(
                    "{at}.strategy: unknown strategy \"{other}\" (known: weighted, priority, least_busy, latency)"
                ));
                Strategy::Weighted
            }
        };
        models.push(ModelConfig {
            name: m.name,
            aliases: m.aliases,
            strategy,
            fallbacks: m.fallbacks,
            targets,
        });
    }

    // Fallbacks name models (or aliases) defined anywhere in the file.
    for (i, m) in models.iter().enumerate() {
        for (j, fallback) in m.fallbacks.iter().enumerate() {
            if !model_names.contains(fallback) {
                problems.push(format!(
                    "models[{i}].fallbacks[{j}]: no model named \"{fallback}\""
                ));
            } else if *fallback == m.name || m.aliases.contains(fallback) {
                problems.push(format!(
                    "models[{i}].fallbacks[{j}]: a model cannot fall back to itself"
                ));
            }
        }
    }

    models
}
