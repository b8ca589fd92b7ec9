//! Seed 002's admin endpoints, for the admin role (or the master key) only. The rules are
//! [`services::Users`](crate::services::Users)'.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::json;

use super::error::ApiResult;
use super::extract::{page, AdminCaller, PageQuery, QueryParams};
use crate::services::Users;
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

pub async fn list_users(
    State(state): Shared,
    _admin: AdminCaller,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let bounds = query.bounds();
    let (users, total) = Users::new(&state).list(bounds).await?;
    Ok(Json(page(users, total, bounds)))
}

pub async fn list_sessions(
    State(state): Shared,
    _admin: AdminCaller,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let bounds = query.bounds();
    let (sessions, total) = Users::new(&state).sessions(bounds).await?;
    Ok(Json(page(sessions, total, bounds)))
}

/// Deletes a user and everything they own.
pub async fn delete_user(
    State(state): Shared,
    AdminCaller(admin): AdminCaller,
    Path(user_id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    Users::new(&state).delete(&admin, &user_id).await?;
    Ok(Json(
        json!({ "detail": "User and their data deleted.", "id": user_id }),
    ))
}
