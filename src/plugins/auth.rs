//! Authentication plugin: the first link of the chain on /v1. The master keys are checked here,
//! in constant time and without any I/O; every other credential goes to [`Identity`].

use std::sync::Arc;

use http::request::Parts;

use super::{Plugin, PluginFuture, RequestCtx};
use crate::config::AnonymousConfig;
use crate::context::{ClientAddr, Principal, PrincipalKind, Route};
use crate::error::GatewayError;
use crate::identity::{AuthError, Identity};

pub struct Auth {
    identity: Arc<Identity>,
    /// Who may call without a credential, and for what (`[anonymous]`); None: nobody.
    anonymous: Option<Anonymous>,
}

struct Anonymous {
    routes: Vec<Route>,
    models: Arc<[String]>,
}

impl Auth {
    pub fn new(identity: Arc<Identity>, anonymous: Option<&AnonymousConfig>) -> Self {
        let anonymous = anonymous.map(|a| Anonymous {
            routes: a.routes.clone(),
            models: Arc::from(a.models.clone()),
        });
        Self {
            identity,
            anonymous,
        }
    }

    /// The principal of a request that carries no credential, when `[anonymous]` lets it in on
    /// this route: named by its client address, limited to the anonymous models.
    fn anonymous_caller(&self, ctx: &RequestCtx, head: &Parts) -> Option<Principal> {
        let anonymous = self.anonymous.as_ref()?;
        if !anonymous.routes.contains(&ctx.route) {
            return None;
        }
        let address = head.extensions.get::<ClientAddr>()?.0;
        Some(Principal::anonymous(address, anonymous.models.clone()))
    }
}

/// The same failure in OpenAI's error shape, as SDKs expect on /v1.
pub fn openai_error(error: AuthError) -> GatewayError {
    match error {
        AuthError::Unauthenticated => GatewayError::unauthorized(
            "You didn't provide an API key. Send it as `Authorization: Bearer YOUR_KEY`.",
        ),
        AuthError::CrossSite => GatewayError::forbidden(AuthError::CrossSite.to_string())
            .with_code("cross_site_request"),
        AuthError::InvalidToken | AuthError::InvalidCredentials => {
            GatewayError::unauthorized("Incorrect API key provided.")
        }
        AuthError::Internal(e) => {
            tracing::error!(error = %format!("{e:#}"), "resolving a credential failed");
            GatewayError::service_unavailable("Authentication is temporarily unavailable.")
        }
        AuthError::Throttled(wait) => {
            let mut error = GatewayError::rate_limited(
                "requests",
                "rate_limit_exceeded",
                "Too many unknown API keys from your address. Try again later.",
            );
            error.retry_after = Some(crate::limits::headers::retry_after_secs(wait));
            error
        }
    }
}

impl Plugin for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn on_request<'a>(&'a self, ctx: &'a mut RequestCtx, head: &'a Parts) -> PluginFuture<'a> {
        // An in-process call arrives with its caller known (the app endpoint making it checked
        // the credential); a /v1 request never does, its context starts empty.
        if ctx.principal.is_some() {
            return Box::pin(std::future::ready(Ok(())));
        }
        Box::pin(async move {
            let principal = match self
                .identity
                .authenticate_request(&head.method, &head.headers)
                .await
            {
                Ok(principal) => principal,
                // No credential at all (a bad one is never anonymous).
                Err(AuthError::Unauthenticated) => self
                    .anonymous_caller(ctx, head)
                    .ok_or_else(|| openai_error(AuthError::Unauthenticated))?,
                Err(error) => return Err(openai_error(error)),
            };
            ctx.principal = Some(principal);
            Ok(())
        })
    }

    /// An API key limited to some models may use only those.
    fn on_routed<'a>(&'a self, ctx: &'a mut RequestCtx) -> PluginFuture<'a> {
        let (allowed, anonymous) = match (&ctx.principal, &ctx.model) {
            (Some(principal), Some(model)) => (
                principal.may_use_model(model),
                principal.kind == PrincipalKind::Anonymous,
            ),
            _ => (true, false),
        };
        let model = ctx.model.as_deref().unwrap_or_default();
        let result = match (allowed, anonymous) {
            (true, _) => Ok(()),
            (false, false) => Err(GatewayError::forbidden(format!(
                "This API key is not allowed to use the model `{model}`."
            ))
            .with_code("model_not_allowed")),
            // Not a 403: the caller has no credential, and one would let them in.
            (false, true) => Err(GatewayError::unauthorized(format!(
                "The model `{model}` needs an API key. Send it as `Authorization: Bearer YOUR_KEY`."
            ))),
        };
        Box::pin(std::future::ready(result))
    }
}
