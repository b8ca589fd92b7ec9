//! The `[pricing]` section: model prices (per million tokens, per audio minute) and where the
//! price table comes from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

// Raw

/// One model's prices in USD: per million tokens, and per audio minute for transcription.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    #[serde(default)]
    pub input_per_mtok: f64,
    #[serde(default)]
    pub output_per_mtok: f64,
    /// Cached prompt tokens; the input price when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_per_minute: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPricing {
    /// A TOML file of `[models."name"]` prices, read at start.
    file: Option<String>,
    /// Whether the built-in table of common models is used under the configured prices.
    use_defaults: bool,
    models: BTreeMap<String, ModelPrice>,
}

impl Default for RawPricing {
    fn default() -> Self {
        Self {
            file: None,
            use_defaults: true,
            models: BTreeMap::new(),
        }
    }
}

// Validated

#[derive(Debug, Clone)]
pub struct PricingConfig {
    pub file: Option<PathBuf>,
    pub use_defaults: bool,
    pub models: BTreeMap<String, ModelPrice>,
}

// Validation

pub(super) fn pricing(raw: RawPricing, problems: &mut Vec<String>) -> PricingConfig {
    for (name, price) in &raw.models {
        check_price(&format!("pricing.models.\"{name}\""), price, problems);
    }
    PricingConfig {
        file: raw.file.map(PathBuf::from),
        use_defaults: raw.use_defaults,
        models: raw.models,
    }
}

pub fn check_price(at: &str, price: &ModelPrice, problems: &mut Vec<String>) {
    let prices = [
        ("input_per_mtok", Some(price.input_per_mtok)),
        ("output_per_mtok", Some(price.output_per_mtok)),
        ("cached_input_per_mtok", price.cached_input_per_mtok),
        ("audio_per_minute", price.audio_per_minute),
    ];
    for (field, value) in prices {
        if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
            problems.push(format!("{at}.{field}: must be a number >= 0"));
        }
    }
}
