//! Reading usage back for the usage endpoints: raw records (newest first, by offset or by a
//! keyset cursor), summaries grouped by day and model (and user, for admins), and the usage of
//! one message or one thread.
//!
//! Filters are built into the SQL text with numbered parameters, bound in order on whichever
//! engine runs them. Every list is ordered on indexed columns with a unique tie-breaker (the row
//! id), so pages never overlap or skip: `(user_id, created_at)`, `(api_key_id, created_at)` and
//! `created_at` each end in the row id in SQLite, and PostgreSQL sorts the ties incrementally.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{with_pool, Pool, Store, StoreResult};

/// An amount of USD rounded to 1e-10 (sums of many small costs pick up float noise such as
/// 0.015108300000000002; no price is that fine).
pub fn round_usd(amount: f64) -> f64 {
    (amount * 1e10).round() / 1e10
}

fn usd<S: serde::Serializer>(amount: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(round_usd(*amount))
}

/// Which records. Each field set narrows the set.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub model: Option<String>,
    /// Records created at or after this instant.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<Until>,
}

/// The upper end of a time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Strictly before (a day given as a date: up to the next midnight).
    Before(DateTime<Utc>),
    /// At or before (an instant given in full).
    Through(DateTime<Utc>),
}

/// One usage record as the endpoints list it. Token counts use the seed's names
/// (`input_tokens`, `output_tokens`); amounts are USD.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct UsageRow {
    pub id: i64,
    pub request_id: String,
    pub created_at: DateTime<Utc>,
    pub user_id: Option<String>,
    #[serde(rename = "key_id")]
    pub api_key_id: Option<String>,
    pub thread_id: Option<String>,
    pub message_id: Option<String>,
    pub route: String,
    /// What the call was for: `api` (/v1), `chat`, `title`, `summary`, ...
    pub scope: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub status: i32,
    pub outcome: String,
    pub stream: bool,
    #[serde(rename = "input_tokens")]
    pub prompt_tokens: i64,
    #[serde(rename = "output_tokens")]
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    pub audio_tokens: i64,
    pub total_tokens: i64,
    pub audio_seconds: f64,
    /// The tokens are the gateway's estimate (the provider never reported them).
    pub estimated: bool,
    #[serde(serialize_with = "usd")]
    pub cost_usd: f64,
    pub latency_ms: i64,
    pub ttfb_ms: Option<i64>,
}

const ROW_COLUMNS: &str =
    "id, request_id, created_at, user_id, api_key_id, thread_id, message_id, \
    route, scope, model, provider, upstream_model, status, outcome, stream, prompt_tokens, \
    completion_tokens, cached_tokens, reasoning_tokens, audio_tokens, \
    prompt_tokens + completion_tokens AS total_tokens, audio_seconds, estimated, cost_usd, \
    latency_ms, ttfb_ms";

/// Sums over a set of records.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow, Serialize)]
pub struct UsageTotals {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    pub audio_tokens: i64,
    pub total_tokens: i64,
    pub audio_seconds: f64,
    #[serde(serialize_with = "usd")]
    pub cost_usd: f64,
}

/// Each sum of [`UsageTotals`] after `requests`: its name, what it sums, and its SQL type.
/// The casts give both engines one type: PostgreSQL's SUM of a bigint is numeric, and
/// SQLite's SUM of nothing is NULL.
const SUMS: [(&str, &str, &str); 8] = [
    ("input_tokens", "prompt_tokens", "bigint"),
    ("output_tokens", "completion_tokens", "bigint"),
    ("cached_tokens", "cached_tokens", "bigint"),
    ("reasoning_tokens", "reasoning_tokens", "bigint"),
    ("audio_tokens", "audio_tokens", "bigint"),
    (
        "total_tokens",
        "prompt_tokens + completion_tokens",
        "bigint",
    ),
    ("audio_seconds", "audio_seconds", "double precision"),
    ("cost_usd", "cost_usd", "double precision"),
];

/// The select list of a [`UsageTotals`] over the rows (or each group) of a query.
fn aggregates() -> String {
    let mut out = String::from("COUNT(*) AS requests");
    for (name, expr, ty) in SUMS {
        out.push_str(&format!(
            ", CAST(COALESCE(SUM({expr}), 0) AS {ty}) AS {name}"
        ));
    }
    out
}

