//! Writing usage records in batches. (Reading them back, for the usage endpoints, is in
//! `usage_queries.rs`.)

use super::{with_pool, Store, StoreResult};
use crate::usage::UsageRecord;

/// Rows per INSERT statement: 23 parameters each stays far below both engines' limits.
const ROWS_PER_STATEMENT: usize = 500;

const INSERT: &str = r#"INSERT INTO usage_record (request_id, user_id, api_key_id, thread_id, message_id,
    route, model, provider, upstream_model, status, outcome, stream, prompt_tokens, completion_tokens,
    cached_tokens, reasoning_tokens, audio_tokens, audio_seconds, estimated, cost_usd, latency_ms,
    ttfb_ms, created_at) "#;

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Inserts `records` in one transaction. An owner that no longer exists (a user or key
    /// deleted while its request ran) is written as NULL rather than failing the batch.
    pub async fn insert_usage(&self, records: &[UsageRecord]) -> StoreResult<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        let written = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut written = 0;
            for chunk in records.chunks(ROWS_PER_STATEMENT) {
                let mut query = sqlx::QueryBuilder::new(INSERT);
                query.push("VALUES ");
                for (i, r) in chunk.iter().enumerate() {
                    if i > 0 {
                        query.push(", ");
                    }
                    query.push("(").push_bind(&r.request_id);
                    query.push(r#", (SELECT "id" FROM "user" WHERE "id" = "#).push_bind(&r.user_id);
                    query.push("), (SELECT id FROM api_key WHERE id = ").push_bind(&r.api_key_id);
                    query.push("), (SELECT id FROM thread WHERE id = ").push_bind(&r.thread_id);
                    query.push("), (SELECT id FROM message WHERE id = ").push_bind(&r.message_id);
                    query.push("), ").push_bind(&r.route);
                    query.push(", ").push_bind(&r.model);
                    query.push(", ").push_bind(&r.provider);
                    query.push(", ").push_bind(&r.upstream_model);
                    query.push(", ").push_bind(i32::from(r.status));
                    query.push(", ").push_bind(&r.outcome);
                    query.push(", ").push_bind(r.stream);
                    let u = &r.usage;
                    query.push(", ").push_bind(signed(u.prompt_tokens));
                    query.push(", ").push_bind(signed(u.completion_tokens));
                    query.push(", ").push_bind(signed(u.cached_tokens));
                    query.push(", ").push_bind(signed(u.reasoning_tokens));
                    query.push(", ").push_bind(signed(u.audio_tokens));
                    query.push(", ").push_bind(u.audio_seconds);
                    query.push(", ").push_bind(u.estimated);
                    query.push(", ").push_bind(r.cost_usd);
                    query.push(", ").push_bind(signed(r.latency_ms));
                    query.push(", ").push_bind(r.ttfb_ms.map(signed));
                    query.push(", ").push_bind(r.created_at);
                    query.push(")");
                }
                written += query.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            written
        });
        Ok(written)
    }
}
