//! OpenAI-compatible upstreams (OpenAI, xAI, Mistral, Groq, vLLM, Ollama, Gemini's OpenAI
//! endpoint, ...): the request body passes through as the client sent it, so this adapter only
//! decides the URL and the credentials.

use http::{HeaderValue, Uri};

use crate::context::Route;

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
