//! Configured upstream providers, ready to take requests.

pub mod client;
pub mod openai;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;

use crate::config::{ProviderConfig, ProviderKind};
use crate::context::Route;
pub use client::{HttpClient, UpstreamBody};

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
    pub kind: ProviderKind,
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
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            kind: config.kind,
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
                .and_then(|key| auth_header(config.kind, key.expose())),
            headers: default_headers(config.kind, &config.headers),
            client: client::build_client(config.connect_timeout),
        })
    }

    /// Where a translated chat completion goes: Anthropic's `/messages`, or Gemini's
    /// model-specific `generateContent` / `streamGenerateContent` path.
    pub fn chat_uri(&self, model: &str, stream: bool) -> Result<Uri, http::Error> {
        let path = match self.kind {
            ProviderKind::OpenAi => return Ok(self.endpoints.chat.clone()),
            ProviderKind::Anthropic => "/messages".to_string(),
            ProviderKind::Gemini => crate::translate::gemini::endpoint_path(model, stream),
        };
        join_path(&self.base_url, &path)
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

/// Each kind's credential header: OpenAI's bearer token, Anthropic's `x-api-key`, Google's
/// `x-goog-api-key` (a header rather than the `?key=` query, so keys stay out of URL logs).
fn auth_header(kind: ProviderKind, api_key: &str) -> Option<(HeaderName, HeaderValue)> {
    let (name, mut value) = match kind {
        ProviderKind::OpenAi => (header::AUTHORIZATION, openai::auth_header(api_key)?),
        ProviderKind::Anthropic => (
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_str(api_key).ok()?,
        ),
        ProviderKind::Gemini => (
            HeaderName::from_static("x-goog-api-key"),
            HeaderValue::from_str(api_key).ok()?,
        ),
    };
    value.set_sensitive(true);
    Some((name, value))
}

/// The configured headers, plus `anthropic-version` for Anthropic unless configured.
fn default_headers(
    kind: ProviderKind,
    configured: &[(HeaderName, HeaderValue)],
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = configured.to_vec();
    let version = HeaderName::from_static("anthropic-version");
    if kind == ProviderKind::Anthropic && !headers.iter().any(|(name, _)| *name == version) {
        headers.push((
            version,
            HeaderValue::from_static(crate::translate::anthropic::API_VERSION),
        ));
    }
    headers
}

fn join_path(base: &Uri, path: &str) -> Result<Uri, http::Error> {
    let mut parts = base.clone().into_parts();
    let base_path = base.path().trim_end_matches('/');
    parts.path_and_query = Some(format!("{base_path}{path}").parse()?);
    Ok(Uri::from_parts(parts)?)
}
