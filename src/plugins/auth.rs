//! Authentication plugin: the first link of the chain on /v1. The master keys are checked here,
//! in constant time and without any I/O; every other credential goes to [`Identity`].

use std::sync::Arc;

use http::request::Parts;

use super::{Plugin, PluginFuture, RequestCtx};
use crate::error::GatewayError;
use crate::identity::{AuthError, Identity};

pub struct Auth {
    identity: Arc<Identity>,
}

impl Auth {
    pub fn new(identity: Arc<Identity>) -> Self {
        Self { identity }
    }
}

/// The same failure in OpenAI's error shape, as SDKs expect on /v1.
pub fn openai_error(error: AuthError) -> GatewayError {
    match error {
        AuthError::Unauthenticated => GatewayError::unauthorized(
            "You didn't provide an API key. Send it as `Authorization: Bearer YOUR_KEY`.",
        ),
        AuthError::InvalidToken | AuthError::InvalidCredentials => {
            GatewayError::unauthorized("Incorrect API key provided.")
        }
        AuthError::Internal(e) => {
            tracing::error!(error = %format!("{e:#}"), "resolving a credential failed");
            GatewayError::service_unavailable("Authentication is temporarily unavailable.")
        }
        other => GatewayError::unauthorized(other.to_string()),
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
            let principal = self
                .identity
                .authenticate(&head.headers)
                .await
                .map_err(openai_error)?;
            ctx.principal = Some(principal);
            Ok(())
        })
    }

    /// An API key limited to some models may use only those.
    fn on_routed<'a>(&'a self, ctx: &'a mut RequestCtx) -> PluginFuture<'a> {
        let allowed = match (&ctx.principal, &ctx.model) {
            (Some(principal), Some(model)) => principal.may_use_model(model),
            _ => true,
        };
        let result = if allowed {
            Ok(())
        } else {
            Err(GatewayError::forbidden(format!(
                "This API key is not allowed to use the model `{}`.",
                ctx.model.as_deref().unwrap_or_default()
            ))
            .with_code("model_not_allowed"))
        };
        Box::pin(std::future::ready(result))
    }
}
