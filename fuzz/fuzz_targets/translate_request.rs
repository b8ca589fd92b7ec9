//! The translators' request readers: a client's chat body read into the typed request and
//! written for Anthropic and Gemini. Any bytes give a body or a clear error, never a panic, and
//! what they write is JSON.
#![no_main]

use gateway::providers::{anthropic, gemini};
use gateway::translate::openai::ChatRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ChatRequest::parse(data) else {
        return;
    };
    if let Ok(body) = anthropic::request_body(&request, "claude-fuzz", 1024) {
        assert!(is_json(&body));
    }
    if let Ok(body) = gemini::request_body(&request) {
        assert!(is_json(&body));
    }
    let _ = anthropic::stream_translator(&request, "claude-fuzz");
    let _ = gemini::stream_translator(&request, "gemini-fuzz");
});

fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}
