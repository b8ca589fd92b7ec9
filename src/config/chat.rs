//! `[chat]`: the app's chat endpoints. Seeds 001 and 002 send no model: theirs is this one.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawChat {
    default_model: String,
    answer_lease_secs: u64,
}

impl Default for RawChat {
    fn default() -> Self {
        Self {
            default_model: "gpt-4o-mini".into(),
            answer_lease_secs: 90,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// The model of a chat whose request names none (seeds 001 and 002).
    pub default_model: String,
    /// How long an answer holds its thread (a second send meanwhile gets 409). Renewed every
    /// third of it while the answer runs, so it only bounds how long a replica that died
    /// mid-answer keeps the thread locked.
    pub answer_lease: std::time::Duration,
}

pub(super) fn chat(raw: RawChat, problems: &mut Vec<String>) -> ChatConfig {
    if raw.default_model.trim().is_empty() {
        problems.push("chat.default_model: must name a model".into());
    }
    if raw.answer_lease_secs == 0 {
        problems.push("chat.answer_lease_secs: must be greater than 0".into());
    }
    ChatConfig {
        default_model: raw.default_model,
        answer_lease: std::time::Duration::from_secs(raw.answer_lease_secs.max(1)),
    }
}
