//! Password hashing with argon2id (OWASP's parameters: 19 MiB, 2 passes, 1 lane). Hashing is
//! slow on purpose, so it runs on [`HashingPool`]'s own threads, never on a request's worker
//! thread, and at most one hash per thread at once: unauthenticated callers (register, login,
//! reset) can make it, and unbounded each one would cost 19 MiB and a core.
//!
//! Its own threads, not tokio's blocking pool: the allocator keeps a freed 19 MiB block in the
//! arena of the thread that used it, and the blocking pool spreads hashes over many threads, so
//! a login flood left hundreds of MB resident; a fixed set of threads keeps one block each.

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
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

/// A permit to run one hash: held until the hash is done.
pub struct HashPermit {
    _running: tokio::sync::OwnedSemaphorePermit,
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashPermit {
    /// Runs `work` on a hashing thread (one is free: the permit says so) and waits for it.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
        let out = result
            .await
            .map_err(|_| anyhow::anyhow!("a password hashing thread failed"))?;
        Ok(out)
    }
}

/// `count` threads taking jobs until the pool (the last sender) is dropped.
fn start_threads(count: usize) -> std::sync::mpsc::Sender<Job> {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let queue = Arc::new(std::sync::Mutex::new(queue));
    for i in 0..count {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("password-hash-{i}"))
            .spawn(move || loop {
                let job = {
                    let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
                    queue.recv()
                };
                match job {
                    // A panic in one hash (argon2 does not panic on any input) must not take
                    // the thread, and with it a share of the pool, away.
                    Ok(job) => {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                    Err(_) => break,
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a password hashing thread");
        }
    }
    jobs
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
            jobs: start_threads(concurrency),
        }
    }

    fn permit_from(&self, running: tokio::sync::OwnedSemaphorePermit) -> HashPermit {
        HashPermit {
            _running: running,
            jobs: self.jobs.clone(),
        }
    }

    pub async fn permit(&self) -> Result<HashPermit, GatewayError> {
        if let Ok(running) = self.running.clone().try_acquire_owned() {
            return Ok(self.permit_from(running));
        }
        let Ok(_queued) = self.waiting.clone().try_acquire_owned() else {
            return Err(busy());
        };
        match tokio::time::timeout(MAX_WAIT, self.running.clone().acquire_owned()).await {
            Ok(Ok(running)) => Ok(self.permit_from(running)),
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
pub async fn hash(permit: HashPermit, password: String) -> anyhow::Result<String> {
    permit
        .run(move || {
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
pub async fn verify(permit: HashPermit, password: String, stored: Option<String>) -> bool {
    permit
        .run(move || {
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
