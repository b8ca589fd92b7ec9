//! The background usage writer: records are queued without waiting and written in batches.
//!
//! - Under load a batch grows while the previous one is written, so the database sees few,
//!   large transactions; at low rates a record waits at most `flush_interval`.
//! - A batch the database refuses is retried with back-off (`max_retries`); after that it is
//!   appended to `undelivered_file` as JSON lines, with a loud error and a metric, and replayed
//!   into the database at the next start. Only if that file cannot be written either is a
//!   record lost, and that is logged and counted too.
//! - `flush` waits until everything queued before it is written (shutdown calls it).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::MeteringConfig;
use crate::store::Store;
use crate::usage::UsageRecord;

enum Message {
    Record(Box<UsageRecord>),
    /// Answered once every record queued before it is written (or set aside).
    Flush(oneshot::Sender<()>),
}

pub struct UsageWriter {
    tx: mpsc::UnboundedSender<Message>,
    /// Records queued and not yet written.
    backlog: Arc<AtomicI64>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl UsageWriter {
    /// Starts the writer task; first replays records an earlier run could not write.
    pub fn start(store: Store, config: MeteringConfig) -> Arc<UsageWriter> {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicI64::new(0));
        let task = WriterTask {
            store,
            config,
            rx,
            backlog: backlog.clone(),
        };
        tokio::spawn(task.run());
        Arc::new(UsageWriter { tx, backlog })
    }

    /// Queues one record; never waits.
    pub fn record(&self, record: UsageRecord) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Message::Record(Box::new(record))).is_err() {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("gateway_usage_records_lost_total").increment(1);
            tracing::error!("usage writer has stopped: a usage record was lost");
        }
    }

    pub fn backlog(&self) -> i64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Waits until every record queued so far is written (or set aside in the file).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Message::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

struct WriterTask {
    store: Store,
    config: MeteringConfig,
    rx: mpsc::UnboundedReceiver<Message>,
    backlog: Arc<AtomicI64>,
}

