//! The shared backend (`backend = "redis"`): several replicas enforce one set of limits. Each
//! admission is one `EVALSHA` of `admit.lua` checking every scope's limits and taking them all or
//! none, atomically; each settlement one of `settle.lua`. Time comes from Redis (`TIME` in the
//! script), so replicas agree on bucket refills whatever their clocks.
//!
//! Keys (all under `redis.key_prefix`, the subject's id last so no two subjects share a key):
//! - `P:lim:rpm:{k|u|m}:ID`, `P:lim:tpm:...`: token buckets, hashes `{l = level, a = ms}`,
//!   expiring once full again;
//! - `P:lim:conc:...:ID`: a sorted set of running request ids scored by lease expiry
//!   (`limits.concurrency_lease_secs`), so a replica that dies frees its slots when they lapse;
//! - `P:lim:bud:dYYYYMMDD:...:ID` / `mYYYYMM`: a budget's `spent` and `reserved` micro-USD and
//!   each running request's reservation, with `P:lim:budl:...` the reservations' leases (a dead
//!   replica's reservations are given back when they lapse), expiring a day after the period;
//! - `P:lim:cancel:ID`: set by `release.lua` when an admit's reply timed out, so the admit takes
//!   nothing if it runs late (and what it took, if it ran, is given back at once).
//!
//! Redis Cluster: a script's keys must share a slot; set `key_prefix` to a hash tag such as
//! `"{gw}"` to put all limit keys on one node.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::headers::BucketStatus;
use super::plan::{
    Actual, Ask, BudgetStatus, Decision, LimitKind, Period, Refusal, ScopeAsk, ScopeStatus,
};
use crate::config::RedisConfig;

const ADMIT: &str = include_str!("admit.lua");
const SETTLE: &str = include_str!("settle.lua");
const RELEASE: &str = include_str!("release.lua");

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no answer from Redis within {0:?}")]
    Timeout(Duration),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from the limits script: {0}")]
    Reply(String),
}

impl BackendError {
    /// The command was sent but no answer came (a timeout, ours or the connection's, or the
    /// connection dropped): Redis may have run it, or may still run it.
    pub fn may_have_run(&self) -> bool {
        match self {
            BackendError::Timeout(_) => true,
            BackendError::Redis(e) => e.is_timeout() || e.is_connection_dropped(),
            BackendError::Reply(_) => false,
        }
    }
}

pub struct RedisBackend {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    lease_ms: u64,
    admit: Script,
    settle: Script,
    /// Settlements and releases sent on their own tasks: shutdown waits for them.
    pub(super) in_flight: tokio_util::task::TaskTracker,
}

/// One check of the script, in the order they are sent: whose, and which limit.
struct Check {
    scope: usize,
    limit: LimitKind,
}

