//! Identity: who a caller is. Every credential (the master key, an API key, a JWT access token,
//! a better-auth session token or cookie) resolves to one [`Principal`].
//!
//! Resolving must not cost a database round trip per request: API keys, sessions and
//! better-auth tokens are cached (moka) for `principal_cache_ttl`, and the cache entry is
//! dropped at once on logout, revocation, password change or user deletion on this replica,
//! and (with `[redis]`) on every other replica through a Redis channel (`invalidation`);
//! without Redis other replicas see it within the TTL.
//!
//! Unknown credentials cost at most one lookup each, and only when they could be real: a
//! token of the wrong form is refused without I/O, the same token sent many times at once is
//! looked up once (single-flight), and a client address that keeps sending unknown ones is
//! refused without I/O for a while.

pub mod accounts;
pub mod api_keys;
pub mod better_auth;
pub mod error;
pub mod invalidation;
pub mod mailer;
pub mod oidc;
pub mod password;
pub mod shared_throttle;
pub mod throttle;
pub mod tokens;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use http::{header, HeaderMap};
use moka::sync::Cache;
use subtle::ConstantTimeEq;

pub use error::AuthError;

use crate::config::{Config, IdentityConfig, Secret};
use crate::context::{Principal, PrincipalKind, Role};
use crate::store::sessions::SessionOwner;
use crate::store::Store;
use better_auth::CookieVerifier;
use mailer::Mailer;
use oidc::{OidcProvider, OidcVerifier};
use shared_throttle::{Throttle, ThrottleStore};
use throttle::LoginThrottle;
use tokens::JwtKeys;

pub const SESSION_TOKEN_HEADER: &str = "x-session-token";
const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
/// API keys look like `sk-...`; the master key may too, and is checked first.
pub const API_KEY_PREFIX: &str = "sk-";

/// The key from `Authorization: Bearer <key>` (or Mem0's `Token <key>`), or from `x-api-key`
/// / `api-key` (Anthropic- and Azure-style clients).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
            return None;
        }
        let token = token.trim();
        return (!token.is_empty()).then_some(token);
    }
    ["x-api-key", "api-key"]
        .iter()
        .filter_map(|name| headers.get(*name))
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .find(|v| !v.is_empty())
}

/// A resolved credential, or the knowledge that it resolves to nothing.
#[derive(Clone)]
struct Cached {
    principal: Option<Principal>,
    expires_at: Option<DateTime<Utc>>,
}

impl Cached {
    fn live(&self) -> Option<Principal> {
        match self.expires_at {
            Some(at) if at <= Utc::now() => None,
            _ => self.principal.clone(),
        }
    }
}

pub struct Identity {
    pub store: Store,
    pub config: IdentityConfig,
    master_keys: Vec<Secret>,
    pub(crate) jwt: JwtKeys,
    /// Per account (and per reset or verification address); in Redis with `[redis]`, like the
    /// address, sign-up and reset throttles, so replicas count guesses together.
    pub(crate) throttle: Throttle,
    /// Per client address: a looser limit, against one machine guessing many accounts. It
    /// slows such an address down; it never refuses a correct password.
    pub(crate) address_throttle: Throttle,
    /// Sign-ups per client address per hour (every attempt counts).
    pub(crate) register_throttle: Throttle,
    /// Reset mails asked for per client address per hour.
    pub(crate) reset_throttle: Throttle,
    pub(crate) hashing: password::HashingPool,
    pub(crate) mailer: Arc<Mailer>,
    pub(crate) google: Option<OidcVerifier>,
    pub(crate) apple: Option<OidcVerifier>,
    cookies: Option<CookieVerifier>,
    keys: Cache<String, Cached>,
    sessions: Cache<String, Cached>,
    session_tokens: Cache<String, Cached>,
    /// Lookups in flight, by credential hash: concurrent requests with one credential share
    /// one query. An entry lives only while its lookup runs.
    loading: moka::future::Cache<String, Cached>,
    /// Unknown API keys and session tokens per client address. Kept per replica: it guards
    /// this replica's database lookups, and a Redis round trip per unknown credential would
    /// move the flood to Redis.
    credential_failures: LoginThrottle,
    /// Hashes of credentials found valid in the last hour: exempt from `credential_failures`.
    known_good: Cache<String, ()>,
    pub(crate) trusted_proxies: Arc<crate::forwarded::TrustedProxies>,
    /// Origins besides the gateway's own whose pages may send cookie-authenticated
    /// state-changing requests (`[cors]`'s list).
    cookie_origins: crate::config::CorsOrigins,
    /// With `[redis]`: revocations told to and heard from the other replicas.
    broadcast: Option<Arc<invalidation::Broadcast>>,
}

