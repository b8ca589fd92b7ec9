//! The ground-floor types every layer shares: which operation a request is, who is calling, what
//! a call is for, the per-request context the plugins and the pipeline pass along, and how a
//! request ended. It imports nothing of the crate but `usage` (itself a leaf), so anything may use
//! it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Extensions, HeaderMap, HeaderValue, StatusCode};

use crate::usage::TokenUsage;
pub use crate::usage::UsageScope;

/// Who makes an in-process call and what it belongs to: the caller (checked by the app
/// endpoint that makes the call), the thread and message it is for, and its usage scope.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub principal: Principal,
    pub scope: UsageScope,
    pub thread_id: Option<Arc<str>>,
    pub message_id: Option<Arc<str>>,
    /// Carried to the upstream and onto the usage record, as a /v1 request's `x-request-id`.
    pub request_id: HeaderValue,
}

/// `call_` and 16 random hex digits: unique enough across replicas, and told apart from the
/// `req_` ids of /v1 requests in the logs.
fn fresh_call_id() -> HeaderValue {
    let id = format!("call_{:016x}", rand::random::<u64>());
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("call_invalid"))
}

impl CallContext {
    pub fn new(principal: Principal, scope: UsageScope) -> Self {
        Self {
            principal,
            scope,
            thread_id: None,
            message_id: None,
            request_id: fresh_call_id(),
        }
    }

    pub fn in_thread(mut self, thread_id: &str, message_id: Option<&str>) -> Self {
        self.thread_id = Some(Arc::from(thread_id));
        self.message_id = message_id.map(Arc::from);
        self
    }
}

/// Which /v1 operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    ChatCompletions,
    Embeddings,
    AudioTranscriptions,
    Models,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::ChatCompletions => "chat.completions",
            Route::Embeddings => "embeddings",
            Route::AudioTranscriptions => "audio.transcriptions",
            Route::Models => "models",
        }
    }
}

