//! `gateway.toml` -> validated [`Config`].
//!
//! Two stages: strict raw structs (`deny_unknown_fields`, with `serde_path_to_error` so a bad key
//! is named by its path), then validation that checks cross references and collects *every*
//! problem with its key path and a hint, so one run of `gateway check-config` shows them all.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

mod identity;
mod limits;
mod metering;
mod pricing;

pub use identity::{
    BetterAuthConfig, DatabaseConfig, IdentityConfig, JwtAlgorithm, JwtConfig, OidcConfig,
    SmtpSettings, SmtpTls,
};
use identity::{RawAuth, RawDatabase, RawSmtp};
pub use limits::{
    check_limit_set, limit_set_problems, FailMode, LimitBackend, LimitSet, LimitsConfig,
    RedisConfig,
};
use limits::{RawLimits, RawRedis};
pub use metering::{MeteringConfig, MetricsConfig};
use metering::{RawMetering, RawMetrics};
use pricing::RawPricing;
pub use pricing::{check_price, ModelPrice, PricingConfig};

pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 25 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Raw (as written) config

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    database: RawDatabase,
    smtp: Option<RawSmtp>,
    #[serde(default)]
    routing: RawRouting,
    #[serde(default)]
    providers: Vec<RawProvider>,
    #[serde(default)]
    models: Vec<RawModel>,
    #[serde(default)]
    pricing: RawPricing,
    #[serde(default)]
    metering: RawMetering,
    #[serde(default)]
    metrics: RawMetrics,
    redis: Option<RawRedis>,
    limits: Option<RawLimits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: String,
    max_request_bytes: u64,
    drain_timeout_secs: u64,
    data_dir: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            drain_timeout_secs: 30,
            data_dir: "data".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRouting {
    retries: u32,
    retry_backoff_ms: u64,
    retry_max_backoff_ms: u64,
    retry_budget_ms: u64,
    failure_threshold: u32,
    cooldown_ms: u64,
}

impl Default for RawRouting {
    fn default() -> Self {
        Self {
            retries: 2,
            retry_backoff_ms: 200,
            retry_max_backoff_ms: 5_000,
            retry_budget_ms: 30_000,
            failure_threshold: 5,
            cooldown_ms: 30_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
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
fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    fallbacks: Vec<String>,
    targets: Vec<RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    provider: String,
    model: Option<String>,
    #[serde(default = "default_weight")]
    weight: u32,
    max_in_flight: Option<u32>,
    timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Validated config

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub database: DatabaseConfig,
    pub identity: IdentityConfig,
    pub routing: RoutingConfig,
    pub providers: Vec<ProviderConfig>,
    pub models: Vec<ModelConfig>,
    pub pricing: PricingConfig,
    pub metering: MeteringConfig,
    pub metrics: MetricsConfig,
    pub redis: Option<RedisConfig>,
    /// None: no limits (the limits plugin is not in the chain).
    pub limits: Option<LimitsConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_request_bytes: u64,
    pub drain_timeout: Duration,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub master_keys: Vec<Secret>,
    /// When no master key is configured: make one under `data_dir` (true) or refuse to start.
    pub generate_master_key: bool,
}

/// Retries and passive health, the same for every model.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// Extra attempts on one target after a connect error, timeout, 429 or 5xx.
    pub retries: u32,
    /// The first back-off; it doubles per retry (with jitter) up to `retry_max_backoff`.
    pub retry_backoff: Duration,
    pub retry_max_backoff: Duration,
    /// No new attempt starts once this much time has gone since the request arrived.
    pub retry_budget: Duration,
    /// Consecutive failures that take a target out of rotation.
    pub failure_threshold: u32,
    /// How long a failing target stays out before one request probes it.
    pub cooldown: Duration,
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

/// How a model spreads requests over its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Random, in proportion to the targets' weights.
    Weighted,
    /// The order written, the next one only when the one before fails.
    Priority,
    /// The target with the fewest requests in flight.
    LeastBusy,
    /// The target with the lowest recent time to response headers.
    Latency,
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

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub name: String,
    pub aliases: Vec<String>,
    pub strategy: Strategy,
    /// Other models tried, in order, when every target of this one failed.
    pub fallbacks: Vec<String>,
    pub targets: Vec<TargetConfig>,
}

/// One deployment of a model. Unset limits and timeouts come from the provider.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub provider: String,
    pub model: String,
    pub weight: u32,
    pub max_in_flight: Option<u32>,
    pub timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub total_timeout: Option<Duration>,
}

