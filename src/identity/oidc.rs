//! "Sign in with Google / Apple": verifies a provider's ID token (a JWT) against the
//! provider's published JWKS and returns who signed in.
//!
//! Only RS256 and ES256 are accepted, and the header's `alg` must match the kind of the key its
//! `kid` names, so a token cannot pick its own verification scheme (`none`, or HS256 keyed with
//! the public key).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::providers::client::{build_client, HttpClient};

const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
const APPLE_JWKS_URL: &str = "https://appleid.apple.com/auth/keys";
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Used when the JWKS response carries no usable `Cache-Control: max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Unknown `kid`s trigger a refetch at most this often, so forged tokens cannot make us hammer
/// the provider; also the floor for `max-age`.
const MIN_REFETCH: Duration = Duration::from_secs(60);
/// After a failed fetch, callers get the failure (or stale keys) instead of waiting on another.
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
const LEEWAY_SECS: u64 = 60;
/// Real ID tokens are ~1-2 KiB; anything far larger is not worth parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The sign-in providers whose ID tokens the gateway verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInProvider {
    Google,
    Apple,
}

impl SignInProvider {
    /// The provider a path segment (`/oauth/{provider}`) names.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "google" => Some(Self::Google),
            "apple" => Some(Self::Apple),
            _ => None,
        }
    }

    /// The name stored on linked accounts and used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Apple => "apple",
        }
    }
}

/// One sign-in provider: where its keys are and what its tokens must say.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// `"google"` or `"apple"`; used in logs.
    pub name: &'static str,
    pub jwks_url: Uri,
    /// Accepted `iss` values.
    pub issuers: Vec<String>,
    /// Accepted `aud` values: the app's client ids.
    pub audiences: Vec<String>,
}

impl OidcProvider {
    pub fn google(audiences: Vec<String>, jwks_url: Option<Uri>) -> Self {
        Self {
            name: "google",
            jwks_url: jwks_url.unwrap_or_else(|| Uri::from_static(GOOGLE_JWKS_URL)),
            // Google documents both forms.
            issuers: vec![
                "https://accounts.google.com".to_owned(),
                "accounts.google.com".to_owned(),
            ],
            audiences,
        }
    }

    pub fn apple(audiences: Vec<String>, jwks_url: Option<Uri>) -> Self {
        Self {
            name: "apple",
            jwks_url: jwks_url.unwrap_or_else(|| Uri::from_static(APPLE_JWKS_URL)),
            issuers: vec!["https://appleid.apple.com".to_owned()],
            audiences,
        }
    }
}

/// What a verified ID token says about the user.
#[derive(Debug, Clone)]
pub struct IdentityClaims {
    /// The provider's stable user id (`sub`).
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    /// The `nonce` the app asked the provider to put in the token, if any.
    pub nonce: Option<String>,
}

impl IdentityClaims {
    /// Whether the token was made for the sign-in the app started with `nonce`: the token
    /// carries it as is (Google, Apple's JS flow) or its SHA-256 in hex (Apple's native flow,
    /// where the app hands Apple the hash and keeps the raw nonce). Stops a token taken from
    /// another sign-in (a leaked or phished one) from being replayed here.
    pub fn nonce_matches(&self, nonce: &str) -> bool {
        let Some(carried) = self.nonce.as_deref() else {
            return false;
        };
        let eq = |a: &str, b: &str| {
            bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
        };
        // SHA-256 in lowercase hex: the form tokens are stored in already.
        eq(carried, nonce) || eq(carried, &super::tokens::token_hash(nonce))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The token is not acceptable (401).
    #[error("invalid identity token: {0}")]
    Invalid(String),
    /// The provider's keys could not be fetched (503).
    #[error("identity provider keys unavailable: {0}")]
    Unavailable(String),
    /// No client ids are configured for this provider.
    #[error("sign-in provider not configured")]
    NotConfigured,
}

/// Verifies one provider's ID tokens. Send + Sync; share it in an `Arc`.
pub struct OidcVerifier {
    provider: OidcProvider,
    client: HttpClient,
    rs256: Validation,
    es256: Validation,
    /// Read on every verification; replaced wholesale on refresh.
    keys: RwLock<Arc<KeyCache>>,
    /// Held across a fetch so concurrent verifications do not stampede the provider.
    refresh: tokio::sync::Mutex<RefreshState>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Arc<CachedKey>>,
    /// `None` until the first successful fetch.
    expires_at: Option<Instant>,
}

impl KeyCache {
    fn is_fresh(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now < t)
    }
}

struct CachedKey {
    key: DecodingKey,
    alg: Algorithm,
}

#[derive(Default)]
struct RefreshState {
    /// When the last fetch attempt finished.
    last_attempt: Option<Instant>,
    /// Why the last attempt failed, if it did.
    last_error: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    // Optional here so a missing `sub` surfaces as jsonwebtoken's "missing required claim".
    sub: Option<String>,
    email: Option<String>,
    // Google sends a bool, Apple a "true"/"false" string (or a bool).
    email_verified: Option<serde_json::Value>,
    name: Option<String>,
    picture: Option<String>,
    nonce: Option<String>,
}

impl OidcVerifier {
    pub fn new(provider: OidcProvider) -> Self {
        // Idempotent; building the TLS client without a provider would panic.
        crate::providers::client::install_crypto_provider();
        let rs256 = validation(&provider, Algorithm::RS256);
        let es256 = validation(&provider, Algorithm::ES256);
        Self {
            client: build_client(FETCH_TIMEOUT),
            provider,
            rs256,
            es256,
            keys: RwLock::new(Arc::new(KeyCache::default())),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        }
    }

    pub fn provider(&self) -> &OidcProvider {
        &self.provider
    }

    /// Checks `id_token`'s signature, issuer, audience and expiry and returns its claims.
    pub async fn verify(&self, id_token: &str) -> Result<IdentityClaims, OidcError> {
        if self.provider.audiences.is_empty() {
            return Err(OidcError::NotConfigured);
        }
        if id_token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token too large"));
        }
        // Fails for unknown algorithms, `none` included.
        let header =
            decode_header(id_token).map_err(|_| invalid("malformed or unsupported header"))?;
        let validation = match header.alg {
            Algorithm::RS256 => &self.rs256,
            Algorithm::ES256 => &self.es256,
            other => return Err(invalid(format!("unsupported algorithm {other:?}"))),
        };
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| invalid("token has no key id"))?;
        let key = self.key_for(kid).await?;
        if key.alg != header.alg {
            return Err(invalid("algorithm does not match the signing key"));
        }
        let data = decode::<RawClaims>(id_token, &key.key, validation).map_err(jwt_error)?;
        let claims = data.claims;
        let subject = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("missing subject"))?;
        let email_verified = match claims.email_verified {
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        Ok(IdentityClaims {
            subject,
            email: claims.email,
            email_verified,
            name: claims.name,
            picture: claims.picture,
            nonce: claims.nonce,
        })
    }

    fn snapshot(&self) -> Arc<KeyCache> {
        // A poisoned lock still holds a whole `Arc`; the data cannot be torn.
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn store(&self, cache: KeyCache) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cache);
    }

    /// The key named `kid`, fetching the JWKS when the cache is empty or expired, or when `kid`
    /// is unknown and the last fetch is old enough.
    async fn key_for(&self, kid: &str) -> Result<Arc<CachedKey>, OidcError> {
        let asked = Instant::now();
        let cache = self.snapshot();
        if cache.is_fresh(asked) {
            if let Some(key) = cache.keys.get(kid) {
                return Ok(key.clone());
            }
        }

        let mut state = self.refresh.lock().await;
        let now = Instant::now();
        let cache = self.snapshot();
        if cache.is_fresh(now) {
            if let Some(key) = cache.keys.get(kid) {
                return Ok(key.clone());
            }
        }
        let since_attempt = state.last_attempt.map(|t| now.saturating_duration_since(t));
        // A fetch that finished while we queued answers for us too.
        let fetched_meanwhile = state.last_attempt.is_some_and(|t| t >= asked);
        let backing_off =
            state.last_error.is_some() && since_attempt.is_some_and(|d| d < FAILURE_BACKOFF);
        let may_fetch = !fetched_meanwhile
            && !backing_off
            && (!cache.is_fresh(now) || since_attempt.is_none_or(|d| d >= MIN_REFETCH));
        if may_fetch {
            match self.fetch().await {
                Ok(fresh) => {
                    tracing::debug!(
                        provider = self.provider.name,
                        keys = fresh.keys.len(),
                        "JWKS refreshed"
                    );
                    self.store(fresh);
                    state.last_error = None;
                }
                Err(reason) => {
                    tracing::warn!(provider = self.provider.name, %reason, "JWKS fetch failed");
                    state.last_error = Some(reason);
                }
            }
            state.last_attempt = Some(Instant::now());
        }

        // On a failed refresh, keys from an expired cache still beat refusing every sign-in.
        if let Some(key) = self.snapshot().keys.get(kid) {
            return Ok(key.clone());
        }
        match &state.last_error {
            Some(reason) => Err(OidcError::Unavailable(format!(
                "{} JWKS: {reason}",
                self.provider.name
            ))),
            None => Err(invalid("unknown signing key")),
        }
    }

    async fn fetch(&self) -> Result<KeyCache, String> {
        let request = http::Request::get(self.provider.jwks_url.clone())
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("bad request: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            if response.status() != StatusCode::OK {
                return Err(format!("status {}", response.status()));
            }
            let max_age = max_age(response.headers());
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading body: {e}"))?
                .to_bytes();
            Ok((body, max_age))
        };
        let (body, max_age) = tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| "timed out".to_owned())??;
        let keys = parse_jwks(&body)?;
        Ok(KeyCache {
            keys,
            expires_at: Some(Instant::now() + max_age),
        })
    }
}

fn validation(provider: &OidcProvider, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = LEEWAY_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_issuer(&provider.issuers);
    v.set_audience(&provider.audiences);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

fn invalid(reason: impl Into<String>) -> OidcError {
    OidcError::Invalid(reason.into())
}

/// Our own wording: jsonwebtoken's JSON errors can quote claim values.
fn jwt_error(e: jsonwebtoken::errors::Error) -> OidcError {
    invalid(match e.kind() {
        ErrorKind::ExpiredSignature => "token expired".to_owned(),
        ErrorKind::ImmatureSignature => "token not yet valid".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::InvalidAudience => "audience not allowed".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidAlgorithm => "algorithm does not match the signing key".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing claim {claim}"),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token".to_owned(),
        _ => "verification failed".to_owned(),
    })
}

/// `Cache-Control: max-age`, clamped so a provider cannot make us refetch constantly or never.
fn max_age(headers: &HeaderMap) -> Duration {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("max-age") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })
        .map(|secs| Duration::from_secs(secs).clamp(MIN_REFETCH, MAX_MAX_AGE))
        .unwrap_or(DEFAULT_MAX_AGE)
}

/// The usable signing keys, by `kid`. Keys are parsed one by one so a single key of a kind we
/// do not understand does not discard the whole set.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<CachedKey>>, String> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet = serde_json::from_slice(body).map_err(|e| format!("bad JWKS JSON: {e}"))?;
    let mut keys = HashMap::new();
    for raw in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        let (alg, declared) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                (Algorithm::ES256, KeyAlgorithm::ES256)
            }
            _ => continue,
        };
        if jwk.common.key_algorithm.is_some_and(|a| a != declared) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(kid, Arc::new(CachedKey { key, alg }));
    }
    if keys.is_empty() {
        return Err("no usable signing keys".to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use axum::extract::State;
    use axum::response::IntoResponse;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::{json, Value};

    use super::*;

    // Test-only key pairs, shared with the integration tests' JWKS server.
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/common/test_keys.rs"
    ));
    const TEST_RSA_PEM: &str = TEST_RSA_PRIVATE_PEM;
    const OTHER_RSA_PEM: &str = OTHER_RSA_PRIVATE_PEM;
    const TEST_RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvV37iFhbws+PJPU6sKP0\n\
9xlWxxeDYdQwiptZ4yU1T83WtSOGn1hu5qFSJl0EutAiwoFulFdfEPiXGR2hDu8N\n\
4d4biEeWeCH5+Jl/gjcCxpyg6aRC6ZcQ9mYjQgIDTWw4dPFHOvo/fRsPJPSgtRLO\n\
hRuxPhoV9xJPQtsScgRXPmrOF39WuyJr9iTzJcI5vi5TXE7v/QJn4e2Dy+pqUWA3\n\
M60z052wtVEbthrDBatmR3YBb8fHL37l36nTe8MfL7wZ4JDKtZLKSlnVYuVDoSV6\n\
ePhhStm1M0DmpkC7JXRhcnYfkPVBqa/hkUHkVKpoHyeknDdKtgzIt+aFK8QUD2Vr\n\
iwIDAQAB\n\
-----END PUBLIC KEY-----\n";
    const TEST_EC_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNaMawjoKONdt8lDk\n\
3O43mAV9abAmcPRaR5glDILL6e+hRANCAAQs/mtp2Z2ZUjndQpJNQlGAHHJcnu9U\n\
y/w23XZnys2vHPz+NUrcsnP7PUJLAdbF2dG6u036KjiJfMikHdNVlpcd\n\
-----END PRIVATE KEY-----\n";
    const TEST_EC_X: &str = "LP5radmdmVI53UKSTUJRgBxyXJ7vVMv8Nt12Z8rNrxw";
    const TEST_EC_Y: &str = "_P41Styyc_s9QksB1sXZ0bq7TfoqOIl8yKQd01WWlx0";

    const KID: &str = "k1";
    const AUD: &str = "client-123.apps.googleusercontent.com";

    fn rsa_jwk(kid: &str, n: &str, e: &str) -> Value {
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": n, "e": e})
    }

    fn ec_jwk(kid: &str) -> Value {
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
               "x": TEST_EC_X, "y": TEST_EC_Y})
    }

    fn default_jwks() -> Value {
        json!({"keys": [rsa_jwk(KID, TEST_RSA_N, TEST_RSA_E), ec_jwk("ec1")]})
    }

    struct ServerState {
        jwks: Mutex<Value>,
        status: AtomicU16,
        fetches: AtomicUsize,
    }

    struct Jwks {
        url: String,
        state: Arc<ServerState>,
    }

    impl Jwks {
        async fn start(jwks: Value) -> Self {
            async fn keys(State(s): State<Arc<ServerState>>) -> axum::response::Response {
                s.fetches.fetch_add(1, Ordering::SeqCst);
                let status = StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap();
                let body = s.jwks.lock().unwrap().to_string();
                (
                    status,
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (
                            header::CACHE_CONTROL,
                            "public, max-age=19000, must-revalidate",
                        ),
                    ],
                    body,
                )
                    .into_response()
            }
            let state = Arc::new(ServerState {
                jwks: Mutex::new(jwks),
                status: AtomicU16::new(200),
                fetches: AtomicUsize::new(0),
            });
            let app = axum::Router::new()
                .route("/keys", axum::routing::get(keys))
                .with_state(state.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            Self {
                url: format!("http://{addr}/keys"),
                state,
            }
        }

        fn fetches(&self) -> usize {
            self.state.fetches.load(Ordering::SeqCst)
        }

        fn verifier(&self) -> OidcVerifier {
            OidcVerifier::new(OidcProvider::google(
                vec!["other-client".into(), AUD.into()],
                Some(self.url.parse().unwrap()),
            ))
        }
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn claims() -> Value {
        json!({
            "iss": "https://accounts.google.com",
            "aud": AUD,
            "sub": "1234567890",
            "email": "user@example.com",
            "email_verified": true,
            "name": "Test User",
            "picture": "https://example.com/p.png",
            "iat": now(),
            "exp": now() + 600,
        })
    }

    fn sign(claims: &Value, kid: &str, pem: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        encode(&header, claims, &key).unwrap()
    }

    fn sign_ok(claims: &Value) -> String {
        sign(claims, KID, TEST_RSA_PEM)
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn backdate_last_attempt(v: &OidcVerifier, by: Duration) {
        let mut state = v.refresh.try_lock().unwrap();
        state.last_attempt = Some(Instant::now().checked_sub(by).unwrap());
    }

    #[track_caller]
    fn assert_invalid(result: Result<IdentityClaims, OidcError>, token: &str, needle: &str) {
        match result {
            Err(OidcError::Invalid(msg)) => {
                assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
                assert!(!msg.contains(token), "error leaks the token");
            }
            other => panic!("expected Invalid({needle}), got {other:?}"),
        }
    }

    #[test]
    fn verifier_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<OidcVerifier>();
    }

    #[tokio::test]
    async fn valid_token_accepted_with_claims() {
        let server = Jwks::start(default_jwks()).await;
        let v = server.verifier();
        let token = sign_ok(&claims());
        let c = v.verify(&token).await.unwrap();
        assert_eq!(c.subject, "1234567890");
        assert_eq!(c.email.as_deref(), Some("user@example.com"));
        assert!(c.email_verified);
        assert_eq!(c.name.as_deref(), Some("Test User"));
        assert_eq!(c.picture.as_deref(), Some("https://example.com/p.png"));
        // Cached: no second fetch.
        v.verify(&token).await.unwrap();
        assert_eq!(server.fetches(), 1);
        // The alternative issuer spelling is Google's too.
        let mut c2 = claims();
        c2["iss"] = json!("accounts.google.com");
        v.verify(&sign_ok(&c2)).await.unwrap();
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn es256_token_accepted() {
        let server = Jwks::start(default_jwks()).await;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("ec1".into());
        let key = EncodingKey::from_ec_pem(TEST_EC_PEM.as_bytes()).unwrap();
        let token = encode(&header, &claims(), &key).unwrap();
        let c = server.verifier().verify(&token).await.unwrap();
        assert_eq!(c.subject, "1234567890");
        // The same signature under an RSA kid is refused before any crypto.
        header.kid = Some(KID.into());
        let token = encode(&header, &claims(), &key).unwrap();
        assert_invalid(
            server.verifier().verify(&token).await,
            &token,
            "does not match",
        );
    }

    #[tokio::test]
    async fn apple_string_email_verified() {
        let server = Jwks::start(default_jwks()).await;
        let v = OidcVerifier::new(OidcProvider::apple(
            vec!["com.example.app".into()],
            Some(server.url.parse().unwrap()),
        ));
        let mut c = claims();
        c["iss"] = json!("https://appleid.apple.com");
        c["aud"] = json!("com.example.app");
        c["email_verified"] = json!("true");
        c.as_object_mut().unwrap().remove("name");
        let got = v.verify(&sign_ok(&c)).await.unwrap();
        assert!(got.email_verified);
        assert_eq!(got.name, None);
        c["email_verified"] = json!("false");
        assert!(!v.verify(&sign_ok(&c)).await.unwrap().email_verified);
        c.as_object_mut().unwrap().remove("email_verified");
        assert!(!v.verify(&sign_ok(&c)).await.unwrap().email_verified);
        // A Google token is not an Apple token.
        let google = sign_ok(&claims());
        assert_invalid(v.verify(&google).await, &google, "issuer");
    }

    #[tokio::test]
    async fn wrong_audience_rejected() {
        let server = Jwks::start(default_jwks()).await;
        let mut c = claims();
        c["aud"] = json!("someone-elses-app");
        let token = sign_ok(&c);
        assert_invalid(server.verifier().verify(&token).await, &token, "audience");
        // An array audience passes when it holds one of ours.
        c["aud"] = json!(["x", AUD]);
        server.verifier().verify(&sign_ok(&c)).await.unwrap();
        c.as_object_mut().unwrap().remove("aud");
        let token = sign_ok(&c);
        assert_invalid(server.verifier().verify(&token).await, &token, "aud");
    }

    #[tokio::test]
    async fn wrong_issuer_rejected() {
        let server = Jwks::start(default_jwks()).await;
        let mut c = claims();
        c["iss"] = json!("https://evil.example.com");
        let token = sign_ok(&c);
        assert_invalid(server.verifier().verify(&token).await, &token, "issuer");
    }

    #[tokio::test]
    async fn expired_rejected_within_leeway_accepted() {
        let server = Jwks::start(default_jwks()).await;
        let v = server.verifier();
        let mut c = claims();
        c["exp"] = json!(now() - 120);
        let token = sign_ok(&c);
        assert_invalid(v.verify(&token).await, &token, "expired");
        c["exp"] = json!(now() - 30);
        v.verify(&sign_ok(&c)).await.unwrap();
    }

    #[tokio::test]
    async fn missing_sub_rejected() {
        let server = Jwks::start(default_jwks()).await;
        let mut c = claims();
        c.as_object_mut().unwrap().remove("sub");
        let token = sign_ok(&c);
        assert_invalid(server.verifier().verify(&token).await, &token, "sub");
        c["sub"] = json!("");
        let token = sign_ok(&c);
        assert_invalid(server.verifier().verify(&token).await, &token, "subject");
    }

    #[tokio::test]
    async fn forged_signature_rejected() {
        let server = Jwks::start(default_jwks()).await;
        let token = sign(&claims(), KID, OTHER_RSA_PEM);
        assert_invalid(server.verifier().verify(&token).await, &token, "signature");
        // Tampered payload under a genuine signature.
        let genuine = sign_ok(&claims());
        let parts: Vec<&str> = genuine.split('.').collect();
        let mut c = claims();
        c["sub"] = json!("admin");
        let tampered = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
        assert_invalid(
            server.verifier().verify(&tampered).await,
            &tampered,
            "signature",
        );
    }

    #[tokio::test]
    async fn alg_none_rejected() {
        let server = Jwks::start(default_jwks()).await;
        let header = json!({"alg": "none", "typ": "JWT", "kid": KID});
        for token in [
            format!("{}.{}.", b64(&header), b64(&claims())),
            format!("{}.{}", b64(&header), b64(&claims())),
        ] {
            assert!(matches!(
                server.verifier().verify(&token).await,
                Err(OidcError::Invalid(_))
            ));
        }
        assert_eq!(server.fetches(), 0);
    }

    #[tokio::test]
    async fn hs256_with_public_key_rejected() {
        let server = Jwks::start(default_jwks()).await;
        let v = server.verifier();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KID.into());
        for secret in [
            TEST_RSA_PUBLIC_PEM.as_bytes(),
            TEST_RSA_N.as_bytes(),
            &URL_SAFE_NO_PAD.decode(TEST_RSA_N).unwrap()[..],
        ] {
            let token = encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap();
            assert_invalid(v.verify(&token).await, &token, "unsupported algorithm");
        }
        // An `oct` key in the JWKS is ignored, so HS256 cannot be smuggled in that way either.
        let secret_kid = json!({"kty": "oct", "kid": "hs", "k": URL_SAFE_NO_PAD.encode("s3cret")});
        *server.state.jwks.lock().unwrap() =
            json!({"keys": [rsa_jwk(KID, TEST_RSA_N, TEST_RSA_E), secret_kid]});
        header.kid = Some("hs".into());
        let token = encode(&header, &claims(), &EncodingKey::from_secret(b"s3cret")).unwrap();
        assert!(matches!(
            server.verifier().verify(&token).await,
            Err(OidcError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn unknown_kid_refetches_once_then_rejects() {
        let server = Jwks::start(default_jwks()).await;
        let v = server.verifier();
        v.verify(&sign_ok(&claims())).await.unwrap();
        assert_eq!(server.fetches(), 1);

        // Within a minute of the last fetch, an unknown kid is refused without a refetch.
        let token = sign(&claims(), "rotated", TEST_RSA_PEM);
        assert_invalid(v.verify(&token).await, &token, "unknown signing key");
        assert_eq!(server.fetches(), 1);

        backdate_last_attempt(&v, MIN_REFETCH + Duration::from_secs(1));
        assert_invalid(v.verify(&token).await, &token, "unknown signing key");
        assert_eq!(server.fetches(), 2);
        assert_invalid(v.verify(&token).await, &token, "unknown signing key");
        assert_eq!(server.fetches(), 2);
        // Known keys keep working.
        v.verify(&sign_ok(&claims())).await.unwrap();
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn unknown_kid_on_first_use_fetches_once() {
        let server = Jwks::start(default_jwks()).await;
        let v = server.verifier();
        let token = sign(&claims(), "nope", TEST_RSA_PEM);
        assert_invalid(v.verify(&token).await, &token, "unknown signing key");
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn rotated_key_picked_up_after_refetch() {
        let server = Jwks::start(default_jwks()).await;
        let v = server.verifier();
        v.verify(&sign_ok(&claims())).await.unwrap();
        *server.state.jwks.lock().unwrap() = json!({"keys": [
            rsa_jwk(KID, TEST_RSA_N, TEST_RSA_E),
            rsa_jwk("k2", OTHER_RSA_N, OTHER_RSA_E),
        ]});
        backdate_last_attempt(&v, MIN_REFETCH + Duration::from_secs(1));
        v.verify(&sign(&claims(), "k2", OTHER_RSA_PEM))
            .await
            .unwrap();
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn expired_cache_refetched() {
        let server = Jwks::start(default_jwks()).await;
        let v = server.verifier();
        let token = sign_ok(&claims());
        v.verify(&token).await.unwrap();
        let expires_at = v.snapshot().expires_at.unwrap();
        // max-age=19000 from the server's Cache-Control.
        let ttl = expires_at - Instant::now();
        assert!(ttl > Duration::from_secs(18_900) && ttl <= Duration::from_secs(19_000));
        let stale = KeyCache {
            keys: v.snapshot().keys.clone(),
            expires_at: Some(Instant::now().checked_sub(Duration::from_secs(1)).unwrap()),
        };
        v.store(stale);
        v.verify(&token).await.unwrap();
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_use_fetches_once() {
        let server = Jwks::start(default_jwks()).await;
        let v = Arc::new(server.verifier());
        let token = sign_ok(&claims());
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (v, token) = (v.clone(), token.clone());
                tokio::spawn(async move { v.verify(&token).await.map(|c| c.subject) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "1234567890");
        }
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn jwks_errors_are_unavailable() {
        let server = Jwks::start(default_jwks()).await;
        server.state.status.store(500, Ordering::SeqCst);
        let v = server.verifier();
        let token = sign_ok(&claims());
        match v.verify(&token).await {
            Err(OidcError::Unavailable(msg)) => assert!(msg.contains("500"), "{msg}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // Back-off: an immediate retry does not hit the provider again.
        assert!(matches!(
            v.verify(&token).await,
            Err(OidcError::Unavailable(_))
        ));
        assert_eq!(server.fetches(), 1);

        // Oversized body.
        server.state.status.store(200, Ordering::SeqCst);
        *server.state.jwks.lock().unwrap() = json!({
            "keys": [rsa_jwk(KID, TEST_RSA_N, TEST_RSA_E)],
            "padding": "x".repeat(MAX_JWKS_BYTES),
        });
        assert!(matches!(
            server.verifier().verify(&token).await,
            Err(OidcError::Unavailable(_))
        ));

        // Nothing listening.
        let port = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let v = OidcVerifier::new(OidcProvider::google(
            vec![AUD.into()],
            Some(format!("http://127.0.0.1:{port}/keys").parse().unwrap()),
        ));
        assert!(matches!(
            v.verify(&token).await,
            Err(OidcError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn stale_keys_used_when_refresh_fails() {
        let server = Jwks::start(default_jwks()).await;
        let v = server.verifier();
        let token = sign_ok(&claims());
        v.verify(&token).await.unwrap();
        v.store(KeyCache {
            keys: v.snapshot().keys.clone(),
            expires_at: Some(Instant::now().checked_sub(Duration::from_secs(1)).unwrap()),
        });
        server.state.status.store(503, Ordering::SeqCst);
        v.verify(&token).await.unwrap();
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn no_audiences_is_not_configured() {
        let v = OidcVerifier::new(OidcProvider::google(Vec::new(), None));
        assert!(matches!(
            v.verify("a.b.c").await,
            Err(OidcError::NotConfigured)
        ));
    }

    #[tokio::test]
    async fn garbage_rejected_without_fetch() {
        let server = Jwks::start(default_jwks()).await;
        let v = server.verifier();
        for token in ["", "abc", "a.b.c", "...."] {
            assert!(matches!(v.verify(token).await, Err(OidcError::Invalid(_))));
        }
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(v.verify(&huge).await, Err(OidcError::Invalid(_))));
        let mut header = Header::new(Algorithm::RS256);
        header.kid = None;
        let key = EncodingKey::from_rsa_pem(TEST_RSA_PEM.as_bytes()).unwrap();
        let token = encode(&header, &claims(), &key).unwrap();
        assert_invalid(v.verify(&token).await, &token, "key id");
        assert_eq!(server.fetches(), 0);
    }

    #[test]
    fn max_age_parsing() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CACHE_CONTROL, v.parse().unwrap());
            max_age(&m)
        };
        assert_eq!(
            h("public, max-age=21600, must-revalidate"),
            Duration::from_secs(21600)
        );
        assert_eq!(h("MAX-AGE=\"120\""), Duration::from_secs(120));
        assert_eq!(h("max-age=0"), MIN_REFETCH);
        assert_eq!(h("max-age=99999999"), MAX_MAX_AGE);
        assert_eq!(h("no-cache"), DEFAULT_MAX_AGE);
        assert_eq!(max_age(&HeaderMap::new()), DEFAULT_MAX_AGE);
    }

    #[test]
    fn jwks_parsing_skips_unusable_keys() {
        let body = json!({"keys": [
            rsa_jwk(KID, TEST_RSA_N, TEST_RSA_E),
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": TEST_RSA_N, "e": TEST_RSA_E},
            {"kty": "RSA", "alg": "RS512", "kid": "rs512", "n": TEST_RSA_N, "e": TEST_RSA_E},
            {"kty": "RSA", "n": TEST_RSA_N, "e": TEST_RSA_E},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "weird", "kid": "weird"},
            ec_jwk("ec1"),
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["ec1", KID]);
        assert_eq!(keys["ec1"].alg, Algorithm::ES256);
        assert!(parse_jwks(br#"{"keys": []}"#).is_err());
        assert!(parse_jwks(b"not json").is_err());
    }
}
