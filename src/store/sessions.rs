//! Sign-in sessions (better-auth's `session` table) and the refresh tokens of each.
//!
//! A login is a session; its refresh tokens are one family. Rotation marks the presented token
//! used and issues the next; presenting a used token again means it was stolen (or replayed), so
//! the whole session is deleted, and its tokens with it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::users::User;
use super::{new_id, now, with_pool, Store, StoreResult};

/// What a session-backed credential resolves to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionOwner {
    pub session_id: String,
    pub expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub user: User,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct SessionInfo {
    pub id: String,
    #[sqlx(rename = "userId")]
    pub user_id: String,
    #[sqlx(rename = "expiresAt")]
    pub expires_at: DateTime<Utc>,
    #[sqlx(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
    #[sqlx(rename = "ipAddress")]
    pub ip_address: Option<String>,
    #[sqlx(rename = "userAgent")]
    pub user_agent: Option<String>,
}

pub struct NewSession<'a> {
    pub user_id: &'a str,
    /// Stored in better-auth's `token` column: a hash, since the gateway never hands sessions
    /// out as bearer tokens (clients get a JWT and a refresh token instead).
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
    pub ip_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Rotation {
    /// The token was current: it is now used, and the successor given is the current one.
    Rotated { owner: SessionOwner },
    /// The token had already been used: the session and every token of it were deleted.
    Reused { session_id: String },
    /// Unknown, expired, or its session ended.
    Invalid,
}

const OWNER_COLUMNS: &str = r#"s."id" AS session_id, s."expiresAt" AS expires_at, u."id", u."email", u."name", u."username", u."image", u."emailVerified", u."role", u."banned", u."createdAt", u."updatedAt""#;

impl Store {
    pub async fn create_session(&self, session: &NewSession<'_>) -> StoreResult<String> {
        let id = new_id();
        let sql = r#"INSERT INTO "session" ("id", "expiresAt", "token", "createdAt", "updatedAt", "ipAddress", "userAgent", "userId")
                     VALUES ($1, $2, $3, $4, $4, $5, $6, $7)"#;
        with_pool!(self, pool => sqlx::query(sql)
            .bind(&id)
            .bind(session.expires_at)
            .bind(session.token_hash)
            .bind(now())
            .bind(session.ip_address)
            .bind(session.user_agent)
            .bind(session.user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(id)
    }

    pub async fn add_refresh_token(
        &self,
        session_id: &str,
        user_id: &str,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let sql = r#"INSERT INTO refresh_token (id, session_id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)"#;
        with_pool!(self, pool => sqlx::query(sql)
            .bind(new_id())
            .bind(session_id)
            .bind(user_id)
            .bind(token_hash)
            .bind(expires_at)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Uses up a refresh token and stores its successor, atomically: two concurrent uses of one
    /// token cannot both succeed (the `used_at IS NULL` guard lets exactly one update through).
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
    ) -> StoreResult<Rotation> {
        let at = now();
        let find = r#"SELECT session_id, expires_at FROM refresh_token WHERE token_hash = $1"#;
        let find_session = r#"SELECT session_id FROM refresh_token WHERE token_hash = $1"#;
        let mark =
            r#"UPDATE refresh_token SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL"#;
        let owner = format!(
            r#"SELECT {OWNER_COLUMNS} FROM "session" s JOIN "user" u ON u."id" = s."userId" WHERE s."id" = $1 AND s."expiresAt" > $2"#
        );
        let insert = r#"INSERT INTO refresh_token (id, session_id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)"#;
        let kill = r#"DELETE FROM "session" WHERE "id" = $1"#;
        let lock = r#"UPDATE "session" SET "updatedAt" = $2 WHERE "id" = $1"#;
        with_pool!(self, pool => {
            // A token never changes session: which family it is can be read before the
            // transaction.
            let family: Option<String> = sqlx::query_scalar(find_session)
                .bind(token_hash)
                .fetch_optional(pool)
                .await?;
            let Some(family) = family else {
                return Ok(Rotation::Invalid);
            };
            let mut tx = pool.begin().await?;
            // Lock the session before the token, the order deleting a session takes (the row,
            // then its tokens by cascade). Locking the token first deadlocks on PostgreSQL: a
            // rotation that lost the race keeps its lock on the token while it waits to delete
            // the session, whose deleter waits for that token. Write first, too: SQLite then
            // takes its write lock at once instead of upgrading a read lock, which concurrent
            // writers can refuse.
            sqlx::query(lock).bind(&family).bind(at).execute(&mut *tx).await?;
            let marked = sqlx::query(mark)
                .bind(token_hash)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let found: Option<(String, DateTime<Utc>)> =
                sqlx::query_as(find).bind(token_hash).fetch_optional(&mut *tx).await?;
            let Some((session_id, expires_at)) = found else {
                return Ok(Rotation::Invalid);
            };
            if marked == 0 {
                sqlx::query(kill).bind(&session_id).execute(&mut *tx).await?;
                tx.commit().await?;
                return Ok(Rotation::Reused { session_id });
            }
            if expires_at <= at {
                return Ok(Rotation::Invalid);
            }
            let owner: Option<SessionOwner> =
                sqlx::query_as(&owner).bind(&session_id).bind(at).fetch_optional(&mut *tx).await?;
            let Some(owner) = owner else {
                return Ok(Rotation::Invalid);
            };
            sqlx::query(insert)
                .bind(new_id())
                .bind(&session_id)
                .bind(&owner.user.id)
                .bind(next_hash)
                .bind(next_expires_at)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Rotation::Rotated { owner })
        })
    }

    /// The user of a live session, by session id (the `sid` of an access token).
    pub async fn session_owner(&self, session_id: &str) -> StoreResult<Option<SessionOwner>> {
        let sql = format!(
            r#"SELECT {OWNER_COLUMNS} FROM "session" s JOIN "user" u ON u."id" = s."userId" WHERE s."id" = $1 AND s."expiresAt" > $2"#
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(session_id).bind(now()).fetch_optional(pool).await)?,
        )
    }

    /// The user of a live better-auth session, by the raw token better-auth stores.
    pub async fn session_owner_by_token(&self, token: &str) -> StoreResult<Option<SessionOwner>> {
        let sql = format!(
            r#"SELECT {OWNER_COLUMNS} FROM "session" s JOIN "user" u ON u."id" = s."userId" WHERE s."token" = $1 AND s."expiresAt" > $2"#
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(token).bind(now()).fetch_optional(pool).await)?,
        )
    }

