//! Bounded background work: every queue the gateway fills from a request has a capacity, and
//! what does not fit is the producer's to handle right away (the usage writer spills it to disk;
//! memory extraction skips it and counts the skip), so no outage or burst can grow memory
//! without end. A queue can be flushed: `flush` returns once everything pushed before it is done.
//!
//! - [`BoundedQueue`] / [`QueueReceiver`]: items and a consumer that takes them in batches
//!   (the usage writer).
//! - [`JobRunner`]: fire-and-forget async jobs run a few at a time (memory extraction, summaries).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify, Semaphore};

/// Counts shared by both ends: pushed, finished, and whether someone waits for a flush.
struct Progress {
    pushed: AtomicU64,
    finished: watch::Sender<u64>,
    flushers: AtomicUsize,
    flush_wanted: Notify,
    depth: metrics::Gauge,
}

impl Progress {
    fn depth(&self) -> u64 {
        self.pushed
            .load(Ordering::Acquire)
            .saturating_sub(*self.finished.borrow())
    }
}

pub struct BoundedQueue<T> {
    tx: mpsc::Sender<T>,
    progress: Arc<Progress>,
}

pub struct QueueReceiver<T> {
    rx: mpsc::Receiver<T>,
    progress: Arc<Progress>,
}

/// A queue of `capacity` items; its depth is the gauge `gateway_jobs_queue_depth{queue=name}`.
pub fn bounded<T>(name: &'static str, capacity: usize) -> (BoundedQueue<T>, QueueReceiver<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let progress = Arc::new(Progress {
        pushed: AtomicU64::new(0),
        finished: watch::Sender::new(0),
        flushers: AtomicUsize::new(0),
        flush_wanted: Notify::new(),
        depth: metrics::gauge!("gateway_jobs_queue_depth", "queue" => name),
    });
    (
        BoundedQueue {
            tx,
            progress: progress.clone(),
        },
        QueueReceiver { rx, progress },
    )
}

impl<T> BoundedQueue<T> {
    /// Queues `item` without waiting; gives it back when the queue is full (or its consumer
    /// has stopped).
    pub fn try_push(&self, item: T) -> Result<(), T> {
        match self.tx.try_send(item) {
            Ok(()) => {
                self.progress.pushed.fetch_add(1, Ordering::AcqRel);
                self.progress.depth.increment(1.0);
                Ok(())
            }
            Err(
                mpsc::error::TrySendError::Full(item) | mpsc::error::TrySendError::Closed(item),
            ) => Err(item),
        }
    }

    /// Items queued and not yet finished.
    pub fn depth(&self) -> u64 {
        self.progress.depth()
    }

    /// Waits until every item pushed before this call is finished (or the consumer stopped).
    pub async fn flush(&self) {
        let target = self.progress.pushed.load(Ordering::Acquire);
        let mut finished = self.progress.finished.subscribe();
        self.progress.flushers.fetch_add(1, Ordering::AcqRel);
        self.progress.flush_wanted.notify_one();
        let _ = finished.wait_for(|done| *done >= target).await;
        self.progress.flushers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<T> QueueReceiver<T> {
    /// Waits for the first item, then takes what else is queued up to `max`, lingering up to
    /// `linger` for a fuller batch unless someone waits for a flush. False once every sender is
    /// gone and the queue is empty.
    pub async fn recv_batch(&mut self, max: usize, linger: Duration, out: &mut Vec<T>) -> bool {
        let Some(first) = self.rx.recv().await else {
            return false;
        };
        out.push(first);
        let until = tokio::time::Instant::now() + linger;
        while out.len() < max {
            match self.rx.try_recv() {
                Ok(item) => out.push(item),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if self.progress.flushers.load(Ordering::Acquire) > 0 {
                        break;
                    }
                    tokio::select! {
                        item = self.rx.recv() => match item {
                            Some(item) => out.push(item),
                            None => break,
                        },
                        () = tokio::time::sleep_until(until) => break,
                        () = self.progress.flush_wanted.notified() => {}
                    }
                }
            }
        }
        true
    }

    /// Marks `n` taken items as done (flushes waiting for them return).
    pub fn finished(&self, n: usize) {
        self.progress.finished.send_modify(|done| *done += n as u64);
        self.progress.depth.decrement(n as f64);
    }

    pub fn depth(&self) -> u64 {
        self.progress.depth()
    }
}

pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs submitted jobs in the background, `concurrency` at a time, from a queue of `capacity`.
pub struct JobRunner {
    name: &'static str,
    queue: BoundedQueue<Job>,
    skipped: metrics::Counter,
}

impl JobRunner {
    pub fn start(name: &'static str, capacity: usize, concurrency: usize) -> Arc<JobRunner> {
        let (queue, mut rx) = bounded::<Job>(name, capacity);
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let rx_progress = rx.progress.clone();
        tokio::spawn(async move {
            while let Some(job) = rx.rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let progress = rx_progress.clone();
                tokio::spawn(async move {
                    // A job that panics still counts as finished, so a flush cannot hang on it.
                    let _done = Finished(progress);
                    job.await;
                    drop(permit);
                });
            }
        });
        Arc::new(JobRunner {
            name,
            queue,
            skipped: metrics::counter!("gateway_jobs_skipped_total", "queue" => name),
        })
    }

