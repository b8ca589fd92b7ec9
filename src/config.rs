//! `gateway.toml` -> validated [`Config`].
//!
//! Two stages: strict raw structs (`deny_unknown_fields`, with `serde_path_to_error` so a bad key
//! is named by its path), then validation that checks cross references and collects *every*
//! problem with its key path and a hint, so one run of `gateway check-config` shows them all.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

mod anonymous;
mod chat;
mod cors;
mod identity;
mod limits;
mod metering;
mod models;
mod pricing;
mod providers;
mod routing;
mod server;

pub use anonymous::AnonymousConfig;
use anonymous::RawAnonymous;
pub use chat::ChatConfig;
use chat::RawChat;
use cors::RawCors;
pub use cors::{CorsConfig, CorsOrigins};
pub use identity::{
    AuthConfig, BetterAuthConfig, DatabaseConfig, IdentityConfig, JwtAlgorithm, JwtConfig,
    OidcConfig, SmtpSettings, SmtpTls,
};
use identity::{RawAuth, RawDatabase, RawSmtp};
pub use limits::{
    check_limit_set, limit_set_problems, FailMode, LimitBackend, LimitSet, LimitsConfig,
    RedisConfig,
};
use limits::{RawLimits, RawRedis};
pub use metering::{MeteringConfig, MetricsConfig};
use metering::{RawMetering, RawMetrics};
use models::RawModel;
pub use models::{ModelConfig, Strategy, TargetConfig};
use pricing::RawPricing;
pub use pricing::{check_price, ModelPrice, PricingConfig};
use providers::RawProvider;
pub use providers::{ProviderConfig, ProviderKind};
use routing::RawRouting;
pub use routing::RoutingConfig;
use server::RawServer;
pub use server::{ServerConfig, TlsConfig, DEFAULT_MAX_REQUEST_BYTES};

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
    #[serde(default)]
    anonymous: RawAnonymous,
    #[serde(default)]
    cors: RawCors,
    #[serde(default)]
    chat: RawChat,
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
    /// None: a request without a credential is refused (the default).
    pub anonymous: Option<AnonymousConfig>,
    /// None: no CORS headers.
    pub cors: Option<CorsConfig>,
    pub chat: ChatConfig,
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

    let server = server::server(raw.server, &mut problems);
    let auth = identity::auth(&raw.auth, env, &mut problems);
    let (providers, provider_names) = providers::providers(raw.providers, env, &mut problems);
    let models = models::models(raw.models, &provider_names, &mut problems);
    let routing = routing::routing(&raw.routing, &mut problems);
    let data_dir = server.data_dir.clone();
    let database = identity::database(raw.database, &data_dir, env, &mut problems);
    let identity = identity::identity(raw.auth, raw.smtp, env, &mut problems);
    let pricing = pricing::pricing(raw.pricing, &mut problems);
    let metering_config = metering::metering(raw.metering, &data_dir, &mut problems);
    let metrics = metering::metrics(raw.metrics, env, &mut problems);
    let redis = limits::redis(raw.redis, env, &mut problems);
    let model_known = |name: &str| {
        models
            .iter()
            .any(|m| m.name == name || m.aliases.iter().any(|a| a == name))
    };
    let anonymous = anonymous::anonymous(raw.anonymous, &model_known, &mut problems);
    // The limits plugin enforces the anonymous limits: without a [limits] section it runs on
    // its defaults (in memory), limiting nobody else.
    let raw_limits = match (raw.limits, &anonymous) {
        (None, Some(_)) => Some(RawLimits::default()),
        (given, _) => given,
    };
    let limits = limits::limits(raw_limits, redis.as_ref(), &mut problems);
    let cors = cors::cors(raw.cors, &mut problems);
    let chat = chat::chat(raw.chat, &mut problems);

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        server,
        auth,
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
        anonymous,
        cors,
        chat,
    })
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
    fn the_shortest_password_may_go_down_to_six() {
        let parse = |n: usize| {
            Config::parse(
                &format!("[auth]\nmin_password_length = {n}\n"),
                "test",
                &no_env,
            )
        };
        assert_eq!(parse(6).unwrap().identity.min_password_length, 6);
        let err = parse(5).unwrap_err();
        assert!(
            err.problems[0].starts_with("auth.min_password_length"),
            "{err}"
        );
        let default = Config::parse("", "test", &no_env).unwrap();
        assert_eq!(default.identity.min_password_length, 8);
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
