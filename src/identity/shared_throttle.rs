//! The login, sign-up and reset throttles, shared by replicas when there is a `[redis]`: guesses
//! spread over N replicas then count once, not once per replica. Each counter is one Redis key
//! (the throttle key hashed, so no address or email is written to Redis) holding the count of
//! its window, which opens at the first attempt and ends with the key's expiry.
//!
//! Redis slow or down: the replica counts locally, as it would without Redis, rather than let
//! guesses through unthrottled or refuse every login.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::throttle::LoginThrottle;
use crate::config::RedisConfig;

/// Checks, counts or both, atomically, in one round trip.
/// KEYS[1] the counter; ARGV[1] "attempt" (check, then count), "check" or "fail" (count);
/// ARGV[2] the most attempts a window allows; ARGV[3] the window in ms.
/// Returns 0 when allowed, else the ms until the window ends.
const COUNT: &str = r#"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local max, window = tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[1] ~= 'fail' and count >= max then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
    left = window
  end
  return left
end
if ARGV[1] == 'check' then return 0 end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], window) end
return 0
"#;

/// A lock-out never tells the client to retry sooner than this (as the local throttle).
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The Redis connection the throttles share.
#[derive(Clone)]
pub struct ThrottleStore {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
    timeout: Duration,
}

impl ThrottleStore {
    pub fn new(config: &RedisConfig) -> anyhow::Result<ThrottleStore> {
        let client = redis::Client::open(config.url.expose())
            .map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1);
        Ok(ThrottleStore {
            conn: ConnectionManager::new_lazy_with_config(client, manager)?,
            script: Script::new(COUNT),
            prefix: format!("{}:throttle", config.key_prefix),
            timeout: config.timeout,
        })
    }
}

/// One throttle: `max` attempts per `window` per key.
pub struct Throttle {
    local: LoginThrottle,
    max: u32,
    window: Duration,
    /// With `[redis]`: the store and this throttle's name in its keys.
    shared: Option<(ThrottleStore, &'static str)>,
}

impl Throttle {
    /// `max == 0` disables it. `store`: count in Redis under `name`, else in this replica.
    pub fn new(
        max: u32,
        window: Duration,
        store: Option<&ThrottleStore>,
        name: &'static str,
    ) -> Self {
        Self {
            local: LoginThrottle::new(max, window),
            max,
            window,
            shared: store.map(|s| (s.clone(), name)),
        }
    }

    /// Checks and counts in one step: Err(retry_after) when locked (nothing counted).
    pub async fn attempt(&self, key: &str) -> Result<(), Duration> {
        match self.run("attempt", key).await {
            Some(result) => result,
            None => self.local.attempt(key),
        }
    }

    /// Err(retry_after) when locked; counts nothing.
    pub async fn check(&self, key: &str) -> Result<(), Duration> {
        match self.run("check", key).await {
            Some(result) => result,
            None => self.local.check(key),
        }
    }

    pub async fn record_failure(&self, key: &str) {
        if self.run("fail", key).await.is_none() {
            self.local.record_failure(key);
        }
    }

    /// Clears the key (a correct password).
    pub async fn record_success(&self, key: &str) {
        self.local.record_success(key);
        if self.max == 0 {
            return;
        }
        let Some((store, name)) = &self.shared else {
            return;
        };
        let mut conn = store.conn.clone();
        let key = redis_key(store, name, key);
        let deleted = tokio::time::timeout(
            store.timeout,
            redis::cmd("DEL").arg(&key).query_async::<i64>(&mut conn),
        )
        .await;
        if !matches!(deleted, Ok(Ok(_))) {
            backend_failed(name);
        }
    }

    /// The Redis answer, or None when there is no Redis or it did not answer in time (the
    /// caller then counts locally).
    async fn run(&self, op: &str, key: &str) -> Option<Result<(), Duration>> {
        if self.max == 0 {
            return Some(Ok(()));
        }
        let (store, name) = self.shared.as_ref()?;
        let mut conn = store.conn.clone();
        let mut invocation = store.script.key(redis_key(store, name, key));
        invocation
            .arg(op)
            .arg(self.max)
            .arg(self.window.as_millis() as u64);
        match tokio::time::timeout(store.timeout, invocation.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(0)) => Some(Ok(())),
            Ok(Ok(left_ms)) => Some(Err(
                Duration::from_millis(left_ms.unsigned_abs()).max(MIN_RETRY_AFTER)
            )),
            _ => {
                backend_failed(name);
                None
            }
        }
    }
}

fn redis_key(store: &ThrottleStore, name: &str, key: &str) -> String {
    format!("{}:{name}:{}", store.prefix, super::tokens::token_hash(key))
}

fn backend_failed(name: &'static str) {
    metrics::counter!("gateway_throttle_backend_errors_total", "throttle" => name).increment(1);
    tracing::debug!(
        throttle = name,
        "Redis did not answer a throttle count; counting on this replica"
    );
}
