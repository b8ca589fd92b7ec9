//! Limit overrides per user and per API key (admin role or master key), and a signed-in user's
//! own limits.
//!
//! - `GET|PUT|DELETE /api/v1/admin/users/{user_id}/limits`
//! - `GET|PUT|DELETE /api/v1/admin/keys/{key_id}/limits`
//! - `GET /api/v1/limits`
//!
//! An override replaces the subject's tier (when it names one) and sets any of the five limits;
//! what it leaves out comes from the tier. PUT replaces the whole override.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{AdminCaller, JsonBody, UserCaller};
use crate::config::{limit_set_problems, LimitSet};
use crate::limits::overrides::{effective, Effective};
use crate::limits::plan::{to_usd, ScopeAsk, ScopeStatus};
use crate::limits::{headers, ScopeKind};
use crate::state::AppState;
use crate::store::limit_overrides::{LimitOverride, Subject};

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

fn validate(state: &AppState, body: &OverrideBody) -> ApiResult<()> {
    if let Some(tier) = &body.tier {
        let tiers = state.limits.as_ref().map(|l| &l.config().tiers);
        if !tiers.is_some_and(|t| t.contains_key(tier)) {
            let known: Vec<&str> = tiers
                .map(|t| t.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(ApiError::invalid(
                Some("tier"),
                format!(
                    "tier: no tier named \"{tier}\" under [limits.tiers] (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    if let Some((field, problem)) = limit_set_problems(&body.limit_set()).into_iter().next() {
        return Err(ApiError::invalid(
            Some(field),
            format!("{field}: {problem}"),
        ));
    }
    Ok(())
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

fn kind_of(subject: Subject<'_>) -> ScopeKind {
    match subject {
        Subject::User(_) => ScopeKind::User,
        Subject::ApiKey(_) => ScopeKind::Key,
    }
}

/// `{"override": ..., "effective": ...}` for one subject.
fn answer(state: &AppState, subject: Subject<'_>, over: Option<&LimitOverride>) -> Value {
    let config = state.limits.as_ref().map(|l| l.config());
    let eff = effective(config, kind_of(subject), over);
    let (field, id) = match subject {
        Subject::User(id) => ("user_id", id),
        Subject::ApiKey(id) => ("key_id", id),
    };
    let mut value = json!({
        "override": over,
        "effective": effective_json(&eff),
        "enforced": state.limits.is_some(),
    });
    value[field] = json!(id);
    value
}

/// 404 unless the user or key exists.
async fn ensure_exists(state: &AppState, subject: Subject<'_>) -> ApiResult<()> {
    let store = &state.store;
    let found = match subject {
        Subject::User(id) => store.user_by_id(id).await?.is_some(),
        Subject::ApiKey(id) => store.api_key_owner(id).await?.is_some(),
    };
    if found {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

async fn get_override(state: &AppState, subject: Subject<'_>) -> ApiResult<Json<Value>> {
    ensure_exists(state, subject).await?;
    let over = state.store.limit_override(subject).await?;
    Ok(Json(answer(state, subject, over.as_ref())))
}

async fn put_override(
    state: &AppState,
    admin: &crate::context::Principal,
    subject: Subject<'_>,
    body: OverrideBody,
) -> ApiResult<Json<Value>> {
    validate(state, &body)?;
    ensure_exists(state, subject).await?;
    let over = state
        .identity
        .store
        .put_limit_override(subject, body.tier.as_deref(), &body.limit_set())
        .await?;
    if let Some(limits) = &state.limits {
        limits.invalidate(kind_of(subject), subject_id(subject));
    }
    tracing::info!(admin = %admin.id, subject = ?subject, "limit override set");
    Ok(Json(answer(state, subject, Some(&over))))
}

async fn delete_override(
    state: &AppState,
    admin: &crate::context::Principal,
    subject: Subject<'_>,
) -> ApiResult<Json<Value>> {
    ensure_exists(state, subject).await?;
    let deleted = state.store.delete_limit_override(subject).await?;
    if let Some(limits) = &state.limits {
        limits.invalidate(kind_of(subject), subject_id(subject));
    }
    if deleted {
        tracing::info!(admin = %admin.id, subject = ?subject, "limit override removed");
    }
    let mut value = answer(state, subject, None);
    value["deleted"] = json!(deleted);
    Ok(Json(value))
}

fn subject_id(subject: Subject<'_>) -> &str {
    match subject {
        Subject::User(id) | Subject::ApiKey(id) => id,
    }
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
    let store = &state.store;
    let config = state.limits.as_ref().map(|l| l.config());
    let mut subjects: Vec<(ScopeKind, Arc<str>)> = Vec::new();
    if let Some(key) = &caller.principal.key_id {
        subjects.push((ScopeKind::Key, key.clone()));
    }
    subjects.push((ScopeKind::User, caller.principal.id.clone()));
    let mut effectives = Vec::new();
    for (kind, id) in &subjects {
        let subject = match kind {
            ScopeKind::Key => Subject::ApiKey(id),
            _ => Subject::User(id),
        };
        let over = store.limit_override(subject).await?;
        effectives.push(effective(config, *kind, over.as_ref()));
    }
    let statuses = match &state.limits {
        Some(limits) => {
            let scopes = subjects
                .iter()
                .zip(&effectives)
                .map(|((kind, id), e)| ScopeAsk::new(*kind, id.clone(), &e.limits, 0))
                .collect();
            limits.peek(scopes).await
        }
        None => None,
    };
    let scopes: Vec<Value> = subjects
        .iter()
        .zip(&effectives)
        .enumerate()
        .map(|(i, ((kind, id), e))| {
            let remaining = statuses
                .as_ref()
                .and_then(|s| s.get(i))
                .map(|s| remaining_json(&e.limits, s));
            json!({
                "scope": kind.as_str(),
                "id": &**id,
                "tier": e.tier,
                "limits": limits_json(&e.limits),
                "remaining": remaining,
            })
        })
        .collect();
    Ok(Json(json!({
        "user_id": caller.user_id,
        "enforced": state.limits.is_some(),
        "backend": state.limits.as_ref().map(|l| l.backend_name()),
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
