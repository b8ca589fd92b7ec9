//! Extractors for the app endpoints: a JSON body with errors in our shape, the caller's
//! principal, and where the request came from.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::context::Principal;
use crate::error::GatewayError;
use crate::identity::accounts::ClientInfo;
use crate::state::AppState;

/// App request bodies are small; this bounds what a client can make us buffer.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub use crate::context::ClientAddr;

/// A JSON body. Malformed JSON, a wrong field type or a missing field is a 422 naming the
/// field, as FastAPI answers.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub(super) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|l| l > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let limited = request
        .map(|body| axum::body::Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES)));
    Bytes::from_request(limited, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::invalid(None, "The request body could not be read.")
            }
        })
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        format!("The request body exceeds {MAX_BODY_BYTES} bytes."),
    )
}

pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::invalid(None, "A JSON body is required."));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "The body is not valid JSON.".to_string()
            }
            _ if path == "." => format!("Invalid body: {inner}"),
            _ => format!("{path}: {inner}"),
        };
        ApiError::invalid(None, message)
    })
}

/// The authenticated caller: any credential (the master key too).
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let principal = state
            .identity
            .authenticate_request(&parts.method, &parts.headers)
            .await?;
        Ok(Caller(principal))
    }
}

/// A signed-in user (not the master key, which is no user).
pub struct UserCaller {
    pub principal: Principal,
    pub user_id: String,
}

impl FromRequestParts<Arc<AppState>> for UserCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        let user_id = principal
            .user_id()
            .ok_or(GatewayError::forbidden(
                "This endpoint needs a user's credential, not the master key.",
            ))?
            .to_string();
        Ok(UserCaller { principal, user_id })
    }
}

/// An admin: a user with the admin role, or the master key.
pub struct AdminCaller(pub Principal);

impl FromRequestParts<Arc<AppState>> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        if !principal.is_admin() {
            let message = if principal.kind == crate::context::PrincipalKind::ApiKey {
                "Admin access required: an API key is an admin credential only when made with \"admin\": true."
            } else {
                "Admin access required."
            };
            return Err(GatewayError::forbidden(message).into());
        }
        Ok(AdminCaller(principal))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientInfo {
            address: parts
                .extensions
                .get::<ClientAddr>()
                .map(|p| p.0.to_string()),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect()),
        })
    }
}

/// A query string, with a malformed one answered in the REST error shape (422).
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::invalid(None, e.body_text()))
    }
}

/// `?limit=&offset=` on every list, bounded so no page is unbounded.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl PageQuery {
    pub fn bounds(&self) -> (i64, i64) {
        (
            self.limit.unwrap_or(50).clamp(1, 200),
            self.offset.unwrap_or(0).max(0),
        )
    }
}

/// A page of a list: the items, the total, and where this page is.
pub fn page<T: serde::Serialize>(
    items: Vec<T>,
    total: i64,
    (limit, offset): (i64, i64),
) -> serde_json::Value {
    serde_json::json!({ "items": items, "total": total, "limit": limit, "offset": offset })
}