impl Identity {
    /// `jwt_secret` is used when the config names none (the binary keeps one under `data_dir`).
    pub fn new(config: &Config, store: Store, jwt_secret: &Secret) -> anyhow::Result<Identity> {
        let identity = &config.identity;
        let secret = identity.jwt.secret.as_ref().unwrap_or(jwt_secret);
        let cache = || {
            Cache::builder()
                .max_capacity(100_000)
                .time_to_live(identity.principal_cache_ttl)
                .build()
        };
        let shared = config.redis.as_ref().map(ThrottleStore::new).transpose()?;
        let shared = shared.as_ref();
        Ok(Identity {
            store,
            master_keys: config.auth.master_keys.clone(),
            jwt: JwtKeys::new(&identity.jwt, secret)?,
            throttle: Throttle::new(
                identity.login_max_failures,
                identity.login_lockout,
                shared,
                "account",
            ),
            address_throttle: Throttle::new(
                identity.login_max_failures.saturating_mul(4),
                identity.login_lockout,
                shared,
                "address",
            ),
            register_throttle: Throttle::new(
                identity.registrations_per_address_per_hour,
                HOUR,
                shared,
                "register",
            ),
            reset_throttle: Throttle::new(
                identity.password_resets_per_address_per_hour,
                HOUR,
                shared,
                "reset",
            ),
            hashing: password::HashingPool::new(
                identity.password_hash_concurrency,
                identity.password_hash_queue,
            ),
            mailer: Arc::new(Mailer::new(identity.smtp.clone(), identity.log_mails)?),
            google: identity.google.as_ref().map(|g| {
                OidcVerifier::new(OidcProvider::google(
                    g.client_ids.clone(),
                    g.jwks_url.clone(),
                ))
            }),
            apple: identity.apple.as_ref().map(|a| {
                OidcVerifier::new(OidcProvider::apple(
                    a.client_ids.clone(),
                    a.jwks_url.clone(),
                ))
            }),
            cookies: identity
                .better_auth
                .as_ref()
                .map(|b| CookieVerifier::new(b.secret.clone(), &b.cookie_prefix)),
            keys: cache(),
            sessions: cache(),
            session_tokens: cache(),
            loading: moka::future::Cache::builder().max_capacity(100_000).build(),
            known_good: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
            credential_failures: LoginThrottle::new(
                identity.unknown_credentials_per_address_per_minute,
                std::time::Duration::from_secs(60),
            ),
            trusted_proxies: Arc::new(crate::forwarded::TrustedProxies::new(
                config.server.trusted_proxies.clone(),
            )),
            broadcast: config
                .redis
                .as_ref()
                .map(invalidation::Broadcast::new)
                .transpose()?
                .map(Arc::new),
            cookie_origins: config
                .cors
                .as_ref()
                .map_or(crate::config::CorsOrigins::List(Vec::new()), |c| {
                    c.origins.clone()
                }),
            config: identity.clone(),
        })
    }

