//! Accounts as the admin endpoints see them: every user and session, and deleting a user with
//! everything they own. The admin check itself is the handler's extractor (`AdminCaller`).

use crate::context::Principal;
use crate::error::GatewayError;
use crate::identity::accounts::PublicUser;
use crate::state::AppState;
use crate::store::sessions::SessionInfo;

pub struct Users<'a> {
    state: &'a AppState,
}

impl<'a> Users<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    pub async fn list(
        &self,
        (limit, offset): (i64, i64),
    ) -> Result<(Vec<PublicUser>, i64), GatewayError> {
        let (users, total) = self.state.store.list_users(limit, offset).await?;
        Ok((users.into_iter().map(PublicUser::from).collect(), total))
    }

    pub async fn sessions(
        &self,
        (limit, offset): (i64, i64),
    ) -> Result<(Vec<SessionInfo>, i64), GatewayError> {
        Ok(self.state.store.list_sessions(limit, offset).await?)
    }

    /// Deletes a user and everything they own (sessions, keys, prompts, threads, usage,
    /// memories).
    pub async fn delete(&self, admin: &Principal, user_id: &str) -> Result<(), GatewayError> {
        self.state.identity.delete_user(user_id).await?;
        tracing::info!(admin = %admin.id, user = %user_id, "user deleted with their data");
        Ok(())
    }
}