impl RedisBackend {
    /// Connects lazily: the gateway starts even when Redis is down (and then fails open or
    /// closed per request, as configured).
    pub fn new(config: &RedisConfig, lease: Duration) -> anyhow::Result<Arc<RedisBackend>> {
        let client = redis::Client::open(config.url.expose())
            .map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(config.timeout))
            // Fail fast: each request bounds its own wait; the next one reconnects.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Arc::new(RedisBackend {
            conn,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
            in_flight: tokio_util::task::TaskTracker::new(),
        }))
    }

    fn key(&self, what: &str, scope: &ScopeAsk) -> String {
        format!(
            "{}:lim:{what}:{}:{}",
            self.prefix,
            scope.kind.tag(),
            scope.id
        )
    }

    fn budget_key(&self, period: &Period, scope: &ScopeAsk) -> String {
        self.key(&format!("bud:{}", period.label()), scope)
    }

    fn leases_key(&self, period: &Period, scope: &ScopeAsk) -> String {
        self.key(&format!("budl:{}", period.label()), scope)
    }

    /// Set by `release.lua` for a request whose admit reply never came.
    fn cancel_key(&self, id: &str) -> String {
        format!("{}:lim:cancel:{id}", self.prefix)
    }

    pub async fn admit(&self, ask: &Ask) -> Result<Decision, BackendError> {
        let (admitted, refusal, statuses) = self.run_admit(ask, "admit").await?;
        Ok(match (admitted, refusal) {
            (true, _) | (false, None) => Decision::Admitted(statuses),
            (false, Some(refusal)) => Decision::Refused(refusal, statuses),
        })
    }

    /// Each scope's state, taking nothing.
    pub async fn peek(&self, ask: &Ask) -> Result<Vec<ScopeStatus>, BackendError> {
        Ok(self.run_admit(ask, "peek").await?.2)
    }

    async fn run_admit(
        &self,
        ask: &Ask,
        mode: &str,
    ) -> Result<(bool, Option<Refusal>, Vec<ScopeStatus>), BackendError> {
        let peek = mode == "peek";
        let mut invocation = self.admit.prepare_invoke();
        let mut checks = Vec::new();
        let mut args: Vec<String> = Vec::new();
        for (index, scope) in ask.scopes.iter().enumerate() {
            let mut bucket = |what: &str, limit: LimitKind, cap: u64, need: u64| {
                invocation.key(self.key(what, scope));
                args.extend(["b".into(), cap.to_string(), need.to_string()]);
                checks.push(Check {
                    scope: index,
                    limit,
                });
            };
            if let Some(rpm) = scope.rpm {
                bucket("rpm", LimitKind::Requests, rpm, u64::from(!peek));
            }
            if let Some(tpm) = scope.tpm {
                bucket(
                    "tpm",
                    LimitKind::Tokens,
                    tpm,
                    if peek { 0 } else { scope.tokens },
                );
            }
            if let Some(max) = scope.max_concurrent {
                invocation.key(self.key("conc", scope));
                args.extend(["c".into(), max.to_string()]);
                checks.push(Check {
                    scope: index,
                    limit: LimitKind::Concurrency,
                });
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
                invocation.key(self.budget_key(period, scope));
                invocation.key(self.leases_key(period, scope));
                let wait = period.remaining(ask.now);
                args.extend([
                    "m".into(),
                    budget.to_string(),
                    (if peek { 0 } else { ask.cost }).to_string(),
                    key_ttl_secs(wait).to_string(),
                    wait.as_millis().to_string(),
                ]);
                checks.push(Check {
                    scope: index,
                    limit,
                });
            }
        }
        invocation.key(self.cancel_key(&ask.id));
        invocation
            .arg(mode)
            .arg(&*ask.id)
            .arg(self.lease_ms)
            .arg(checks.len())
            .arg(args);
        let mut conn = self.conn.clone();
        let reply: Vec<i64> =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| BackendError::Timeout(self.timeout))??;
        if reply.len() != 3 + 2 * checks.len() {
            return Err(BackendError::Reply(format!("{reply:?}")));
        }
        let mut statuses = vec![ScopeStatus::default(); ask.scopes.len()];
        for (i, check) in checks.iter().enumerate() {
            let (a, b) = (reply[3 + 2 * i], reply[4 + 2 * i]);
            let scope = &ask.scopes[check.scope];
            let status = &mut statuses[check.scope];
            let bucket = |cap: u64| BucketStatus {
                limit: cap,
                remaining: a,
                reset_ms: u64::try_from(b).unwrap_or(0),
            };
            let budget = BudgetStatus {
                spent: a,
                reserved: b,
            };
            match check.limit {
                LimitKind::Requests => status.requests = scope.rpm.map(bucket),
                LimitKind::Tokens => status.tokens = scope.tpm.map(bucket),
                LimitKind::Concurrency => status.in_flight = Some(u64::try_from(a).unwrap_or(0)),
                LimitKind::DailyBudget => status.daily = Some(budget),
                LimitKind::MonthlyBudget => status.monthly = Some(budget),
            }
        }
        let refusal = usize::try_from(reply[1])
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| checks.get(i))
            .map(|check| Refusal {
                scope: check.scope,
                limit: check.limit,
                wait: Duration::from_millis(u64::try_from(reply[2]).unwrap_or(0)),
            });
        Ok((reply[0] == 1, refusal, statuses))
    }

    pub async fn settle(&self, ask: &Ask, actual: &Actual) -> Result<(), BackendError> {
        let mut invocation = self.settle.prepare_invoke();
        let mut args: Vec<String> = Vec::new();
        let mut n = 0usize;
        for scope in &ask.scopes {
            if let Some(tpm) = scope.tpm {
                invocation.key(self.key("tpm", scope));
                let debit = actual.tokens as i64 - scope.tokens as i64;
                args.extend(["b".into(), tpm.to_string(), debit.to_string()]);
                n += 1;
            }
            if scope.max_concurrent.is_some() {
                invocation.key(self.key("conc", scope));
                args.push("c".into());
                n += 1;
            }
            let budgets = [
                (scope.daily_budget, &ask.periods.day, &actual.periods.day),
                (
                    scope.monthly_budget,
                    &ask.periods.month,
                    &actual.periods.month,
                ),
            ];
            for (budget, reserved_in, spent_in) in budgets {
                if budget.is_none() {
                    continue;
                }
                invocation.key(self.budget_key(reserved_in, scope));
                invocation.key(self.leases_key(reserved_in, scope));
                invocation.key(self.budget_key(spent_in, scope));
                let ttl = key_ttl_secs(spent_in.remaining(chrono::Utc::now()));
                args.extend(["m".into(), actual.cost.to_string(), ttl.to_string()]);
                n += 1;
            }
        }
        if n == 0 {
            return Ok(());
        }
        invocation.arg(&*ask.id).arg(n).arg(args);
        let mut conn = self.conn.clone();
        let _: i64 = tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| BackendError::Timeout(self.timeout))??;
        Ok(())
    }

    /// Gives back what an admit whose reply timed out may have taken (its slots and budget
    /// reservations), and stops it taking anything if it has not run yet. Sent on the same
    /// connection after the admit, but safe in either order (see `release.lua`).
    pub async fn release(&self, ask: &Ask) -> Result<(), BackendError> {
        let mut keys = vec![self.cancel_key(&ask.id)];
        for scope in ask.scopes.iter().filter(|s| s.max_concurrent.is_some()) {
            keys.push(self.key("conc", scope));
        }
        let slots = keys.len() - 1;
        for scope in &ask.scopes {
            for (budget, period) in [
                (scope.daily_budget, &ask.periods.day),
                (scope.monthly_budget, &ask.periods.month),
            ] {
                if budget.is_some() {
                    keys.push(self.budget_key(period, scope));
                    keys.push(self.leases_key(period, scope));
                }
            }
        }
        let budgets = (keys.len() - 1 - slots) / 2;
        // EVAL with the script's text, not EVALSHA: this runs when Redis is slow, and a NOSCRIPT
        // reply arriving after we stopped waiting would leave the release unsent. The command is
        // on the connection once sent, whether or not its reply is waited for.
        let mut command = redis::cmd("EVAL");
        command
            .arg(RELEASE)
            .arg(keys.len())
            .arg(keys)
            .arg(&*ask.id)
            .arg(self.lease_ms)
            .arg(slots)
            .arg(budgets);
        let mut conn = self.conn.clone();
        let _: i64 = tokio::time::timeout(self.timeout, command.query_async(&mut conn))
            .await
            .map_err(|_| BackendError::Timeout(self.timeout))??;
        Ok(())
    }
}

/// Budget keys outlive their period by a day, so the last day's spend stays readable.
fn key_ttl_secs(period_left: Duration) -> u64 {
    period_left.as_secs() + 86_400
}
