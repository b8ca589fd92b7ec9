//! One-time tokens (better-auth's `verification` table): password resets. The identifier holds
//! a hash of the token, never the token.

use chrono::{DateTime, Utc};

use super::{new_id, now, with_pool, Store, StoreResult};

impl Store {
    pub async fn create_verification(
        &self,
        identifier: &str,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let sql = r#"INSERT INTO "verification" ("id", "identifier", "value", "expiresAt", "createdAt", "updatedAt") VALUES ($1, $2, $3, $4, $5, $5)"#;
        with_pool!(self, pool => sqlx::query(sql)
            .bind(new_id())
            .bind(identifier)
            .bind(value)
            .bind(expires_at)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Deletes the token and returns its value if it had not expired: each token works once.
    pub async fn take_verification(&self, identifier: &str) -> StoreResult<Option<String>> {
        let sql =
            r#"DELETE FROM "verification" WHERE "identifier" = $1 RETURNING "value", "expiresAt""#;
        let rows: Vec<(String, DateTime<Utc>)> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(identifier)
            .fetch_all(pool)
            .await)?;
        let at = now();
        Ok(rows
            .into_iter()
            .find(|(_, expires_at)| *expires_at > at)
            .map(|(value, _)| value))
    }
}
