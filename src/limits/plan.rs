//! What one request asks of the limits (an [`Ask`]: per scope, what it takes of which limit), and
//! what a backend answers (a [`Decision`]). Both backends take the same asks and give the same
//! answers; only where the state lives differs.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use super::headers::BucketStatus;
use crate::config::LimitSet;

pub use crate::context::ScopeKind;

/// Which kind of limit refused (the `limit` label of the rejection counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    Concurrency,
    DailyBudget,
    MonthlyBudget,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Concurrency => "concurrency",
            LimitKind::DailyBudget | LimitKind::MonthlyBudget => "budget",
        }
    }
}

/// USD as integer millionths: budgets are counted exactly, in both backends.
pub type Micros = i64;

pub fn to_micros(usd: f64) -> Micros {
    if !usd.is_finite() || usd <= 0.0 {
        return 0;
    }
    (usd * 1_000_000.0).ceil().min(i64::MAX as f64) as Micros
}

pub fn to_usd(micros: Micros) -> f64 {
    micros as f64 / 1_000_000.0
}

/// What a request takes of one scope's limits. Fields are None where the scope has no limit.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeAsk {
    pub kind: ScopeKind,
    pub id: Arc<str>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// The tokens reserved of the TPM bucket: the estimate, capped at `tpm`.
    pub tokens: u64,
    pub max_concurrent: Option<u64>,
    pub daily_budget: Option<Micros>,
    pub monthly_budget: Option<Micros>,
}

impl ScopeAsk {
    pub fn new(kind: ScopeKind, id: Arc<str>, set: &LimitSet, token_estimate: u64) -> ScopeAsk {
        ScopeAsk {
            kind,
            id,
            rpm: set.requests_per_minute,
            tpm: set.tokens_per_minute,
            tokens: set
                .tokens_per_minute
                .map_or(0, |tpm| super::bucket::reservation(token_estimate, tpm)),
            max_concurrent: set.max_concurrent,
            daily_budget: set.daily_budget_usd.map(budget_micros),
            monthly_budget: set.monthly_budget_usd.map(budget_micros),
        }
    }

    pub fn has_budget(&self) -> bool {
        self.daily_budget.is_some() || self.monthly_budget.is_some()
    }
}

/// A budget limit in micro-USD, rounded down (a budget is never exceeded by rounding).
fn budget_micros(usd: f64) -> Micros {
    if !usd.is_finite() || usd <= 0.0 {
        return 0;
    }
    (usd * 1_000_000.0).floor().min(i64::MAX as f64) as Micros
}

/// A UTC day or month: budgets are spent per period and renew when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Days (or months) since 1970: what the in-process backend compares.
    pub id: u32,
    pub monthly: bool,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// `d20250131` / `m202501`: the suffix of Redis key names. Made only when asked for (the
    /// in-process backend never does): formatting dates costs more than the rest of a check.
    pub fn label(&self) -> String {
        let date = self.start.date_naive();
        if self.monthly {
            format!("m{:04}{:02}", date.year(), date.month())
        } else {
            format!("d{:04}{:02}{:02}", date.year(), date.month(), date.day())
        }
    }

    /// How long until the period ends (when its budget renews), from `now`.
    pub fn remaining(&self, now: DateTime<Utc>) -> Duration {
        (self.end - now).to_std().unwrap_or(Duration::ZERO)
    }
}

/// The day and the month a request is charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Periods {
    pub day: Period,
    pub month: Period,
}

impl Periods {
    pub fn at(now: DateTime<Utc>) -> Periods {
        let date = now.date_naive();
        let day_start = Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN));
        let month_first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap_or(date);
        let next_month = if date.month() == 12 {
            NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
        }
        .unwrap_or(date);
        let at_midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN));
        let days = (day_start.timestamp() / 86_400).max(0) as u32;
        let months = ((date.year() - 1970).max(0) as u32) * 12 + date.month0();
        Periods {
            day: Period {
                id: days,
                monthly: false,
                start: day_start,
                end: day_start + chrono::Duration::days(1),
            },
            month: Period {
                id: months,
                monthly: true,
                start: at_midnight(month_first),
                end: at_midnight(next_month),
            },
        }
    }
}

