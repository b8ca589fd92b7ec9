//! Writing usage records in batches. (Reading them back, for the usage endpoints, is in
//! `usage_queries.rs`.)
//!
//! A batch is one transaction of few, cached statements: on SQLite multi-row INSERTs of 64 rows
//! (then 8, then 1 for the rest): each statement run is a round trip to sqlx's SQLite worker
//! thread, and with one row per statement that was most of a row's cost (`cargo bench --bench
//! usage_writer`: 34 µs a row, 10 µs with 64-row statements); on PostgreSQL one
//! INSERT ... SELECT FROM UNNEST over one array per column (one round trip for the batch). When a record names a user, key, thread or
//! message that no longer exists (deleted while its request ran), the batch is written again
//! with those references looked up, so they become NULL instead of failing the batch.

use std::sync::OnceLock;

use super::{Pool, Store, StoreResult};
use crate::usage::UsageRecord;

const COLUMNS: &str = "request_id, user_id, api_key_id, thread_id, message_id, route, model, \
    provider, upstream_model, status, outcome, stream, prompt_tokens, completion_tokens, \
    cached_tokens, reasoning_tokens, audio_tokens, audio_seconds, estimated, cost_usd, \
    latency_ms, ttfb_ms, created_at, scope";

/// Rows per SQLite INSERT statement, largest first: a batch is written as statements of 64 rows,
/// the rest as statements of 8, then of 1. Three statement texts, each prepared once per
/// connection; 64 rows bind 1,536 values, far below SQLite's 32,766.
const SQLITE_ROWS_PER_STATEMENT: [usize; 3] = [64, 8, 1];

/// `INSERT INTO usage_record (COLUMNS) VALUES (?, ...), ...` for each of
/// `SQLITE_ROWS_PER_STATEMENT`.
fn sqlite_inserts() -> &'static [String; 3] {
    static INSERTS: OnceLock<[String; 3]> = OnceLock::new();
    INSERTS.get_or_init(|| {
        SQLITE_ROWS_PER_STATEMENT.map(|rows| {
            let row = format!("({})", vec!["?"; COLUMN_COUNT].join(", "));
            format!(
                "INSERT INTO usage_record ({COLUMNS}) VALUES {}",
                vec![row; rows].join(", ")
            )
        })
    })
}

const COLUMN_COUNT: usize = 24;

/// The same row, with each reference kept only if what it names still exists.
const CHECKED_VALUES: &str = r#"SELECT $1, (SELECT "id" FROM "user" WHERE "id" = $2),
    (SELECT id FROM api_key WHERE id = $3), (SELECT id FROM thread WHERE id = $4),
    (SELECT id FROM message WHERE id = $5), $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
    $17, $18, $19, $20, $21, $22, $23, $24"#;

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Binds one record's 24 values, in `COLUMNS` order.
macro_rules! bind_record {
    ($query:expr, $r:expr) => {{
        let r = $r;
        let u = &r.usage;
        // Bound as `&str`, borrowed for the statement's run: a `&String` would be copied.
        $query
            .bind(r.request_id.as_str())
            .bind(r.user_id.as_deref())
            .bind(r.api_key_id.as_deref())
            .bind(r.thread_id.as_deref())
            .bind(r.message_id.as_deref())
            .bind(r.route.as_str())
            .bind(r.model.as_deref())
            .bind(r.provider.as_deref())
            .bind(r.upstream_model.as_deref())
            .bind(i32::from(r.status))
            .bind(r.outcome.as_str())
            .bind(r.stream)
            .bind(signed(u.prompt_tokens))
            .bind(signed(u.completion_tokens))
            .bind(signed(u.cached_tokens))
            .bind(signed(u.reasoning_tokens))
            .bind(signed(u.audio_tokens))
            .bind(u.audio_seconds)
            .bind(u.estimated)
            .bind(r.cost_usd)
            .bind(signed(r.latency_ms))
            .bind(r.ttfb_ms.map(signed))
            .bind(r.created_at)
            .bind(r.scope.as_str())
    }};
}

fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.is_foreign_key_violation())
}

