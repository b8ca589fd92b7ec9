//! The shared machinery of translation between OpenAI's chat completions (what clients speak)
//! and providers that speak something else: OpenAI's shapes, SSE decoding and the stream
//! translator seam. Each provider's own translation lives with its adapter in `providers/`
//! (Anthropic's Messages API, Google's Gemini API).
//!
//! Only translated targets pay for any of this: OpenAI-compatible upstreams get the client's
//! bytes untouched and their answers pass through unparsed. A translated request is read once
//! into [`openai::ChatRequest`]; the answer is rewritten whole (JSON) or event by event (SSE),
//! each upstream event turned into OpenAI chunks as soon as it arrives.

pub mod openai;
pub mod sse;

use bytes::Bytes;

use crate::error::GatewayError;
use sse::{SseDecoder, SseEvent};

/// Turns one provider's stream events into OpenAI `chat.completion.chunk` events.
pub trait StreamTranslator: Send {
    /// Handles one upstream event, appending OpenAI SSE bytes for the client to `out`. An error
    /// (the upstream's own error event, or a malformed event) ends the stream.
    fn event(&mut self, event: SseEvent<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError>;

    /// The upstream stream ended: close the OpenAI stream (final usage chunk, `[DONE]`), or say
    /// why it is incomplete.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError>;

    /// The usage the upstream has reported so far (its counts may grow until the end).
    fn usage(&self) -> Option<openai::Usage>;
}

/// An upstream SSE body being translated: bytes in, OpenAI SSE bytes out.
pub struct TranslatedStream {
    decoder: SseDecoder,
    translator: Box<dyn StreamTranslator>,
    /// What the events before a failing one produced, for the client ahead of the error.
    partial: Bytes,
}

impl TranslatedStream {
    pub fn new(translator: Box<dyn StreamTranslator>) -> Self {
        Self {
            decoder: SseDecoder::default(),
            translator,
            partial: Bytes::new(),
        }
    }

    /// Translates the events these bytes complete; empty when they complete none. On an
    /// error, what the earlier events produced is kept for [`Self::take_partial`].
    pub fn push(&mut self, bytes: &[u8]) -> Result<Bytes, GatewayError> {
        let mut out = Vec::new();
        let translator = &mut self.translator;
        match self
            .decoder
            .feed(bytes, |event| translator.event(event, &mut out))
        {
            Ok(()) => Ok(Bytes::from(out)),
            Err(e) => {
                self.partial = Bytes::from(out);
                Err(e)
            }
        }
    }

    /// The chunks translated before the event that failed.
    pub fn take_partial(&mut self) -> Bytes {
        std::mem::take(&mut self.partial)
    }

    pub fn usage(&self) -> Option<crate::usage::TokenUsage> {
        self.translator.usage().as_ref().map(Into::into)
    }

    pub fn end(&mut self) -> Result<Bytes, GatewayError> {
        if self.decoder.has_partial_event() {
            return Err(GatewayError::bad_gateway(
                "The upstream stream ended in the middle of an event.",
            ));
        }
        let mut out = Vec::new();
        self.translator.end(&mut out)?;
        Ok(Bytes::from(out))
    }
}
