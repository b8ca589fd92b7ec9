//! Configured upstream providers, ready to take requests.

pub mod client;
pub mod openai;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;

use crate::config::{ProviderConfig, ProviderKind};
use crate::plugins::Route;
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
    endpoints: Endpoints,
    auth: Option<HeaderValue>,
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
            endpoints: Endpoints {
                chat: uri(Route::ChatCompletions)?,
                embeddings: uri(Route::Embeddings)?,
                transcriptions: uri(Route::AudioTranscriptions)?,
                models: uri(Route::Models)?,
            },
            auth: config
                .api_key
                .as_ref()
                .and_then(|key| openai::auth_header(key.expose())),
            headers: config.headers.clone(),
            client: client::build_client(config.connect_timeout),
        })
    }

    fn uri(&self, route: Route) -> Uri {
        match route {
            Route::ChatCompletions => self.endpoints.chat.clone(),
            Route::Embeddings => self.endpoints.embeddings.clone(),
            Route::AudioTranscriptions => self.endpoints.transcriptions.clone(),
            Route::Models => self.endpoints.models.clone(),
        }
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
        if let Some(auth) = &self.auth {
            headers.insert(header::AUTHORIZATION, auth.clone());
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
