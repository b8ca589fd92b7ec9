//! The usage spool: records the database could not take, as JSON lines in `undelivered_file`.
//!
//! A replay first moves the file aside (`<file>.replaying`, under the lock that appends take), so
//! new spills start a fresh file while the old one is read line by line and written a batch at a
//! time. When a batch fails, the lines not yet written replace the aside file, so the next replay
//! neither loses nor repeats them; a crash between a batch's commit and that rewrite is the one
//! case where records could be written twice, and only on the next start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};

use crate::store::Store;
use crate::usage::UsageRecord;

pub struct Spool {
    path: PathBuf,
    /// The file being replayed.
    aside: PathBuf,
    /// Held while appending and while moving the file aside.
    lock: Mutex<()>,
    /// Whether the spool may hold records (set on every spill, cleared by a complete replay).
    pending: AtomicBool,
}

impl Spool {
    pub fn new(path: PathBuf) -> Spool {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".replaying");
        let pending = path.exists() || Path::new(&aside).exists();
        Spool {
            path,
            aside: PathBuf::from(aside),
            lock: Mutex::new(()),
            pending: AtomicBool::new(pending),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn has_records(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Appends `records` (the database refused them, or the queue was full).
    pub fn set_aside(&self, records: &[UsageRecord], why: &str) {
        let appended = {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            let appended = append_json_lines(&self.path, records);
            // Under the lock: a replay finding no file clears the flag under it too, so it
            // cannot clear this spill's flag after the fact.
            if appended.is_ok() {
                self.pending.store(true, Ordering::Release);
            }
            appended
        };
        match appended {
            Ok(()) => {
                metrics::counter!("gateway_usage_records_undelivered_total")
                    .increment(records.len() as u64);
                tracing::error!(
                    error = why, records = records.len(), file = %self.path.display(),
                    "usage records could not be written to the database; kept in the undelivered file, replayed when the database is back"
                );
            }
            Err(e) => {
                metrics::counter!("gateway_usage_records_lost_total")
                    .increment(records.len() as u64);
                tracing::error!(
                    error = why, file_error = %e, records = records.len(), file = %self.path.display(),
                    "usage records LOST: neither the database nor the undelivered file took them"
                );
            }
        }
    }

    /// Writes back everything spooled: a replay left unfinished first, then the file. Stops at
    /// the first batch the database refuses (the rest stays for the next try).
    pub async fn replay(&self, store: &Store, batch_size: usize) {
        loop {
            if !self.aside.exists() {
                let moved = {
                    let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                    if self.path.exists() {
                        std::fs::rename(&self.path, &self.aside).map(|()| true)
                    } else {
                        self.pending.store(false, Ordering::Release);
                        Ok(false)
                    }
                };
                match moved {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::error!(error = %e, file = %self.path.display(), "could not move the undelivered file aside to replay it");
                        return;
                    }
                }
            }
            match replay_file(&self.aside, store, batch_size.max(1)).await {
                Ok(replayed) => {
                    if let Err(e) = tokio::fs::remove_file(&self.aside).await {
                        // Emptied at least, so its records are not written a second time.
                        let emptied = std::fs::write(&self.aside, b"");
                        tracing::error!(error = %e, emptied = emptied.is_ok(), file = %self.aside.display(), "could not remove the replayed undelivered file");
                        return;
                    }
                    if replayed > 0 {
                        tracing::info!(
                            records = replayed,
                            "undelivered usage records replayed into the database"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, file = %self.aside.display(), "replaying undelivered usage records stopped; the rest stay in the file");
                    return;
                }
            }
        }
    }
}

/// Streams `path` into the database `batch` records at a time. When anything fails after some
/// batches were written (the database, reading the file), the file is cut down to the lines
/// not yet written, so no record is written twice.
async fn replay_file(path: &Path, store: &Store, batch: usize) -> anyhow::Result<u64> {
    let mut batch_start = 0u64;
    let result = replay_from(path, store, batch, &mut batch_start).await;
    if result.is_err() && batch_start > 0 {
        keep_from(path, batch_start).await?;
    }
    result
}

/// The replay itself; `batch_start` follows the first line not yet written.
async fn replay_from(
    path: &Path,
    store: &Store,
    batch: usize,
    batch_start: &mut u64,
) -> anyhow::Result<u64> {
    let file = tokio::fs::File::open(path).await?;
    let mut reader = BufReader::new(file);
    // Bytes, not a String: a torn line (a crash mid-append) must not stop the reading.
    let mut line = Vec::new();
    let mut records = Vec::with_capacity(batch);
    let mut offset = 0u64;
    let mut replayed = 0u64;
    let mut line_number = 0u64;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).await?;
        let at_end = read == 0;
        if !at_end {
            offset += read as u64;
            line_number += 1;
            let text = line.trim_ascii();
            if !text.is_empty() {
                match serde_json::from_slice::<UsageRecord>(text) {
                    Ok(record) => records.push(record),
                    Err(e) => {
                        tracing::error!(file = %path.display(), line = line_number, error = %e, "unreadable undelivered usage record skipped")
                    }
                }
            }
        }
        if records.len() >= batch || (at_end && !records.is_empty()) {
            store.insert_usage(&records).await?;
            metrics::counter!("gateway_usage_records_replayed_total")
                .increment(records.len() as u64);
            replayed += records.len() as u64;
            records.clear();
            *batch_start = offset;
        }
        if at_end {
            return Ok(replayed);
        }
    }
}

