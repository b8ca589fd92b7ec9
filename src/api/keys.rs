//! `/api/v1/keys`: a user's API keys for /v1. An admin (or the master key) may act for another
//! user with `user_id`. The rules are [`services::Keys`](crate::services::Keys)'.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiResult;
use super::extract::{page, Caller, JsonBody, PageQuery, QueryParams};
use crate::services::keys::NewKey;
use crate::services::Keys;
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

pub async fn create(
    State(state): Shared,
    Caller(principal): Caller,
    JsonBody(body): JsonBody<NewKey>,
) -> ApiResult<Response> {
    let created = Keys::new(&state).create(&principal, body).await?;
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
    let bounds = PageQuery {
        limit: query.limit,
        offset: query.offset,
    }
    .bounds();
    let (keys, total) = Keys::new(&state)
        .list(&principal, query.user_id.as_deref(), bounds)
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
    Keys::new(&state)
        .revoke(&principal, query.user_id.as_deref(), &id)
        .await?;
    Ok(Json(json!({ "detail": "Key revoked.", "id": id })))
}
