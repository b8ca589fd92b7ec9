//! Authentication plugin: the first link of the chain. Today it accepts the static master keys
//! from the config; database-backed keys and sessions resolve to the same [`Principal`].

use std::sync::Arc;

use http::header;
use http::request::Parts;
use subtle::ConstantTimeEq;

use super::{Plugin, PluginFuture, Principal, PrincipalKind, RequestCtx};
use crate::config::Secret;
use crate::error::GatewayError;

pub struct MasterKeyAuth {
    keys: Vec<Secret>,
    principal: Principal,
}

impl MasterKeyAuth {
    pub fn new(keys: Vec<Secret>) -> Self {
        Self {
            keys,
            principal: Principal {
                id: Arc::from("master"),
                kind: PrincipalKind::MasterKey,
                admin: true,
            },
        }
    }

    /// Resolves the caller of one request. Every key is compared in constant time, and all keys
    /// are compared, so timing reveals neither a key's prefix nor which key matched.
    pub fn authenticate(&self, head: &Parts) -> Result<Principal, GatewayError> {
        let token = bearer_token(head).ok_or_else(|| {
            GatewayError::unauthorized(
                "You didn't provide an API key. Send it as `Authorization: Bearer YOUR_KEY`.",
            )
        })?;
        let mut matched = subtle::Choice::from(0u8);
        for key in &self.keys {
            matched |= key.expose().as_bytes().ct_eq(token.as_bytes());
        }
        if bool::from(matched) {
            Ok(self.principal.clone())
        } else {
            Err(GatewayError::unauthorized("Incorrect API key provided."))
        }
    }
}

/// The key from `Authorization: Bearer <key>`, or from `x-api-key` / `api-key` (Anthropic-
/// and Azure-style clients).
pub fn bearer_token(head: &Parts) -> Option<&str> {
    if let Some(value) = head.headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        return (!token.is_empty()).then_some(token);
    }
    ["x-api-key", "api-key"]
        .iter()
        .filter_map(|name| head.headers.get(*name))
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .find(|v| !v.is_empty())
}

impl Plugin for MasterKeyAuth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn on_request<'a>(&'a self, ctx: &'a mut RequestCtx, head: &'a Parts) -> PluginFuture<'a> {
        let result = self.authenticate(head).map(|principal| {
            ctx.principal = Some(principal);
        });
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(auth: Option<&str>) -> Parts {
        let mut builder = http::Request::builder();
        if let Some(value) = auth {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn accepts_any_configured_key_and_rejects_others() {
        let auth = MasterKeyAuth::new(vec![Secret::new("key-one-123"), Secret::new("key-two-456")]);
        assert!(auth.authenticate(&head(Some("Bearer key-two-456"))).is_ok());
        assert!(auth.authenticate(&head(Some("bearer key-one-123"))).is_ok());
        assert!(auth.authenticate(&head(Some("Bearer key-one-12"))).is_err());
        assert!(auth.authenticate(&head(Some("Basic key-one-123"))).is_err());
        assert!(auth.authenticate(&head(Some("Bearer "))).is_err());
        assert!(auth.authenticate(&head(None)).is_err());
    }
}
