//! Limit overrides per user and per API key (admins), and a caller's own limits with what is
//! left of each. An override replaces the subject's tier (when it names one) and sets any of the
//! five limits; what it leaves out comes from the tier. Writing one invalidates this replica's
//! cached limits for the subject at once.

use std::sync::Arc;

use crate::config::{limit_set_problems, LimitSet};
use crate::context::{Principal, ScopeKind};
use crate::error::GatewayError;
use crate::limits::overrides::{effective, Effective};
use crate::limits::plan::{ScopeAsk, ScopeStatus};
use crate::state::AppState;
use crate::store::limit_overrides::{LimitOverride, Subject};

pub struct LimitOverrides<'a> {
    state: &'a AppState,
}

/// What a PUT asks for: a tier (one of `[limits.tiers]`) and limits over it.
pub struct OverrideRequest {
    pub tier: Option<String>,
    pub limits: LimitSet,
}

/// One subject's override (if any) and the limits in effect with it.
pub struct OverrideState {
    pub over: Option<LimitOverride>,
    pub effective: Effective,
    /// Whether limits are enforced at all (`[limits]` configured).
    pub enforced: bool,
}

/// One scope a caller's requests are limited in: its limits and (when enforced) what is left.
pub struct ScopeLimits {
    pub kind: ScopeKind,
    pub id: Arc<str>,
    pub effective: Effective,
    pub remaining: Option<ScopeStatus>,
}

impl<'a> LimitOverrides<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    pub async fn get(&self, subject: Subject<'_>) -> Result<OverrideState, GatewayError> {
        self.ensure_exists(subject).await?;
        let over = self.state.store.limit_override(subject).await?;
        Ok(self.with_effective(subject, over))
    }

    /// Replaces the subject's whole override.
    pub async fn put(
        &self,
        admin: &Principal,
        subject: Subject<'_>,
        request: OverrideRequest,
    ) -> Result<OverrideState, GatewayError> {
        self.validate(&request)?;
        self.ensure_exists(subject).await?;
        let over = self
            .state
            .store
            .put_limit_override(subject, request.tier.as_deref(), &request.limits)
            .await?;
        self.invalidate(subject);
        tracing::info!(admin = %admin.id, subject = ?subject, "limit override set");
        Ok(self.with_effective(subject, Some(over)))
    }

    /// Removes the subject's override; the state after it and whether there was one.
    pub async fn delete(
        &self,
        admin: &Principal,
        subject: Subject<'_>,
    ) -> Result<(OverrideState, bool), GatewayError> {
        self.ensure_exists(subject).await?;
        let deleted = self.state.store.delete_limit_override(subject).await?;
        self.invalidate(subject);
        if deleted {
            tracing::info!(admin = %admin.id, subject = ?subject, "limit override removed");
        }
        Ok((self.with_effective(subject, None), deleted))
    }

    /// The caller's own scopes: the API key's when they call with one, then their account's.
    pub async fn mine(&self, caller: &Principal) -> Result<Vec<ScopeLimits>, GatewayError> {
        let config = self.state.limits.as_ref().map(|l| l.config());
        let mut subjects: Vec<(ScopeKind, Arc<str>)> = Vec::new();
        if let Some(key) = &caller.key_id {
            subjects.push((ScopeKind::Key, key.clone()));
        }
        subjects.push((ScopeKind::User, caller.id.clone()));
        let mut effectives = Vec::with_capacity(subjects.len());
        for (kind, id) in &subjects {
            let subject = match kind {
                ScopeKind::Key => Subject::ApiKey(id),
                _ => Subject::User(id),
            };
            let over = self.state.store.limit_override(subject).await?;
            effectives.push(effective(config, *kind, over.as_ref()));
        }
        let statuses = match &self.state.limits {
            Some(limits) => {
                let asks = subjects
                    .iter()
                    .zip(&effectives)
                    .map(|((kind, id), e)| ScopeAsk::new(*kind, id.clone(), &e.limits, 0))
                    .collect();
                limits.peek(asks).await
            }
            None => None,
        };
        let mut statuses = statuses.map(Vec::into_iter);
        Ok(subjects
            .into_iter()
            .zip(effectives)
            .map(|((kind, id), effective)| ScopeLimits {
                kind,
                id,
                effective,
                remaining: statuses.as_mut().and_then(Iterator::next),
            })
            .collect())
    }

    /// Whether limits are enforced, and by which backend (memory or redis).
    pub fn backend(&self) -> Option<&'static str> {
        self.state.limits.as_ref().map(|l| l.backend_name())
    }

    fn with_effective(&self, subject: Subject<'_>, over: Option<LimitOverride>) -> OverrideState {
        let config = self.state.limits.as_ref().map(|l| l.config());
        let effective = effective(config, kind_of(subject), over.as_ref());
        OverrideState {
            over,
            effective,
            enforced: self.state.limits.is_some(),
        }
    }

    fn invalidate(&self, subject: Subject<'_>) {
        if let Some(limits) = &self.state.limits {
            let (Subject::User(id) | Subject::ApiKey(id)) = subject;
            limits.invalidate(kind_of(subject), id);
        }
    }

    /// 404 unless the user or key exists.
    async fn ensure_exists(&self, subject: Subject<'_>) -> Result<(), GatewayError> {
        let store = &self.state.store;
        let found = match subject {
            Subject::User(id) => store.user_by_id(id).await?.is_some(),
            Subject::ApiKey(id) => store.api_key_owner(id).await?.is_some(),
        };
        if found {
            Ok(())
        } else {
            Err(GatewayError::resource_not_found())
        }
    }

    fn validate(&self, request: &OverrideRequest) -> Result<(), GatewayError> {
        if let Some(tier) = &request.tier {
            let tiers = self.state.limits.as_ref().map(|l| &l.config().tiers);
            if !tiers.is_some_and(|t| t.contains_key(tier)) {
                let known: Vec<&str> = tiers
                    .map(|t| t.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let known = if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                };
                return Err(GatewayError::invalid_field(
                    "tier",
                    format!("no tier named \"{tier}\" under [limits.tiers] (known: {known})"),
                ));
            }
        }
        match limit_set_problems(&request.limits).into_iter().next() {
            Some((field, problem)) => Err(GatewayError::invalid_field(field, problem)),
            None => Ok(()),
        }
    }
}

fn kind_of(subject: Subject<'_>) -> ScopeKind {
    match subject {
        Subject::User(_) => ScopeKind::User,
        Subject::ApiKey(_) => ScopeKind::Key,
    }
}
