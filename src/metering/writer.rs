//! The background usage writer: records are queued without waiting and written in batches.
//!
//! - The queue is bounded (`metering.queue_capacity`, a [`crate::jobs`] queue). Under load a
//!   batch grows while the previous one is written, so the database sees few, large
//!   transactions; at low rates a record waits at most `flush_interval`.
//! - A batch the database refuses is retried with back-off (`max_retries`), then set aside in
//!   the spool (`undelivered_file`, JSON lines). A record that finds the queue full (the database
//!   has been down a while) goes straight to the spool. Either way it is counted
//!   (`gateway_usage_records_undelivered_total`) and memory stays bounded.
//! - The spool is replayed into the database streamed, a batch at a time, never read whole:
//!   at start, and after the first successful write once the database is back. Only if the file
//!   cannot be written either is a record lost, and that is logged and counted too.
//! - `flush` waits until everything queued before it is written or spooled (shutdown calls it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::MeteringConfig;
use crate::jobs::{self, BoundedQueue, QueueReceiver};
use crate::store::Store;
use crate::usage::UsageRecord;

mod spool;

use spool::Spool;

pub struct UsageWriter {
    queue: BoundedQueue<UsageRecord>,
    spool: Arc<Spool>,
    /// True once the start-up replay of the spool is over (a flush waits for it too).
    replayed: watch::Receiver<bool>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl UsageWriter {
    /// Starts the writer task; it first replays records an earlier run could not write.
    pub fn start(store: Store, config: MeteringConfig) -> Arc<UsageWriter> {
        let (queue, rx) = jobs::bounded("usage", config.queue_capacity);
        let spool = Arc::new(Spool::new(config.undelivered_file.clone()));
        let (replay_done, replayed) = watch::channel(false);
        let task = WriterTask {
            store,
            config,
            rx,
            spool: spool.clone(),
        };
        tokio::spawn(task.run(replay_done));
        Arc::new(UsageWriter {
            queue,
            spool,
            replayed,
        })
    }

    /// Queues one record; never waits. When the queue is full it goes to the spool.
    pub fn record(&self, record: UsageRecord) {
        if let Err(record) = self.queue.try_push(record) {
            self.spool
                .set_aside(std::slice::from_ref(&record), "the usage queue is full");
        }
        // (`gateway_usage_backlog` is set by the writer once per batch, not here: a metric
        // looked up by name on every request costs more than the rest of this call.)
    }

    /// Records queued and not yet written.
    pub fn backlog(&self) -> i64 {
        i64::try_from(self.queue.depth()).unwrap_or(i64::MAX)
    }

    /// Waits until every record queued so far is written (or spooled), and what an earlier
    /// run spooled has been replayed (or found the database still down).
    pub async fn flush(&self) {
        let _ = self.replayed.clone().wait_for(|done| *done).await;
        self.queue.flush().await;
    }

    /// The spool file (tests look at it).
    pub fn spool_path(&self) -> PathBuf {
        self.spool.path().to_path_buf()
    }
}

struct WriterTask {
    store: Store,
    config: MeteringConfig,
    rx: QueueReceiver<UsageRecord>,
    spool: Arc<Spool>,
}

impl WriterTask {
    async fn run(mut self, replay_done: watch::Sender<bool>) {
        self.spool.replay(&self.store, self.config.batch_size).await;
        replay_done.send_replace(true);
        let mut batch: Vec<UsageRecord> = Vec::with_capacity(self.config.batch_size);
        while self
            .rx
            .recv_batch(
                self.config.batch_size,
                self.config.flush_interval,
                &mut batch,
            )
            .await
        {
            let written = self.write(&batch).await;
            // The database is back and something waits in the spool: bring it in now (before
            // the batch counts as finished, so a flush covers it too).
            if written && self.spool.has_records() {
                self.spool.replay(&self.store, self.config.batch_size).await;
            }
            self.rx.finished(batch.len());
            batch.clear();
            metrics::gauge!("gateway_usage_backlog").set(self.rx.depth() as f64);
        }
    }

    /// Writes one batch: retried with back-off, then spooled. True when the database took it.
    async fn write(&self, batch: &[UsageRecord]) -> bool {
        let mut backoff = self.config.retry_backoff;
        for attempt in 0..=self.config.max_retries {
            match self.store.insert_usage(batch).await {
                Ok(_) => {
                    metrics::counter!("gateway_usage_records_written_total")
                        .increment(batch.len() as u64);
                    return true;
                }
                Err(e) if attempt < self.config.max_retries => {
                    metrics::counter!("gateway_usage_write_errors_total").increment(1);
                    tracing::warn!(error = %e, records = batch.len(), attempt, "writing usage records failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    metrics::counter!("gateway_usage_write_errors_total").increment(1);
                    self.spool.set_aside(batch, &e.to_string());
                }
            }
        }
        false
    }
}
