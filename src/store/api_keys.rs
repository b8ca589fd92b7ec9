//! API keys for SDKs on /v1. Only a SHA-256 of each key is kept (keys are long and random, so a
//! slow hash adds nothing), with a short prefix to recognise it in lists.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{new_id, now, with_pool, Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    /// A JSON array of model names; NULL allows every model.
    #[serde(skip)]
    pub allowed_models: Option<String>,
    /// Made with the admin scope: the key may use admin endpoints (when its owner is an admin).
    pub admin: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiKey {
    pub fn models(&self) -> Option<Vec<String>> {
        self.allowed_models
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
    }
}

/// A key found by its hash, with what its owner is allowed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyOwner {
    #[sqlx(flatten)]
    pub key: ApiKey,
    pub role: Option<String>,
    pub banned: Option<bool>,
}

pub struct NewApiKey<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub allowed_models: Option<&'a [String]>,
    pub admin: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

const KEY_COLUMNS: &str =
    "k.id, k.user_id, k.name, k.prefix, k.allowed_models, k.admin, k.expires_at, k.last_used_at, k.revoked_at, k.created_at";

impl Store {
    /// The user who owns a key (revoked or not), if the key exists.
    pub async fn api_key_owner(&self, key_id: &str) -> StoreResult<Option<String>> {
        let sql = "SELECT user_id FROM api_key WHERE id = $1";
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(key_id)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn create_api_key(&self, key: &NewApiKey<'_>) -> StoreResult<ApiKey> {
        let sql = "INSERT INTO api_key (id, user_id, name, prefix, key_hash, allowed_models, expires_at, created_at, admin)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   RETURNING id, user_id, name, prefix, allowed_models, admin, expires_at, last_used_at, revoked_at, created_at";
        let models = key
            .allowed_models
            .map(|m| serde_json::Value::from(m.to_vec()).to_string());
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(new_id())
            .bind(key.user_id)
            .bind(key.name)
            .bind(key.prefix)
            .bind(key.key_hash)
            .bind(models)
            .bind(key.expires_at)
            .bind(now())
            .bind(key.admin)
            .fetch_one(pool)
            .await)?)
    }

    /// A user's keys, newest first, revoked ones included (they show when they were revoked).
    pub async fn list_api_keys(
        &self,
        user_id: &str,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<ApiKey>, i64)> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_key k WHERE k.user_id = $1 ORDER BY k.created_at DESC, k.id LIMIT $2 OFFSET $3"
        );
        let count = "SELECT COUNT(*) FROM api_key WHERE user_id = $1";
        with_pool!(self, pool => {
            let keys = sqlx::query_as(&sql).bind(user_id).bind(limit).bind(offset).fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar(count).bind(user_id).fetch_one(pool).await?;
            Ok((keys, total))
        })
    }

    /// Revokes one of `user_id`'s keys; returns its hash (to evict it from caches), or None when
    /// the user has no such live key.
    pub async fn revoke_api_key(&self, id: &str, user_id: &str) -> StoreResult<Option<String>> {
        let sql = "UPDATE api_key SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING key_hash";
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(id)
            .bind(user_id)
            .bind(now())
            .fetch_optional(pool)
            .await)?)
    }

    /// Revokes every live key of a user (a password reset); returns their hashes for the caches.
    pub async fn revoke_user_api_keys(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let sql = "UPDATE api_key SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING key_hash";
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(user_id)
            .bind(now())
            .fetch_all(pool)
            .await)?)
    }

    /// Hashes of a user's keys (to evict them from caches when the user goes).
    pub async fn api_key_hashes_of_user(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let sql = "SELECT key_hash FROM api_key WHERE user_id = $1";
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql).bind(user_id).fetch_all(pool).await)?)
    }

    /// A live (not revoked) key by its hash, with its owner's role. Expiry is checked by the
    /// caller, so a cached key expires on time too.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<KeyOwner>> {
        let sql = format!(
            r#"SELECT {KEY_COLUMNS}, u."role", u."banned" FROM api_key k JOIN "user" u ON u."id" = k.user_id
               WHERE k.key_hash = $1 AND k.revoked_at IS NULL"#
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(key_hash).fetch_optional(pool).await)?,
        )
    }
}
