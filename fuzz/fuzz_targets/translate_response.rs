//! The translators' readers of upstream answers (an upstream is not trusted either): Anthropic's
//! and Gemini's JSON answers, error bodies and SSE streams turned into OpenAI's shapes. Any
//! bytes give an answer or a clear error, never a panic, and what they write is JSON.
#![no_main]

use std::sync::OnceLock;

use gateway::providers::{anthropic, gemini};
use gateway::translate::openai::ChatRequest;
use gateway::translate::sse::SseDecoder;
use gateway::translate::StreamTranslator;
use libfuzzer_sys::fuzz_target;

fn request() -> &'static ChatRequest {
    static REQUEST: OnceLock<ChatRequest> = OnceLock::new();
    REQUEST.get_or_init(|| {
        ChatRequest::parse(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},
                "messages":[{"role":"user","content":"hi"}],
                "tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}"#,
        )
        .expect("the fixed request parses")
    })
}

fn stream(mut translator: Box<dyn StreamTranslator>, data: &[u8]) {
    let mut decoder = SseDecoder::default();
    let mut out = Vec::new();
    let fed = decoder.feed(data, |event| translator.event(event, &mut out));
    if fed.is_ok() {
        let _ = translator.end(&mut out);
    }
    let _ = translator.usage();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = anthropic::response_body(data) {
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    }
    if let Ok(body) = gemini::response_body(data, "gemini-fuzz") {
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    }
    for status in [
        http::StatusCode::BAD_REQUEST,
        http::StatusCode::TOO_MANY_REQUESTS,
    ] {
        let _ = anthropic::error(status, data);
        let _ = gemini::error(status, data);
    }
    stream(anthropic::stream_translator(request(), "claude-fuzz"), data);
    stream(gemini::stream_translator(request(), "gemini-fuzz"), data);
});
