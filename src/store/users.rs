//! Users and their sign-in accounts (better-auth's `user` and `account` tables). A password lives
//! in the `credential` account, as better-auth keeps it; Google and Apple sign-ins are accounts
//! keyed by the provider's subject.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{new_id, now, with_pool, Store, StoreError, StoreResult};

pub const CREDENTIAL_PROVIDER: &str = "credential";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub username: Option<String>,
    pub image: Option<String>,
    #[sqlx(rename = "emailVerified")]
    pub email_verified: bool,
    /// NULL in a better-auth database without the admin plugin: an ordinary user.
    pub role: Option<String>,
    pub banned: Option<bool>,
    #[sqlx(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
    #[sqlx(rename = "updatedAt")]
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }
    pub fn is_banned(&self) -> bool {
        self.banned == Some(true)
    }
}

const USER_COLUMNS: &str = r#"u."id", u."email", u."name", u."username", u."image", u."emailVerified", u."role", u."banned", u."createdAt", u."updatedAt""#;
/// The same columns unqualified, for `RETURNING` (SQLite allows no table alias there).
const RETURNING_USER: &str = r#"RETURNING "id", "email", "name", "username", "image", "emailVerified", "role", "banned", "createdAt", "updatedAt""#;

/// What ended when an unverified account was reclaimed.
pub struct Reclaimed {
    pub sessions: Vec<String>,
    pub key_hashes: Vec<String>,
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub username: Option<&'a str>,
    pub name: &'a str,
    pub role: &'a str,
    pub email_verified: bool,
    pub image: Option<&'a str>,
}

/// Fields a user may change about themselves; `None` leaves one as it is.
#[derive(Default)]
pub struct ProfileUpdate<'a> {
    pub name: Option<&'a str>,
    pub username: Option<Option<&'a str>>,
    pub image: Option<Option<&'a str>>,
}