/// A string that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Every problem found in a config file, each with its key path.
#[derive(Debug)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration in {}:", self.source_name)?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a config file, resolving `${ENV}` references from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: path.display().to_string(),
            problems: vec![format!("cannot read file: {e}")],
        })?;
        Self::parse(&text, &path.display().to_string(), &|name| {
            std::env::var(name).ok()
        })
    }

    /// Parses config text; `env` resolves `${NAME}` references (tests pass their own).
    pub fn parse(
        text: &str,
        source_name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            source_name: source_name.to_string(),
            problems,
        };
        let deserializer = toml::de::Deserializer::parse(text)
            .map_err(|e| fail(vec![format!("TOML syntax: {}", e.to_string().trim())]))?;
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let message = first_meaningful_line(&inner);
            fail(vec![if path == "." {
                message
            } else {
                format!("{path}: {message}")
            }])
        })?;
        validate(raw, env).map_err(fail)
    }
}

/// toml's messages quote the offending source; keep the line that explains the problem.
fn first_meaningful_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with("TOML parse error"))
        .find(|l| !l.chars().all(|c| c == '^' || c.is_whitespace()))
        .unwrap_or(message.trim())
        .to_string()
}

fn validate(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<String>> {
    let mut problems = Vec::new();

    let listen = match raw.server.listen.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            problems.push(format!(
                "server.listen: \"{}\" is not an address (hint: \"127.0.0.1:8080\" or \"0.0.0.0:8080\")",
                raw.server.listen
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    };
    if raw.server.max_request_bytes == 0 {
        problems.push("server.max_request_bytes: must be greater than 0".into());
    }

    let mut master_keys = Vec::new();
    for (i, key) in raw.auth.master_keys.iter().enumerate() {
        match interpolate(key, env) {
            Ok(value) if value.is_empty() => {}
            Ok(value) if value.len() < 8 => problems.push(format!(
                "auth.master_keys[{i}]: a master key must be at least 8 characters long"
            )),
            Ok(value) => master_keys.push(Secret(value)),
            Err(e) => problems.push(format!("auth.master_keys[{i}]: {e}")),
        }
    }

    let mut providers = Vec::new();
    let mut provider_names = HashSet::new();
    for (i, p) in raw.providers.into_iter().enumerate() {
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

    let mut models = Vec::new();
    let mut model_names = HashSet::new();
    for (i, m) in raw.models.into_iter().enumerate() {
        let at = format!("models[{i}]");
        if m.name.trim().is_empty() {
            problems.push(format!("{at}.name: must not be empty"));
        }
        for (j, name) in std::iter::once(&m.name).chain(&m.aliases).enumerate() {
            if !model_names.insert(name.clone()) {
                let key = if j == 0 {
                    format!("{at}.name")
                } else {
                    format!("{at}.aliases[{}]", j - 1)
                };
                problems.push(format!(
                    "{key}: the model name \"{name}\" is already used by another model or alias"
                ));
            }
        }
        if m.targets.is_empty() {
            problems.push(format!(
                "{at}.targets: a model needs at least one target (hint: targets = [{{ provider = \"openai\", model = \"{}\" }}])",
                m.name
            ));
        }
        let mut targets = Vec::new();
        for (j, t) in m.targets.into_iter().enumerate() {
            if !provider_names.contains(&t.provider) {
                let mut known: Vec<_> = provider_names.iter().map(String::as_str).collect();
                known.sort_unstable();
                problems.push(format!(
                    "{at}.targets[{j}].provider: no provider named \"{}\" (known: {})",
                    t.provider,
                    if known.is_empty() {
                        "none; add a [[providers]] table".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            let target_at = format!("{at}.targets[{j}]");
            if t.weight == 0 {
                problems.push(format!(
                    "{target_at}.weight: must be at least 1 (remove the target to take it out)"
                ));
            }
            let positive = |field: &str, value: Option<u64>, problems: &mut Vec<String>| {
                if value == Some(0) {
                    problems.push(format!("{target_at}.{field}: must be greater than 0"));
                }
                value.map(Duration::from_millis)
            };
            let timeout = positive("timeout_ms", t.timeout_ms, &mut problems);
            let idle_timeout = positive("idle_timeout_ms", t.idle_timeout_ms, &mut problems);
            let total_timeout = positive("total_timeout_ms", t.total_timeout_ms, &mut problems);
            if t.max_in_flight == Some(0) {
                problems.push(format!("{target_at}.max_in_flight: must be greater than 0"));
            }
            targets.push(TargetConfig {
                model: t.model.unwrap_or_else(|| m.name.clone()),
                provider: t.provider,
                weight: t.weight,
                max_in_flight: t.max_in_flight,
                timeout,
                idle_timeout,
                total_timeout,
            });
        }
        let strategy = match m.strategy.as_deref() {
            None | Some("weighted") => Strategy::Weighted,
            Some("priority") => Strategy::Priority,
            Some("least_busy") => Strategy::LeastBusy,
            Some("latency") => Strategy::Latency,
            Some(other) => {
                problems.push(format!(
                    "{at}.strategy: unknown strategy \"{other}\" (known: weighted, priority, least_busy, latency)"
                ));
                Strategy::Weighted
            }
        };
        models.push(ModelConfig {
            name: m.name,
            aliases: m.aliases,
            strategy,
            fallbacks: m.fallbacks,
            targets,
        });
    }

    // Fallbacks name models (or aliases) defined anywhere in the file.
    for (i, m) in models.iter().enumerate() {
        for (j, fallback) in m.fallbacks.iter().enumerate() {
            if !model_names.contains(fallback) {
                problems.push(format!(
                    "models[{i}].fallbacks[{j}]: no model named \"{fallback}\""
                ));
            } else if *fallback == m.name || m.aliases.contains(fallback) {
                problems.push(format!(
                    "models[{i}].fallbacks[{j}]: a model cannot fall back to itself"
                ));
            }
        }
    }

    let r = &raw.routing;
    for (field, value) in [
        ("retry_backoff_ms", r.retry_backoff_ms),
        ("retry_max_backoff_ms", r.retry_max_backoff_ms),
        ("retry_budget_ms", r.retry_budget_ms),
        ("cooldown_ms", r.cooldown_ms),
        ("failure_threshold", u64::from(r.failure_threshold)),
    ] {
        if value == 0 {
            problems.push(format!("routing.{field}: must be greater than 0"));
        }
    }
    let routing = RoutingConfig {
        retries: r.retries,
        retry_backoff: Duration::from_millis(r.retry_backoff_ms),
        retry_max_backoff: Duration::from_millis(r.retry_max_backoff_ms.max(r.retry_backoff_ms)),
        retry_budget: Duration::from_millis(r.retry_budget_ms),
        failure_threshold: r.failure_threshold,
        cooldown: Duration::from_millis(r.cooldown_ms),
    };

    let data_dir = PathBuf::from(raw.server.data_dir);
    let database = identity::database(raw.database, &data_dir, env, &mut problems);
    let generate_master_key = raw.auth.generate_master_key;
    let identity = identity::identity(raw.auth, raw.smtp, env, &mut problems);
    let pricing = pricing::pricing(raw.pricing, &mut problems);
    let metering_config = metering::metering(raw.metering, &data_dir, &mut problems);
    let metrics = metering::metrics(raw.metrics, env, &mut problems);
    let redis = limits::redis(raw.redis, env, &mut problems);
    let limits = limits::limits(raw.limits, redis.as_ref(), &mut problems);

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        server: ServerConfig {
            listen,
            max_request_bytes: raw.server.max_request_bytes,
            drain_timeout: Duration::from_secs(raw.server.drain_timeout_secs),
            data_dir,
        },
        auth: AuthConfig {
            master_keys,
            generate_master_key,
        },
        database,
        identity,
        routing,
        providers,
        models,
        pricing,
        metering: metering_config,
        metrics,
        redis,
        limits,
    })
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

#[derive(Debug, PartialEq, Eq)]
pub enum InterpolationError {
    Unset(String),
    Malformed(String),
}

impl fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unset(var) => write!(
                f,
                "environment variable {var} is not set (hint: ${{{var}:-default}} gives a fallback)"
            ),
            Self::Malformed(text) => write!(f, "unterminated ${{...}} in \"{text}\""),
        }
    }
}

/// Replaces `${NAME}` and `${NAME:-fallback}` with values from `env`.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| InterpolationError::Malformed(text.to_string()))?;
        let expr = &after[..end];
        let (name, fallback) = match expr.split_once(":-") {
            Some((name, fallback)) => (name, Some(fallback)),
            None => (expr, None),
        };
        match (env(name).filter(|v| !v.is_empty()), fallback) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(fallback)) => out.push_str(fallback),
            (None, None) => return Err(InterpolationError::Unset(name.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn interpolates_variables_and_fallbacks() {
        let env = |name: &str| (name == "KEY").then(|| "v".to_string());
        assert_eq!(interpolate("a${KEY}b", &env).unwrap(), "avb");
        assert_eq!(interpolate("${NOPE:-x}", &env).unwrap(), "x");
        assert_eq!(
            interpolate("${NOPE}", &env),
            Err(InterpolationError::Unset("NOPE".into()))
        );
        assert!(matches!(
            interpolate("${OPEN", &env),
            Err(InterpolationError::Malformed(_))
        ));
    }

    #[test]
    fn names_the_key_path_of_a_bad_reference() {
        let text = r#"
[[providers]]
name = "openai"
base_url = "https://api.openai.com/v1"

[[models]]
name = "a"
targets = [{ provider = "openai" }]

[[models]]
name = "b"
targets = [{ provider = "openai" }]

[[models]]
name = "c"
targets = [{ provider = "opnai", model = "gpt-4o" }]
"#;
        let err = Config::parse(text, "test", &no_env).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.problems[0]
                .starts_with("models[2].targets[0].provider: no provider named \"opnai\""),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_keys_with_their_path() {
        let text = "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n";
        let err = Config::parse(text, "test", &no_env).unwrap_err();
        assert!(err.problems[0].contains("lisen"), "{err}");
        assert!(err.problems[0].starts_with("server"), "{err}");
    }

    #[test]
    fn provider_without_key_is_disabled_not_fatal() {
        let text = r#"
[[providers]]
name = "openai"
base_url = "https://api.openai.com/v1"
api_key = "${OPENAI_API_KEY}"
"#;
        let config = Config::parse(text, "test", &no_env).unwrap();
        assert!(config.providers[0]
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("OPENAI_API_KEY"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let env = |name: &str| (name == "K").then(|| "sk-very-secret".to_string());
        let text = "[auth]\nmaster_keys = [\"${K}\"]\njwt_secret = \"${K}-long-enough-for-a-jwt-secret\"\n[database]\nurl = \"postgres://u:${K}@db/x\"\n";
        let config = Config::parse(text, "test", &env).unwrap();
        assert!(!format!("{config:?}").contains("sk-very-secret"));
    }

    #[test]
    fn collects_several_problems_at_once() {
        let text = r#"
[server]
listen = "nowhere"

[[providers]]
name = "x"
kind = "azure"
base_url = "ftp://x"
"#;
        let err = Config::parse(text, "test", &no_env).unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
    }
}