    /// [`Self::authenticate`] for a request with `method`: a state-changing request signed in
    /// only by the better-auth cookie must come from the gateway's own origin or a `[cors]`
    /// one (a browser names it in `Origin`), or another site's page could make the browser
    /// send it with the user's cookie (CSRF). Header credentials need no such check: no other
    /// site can make a browser attach them.
    pub async fn authenticate_request(
        &self,
        method: &http::Method,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthError> {
        let principal = self.authenticate(headers).await?;
        let by_cookie_only = bearer_token(headers).is_none()
            && headers.get(SESSION_TOKEN_HEADER).is_none()
            && principal.kind == PrincipalKind::SessionToken;
        let safe = matches!(
            *method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        if by_cookie_only && !safe && !self.origin_allowed(headers) {
            return Err(AuthError::CrossSite);
        }
        Ok(principal)
    }

    /// No `Origin` (not a browser), the request's own host, or a configured origin.
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let own = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let same_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, host)| Some(host) == own);
        same_host
            || match &self.cookie_origins {
                crate::config::CorsOrigins::Any => true,
                crate::config::CorsOrigins::List(list) => list.iter().any(|o| o == origin),
            }
    }

    /// Who sent these headers. Tries, in order: the bearer token (master key, API key, access
    /// token, then a better-auth session token), `X-Session-Token`, the better-auth cookie.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        if let Some(token) = bearer_token(headers) {
            if self.is_master_key(token) {
                return Ok(Principal::master());
            }
            if token.starts_with(API_KEY_PREFIX) {
                return self.api_key(token, headers).await;
            }
            if tokens::looks_like_jwt(token) {
                return self.access_token(token).await;
            }
            return self.session_token(token, headers).await;
        }
        if let Some(token) = headers
            .get(SESSION_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            return self.session_token(token, headers).await;
        }
        if let Some(token) = self
            .cookies
            .as_ref()
            .and_then(|c| c.token_from_headers(headers))
        {
            return self.session_token(&token, headers).await;
        }
        Err(AuthError::Unauthenticated)
    }

    /// Every key compared in constant time, and all of them, so timing tells nothing.
    fn is_master_key(&self, token: &str) -> bool {
        let mut matched = subtle::Choice::from(0u8);
        for key in &self.master_keys {
            matched |= key.expose().as_bytes().ct_eq(token.as_bytes());
        }
        bool::from(matched)
    }

    /// A credential missing from `cache`: refused without I/O for an address that has sent
    /// many unknown ones lately, else `load`ed once however many requests wait for it.
    async fn resolve_uncached(
        &self,
        cache: &Cache<String, Cached>,
        hash: String,
        headers: &HeaderMap,
        load: impl std::future::Future<Output = Result<Cached, AuthError>>,
    ) -> Result<Cached, AuthError> {
        let address = self
            .trusted_proxies
            .current_client(headers)
            .map(|a| format!("credential:{a}"));
        // A credential that was valid lately is looked up even from a throttled address: a
        // flood of random keys from a shared address (a NAT, a balancer) must not lock out the
        // real callers behind it when their cache entries expire. Guessing a known one's hash
        // is as hard as guessing the credential.
        if let Some(key) = address
            .as_ref()
            .filter(|_| !self.known_good.contains_key(&hash))
        {
            self.credential_failures
                .check(key)
                .map_err(AuthError::Throttled)?;
        }
        let entry = self
            .loading
            .entry(hash.clone())
            .or_try_insert_with(load)
            .await
            .map_err(|e| AuthError::Internal(anyhow::anyhow!("{e}")))?;
        // Fresh: this request ran the lookup (the others waited for it): only it counts.
        let looked_up = entry.is_fresh();
        let cached = entry.into_value();
        // Cached before the in-flight entry goes, so no request finds neither.
        cache.insert(hash.clone(), cached.clone());
        self.loading.invalidate(&hash).await;
        match (&cached.principal, &address) {
            (Some(_), _) => self.known_good.insert(hash, ()),
            (None, Some(key)) if looked_up => self.credential_failures.record_failure(key),
            _ => {}
        }
        Ok(cached)
    }

    async fn api_key(&self, token: &str, headers: &HeaderMap) -> Result<Principal, AuthError> {
        if !tokens::plausible_api_key(token) {
            return Err(AuthError::InvalidToken);
        }
        let hash = tokens::token_hash(token);
        if let Some(cached) = self.keys.get(&hash) {
            return cached.live().ok_or(AuthError::InvalidToken);
        }
        let load = async {
            metrics::counter!("gateway_credential_lookups_total", "kind" => "api_key").increment(1);
            let owner = self.store.api_key_by_hash(&hash).await?;
            Ok(key_entry(owner))
        };
        let cached = self
            .resolve_uncached(&self.keys, hash.clone(), headers, load)
            .await?;
        cached.live().ok_or(AuthError::InvalidToken)
    }

    async fn access_token(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.jwt.verify(token).ok_or(AuthError::InvalidToken)?;
        let principal = match self.sessions.get(&claims.sid) {
            Some(cached) => cached.live(),
            None => {
                let owner = self.store.session_owner(&claims.sid).await?;
                let cached = owner_entry(owner, PrincipalKind::AccessToken);
                self.sessions.insert(claims.sid.clone(), cached.clone());
                cached.live()
            }
        };
        principal
            .filter(|p| *p.id == *claims.sub)
            .ok_or(AuthError::InvalidToken)
    }

    async fn session_token(
        &self,
        token: &str,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthError> {
        if !tokens::plausible_session_token(token) {
            return Err(AuthError::InvalidToken);
        }
        let hash = tokens::token_hash(token);
        if let Some(cached) = self.session_tokens.get(&hash) {
            return cached.live().ok_or(AuthError::InvalidToken);
        }
        let load = async {
            metrics::counter!("gateway_credential_lookups_total", "kind" => "session_token")
                .increment(1);
            let owner = self.store.session_owner_by_token(token).await?;
            Ok(owner_entry(owner, PrincipalKind::SessionToken))
        };
        let cached = self
            .resolve_uncached(&self.session_tokens, hash.clone(), headers, load)
            .await?;
        cached.live().ok_or(AuthError::InvalidToken)
    }

    /// Forget cached sessions (logout, password change, user deletion), here and on every
    /// other replica.
    pub(crate) fn forget_sessions(&self, session_ids: &[String]) {
        for id in session_ids {
            self.forget(invalidation::Forget::Session(id.clone()));
        }
        // better-auth tokens are keyed by token, not session id: drop them all; they are
        // re-read on next use.
        if !session_ids.is_empty() {
            self.forget(invalidation::Forget::SessionTokens);
        }
    }

    pub(crate) fn forget_key(&self, key_hash: &str) {
        self.forget(invalidation::Forget::Key(key_hash.to_string()));
    }

    fn forget(&self, forget: invalidation::Forget) {
        self.apply(&forget);
        if let Some(broadcast) = &self.broadcast {
            broadcast.publish(&forget);
        }
    }

    /// Drops one cache entry here (another replica's revocation, or our own).
    pub(crate) fn apply(&self, forget: &invalidation::Forget) {
        match forget {
            invalidation::Forget::Session(id) => self.sessions.invalidate(id),
            invalidation::Forget::Key(hash) => self.keys.invalidate(hash),
            invalidation::Forget::SessionTokens => self.session_tokens.invalidate_all(),
        }
    }

    /// Drops every cached credential (revocations may have been missed).
    pub(crate) fn forget_all_cached(&self) {
        self.keys.invalidate_all();
        self.sessions.invalidate_all();
        self.session_tokens.invalidate_all();
    }

    /// With `[redis]`: starts applying the other replicas' revocations (until `self` is gone).
    pub fn listen_for_revocations(self: &Arc<Self>) {
        if let Some(broadcast) = &self.broadcast {
            broadcast.listen(Arc::downgrade(self));
        }
    }
}

