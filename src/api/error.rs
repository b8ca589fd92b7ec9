//! The app endpoints' side of the one error type: [`ApiError`] is a [`GatewayError`] rendered in
//! the REST shape, the same on every app endpoint: `{"detail": "<message>", "code": "<machine
//! code>"}` (plus `"field"` for a bad field). `detail` is what FastAPI answers with, so the
//! seeds' frontends show our messages unchanged.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::error::GatewayError;
use crate::identity::AuthError;

#[derive(Debug)]
pub struct ApiError(pub GatewayError);

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self(GatewayError::with_status(status, code, detail))
    }

    pub fn invalid(field: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self(GatewayError::invalid(field, detail))
    }

    /// 404 for a resource that does not exist or belongs to someone else.
    pub fn not_found() -> Self {
        Self(GatewayError::resource_not_found())
    }
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        Self(error)
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self(error.into())
    }
}

/// A database failure: a 500 whose cause is logged, not shown.
impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_rest_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
