//! Conversations, whichever seed names them (003's threads, 004's conversations, 002's chat
//! sessions): a user's own, newest-updated first, soft-deleted. Another user's thread, a
//! deleted one or a missing one is the same 404. Titles can be made by the thread's model
//! (usage scope `title`).

use crate::chat::{ChatMessage, ChatRequest};
use crate::context::{CallContext, Principal};
use crate::error::GatewayError;
use crate::pipeline::ChatAnswer;
use crate::state::AppState;
use crate::store::threads::{Message, Thread, ThreadItem};
use crate::usage::UsageScope;

/// The title a new thread gets until one is made (seed 003's frontend looks for it).
pub const DEFAULT_TITLE: &str = "New chat";

/// The longest title kept (characters).
pub const MAX_TITLE_CHARS: usize = 200;

pub struct Threads<'a> {
    state: &'a AppState,
}

impl<'a> Threads<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    pub async fn create(
        &self,
        user_id: &str,
        title: Option<&str>,
        model: &str,
    ) -> Result<Thread, GatewayError> {
        let title = clean_title(title.unwrap_or(DEFAULT_TITLE))?;
        let model = check_model(model)?;
        Ok(self
            .state
            .store
            .create_thread(user_id, Some(&title), Some(model))
            .await?)
    }

    pub async fn list(
        &self,
        user_id: &str,
        (limit, offset): (i64, i64),
    ) -> Result<Vec<ThreadItem>, GatewayError> {
        Ok(self.state.store.threads_of(user_id, limit, offset).await?)
    }

    /// One of the user's live threads, or the 404 every thread endpoint answers.
    pub async fn get(&self, user_id: &str, id: &str) -> Result<Thread, GatewayError> {
        self.state
            .store
            .thread(user_id, id)
            .await?
            .ok_or_else(not_found)
    }

    /// The same by its integer id (seed 004's paths).
    pub async fn get_by_seq(&self, user_id: &str, seq: i64) -> Result<Thread, GatewayError> {
        self.state
            .store
            .thread_by_seq(user_id, seq)
            .await?
            .ok_or_else(not_found)
    }

    pub async fn messages(
        &self,
        thread: &Thread,
        (limit, offset): (i64, i64),
    ) -> Result<Vec<Message>, GatewayError> {
        Ok(self.state.store.messages(&thread.id, limit, offset).await?)
    }

    /// Changes what is given of the title and the model.
    pub async fn update(
        &self,
        user_id: &str,
        id: &str,
        title: Option<&str>,
        model: Option<&str>,
    ) -> Result<Thread, GatewayError> {
        let title = title.map(clean_title).transpose()?;
        let model = model.map(check_model).transpose()?;
        if !self
            .state
            .store
            .update_thread(user_id, id, title.as_deref(), model)
            .await?
        {
            return Err(not_found());
        }
        self.get(user_id, id).await
    }

    pub async fn delete(&self, user_id: &str, id: &str) -> Result<(), GatewayError> {
        if self.state.store.delete_thread(user_id, id).await? {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    /// A short title made by the thread's model from its first messages, saved and returned.
    /// Any failure of the model call keeps the current title (seed 003 does the same).
    pub async fn generate_title(
        &self,
        caller: &Principal,
        thread: &Thread,
    ) -> Result<String, GatewayError> {
        let current = thread.title.clone().unwrap_or_else(|| DEFAULT_TITLE.into());
        let first = self.state.store.messages(&thread.id, 10, 0).await?;
        let Some(model) = thread.model.as_deref().filter(|_| !first.is_empty()) else {
            return Ok(current);
        };
        let mut messages = vec![ChatMessage::system(
            "Write a very short title (at most 6 words) for this conversation. Answer with the \
             title only, no quotes.",
        )];
        messages.extend(
            first
                .iter()
                .map(|m| ChatMessage::new(&m.role, m.content.clone())),
        );
        messages.push(ChatMessage::user(
            "Generate a short title for this conversation.",
        ));
        let mut request = ChatRequest::new(model, messages);
        request.max_tokens = Some(30);
        let call = CallContext::new(caller.clone(), UsageScope::Title).in_thread(&thread.id, None);
        let answer = match self.state.pipeline.chat(call, request).await {
            Ok(response) => match response.answer {
                ChatAnswer::Complete(completion) => completion.text(),
                ChatAnswer::Stream(_) => String::new(),
            },
            Err(error) => {
                tracing::info!(thread = %thread.id, error = %error, "title generation failed; the title stays");
                return Ok(current);
            }
        };
        let title: String = answer
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .trim()
            .chars()
            .take(100)
            .collect();
        if title.is_empty() {
            return Ok(current);
        }
        self.state
            .store
            .update_thread(&thread.user_id, &thread.id, Some(&title), None)
            .await?;
        Ok(title)
    }

    /// What the user's live threads' answers cost (seed 003's `/auth/usage`).
    pub async fn spend(&self, user_id: &str) -> Result<f64, GatewayError> {
        Ok(self.state.store.thread_spend(user_id).await?)
    }
}

pub fn not_found() -> GatewayError {
    GatewayError::with_status(http::StatusCode::NOT_FOUND, "not_found", "Thread not found")
}

fn clean_title(title: &str) -> Result<String, GatewayError> {
    let title = title.trim();
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(GatewayError::invalid_field(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(if title.is_empty() {
        DEFAULT_TITLE.to_string()
    } else {
        title.to_string()
    })
}

/// A model name is checked when it is used (an unknown one is the answer's error, as in seed
/// 003); here only its shape.
fn check_model(model: &str) -> Result<&str, GatewayError> {
    let model = model.trim();
    if model.is_empty() || model.len() > 200 {
        return Err(GatewayError::invalid_field(
            "llm_name",
            "must be a model name (1 to 200 characters)",
        ));
    }
    Ok(model)
}