impl Store {
    /// Inserts `records` in one transaction; returns how many were written.
    pub async fn insert_usage(&self, records: &[UsageRecord]) -> StoreResult<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        match self.insert_usage_fast(records).await {
            Err(e) if is_foreign_key_violation(&e) => {
                Ok(self.insert_usage_checked(records).await?)
            }
            other => Ok(other?),
        }
    }

    async fn insert_usage_fast(&self, records: &[UsageRecord]) -> Result<u64, sqlx::Error> {
        match self.pool() {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let mut rest = records;
                for (rows, sql) in SQLITE_ROWS_PER_STATEMENT.iter().zip(sqlite_inserts()) {
                    while rest.len() >= *rows {
                        let (chunk, tail) = rest.split_at(*rows);
                        let mut query = sqlx::query(sql);
                        for r in chunk {
                            query = bind_record!(query, r);
                        }
                        query.execute(&mut *tx).await?;
                        rest = tail;
                    }
                }
                tx.commit().await?;
                Ok(records.len() as u64)
            }
            Pool::Postgres(pool) => {
                let column = |f: fn(&UsageRecord) -> Option<String>| -> Vec<Option<String>> {
                    records.iter().map(f).collect()
                };
                let int = |f: fn(&UsageRecord) -> u64| -> Vec<i64> {
                    records.iter().map(|r| signed(f(r))).collect()
                };
                let sql = format!(
                    "INSERT INTO usage_record ({COLUMNS}) SELECT * FROM UNNEST($1::text[], \
                     $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::text[], $9::text[], $10::int[], $11::text[], $12::bool[], $13::int8[], \
                     $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::float8[], \
                     $19::bool[], $20::float8[], $21::int8[], $22::int8[], $23::timestamptz[], \
                     $24::text[])"
                );
                let written = sqlx::query(&sql)
                    .bind(column(|r| Some(r.request_id.clone())))
                    .bind(column(|r| r.user_id.clone()))
                    .bind(column(|r| r.api_key_id.clone()))
                    .bind(column(|r| r.thread_id.clone()))
                    .bind(column(|r| r.message_id.clone()))
                    .bind(column(|r| Some(r.route.clone())))
                    .bind(column(|r| r.model.clone()))
                    .bind(column(|r| r.provider.clone()))
                    .bind(column(|r| r.upstream_model.clone()))
                    .bind(
                        records
                            .iter()
                            .map(|r| i32::from(r.status))
                            .collect::<Vec<_>>(),
                    )
                    .bind(column(|r| Some(r.outcome.clone())))
                    .bind(records.iter().map(|r| r.stream).collect::<Vec<_>>())
                    .bind(int(|r| r.usage.prompt_tokens))
                    .bind(int(|r| r.usage.completion_tokens))
                    .bind(int(|r| r.usage.cached_tokens))
                    .bind(int(|r| r.usage.reasoning_tokens))
                    .bind(int(|r| r.usage.audio_tokens))
                    .bind(
                        records
                            .iter()
                            .map(|r| r.usage.audio_seconds)
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        records
                            .iter()
                            .map(|r| r.usage.estimated)
                            .collect::<Vec<_>>(),
                    )
                    .bind(records.iter().map(|r| r.cost_usd).collect::<Vec<_>>())
                    .bind(int(|r| r.latency_ms))
                    .bind(
                        records
                            .iter()
                            .map(|r| r.ttfb_ms.map(signed))
                            .collect::<Vec<_>>(),
                    )
                    .bind(records.iter().map(|r| r.created_at).collect::<Vec<_>>())
                    .bind(column(|r| Some(r.scope.as_str().to_string())))
                    .execute(pool)
                    .await?;
                Ok(written.rows_affected())
            }
        }
    }

    /// The slow path: row by row, references looked up.
    async fn insert_usage_checked(&self, records: &[UsageRecord]) -> Result<u64, sqlx::Error> {
        let sql = format!("INSERT INTO usage_record ({COLUMNS}) {CHECKED_VALUES}");
        super::with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for r in records {
                bind_record!(sqlx::query(&sql), r).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(records.len() as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_insert_binds_each_column_of_each_row() {
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
        for (rows, sql) in SQLITE_ROWS_PER_STATEMENT.iter().zip(sqlite_inserts()) {
            assert_eq!(sql.matches('?').count(), rows * COLUMN_COUNT, "{sql}");
        }
    }
}
