//! API keys: made, listed and revoked by their owner. The key itself is shown once, at
//! creation; only its hash and a prefix are kept.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{tokens, Identity, API_KEY_PREFIX};
use crate::error::GatewayError;
use crate::store::api_keys::{ApiKey, NewApiKey};

/// How many characters of a key are kept to recognise it: `sk-` plus 8.
const SHOWN_PREFIX: usize = 11;

pub struct KeyRequest {
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_models: Option<Vec<String>>,
    /// The admin scope; the caller checked that the owner is an admin.
    pub admin: bool,
}

#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub allowed_models: Option<Vec<String>>,
    pub admin: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        KeyView {
            allowed_models: key.models(),
            admin: key.admin,
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
            created_at: key.created_at,
        }
    }
}

/// The answer to a creation: the only time the whole key is shown.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

impl Identity {
    pub async fn create_api_key(
        &self,
        user_id: &str,
        request: KeyRequest,
    ) -> Result<CreatedKey, GatewayError> {
        let name = request.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(GatewayError::invalid_field(
                "name",
                "must be 1 to 100 characters",
            ));
        }
        if let Some(at) = request.expires_at {
            if at <= Utc::now() {
                return Err(GatewayError::invalid_field(
                    "expires_at",
                    "must be in the future",
                ));
            }
        }
        if let Some(models) = &request.allowed_models {
            if models.len() > 100 || models.iter().any(|m| m.trim().is_empty()) {
                return Err(GatewayError::invalid_field(
                    "allowed_models",
                    "must be at most 100 non-empty model names",
                ));
            }
        }
        let key = tokens::opaque_token(API_KEY_PREFIX);
        let prefix: String = key.chars().take(SHOWN_PREFIX).collect();
        let created = self
            .store
            .create_api_key(&NewApiKey {
                user_id,
                name,
                prefix: &prefix,
                key_hash: &tokens::token_hash(&key),
                allowed_models: request.allowed_models.as_deref(),
                admin: request.admin,
                expires_at: request.expires_at,
            })
            .await?;
        Ok(CreatedKey {
            key,
            view: created.into(),
        })
    }

    pub async fn list_api_keys(
        &self,
        user_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<KeyView>, i64), GatewayError> {
        let (keys, total) = self.store.list_api_keys(user_id, limit, offset).await?;
        Ok((keys.into_iter().map(KeyView::from).collect(), total))
    }

    /// Revokes one of the user's keys; another user's key id is simply not found.
    pub async fn revoke_api_key(&self, user_id: &str, key_id: &str) -> Result<(), GatewayError> {
        let hash = self
            .store
            .revoke_api_key(key_id, user_id)
            .await?
            .ok_or(GatewayError::resource_not_found())?;
        self.forget_key(&hash);
        Ok(())
    }
}