/// In a grouped query: how many groups there are and the totals over all of them, on every row
/// (window functions run after grouping and before LIMIT), so one scan answers a whole page.
fn window_totals() -> String {
    let mut out = String::from(
        "COUNT(*) OVER () AS all_groups, CAST(SUM(COUNT(*)) OVER () AS bigint) AS all_requests",
    );
    for (name, expr, ty) in SUMS {
        out.push_str(&format!(
            ", CAST(SUM(SUM({expr})) OVER () AS {ty}) AS all_{name}"
        ));
    }
    out
}

/// The columns of [`window_totals`], as each row of a grouped page carries them.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
struct WindowTotals {
    all_groups: i64,
    all_requests: i64,
    all_input_tokens: i64,
    all_output_tokens: i64,
    all_cached_tokens: i64,
    all_reasoning_tokens: i64,
    all_audio_tokens: i64,
    all_total_tokens: i64,
    all_audio_seconds: f64,
    all_cost_usd: f64,
}

impl WindowTotals {
    fn totals(&self) -> UsageTotals {
        UsageTotals {
            requests: self.all_requests,
            input_tokens: self.all_input_tokens,
            output_tokens: self.all_output_tokens,
            cached_tokens: self.all_cached_tokens,
            reasoning_tokens: self.all_reasoning_tokens,
            audio_tokens: self.all_audio_tokens,
            total_tokens: self.all_total_tokens,
            audio_seconds: self.all_audio_seconds,
            cost_usd: self.all_cost_usd,
        }
    }
}

/// The columns the grouped queries read from each record.
const SUMMED_COLUMNS: &str = "prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, \
    audio_tokens, audio_seconds, cost_usd";

/// A row of a grouped page: the group's own values, then [`WindowTotals`].
trait Windowed {
    /// Whether the groups are per user too.
    const BY_USER: bool;
    fn window(&self) -> &WindowTotals;
}

/// One day's usage of one model (a day is a UTC date, `YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct DayModelUsage {
    pub date: String,
    pub model: Option<String>,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub usage: UsageTotals,
    #[sqlx(flatten)]
    #[serde(skip)]
    window: WindowTotals,
}

impl Windowed for DayModelUsage {
    const BY_USER: bool = false;
    fn window(&self) -> &WindowTotals {
        &self.window
    }
}

/// One user's usage of one model on one day. `user_id` is null for the master key's requests.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct UserDayModelUsage {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub date: String,
    pub model: Option<String>,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub usage: UsageTotals,
    #[sqlx(flatten)]
    #[serde(skip)]
    window: WindowTotals,
}

impl Windowed for UserDayModelUsage {
    const BY_USER: bool = true;
    fn window(&self) -> &WindowTotals {
        &self.window
    }
}

/// The usage of one model within a set (a thread).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct ModelUsage {
    pub model: Option<String>,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub usage: UsageTotals,
}

/// A page of a grouped summary: the groups, how many groups in all, and the totals of every
/// record the filter selects.
#[derive(Debug, Clone)]
pub struct SummaryPage<T> {
    pub items: Vec<T>,
    pub groups: i64,
    pub totals: UsageTotals,
}

/// A page of records: the rows and how many records the filter selects in all.
#[derive(Debug, Clone)]
pub struct RecordPage {
    pub items: Vec<UsageRow>,
    pub total: i64,
}

/// Who owns a message, and its thread.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageOwner {
    pub user_id: String,
    pub thread_id: String,
    /// Whether the message's thread was deleted.
    pub deleted: bool,
}

/// A thread's owner, and whether it was deleted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ThreadOwner {
    pub user_id: String,
    pub deleted: bool,
}

/// A thread's usage: totals, how many of its messages have usage, and the split by model.
#[derive(Debug, Clone)]
pub struct ThreadUsage {
    pub totals: UsageTotals,
    pub messages: i64,
    pub by_model: Vec<ModelUsage>,
}

