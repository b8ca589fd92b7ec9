//! The typed chat request and answer of an in-process pipeline call (and what editing plugins
//! rewrite): OpenAI's chat-completion shapes, with every field this gateway does not name kept in `extra`, so nothing a caller sets
//! (tools, response_format, ...) or a provider answers is lost on the way through.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::usage::{TokenUsage, UsageJson};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Every other parameter, passed on as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        Self {
            model: model.into(),
            messages,
            ..Self::default()
        }
    }

    /// Streams the answer, asking for the final usage chunk (the caller's own bookkeeping
    /// usually wants it; metering reads it either way).
    pub fn streaming(mut self) -> Self {
        self.stream = true;
        self.extra.insert(
            "stream_options".into(),
            serde_json::json!({ "include_usage": true }),
        );
        self
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    /// A string, an array of content parts, or null (an assistant message with tool calls).
    #[serde(default)]
    pub content: Value,
    /// name, tool_calls, tool_call_id, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatMessage {
    pub fn new(role: &str, text: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: Value::String(text.into()),
            extra: Map::new(),
        }
    }

    pub fn system(text: impl Into<String>) -> Self {
        Self::new("system", text)
    }

    pub fn user(text: impl Into<String>) -> Self {
        Self::new("user", text)
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new("assistant", text)
    }

    /// The message's text: the string content, or its text parts joined.
    pub fn text(&self) -> String {
        match &self.content {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        }
    }
}

/// A whole (non-streamed) answer: `chat.completion`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChatCompletion {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: ChatMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletion {
    /// The first choice's text (empty when there is none).
    pub fn text(&self) -> String {
        self.choices
            .first()
            .map(|c| c.message.text())
            .unwrap_or_default()
    }

    pub fn token_usage(&self) -> Option<TokenUsage> {
        usage_of(self.usage.as_ref())
    }
}

/// One event of a streamed answer: `chat.completion.chunk`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatChunk {
    /// The text this chunk adds to the first choice.
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .and_then(|c| c.delta.content.as_deref())
            .unwrap_or("")
    }

    pub fn token_usage(&self) -> Option<TokenUsage> {
        usage_of(self.usage.as_ref())
    }
}

fn usage_of(usage: Option<&Value>) -> Option<TokenUsage> {
    let usage = usage.filter(|u| u.is_object())?;
    let json: UsageJson = serde_json::from_value(usage.clone()).ok()?;
    Some(TokenUsage::from_usage_json(&json))
}

/// An embeddings answer's vectors, in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embeddings {
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
    pub usage: Option<TokenUsage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let json = serde_json::json!({
            "model": "m", "messages": [{"role": "assistant", "content": null,
                "tool_calls": [{"id": "t"}]}],
            "tools": [{"type": "function"}], "temperature": 0.5
        });
        let request: ChatRequest = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(request.temperature, Some(0.5));
        assert_eq!(serde_json::to_value(&request).unwrap(), json);
    }

    #[test]
    fn text_of_parts_and_usage_of_a_chunk() {
        let message: ChatMessage = serde_json::from_value(serde_json::json!({
            "role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"},
                {"type": "text", "text": "b"}]
        }))
        .unwrap();
        assert_eq!(message.text(), "ab");
        let chunk: ChatChunk = serde_json::from_value(serde_json::json!({
            "id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}
        }))
        .unwrap();
        let usage = chunk.token_usage().unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (3, 4));
        assert_eq!(chunk.text(), "");
    }
}