    /// The session a refresh token belongs to, used or not (to end it on logout).
    pub async fn session_of_refresh_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(String, String)>> {
        let sql = "SELECT session_id, user_id FROM refresh_token WHERE token_hash = $1";
        Ok(
            with_pool!(self, pool => sqlx::query_as(sql).bind(token_hash).fetch_optional(pool).await)?,
        )
    }

    /// Ends one session of one user; false when there is no such session of theirs.
    pub async fn delete_session(&self, session_id: &str, user_id: &str) -> StoreResult<bool> {
        let sql = r#"DELETE FROM "session" WHERE "id" = $1 AND "userId" = $2"#;
        let done = with_pool!(self, pool => sqlx::query(sql).bind(session_id).bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Ends every session of a user but `keep`; returns the ids ended (for cache invalidation).
    pub async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> StoreResult<Vec<String>> {
        let sql = r#"DELETE FROM "session" WHERE "userId" = $1 AND "id" <> $2 RETURNING "id""#;
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .fetch_all(pool)
            .await)?)
    }

    pub async fn session_ids_of_user(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let sql = r#"SELECT "id" FROM "session" WHERE "userId" = $1"#;
        Ok(with_pool!(self, pool => sqlx::query_scalar(sql).bind(user_id).fetch_all(pool).await)?)
    }

    /// Live sessions across users, newest first (admin).
    pub async fn list_sessions(
        &self,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<SessionInfo>, i64)> {
        let sql = r#"SELECT "id", "userId", "expiresAt", "createdAt", "ipAddress", "userAgent" FROM "session"
                     WHERE "expiresAt" > $1 ORDER BY "createdAt" DESC, "id" LIMIT $2 OFFSET $3"#;
        let count = r#"SELECT COUNT(*) FROM "session" WHERE "expiresAt" > $1"#;
        let at = now();
        with_pool!(self, pool => {
            let rows = sqlx::query_as(sql).bind(at).bind(limit).bind(offset).fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar(count).bind(at).fetch_one(pool).await?;
            Ok((rows, total))
        })
    }
}
