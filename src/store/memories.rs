//! User memory (issue 15): facts kept per user, optionally narrowed to an agent or a run as Mem0
//! does, one row per distinct text (a content hash refuses duplicates), every change written to
//! `memory_history` in the same transaction, and keyword search over the text (SQLite FTS5,
//! PostgreSQL full text). The embeddings column is written by the memory service; this module
//! only stores and reads it.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{new_id, now, with_pool, Store, StoreResult};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Memory {
    pub id: String,
    pub user_id: String,
    pub agent_id: Option<String>,
    pub run_id: Option<String>,
    pub content: String,
    /// JSON text, as the caller gave it.
    pub metadata: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One change of a memory, oldest first in a history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MemoryEvent {
    pub id: String,
    pub memory_id: String,
    pub event: String,
    pub old_memory: Option<String>,
    pub new_memory: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Whose memories: a user's, narrowed to an agent and/or a run when given.
#[derive(Debug, Clone, Copy)]
pub struct MemoryScope<'a> {
    pub user_id: &'a str,
    pub agent_id: Option<&'a str>,
    pub run_id: Option<&'a str>,
}

impl<'a> MemoryScope<'a> {
    pub fn user(user_id: &'a str) -> Self {
        Self {
            user_id,
            agent_id: None,
            run_id: None,
        }
    }
}

const COLUMNS: &str = "id, user_id, agent_id, run_id, content, metadata, created_at, updated_at";

