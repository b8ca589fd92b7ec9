//! Password hashing with argon2id (OWASP's parameters: 19 MiB, 2 passes, 1 lane). Hashing is
//! slow on purpose, so it runs on the blocking pool, never on a request's worker thread, and
//! at most [`HashingPool`]'s permits at once: unauthenticated callers (register, login, reset)
//! can make it, and unbounded each one would cost 19 MiB and a core.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::GatewayError;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// How long a hash may wait for a free permit before the caller is told to come back.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// Bounds password hashing: `concurrency` hashes run at once, at most `queue` more wait (up to
/// [`MAX_WAIT`]); anyone beyond is refused at once with a 503 and `Retry-After`, so a flood of
/// logins costs neither memory nor an ever-growing wait.
pub struct HashingPool {
    running: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
}

/// A permit to run one hash: held until the hash is done.
pub struct HashPermit {
    _running: tokio::sync::OwnedSemaphorePermit,
}

impl HashingPool {
    /// `concurrency == 0` means one per core.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Self {
            running: Arc::new(Semaphore::new(concurrency)),
            waiting: Arc::new(Semaphore::new(queue)),
        }
    }

    pub async fn permit(&self) -> Result<HashPermit, GatewayError> {
        if let Ok(running) = self.running.clone().try_acquire_owned() {
            return Ok(HashPermit { _running: running });
        }
        let Ok(_queued) = self.waiting.clone().try_acquire_owned() else {
            return Err(busy());
        };
        match tokio::time::timeout(MAX_WAIT, self.running.clone().acquire_owned()).await {
            Ok(Ok(running)) => Ok(HashPermit { _running: running }),
            _ => Err(busy()),
        }
    }
}

fn busy() -> GatewayError {
    metrics::counter!("gateway_password_hashing_refused_total").increment(1);
    let mut error = GatewayError::service_unavailable(
        "The server is busy checking passwords. Try again in a moment.",
    )
    .with_code("busy");
    error.retry_after = Some(1);
    error
}

/// Hashes a password into a PHC string (`$argon2id$v=19$...`).
pub async fn hash(_permit: HashPermit, password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
}

/// Checks a password against a stored hash. With no hash (unknown account, or one that signs in
/// only through Google/Apple) a dummy hash is checked anyway, so the answer takes as long either
/// way and timing does not tell which accounts exist.
pub async fn verify(_permit: HashPermit, password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match stored {
            Some(hash) => (hash, true),
            None => (dummy_hash().to_string(), false),
        };
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        // argon2's verifier compares the digests in constant time.
        let matches = argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        matches && real
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(b"dummy password for timing", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let pool = HashingPool::new(1, 4);
        let stored = hash(pool.permit().await.unwrap(), "correct horse".into())
            .await
            .unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        for (password, stored, expected) in [
            ("correct horse", Some(stored.clone()), true),
            ("wrong horse", Some(stored), false),
            ("dummy password for timing", None, false),
            ("x", Some("not a hash".to_string()), false),
        ] {
            let permit = pool.permit().await.unwrap();
            assert_eq!(verify(permit, password.into(), stored).await, expected);
        }
    }

    #[tokio::test]
    async fn a_full_pool_refuses_at_once() {
        let pool = HashingPool::new(1, 0);
        let held = pool.permit().await.unwrap();
        let refused = pool.permit().await.err().unwrap();
        assert_eq!(refused.status, http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.retry_after, Some(1));
        drop(held);
        assert!(pool.permit().await.is_ok());
    }
}
