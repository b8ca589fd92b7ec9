//! The REST error shape, the same on every app endpoint:
//! `{"detail": "<message>", "code": "<machine code>"}` (plus `"field"` for a bad field).
//! `detail` is what FastAPI answers with, so the seeds' frontends show our messages unchanged.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

use crate::identity::AuthError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<&'static str>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn invalid(field: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            field,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let mut api = ApiError::new(error.status(), error.code(), error.to_string());
        match &error {
            AuthError::Invalid(field, _) => api.field = Some(field),
            AuthError::Throttled(wait) => {
                api.retry_after = Some(crate::limits::headers::retry_after_secs(*wait))
            }
            AuthError::Internal(e) => {
                // The cause goes to the log, not to the client.
                tracing::error!(error = %format!("{e:#}"), "request failed");
            }
            _ => {}
        }
        api
    }
}

/// A database failure: a 500 whose cause is logged, not shown.
impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        AuthError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "detail": self.detail, "code": self.code });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
