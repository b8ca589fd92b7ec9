//! Limit overrides per user and per API key (the admin API writes them; the limits plugin reads
//! them through a cache), and the spend already recorded for a budget's scope.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{new_id, now, with_pool, Store, StoreResult};
use crate::config::LimitSet;
use crate::context::ScopeKind;

/// Whose override: one user (all their keys and sessions) or one API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    User(&'a str),
    ApiKey(&'a str),
}

impl Subject<'_> {
    fn column(self) -> &'static str {
        match self {
            Subject::User(_) => "user_id",
            Subject::ApiKey(_) => "api_key_id",
        }
    }

    fn id(&self) -> &str {
        match self {
            Subject::User(id) | Subject::ApiKey(id) => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct LimitOverride {
    #[serde(skip)]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    pub tier: Option<String>,
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub daily_budget_usd: Option<f64>,
    pub monthly_budget_usd: Option<f64>,
    pub updated_at: DateTime<Utc>,
}

impl LimitOverride {
    /// The limits it sets itself (its tier's are added by the caller).
    pub fn limit_set(&self) -> LimitSet {
        let count = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        LimitSet {
            requests_per_minute: count(self.requests_per_minute),
            tokens_per_minute: count(self.tokens_per_minute),
            max_concurrent: count(self.max_concurrent),
            daily_budget_usd: self.daily_budget_usd,
            monthly_budget_usd: self.monthly_budget_usd,
        }
    }
}

const COLUMNS: &str = "id, user_id, api_key_id, tier, requests_per_minute, tokens_per_minute, \
                       max_concurrent, daily_budget_usd, monthly_budget_usd, updated_at";

fn signed(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl Store {
    pub async fn limit_override(&self, subject: Subject<'_>) -> StoreResult<Option<LimitOverride>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM limit_override WHERE {} = $1",
            subject.column()
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(subject.id())
            .fetch_optional(pool)
            .await)?)
    }

    /// Sets (replacing) the override of `subject`.
    pub async fn put_limit_override(
        &self,
        subject: Subject<'_>,
        tier: Option<&str>,
        set: &LimitSet,
    ) -> StoreResult<LimitOverride> {
        let column = subject.column();
        let sql = format!(
            "INSERT INTO limit_override (id, {column}, tier, requests_per_minute, tokens_per_minute,
                 max_concurrent, daily_budget_usd, monthly_budget_usd, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT ({column}) DO UPDATE SET tier = excluded.tier,
                 requests_per_minute = excluded.requests_per_minute,
                 tokens_per_minute = excluded.tokens_per_minute,
                 max_concurrent = excluded.max_concurrent,
                 daily_budget_usd = excluded.daily_budget_usd,
                 monthly_budget_usd = excluded.monthly_budget_usd,
                 updated_at = excluded.updated_at
             RETURNING {COLUMNS}"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(new_id())
            .bind(subject.id())
            .bind(tier)
            .bind(signed(set.requests_per_minute))
            .bind(signed(set.tokens_per_minute))
            .bind(signed(set.max_concurrent))
            .bind(set.daily_budget_usd)
            .bind(set.monthly_budget_usd)
            .bind(now())
            .fetch_one(pool)
            .await)?)
    }

    /// Removes the override of `subject`; false when it had none.
    pub async fn delete_limit_override(&self, subject: Subject<'_>) -> StoreResult<bool> {
        let sql = format!("DELETE FROM limit_override WHERE {} = $1", subject.column());
        let deleted = with_pool!(self, pool => sqlx::query(&sql)
            .bind(subject.id())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(deleted > 0)
    }
    /// USD recorded as spent by a scope since `day_start` and since `month_start` (the usage
    /// records), so an in-process budget survives a restart.
    pub async fn spend_since(
        &self,
        kind: ScopeKind,
        id: &str,
        day_start: DateTime<Utc>,
        month_start: DateTime<Utc>,
    ) -> StoreResult<(f64, f64)> {
        let column = match kind {
            ScopeKind::Key => "api_key_id",
            ScopeKind::User => "user_id",
            ScopeKind::Model => "model",
        };
        let sql = format!(
            "SELECT COALESCE(SUM(CASE WHEN created_at >= $2 THEN cost_usd ELSE 0.0 END), 0.0),
                    COALESCE(SUM(cost_usd), 0.0)
             FROM usage_record WHERE {column} = $1 AND created_at >= $3"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, (f64, f64)>(&sql)
            .bind(id)
            .bind(day_start)
            .bind(month_start)
            .fetch_one(pool)
            .await)?,
        )
    }
}
