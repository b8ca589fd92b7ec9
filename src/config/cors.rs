//! `[cors]`: which browser origins may call the gateway (seed 000's frontend calls /v1 and
//! /api/prompts from `http://localhost:3000`). Off (no CORS headers, browsers refuse
//! cross-origin calls) unless origins are listed.

use std::time::Duration;

use http::HeaderValue;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCors {
    allowed_origins: Vec<String>,
    allow_credentials: bool,
    max_age_secs: u64,
}

impl Default for RawCors {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_credentials: false,
            max_age_secs: 600,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// The origins allowed; `Any` only when `"*"` is the whole list.
    pub origins: CorsOrigins,
    /// Whether browsers may send cookies (not with `"*"`).
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    pub max_age: Duration,
}

#[derive(Debug, Clone)]
pub enum CorsOrigins {
    Any,
    List(Vec<HeaderValue>),
}

/// None when no origin is listed (CORS off).
pub(super) fn cors(raw: RawCors, problems: &mut Vec<String>) -> Option<CorsConfig> {
    if raw.allowed_origins.is_empty() {
        return None;
    }
    let origins = if raw.allowed_origins == ["*"] {
        if raw.allow_credentials {
            problems.push(
                "cors.allow_credentials: browsers refuse credentials with the origin \"*\"; list the origins"
                    .into(),
            );
        }
        CorsOrigins::Any
    } else {
        let mut list = Vec::new();
        for (i, origin) in raw.allowed_origins.iter().enumerate() {
            match parse_origin(origin) {
                Ok(value) => list.push(value),
                Err(problem) => problems.push(format!("cors.allowed_origins[{i}]: {problem}")),
            }
        }
        CorsOrigins::List(list)
    };
    Some(CorsConfig {
        origins,
        allow_credentials: raw.allow_credentials,
        max_age: Duration::from_secs(raw.max_age_secs),
    })
}

/// An origin is `scheme://host[:port]`: no path, no trailing slash (browsers send it so, and
/// the match is exact).
fn parse_origin(origin: &str) -> Result<HeaderValue, String> {
    let uri: http::Uri = origin
        .parse()
        .map_err(|_| format!("\"{origin}\" is not an origin (hint: \"http://localhost:3000\")"))?;
    let well_formed = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.authority().is_some()
        && !origin.ends_with('/')
        && uri
            .path_and_query()
            .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/");
    if origin == "*" || !well_formed {
        return Err(format!(
            "\"{origin}\" is not an origin: write scheme://host[:port] with no path (\"*\" only alone)"
        ));
    }
    HeaderValue::from_str(origin).map_err(|_| format!("\"{origin}\" is not a valid header value"))
}
