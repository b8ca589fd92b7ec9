//! Bounded background work: every queue the gateway fills from a request has a capacity, and
//! what does not fit is the producer's to handle right away (the usage writer spills it to disk;
//! memory extraction skips it and counts the skip), so no outage or burst can grow memory
//! without end. A queue can be flushed: `flush` returns once everything pushed before it is done.
//!
//! - [`BoundedQueue`] / [`QueueReceiver`]: items and a consumer that takes them in batches
//!   (the usage writer).
//! - [`JobRunner`]: fire-and-forget async jobs run a few at a time (memory extraction, summaries).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify, Semaphore};

/// Counts shared by both ends: pushed, finished, and whether someone waits for a flush. Items
/// are finished in the order they were pushed (one consumer, in order), so "finished >= what was
/// pushed before the flush" means all of those are done.
struct Progress {
    pushed: AtomicU64,
    finished: watch::Sender<u64>,
    /// The consumer is gone: nothing more will finish, and a flush must not wait for it.
    stopped: AtomicBool,
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
    push_lock: Mutex<()>,
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
        stopped: AtomicBool::new(false),
        flushers: AtomicUsize::new(0),
        flush_wanted: Notify::new(),
        depth: metrics::gauge!("gateway_jobs_queue_depth", "queue" => name),
    });
    (
        BoundedQueue {
            tx,
            progress: progress.clone(),
            push_lock: Mutex::new(()),
        },
        QueueReceiver { rx, progress },
    )
}

impl<T> BoundedQueue<T> {
    /// Queues `item` without waiting; gives it back when the queue is full (or its consumer
    /// has stopped).
    pub fn try_push(&self, item: T) -> Result<(), T> {
        // Sent and counted as one step: a flush reading the count in between could otherwise
        // take this item for one pushed before it.
        let _pushing = self.push_lock.lock().unwrap_or_else(|e| e.into_inner());
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
        let target = {
            let _pushing = self.push_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.progress.pushed.load(Ordering::Acquire)
        };
        let mut finished = self.progress.finished.subscribe();
        self.progress.flushers.fetch_add(1, Ordering::AcqRel);
        self.progress.flush_wanted.notify_one();
        let stopped = &self.progress.stopped;
        let _ = finished
            .wait_for(|done| *done >= target || stopped.load(Ordering::Acquire))
            .await;
        self.progress.flushers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<T> Drop for QueueReceiver<T> {
    /// The consumer stopped (or died): wake every flush, nothing more will finish.
    fn drop(&mut self) {
        self.progress.stopped.store(true, Ordering::Release);
        self.progress.finished.send_modify(|_| {});
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
/// Jobs run side by side finish in any order, so a flush waits on the set of unfinished jobs,
/// not on a count.
pub struct JobRunner {
    name: &'static str,
    queue: BoundedQueue<(u64, Job)>,
    unfinished: Arc<Unfinished>,
    skipped: metrics::Counter,
}

/// The sequence numbers of jobs submitted and not yet run to their end.
#[derive(Default)]
struct Unfinished {
    next: AtomicU64,
    set: Mutex<BTreeSet<u64>>,
    changed: Notify,
}

impl Unfinished {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn done(&self, seq: u64) {
        self.lock().remove(&seq);
        self.changed.notify_waiters();
    }
}

impl JobRunner {
    pub fn start(name: &'static str, capacity: usize, concurrency: usize) -> Arc<JobRunner> {
        let (queue, mut rx) = bounded::<(u64, Job)>(name, capacity);
        let unfinished = Arc::new(Unfinished::default());
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let running = unfinished.clone();
        tokio::spawn(async move {
            while let Some((seq, job)) = rx.rx.recv().await {
                rx.finished(1);
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let running = running.clone();
                tokio::spawn(async move {
                    // A job that panics still counts as finished, so a flush cannot hang on it.
                    let _done = Finished(running, seq);
                    job.await;
                    drop(permit);
                });
            }
        });
        Arc::new(JobRunner {
            name,
            queue,
            unfinished,
            skipped: metrics::counter!("gateway_jobs_skipped_total", "queue" => name),
        })
    }

    /// Queues `job`; false (and counted in `gateway_jobs_skipped_total`) when the queue is
    /// full: the job is dropped, never the caller delayed.
    pub fn submit(&self, job: impl Future<Output = ()> + Send + 'static) -> bool {
        let seq = {
            let mut set = self.unfinished.lock();
            let seq = self.unfinished.next.fetch_add(1, Ordering::AcqRel);
            set.insert(seq);
            seq
        };
        match self.queue.try_push((seq, Box::pin(job))) {
            Ok(()) => true,
            Err(_) => {
                self.unfinished.done(seq);
                self.skipped.increment(1);
                tracing::warn!(queue = self.name, "background queue full: job skipped");
                false
            }
        }
    }

    /// Jobs submitted and not yet finished (queued or running).
    pub fn depth(&self) -> u64 {
        self.unfinished.lock().len() as u64
    }

    /// Waits until every job submitted before this call has run (or the runner stopped).
    pub async fn flush(&self) {
        let target = {
            let _set = self.unfinished.lock();
            self.unfinished.next.load(Ordering::Acquire)
        };
        loop {
            let changed = self.unfinished.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a job ending in between still wakes us.
            changed.as_mut().enable();
            let pending = self
                .unfinished
                .lock()
                .first()
                .is_some_and(|first| *first < target);
            if !pending || self.queue.progress.stopped.load(Ordering::Acquire) {
                return;
            }
            changed.await;
        }
    }
}

struct Finished(Arc<Unfinished>, u64);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.done(self.1);
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
    async fn flush_waits_for_a_slow_job_that_a_fast_later_one_overtakes() {
        let runner = JobRunner::start("test-order", 8, 2);
        let (release, gate) = watch::channel(false);
        let slow_done = Arc::new(AtomicBool::new(false));
        let done = slow_done.clone();
        let mut gate_rx = gate.clone();
        assert!(runner.submit(async move {
            let _ = gate_rx.wait_for(|open| *open).await;
            done.store(true, Ordering::SeqCst);
        }));
        let flush = runner.flush();
        tokio::pin!(flush);
        // A later, fast job ends first; the flush still waits for the slow one.
        assert!(runner.submit(async {}));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), flush.as_mut())
                .await
                .is_err(),
            "returned before the slow job ran"
        );
        release.send(true).unwrap();
        flush.await;
        assert!(slow_done.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_flush_does_not_outlive_a_stopped_consumer() {
        let (queue, rx) = bounded::<u32>("test-stop", 4);
        queue.try_push(1).unwrap();
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), queue.flush())
            .await
            .expect("flush returns once the consumer is gone");
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
