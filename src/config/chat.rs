//! `[chat]`: the app's chat endpoints. Seeds 001 and 002 send no model: theirs is this one.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawChat {
    default_model: String,
}

impl Default for RawChat {
    fn default() -> Self {
        Self {
            default_model: "gpt-4o-mini".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// The model of a chat whose request names none (seeds 001 and 002).
    pub default_model: String,
}

pub(super) fn chat(raw: RawChat, problems: &mut Vec<String>) -> ChatConfig {
    if raw.default_model.trim().is_empty() {
        problems.push("chat.default_model: must name a model".into());
    }
    ChatConfig {
        default_model: raw.default_model,
    }
}
