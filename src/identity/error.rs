//! Credential failures: the only errors identity has of its own. Everything else it refuses (a
//! bad field, a taken email, a missing user) is a [`GatewayError`] from the start. Messages are
//! generic on purpose: a failed login never says whether the email exists, and no message
//! carries a secret.

use std::time::Duration;

use http::StatusCode;

use crate::error::GatewayError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Not authenticated. Send `Authorization: Bearer <token>`.")]
    Unauthenticated,
    #[error("Incorrect email/username or password.")]
    InvalidCredentials,
    #[error("The token is invalid or has expired.")]
    InvalidToken,
    #[error("Too many attempts. Try again later.")]
    Throttled(Duration),
    /// A cookie-authenticated state-changing request from another site's page.
    #[error("This request came from another site's page and is refused (cross-site request).")]
    CrossSite,
    /// The credential could not be checked (the database is down): not the caller's fault.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for AuthError {
    fn from(error: crate::store::StoreError) -> Self {
        AuthError::Internal(error.into())
    }
}

/// A credential failure as the REST endpoints answer it (the /v1 auth plugin words them
/// OpenAI's way instead: see `plugins::auth`).
impl From<AuthError> for GatewayError {
    fn from(error: AuthError) -> Self {
        let (status, code) = match &error {
            AuthError::Unauthenticated => (StatusCode::UNAUTHORIZED, "not_authenticated"),
            AuthError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AuthError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            AuthError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            AuthError::CrossSite => (StatusCode::FORBIDDEN, "cross_site_request"),
            AuthError::Internal(cause) => return GatewayError::unexpected(format!("{cause:#}")),
        };
        let mut out = GatewayError::with_status(status, code, error.to_string());
        if let AuthError::Throttled(wait) = error {
            out.retry_after = Some(crate::limits::headers::retry_after_secs(wait));
        }
        out
    }
}
