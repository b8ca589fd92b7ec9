//! REST helpers shared by the app-endpoint tests: one response shape, requests with an optional
//! bearer token, the REST error assertion, and a second store on the gateway's database.

use gateway::config::{DatabaseConfig, Secret};
use gateway::store::sessions::NewSession;
use gateway::store::users::NewUser;
use gateway::store::Store;
use reqwest::Method;
use serde_json::Value;

use super::Harness;

/// A response's status, headers and JSON body (`Null` when the body is empty or not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn header_u64(&self, name: &str) -> Option<u64> {
        self.header(name).and_then(|v| v.parse().ok())
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

pub async fn send(
    h: &Harness,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut request = h.client.request(method, h.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    reply(request.send().await.expect("request reaches the gateway")).await
}

pub async fn get(h: &Harness, path: &str, token: Option<&str>) -> Reply {
    send(h, Method::GET, path, token, None).await
}

/// Asserts a REST error: status, code, a detail, and WWW-Authenticate on a 401.
pub fn assert_api_error(r: &Reply, status: u16, code: &str, context: &str) {
    assert_eq!(r.status, status, "{context}: {}", r.text);
    assert_eq!(r.body["code"], code, "{context}: {}", r.text);
    assert!(r.body["detail"].is_string(), "{context}: {}", r.text);
    if status == 401 {
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer"),
            "{context}: 401 without WWW-Authenticate"
        );
    }
}

/// A second store on the gateway's database, to do what no endpoint does (grant a role, write
/// usage records, insert threads).
pub async fn open_store(url: &str) -> Store {
    Store::connect(&DatabaseConfig {
        url: Secret::new(url),
        auto_migrate: false,
        max_connections: 2,
    })
    .await
    .expect("a second store opens on the test database")
}

/// The databases of `super::db::databases()`, with SQLite in a file under `dir` so a second
/// store can open it too.
pub async fn shared_databases(dir: &tempfile::TempDir) -> Vec<(&'static str, String)> {
    super::db::databases()
        .await
        .into_iter()
        .map(|(engine, url)| match engine {
            "sqlite" => (
                engine,
                format!("sqlite://{}", dir.path().join("gw.db").display()),
            ),
            _ => (engine, url),
        })
        .collect()
}

/// A user and a session written the way better-auth writes them: the raw token in `token`.
pub async fn better_auth_session(
    store: &Store,
    email: &str,
    token: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> String {
    let user = match store.user_by_email(email).await.expect("user_by_email") {
        Some(user) => user,
        None => store
            .create_user(
                &NewUser {
                    email,
                    username: None,
                    name: "Bett Auth",
                    role: "user",
                    email_verified: true,
                    image: None,
                },
                None,
                None,
            )
            .await
            .expect("creating a better-auth user"),
    };
    store
        .create_session(&NewSession {
            user_id: &user.id,
            token_hash: token,
            expires_at,
            ip_address: Some("10.0.0.1"),
            user_agent: Some("better-auth"),
        })
        .await
        .expect("creating a better-auth session");
    user.id
}
