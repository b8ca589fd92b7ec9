//! Seed 000's prompt library: each user's own prompts, with favourites kept per user in
//! `prompt_favorite` (a prompt's `is_favorite` is whether the reader marked it).

use chrono::{DateTime, Utc};

use super::{now, with_pool, Store, StoreResult};

/// A prompt as its owner reads it: the creator's display name and the owner's favourite mark.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Prompt {
    pub id: String,
    pub user_id: String,
    pub creator_name: String,
    pub name: String,
    pub category: Option<String>,
    pub text: String,
    pub is_favorite: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a create or a (whole) update writes.
pub struct PromptFields<'a> {
    pub name: &'a str,
    pub category: &'a str,
    pub text: &'a str,
    pub favorite: bool,
}

const SELECT_PROMPT: &str = r#"SELECT p.id, p.user_id, u."name" AS creator_name, p.name, p.category, p.text,
       EXISTS (SELECT 1 FROM prompt_favorite f WHERE f.prompt_id = p.id AND f.user_id = $1) AS is_favorite,
       p.created_at, p.updated_at
  FROM prompt p JOIN "user" u ON u."id" = p.user_id"#;

impl Store {
    /// `user_id`'s prompts, newest first.
    pub async fn list_prompts(
        &self,
        user_id: &str,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<Prompt>> {
        let sql = format!(
            "{SELECT_PROMPT} WHERE p.user_id = $1 ORDER BY p.created_at DESC, p.id DESC LIMIT $2 OFFSET $3"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await)?)
    }

    /// One of `user_id`'s prompts (None for another user's: the two are not told apart).
    pub async fn prompt(&self, user_id: &str, id: &str) -> StoreResult<Option<Prompt>> {
        let sql = format!("{SELECT_PROMPT} WHERE p.user_id = $1 AND p.id = $2");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn create_prompt(
        &self,
        user_id: &str,
        id: &str,
        fields: &PromptFields<'_>,
    ) -> StoreResult<Prompt> {
        let insert =
            "INSERT INTO prompt (id, user_id, name, category, text, created_at, updated_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $6)";
        let at = now();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(insert)
                .bind(id)
                .bind(user_id)
                .bind(fields.name)
                .bind(fields.category)
                .bind(fields.text)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            if fields.favorite {
                sqlx::query(MARK_FAVORITE).bind(user_id).bind(id).bind(at).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        self.prompt(user_id, id)
            .await?
            .ok_or(super::StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Replaces one of `user_id`'s prompts (favourite mark included); None when they have no
    /// such prompt.
    pub async fn update_prompt(
        &self,
        user_id: &str,
        id: &str,
        fields: &PromptFields<'_>,
    ) -> StoreResult<Option<Prompt>> {
        let update = "UPDATE prompt SET name = $3, category = $4, text = $5, updated_at = $6
                      WHERE id = $1 AND user_id = $2";
        let unmark = "DELETE FROM prompt_favorite WHERE user_id = $1 AND prompt_id = $2";
        let at = now();
        let found = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(update)
                .bind(id)
                .bind(user_id)
                .bind(fields.name)
                .bind(fields.category)
                .bind(fields.text)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed > 0 {
                if fields.favorite {
                    sqlx::query(MARK_FAVORITE).bind(user_id).bind(id).bind(at).execute(&mut *tx).await?;
                } else {
                    sqlx::query(unmark).bind(user_id).bind(id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            changed > 0
        });
        if !found {
            return Ok(None);
        }
        self.prompt(user_id, id).await
    }

    /// Deletes one of `user_id`'s prompts (its favourite marks go with it); false when they
    /// have no such prompt.
    pub async fn delete_prompt(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM prompt WHERE id = $1 AND user_id = $2";
        let deleted = with_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(deleted > 0)
    }
}

/// Marks a prompt a favourite of a user; marking twice is no error.
const MARK_FAVORITE: &str =
    "INSERT INTO prompt_favorite (user_id, prompt_id, created_at) VALUES ($1, $2, $3)
                             ON CONFLICT (user_id, prompt_id) DO NOTHING";