impl WriterTask {
    async fn run(mut self) {
        self.replay_undelivered().await;
        let mut batch: Vec<UsageRecord> = Vec::with_capacity(self.config.batch_size);
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        while let Some(first) = self.rx.recv().await {
            self.take(first, &mut batch, &mut waiting);
            // Gather what else is queued, lingering a little for a fuller batch unless someone
            // is waiting for a flush.
            let linger_until = Instant::now() + self.config.flush_interval;
            while batch.len() < self.config.batch_size && waiting.is_empty() {
                match self.rx.try_recv() {
                    Ok(message) => self.take(message, &mut batch, &mut waiting),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(linger_until, self.rx.recv()).await {
                            Ok(Some(message)) => self.take(message, &mut batch, &mut waiting),
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
            // A flush also takes what was queued right before it.
            while let Ok(message) = self.rx.try_recv() {
                self.take(message, &mut batch, &mut waiting);
                if batch.len() >= self.config.batch_size * 4 {
                    break;
                }
            }
            if !batch.is_empty() {
                self.write(&batch).await;
                self.backlog
                    .fetch_sub(batch.len() as i64, Ordering::Relaxed);
                batch.clear();
            }
            metrics::gauge!("gateway_usage_backlog")
                .set(self.backlog.load(Ordering::Relaxed) as f64);
            for ack in waiting.drain(..) {
                let _ = ack.send(());
            }
        }
    }

    fn take(
        &self,
        message: Message,
        batch: &mut Vec<UsageRecord>,
        waiting: &mut Vec<oneshot::Sender<()>>,
    ) {
        match message {
            Message::Record(record) => batch.push(*record),
            Message::Flush(ack) => waiting.push(ack),
        }
    }

    /// Writes one batch: retried with back-off, then set aside in the undelivered file.
    async fn write(&self, batch: &[UsageRecord]) {
        let mut backoff = self.config.retry_backoff;
        for attempt in 0..=self.config.max_retries {
            match self.store.insert_usage(batch).await {
                Ok(_) => {
                    metrics::counter!("gateway_usage_records_written_total")
                        .increment(batch.len() as u64);
                    return;
                }
                Err(e) if attempt < self.config.max_retries => {
                    metrics::counter!("gateway_usage_write_errors_total").increment(1);
                    tracing::warn!(error = %e, records = batch.len(), attempt, "writing usage records failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    metrics::counter!("gateway_usage_write_errors_total").increment(1);
                    self.set_aside(batch, &e.to_string());
                }
            }
        }
    }

    fn set_aside(&self, batch: &[UsageRecord], why: &str) {
        let path = &self.config.undelivered_file;
        match append_json_lines(path, batch) {
            Ok(()) => {
                metrics::counter!("gateway_usage_records_undelivered_total")
                    .increment(batch.len() as u64);
                tracing::error!(
                    error = why, records = batch.len(), file = %path.display(),
                    "usage records could not be written to the database after every retry; kept in the undelivered file, replayed at the next start"
                );
            }
            Err(e) => {
                metrics::counter!("gateway_usage_records_lost_total").increment(batch.len() as u64);
                tracing::error!(
                    error = why, file_error = %e, records = batch.len(), file = %path.display(),
                    "usage records LOST: neither the database nor the undelivered file took them"
                );
            }
        }
    }

    /// Writes back what an earlier run set aside, then removes the file.
    async fn replay_undelivered(&self) {
        let path = &self.config.undelivered_file;
        let Ok(text) = tokio::fs::read_to_string(path).await else {
            return;
        };
        let mut records = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match serde_json::from_str::<UsageRecord>(line) {
                Ok(record) => records.push(record),
                Err(e) => {
                    tracing::error!(file = %path.display(), line = n + 1, error = %e, "unreadable undelivered usage record skipped")
                }
            }
        }
        // Written before the file goes, so a crash now duplicates rather than loses.
        let batch = self.config.batch_size.max(1);
        for (n, chunk) in records.chunks(batch).enumerate() {
            if let Err(e) = self.store.insert_usage(chunk).await {
                // Keep only what is not written yet: the next start must not write the
                // earlier chunks a second time (they would be billed twice).
                let unwritten = &records[n * batch..];
                let kept = replace_json_lines(path, unwritten);
                tracing::error!(
                    error = %e, file = %path.display(), written = n * batch, kept = unwritten.len(),
                    file_error = kept.err().map(|e| e.to_string()),
                    "replaying undelivered usage records failed; the rest stay in the file"
                );
                return;
            }
        }
        if let Err(e) = tokio::fs::remove_file(path).await {
            tracing::error!(error = %e, file = %path.display(), "could not remove the replayed undelivered file");
        }
        tracing::info!(
            records = records.len(),
            "undelivered usage records replayed into the database"
        );
    }
}

/// Replaces the file's records with `records` (written aside, then renamed over it).
fn replace_json_lines(path: &Path, records: &[UsageRecord]) -> std::io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".tmp");
    let aside = std::path::PathBuf::from(aside);
    let _ = std::fs::remove_file(&aside);
    append_json_lines(&aside, records)?;
    std::fs::rename(&aside, path)
}

fn append_json_lines(path: &Path, records: &[UsageRecord]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut buffer = Vec::new();
    for record in records {
        serde_json::to_writer(&mut buffer, record)?;
        buffer.push(b'\n');
    }
    file.write_all(&buffer)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> UsageRecord {
        UsageRecord {
            request_id: id.to_string(),
            route: "chat.completions".into(),
            outcome: "complete".into(),
            ..UsageRecord::default()
        }
    }

    #[test]
    fn a_partial_replay_keeps_only_the_unwritten_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("undelivered.jsonl");
        append_json_lines(&path, &[record("a"), record("b"), record("c")]).unwrap();
        replace_json_lines(&path, &[record("c")]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<UsageRecord>(l).unwrap().request_id)
            .collect();
        assert_eq!(ids, ["c"]);
        assert!(!dir.path().join("undelivered.jsonl.tmp").exists());
    }
}