/// The hash that makes two memories the same: the text with its outer whitespace trimmed and
/// inner runs of whitespace as one space, case ignored ("Likes tea" and "likes  tea " are one).
pub fn content_hash(content: &str) -> String {
    let normalised = content.split_whitespace().collect::<Vec<_>>().join(" ");
    let digest = Sha256::digest(normalised.to_lowercase().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `WHERE` for a scope, its binds starting at `$first` (user, then agent and run when given).
fn scope_filter(scope: &MemoryScope<'_>, first: usize) -> String {
    let mut sql = format!("user_id = ${first}");
    let mut next = first + 1;
    if scope.agent_id.is_some() {
        sql.push_str(&format!(" AND agent_id = ${next}"));
        next += 1;
    }
    if scope.run_id.is_some() {
        sql.push_str(&format!(" AND run_id = ${next}"));
    }
    sql
}

const HISTORY: &str =
    "INSERT INTO memory_history (id, memory_id, user_id, event, old_memory, new_memory, created_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)";

impl Store {
    /// Adds a memory; None when the user already has one with the same text (see
    /// [`content_hash`]), which is left as it is.
    pub async fn add_memory(
        &self,
        scope: &MemoryScope<'_>,
        content: &str,
        metadata: Option<&str>,
        embedding: Option<&[u8]>,
    ) -> StoreResult<Option<Memory>> {
        let id = new_id();
        let at = now();
        let insert = "INSERT INTO memory (id, user_id, agent_id, run_id, content, content_hash, metadata, embedding, created_at, updated_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                      ON CONFLICT (user_id, content_hash) DO NOTHING";
        let added = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let added = sqlx::query(insert)
                .bind(&id)
                .bind(scope.user_id)
                .bind(scope.agent_id)
                .bind(scope.run_id)
                .bind(content)
                .bind(content_hash(content))
                .bind(metadata)
                .bind(embedding)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            if added {
                sqlx::query(HISTORY)
                    .bind(new_id())
                    .bind(&id)
                    .bind(scope.user_id)
                    .bind("ADD")
                    .bind(None::<&str>)
                    .bind(content)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            added
        });
        if !added {
            return Ok(None);
        }
        self.memory(scope.user_id, &id).await
    }

    /// One of `user_id`'s memories (None for another user's: the two are not told apart).
    pub async fn memory(&self, user_id: &str, id: &str) -> StoreResult<Option<Memory>> {
        let sql = format!("SELECT {COLUMNS} FROM memory WHERE user_id = $1 AND id = $2");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// A scope's memories, most recently changed first.
    pub async fn memories(
        &self,
        scope: &MemoryScope<'_>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<Memory>> {
        let filter = scope_filter(scope, 3);
        let sql = format!(
            "SELECT {COLUMNS} FROM memory WHERE {filter} ORDER BY updated_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
        Ok(with_pool!(self, pool => {
            let mut query = sqlx::query_as(&sql).bind(limit).bind(offset).bind(scope.user_id);
            for narrowed in [scope.agent_id, scope.run_id].into_iter().flatten() {
                query = query.bind(narrowed);
            }
            query.fetch_all(pool).await
        })?)
    }

    /// Replaces a memory's text (and embedding); None when the user has no such memory. A text
    /// the user already has in another memory is a conflict.
    pub async fn update_memory(
        &self,
        user_id: &str,
        id: &str,
        content: &str,
        embedding: Option<&[u8]>,
    ) -> StoreResult<Option<Memory>> {
        let Some(old) = self.memory(user_id, id).await? else {
            return Ok(None);
        };
        let at = now();
        let update =
            "UPDATE memory SET content = $3, content_hash = $4, embedding = $5, updated_at = $6
                      WHERE id = $1 AND user_id = $2";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(update)
                .bind(id)
                .bind(user_id)
                .bind(content)
                .bind(content_hash(content))
                .bind(embedding)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(super::StoreError::from_write)?;
            sqlx::query(HISTORY)
                .bind(new_id())
                .bind(id)
                .bind(user_id)
                .bind("UPDATE")
                .bind(&old.content)
                .bind(content)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        self.memory(user_id, id).await
    }

    /// Deletes one memory (its history stays, ending with the DELETE); false when the user has
    /// no such memory.
    pub async fn delete_memory(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let Some(old) = self.memory(user_id, id).await? else {
            return Ok(false);
        };
        let at = now();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM memory WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(HISTORY)
                .bind(new_id())
                .bind(id)
                .bind(user_id)
                .bind("DELETE")
                .bind(&old.content)
                .bind(None::<&str>)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Deletes a scope's memories, each with its DELETE in the history; how many went.
    pub async fn delete_memories(&self, scope: &MemoryScope<'_>) -> StoreResult<u64> {
        let filter = scope_filter(scope, 3);
        let history = format!(
            "INSERT INTO memory_history (id, memory_id, user_id, event, old_memory, new_memory, created_at)
             SELECT id || ':' || $1, id, user_id, 'DELETE', content, NULL, $2 FROM memory WHERE {filter}"
        );
        let delete = format!("DELETE FROM memory WHERE {}", scope_filter(scope, 1));
        let at = now();
        let batch = new_id();
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut history = sqlx::query(&history).bind(&batch).bind(at).bind(scope.user_id);
            let mut delete = sqlx::query(&delete).bind(scope.user_id);
            for narrowed in [scope.agent_id, scope.run_id].into_iter().flatten() {
                history = history.bind(narrowed);
                delete = delete.bind(narrowed);
            }
            history.execute(&mut *tx).await?;
            let deleted = delete.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            deleted
        }))
    }

    /// A memory's changes, oldest first (empty for another user's memory).
    pub async fn memory_history(&self, user_id: &str, id: &str) -> StoreResult<Vec<MemoryEvent>> {
        let sql =
            "SELECT id, memory_id, event, old_memory, new_memory, created_at FROM memory_history
                   WHERE user_id = $1 AND memory_id = $2 ORDER BY created_at, id";
        Ok(with_pool!(self, pool => sqlx::query_as(sql)
            .bind(user_id)
            .bind(id)
            .fetch_all(pool)
            .await)?)
    }

    /// A scope's memories that share words with `query`, best first, with the engine's score
    /// (higher is better; comparable within one answer only). Words are letters and digits;
    /// a memory needs one of them, not all (ranking puts those with more first).
    pub async fn keyword_search(
        &self,
        scope: &MemoryScope<'_>,
        query: &str,
        limit: i64,
    ) -> StoreResult<Vec<(Memory, f64)>> {
        let words = search_words(query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let filter = scope_filter(scope, 3).replace("user_id", "m.user_id");
        let filter = filter
            .replace("AND agent_id", "AND m.agent_id")
            .replace("AND run_id", "AND m.run_id");
        let columns = COLUMNS
            .split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows: Vec<ScoredMemory> = match self.pool() {
            super::Pool::Sqlite(pool) => {
                // FTS5's own syntax is not the caller's: each word is quoted.
                let matched = words
                    .iter()
                    .map(|w| format!("\"{w}\""))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let sql = format!(
                    "SELECT {columns}, -bm25(memory_fts) AS score FROM memory_fts
                       JOIN memory m ON m.rowid = memory_fts.rowid
                      WHERE memory_fts MATCH $1 AND {filter}
                      ORDER BY score DESC, m.id LIMIT $2"
                );
                let mut q = sqlx::query_as(&sql)
                    .bind(matched)
                    .bind(limit)
                    .bind(scope.user_id);
                for narrowed in [scope.agent_id, scope.run_id].into_iter().flatten() {
                    q = q.bind(narrowed);
                }
                q.fetch_all(pool).await?
            }
            super::Pool::Postgres(pool) => {
                let matched = words.join(" | ");
                let sql = format!(
                    "SELECT {columns}, ts_rank(m.search, q)::float8 AS score
                       FROM memory m, to_tsquery('simple', $1) q
                      WHERE m.search @@ q AND {filter}
                      ORDER BY score DESC, m.id LIMIT $2"
                );
                let mut q = sqlx::query_as(&sql)
                    .bind(matched)
                    .bind(limit)
                    .bind(scope.user_id);
                for narrowed in [scope.agent_id, scope.run_id].into_iter().flatten() {
                    q = q.bind(narrowed);
                }
                q.fetch_all(pool).await?
            }
        };
        Ok(rows.into_iter().map(|r| (r.memory, r.score)).collect())
    }
}

#[derive(sqlx::FromRow)]
struct ScoredMemory {
    #[sqlx(flatten)]
    memory: Memory,
    score: f64,
}

/// The words of a search: runs of letters and digits, lowercased, at most 32 of them.
fn search_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.dedup();
    words.truncate(32);
    words
}
