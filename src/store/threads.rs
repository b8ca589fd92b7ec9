//! Conversations: seed 003's threads, seed 004's conversations and seed 002's chat sessions are
//! all rows of `thread`, their turns rows of `message`. A thread is its owner's alone; a deleted
//! one (`deleted_at`) is gone for every endpoint but kept for usage. An answer being generated
//! is a `pending` message: never listed, completed or removed when the model call ends.

use chrono::{DateTime, Utc};

use super::{new_id, now, with_pool, Pool, Store, StoreResult};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Thread {
    pub id: String,
    /// The small integer id seed 004's frontend uses.
    pub seq: Option<i64>,
    pub user_id: String,
    pub title: Option<String>,
    pub model: Option<String>,
    pub summary: Option<String>,
    /// Seed 002's sessions can be closed and reopened.
    pub is_active: bool,
    /// The running summary (`summary`) covers the messages up to this one (by `seq`).
    pub summarized_through_seq: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A thread in a list: with the start of its newest message and how many it has.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ThreadItem {
    #[sqlx(flatten)]
    pub thread: Thread,
    pub last_message_preview: Option<String>,
    pub message_count: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Message {
    pub id: String,
    pub seq: Option<i64>,
    pub thread_id: String,
    pub role: String,
    pub content: String,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub created_at: DateTime<Utc>,
}

/// What starts a turn: the thread and its owner, how long the answer may hold the thread, the
/// question (None when regenerating), the answer it replaces, and the model answering.
pub struct TurnStart<'a> {
    pub thread_id: &'a str,
    pub user_id: &'a str,
    pub lease_until: DateTime<Utc>,
    pub question: Option<&'a str>,
    pub replace: Option<&'a str>,
    pub model: &'a str,
}

/// A started turn: the saved question (when there is one) and the pending answer.
pub struct StartedTurn {
    pub question: Option<Message>,
    pub pending: Message,
}

/// What a finished answer used.
pub struct Answered<'a> {
    pub content: &'a str,
    pub model: &'a str,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
}

const THREAD_COLUMNS: &str =
    "t.id, t.seq, t.user_id, t.title, t.model, t.summary, t.is_active, t.summarized_through_seq, \
     t.created_at, t.updated_at";
const MESSAGE_COLUMNS: &str =
    "m.id, m.seq, m.thread_id, m.role, m.content, m.model, m.prompt_tokens, \
     m.completion_tokens, m.cost_usd, m.created_at";

