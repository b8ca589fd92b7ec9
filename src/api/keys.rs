//! `/api/v1/keys`: a user's API keys for /v1. An admin (or the master key) may act for another
//! user with `user_id`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::{page, Caller, JsonBody, PageQuery, QueryParams};
use crate::context::{Principal, PrincipalKind};
use crate::error::GatewayError;
use crate::identity::api_keys::KeyRequest;
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// Whose keys: the caller's own, or (admins only) the `user_id` named. Keys are managed by a
/// signed-in user or the master key, never by an API key: a key limited to some models could
/// otherwise mint an unlimited one, or revoke its owner's other keys.
fn owner(principal: &Principal, user_id: Option<String>) -> Result<String, ApiError> {
    if principal.kind == PrincipalKind::ApiKey {
        return Err(GatewayError::forbidden(
            "API keys cannot manage API keys: sign in (an access or session token) to do that.",
        )
        .into());
    }
    let own = principal.user_id();
    match user_id {
        Some(other) if Some(other.as_str()) == own => Ok(other),
        Some(other) if principal.is_admin() => Ok(other),
        // Not 403: another user's ids are not to be probed.
        Some(_) => Err(ApiError::not_found()),
        None => own.map(str::to_string).ok_or_else(|| {
            ApiError::invalid(
                Some("user_id"),
                "the master key owns no keys: name the user_id to act for",
            )
        }),
    }
}

#[derive(Deserialize)]
pub struct CreateKeyBody {
    name: String,
    expires_at: Option<DateTime<Utc>>,
    expires_in_days: Option<u32>,
    allowed_models: Option<Vec<String>>,
    user_id: Option<String>,
}

pub async fn create(
    State(state): Shared,
    Caller(principal): Caller,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> ApiResult<Response> {
    let user_id = owner(&principal, body.user_id)?;
    if state.store.user_by_id(&user_id).await?.is_none() {
        return Err(ApiError::not_found());
    }
    let expires_at = match (body.expires_at, body.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                Some("expires_at"),
                "give expires_at or expires_in_days, not both",
            ))
        }
        (Some(at), None) => Some(at),
        (None, Some(days)) if (1..=3650).contains(&days) => {
            Some(Utc::now() + chrono::Duration::days(i64::from(days)))
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                Some("expires_in_days"),
                "must be 1 to 3650",
            ))
        }
        (None, None) => None,
    };
    let created = state
        .identity
        .create_api_key(
            &user_id,
            KeyRequest {
                name: body.name,
                expires_at,
                allowed_models: body.allowed_models,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// The page fields are spelled out: `#[serde(flatten)]` would hand them to the query-string
/// deserializer as strings, and `?limit=10` would be refused.
#[derive(Deserialize)]
pub struct ListQuery {
    user_id: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn list(
    State(state): Shared,
    Caller(principal): Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let user_id = owner(&principal, query.user_id)?;
    let bounds = PageQuery {
        limit: query.limit,
        offset: query.offset,
    }
    .bounds();
    let (keys, total) = state
        .identity
        .list_api_keys(&user_id, bounds.0, bounds.1)
        .await?;
    Ok(Json(page(keys, total, bounds)))
}

#[derive(Deserialize)]
pub struct OwnerQuery {
    user_id: Option<String>,
}

pub async fn revoke(
    State(state): Shared,
    Caller(principal): Caller,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<OwnerQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let user_id = owner(&principal, query.user_id)?;
    state.identity.revoke_api_key(&user_id, &id).await?;
    Ok(Json(json!({ "detail": "Key revoked.", "id": id })))
}