/// Replaces `path` with its bytes from `start` on (copied aside, then renamed over it).
async fn keep_from(path: &Path, start: u64) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut from = tokio::fs::File::open(path).await?;
    from.seek(std::io::SeekFrom::Start(start)).await?;
    let mut to = tokio::fs::File::create(&tmp).await?;
    tokio::io::copy(&mut from, &mut to).await?;
    to.sync_data().await?;
    tokio::fs::rename(&tmp, path).await
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

    fn ids(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<UsageRecord>(l).unwrap().request_id)
            .collect()
    }

    #[tokio::test]
    async fn a_failed_batch_keeps_only_the_unwritten_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("undelivered.jsonl");
        append_json_lines(&path, &[record("a"), record("b"), record("c")]).unwrap();
        let first_line = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .len();
        keep_from(&path, first_line as u64 + 1).await.unwrap();
        assert_eq!(ids(&path), ["b", "c"]);
        assert!(!dir.path().join("undelivered.jsonl.tmp").exists());
    }

    #[tokio::test]
    async fn replay_streams_the_file_into_the_database_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gw.db").display());
        let store = Store::connect(&crate::config::DatabaseConfig {
            url: crate::config::Secret::new(url),
            auto_migrate: true,
            max_connections: 2,
        })
        .await
        .unwrap();
        store.migrate_up().await.unwrap();
        let spool = Spool::new(dir.path().join("undelivered.jsonl"));
        let records: Vec<UsageRecord> = (0..7).map(|i| record(&format!("r{i}"))).collect();
        spool.set_aside(&records[..4], "test");
        spool.set_aside(&records[4..], "test");
        assert!(spool.has_records());
        spool.replay(&store, 3).await;
        assert!(!spool.has_records());
        assert!(!spool.path().exists());
        let crate::store::Pool::Sqlite(pool) = store.pool() else {
            unreachable!()
        };
        let written: Vec<String> =
            sqlx::query_scalar("SELECT request_id FROM usage_record ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(written, ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]);

        // A torn line (not even UTF-8) between good ones is skipped, not a reason to stop.
        spool.set_aside(&[record("t0")], "test");
        {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(spool.path())
                .unwrap();
            file.write_all(b"{\"request_id\":\"\xff\xfe\n").unwrap();
        }
        spool.set_aside(&[record("t1")], "test");
        spool.replay(&store, 3).await;
        assert!(!spool.has_records());
        let written: Vec<String> =
            sqlx::query_scalar("SELECT request_id FROM usage_record WHERE request_id LIKE 't%'")
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(written, ["t0", "t1"]);
    }
}
