//! What can go wrong proving who someone is. Messages are generic on purpose: a failed login
//! never says whether the email exists, and no message carries a secret.

use std::time::Duration;

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Not authenticated. Send `Authorization: Bearer <token>`.")]
    Unauthenticated,
    #[error("Incorrect email/username or password.")]
    InvalidCredentials,
    #[error("The token is invalid or has expired.")]
    InvalidToken,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("Not found.")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
    /// A field of the request is missing or malformed: (field, what is wrong).
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error("Too many attempts. Try again later.")]
    Throttled(Duration),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Unauthenticated
            | AuthError::InvalidCredentials
            | AuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
            AuthError::NotFound => StatusCode::NOT_FOUND,
            AuthError::Conflict(_) => StatusCode::CONFLICT,
            AuthError::Invalid(..) => StatusCode::UNPROCESSABLE_ENTITY,
            AuthError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated => "not_authenticated",
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::InvalidToken => "invalid_token",
            AuthError::Forbidden(_) => "forbidden",
            AuthError::NotFound => "not_found",
            AuthError::Conflict(_) => "conflict",
            AuthError::Invalid(..) => "invalid_request",
            AuthError::Throttled(_) => "too_many_attempts",
            AuthError::Unavailable(_) => "unavailable",
            AuthError::Internal(_) => "internal_error",
        }
    }
}

impl From<crate::store::StoreError> for AuthError {
    fn from(error: crate::store::StoreError) -> Self {
        AuthError::Internal(error.into())
    }
}

/// An identity failure in the one error type, as the REST endpoints answer it (the /v1 auth
/// plugin words credential failures OpenAI's way instead: see `plugins::auth`).
impl From<AuthError> for crate::error::GatewayError {
    fn from(error: AuthError) -> Self {
        let mut out = crate::error::GatewayError::with_status(
            error.status(),
            error.code(),
            error.to_string(),
        );
        match &error {
            AuthError::Invalid(field, _) => out.param = Some(std::borrow::Cow::Borrowed(field)),
            AuthError::Throttled(wait) => {
                out.retry_after = Some(crate::limits::headers::retry_after_secs(*wait))
            }
            AuthError::Internal(e) => {
                // The cause goes to the log, not to the client.
                tracing::error!(error = %format!("{e:#}"), "request failed");
            }
            _ => {}
        }
        out
    }
}
