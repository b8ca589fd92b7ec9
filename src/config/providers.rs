//! `[[providers]]`: the upstreams, each of a kind (the adapter that speaks to it), with its base
//! URL, key, headers, timeouts and concurrency.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::identity::Env;
use super::{interpolate, InterpolationError, Secret};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    name: String,
    #[serde(default = "default_kind")]
    kind: String,
    base_url: String,
    api_key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout_ms")]
    connect_timeout_ms: u64,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_idle_timeout_ms")]
    idle_timeout_ms: u64,
    /// 0: no limit on a whole response (streams may run long).
    #[serde(default)]
    total_timeout_ms: u64,
    /// 0: no limit on concurrent requests.
    #[serde(default)]
    max_in_flight: u32,
    #[serde(default = "default_max_tokens")]
    default_max_tokens: u64,
    /// Ask streamed chat answers for their final usage chunk (`stream_options.include_usage`).
    #[serde(default = "default_true")]
    stream_usage: bool,
}

fn default_true() -> bool {
    true
}

fn default_kind() -> String {
    "openai".into()
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_timeout_ms() -> u64 {
    600_000
}
fn default_idle_timeout_ms() -> u64 {
    120_000
}
fn default_max_tokens() -> u64 {
    4_096
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: http::Uri,
    pub api_key: Option<Secret>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub connect_timeout: Duration,
    /// Time allowed until the upstream's response headers arrive.
    pub timeout: Duration,
    /// Time allowed between two body chunks once the response has started.
    pub idle_timeout: Duration,
    /// Time allowed for a whole response, when limited.
    pub total_timeout: Option<Duration>,
    pub max_in_flight: Option<u32>,
    /// Anthropic requires `max_tokens`; this is sent when the client gives none.
    pub default_max_tokens: u64,
    /// Whether streamed chat requests ask for the final usage chunk (off for servers that
    /// refuse `stream_options`; their usage is then estimated).
    pub stream_usage: bool,
    /// Why the provider is switched off (its API key variable is unset), if it is.
    pub disabled_reason: Option<String>,
}

/// The providers, validated, and the set of their names (models' targets name them).
pub(super) fn providers(
    raw: Vec<RawProvider>,
    env: Env<'_>,
    problems: &mut Vec<String>,
) -> (Vec<ProviderConfig>, HashSet<String>) {
    let mut providers = Vec::new();
    let mut provider_names = HashSet::new();
    for (i, p) in raw.into_iter().enumerate() {
        let at = format!("providers[{i}]");
        if p.name.trim().is_empty() {
            problems.push(format!("{at}.name: must not be empty"));
        } else if !provider_names.insert(p.name.clone()) {
            problems.push(format!(
                "{at}.name: a provider named \"{}\" is already defined",
                p.name
            ));
        }
        let kind = match p.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            "anthropic" => ProviderKind::Anthropic,
            "gemini" => ProviderKind::Gemini,
            other => {
                problems.push(format!(
                    "{at}.kind: unknown provider kind \"{other}\" (known: openai, anthropic, gemini; \"openai\" covers every OpenAI-compatible server)"
                ));
                ProviderKind::OpenAi
            }
        };
        let base_url = match interpolate(&p.base_url, env) {
            Ok(url) => match parse_base_url(&url) {
                Ok(uri) => Some(uri),
                Err(e) => {
                    problems.push(format!("{at}.base_url: {e}"));
                    None
                }
            },
            Err(e) => {
                problems.push(format!("{at}.base_url: {e}"));
                None
            }
        };
        let mut disabled_reason = None;
        let api_key = match p.api_key.as_deref().map(|k| interpolate(k, env)) {
            None => None,
            Some(Ok(key)) if key.is_empty() => {
                disabled_reason = Some("its api_key is empty".to_string());
                None
            }
            Some(Ok(key)) => {
                if HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
                    problems.push(format!(
                        "{at}.api_key: contains characters not allowed in an HTTP header"
                    ));
                }
                Some(Secret(key))
            }
            Some(Err(InterpolationError::Unset(var))) => {
                disabled_reason = Some(format!("environment variable {var} is not set"));
                None
            }
            Some(Err(e)) => {
                problems.push(format!("{at}.api_key: {e}"));
                None
            }
        };
        let mut headers = Vec::new();
        for (name, value) in &p.headers {
            let header_name = match HeaderName::from_bytes(name.as_bytes()) {
                Ok(n) => n,
                Err(_) => {
                    problems.push(format!("{at}.headers.{name}: not a valid HTTP header name"));
                    continue;
                }
            };
            match interpolate(value, env) {
                Ok(v) => match HeaderValue::from_str(&v) {
                    Ok(mut hv) => {
                        hv.set_sensitive(true);
                        headers.push((header_name, hv));
                    }
                    Err(_) => problems.push(format!(
                        "{at}.headers.{name}: not a valid HTTP header value"
                    )),
                },
                Err(e) => problems.push(format!("{at}.headers.{name}: {e}")),
            }
        }
        for (field, value) in [
            ("connect_timeout_ms", p.connect_timeout_ms),
            ("timeout_ms", p.timeout_ms),
            ("idle_timeout_ms", p.idle_timeout_ms),
            ("default_max_tokens", p.default_max_tokens),
        ] {
            if value == 0 {
                problems.push(format!("{at}.{field}: must be greater than 0"));
            }
        }
        if let Some(base_url) = base_url {
            providers.push(ProviderConfig {
                name: p.name,
                kind,
                base_url,
                api_key,
                headers,
                connect_timeout: Duration::from_millis(p.connect_timeout_ms),
                timeout: Duration::from_millis(p.timeout_ms),
                idle_timeout: Duration::from_millis(p.idle_timeout_ms),
                total_timeout: (p.total_timeout_ms > 0)
                    .then(|| Duration::from_millis(p.total_timeout_ms)),
                max_in_flight: (p.max_in_flight > 0).then_some(p.max_in_flight),
                default_max_tokens: p.default_max_tokens,
                stream_usage: p.stream_usage,
                disabled_reason,
            });
        }
    }

    (providers, provider_names)
}

fn parse_base_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("\"{url}\" is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
            "\"{url}\" must start with http:// or https:// (hint: \"https://api.openai.com/v1\")"
        ))
        }
    }
    if uri.authority().is_none() {
        return Err(format!("\"{url}\" has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("\"{url}\" must not have a query string"));
    }
    Ok(uri)
}
