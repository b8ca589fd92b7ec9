//! A local JWKS endpoint and ID-token signing for "Sign in with Google / Apple" tests.
//! The keys below are test-only, generated for this file and committed on purpose.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// The `kid` [`JwksServer::start`] publishes the test key under.
pub const TEST_KID: &str = "test-key-1";

include!("test_keys.rs");

/// The trusted test key as a JWK named `kid`.
pub fn test_jwk(kid: &str) -> Value {
    rsa_jwk(kid, TEST_RSA_N, TEST_RSA_E)
}

/// The attacker key as a JWK named `kid` (for key-rotation tests).
pub fn other_jwk(kid: &str) -> Value {
    rsa_jwk(kid, OTHER_RSA_N, OTHER_RSA_E)
}

fn rsa_jwk(kid: &str, n: &str, e: &str) -> Value {
    json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": n, "e": e})
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Typical ID-token claims, valid for ten minutes.
pub fn id_claims(iss: &str, aud: &str, sub: &str) -> Value {
    json!({
        "iss": iss,
        "aud": aud,
        "sub": sub,
        "email": format!("{sub}@example.com"),
        "email_verified": true,
        "iat": now(),
        "exp": now() + 600,
    })
}

/// An RS256 ID token signed with the trusted test key.
pub fn sign_id_token(claims: &Value, kid: &str) -> String {
    sign(claims, kid, TEST_RSA_PRIVATE_PEM)
}

/// An RS256 ID token signed with the attacker key: a forgery when `kid` names the test key.
pub fn sign_with_other_key(claims: &Value, kid: &str) -> String {
    sign(claims, kid, OTHER_RSA_PRIVATE_PEM)
}

fn sign(claims: &Value, kid: &str, pem: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key parses");
    encode(&header, claims, &key).expect("signing")
}

struct Shared {
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
}

/// Serves `{"keys": [...]}` at `GET /keys` on 127.0.0.1, counting fetches. Stops on drop.
pub struct JwksServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl JwksServer {
    /// Publishes the test key under [`TEST_KID`].
    pub async fn start() -> Self {
        Self::with_keys(vec![test_jwk(TEST_KID)]).await
    }

    pub async fn with_keys(keys: Vec<Value>) -> Self {
        async fn serve_keys(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
            shared.fetches.fetch_add(1, Ordering::SeqCst);
            let keys = shared.keys.lock().expect("keys lock").clone();
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "public, max-age=3600"),
                ],
                json!({ "keys": keys }).to_string(),
            )
        }
        let shared = Arc::new(Shared {
            keys: Mutex::new(keys),
            fetches: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/keys", axum::routing::get(serve_keys))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind JWKS server");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// The JWKS URL: `http://127.0.0.1:PORT/keys`.
    pub fn url(&self) -> String {
        format!("http://{}/keys", self.addr)
    }

    /// How many times `/keys` has been fetched.
    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// Replaces the published keys (key rotation).
    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.shared.keys.lock().expect("keys lock") = keys;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
