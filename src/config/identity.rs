//! The `[database]`, `[auth]` (beyond master keys) and `[smtp]` sections: raw shapes and their
//! validation, kept apart from the proxy's config.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{interpolate, InterpolationError, Secret};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDatabase {
    url: Option<String>,
    auto_migrate: bool,
    max_connections: u32,
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: None,
            auto_migrate: true,
            max_connections: 10,
        }
    }
}

/// `[auth]`: the master keys (validated by the parent) and the identity keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuth {
    pub(super) master_keys: Vec<String>,
    pub(super) generate_master_key: bool,
    jwt_algorithm: String,
    jwt_secret: Option<String>,
    jwt_private_key_file: Option<String>,
    jwt_public_key_file: Option<String>,
    jwt_issuer: String,
    access_token_ttl_secs: u64,
    refresh_token_ttl_secs: u64,
    password_reset_ttl_secs: u64,
    allow_registration: bool,
    min_password_length: usize,
    login_max_failures: u32,
    login_lockout_secs: u64,
    principal_cache_ttl_secs: u64,
    reset_url: Option<String>,
    verify_email_url: Option<String>,
    log_mails: bool,
    registrations_per_address_per_hour: u32,
    password_resets_per_address_per_hour: u32,
    login_address_delay_ms: u64,
    unknown_credentials_per_address_per_minute: u32,
    password_hash_concurrency: usize,
    password_hash_queue: usize,
    google: Option<RawOidc>,
    apple: Option<RawOidc>,
    better_auth: Option<RawBetterAuth>,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            master_keys: Vec::new(),
            generate_master_key: true,
            jwt_algorithm: "HS256".into(),
            jwt_secret: None,
            jwt_private_key_file: None,
            jwt_public_key_file: None,
            jwt_issuer: "gateway".into(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            password_reset_ttl_secs: 3600,
            // Closed: an open sign-up on a gateway with provider keys lets strangers spend them.
            allow_registration: false,
            min_password_length: 8,
            login_max_failures: 5,
            login_lockout_secs: 15 * 60,
            principal_cache_ttl_secs: 30,
            reset_url: None,
            verify_email_url: None,
            log_mails: false,
            registrations_per_address_per_hour: 10,
            password_resets_per_address_per_hour: 10,
            login_address_delay_ms: 1_000,
            unknown_credentials_per_address_per_minute: 60,
            password_hash_concurrency: 0,
            password_hash_queue: 64,
            google: None,
            apple: None,
            better_auth: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    client_ids: Vec<String>,
    jwks_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBetterAuth {
    secret: String,
    #[serde(default = "default_cookie_prefix")]
    cookie_prefix: String,
}

fn default_cookie_prefix() -> String {
    "better-auth".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    host: String,
    #[serde(default = "default_smtp_port")]
    port: u16,
    username: Option<String>,
    password: Option<String>,
    from: String,
    #[serde(default = "default_smtp_tls")]
    tls: String,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> String {
    "starttls".into()
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://...`. Holds a password: never logged.
    pub url: Secret,
    pub auto_migrate: bool,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    /// HS256 secret; when unset the binary keeps a generated one under `data_dir`.
    pub secret: Option<Secret>,
    pub private_key_file: Option<PathBuf>,
    pub public_key_file: Option<PathBuf>,
    pub issuer: String,
    pub access_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub client_ids: Vec<String>,
    pub jwks_url: Option<http::Uri>,
}

#[derive(Debug, Clone)]
pub struct BetterAuthConfig {
    pub secret: Secret,
    pub cookie_prefix: String,
}

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub jwt: JwtConfig,
    pub refresh_ttl: Duration,
    pub password_reset_ttl: Duration,
    pub allow_registration: bool,
    pub min_password_length: usize,
    /// Failed logins per account (and per client address) before a lock-out; 0 turns it off.
    pub login_max_failures: u32,
    pub login_lockout: Duration,
    /// How long a resolved API key or session is trusted without asking the database.
    pub principal_cache_ttl: Duration,
    /// The link mailed for a password reset; `{token}` is replaced. Unset: the token alone.
    pub reset_url: Option<String>,
    /// The link mailed to verify an email address; `{token}` is replaced. Unset: the token.
    pub verify_email_url: Option<String>,
    /// Development only: with no `[smtp]`, write mails (links included) to the log at DEBUG.
    /// Off, mail-sending requests answer 503 without SMTP.
    pub log_mails: bool,
    /// Sign-ups per client address per hour (0: unlimited).
    pub registrations_per_address_per_hour: u32,
    /// Reset mails asked for per client address per hour (0: unlimited).
    pub password_resets_per_address_per_hour: u32,
    /// How long a login from an address with many recent failures waits before its password
    /// is checked: slows a guesser down without refusing a correct password.
    pub login_address_delay: Duration,
    /// Unknown API keys or session tokens one client address may send per minute before its
    /// next unknown one is refused (429) without a database lookup (0: no limit).
    pub unknown_credentials_per_address_per_minute: u32,
    /// argon2 runs at once (0: one per core), and how many more may wait.
    pub password_hash_concurrency: usize,
    pub password_hash_queue: usize,
    pub google: Option<OidcConfig>,
    pub apple: Option<OidcConfig>,
    pub better_auth: Option<BetterAuthConfig>,
    pub smtp: Option<SmtpSettings>,
}

pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn resolve(value: &str, at: &str, env: Env, problems: &mut Vec<String>) -> Option<String> {
    match interpolate(value, env) {
        Ok(v) => Some(v),
        Err(e @ (InterpolationError::Unset(_) | InterpolationError::Malformed(_))) => {
            problems.push(format!("{at}: {e}"));
            None
        }
    }
}

pub(super) fn database(
    raw: RawDatabase,
    data_dir: &Path,
    env: Env,
    problems: &mut Vec<String>,
) -> DatabaseConfig {
    let url = match raw.url {
        Some(url) => resolve(&url, "database.url", env, problems).unwrap_or_default(),
        None => env("DATABASE_URL")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("gateway.db").display())),
    };
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        problems.push(
            "database.url: must start with sqlite: or postgres:// (hint: \"sqlite://data/gateway.db\")"
                .into(),
        );
    }
    if raw.max_connections == 0 {
        problems.push("database.max_connections: must be greater than 0".into());
    }
    DatabaseConfig {
        url: Secret::new(url),
        auto_migrate: raw.auto_migrate,
        max_connections: raw.max_connections,
    }
}

