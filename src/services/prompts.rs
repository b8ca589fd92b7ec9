//! Seed 000's prompt library: a user's own prompts, each in one of five categories, with a
//! favourite mark per user. Another user's prompt, or an id that is no prompt, is "Prompt not
//! found" (404), never told apart.

use std::fmt;

use serde::Deserialize;

use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::prompts::{Prompt, PromptFields};

/// The longest prompt name and text accepted (characters). The text's bound sits under the
/// REST body limit (64 KiB), so a long text is named in a 422 rather than cut off by a 413.
pub const MAX_NAME_CHARS: usize = 500;
pub const MAX_TEXT_CHARS: usize = 50_000;

/// The categories seed 000 knows, spelled as its frontend sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptCategory {
    Decision,
    Api,
    TodoList,
    Detailed,
    Brief,
}

impl PromptCategory {
    pub const ALL: [PromptCategory; 5] = [
        Self::Decision,
        Self::Api,
        Self::TodoList,
        Self::Detailed,
        Self::Brief,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decision => "Beslutningsreferat",
            Self::Api => "API",
            Self::TodoList => "To do liste",
            Self::Detailed => "Detaljeret referat",
            Self::Brief => "Kort referat",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for PromptCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A create or update body as sent: every field optional here, so a missing one is named in
/// the 422. Unknown fields (`id`, `creator`: the frontend sends them) are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct PromptBody {
    pub name: Option<String>,
    pub category: Option<String>,
    pub text: Option<String>,
    #[serde(alias = "is_favorite", rename = "isFavorite")]
    pub is_favorite: Option<bool>,
}

pub struct Prompts<'a> {
    state: &'a AppState,
}

impl<'a> Prompts<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    pub async fn list(
        &self,
        user_id: &str,
        (limit, offset): (i64, i64),
    ) -> Result<Vec<Prompt>, GatewayError> {
        Ok(self
            .state
            .store
            .list_prompts(user_id, limit, offset)
            .await?)
    }

    pub async fn get(&self, user_id: &str, id: &str) -> Result<Prompt, GatewayError> {
        self.state
            .store
            .prompt(user_id, id)
            .await?
            .ok_or_else(not_found)
    }

    pub async fn create(&self, user_id: &str, body: PromptBody) -> Result<Prompt, GatewayError> {
        let fields = Fields::check(body)?;
        let id = uuid::Uuid::new_v4().to_string();
        Ok(self
            .state
            .store
            .create_prompt(user_id, &id, &fields.borrowed())
            .await?)
    }

    /// Replaces the whole prompt; a missing `isFavorite` clears the mark, as the seed does.
    pub async fn replace(
        &self,
        user_id: &str,
        id: &str,
        body: PromptBody,
    ) -> Result<Prompt, GatewayError> {
        let fields = Fields::check(body)?;
        self.state
            .store
            .update_prompt(user_id, id, &fields.borrowed())
            .await?
            .ok_or_else(not_found)
    }

    pub async fn delete(&self, user_id: &str, id: &str) -> Result<(), GatewayError> {
        if self.state.store.delete_prompt(user_id, id).await? {
            Ok(())
        } else {
            Err(not_found())
        }
    }
}

fn not_found() -> GatewayError {
    GatewayError::with_status(http::StatusCode::NOT_FOUND, "not_found", "Prompt not found")
}

/// A body that passed the checks.
struct Fields {
    name: String,
    category: PromptCategory,
    text: String,
    favorite: bool,
}

impl Fields {
    fn check(body: PromptBody) -> Result<Fields, GatewayError> {
        let name = required(body.name, "name", MAX_NAME_CHARS)?;
        let text = required(body.text, "text", MAX_TEXT_CHARS)?;
        let category = body
            .category
            .ok_or_else(|| GatewayError::invalid_field("category", "is required"))?;
        let category = PromptCategory::parse(&category).ok_or_else(|| {
            let known: Vec<String> = PromptCategory::ALL
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect();
            GatewayError::invalid_field(
                "category",
                format!("must be one of {}, got {category:?}", known.join(", ")),
            )
        })?;
        Ok(Fields {
            name,
            category,
            text,
            favorite: body.is_favorite.unwrap_or(false),
        })
    }

    fn borrowed(&self) -> PromptFields<'_> {
        PromptFields {
            name: &self.name,
            category: self.category.as_str(),
            text: &self.text,
            favorite: self.favorite,
        }
    }
}

fn required(
    value: Option<String>,
    field: &'static str,
    max_chars: usize,
) -> Result<String, GatewayError> {
    let value = value.ok_or_else(|| GatewayError::invalid_field(field, "is required"))?;
    if value.trim().is_empty() {
        return Err(GatewayError::invalid_field(field, "must not be empty"));
    }
    if value.chars().count() > max_chars {
        return Err(GatewayError::invalid_field(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_spelled_as_the_seed_sends_them() {
        for category in PromptCategory::ALL {
            assert_eq!(PromptCategory::parse(category.as_str()), Some(category));
        }
        assert_eq!(PromptCategory::parse("api"), None);
        assert_eq!(PromptCategory::parse("Kort  referat"), None);
    }

    #[test]
    fn a_body_needs_name_text_and_a_known_category() {
        let ok = PromptBody {
            name: Some("n".into()),
            category: Some("API".into()),
            text: Some("t".into()),
            is_favorite: None,
        };
        assert!(Fields::check(ok).is_ok());
        let missing = PromptBody {
            name: Some("n".into()),
            ..PromptBody::default()
        };
        let error = Fields::check(missing).err().unwrap();
        assert_eq!(error.param.as_deref(), Some("text"));
    }
}
