//! Usage, read back: one chat message's or conversation's usage (seed 004's
//! `/chat/.../usage-details`), a user's summary by day and model and their raw records, one API
//! key's summary, and the same across users for admins. Amounts are USD; token counts use seed
//! 004's names (`input_tokens`, `output_tokens`, `cached_tokens`).
//!
//! Dates: `from` and `to` take a UTC date (`YYYY-MM-DD`, the whole day: `to=2025-01-31` includes
//! the 31st) or an RFC 3339 instant (`to` then includes that instant).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{page, AdminCaller, Caller, PageQuery, QueryParams};
use crate::services::Usage;
use crate::state::AppState;
use crate::store::usage_queries::{round_usd, Until, UsageFilter, UsageRow, UsageTotals};

type Shared = State<Arc<AppState>>;

/// The filters and page of every usage list. The page fields are spelled out (not flattened
/// from [`PageQuery`]) so the query-string deserializer parses them as numbers.
#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    model: Option<String>,
    key_id: Option<String>,
    user_id: Option<String>,
    before_id: Option<i64>,
    limit: Option<i64>,
    offset: Option<i64>,
}

impl UsageQuery {
    fn bounds(&self) -> (i64, i64) {
        PageQuery {
            limit: self.limit,
            offset: self.offset,
        }
        .bounds()
    }

    /// The filter these parameters ask for, with `user_id` (the caller's own, or the one an
    /// admin named) and nothing else decided here.
    fn filter(&self, user_id: Option<String>) -> ApiResult<UsageFilter> {
        let from = given(&self.from)
            .map(|s| parse_time(s, "from", false))
            .transpose()?;
        let to = given(&self.to)
            .map(|s| parse_time(s, "to", true))
            .transpose()?;
        let to = to.map(|(at, whole_day)| {
            if whole_day {
                Until::Before(at)
            } else {
                Until::Through(at)
            }
        });
        if let (Some(from), Some(to)) = (from, to) {
            let empty = match to {
                Until::Before(to) => from.0 >= to,
                Until::Through(to) => from.0 > to,
            };
            if empty {
                return Err(ApiError::invalid(Some("from"), "from: is after to"));
            }
        }
        Ok(UsageFilter {
            user_id,
            api_key_id: given(&self.key_id).map(str::to_string),
            model: given(&self.model).map(str::to_string),
            from: from.map(|(at, _)| at),
            to,
        })
    }
}

/// A parameter's value, an empty one counting as not given.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A date (midnight UTC starting it; for `to`, midnight ending it) or an RFC 3339 instant, and
/// whether it was a date.
fn parse_time(value: &str, field: &'static str, end: bool) -> ApiResult<(DateTime<Utc>, bool)> {
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let day = if end { date.succ_opt() } else { Some(date) };
        if let Some(at) = day.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            return Ok((at.and_utc(), true));
        }
    }
    DateTime::parse_from_rfc3339(value)
        .map(|at| (at.with_timezone(&Utc), false))
        .map_err(|_| {
            ApiError::invalid(
                Some(field),
                format!(
                    "{field}: expected a date (YYYY-MM-DD) or an RFC 3339 time \
                     (2025-01-31T12:00:00Z), got {value:?}"
                ),
            )
        })
}

/// Seed 004's usage_details row: one usage record, `price` its cost (also as `cost_usd`).
#[derive(Serialize)]
struct Detail<'a> {
    id: i64,
    message_id: Option<&'a str>,
    scope: &'a str,
    model: Option<&'a str>,
    provider: Option<&'a str>,
    upstream_model: Option<&'a str>,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    reasoning_tokens: i64,
    audio_tokens: i64,
    total_tokens: i64,
    audio_seconds: f64,
    estimated: bool,
    price: f64,
    cost_usd: f64,
    created_at: DateTime<Utc>,
}

