//! OpenAI-compatible upstreams (OpenAI, xAI, Mistral, Groq, vLLM, Ollama, Gemini's OpenAI
//! endpoint, ...): the request body passes through as the client sent it, so this adapter only
//! decides the URL and the credentials.

use http::{HeaderValue, StatusCode, Uri};

use crate::context::Route;
use crate::error::GatewayError;
use crate::translate::openai::ChatRequest;
use crate::translate::StreamTranslator;

/// The path below the provider's base URL (which ends in `/v1` or its equivalent).
pub fn endpoint_path(route: Route) -> &'static str {
    match route {
        Route::ChatCompletions => "/chat/completions",
        Route::Embeddings => "/embeddings",
        Route::AudioTranscriptions => "/audio/transcriptions",
        Route::Models => "/models",
    }
}

pub fn endpoint_uri(base: &Uri, route: Route) -> Result<Uri, http::Error> {
    super::join_path(base, endpoint_path(route))
}

pub fn auth_header(api_key: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {api_key}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The OpenAI-compatible adapter: bytes pass through both ways, so only the URL and the
/// credential are its to decide.
pub struct OpenAiAdapter;

impl super::Adapter for OpenAiAdapter {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn passes_through(&self) -> bool {
        true
    }

    fn auth_header(&self, api_key: &str) -> Option<(http::HeaderName, HeaderValue)> {
        Some((http::header::AUTHORIZATION, auth_header(api_key)?))
    }

    fn chat_path(&self, _model: &str, _stream: bool) -> String {
        endpoint_path(Route::ChatCompletions).to_string()
    }

    fn request_body(
        &self,
        _chat: &ChatRequest,
        _model: &str,
        _default_max_tokens: u64,
    ) -> Result<Vec<u8>, GatewayError> {
        Err(GatewayError::internal(
            "An OpenAI-compatible target needs no translation.",
        ))
    }

    fn stream_translator(
        &self,
        _chat: &ChatRequest,
        _model: &str,
    ) -> Option<Box<dyn StreamTranslator>> {
        None
    }

    fn answer(&self, body: &[u8], _model: &str) -> Result<Vec<u8>, GatewayError> {
        Ok(body.to_vec())
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> GatewayError {
        GatewayError::from_answer(status, body, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_base_path_and_endpoint() {
        let base: Uri = "https://api.openai.com/v1".parse().unwrap();
        assert_eq!(
            endpoint_uri(&base, Route::ChatCompletions).unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        let base: Uri = "http://127.0.0.1:11434/v1/".parse().unwrap();
        assert_eq!(
            endpoint_uri(&base, Route::AudioTranscriptions).unwrap(),
            "http://127.0.0.1:11434/v1/audio/transcriptions"
        );
    }
}