impl Store {
    /// Creates a user and, when `password_hash` is given, their credential account, in one
    /// transaction. `Conflict` when the email or username is taken.
    pub async fn create_user(
        &self,
        user: &NewUser<'_>,
        password_hash: Option<&str>,
        provider_account: Option<(&str, &str)>,
    ) -> StoreResult<User> {
        let id = new_id();
        let at = now();
        let sql_user = format!(
            r#"INSERT INTO "user" ("id", "email", "name", "username", "displayUsername", "image", "emailVerified", "role", "banned", "createdAt", "updatedAt")
               VALUES ($1, $2, $3, $4, $4, $5, $6, $7, false, $8, $8) {RETURNING_USER}"#
        );
        let sql_account = r#"INSERT INTO "account" ("id", "accountId", "providerId", "userId", "password", "createdAt", "updatedAt")
               VALUES ($1, $2, $3, $4, $5, $6, $6)"#;
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let created: User = sqlx::query_as(&sql_user)
                .bind(&id)
                .bind(user.email)
                .bind(user.name)
                .bind(user.username)
                .bind(user.image)
                .bind(user.email_verified)
                .bind(user.role)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            if let Some(hash) = password_hash {
                sqlx::query(sql_account)
                    .bind(new_id())
                    .bind(&id)
                    .bind(CREDENTIAL_PROVIDER)
                    .bind(&id)
                    .bind(hash)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
            }
            if let Some((provider, subject)) = provider_account {
                sqlx::query(sql_account)
                    .bind(new_id())
                    .bind(subject)
                    .bind(provider)
                    .bind(&id)
                    .bind(None::<&str>)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
            }
            tx.commit().await?;
            Ok(created)
        })
    }

    pub async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let sql = format!(r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."id" = $1"#);
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = format!(r#"SELECT {USER_COLUMNS} FROM "user" u WHERE u."email" = $1"#);
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(email).fetch_optional(pool).await)?)
    }

    /// The user signing in with `login` (an email, or a username) and their password hash, if
    /// they have one.
    pub async fn user_for_login(&self, login: &str) -> StoreResult<Option<(User, Option<String>)>> {
        let sql = format!(
            r#"SELECT {USER_COLUMNS}, a."password" AS password_hash FROM "user" u
               LEFT JOIN "account" a ON a."userId" = u."id" AND a."providerId" = $2
               WHERE u."email" = $1 OR u."username" = $1
               ORDER BY CASE WHEN u."email" = $1 THEN 0 ELSE 1 END LIMIT 1"#
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: User,
            password_hash: Option<String>,
        }
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(login)
            .bind(CREDENTIAL_PROVIDER)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|r| (r.user, r.password_hash)))
    }

    pub async fn password_hash(&self, user_id: &str) -> StoreResult<Option<String>> {
        let sql = r#"SELECT "password" FROM "account" WHERE "userId" = $1 AND "providerId" = $2"#;
        let hash: Option<Option<String>> = with_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(user_id)
            .bind(CREDENTIAL_PROVIDER)
            .fetch_optional(pool)
            .await)?;
        Ok(hash.flatten())
    }

    /// Sets the password, creating the credential account for a user who signed up through
    /// Google or Apple.
    pub async fn set_password(&self, user_id: &str, hash: &str) -> StoreResult<()> {
        let at = now();
        let update = r#"UPDATE "account" SET "password" = $1, "updatedAt" = $2 WHERE "userId" = $3 AND "providerId" = $4"#;
        let insert = r#"INSERT INTO "account" ("id", "accountId", "providerId", "userId", "password", "createdAt", "updatedAt") VALUES ($1, $2, $3, $2, $4, $5, $5)"#;
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(update)
                .bind(hash)
                .bind(at)
                .bind(user_id)
                .bind(CREDENTIAL_PROVIDER)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                sqlx::query(insert)
                    .bind(new_id())
                    .bind(user_id)
                    .bind(CREDENTIAL_PROVIDER)
                    .bind(hash)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn update_profile(
        &self,
        user_id: &str,
        update: &ProfileUpdate<'_>,
    ) -> StoreResult<Option<User>> {
        // COALESCE keeps a field when it is not being set; the flags say whether to set it.
        let sql = format!(
            r#"UPDATE "user" SET
                 "name" = COALESCE($2, "name"),
                 "username" = CASE WHEN $3 THEN $4 ELSE "username" END,
                 "displayUsername" = CASE WHEN $3 THEN $4 ELSE "displayUsername" END,
                 "image" = CASE WHEN $5 THEN $6 ELSE "image" END,
                 "updatedAt" = $7
               WHERE "id" = $1 {RETURNING_USER}"#
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(user_id)
            .bind(update.name)
            .bind(update.username.is_some())
            .bind(update.username.flatten())
            .bind(update.image.is_some())
            .bind(update.image.flatten())
            .bind(now())
            .fetch_optional(pool)
            .await
            .map_err(StoreError::from_write))?)
    }

    pub async fn set_email_verified(&self, user_id: &str) -> StoreResult<()> {
        let sql = r#"UPDATE "user" SET "emailVerified" = true, "updatedAt" = $2 WHERE "id" = $1"#;
        with_pool!(self, pool => sqlx::query(sql).bind(user_id).bind(now()).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Before a verified Google/Apple sign-in takes over an account whose address nobody
    /// verified: in one transaction its password goes, its sessions end, its API keys are
    /// revoked, and the address is marked verified. Returns what ended, for the caches.
    pub async fn reclaim_unverified_account(&self, user_id: &str) -> StoreResult<Reclaimed> {
        let sessions = r#"DELETE FROM "session" WHERE "userId" = $1 RETURNING "id""#;
        let keys = "UPDATE api_key SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING key_hash";
        let password = r#"DELETE FROM "account" WHERE "userId" = $1 AND "providerId" = $2"#;
        let verified =
            r#"UPDATE "user" SET "emailVerified" = true, "updatedAt" = $2 WHERE "id" = $1"#;
        let at = now();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let sessions = sqlx::query_scalar(sessions).bind(user_id).fetch_all(&mut *tx).await?;
            let key_hashes = sqlx::query_scalar(keys).bind(user_id).bind(at).fetch_all(&mut *tx).await?;
            sqlx::query(password).bind(user_id).bind(CREDENTIAL_PROVIDER).execute(&mut *tx).await.map(|_| ())?;
            sqlx::query(verified).bind(user_id).bind(at).execute(&mut *tx).await.map(|_| ())?;
            tx.commit().await?;
            Ok(Reclaimed { sessions, key_hashes })
        })
    }

    pub async fn set_role(&self, user_id: &str, role: &str) -> StoreResult<bool> {
        let sql = r#"UPDATE "user" SET "role" = $2, "updatedAt" = $3 WHERE "id" = $1"#;
        let done = with_pool!(self, pool => sqlx::query(sql).bind(user_id).bind(role).bind(now()).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Deletes a user; their sessions, keys, threads, prompts, usage and memories go with them
    /// (ON DELETE CASCADE).
    pub async fn delete_user(&self, user_id: &str) -> StoreResult<bool> {
        let sql = r#"DELETE FROM "user" WHERE "id" = $1"#;
        let done = with_pool!(self, pool => sqlx::query(sql).bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Users, newest first.
    pub async fn list_users(&self, limit: i64, offset: i64) -> StoreResult<(Vec<User>, i64)> {
        let sql = format!(
            r#"SELECT {USER_COLUMNS} FROM "user" u ORDER BY u."createdAt" DESC, u."id" LIMIT $1 OFFSET $2"#
        );
        let count = r#"SELECT COUNT(*) FROM "user""#;
        with_pool!(self, pool => {
            let users = sqlx::query_as(&sql).bind(limit).bind(offset).fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar(count).fetch_one(pool).await?;
            Ok((users, total))
        })
    }

    /// The user linked to a provider account (`google`, `apple`) with this subject.
    pub async fn user_by_provider_account(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<User>> {
        let sql = format!(
            r#"SELECT {USER_COLUMNS} FROM "user" u JOIN "account" a ON a."userId" = u."id"
               WHERE a."providerId" = $1 AND a."accountId" = $2"#
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(provider)
            .bind(subject)
            .fetch_optional(pool)
            .await)?)
    }

    /// Links a provider account to an existing user (the same verified email signed in before).
    pub async fn link_provider_account(
        &self,
        user_id: &str,
        provider: &str,
        subject: &str,
    ) -> StoreResult<()> {
        let sql = r#"INSERT INTO "account" ("id", "accountId", "providerId", "userId", "createdAt", "updatedAt") VALUES ($1, $2, $3, $4, $5, $5)"#;
        with_pool!(self, pool => sqlx::query(sql)
            .bind(new_id())
            .bind(subject)
            .bind(provider)
            .bind(user_id)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(StoreError::from_write))?;
        Ok(())
    }
}