pub(super) fn identity(
    raw: RawAuth,
    smtp: Option<RawSmtp>,
    env: Env,
    problems: &mut Vec<String>,
) -> IdentityConfig {
    let algorithm = match raw.jwt_algorithm.to_ascii_uppercase().as_str() {
        "HS256" => JwtAlgorithm::Hs256,
        "RS256" => JwtAlgorithm::Rs256,
        "ES256" => JwtAlgorithm::Es256,
        other => {
            problems.push(format!(
                "auth.jwt_algorithm: unknown algorithm \"{other}\" (known: HS256, RS256, ES256)"
            ));
            JwtAlgorithm::Hs256
        }
    };
    let secret = raw
        .jwt_secret
        .and_then(|s| resolve(&s, "auth.jwt_secret", env, problems))
        .filter(|s| !s.is_empty());
    if let Some(secret) = &secret {
        if secret.len() < 32 {
            problems.push("auth.jwt_secret: must be at least 32 characters".into());
        }
    }
    if algorithm != JwtAlgorithm::Hs256
        && (raw.jwt_private_key_file.is_none() || raw.jwt_public_key_file.is_none())
    {
        problems.push(format!(
            "auth.jwt_private_key_file, auth.jwt_public_key_file: {} needs both PEM files",
            raw.jwt_algorithm
        ));
    }
    for (field, value) in [
        ("access_token_ttl_secs", raw.access_token_ttl_secs),
        ("refresh_token_ttl_secs", raw.refresh_token_ttl_secs),
        ("password_reset_ttl_secs", raw.password_reset_ttl_secs),
        ("login_lockout_secs", raw.login_lockout_secs),
    ] {
        if value == 0 {
            problems.push(format!("auth.{field}: must be greater than 0"));
        }
    }
    // 6 lets seed 004's example accounts ("secret") in; the default stays 8, and anything
    // under it is warned about at start-up.
    if raw.min_password_length < 6 {
        problems.push("auth.min_password_length: must be at least 6".into());
    }
    let oidc = |raw: Option<RawOidc>, name: &str, problems: &mut Vec<String>| {
        let raw = raw?;
        let jwks_url = raw.jwks_url.and_then(|u| match u.parse::<http::Uri>() {
            Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => Some(uri),
            _ => {
                problems.push(format!("auth.{name}.jwks_url: \"{u}\" is not a URL"));
                None
            }
        });
        if raw.client_ids.is_empty() {
            problems.push(format!(
                "auth.{name}.client_ids: list the app's client ids (token audiences)"
            ));
        }
        Some(OidcConfig {
            client_ids: raw.client_ids,
            jwks_url,
        })
    };
    let google = oidc(raw.google, "google", problems);
    let apple = oidc(raw.apple, "apple", problems);
    let better_auth = raw.better_auth.and_then(|b| {
        let secret = resolve(&b.secret, "auth.better_auth.secret", env, problems)?;
        if secret.is_empty() {
            problems.push("auth.better_auth.secret: must not be empty".into());
        }
        Some(BetterAuthConfig {
            secret: Secret::new(secret),
            cookie_prefix: b.cookie_prefix,
        })
    });
    let smtp = smtp.and_then(|s| {
        let tls = match s.tls.as_str() {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            other => {
                problems.push(format!(
                    "smtp.tls: unknown mode \"{other}\" (known: none, starttls, tls)"
                ));
                SmtpTls::StartTls
            }
        };
        let password = s
            .password
            .and_then(|p| resolve(&p, "smtp.password", env, problems))
            .map(Secret::new);
        Some(SmtpSettings {
            host: resolve(&s.host, "smtp.host", env, problems)?,
            port: s.port,
            username: s
                .username
                .and_then(|u| resolve(&u, "smtp.username", env, problems)),
            password,
            from: s.from,
            tls,
        })
    });
    IdentityConfig {
        jwt: JwtConfig {
            algorithm,
            secret: secret.map(Secret::new),
            private_key_file: raw.jwt_private_key_file.map(PathBuf::from),
            public_key_file: raw.jwt_public_key_file.map(PathBuf::from),
            issuer: raw.jwt_issuer,
            access_ttl: Duration::from_secs(raw.access_token_ttl_secs),
        },
        refresh_ttl: Duration::from_secs(raw.refresh_token_ttl_secs),
        password_reset_ttl: Duration::from_secs(raw.password_reset_ttl_secs),
        allow_registration: raw.allow_registration,
        min_password_length: raw.min_password_length,
        login_max_failures: raw.login_max_failures,
        login_lockout: Duration::from_secs(raw.login_lockout_secs),
        principal_cache_ttl: Duration::from_secs(raw.principal_cache_ttl_secs),
        reset_url: raw.reset_url,
        verify_email_url: raw.verify_email_url,
        log_mails: raw.log_mails,
        registrations_per_address_per_hour: raw.registrations_per_address_per_hour,
        password_resets_per_address_per_hour: raw.password_resets_per_address_per_hour,
        login_address_delay: Duration::from_millis(raw.login_address_delay_ms.min(10_000)),
        unknown_credentials_per_address_per_minute: raw.unknown_credentials_per_address_per_minute,
        password_hash_concurrency: raw.password_hash_concurrency,
        password_hash_queue: raw.password_hash_queue,
        google,
        apple,
        better_auth,
        smtp,
    }
}

/// The `[smtp]` section: where password-reset and other mails go.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, e.g. `Gateway <noreply@example.com>`.
    pub from: String,
    pub tls: SmtpTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text; for a relay on localhost or a test sink.
    None,
    /// Plain connection upgraded with STARTTLS (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub master_keys: Vec<Secret>,
    /// When no master key is configured: make one under `data_dir` (true) or refuse to start.
    pub generate_master_key: bool,
}

/// The master keys, each at least 8 characters; an empty one (an unset `${VAR:-}`) is skipped.
pub(super) fn auth(raw: &RawAuth, env: Env<'_>, problems: &mut Vec<String>) -> AuthConfig {
    let mut master_keys = Vec::new();
    for (i, key) in raw.master_keys.iter().enumerate() {
        match interpolate(key, env) {
            Ok(value) if value.is_empty() => {}
            Ok(value) if value.len() < 8 => problems.push(format!(
                "auth.master_keys[{i}]: a master key must be at least 8 characters long"
            )),
            Ok(value) => master_keys.push(Secret(value)),
            Err(e) => problems.push(format!("auth.master_keys[{i}]: {e}")),
        }
    }

    AuthConfig {
        master_keys,
        generate_master_key: raw.generate_master_key,
    }
}