fn key_entry(owner: Option<crate::store::api_keys::KeyOwner>) -> Cached {
    match owner {
        Some(owner) if owner.banned != Some(true) => Cached {
            principal: Some(Principal {
                id: Arc::from(owner.key.user_id.as_str()),
                kind: PrincipalKind::ApiKey,
                // An admin's key is an admin credential only when made with the scope.
                role: if owner.key.admin {
                    Role::from_db(owner.role.as_deref())
                } else {
                    Role::User
                },
                key_id: Some(Arc::from(owner.key.id.as_str())),
                session_id: None,
                allowed_models: owner.key.models().map(Arc::from),
            }),
            expires_at: owner.key.expires_at,
        },
        _ => Cached {
            principal: None,
            expires_at: None,
        },
    }
}

fn owner_entry(owner: Option<SessionOwner>, kind: PrincipalKind) -> Cached {
    match owner {
        Some(owner) if !owner.user.is_banned() => Cached {
            principal: Some(Principal {
                id: Arc::from(owner.user.id.as_str()),
                kind,
                role: Role::from_db(owner.user.role.as_deref()),
                key_id: None,
                session_id: Some(Arc::from(owner.session_id.as_str())),
                allowed_models: None,
            }),
            expires_at: Some(owner.expires_at),
        },
        _ => Cached {
            principal: None,
            expires_at: None,
        },
    }
}