fn detail(row: &UsageRow) -> Detail<'_> {
    let cost = round_usd(row.cost_usd);
    Detail {
        id: row.id,
        message_id: row.message_id.as_deref(),
        scope: &row.route,
        model: row.model.as_deref(),
        provider: row.provider.as_deref(),
        upstream_model: row.upstream_model.as_deref(),
        input_tokens: row.prompt_tokens,
        output_tokens: row.completion_tokens,
        cached_tokens: row.cached_tokens,
        reasoning_tokens: row.reasoning_tokens,
        audio_tokens: row.audio_tokens,
        total_tokens: row.total_tokens,
        audio_seconds: row.audio_seconds,
        estimated: row.estimated,
        price: cost,
        cost_usd: cost,
        created_at: row.created_at,
    }
}

/// Totals in the chat details' shape: the usual fields plus `price`.
fn detail_totals(totals: &UsageTotals) -> Value {
    let mut value = json!(totals);
    value["price"] = json!(round_usd(totals.cost_usd));
    value
}

/// `GET /chat/messages/{message_id}/usage-details`: each usage record of one message (oldest
/// first) and their totals.
pub async fn message_details(
    State(state): Shared,
    Caller(principal): Caller,
    Path(message_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let usage = Usage::new(&state)
        .of_message(&principal, &message_id)
        .await?;
    let items: Vec<Detail> = usage.records.iter().map(detail).collect();
    let seq = usage.row.seq;
    let usage_details: Vec<Value> = usage
        .records
        .iter()
        .map(|r| seed_004_detail(r, seq))
        .collect();
    Ok(Json(json!({
        "message_id": message_id,
        "conversation_id": usage.message.thread_id,
        "items": items,
        "totals": detail_totals(&usage.totals),
        "message": super::conversations::message_out(&usage.row, None, None),
        "usage_details": usage_details,
    })))
}

/// `GET /chat/{conversation_id}/usage-details`: the usage of every message of a conversation,
/// totalled and split by model, and each record (seed 004's `usage_details`).
pub async fn conversation_details(
    State(state): Shared,
    Caller(principal): Caller,
    Path(conversation_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let details = Usage::new(&state)
        .of_thread(&principal, &conversation_id)
        .await?;
    let usage = &details.usage;
    let by_model: Vec<Value> = usage
        .by_model
        .iter()
        .map(|m| {
            let mut value = detail_totals(&m.usage);
            value["model"] = json!(m.model);
            value
        })
        .collect();
    let usage_details: Vec<Value> = details
        .records
        .iter()
        .map(|r| {
            let seq = r
                .message_id
                .as_ref()
                .and_then(|id| details.message_seqs.get(id).copied());
            seed_004_detail(r, seq)
        })
        .collect();
    Ok(Json(json!({
        "conversation_id": conversation_id,
        "messages": usage.messages,
        "totals": detail_totals(&usage.totals),
        "by_model": by_model,
        "usage_details": usage_details,
    })))
}

/// Seed 004's usage detail: the record under the message's integer id, its scope in the
/// seed's words (`final` for the answer itself, `title`, `summary`, ...).
fn seed_004_detail(row: &UsageRow, message_seq: Option<i64>) -> Value {
    let scope = match row.scope.as_str() {
        "chat" | "api" => "final",
        other => other,
    };
    json!({
        "id": row.id,
        "message_id": message_seq,
        "scope": scope,
        "model": row.model,
        "input_tokens": row.prompt_tokens,
        "output_tokens": row.completion_tokens,
        "cached_tokens": row.cached_tokens,
        "price": round_usd(row.cost_usd),
        "created_at": super::conversations::timestamp(row.created_at),
    })
}

/// A summary page: groups, their count, the bounds, and the totals of the whole filter.
fn summary_page<T: serde::Serialize>(
    page_of: crate::store::usage_queries::SummaryPage<T>,
    bounds: (i64, i64),
) -> Value {
    let mut value = page(page_of.items, page_of.groups, bounds);
    value["totals"] = json!(page_of.totals);
    value
}

/// A records page, with the cursor for the next one (null on the last page).
fn records_page(page_of: crate::store::usage_queries::RecordPage, bounds: (i64, i64)) -> Value {
    let next = (page_of.items.len() as i64 == bounds.0)
        .then(|| page_of.items.last().map(|r| r.id))
        .flatten();
    let mut value = page(page_of.items, page_of.total, bounds);
    value["next_before_id"] = json!(next);
    value
}

/// `GET /api/v1/usage`: the caller's usage by day and model.
pub async fn summary(
    State(state): Shared,
    Caller(principal): Caller,
    QueryParams(query): QueryParams<UsageQuery>,
) -> ApiResult<Json<Value>> {
    let bounds = query.bounds();
    let result = Usage::new(&state)
        .summary(
            &principal,
            given(&query.user_id),
            query.filter(None)?,
            bounds,
        )
        .await?;
    Ok(Json(summary_page(result, bounds)))
}

/// `GET /api/v1/usage/records`: the caller's records, newest first.
pub async fn records(
    State(state): Shared,
    Caller(principal): Caller,
    QueryParams(query): QueryParams<UsageQuery>,
) -> ApiResult<Json<Value>> {
    let bounds = query.bounds();
    let result = Usage::new(&state)
        .records(
            &principal,
            given(&query.user_id),
            query.filter(None)?,
            query.before_id,
            bounds,
        )
        .await?;
    Ok(Json(records_page(result, bounds)))
}

/// `GET /api/v1/keys/{id}/usage`: one API key's usage by day and model.
pub async fn key_summary(
    State(state): Shared,
    Caller(principal): Caller,
    Path(key_id): Path<String>,
    QueryParams(query): QueryParams<UsageQuery>,
) -> ApiResult<Json<Value>> {
    let bounds = query.bounds();
    let result = Usage::new(&state)
        .of_key(&principal, &key_id, query.filter(None)?, bounds)
        .await?;
    let mut value = summary_page(result, bounds);
    value["key_id"] = json!(key_id);
    Ok(Json(value))
}

/// `GET /api/v1/admin/usage`: everyone's usage by user, day and model.
pub async fn admin_summary(
    State(state): Shared,
    _admin: AdminCaller,
    QueryParams(query): QueryParams<UsageQuery>,
) -> ApiResult<Json<Value>> {
    let filter = query.filter(given(&query.user_id).map(str::to_string))?;
    let bounds = query.bounds();
    let result = Usage::new(&state).everyone(&filter, bounds).await?;
    Ok(Json(summary_page(result, bounds)))
}

/// `GET /api/v1/admin/usage/records`: everyone's records, newest first.
pub async fn admin_records(
    State(state): Shared,
    _admin: AdminCaller,
    QueryParams(query): QueryParams<UsageQuery>,
) -> ApiResult<Json<Value>> {
    let filter = query.filter(given(&query.user_id).map(str::to_string))?;
    let bounds = query.bounds();
    let result = Usage::new(&state)
        .everyones_records(&filter, query.before_id, bounds)
        .await?;
    Ok(Json(records_page(result, bounds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_instants() {
        let (at, day) = parse_time("2025-01-31", "from", false).unwrap();
        assert!(day);
        assert_eq!(at.to_rfc3339(), "2025-01-31T00:00:00+00:00");
        let (at, _) = parse_time("2025-01-31", "to", true).unwrap();
        assert_eq!(at.to_rfc3339(), "2025-02-01T00:00:00+00:00");
        let (at, day) = parse_time("2025-01-31T12:00:00+02:00", "to", true).unwrap();
        assert!(!day);
        assert_eq!(at.to_rfc3339(), "2025-01-31T10:00:00+00:00");
        for bad in [
            "2025-02-30",
            "31/01/2025",
            "yesterday",
            "2025-01-31T25:00:00Z",
        ] {
            assert!(parse_time(bad, "from", false).is_err(), "{bad}");
        }
    }

    #[test]
    fn from_after_to_is_refused() {
        let query = UsageQuery {
            from: Some("2025-02-01".into()),
            to: Some("2025-01-31".into()),
            ..UsageQuery::default()
        };
        assert!(query.filter(None).is_err());
        let one_day = UsageQuery {
            from: Some("2025-01-31".into()),
            to: Some("2025-01-31".into()),
            ..UsageQuery::default()
        };
        let filter = one_day.filter(None).unwrap();
        assert!(matches!(filter.to, Some(Until::Before(_))));
    }
}
