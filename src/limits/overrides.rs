//! The limits of one key or user: its override (admin API, `limit_override` table) over its tier
//! (the override's, else `limits.key_tier` / `limits.user_tier`). Resolved sets are cached for
//! `identity.principal_cache_ttl`, so the hot path asks the database once per subject per TTL;
//! an override written through this replica's API is seen at once (the entry is invalidated),
//! other replicas see it within the TTL.

use std::sync::Arc;

use moka::sync::Cache;

use super::plan::ScopeKind;
use crate::config::{LimitSet, LimitsConfig};
use crate::store::limit_overrides::{LimitOverride, Subject};
use crate::store::Store;

pub struct Overrides {
    store: Store,
    cache: Cache<(ScopeKind, Arc<str>), Arc<LimitSet>>,
}

/// A subject's effective limits and the tier they start from.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub tier: Option<String>,
    pub limits: LimitSet,
}

/// The effective limits of a key or user with this override (None: no override). Without a
/// `[limits]` section there are no tiers and nothing is enforced, but the override still reads.
pub fn effective(
    config: Option<&LimitsConfig>,
    kind: ScopeKind,
    over: Option<&LimitOverride>,
) -> Effective {
    let default_tier = config.and_then(|c| match kind {
        ScopeKind::Key => c.key_tier.clone(),
        ScopeKind::User => c.user_tier.clone(),
        ScopeKind::Model => None,
    });
    // A tier named by an override but since removed from the config falls back to the default.
    let tier = over
        .and_then(|o| o.tier.clone())
        .filter(|t| config.is_some_and(|c| c.tiers.contains_key(t)))
        .or(default_tier);
    let base = config.map(|c| c.tier(tier.as_deref())).unwrap_or_default();
    let limits = over.map_or(base.clone(), |o| o.limit_set().over(&base));
    Effective { tier, limits }
}

impl Overrides {
    pub fn new(store: Store, ttl: std::time::Duration) -> Overrides {
        Overrides {
            store,
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The limits of the key or user `id` (cached).
    pub async fn limits(
        &self,
        config: &LimitsConfig,
        kind: ScopeKind,
        id: &Arc<str>,
    ) -> Arc<LimitSet> {
        let cache_key = (kind, id.clone());
        if let Some(set) = self.cache.get(&cache_key) {
            return set;
        }
        let subject = match kind {
            ScopeKind::Key => Subject::ApiKey(id),
            _ => Subject::User(id),
        };
        match self.store.limit_override(subject).await {
            Ok(over) => {
                let set = Arc::new(effective(Some(config), kind, over.as_ref()).limits);
                self.cache.insert(cache_key, set.clone());
                set
            }
            Err(e) => {
                // The tier's limits still apply; the next request asks again.
                super::log_throttled(
                    &super::STORE_ERRORS,
                    || tracing::warn!(error = %e, "reading a limit override failed; using the tier's limits"),
                );
                Arc::new(effective(Some(config), kind, None).limits)
            }
        }
    }

    /// Forgets a subject's cached limits (its override changed).
    pub fn invalidate(&self, kind: ScopeKind, id: &str) {
        self.cache.invalidate(&(kind, Arc::from(id)));
    }
}
