//! Usage, read back: one message's or conversation's records, a user's summary and records, one
//! API key's summary, and everyone's for admins. Whose usage a caller may read is decided here;
//! how the query string becomes a [`UsageFilter`] and how the answers look is the handler's.

use super::access::{acting_for, ensure_visible};
use crate::context::Principal;
use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::threads::Message;
use crate::store::usage_queries::{
    DayModelUsage, MessageOwner, RecordPage, SummaryPage, ThreadOwner, ThreadUsage, UsageFilter,
    UsageRow, UsageTotals, UserDayModelUsage,
};

/// The most records one message's details list (a message has a handful).
const MESSAGE_RECORDS: i64 = 1_000;
/// The most records one thread's details list.
const THREAD_RECORDS: i64 = 10_000;

/// A thread's usage: totals and the split by model, its records (oldest first), and its
/// messages' integer ids (seed 004 names messages by them).
pub struct ThreadDetails {
    pub usage: ThreadUsage,
    pub records: Vec<UsageRow>,
    pub message_seqs: std::collections::HashMap<String, i64>,
}

const NO_OWN_USAGE: &str =
    "the master key has no usage of its own: name the user_id, or use /api/v1/admin/usage";

pub struct Usage<'a> {
    state: &'a AppState,
}

/// One message's usage: the message, whose thread it is in, its records (oldest first) and
/// their totals.
pub struct MessageUsage {
    pub row: Message,
    pub message: MessageOwner,
    pub records: Vec<UsageRow>,
    pub totals: UsageTotals,
}

impl<'a> Usage<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    /// `message` is a message's id, or its integer id (seed 004).
    pub async fn of_message(
        &self,
        caller: &Principal,
        message: &str,
    ) -> Result<MessageUsage, GatewayError> {
        let store = &self.state.store;
        let row = store
            .message_by_key(message)
            .await?
            .ok_or_else(GatewayError::resource_not_found)?;
        let message = store
            .message_owner(&row.id)
            .await?
            .ok_or_else(GatewayError::resource_not_found)?;
        ensure_visible(caller, &message.user_id, message.deleted)?;
        let (records, totals) = store.message_usage(&row.id, MESSAGE_RECORDS).await?;
        Ok(MessageUsage {
            row,
            message,
            records,
            totals,
        })
    }

    /// `thread_id` is a thread's id, or its integer id (seed 004).
    pub async fn of_thread(
        &self,
        caller: &Principal,
        thread_id: &str,
    ) -> Result<ThreadDetails, GatewayError> {
        let store = &self.state.store;
        let by_seq = match thread_id.parse::<i64>() {
            Ok(seq) => store.thread_id_by_seq(seq).await?,
            Err(_) => None,
        };
        let thread_id = by_seq.as_deref().unwrap_or(thread_id);
        let thread: ThreadOwner = store
            .thread_owner(thread_id)
            .await?
            .ok_or_else(GatewayError::resource_not_found)?;
        ensure_visible(caller, &thread.user_id, thread.deleted)?;
        let seqs = store.message_seqs(thread_id).await?;
        Ok(ThreadDetails {
            usage: store.thread_usage(thread_id).await?,
            records: store.thread_records(thread_id, THREAD_RECORDS).await?,
            message_seqs: seqs
                .into_iter()
                .filter_map(|(id, seq)| Some((id, seq?)))
                .collect(),
        })
    }

    /// A user's usage by day and model: the caller's own, or the `user_id` an admin names.
    pub async fn summary(
        &self,
        caller: &Principal,
        user_id: Option<&str>,
        mut filter: UsageFilter,
        (limit, offset): (i64, i64),
    ) -> Result<SummaryPage<DayModelUsage>, GatewayError> {
        filter.user_id = Some(acting_for(caller, user_id, NO_OWN_USAGE)?);
        Ok(self
            .state
            .store
            .usage_by_day_and_model(&filter, limit, offset)
            .await?)
    }

    /// A user's records, newest first, from `before_id` down.
    pub async fn records(
        &self,
        caller: &Principal,
        user_id: Option<&str>,
        mut filter: UsageFilter,
        before_id: Option<i64>,
        (limit, offset): (i64, i64),
    ) -> Result<RecordPage, GatewayError> {
        filter.user_id = Some(acting_for(caller, user_id, NO_OWN_USAGE)?);
        Ok(self
            .state
            .store
            .usage_records(&filter, before_id, limit, offset)
            .await?)
    }

    /// One API key's usage by day and model, for its owner or an admin.
    pub async fn of_key(
        &self,
        caller: &Principal,
        key_id: &str,
        mut filter: UsageFilter,
        (limit, offset): (i64, i64),
    ) -> Result<SummaryPage<DayModelUsage>, GatewayError> {
        let store = &self.state.store;
        let owner_id = store
            .api_key_owner(key_id)
            .await?
            .ok_or_else(GatewayError::resource_not_found)?;
        ensure_visible(caller, &owner_id, false)?;
        filter.user_id = None;
        filter.api_key_id = Some(key_id.to_string());
        Ok(store.usage_by_day_and_model(&filter, limit, offset).await?)
    }

    /// Everyone's usage by user, day and model (the admin check is the handler's extractor).
    pub async fn everyone(
        &self,
        filter: &UsageFilter,
        (limit, offset): (i64, i64),
    ) -> Result<SummaryPage<UserDayModelUsage>, GatewayError> {
        Ok(self
            .state
            .store
            .usage_by_user_day_and_model(filter, limit, offset)
            .await?)
    }

    /// Everyone's records, newest first.
    pub async fn everyones_records(
        &self,
        filter: &UsageFilter,
        before_id: Option<i64>,
        (limit, offset): (i64, i64),
    ) -> Result<RecordPage, GatewayError> {
        Ok(self
            .state
            .store
            .usage_records(filter, before_id, limit, offset)
            .await?)
    }
}