impl Store {
    pub async fn create_thread(
        &self,
        user_id: &str,
        title: Option<&str>,
        model: Option<&str>,
    ) -> StoreResult<Thread> {
        let id = new_id();
        let at = now();
        // SQLite numbers rows itself (one writer at a time); PostgreSQL has a sequence.
        let sql = match self.pool() {
            Pool::Sqlite(_) => {
                "INSERT INTO thread (id, user_id, title, model, created_at, updated_at, seq)
                 VALUES ($1, $2, $3, $4, $5, $5, (SELECT COALESCE(MAX(seq), 0) + 1 FROM thread))"
            }
            Pool::Postgres(_) => {
                "INSERT INTO thread (id, user_id, title, model, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)"
            }
        };
        with_pool!(self, pool => sqlx::query(sql)
            .bind(&id)
            .bind(user_id)
            .bind(title)
            .bind(model)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        self.thread(user_id, &id)
            .await?
            .ok_or(super::StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// One of `user_id`'s live threads (None for another user's or a deleted one).
    pub async fn thread(&self, user_id: &str, id: &str) -> StoreResult<Option<Thread>> {
        let sql = format!(
            "SELECT {THREAD_COLUMNS} FROM thread t WHERE t.id = $1 AND t.user_id = $2 AND t.deleted_at IS NULL"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .bind(user_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// The same by its integer id (seed 004).
    pub async fn thread_by_seq(&self, user_id: &str, seq: i64) -> StoreResult<Option<Thread>> {
        let sql = format!(
            "SELECT {THREAD_COLUMNS} FROM thread t WHERE t.seq = $1 AND t.user_id = $2 AND t.deleted_at IS NULL"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(seq)
            .bind(user_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// `user_id`'s live threads, the most recently updated first.
    pub async fn threads_of(
        &self,
        user_id: &str,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<ThreadItem>> {
        self.thread_list(Some(user_id), false, limit, offset).await
    }

    /// Live threads (`user_id`'s, or everyone's), the most recently updated first; with
    /// `active_only`, not the closed ones. The page is chosen first, so the preview and count
    /// are read for its threads only, however many the user has.
    pub async fn thread_list(
        &self,
        user_id: Option<&str>,
        active_only: bool,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<ThreadItem>> {
        let active = if active_only {
            " AND t.is_active = $4"
        } else {
            " AND $4 = $4"
        };
        // One user's: an equality SQLite's planner can take to the (user, updated, id) index,
        // which `$1 IS NULL OR ...` would hide from it.
        let whose = if user_id.is_some() {
            "t.user_id = $1"
        } else {
            "$1 IS NULL"
        };
        let sql = format!(
            "SELECT {THREAD_COLUMNS},
                (SELECT substr(m.content, 1, 100) FROM message m
                  WHERE m.thread_id = t.id AND m.status = 'complete'
                  ORDER BY m.created_at DESC, m.seq DESC LIMIT 1) AS last_message_preview,
                (SELECT COUNT(*) FROM message m WHERE m.thread_id = t.id AND m.status = 'complete')
                  AS message_count
               FROM (SELECT * FROM thread t
                      WHERE {whose} AND t.deleted_at IS NULL{active}
                      ORDER BY t.updated_at DESC, t.id DESC LIMIT $2 OFFSET $3) t
              ORDER BY t.updated_at DESC, t.id DESC"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(limit)
            .bind(offset)
            .bind(true)
            .fetch_all(pool)
            .await)?)
    }

    /// How many live threads `thread_list` would list in all.
    pub async fn thread_count(&self, user_id: Option<&str>, active_only: bool) -> StoreResult<i64> {
        let active = if active_only {
            " AND is_active = $2"
        } else {
            " AND $2 = $2"
        };
        let sql = format!(
            "SELECT COUNT(*) FROM thread WHERE ($1 IS NULL OR user_id = $1) AND deleted_at IS NULL{active}"
        );
        Ok(with_pool!(self, pool => sqlx::query_scalar(&sql)
            .bind(user_id)
            .bind(true)
            .fetch_one(pool)
            .await)?)
    }

    /// Closes or reopens a live thread (seed 002); false when there is no such thread.
    pub async fn set_thread_active(
        &self,
        user_id: &str,
        id: &str,
        active: bool,
    ) -> StoreResult<bool> {
        let sql = "UPDATE thread SET is_active = $3, updated_at = $4
                   WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL";
        let changed = with_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(user_id)
            .bind(active)
            .bind(now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(changed > 0)
    }

    /// Changes a live thread's title or model (those given); false when there is no such thread.
    pub async fn update_thread(
        &self,
        user_id: &str,
        id: &str,
        title: Option<&str>,
        model: Option<&str>,
    ) -> StoreResult<bool> {
        let sql = "UPDATE thread SET title = COALESCE($3, title), model = COALESCE($4, model), updated_at = $5
                   WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL";
        let changed = with_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(user_id)
            .bind(title)
            .bind(model)
            .bind(now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(changed > 0)
    }

    /// Soft-deletes a live thread; false when there is no such thread.
    pub async fn delete_thread(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let sql = "UPDATE thread SET deleted_at = $3 WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL";
        let changed = with_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(user_id)
            .bind(now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(changed > 0)
    }

    /// A page of a thread's complete messages, oldest first.
    pub async fn messages(
        &self,
        thread_id: &str,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.thread_id = $1 AND m.status = 'complete'
              ORDER BY m.created_at, m.seq LIMIT $2 OFFSET $3"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(thread_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await)?)
    }

    /// The newest `limit` complete messages of a thread, oldest first (a prompt's history).
    pub async fn recent_messages(&self, thread_id: &str, limit: i64) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.thread_id = $1 AND m.status = 'complete'
              ORDER BY m.created_at DESC, m.seq DESC LIMIT $2"
        );
        let mut newest: Vec<Message> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(thread_id)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        newest.reverse();
        Ok(newest)
    }

    /// Starts a turn in one transaction (one commit): claims the thread until `lease_until`
    /// unless another answer holds it (None then, nothing written), removes the answer being
    /// replaced, saves the question, and writes the pending answer.
    pub async fn start_turn(&self, turn: &TurnStart<'_>) -> StoreResult<Option<StartedTurn>> {
        let claim = "UPDATE thread SET answering_until = $2
                     WHERE id = $1 AND (answering_until IS NULL OR answering_until < $3)";
        let remove = "DELETE FROM message WHERE id = $1 AND thread_id = $2";
        let insert = self.insert_message_sql();
        let select = format!("SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.id = $1");
        let at = now();
        let question_id = new_id();
        let answer_id = new_id();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(claim)
                .bind(turn.thread_id)
                .bind(turn.lease_until)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if claimed == 0 {
                return Ok(None);
            }
            if let Some(old) = turn.replace {
                sqlx::query(remove).bind(old).bind(turn.thread_id).execute(&mut *tx).await?;
            }
            let mut question = None;
            if let Some(text) = turn.question {
                sqlx::query(insert)
                    .bind(&question_id)
                    .bind(turn.thread_id)
                    .bind(turn.user_id)
                    .bind("user")
                    .bind(text)
                    .bind(None::<&str>)
                    .bind("complete")
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                question = Some(sqlx::query_as(&select).bind(&question_id).fetch_one(&mut *tx).await?);
            }
            sqlx::query(insert)
                .bind(&answer_id)
                .bind(turn.thread_id)
                .bind(turn.user_id)
                .bind("assistant")
                .bind("")
                .bind(Some(turn.model))
                .bind("pending")
                .bind(at)
                .execute(&mut *tx)
                .await?;
            let pending = sqlx::query_as(&select).bind(&answer_id).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(Some(StartedTurn { question, pending }))
        })
    }

    /// Ends a turn in one transaction: the answer completed and listed, the thread updated and
    /// free for the next message.
    pub async fn finish_turn(
        &self,
        pending_id: &str,
        thread_id: &str,
        answer: &Answered<'_>,
    ) -> StoreResult<()> {
        let complete = "UPDATE message SET content = $2, model = $3, prompt_tokens = $4, completion_tokens = $5,
                               cost_usd = $6, status = 'complete'
                         WHERE id = $1";
        let touch = "UPDATE thread SET updated_at = $2, answering_until = NULL WHERE id = $1";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(complete)
                .bind(pending_id)
                .bind(answer.content)
                .bind(answer.model)
                .bind(answer.prompt_tokens)
                .bind(answer.completion_tokens)
                .bind(answer.cost_usd)
                .execute(&mut *tx)
                .await?;
            sqlx::query(touch).bind(thread_id).bind(now()).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Extends a running answer's hold on its thread to `until`.
    pub async fn renew_turn(&self, thread_id: &str, until: DateTime<Utc>) -> StoreResult<()> {
        let sql =
            "UPDATE thread SET answering_until = $2 WHERE id = $1 AND answering_until IS NOT NULL";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(thread_id)
            .bind(until)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Ends a failed turn: the pending answer removed (nothing half-written stays), the thread
    /// free again.
    pub async fn fail_turn(&self, pending_id: &str, thread_id: &str) -> StoreResult<()> {
        let remove = "DELETE FROM message WHERE id = $1";
        let release = "UPDATE thread SET answering_until = NULL WHERE id = $1";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(remove).bind(pending_id).execute(&mut *tx).await?;
            sqlx::query(release).bind(thread_id).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Inserting a message: SQLite numbers rows itself (one writer at a time); PostgreSQL has a
    /// sequence. Binds: id, thread, user, role, content, model, status, created_at.
    fn insert_message_sql(&self) -> &'static str {
        match self.pool() {
            Pool::Sqlite(_) => "INSERT INTO message (id, thread_id, user_id, role, content, model, status, created_at, seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT COALESCE(MAX(seq), 0) + 1 FROM message))",
            Pool::Postgres(_) => "INSERT INTO message (id, thread_id, user_id, role, content, model, status, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        }
    }

    /// A thread's complete messages after `after` (all, when None) and before `before` (by
    /// `seq`), oldest first, at most `limit` (the turns a summary is to cover).
    pub async fn messages_between(
        &self,
        thread_id: &str,
        after: Option<i64>,
        before: i64,
        limit: i64,
    ) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.thread_id = $1 AND m.status = 'complete'
                AND ($2 IS NULL OR m.seq > $2) AND m.seq < $3
              ORDER BY m.seq LIMIT $4"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(thread_id)
            .bind(after)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Replaces a thread's running summary, which now covers messages up to `through` (seq).
    pub async fn set_thread_summary(
        &self,
        thread_id: &str,
        summary: &str,
        through: i64,
    ) -> StoreResult<()> {
        let sql = "UPDATE thread SET summary = $2, summarized_through_seq = $3 WHERE id = $1";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(thread_id)
            .bind(summary)
            .bind(through)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// A message by its id, or by its integer id (seed 004) when `key` is a number.
    pub async fn message_by_key(&self, key: &str) -> StoreResult<Option<Message>> {
        let (column, seq) = match key.parse::<i64>() {
            Ok(seq) => ("m.seq", Some(seq)),
            Err(_) => ("m.id", None),
        };
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM message m WHERE {column} = $1");
        Ok(with_pool!(self, pool => match seq {
            Some(seq) => sqlx::query_as(&sql).bind(seq).fetch_optional(pool).await,
            None => sqlx::query_as(&sql).bind(key).fetch_optional(pool).await,
        })?)
    }

    /// Every message's integer id in a thread, by message id (seed 004's usage details).
    pub async fn message_seqs(&self, thread_id: &str) -> StoreResult<Vec<(String, Option<i64>)>> {
        let sql = "SELECT id, seq FROM message WHERE thread_id = $1";
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(thread_id).fetch_all(pool).await)?)
    }

    /// A thread's id from its integer id (seed 004), whoever owns it.
    pub async fn thread_id_by_seq(&self, seq: i64) -> StoreResult<Option<String>> {
        let sql = "SELECT id FROM thread WHERE seq = $1";
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql).bind(seq).fetch_optional(pool).await)?)
    }

    /// The newest complete message of `role` in a thread.
    pub async fn last_message(&self, thread_id: &str, role: &str) -> StoreResult<Option<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM message m WHERE m.thread_id = $1 AND m.role = $2 AND m.status = 'complete'
              ORDER BY m.created_at DESC, m.seq DESC LIMIT 1"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(thread_id)
            .bind(role)
            .fetch_optional(pool)
            .await)?)
    }

    /// What a user's live threads' answers cost, in USD.
    pub async fn thread_spend(&self, user_id: &str) -> StoreResult<f64> {
        let sql = "SELECT COALESCE(SUM(m.cost_usd), 0.0) FROM message m JOIN thread t ON t.id = m.thread_id
                    WHERE t.user_id = $1 AND t.deleted_at IS NULL";
        let total: Option<f64> =
            with_pool!(self, pool => sqlx::query_scalar(sql).bind(user_id).fetch_one(pool).await)?;
        Ok(total.unwrap_or(0.0))
    }
}
