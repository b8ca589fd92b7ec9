//! The one error type of the gateway. Every error knows who caused it (the client, the upstream
//! or the gateway itself) and its status, and renders two ways: as OpenAI's error JSON on /v1
//! (`to_json`, so SDKs raise their usual exception types) and as the REST shape of the app
//! endpoints (`to_rest_json`: `{"detail", "code", "field"}`, what FastAPI answers, so the seeds'
//! frontends show our messages). Credential failures (`AuthError`, the only error identity keeps
//! of its own) and database failures (`StoreError`) convert into it.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// Who is responsible for a failure. Drives the status code and the log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    Client,
    Upstream,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: StatusCode,
    pub source: ErrorSource,
    /// OpenAI's `type`: invalid_request_error, authentication_error, ...
    pub kind: Cow<'static, str>,
    pub code: Option<Cow<'static, str>>,
    pub param: Option<Cow<'static, str>>,
    pub message: String,
    /// Seconds to wait before trying again, for callers that get this error as a value (an
    /// in-process pipeline call); /v1 answers carry Retry-After in their headers already.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl GatewayError {
    fn new(status: StatusCode, source: ErrorSource, kind: &'static str, message: String) -> Self {
        Self {
            status,
            source,
            kind: Cow::Borrowed(kind),
            code: None,
            param: None,
            message,
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The error an answer with a failing status carried (OpenAI's error JSON, as every /v1
    /// answer's errors are written), for callers of the pipeline that get it as a value. Who is
    /// to blame follows from the status: 4xx the caller, 5xx the upstream.
    pub fn from_answer(status: StatusCode, body: &[u8], retry_after: Option<u64>) -> Self {
        #[derive(serde::Deserialize)]
        struct Envelope {
            error: Fields,
        }
        #[derive(serde::Deserialize)]
        struct Fields {
            message: Option<String>,
            #[serde(rename = "type")]
            kind: Option<String>,
            code: Option<serde_json::Value>,
            param: Option<String>,
        }
        let source = if status.is_client_error() {
            ErrorSource::Client
        } else {
            ErrorSource::Upstream
        };
        let fields = serde_json::from_slice::<Envelope>(body)
            .ok()
            .map(|e| e.error);
        let message = fields
            .as_ref()
            .and_then(|f| f.message.clone())
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
                format!("The model call failed with status {status}: {text}")
            });
        let mut error = Self::new(status, source, "upstream_error", message);
        error.retry_after = retry_after;
        let Some(fields) = fields else { return error };
        if let Some(kind) = fields.kind {
            error.kind = Cow::Owned(kind);
        }
        error.code = match fields.code {
            Some(serde_json::Value::String(code)) => Some(Cow::Owned(code)),
            Some(serde_json::Value::Number(code)) => Some(Cow::Owned(code.to_string())),
            _ => None,
        };
        error.param = fields.param.map(Cow::Owned);
        error
    }

    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorSource::Client,
            "invalid_request_error",
            message.into(),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorSource::Client,
            "authentication_error",
            message.into(),
        )
        .with_code("invalid_api_key")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorSource::Client,
            "permission_error",
            message.into(),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorSource::Client,
            "invalid_request_error",
            message.into(),
        )
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::not_found(format!(
            "The model `{model}` does not exist or you do not have access to it."
        ))
        .with_code("model_not_found")
        .with_param("model")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorSource::Client,
            "invalid_request_error",
            "Method not allowed for this endpoint.".into(),
        )
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorSource::Client,
            "invalid_request_error",
            format!("Request body exceeds the maximum allowed size of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorSource::Client,
            "invalid_request_error",
            message.into(),
        )
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            ErrorSource::Upstream,
            "upstream_error",
            message.into(),
        )
        .with_code("upstream_unreachable")
    }

    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorSource::Upstream,
            "upstream_error",
            message.into(),
        )
        .with_code("upstream_timeout")
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorSource::Internal,
            "service_unavailable",
            message.into(),
        )
    }

    /// A 429 from the gateway's own limits, as OpenAI words them: `kind` "requests" or "tokens"
    /// with code `rate_limit_exceeded`, or "insufficient_quota" (a spent budget) with the same
    /// code.
    pub fn rate_limited(
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorSource::Client,
            kind,
            message.into(),
        )
        .with_code(code)
    }

    /// An upstream's own error, translated: its status and OpenAI error type.
    pub fn upstream(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, ErrorSource::Upstream, kind, message.into())
    }

    /// A status and machine code given by the caller (the REST endpoints' own refusals).
    pub fn with_status(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        let source = if status.is_server_error() {
            ErrorSource::Internal
        } else {
            ErrorSource::Client
        };
        Self::new(status, source, kind_for(status), message.into()).with_code(code)
    }

    /// 422: a field of the request is missing or malformed (`field` names it when one does).
    pub fn invalid(field: Option<&'static str>, message: impl Into<String>) -> Self {
        let mut error =
            Self::with_status(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message);
        error.param = field.map(Cow::Borrowed);
        error
    }

    /// 404 for an app resource that does not exist or is another user's (the two are not told
    /// apart).
    pub fn resource_not_found() -> Self {
        Self::with_status(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }

    /// 422 worded as the identity endpoints always have: "field: what is wrong".
    pub fn invalid_field(field: &'static str, message: impl std::fmt::Display) -> Self {
        Self::invalid(Some(field), format!("{field}: {message}"))
    }

    /// 409: the request collides with what exists (a taken email or username).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::CONFLICT, "conflict", message)
    }

    /// A failure inside the gateway (database, clock, hashing): the cause goes to the log, the
    /// client gets a plain 500.
    pub fn unexpected(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %format_args!("{cause:#}"), "request failed");
        Self::internal("internal error")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorSource::Internal,
            "internal_error",
            message.into(),
        )
    }

    /// OpenAI's error JSON: `{"error":{"message","type","param","code"}}`.
    pub fn to_json(&self) -> Bytes {
        let body = ErrorBody {
            error: ErrorFields {
                message: &self.message,
                kind: &self.kind,
                param: self.param.as_deref(),
                code: self.code.as_deref(),
            },
        };
        // Serialising plain strings into a Vec cannot fail.
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The REST shape: `{"detail": message, "code": machine code}`, plus `"field"` when one
    /// field is to blame.
    pub fn to_rest_json(&self) -> Bytes {
        #[derive(Serialize)]
        struct RestBody<'a> {
            detail: &'a str,
            code: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
        }
        let body = RestBody {
            detail: &self.message,
            code: self.rest_code(),
            field: self.param.as_deref(),
        };
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The machine code of the REST shape: the error's own, else one for its status.
    pub fn rest_code(&self) -> &str {
        if let Some(code) = &self.code {
            return code;
        }
        match self.status.as_u16() {
            400 | 422 => "invalid_request",
            401 => "not_authenticated",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            413 => "request_too_large",
            429 => "too_many_requests",
            503 => "unavailable",
            s if s >= 500 => "internal_error",
            _ => "error",
        }
    }

    /// The REST response: the REST body, `WWW-Authenticate` on a 401, `Retry-After` when set.
    pub fn into_rest_response<B: From<Bytes>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.to_rest_json()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    /// The same error as one SSE event, used to end a stream that broke after its first byte.
    pub fn to_sse_event(&self) -> Bytes {
        let json = self.to_json();
        let mut out = Vec::with_capacity(json.len() + 8);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }

    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.to_json()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// OpenAI's error `type` for a status the gateway sets itself.
fn kind_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for GatewayError {}

impl axum::response::IntoResponse for GatewayError {
    fn into_response(self) -> axum::response::Response {
        GatewayError::into_response::<axum::body::Body>(self)
    }
}

/// "client error (Connect): tcp connect error: Connection refused" rather than the outer layer only.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openai_error_shape() {
        let err = GatewayError::model_not_found("nope");
        let value: serde_json::Value = serde_json::from_slice(&err.to_json()).unwrap();
        assert_eq!(value["error"]["type"], "invalid_request_error");
        assert_eq!(value["error"]["code"], "model_not_found");
        assert_eq!(value["error"]["param"], "model");
        assert!(value["error"]["message"].as_str().unwrap().contains("nope"));
    }

    #[test]
    fn sse_event_is_one_complete_event() {
        let event = GatewayError::bad_gateway("reset").to_sse_event();
        assert!(event.starts_with(b"data: {"));
        assert!(event.ends_with(b"\n\n"));
    }
}