/// A query parameter, bound in order.
enum Arg {
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

/// SQL text and its parameters (`$1`, `$2`, ... in the order pushed).
#[derive(Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Adds a parameter and returns its placeholder.
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// ` WHERE ...` for `filter` (and `extra` conditions), or nothing when nothing narrows.
    fn filter(&mut self, filter: &UsageFilter, extra: &[String]) -> &mut Self {
        let mut conditions = Vec::new();
        if let Some(user) = &filter.user_id {
            conditions.push(format!("user_id = {}", self.arg(Arg::Text(user.clone()))));
        }
        if let Some(key) = &filter.api_key_id {
            conditions.push(format!("api_key_id = {}", self.arg(Arg::Text(key.clone()))));
        }
        if let Some(model) = &filter.model {
            conditions.push(format!("model = {}", self.arg(Arg::Text(model.clone()))));
        }
        if let Some(from) = filter.from {
            conditions.push(format!("created_at >= {}", self.arg(Arg::Time(from))));
        }
        match filter.to {
            Some(Until::Before(to)) => {
                conditions.push(format!("created_at < {}", self.arg(Arg::Time(to))))
            }
            Some(Until::Through(to)) => {
                conditions.push(format!("created_at <= {}", self.arg(Arg::Time(to))))
            }
            None => {}
        }
        conditions.extend(extra.iter().cloned());
        if !conditions.is_empty() {
            self.text.push_str(" WHERE ");
            self.text.push_str(&conditions.join(" AND "));
        }
        self
    }

    fn page(&mut self, limit: i64, offset: i64) -> &mut Self {
        let limit = self.arg(Arg::Int(limit));
        let offset = self.arg(Arg::Int(offset));
        self.text
            .push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
        self
    }
}

/// `$query` with every argument of `$sql` bound, in order.
macro_rules! bound {
    ($query:expr, $sql:expr) => {{
        let mut query = $query;
        for arg in &$sql.args {
            query = match arg {
                Arg::Text(text) => query.bind(text.as_str()),
                Arg::Time(time) => query.bind(*time),
                Arg::Int(n) => query.bind(*n),
            };
        }
        query
    }};
}