/// Who is calling: a user (through an API key, an access token or a session), or the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user id, or `master` for the master key.
    pub id: Arc<str>,
    pub kind: PrincipalKind,
    pub role: Role,
    /// The API key used, if any.
    pub key_id: Option<Arc<str>>,
    /// The sign-in session used, if any.
    pub session_id: Option<Arc<str>>,
    /// The models an API key is limited to; None allows all.
    pub allowed_models: Option<Arc<[String]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    MasterKey,
    ApiKey,
    /// A JWT access token from this gateway's login.
    AccessToken,
    /// A better-auth session token (header or signed cookie).
    SessionToken,
    /// No credential at all, let in by `[anonymous]`: `id` is `anon:<client address>`.
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn from_db(role: Option<&str>) -> Role {
        if role == Some("admin") {
            Role::Admin
        } else {
            Role::User
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl Principal {
    pub fn master() -> Principal {
        Principal {
            id: Arc::from("master"),
            kind: PrincipalKind::MasterKey,
            role: Role::Admin,
            key_id: None,
            session_id: None,
            allowed_models: None,
        }
    }

    /// A caller without a credential, from `address`, limited to `models`.
    pub fn anonymous(address: std::net::IpAddr, models: Arc<[String]>) -> Principal {
        Principal {
            id: Arc::from(format!("anon:{address}")),
            kind: PrincipalKind::Anonymous,
            role: Role::User,
            key_id: None,
            session_id: None,
            allowed_models: Some(models),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The user behind the request; None for the master key and an anonymous caller, which
    /// are no user.
    pub fn user_id(&self) -> Option<&str> {
        matches!(
            self.kind,
            PrincipalKind::ApiKey | PrincipalKind::AccessToken | PrincipalKind::SessionToken
        )
        .then_some(&*self.id)
    }

    pub fn may_use_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

/// Everything the plugins and the proxy know about one request.
#[derive(Debug)]
pub struct RequestCtx {
    pub request_id: HeaderValue,
    pub route: Route,
    pub started: Instant,
    pub principal: Option<Principal>,
    /// The model being served: the one the client asked for, or the fallback now tried
    /// (every per-model check and the price follow it).
    pub model: Option<Arc<str>>,
    /// When a fallback is served: the model the client asked for.
    pub fallback_of: Option<Arc<str>>,
    pub stream: bool,
    /// The provider and provider model that served the request.
    pub provider: Option<Arc<str>>,
    pub upstream_model: Option<Arc<str>>,
    /// The request body's size (the prompt-token estimate of limits and hang-ups).
    pub request_bytes: u64,
    /// The client's `max_completion_tokens` / `max_tokens`, if it gave one.
    pub max_output_tokens: Option<u64>,
    /// What the call is for, and the conversation it belongs to (set by in-process callers
    /// through [`CallContext`]; /v1 requests are `api` with no thread).
    pub scope: UsageScope,
    pub thread_id: Option<Arc<str>>,
    pub message_id: Option<Arc<str>>,
    /// Headers the plugins add to the response, whatever it is (rate-limit headers).
    pub response_headers: HeaderMap,
    /// Each plugin's own per-request state (a limit reservation), by type.
    pub extensions: Extensions,
}

impl RequestCtx {
    /// The context of an in-process call: its caller is already known (admission plugins see
    /// the principal set and do not look for a credential), and its ids go on the usage record.
    pub fn for_call(call: CallContext, route: Route) -> Self {
        let mut ctx = Self::new(call.request_id, route);
        ctx.principal = Some(call.principal);
        ctx.scope = call.scope;
        ctx.thread_id = call.thread_id;
        ctx.message_id = call.message_id;
        ctx
    }

    pub fn new(request_id: HeaderValue, route: Route) -> Self {
        Self {
            request_id,
            route,
            started: Instant::now(),
            principal: None,
            model: None,
            fallback_of: None,
            stream: false,
            provider: None,
            upstream_model: None,
            request_bytes: 0,
            max_output_tokens: None,
            scope: UsageScope::Api,
            thread_id: None,
            message_id: None,
            response_headers: HeaderMap::new(),
            extensions: Extensions::new(),
        }
    }
}

/// How a request ended, handed to `on_complete`.
#[derive(Debug, Clone)]
pub struct Completion {
    pub status: StatusCode,
    pub outcome: Outcome,
    pub time_to_first_byte: Option<Duration>,
    pub duration: Duration,
    pub response_bytes: u64,
    /// Tokens used, as the provider reported them (or estimated when it could not).
    pub usage: Option<TokenUsage>,
    /// What `usage` cost in USD at the price table's price (0 when unpriced); set by the chain.
    pub cost_usd: f64,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Rejected => "rejected",
            Outcome::UpstreamFailed(_) => "upstream_failed",
            Outcome::ClientDisconnected => "client_disconnected",
            Outcome::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The whole response reached the client.
    Complete,
    /// The gateway answered with an error before (or instead of) forwarding.
    Rejected,
    /// The upstream failed or stalled after the response had started.
    UpstreamFailed(String),
    /// The client went away before the end of the response.
    ClientDisconnected,
    /// The gateway shut down before the end of the response (the drain ran out).
    Interrupted,
}

/// Whose limit: an API key's, a user's (all their keys and sessions), or a model's (all callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeKind {
    Key,
    User,
    Model,
}

impl ScopeKind {
    /// The `scope` label of the rejection counter.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Key => "key",
            ScopeKind::User => "user",
            ScopeKind::Model => "model",
        }
    }

    /// The one-letter tag in Redis key names.
    pub fn tag(self) -> &'static str {
        match self {
            ScopeKind::Key => "k",
            ScopeKind::User => "u",
            ScopeKind::Model => "m",
        }
    }
}

/// The client's address: the connection's peer, or the client a trusted proxy names
/// (`server.trusted_proxies`). Put in each request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);
