//! The price table: USD per million tokens (and per audio minute) for each model, from the
//! built-in defaults, a pricing file and `[pricing.models]` in `gateway.toml`, later ones
//! winning. Costs of requests and the worst case a budget reserves are computed here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use crate::config::{ModelPrice, PricingConfig};
use crate::usage::TokenUsage;

/// The built-in prices of common models (USD, list prices; see the file's header).
const DEFAULT_PRICES: &str = include_str!("pricing/defaults.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    models: BTreeMap<String, ModelPrice>,
}

#[derive(Debug, Default)]
pub struct PriceTable {
    prices: HashMap<String, Arc<ModelPrice>>,
}

impl PriceTable {
    pub fn load(config: &PricingConfig) -> anyhow::Result<PriceTable> {
        let mut table = PriceTable::default();
        if config.use_defaults {
            table.extend(parse(DEFAULT_PRICES, "built-in prices")?);
        }
        if let Some(path) = &config.file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("pricing.file {}: {e}", path.display()))?;
            table.extend(parse(&text, &path.display().to_string())?);
        }
        table.extend(config.models.clone());
        Ok(table)
    }

    fn extend(&mut self, prices: BTreeMap<String, ModelPrice>) {
        for (name, price) in prices {
            self.prices.insert(name, Arc::new(price));
        }
    }

    /// The price of the first of `names` the table knows (the gateway's model name, then the
    /// provider's), trying each also without a `provider/` prefix and a date suffix.
    pub fn find(&self, names: &[&str]) -> Option<&Arc<ModelPrice>> {
        names.iter().find_map(|name| {
            self.prices
                .get(*name)
                .or_else(|| self.prices.get(base_name(name)))
        })
    }

    /// What `usage` cost at the price of the target used: its upstream model's, else the
    /// model's the request was served as; 0 when neither is priced.
    pub fn request_cost(
        &self,
        model: Option<&str>,
        upstream: Option<&str>,
        usage: &TokenUsage,
    ) -> f64 {
        // The target actually used sets the price: its upstream model's, else the model's.
        [upstream, model]
            .into_iter()
            .flatten()
            .find_map(|name| self.find(&[name]))
            .map_or(0.0, |price| price.cost(usage))
    }
}

/// `openai/gpt-4o-2024-08-06` -> `gpt-4o`: the name a price table lists.
fn base_name(name: &str) -> &str {
    let name = name.rsplit_once('/').map_or(name, |(_, n)| n);
    // A trailing -YYYY-MM-DD or -YYYYMMDD date stamp.
    let bytes = name.as_bytes();
    let is_date = |s: &[u8]| s.iter().all(|b| b.is_ascii_digit() || *b == b'-');
    for cut in [11usize, 9] {
        if bytes.len() > cut && bytes[bytes.len() - cut] == b'-' {
            let tail = &bytes[bytes.len() - cut + 1..];
            if is_date(tail) && tail.iter().filter(|b| b.is_ascii_digit()).count() == 8 {
                return &name[..name.len() - cut];
            }
        }
    }
    name
}

fn parse(text: &str, source: &str) -> anyhow::Result<BTreeMap<String, ModelPrice>> {
    let file: PriceFile =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{source}: {}", e.to_string().trim()))?;
    let mut problems = Vec::new();
    for (name, price) in &file.models {
        crate::config::check_price(
            &format!("{source}: models.\"{name}\""),
            price,
            &mut problems,
        );
    }
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    Ok(file.models)
}

impl ModelPrice {
    /// What `usage` costs at these prices, in USD.
    pub fn cost(&self, usage: &TokenUsage) -> f64 {
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let uncached = usage.prompt_tokens - cached;
        let cached_price = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        let tokens = uncached as f64 * self.input_per_mtok
            + cached as f64 * cached_price
            + usage.completion_tokens as f64 * self.output_per_mtok;
        let audio = self.audio_per_minute.unwrap_or(0.0) * usage.audio_seconds / 60.0;
        tokens / 1_000_000.0 + audio
    }

    /// The most a request could cost: every prompt token at the input price and the whole
    /// output allowance at the output price.
    pub fn worst_case(&self, prompt_tokens: u64, max_output_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_per_mtok
            + max_output_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: f64) -> ModelPrice {
        ModelPrice {
            input_per_mtok: input,
            output_per_mtok: output,
            ..ModelPrice::default()
        }
    }

    #[test]
    fn cost_splits_cached_tokens() {
        let p = ModelPrice {
            cached_input_per_mtok: Some(1.25),
            ..price(2.5, 10.0)
        };
        let usage = TokenUsage {
            prompt_tokens: 1_000_000,
            cached_tokens: 400_000,
            completion_tokens: 100_000,
            ..TokenUsage::default()
        };
        let cost = p.cost(&usage);
        assert!(
            (cost - (0.6 * 2.5 + 0.4 * 1.25 + 1.0)).abs() < 1e-9,
            "{cost}"
        );
    }

    #[test]
    fn audio_minutes() {
        let p = ModelPrice {
            audio_per_minute: Some(0.006),
            ..ModelPrice::default()
        };
        let usage = TokenUsage {
            audio_seconds: 90.0,
            ..TokenUsage::default()
        };
        assert!((p.cost(&usage) - 0.009).abs() < 1e-12);
    }

    #[test]
    fn lookup_by_base_name() {
        let mut table = PriceTable::default();
        table.extend(BTreeMap::from([("gpt-4o".to_string(), price(2.5, 10.0))]));
        assert!(table.find(&["openai/gpt-4o-2024-08-06"]).is_some());
        assert!(table.find(&["gpt-4o-20240806"]).is_some());
        assert!(table.find(&["unknown", "gpt-4o"]).is_some());
        assert!(table.find(&["gpt-4"]).is_none());
        assert_eq!(base_name("claude-3-5-haiku-20241022"), "claude-3-5-haiku");
        assert_eq!(base_name("gpt-4o-mini"), "gpt-4o-mini");
    }

    #[test]
    fn defaults_parse() {
        let table = PriceTable::load(&PricingConfig {
            file: None,
            use_defaults: true,
            models: BTreeMap::new(),
        })
        .expect("defaults");
        assert!(table.find(&["gpt-4o"]).is_some());
    }
}