    /// Queues `job`; false (and counted in `gateway_jobs_skipped_total`) when the queue is
    /// full: the job is dropped, never the caller delayed.
    pub fn submit(&self, job: impl Future<Output = ()> + Send + 'static) -> bool {
        match self.queue.try_push(Box::pin(job)) {
            Ok(()) => true,
            Err(_) => {
                self.skipped.increment(1);
                tracing::warn!(queue = self.name, "background queue full: job skipped");
                false
            }
        }
    }

    pub fn depth(&self) -> u64 {
        self.queue.depth()
    }

    /// Waits until every job submitted before this call has run.
    pub async fn flush(&self) {
        self.queue.flush().await;
    }
}

struct Finished(Arc<Progress>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.finished.send_modify(|done| *done += 1);
        self.0.depth.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_gives_the_item_back_and_flush_waits_for_what_was_pushed() {
        let (queue, mut rx) = bounded::<u32>("test", 2);
        assert!(queue.try_push(1).is_ok());
        assert!(queue.try_push(2).is_ok());
        assert_eq!(queue.try_push(3), Err(3), "full");
        assert_eq!(queue.depth(), 2);
        let consumer = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut batch = Vec::new();
            while rx.recv_batch(10, Duration::from_secs(60), &mut batch).await {
                let n = batch.len();
                seen.append(&mut batch);
                rx.finished(n);
            }
            seen
        });
        // The consumer lingers up to a minute for a fuller batch; a flush cuts that short.
        tokio::time::timeout(Duration::from_secs(10), queue.flush())
            .await
            .expect("flush returns without waiting out the linger");
        assert_eq!(queue.depth(), 0);
        drop(queue);
        assert_eq!(consumer.await.unwrap(), [1, 2]);
    }

    #[tokio::test]
    async fn the_runner_skips_when_full_and_flushes() {
        let runner = JobRunner::start("test-runner", 1, 1);
        let (release, gate) = watch::channel(false);
        let ran = Arc::new(AtomicUsize::new(0));
        let job = |ran: Arc<AtomicUsize>, mut gate: watch::Receiver<bool>| async move {
            let _ = gate.wait_for(|open| *open).await;
            ran.fetch_add(1, Ordering::SeqCst);
        };
        // The first job is taken and blocks the only worker; the second fills the queue.
        assert!(runner.submit(job(ran.clone(), gate.clone())));
        let mut submitted = 1;
        while runner.submit(job(ran.clone(), gate.clone())) {
            submitted += 1;
            assert!(submitted <= 3, "a queue of one takes at most one more");
        }
        release.send(true).unwrap();
        runner.flush().await;
        assert_eq!(ran.load(Ordering::SeqCst), submitted);
        assert_eq!(runner.depth(), 0);
    }
}
