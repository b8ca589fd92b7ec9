//! API keys for /v1: created, listed and revoked by a signed-in user for themselves, or by an
//! admin (or the master key) for the user they name.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::access::acting_for;
use crate::context::{Principal, PrincipalKind};
use crate::error::GatewayError;
use crate::identity::api_keys::{CreatedKey, KeyRequest, KeyView};
use crate::state::AppState;

const NO_OWN_KEYS: &str = "the master key owns no keys: name the user_id to act for";

/// What a new key is to be: its name, an expiry (a time or a number of days, not both), the
/// models it may call, and whose it is (admins only).
#[derive(Debug, Deserialize)]
pub struct NewKey {
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub expires_in_days: Option<u32>,
    pub allowed_models: Option<Vec<String>>,
    pub user_id: Option<String>,
    /// The admin scope: the key may use admin endpoints. Only for an admin's own keys.
    #[serde(default)]
    pub admin: bool,
}

pub struct Keys<'a> {
    state: &'a AppState,
}

impl<'a> Keys<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    pub async fn create(
        &self,
        caller: &Principal,
        key: NewKey,
    ) -> Result<CreatedKey, GatewayError> {
        let user_id = owner(caller, key.user_id.as_deref())?;
        let Some(owner) = self.state.store.user_by_id(&user_id).await? else {
            return Err(GatewayError::resource_not_found());
        };
        if key.admin && !(owner.is_admin() && caller.is_admin()) {
            return Err(GatewayError::invalid_field(
                "admin",
                "only an admin may make a key with the admin scope, and only for an admin",
            ));
        }
        let expires_at = expiry(key.expires_at, key.expires_in_days)?;
        self.state
            .identity
            .create_api_key(
                &user_id,
                KeyRequest {
                    name: key.name,
                    expires_at,
                    allowed_models: key.allowed_models,
                    admin: key.admin,
                },
            )
            .await
    }

    pub async fn list(
        &self,
        caller: &Principal,
        user_id: Option<&str>,
        (limit, offset): (i64, i64),
    ) -> Result<(Vec<KeyView>, i64), GatewayError> {
        let user_id = owner(caller, user_id)?;
        self.state
            .identity
            .list_api_keys(&user_id, limit, offset)
            .await
    }

    pub async fn revoke(
        &self,
        caller: &Principal,
        user_id: Option<&str>,
        key_id: &str,
    ) -> Result<(), GatewayError> {
        let user_id = owner(caller, user_id)?;
        self.state.identity.revoke_api_key(&user_id, key_id).await
    }
}

/// Whose keys. Keys are managed by a signed-in user or the master key, never by an API key: a
/// key limited to some models could otherwise mint an unlimited one, or revoke its owner's
/// other keys.
fn owner(caller: &Principal, requested: Option<&str>) -> Result<String, GatewayError> {
    if caller.kind == PrincipalKind::ApiKey {
        return Err(GatewayError::forbidden(
            "API keys cannot manage API keys: sign in (an access or session token) to do that.",
        ));
    }
    acting_for(caller, requested, NO_OWN_KEYS)
}

fn expiry(
    at: Option<DateTime<Utc>>,
    in_days: Option<u32>,
) -> Result<Option<DateTime<Utc>>, GatewayError> {
    match (at, in_days) {
        (Some(_), Some(_)) => Err(GatewayError::invalid(
            Some("expires_at"),
            "give expires_at or expires_in_days, not both",
        )),
        (Some(at), None) => Ok(Some(at)),
        (None, Some(days)) if (1..=3650).contains(&days) => {
            Ok(Some(Utc::now() + chrono::Duration::days(i64::from(days))))
        }
        (None, Some(_)) => Err(GatewayError::invalid(
            Some("expires_in_days"),
            "must be 1 to 3650",
        )),
        (None, None) => Ok(None),
    }
}
