//! The in-process backend (`backend = "memory"`): one replica's limits in a map under one mutex.
//!
//! Why not `governor` (or pingora-limits): governor's GCRA cells can only take a fixed cost
//! before the request; they cannot be debited after it by what it actually used (settling a TPM
//! reservation), cannot give back, and their quota is fixed per limiter rather than varying per
//! subject (tiers and overrides). Concurrency slots and budget reservations are not rate limits
//! at all. pingora-limits only estimates rates. A map of small structs under a mutex does all of
//! it with the same arithmetic as the Redis scripts ([`super::bucket`]), and one lock per request
//! costs well under a microsecond at gateway request rates. Idle entries are pruned every minute.
//!
//! Budget spend survives a restart: the first time a scope's budget is checked in a day, the
//! spend already recorded for it in `usage_record` (by earlier runs) is read once and counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

// tokio's clock, so tests can pause and advance it instead of waiting out a minute.
use tokio::time::Instant;

use tokio::sync::OnceCell;

use super::bucket::{self, Bucket};
use super::headers::BucketStatus;
use super::plan::{
    keep_longest, to_micros, Actual, Ask, BudgetStatus, Decision, LimitKind, Micros, Period,
    Periods, Refusal, ScopeAsk, ScopeKind, ScopeStatus,
};
use crate::store::Store;

type ScopeKey = (ScopeKind, Arc<str>);
/// A scope on one day: its budgets were read from the usage records once.
type SeededKey = (ScopeKind, Arc<str>, u32);

pub struct MemoryBackend {
    epoch: Instant,
    state: Mutex<HashMap<ScopeKey, Entry>>,
    /// Which scopes' budgets have been read from the usage records today.
    seeded: Mutex<HashMap<SeededKey, Arc<OnceCell<()>>>>,
    store: Option<Store>,
}

#[derive(Debug, Default)]
struct Entry {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    in_flight: u64,
    daily: Budget,
    monthly: Budget,
    /// When all its buckets will be full again (ms): after that an idle entry can go.
    quiet_at: u64,
}

/// One budget's counters in one period.
#[derive(Debug, Default, Clone, Copy)]
struct Budget {
    period: u32,
    spent: Micros,
    reserved: Micros,
}

impl Budget {
    /// The counters of `period`, starting afresh when the period has changed.
    fn at(&mut self, period: u32) -> &mut Budget {
        if self.period != period {
            *self = Budget {
                period,
                spent: 0,
                reserved: 0,
            };
        }
        self
    }

    fn view(&self, period: u32) -> BudgetStatus {
        if self.period == period {
            BudgetStatus {
                spent: self.spent,
                reserved: self.reserved,
            }
        } else {
            BudgetStatus::default()
        }
    }

    fn is_idle(&self, period: u32) -> bool {
        self.period != period || (self.spent == 0 && self.reserved == 0)
    }
}

/// Whether a budget takes a request costing `cost` at most.
pub fn budget_admits(status: BudgetStatus, cost: Micros, budget: Micros) -> bool {
    status
        .spent
        .saturating_add(status.reserved)
        .saturating_add(cost)
        <= budget
}