/// Everything one request asks of the limits, built once in `on_routed` and kept (in the
/// request's reservation) until it is settled.
#[derive(Debug, Clone)]
pub struct Ask {
    /// Unique per request (the client's x-request-id is not: it may be reused).
    pub id: Arc<str>,
    pub scopes: Vec<ScopeAsk>,
    /// The request's worst-case cost, reserved of every budget it is under.
    pub cost: Micros,
    pub periods: Periods,
    /// The wall clock when the ask was made (budget renewals are reckoned from it).
    pub now: DateTime<Utc>,
}

/// One budget's state: spent by finished requests and reserved by running ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetStatus {
    pub spent: Micros,
    pub reserved: Micros,
}

/// One scope's state after (or, when refused, instead of) a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeStatus {
    pub requests: Option<BucketStatus>,
    pub tokens: Option<BucketStatus>,
    pub in_flight: Option<u64>,
    pub daily: Option<BudgetStatus>,
    pub monthly: Option<BudgetStatus>,
}

/// Which scope refused which limit, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Index into `Ask::scopes`.
    pub scope: usize,
    pub limit: LimitKind,
    pub wait: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Everything was taken; each scope's state after.
    Admitted(Vec<ScopeStatus>),
    /// Nothing was taken; each scope's state as it is.
    Refused(Refusal, Vec<ScopeStatus>),
}

/// What a finished request actually used, to settle its reservation with.
#[derive(Debug, Clone)]
pub struct Actual {
    pub tokens: u64,
    pub cost: Micros,
    /// The periods when the request ended (its spend is charged there).
    pub periods: Periods,
}

/// The most constrained request and token buckets over all scopes, for the headers.
pub fn tightest(statuses: &[ScopeStatus]) -> (Option<BucketStatus>, Option<BucketStatus>) {
    let fold = |pick: fn(&ScopeStatus) -> Option<BucketStatus>| {
        statuses
            .iter()
            .filter_map(pick)
            .reduce(BucketStatus::tighter)
    };
    (fold(|s| s.requests), fold(|s| s.tokens))
}

/// The longest of the refusing checks' waits wins: only then do they all admit.
pub fn keep_longest(current: &mut Option<Refusal>, candidate: Refusal) {
    if current.as_ref().is_none_or(|r| candidate.wait > r.wait) {
        *current = Some(candidate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_days_and_months() {
        let at = Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 30).unwrap();
        let p = Periods::at(at);
        assert_eq!(p.day.label(), "d20241231");
        assert_eq!(p.month.label(), "m202412");
        assert_eq!(
            p.day.end,
            Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            p.month.start,
            Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            p.month.end,
            Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(p.day.remaining(at), Duration::from_secs(30));
        let next = Periods::at(p.day.end);
        assert_eq!(next.day.id, p.day.id + 1);
        assert_eq!(next.month.id, p.month.id + 1);
        assert_eq!(next.month.label(), "m202501");
    }

    #[test]
    fn micros_round_costs_up_and_budgets_down() {
        assert_eq!(to_micros(0.0000011), 2);
        assert_eq!(to_micros(-1.0), 0);
        assert_eq!(budget_micros(0.0100009), 10_000);
        assert_eq!(to_usd(1_500_000), 1.5);
    }

    #[test]
    fn token_reservations_are_capped_per_scope() {
        let set = LimitSet {
            tokens_per_minute: Some(100),
            ..LimitSet::default()
        };
        let ask = ScopeAsk::new(ScopeKind::User, Arc::from("u"), &set, 500);
        assert_eq!(ask.tokens, 100);
        let none = ScopeAsk::new(ScopeKind::User, Arc::from("u"), &LimitSet::default(), 500);
        assert_eq!(none.tokens, 0);
    }
}
