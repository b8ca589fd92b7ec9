//! What one request used: tokens (and audio seconds) read from an OpenAI-shaped `usage` object,
//! and the record the metering plugin writes for it.

use serde::{Deserialize, Serialize};

/// Tokens one request used. `estimated` when the provider never said (the client hung up before
/// the usage arrived, or the upstream does not report it): then the numbers are the gateway's
/// own guess.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    pub audio_tokens: u64,
    /// Seconds of audio transcribed (priced per minute).
    pub audio_seconds: f64,
    pub estimated: bool,
}

impl TokenUsage {
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Reads an OpenAI `usage` object: chat (`prompt_tokens`, `completion_tokens` and their
    /// details), embeddings (`prompt_tokens` only), transcriptions (`input_tokens` /
    /// `output_tokens`, or `{"type":"duration","seconds":N}`).
    pub fn from_usage_json(usage: &UsageJson) -> TokenUsage {
        let prompt = usage.prompt_tokens.or(usage.input_tokens).unwrap_or(0);
        let completion = usage.completion_tokens.or(usage.output_tokens).unwrap_or(0);
        let prompt_details = usage
            .prompt_tokens_details
            .as_ref()
            .or(usage.input_token_details.as_ref());
        let completion_details = usage.completion_tokens_details.as_ref();
        TokenUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: prompt_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            reasoning_tokens: completion_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            audio_tokens: prompt_details
                .and_then(|d| d.audio_tokens)
                .unwrap_or(0)
                .saturating_add(completion_details.and_then(|d| d.audio_tokens).unwrap_or(0)),
            audio_seconds: usage
                .seconds
                .filter(|s| s.is_finite() && *s > 0.0)
                .unwrap_or(0.0),
            estimated: false,
        }
    }

    /// The `usage` of a whole JSON answer (chat, embeddings, transcription), if it has one.
    /// A transcription's `duration` (verbose_json) counts as its audio seconds.
    pub fn from_answer(body: &[u8]) -> Option<TokenUsage> {
        #[derive(Deserialize)]
        struct Answer {
            usage: Option<UsageJson>,
            duration: Option<f64>,
        }
        let answer: Answer = serde_json::from_slice(body).ok()?;
        let mut usage = answer.usage.as_ref().map(TokenUsage::from_usage_json);
        if let Some(duration) = answer.duration.filter(|d| d.is_finite() && *d > 0.0) {
            let usage = usage.get_or_insert_with(TokenUsage::default);
            if usage.audio_seconds == 0.0 {
                usage.audio_seconds = duration;
            }
        }
        usage
    }
}

/// What a model call was for, kept on its usage record: `api` for every /v1 request, the others
/// for the gateway's own calls on a user's behalf.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageScope {
    #[default]
    Api,
    Chat,
    Summary,
    Title,
    MemoryExtraction,
    Embedding,
    Transcription,
}

impl UsageScope {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageScope::Api => "api",
            UsageScope::Chat => "chat",
            UsageScope::Summary => "summary",
            UsageScope::Title => "title",
            UsageScope::MemoryExtraction => "memory_extraction",
            UsageScope::Embedding => "embedding",
            UsageScope::Transcription => "transcription",
        }
    }
}

/// The union of the `usage` shapes OpenAI-compatible answers carry.
#[derive(Debug, Default, Deserialize)]
pub struct UsageJson {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub seconds: Option<f64>,
    pub prompt_tokens_details: Option<TokenDetails>,
    pub input_token_details: Option<TokenDetails>,
    pub completion_tokens_details: Option<TokenDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenDetails {
    pub cached_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub audio_tokens: Option<u64>,
}

/// One row of `usage_record`: everything known about one request once it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    /// None for the master key (no user).
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub thread_id: Option<String>,
    pub message_id: Option<String>,
    pub route: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub status: u16,
    /// complete, rejected, upstream_failed or client_disconnected.
    pub outcome: String,
    pub stream: bool,
    pub usage: TokenUsage,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    /// When the request ended (RFC 3339, milliseconds, UTC).
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// What the call was for (`api` for /v1; records spooled before scopes existed read as it).
    #[serde(default)]
    pub scope: UsageScope,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_usage_with_details() {
        let body =
            br#"{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,
            "prompt_tokens_details":{"cached_tokens":8,"audio_tokens":1},
            "completion_tokens_details":{"reasoning_tokens":20,"audio_tokens":2}}}"#;
        let usage = TokenUsage::from_answer(body).expect("usage");
        assert_eq!(usage.prompt_tokens, 12);
        assert_eq!(usage.completion_tokens, 30);
        assert_eq!(usage.cached_tokens, 8);
        assert_eq!(usage.reasoning_tokens, 20);
        assert_eq!(usage.audio_tokens, 3);
        assert!(!usage.estimated);
    }

    #[test]
    fn embeddings_and_transcription_shapes() {
        let emb = TokenUsage::from_answer(br#"{"usage":{"prompt_tokens":5,"total_tokens":5}}"#)
            .expect("usage");
        assert_eq!((emb.prompt_tokens, emb.completion_tokens), (5, 0));
        let tokens = TokenUsage::from_answer(
            br#"{"text":"hi","usage":{"type":"tokens","input_tokens":14,"output_tokens":4,"input_token_details":{"audio_tokens":14}}}"#,
        )
        .expect("usage");
        assert_eq!(
            (
                tokens.prompt_tokens,
                tokens.completion_tokens,
                tokens.audio_tokens
            ),
            (14, 4, 14)
        );
        let duration =
            TokenUsage::from_answer(br#"{"text":"hi","usage":{"type":"duration","seconds":61}}"#)
                .expect("usage");
        assert_eq!(duration.audio_seconds, 61.0);
        let verbose = TokenUsage::from_answer(br#"{"text":"hi","duration":9.5}"#).expect("usage");
        assert_eq!(verbose.audio_seconds, 9.5);
    }

    #[test]
    fn no_usage_or_not_json() {
        assert_eq!(TokenUsage::from_answer(br#"{"text":"hi"}"#), None);
        assert_eq!(TokenUsage::from_answer(b"plain text"), None);
        assert_eq!(TokenUsage::from_answer(br#"{"usage":null}"#), None);
    }
}