impl MemoryBackend {
    /// `store` is where earlier runs' spend is read from (None: budgets start at zero).
    pub fn new(store: Option<Store>) -> Arc<MemoryBackend> {
        let backend = Arc::new(MemoryBackend {
            epoch: Instant::now(),
            state: Mutex::new(HashMap::new()),
            seeded: Mutex::new(HashMap::new()),
            store,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(prune_forever(Arc::downgrade(&backend)));
        }
        backend
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ScopeKey, Entry>> {
        // A panic under the lock leaves plain counters behind, still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes everything `ask` needs of every scope, or nothing.
    pub fn admit(&self, ask: &Ask) -> Decision {
        let now = self.now_ms();
        let mut map = self.lock();
        let mut refusal = None;
        for (index, scope) in ask.scopes.iter().enumerate() {
            let entry = map.get(&(scope.kind, scope.id.clone()));
            if let Some((limit, wait)) = refuses(entry, scope, ask, now) {
                keep_longest(
                    &mut refusal,
                    Refusal {
                        scope: index,
                        limit,
                        wait,
                    },
                );
            }
        }
        if let Some(refusal) = refusal {
            let statuses = ask
                .scopes
                .iter()
                .map(|s| status(map.get(&(s.kind, s.id.clone())), s, &ask.periods, now))
                .collect();
            return Decision::Refused(refusal, statuses);
        }
        let mut statuses = Vec::with_capacity(ask.scopes.len());
        for scope in &ask.scopes {
            let entry = map.entry((scope.kind, scope.id.clone())).or_default();
            if let Some(rpm) = scope.rpm {
                take(&mut entry.requests, rpm, now, 1.0);
            }
            if let Some(tpm) = scope.tpm {
                take(&mut entry.tokens, tpm, now, scope.tokens as f64);
            }
            if scope.max_concurrent.is_some() {
                entry.in_flight += 1;
            }
            if scope.daily_budget.is_some() {
                entry.daily.at(ask.periods.day.id).reserved += ask.cost;
            }
            if scope.monthly_budget.is_some() {
                entry.monthly.at(ask.periods.month.id).reserved += ask.cost;
            }
            entry.quiet_at = quiet_at(entry, scope, now);
            statuses.push(status(Some(entry), scope, &ask.periods, now));
        }
        Decision::Admitted(statuses)
    }

    /// Settles an admitted ask: the token estimate is corrected by what was used, the
    /// concurrency slot freed, the budget reservation replaced by the actual cost.
    pub fn settle(&self, ask: &Ask, actual: &Actual) {
        let now = self.now_ms();
        let mut map = self.lock();
        for scope in &ask.scopes {
            let entry = map.entry((scope.kind, scope.id.clone())).or_default();
            if let Some(tpm) = scope.tpm {
                let debit = actual.tokens as f64 - scope.tokens as f64;
                take(&mut entry.tokens, tpm, now, debit);
            }
            if scope.max_concurrent.is_some() {
                entry.in_flight = entry.in_flight.saturating_sub(1);
            }
            if scope.daily_budget.is_some() {
                settle_budget(
                    &mut entry.daily,
                    &ask.periods.day,
                    &actual.periods.day,
                    ask.cost,
                    actual.cost,
                );
            }
            if scope.monthly_budget.is_some() {
                settle_budget(
                    &mut entry.monthly,
                    &ask.periods.month,
                    &actual.periods.month,
                    ask.cost,
                    actual.cost,
                );
            }
            entry.quiet_at = quiet_at(entry, scope, now);
        }
    }

    /// Each scope's state, changing nothing (`GET /api/v1/limits`).
    pub fn peek(&self, ask: &Ask) -> Vec<ScopeStatus> {
        let now = self.now_ms();
        let map = self.lock();
        ask.scopes
            .iter()
            .map(|s| status(map.get(&(s.kind, s.id.clone())), s, &ask.periods, now))
            .collect()
    }

    /// Once per scope and day, before its budget is first checked: counts what earlier runs of
    /// the gateway already spent (the usage records), so a restart does not renew a budget.
    pub async fn seed_budgets(&self, ask: &Ask) {
        let Some(store) = &self.store else { return };
        for scope in ask.scopes.iter().filter(|s| s.has_budget()) {
            let cell = {
                let mut seeded = self.seeded.lock().unwrap_or_else(|e| e.into_inner());
                seeded
                    .entry((scope.kind, scope.id.clone(), ask.periods.day.id))
                    .or_default()
                    .clone()
            };
            // A failed read leaves the cell empty, so the next request tries again.
            let seeded = cell
                .get_or_try_init(|| async {
                    let (day, month) = store
                        .spend_since(
                            scope.kind,
                            &scope.id,
                            ask.periods.day.start,
                            ask.periods.month.start,
                        )
                        .await?;
                    self.seed(scope, &ask.periods, to_micros(day), to_micros(month));
                    Ok::<(), crate::store::StoreError>(())
                })
                .await;
            if let Err(e) = seeded {
                // Retried by the next request, so logged at most every 10 s while it fails.
                super::log_throttled(&super::STORE_ERRORS, || {
                    tracing::warn!(
                        scope = scope.kind.as_str(), error = %e,
                        "could not read earlier spend for a budget; counting from zero for now"
                    )
                });
            }
        }
    }

    /// Counts `day` / `month` spent unless this run already counted more (its own spend is in
    /// the records too once written).
    fn seed(&self, scope: &ScopeAsk, periods: &Periods, day: Micros, month: Micros) {
        let mut map = self.lock();
        let entry = map.entry((scope.kind, scope.id.clone())).or_default();
        let daily = entry.daily.at(periods.day.id);
        daily.spent = daily.spent.max(day);
        let monthly = entry.monthly.at(periods.month.id);
        monthly.spent = monthly.spent.max(month);
    }

    /// Drops entries that hold nothing: buckets full, no request in flight, no spend this period.
    pub fn prune(&self) {
        let now = self.now_ms();
        let periods = Periods::at(chrono::Utc::now());
        {
            let mut map = self.lock();
            map.retain(|_, e| {
                e.in_flight > 0
                    || e.quiet_at > now
                    || !e.daily.is_idle(periods.day.id)
                    || !e.monthly.is_idle(periods.month.id)
            });
        }
        let mut seeded = self.seeded.lock().unwrap_or_else(|e| e.into_inner());
        seeded.retain(|(_, _, day), _| *day == periods.day.id);
    }

    /// Scopes held (the pruning test counts them).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

async fn prune_forever(backend: Weak<MemoryBackend>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(backend) = backend.upgrade() else {
            return;
        };
        backend.prune();
    }
}

fn take(bucket: &mut Option<Bucket>, capacity: u64, now: u64, amount: f64) {
    bucket
        .get_or_insert_with(|| Bucket::full(capacity, now))
        .take(capacity, now, amount);
}

fn level(bucket: Option<&Bucket>, capacity: u64, now: u64) -> f64 {
    bucket.map_or(capacity as f64, |b| b.level_at(capacity, now))
}

/// The limit of `scope` that refuses `ask` and how long until it would admit, if any.
fn refuses(
    entry: Option<&Entry>,
    scope: &ScopeAsk,
    ask: &Ask,
    now: u64,
) -> Option<(LimitKind, Duration)> {
    let mut worst: Option<(LimitKind, Duration)> = None;
    let mut refuse = |limit, wait| {
        if worst.is_none_or(|(_, w)| wait > w) {
            worst = Some((limit, wait));
        }
    };
    if let Some(rpm) = scope.rpm {
        let level = level(entry.and_then(|e| e.requests.as_ref()), rpm, now);
        if level < 1.0 {
            refuse(
                LimitKind::Requests,
                Duration::from_millis(bucket::wait_ms(level, 1.0, rpm)),
            );
        }
    }
    if let Some(tpm) = scope.tpm {
        let level = level(entry.and_then(|e| e.tokens.as_ref()), tpm, now);
        let need = scope.tokens as f64;
        if level < need {
            refuse(
                LimitKind::Tokens,
                Duration::from_millis(bucket::wait_ms(level, need, tpm)),
            );
        }
    }
    if let Some(max) = scope.max_concurrent {
        if entry.map_or(0, |e| e.in_flight) >= max {
            // Unknowable: a slot frees when a running request ends.
            refuse(LimitKind::Concurrency, Duration::from_secs(1));
        }
    }
    let budgets = [
        (scope.daily_budget, LimitKind::DailyBudget, &ask.periods.day),
        (
            scope.monthly_budget,
            LimitKind::MonthlyBudget,
            &ask.periods.month,
        ),
    ];
    for (budget, limit, period) in budgets {
        let Some(budget) = budget else { continue };
        let state = entry.map_or_else(BudgetStatus::default, |e| {
            if limit == LimitKind::DailyBudget {
                e.daily.view(period.id)
            } else {
                e.monthly.view(period.id)
            }
        });
        if !budget_admits(state, ask.cost, budget) {
            refuse(limit, period.remaining(ask.now));
        }
    }
    worst
}

fn settle_budget(
    budget: &mut Budget,
    reserved_in: &Period,
    spent_in: &Period,
    reserved: Micros,
    spent: Micros,
) {
    // A reservation from a period that has since ended went with it.
    if budget.period == reserved_in.id {
        budget.reserved = (budget.reserved - reserved).max(0);
    }
    budget.at(spent_in.id).spent += spent;
}

fn quiet_at(entry: &Entry, scope: &ScopeAsk, now: u64) -> u64 {
    let reset = |b: Option<&Bucket>, cap: Option<u64>| match (b, cap) {
        (Some(b), Some(cap)) => bucket::reset_ms(b.level_at(cap, now), cap),
        _ => 0,
    };
    let longest =
        reset(entry.requests.as_ref(), scope.rpm).max(reset(entry.tokens.as_ref(), scope.tpm));
    now + longest
}

fn status(entry: Option<&Entry>, scope: &ScopeAsk, periods: &Periods, now: u64) -> ScopeStatus {
    let bucket_status = |b: Option<&Bucket>, cap: u64| {
        let level = level(b, cap, now);
        BucketStatus {
            limit: cap,
            remaining: level.floor() as i64,
            reset_ms: bucket::reset_ms(level, cap),
        }
    };
    ScopeStatus {
        requests: scope
            .rpm
            .map(|rpm| bucket_status(entry.and_then(|e| e.requests.as_ref()), rpm)),
        tokens: scope
            .tpm
            .map(|tpm| bucket_status(entry.and_then(|e| e.tokens.as_ref()), tpm)),
        in_flight: scope
            .max_concurrent
            .map(|_| entry.map_or(0, |e| e.in_flight)),
        daily: scope
            .daily_budget
            .map(|_| entry.map_or_else(BudgetStatus::default, |e| e.daily.view(periods.day.id))),
        monthly: scope.monthly_budget.map(|_| {
            entry.map_or_else(BudgetStatus::default, |e| e.monthly.view(periods.month.id))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitSet;
    use crate::limits::plan::ScopeAsk;

    fn ask(sets: &[(ScopeKind, &str, LimitSet)], tokens: u64, cost: Micros) -> Ask {
        let now = chrono::Utc::now();
        Ask {
            id: Arc::from("r"),
            scopes: sets
                .iter()
                .map(|(k, id, set)| ScopeAsk::new(*k, Arc::from(*id), set, tokens))
                .collect(),
            cost,
            periods: Periods::at(now),
            now,
        }
    }

    fn actual(tokens: u64, cost: Micros) -> Actual {
        Actual {
            tokens,
            cost,
            periods: Periods::at(chrono::Utc::now()),
        }
    }

    fn rpm(n: u64) -> LimitSet {
        LimitSet {
            requests_per_minute: Some(n),
            ..LimitSet::default()
        }
    }

    #[tokio::test]
    async fn all_scopes_or_nothing() {
        let b = MemoryBackend::new(None);
        let both = ask(
            &[
                (ScopeKind::Key, "k", rpm(5)),
                (ScopeKind::User, "u", rpm(1)),
            ],
            0,
            0,
        );
        assert!(matches!(b.admit(&both), Decision::Admitted(_)));
        // The user's single request is used: the key's bucket must not be charged either.
        match b.admit(&both) {
            Decision::Refused(r, statuses) => {
                assert_eq!(r.scope, 1);
                assert_eq!(r.limit, LimitKind::Requests);
                assert!(r.wait > Duration::from_secs(59));
                assert_eq!(statuses[0].requests.unwrap().remaining, 4);
            }
            other => panic!("{other:?}"),
        }
        let key_only = ask(&[(ScopeKind::Key, "k", rpm(5))], 0, 0);
        match b.admit(&key_only) {
            Decision::Admitted(s) => assert_eq!(s[0].requests.unwrap().remaining, 3),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_request_bucket_refills_over_the_minute() {
        let b = MemoryBackend::new(None);
        let a = ask(&[(ScopeKind::Key, "k", rpm(2))], 0, 0);
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
        let wait = match b.admit(&a) {
            Decision::Refused(r, _) => r.wait,
            other => panic!("{other:?}"),
        };
        // Two a minute: one request comes back every 30 seconds.
        assert!(
            wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        tokio::time::advance(wait - Duration::from_millis(5)).await;
        assert!(matches!(b.admit(&a), Decision::Refused(..)), "not yet");
        tokio::time::advance(Duration::from_millis(5)).await;
        assert!(matches!(b.admit(&a), Decision::Admitted(_)), "refilled");
        assert!(matches!(b.admit(&a), Decision::Refused(..)), "only one");
    }

    #[tokio::test]
    async fn concurrency_slots_are_held_until_settled() {
        let b = MemoryBackend::new(None);
        let set = LimitSet {
            max_concurrent: Some(2),
            ..LimitSet::default()
        };
        let a = ask(&[(ScopeKind::User, "u", set)], 0, 0);
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
        assert!(matches!(b.admit(&a), Decision::Refused(..)));
        b.settle(&a, &actual(0, 0));
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
    }

    #[tokio::test]
    async fn budgets_reserve_the_worst_case_and_settle_the_actual_cost() {
        let b = MemoryBackend::new(None);
        let set = LimitSet {
            daily_budget_usd: Some(0.001),
            ..LimitSet::default()
        };
        // 1000 micro-USD budget, 400 worst case each: two fit, the third does not.
        let a = ask(&[(ScopeKind::User, "u", set)], 0, 400);
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
        match b.admit(&a) {
            Decision::Refused(r, s) => {
                assert_eq!(r.limit, LimitKind::DailyBudget);
                assert_eq!(
                    s[0].daily,
                    Some(BudgetStatus {
                        spent: 0,
                        reserved: 800
                    })
                );
            }
            other => panic!("{other:?}"),
        }
        // Each actually cost 100: 200 spent, room for another.
        b.settle(&a, &actual(0, 100));
        b.settle(&a, &actual(0, 100));
        match b.admit(&a) {
            Decision::Admitted(s) => assert_eq!(
                s[0].daily,
                Some(BudgetStatus {
                    spent: 200,
                    reserved: 400
                })
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_spanning_midnight_is_charged_to_the_period_it_ends_in() {
        use chrono::TimeZone;
        let b = MemoryBackend::new(None);
        let set = LimitSet {
            daily_budget_usd: Some(0.001),
            monthly_budget_usd: Some(0.01),
            ..LimitSet::default()
        };
        // Admitted a second before the last midnight of March, settled two seconds later.
        let before = chrono::Utc
            .with_ymd_and_hms(2026, 3, 31, 23, 59, 59)
            .unwrap();
        let after = before + chrono::Duration::seconds(2);
        let mut a = ask(&[(ScopeKind::User, "u", set)], 0, 600);
        a.now = before;
        a.periods = Periods::at(before);
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
        b.settle(
            &a,
            &Actual {
                tokens: 0,
                cost: 250,
                periods: Periods::at(after),
            },
        );
        // April 1st, day and month: the request's actual cost, nothing held over from March.
        let mut next = a.clone();
        next.now = after;
        next.periods = Periods::at(after);
        let fresh = BudgetStatus {
            spent: 250,
            reserved: 0,
        };
        let status = &b.peek(&next)[0];
        assert_eq!((status.daily, status.monthly), (Some(fresh), Some(fresh)));
        // So 750 more still fits the new day's 1000.
        next.cost = 750;
        assert!(matches!(b.admit(&next), Decision::Admitted(_)));
        next.cost = 1;
        assert!(matches!(b.admit(&next), Decision::Refused(..)));
    }

    #[tokio::test]
    async fn tokens_settle_by_actual_use() {
        let b = MemoryBackend::new(None);
        let set = LimitSet {
            tokens_per_minute: Some(1_000),
            ..LimitSet::default()
        };
        let a = ask(&[(ScopeKind::Key, "k", set)], 100, 0);
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
        b.settle(&a, &actual(1_500, 0));
        // 1000 - 1500 = -500 (plus a few ms of refill): refused for about 36 s.
        match b.admit(&a) {
            Decision::Refused(r, s) => {
                assert_eq!(r.limit, LimitKind::Tokens);
                assert!(r.wait > Duration::from_secs(35), "{r:?}");
                assert!(s[0].tokens.unwrap().remaining < -490);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn idle_entries_are_pruned_busy_ones_kept() {
        let b = MemoryBackend::new(None);
        let busy = LimitSet {
            max_concurrent: Some(5),
            ..LimitSet::default()
        };
        let a = ask(&[(ScopeKind::User, "busy", busy)], 0, 0);
        let r = ask(&[(ScopeKind::User, "recent", rpm(10))], 0, 0);
        assert!(matches!(b.admit(&a), Decision::Admitted(_)));
        assert!(matches!(b.admit(&r), Decision::Admitted(_)));
        b.prune();
        assert_eq!(b.len(), 2);
        b.settle(&a, &actual(0, 0));
        b.prune();
        assert_eq!(
            b.len(),
            1,
            "the settled entry went, the unrefilled one stayed"
        );
    }
}
