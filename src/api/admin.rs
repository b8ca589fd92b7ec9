//! Seed 002's admin endpoints, for the admin role (or the master key) only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::json;

use super::error::ApiResult;
use super::extract::{page, AdminCaller, PageQuery, QueryParams};
use crate::identity::accounts::PublicUser;
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

pub async fn list_users(
    State(state): Shared,
    _admin: AdminCaller,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let bounds = query.bounds();
    let (users, total) = state.store.list_users(bounds.0, bounds.1).await?;
    let users: Vec<PublicUser> = users.into_iter().map(PublicUser::from).collect();
    Ok(Json(page(users, total, bounds)))
}

pub async fn list_sessions(
    State(state): Shared,
    _admin: AdminCaller,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let bounds = query.bounds();
    let (sessions, total) = state
        .identity
        .store
        .list_sessions(bounds.0, bounds.1)
        .await?;
    Ok(Json(page(sessions, total, bounds)))
}

/// Deletes a user and everything they own (sessions, keys, prompts, threads, usage, memories).
pub async fn delete_user(
    State(state): Shared,
    AdminCaller(admin): AdminCaller,
    Path(user_id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.identity.delete_user(&user_id).await?;
    tracing::info!(admin = %admin.id, user = %user_id, "user deleted with their data");
    Ok(Json(
        json!({ "detail": "User and their data deleted.", "id": user_id }),
    ))
}
