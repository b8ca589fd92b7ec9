//! Limit overrides per user and per API key (admin role or master key), and a signed-in user's
//! own limits.
//!
//! - `GET|PUT|DELETE /api/v1/admin/users/{user_id}/limits`
//! - `GET|PUT|DELETE /api/v1/admin/keys/{key_id}/limits`
//! - `GET /api/v1/limits`
//!
//! An override replaces the subject's tier (when it names one) and sets any of the five limits;
//! what it leaves out comes from the tier. PUT replaces the whole override. The rules are
//! [`services::LimitOverrides`](crate::services::LimitOverrides)'.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiResult;
use super::extract::{AdminCaller, JsonBody, UserCaller};
use crate::config::LimitSet;
use crate::context::Principal;
use crate::limits::headers;
use crate::limits::overrides::Effective;
use crate::limits::plan::{to_usd, ScopeStatus};
use crate::services::limit_overrides::{OverrideRequest, OverrideState};
use crate::services::LimitOverrides;
use crate::state::AppState;
use crate::store::limit_overrides::Subject;

type Shared = State<Arc<AppState>>;

/// A PUT body: every field optional; unknown fields refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    tier: Option<String>,
    requests_per_minute: Option<u64>,
    tokens_per_minute: Option<u64>,
    max_concurrent: Option<u64>,
    daily_budget_usd: Option<f64>,
    monthly_budget_usd: Option<f64>,
}

impl OverrideBody {
    fn limit_set(&self) -> LimitSet {
        LimitSet {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            max_concurrent: self.max_concurrent,
            daily_budget_usd: self.daily_budget_usd,
            monthly_budget_usd: self.monthly_budget_usd,
        }
    }
}

fn limits_json(set: &LimitSet) -> Value {
    json!({
        "requests_per_minute": set.requests_per_minute,
        "tokens_per_minute": set.tokens_per_minute,
        "max_concurrent": set.max_concurrent,
        "daily_budget_usd": set.daily_budget_usd,
        "monthly_budget_usd": set.monthly_budget_usd,
    })
}

fn effective_json(e: &Effective) -> Value {
    let mut value = limits_json(&e.limits);
    value["tier"] = json!(e.tier);
    value
}

/// `{"override": ..., "effective": ..., "enforced": ...}` for one subject.
fn answer(subject: Subject<'_>, state: &OverrideState) -> Value {
    let (field, id) = match subject {
        Subject::User(id) => ("user_id", id),
        Subject::ApiKey(id) => ("key_id", id),
    };
    let mut value = json!({
        "override": state.over,
        "effective": effective_json(&state.effective),
        "enforced": state.enforced,
    });
    value[field] = json!(id);
    value
}

async fn get_override(state: &AppState, subject: Subject<'_>) -> ApiResult<Json<Value>> {
    let now = LimitOverrides::new(state).get(subject).await?;
    Ok(Json(answer(subject, &now)))
}

async fn put_override(
    state: &AppState,
    admin: &Principal,
    subject: Subject<'_>,
    body: OverrideBody,
) -> ApiResult<Json<Value>> {
    let request = OverrideRequest {
        limits: body.limit_set(),
        tier: body.tier,
    };
    let now = LimitOverrides::new(state)
        .put(admin, subject, request)
        .await?;
    Ok(Json(answer(subject, &now)))
}

async fn delete_override(
    state: &AppState,
    admin: &Principal,
    subject: Subject<'_>,
) -> ApiResult<Json<Value>> {
    let (now, deleted) = LimitOverrides::new(state).delete(admin, subject).await?;
    let mut value = answer(subject, &now);
    value["deleted"] = json!(deleted);
    Ok(Json(value))
}

pub async fn get_user(
    State(state): Shared,
    _admin: AdminCaller,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    get_override(&state, Subject::User(&user_id)).await
}

pub async fn put_user(
    State(state): Shared,
    AdminCaller(admin): AdminCaller,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<OverrideBody>,
) -> ApiResult<Json<Value>> {
    put_override(&state, &admin, Subject::User(&user_id), body).await
}

pub async fn delete_user(
    State(state): Shared,
    AdminCaller(admin): AdminCaller,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    delete_override(&state, &admin, Subject::User(&user_id)).await
}

pub async fn get_key(
    State(state): Shared,
    _admin: AdminCaller,
    Path(key_id): Path<String>,
) -> ApiResult<Json<Value>> {
    get_override(&state, Subject::ApiKey(&key_id)).await
}

pub async fn put_key(
    State(state): Shared,
    AdminCaller(admin): AdminCaller,
    Path(key_id): Path<String>,
    JsonBody(body): JsonBody<OverrideBody>,
) -> ApiResult<Json<Value>> {
    put_override(&state, &admin, Subject::ApiKey(&key_id), body).await
}

pub async fn delete_key(
    State(state): Shared,
    AdminCaller(admin): AdminCaller,
    Path(key_id): Path<String>,
) -> ApiResult<Json<Value>> {
    delete_override(&state, &admin, Subject::ApiKey(&key_id)).await
}

/// The caller's own limits: their account's, and the API key's when they call with one, each
/// with what is left right now.
pub async fn mine(State(state): Shared, caller: UserCaller) -> ApiResult<Json<Value>> {
    let service = LimitOverrides::new(&state);
    let scopes: Vec<Value> = service
        .mine(&caller.principal)
        .await?
        .iter()
        .map(|scope| {
            json!({
                "scope": scope.kind.as_str(),
                "id": &*scope.id,
                "tier": scope.effective.tier,
                "limits": limits_json(&scope.effective.limits),
                "remaining": scope.remaining.as_ref().map(|s| remaining_json(&scope.effective.limits, s)),
            })
        })
        .collect();
    Ok(Json(json!({
        "user_id": caller.user_id,
        "enforced": service.backend().is_some(),
        "backend": service.backend(),
        "scopes": scopes,
    })))
}

/// What is left of each limit (null where there is no limit).
fn remaining_json(limits: &LimitSet, status: &ScopeStatus) -> Value {
    let budget_left = |budget: Option<f64>, state: Option<crate::limits::plan::BudgetStatus>| {
        budget.map(|b| {
            let used = state.map_or(0, |s| s.spent + s.reserved);
            (b - to_usd(used)).max(0.0)
        })
    };
    json!({
        "requests": status.requests.map(|r| r.remaining.max(0)),
        "reset_requests": status.requests.map(|r| headers::openai_duration(std::time::Duration::from_millis(r.reset_ms))),
        "tokens": status.tokens.map(|t| t.remaining.max(0)),
        "reset_tokens": status.tokens.map(|t| headers::openai_duration(std::time::Duration::from_millis(t.reset_ms))),
        "concurrent": limits.max_concurrent.map(|max| max.saturating_sub(status.in_flight.unwrap_or(0))),
        "daily_budget_usd": budget_left(limits.daily_budget_usd, status.daily),
        "monthly_budget_usd": budget_left(limits.monthly_budget_usd, status.monthly),
        "daily_spent_usd": status.daily.map(|s| to_usd(s.spent)),
        "monthly_spent_usd": status.monthly.map(|s| to_usd(s.spent)),
    })
}