impl Store {
    /// What groups a record's `created_at` by its UTC day, in this engine's SQL. SQLite keeps
    /// timestamps as RFC 3339 text in UTC, so the date is its first ten characters; PostgreSQL
    /// groups on a date, cheaper than formatting every row.
    fn day_key(&self) -> &'static str {
        match self.pool() {
            Pool::Sqlite(_) => "substr(created_at, 1, 10)",
            Pool::Postgres(_) => "CAST(created_at AT TIME ZONE 'UTC' AS date)",
        }
    }

    /// A [`Self::day_key`] column as `YYYY-MM-DD` text.
    fn day_text(&self, column: &str) -> String {
        match self.pool() {
            Pool::Sqlite(_) => column.to_string(),
            Pool::Postgres(_) => format!("to_char({column}, 'YYYY-MM-DD')"),
        }
    }

    async fn fetch_rows<T>(&self, sql: &Sql) -> StoreResult<Vec<T>>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        Ok(
            with_pool!(self, pool => bound!(sqlx::query_as::<_, T>(&sql.text), sql)
            .fetch_all(pool)
            .await)?,
        )
    }

    async fn fetch_one_row<T>(&self, sql: &Sql) -> StoreResult<T>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        Ok(
            with_pool!(self, pool => bound!(sqlx::query_as::<_, T>(&sql.text), sql)
            .fetch_one(pool)
            .await)?,
        )
    }

    async fn fetch_optional_row<T>(&self, sql: &Sql) -> StoreResult<Option<T>>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        Ok(
            with_pool!(self, pool => bound!(sqlx::query_as::<_, T>(&sql.text), sql)
            .fetch_optional(pool)
            .await)?,
        )
    }

    async fn count(&self, sql: &Sql) -> StoreResult<i64> {
        let (n,): (i64,) = self.fetch_one_row(sql).await?;
        Ok(n)
    }

    /// The records `filter` selects, newest first (`created_at`, then id), `limit` from
    /// `offset`. With `before_id`, only records after that one in this order (a keyset cursor:
    /// the id of the last record of the previous page); a `before_id` outside the filtered set
    /// gives an empty page. `total` counts every record the filter selects, cursor aside.
    pub async fn usage_records(
        &self,
        filter: &UsageFilter,
        before_id: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<RecordPage> {
        let mut count = Sql::new("SELECT COUNT(*) FROM usage_record");
        count.filter(filter, &[]);
        let total = self.count(&count).await?;

        let mut sql = Sql::new(&format!("SELECT {ROW_COLUMNS} FROM usage_record"));
        let mut extra = Vec::new();
        if let Some(cursor) = before_id {
            let mut check = Sql::new("SELECT COUNT(*) FROM usage_record");
            let is_cursor = format!("id = {}", check.arg(Arg::Int(cursor)));
            check.filter(filter, &[is_cursor]);
            if self.count(&check).await? == 0 {
                return Ok(RecordPage {
                    items: Vec::new(),
                    total,
                });
            }
            // The cursor's own timestamp, compared in the engine's own representation. The
            // `<=` bound lets an index on created_at range-scan; the OR breaks ties by id.
            let id = sql.arg(Arg::Int(cursor));
            let at = format!("(SELECT c.created_at FROM usage_record c WHERE c.id = {id})");
            extra.push(format!("created_at <= {at}"));
            extra.push(format!("(created_at < {at} OR id < {id})"));
        }
        sql.filter(filter, &extra)
            .push(" ORDER BY created_at DESC, id DESC")
            .page(limit, offset);
        let items = self.fetch_rows(&sql).await?;
        Ok(RecordPage { items, total })
    }

    /// The totals of every record `filter` selects.
    pub async fn usage_totals(&self, filter: &UsageFilter) -> StoreResult<UsageTotals> {
        let mut sql = Sql::new(&format!("SELECT {} FROM usage_record", aggregates()));
        sql.filter(filter, &[]);
        self.fetch_one_row(&sql).await
    }

    /// The records `filter` selects, summed by day and model: newest day first, then by model
    /// name (records with no model last).
    pub async fn usage_by_day_and_model(
        &self,
        filter: &UsageFilter,
        limit: i64,
        offset: i64,
    ) -> StoreResult<SummaryPage<DayModelUsage>> {
        let mut sql = Sql::new(&format!(
            "SELECT {} AS date, model, {}, {} FROM (SELECT {} AS day, model, {SUMMED_COLUMNS} \
             FROM usage_record",
            self.day_text("day"),
            aggregates(),
            window_totals(),
            self.day_key(),
        ));
        sql.filter(filter, &[])
            .push(") r GROUP BY day, model ORDER BY day DESC, (model IS NULL), model")
            .page(limit, offset);
        let items = self.fetch_rows(&sql).await?;
        self.summary_page(filter, items, offset).await
    }

    /// The records `filter` selects, summed by user, day and model (for admins): newest day
    /// first, then by user id (the master key's requests, with no user, last), then model.
    pub async fn usage_by_user_day_and_model(
        &self,
        filter: &UsageFilter,
        limit: i64,
        offset: i64,
    ) -> StoreResult<SummaryPage<UserDayModelUsage>> {
        let mut sql = Sql::new(&format!(
            "SELECT g.*, u.\"email\" AS user_email FROM (SELECT user_id, {} AS date, model, {}, \
             {} FROM (SELECT user_id, {} AS day, model, {SUMMED_COLUMNS} FROM usage_record",
            self.day_text("day"),
            aggregates(),
            window_totals(),
            self.day_key(),
        ));
        sql.filter(filter, &[]).push(
            ") r GROUP BY user_id, day, model) g LEFT JOIN \"user\" u ON u.\"id\" = g.user_id \
             ORDER BY g.date DESC, (g.user_id IS NULL), g.user_id, (g.model IS NULL), g.model",
        );
        sql.page(limit, offset);
        let items = self.fetch_rows(&sql).await?;
        self.summary_page(filter, items, offset).await
    }

    /// A grouped page with its group count and totals: read off the rows' window columns, or,
    /// for a page past the end, counted again.
    async fn summary_page<T: Windowed>(
        &self,
        filter: &UsageFilter,
        items: Vec<T>,
        offset: i64,
    ) -> StoreResult<SummaryPage<T>> {
        if let Some(first) = items.first() {
            let window = first.window();
            return Ok(SummaryPage {
                groups: window.all_groups,
                totals: window.totals(),
                items,
            });
        }
        if offset == 0 {
            // Nothing at all matches.
            return Ok(SummaryPage {
                items,
                groups: 0,
                totals: UsageTotals::default(),
            });
        }
        let user = if T::BY_USER { "user_id, " } else { "" };
        let mut count = Sql::new(&format!(
            "SELECT COUNT(*) FROM (SELECT DISTINCT {user}{} AS day, model FROM usage_record",
            self.day_key()
        ));
        count.filter(filter, &[]).push(") g");
        let groups = self.count(&count).await?;
        let totals = self.usage_totals(filter).await?;
        Ok(SummaryPage {
            items,
            groups,
            totals,
        })
    }

    /// The owner of a message, its thread and whether that was deleted, if the message exists.
    pub async fn message_owner(&self, message_id: &str) -> StoreResult<Option<MessageOwner>> {
        let mut sql = Sql::new(
            "SELECT m.user_id, m.thread_id, t.deleted_at IS NOT NULL AS deleted \
             FROM message m LEFT JOIN thread t ON t.id = m.thread_id WHERE m.id = ",
        );
        let id = sql.arg(Arg::Text(message_id.to_string()));
        sql.push(&id);
        self.fetch_optional_row(&sql).await
    }

    /// The owner of a thread, if it exists.
    pub async fn thread_owner(&self, thread_id: &str) -> StoreResult<Option<ThreadOwner>> {
        let mut sql =
            Sql::new("SELECT user_id, deleted_at IS NOT NULL AS deleted FROM thread WHERE id = ");
        let id = sql.arg(Arg::Text(thread_id.to_string()));
        sql.push(&id);
        self.fetch_optional_row(&sql).await
    }
    /// The records of one message, oldest first (at most `limit`), and their totals.
    pub async fn message_usage(
        &self,
        message_id: &str,
        limit: i64,
    ) -> StoreResult<(Vec<UsageRow>, UsageTotals)> {
        let mut sql = Sql::new(&format!(
            "SELECT {ROW_COLUMNS} FROM usage_record WHERE message_id = "
        ));
        let id = sql.arg(Arg::Text(message_id.to_string()));
        sql.push(&id)
            .push(" ORDER BY created_at, id")
            .page(limit, 0);
        let rows = self.fetch_rows(&sql).await?;
        let mut sql = Sql::new(&format!(
            "SELECT {} FROM usage_record WHERE message_id = ",
            aggregates()
        ));
        let id = sql.arg(Arg::Text(message_id.to_string()));
        sql.push(&id);
        let totals = self.fetch_one_row(&sql).await?;
        Ok((rows, totals))
    }

    /// The usage of a thread: its records are those naming the thread or one of its messages.
    /// A thread's records, oldest first (at most `limit`).
    pub async fn thread_records(&self, thread_id: &str, limit: i64) -> StoreResult<Vec<UsageRow>> {
        let mut sql = Sql::new(&format!("SELECT {ROW_COLUMNS} FROM usage_record"));
        let id = sql.arg(Arg::Text(thread_id.to_string()));
        sql.push(&format!(
            " WHERE (thread_id = {id} OR message_id IN \
             (SELECT m.id FROM message m WHERE m.thread_id = {id})) ORDER BY created_at, id"
        ))
        .page(limit, 0);
        self.fetch_rows(&sql).await
    }

    pub async fn thread_usage(&self, thread_id: &str) -> StoreResult<ThreadUsage> {
        let scope = |sql: &mut Sql| {
            let id = sql.arg(Arg::Text(thread_id.to_string()));
            sql.push(&format!(
                " WHERE (thread_id = {id} OR message_id IN \
                 (SELECT m.id FROM message m WHERE m.thread_id = {id}))"
            ));
        };
        let mut sql = Sql::new(&format!("SELECT model, {} FROM usage_record", aggregates()));
        scope(&mut sql);
        sql.push(" GROUP BY model ORDER BY (model IS NULL), model");
        let by_model = self.fetch_rows(&sql).await?;
        let mut sql = Sql::new(&format!(
            "SELECT {}, COUNT(DISTINCT message_id) AS messages FROM usage_record",
            aggregates()
        ));
        scope(&mut sql);
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            totals: UsageTotals,
            messages: i64,
        }
        let row: Row = self.fetch_one_row(&sql).await?;
        Ok(ThreadUsage {
            totals: row.totals,
            messages: row.messages,
            by_model,
        })
    }
}
