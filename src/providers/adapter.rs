//! What differs between provider kinds, behind one trait: how a request is written for the
//! upstream, how its answers, streams and errors are rewritten into OpenAI's shapes, and which
//! headers carry the credential. One implementation per kind (`openai.rs`, `anthropic.rs`,
//! `gemini.rs`), found through [`super::adapter`], the only place that matches on the kind.
//!
//! Adding a provider: a file with its translation and an `Adapter`, a `ProviderKind` variant in
//! the config, and one line in the registry.

use http::{HeaderName, HeaderValue, StatusCode};

use crate::error::GatewayError;
use crate::translate::openai::ChatRequest;
use crate::translate::StreamTranslator;

/// `name: api_key`, marked sensitive: the credential header of kinds that send the key as it is.
pub fn key_header(name: &'static str, api_key: &str) -> Option<(HeaderName, HeaderValue)> {
    let mut value = HeaderValue::from_str(api_key).ok()?;
    value.set_sensitive(true);
    Some((HeaderName::from_static(name), value))
}

pub trait Adapter: Send + Sync + 'static {
    /// The kind's name in messages ("anthropic", "gemini", "openai").
    fn name(&self) -> &'static str;

    /// Whether the client's OpenAI request goes upstream as it is (every route), and the answer
    /// comes back as it is: then nothing below is called for a request.
    fn passes_through(&self) -> bool {
        false
    }

    /// The credential header for `api_key` (marked sensitive, so it never reaches a log).
    fn auth_header(&self, api_key: &str) -> Option<(HeaderName, HeaderValue)>;

    /// Headers every request of this kind needs unless the config sets them.
    fn required_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        Vec::new()
    }

    /// The path of a chat completion below the provider's base URL.
    fn chat_path(&self, model: &str, stream: bool) -> String;

    /// The upstream body of a chat completion for `model`.
    fn request_body(
        &self,
        chat: &ChatRequest,
        model: &str,
        default_max_tokens: u64,
    ) -> Result<Vec<u8>, GatewayError>;

    /// Turns the upstream's stream events into OpenAI chunks (a streamed request); None for a
    /// kind whose streams pass through.
    fn stream_translator(
        &self,
        chat: &ChatRequest,
        model: &str,
    ) -> Option<Box<dyn StreamTranslator>>;

    /// A whole successful answer, as OpenAI's `chat.completion` JSON.
    fn answer(&self, body: &[u8], model: &str) -> Result<Vec<u8>, GatewayError>;

    /// An error answer, as the OpenAI error a client gets.
    fn error(&self, status: StatusCode, body: &[u8]) -> GatewayError;
}
