//! Configured upstream providers, ready to take requests, and the adapters that make each kind
//! speak OpenAI's API (see [`adapter`]).

pub mod adapter;
pub mod anthropic;
pub mod client;
pub mod gemini;
pub mod openai;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;

use crate::config::{ProviderConfig, ProviderKind};
use crate::context::Route;
pub use adapter::Adapter;
pub use client::{HttpClient, UpstreamBody};

/// The registry: each provider kind's adapter. The one `match` on the kind in the gateway.
pub fn adapter(kind: ProviderKind) -> &'static dyn Adapter {
    match kind {
        ProviderKind::OpenAi => &openai::OpenAiAdapter,
        ProviderKind::Anthropic => &anthropic::AnthropicAdapter,
        ProviderKind::Gemini => &gemini::GeminiAdapter,
    }
}

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Upstream URLs, built once at start so a request only clones them.
struct Endpoints {
    chat: Uri,
    embeddings: Uri,
    transcriptions: Uri,
    models: Uri,
}

pub struct Provider {
    pub name: Arc<str>,
    /// What this provider's kind does differently.
    pub adapter: &'static dyn Adapter,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub total_timeout: Option<Duration>,
    pub max_in_flight: Option<u32>,
    pub default_max_tokens: u64,
    pub stream_usage: bool,
    /// The base URL, kept for providers whose paths name the model (Gemini).
    base_url: Uri,
    endpoints: Endpoints,
    auth: Option<(HeaderName, HeaderValue)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    client: HttpClient,
}

impl Provider {
    pub fn from_config(config: &ProviderConfig) -> Result<Self, http::Error> {
        let uri = |route| openai::endpoint_uri(&config.base_url, route);
        let adapter = adapter(config.kind);
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            adapter,
            timeout: config.timeout,
            idle_timeout: config.idle_timeout,
            total_timeout: config.total_timeout,
            max_in_flight: config.max_in_flight,
            stream_usage: config.stream_usage,
            default_max_tokens: config.default_max_tokens,
            base_url: config.base_url.clone(),
            endpoints: Endpoints {
                chat: uri(Route::ChatCompletions)?,
                embeddings: uri(Route::Embeddings)?,
                transcriptions: uri(Route::AudioTranscriptions)?,
                models: uri(Route::Models)?,
            },
            auth: config
                .api_key
                .as_ref()
                .and_then(|key| adapter.auth_header(key.expose())),
            headers: with_required_headers(adapter, &config.headers),
            client: client::build_client(config.connect_timeout),
        })
    }

    /// Where a chat completion goes: the OpenAI path, Anthropic's `/messages`, or Gemini's
    /// model-specific `generateContent` / `streamGenerateContent` path.
    pub fn chat_uri(&self, model: &str, stream: bool) -> Result<Uri, http::Error> {
        if self.adapter.passes_through() {
            return Ok(self.endpoints.chat.clone());
        }
        join_path(&self.base_url, &self.adapter.chat_path(model, stream))
    }

    fn uri(&self, route: Route) -> Uri {
        match route {
            Route::ChatCompletions => self.endpoints.chat.clone(),
            Route::Embeddings => self.endpoints.embeddings.clone(),
            Route::AudioTranscriptions => self.endpoints.transcriptions.clone(),
            Route::Models => self.endpoints.models.clone(),
        }
    }

    /// The upstream request for one attempt at `uri`, for bodies the gateway wrote itself.
    pub fn build_request_to(
        &self,
        uri: Uri,
        body: Bytes,
        request_id: &HeaderValue,
    ) -> Request<UpstreamBody> {
        static JSON: HeaderValue = HeaderValue::from_static("application/json");
        let mut request = self.build_request(Route::ChatCompletions, body, &JSON, request_id);
        *request.uri_mut() = uri;
        request
    }

    /// The upstream request for one attempt. Only the content type and the request id of the
    /// client's headers travel upstream: the client's credentials never do.
    pub fn build_request(
        &self,
        route: Route,
        body: Bytes,
        content_type: &HeaderValue,
        request_id: &HeaderValue,
    ) -> Request<UpstreamBody> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri(route);
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type.clone());
        headers.insert(X_REQUEST_ID.clone(), request_id.clone());
        if let Some((name, value)) = &self.auth {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        request
    }

    pub fn send(
        &self,
        request: Request<UpstreamBody>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        self.client.request(request)
    }
}

/// The configured headers, plus those the kind requires (`anthropic-version`) unless
/// configured.
fn with_required_headers(
    adapter: &dyn Adapter,
    configured: &[(HeaderName, HeaderValue)],
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = configured.to_vec();
    for (name, value) in adapter.required_headers() {
        if !headers.iter().any(|(n, _)| *n == name) {
            headers.push((name, value));
        }
    }
    headers
}

fn join_path(base: &Uri, path: &str) -> Result<Uri, http::Error> {
    let mut parts = base.clone().into_parts();
    let base_path = base.path().trim_end_matches('/');
    parts.path_and_query = Some(format!("{base_path}{path}").parse()?);
    Ok(Uri::from_parts(parts)?)
}
