//! The usage batch writer: never loses a row.
//!
//! Rows arrive through a bounded channel and are inserted in batches
//! ([`Store::insert_usage`], idempotent by `request_id`). When an insert
//! fails, the batch is appended to a local **spool** (JSON lines, fsync'd
//! before the writer moves on) and the spool is replayed every
//! `replay_interval` until the database takes it, then removed. While a
//! spool is pending, new batches go straight to it (so an unreachable
//! database, where each attempt may wait for a connect timeout, does not
//! slow the writer below disk speed); direct inserts resume after a
//! successful replay. A spool left
//! by a previous process is replayed at start. When the channel closes,
//! everything buffered is flushed — to the database, or to the spool if the
//! database is down — before [`run_usage_writer`] returns.
//!
//! Replays are safe to repeat (a crash between insert and spool removal only
//! re-inserts rows the database ignores). A spool line that cannot be parsed
//! (a torn last write) is skipped with a warning; rows the database keeps
//! refusing while it is otherwise healthy are moved to `<spool>.rejected` so
//! one bad row cannot block the spool forever. One writer per spool path.

use super::model::UsageRow;
use super::Store;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

/// Writer tuning.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Rows per insert (default 500).
    pub batch_size: usize,
    /// Longest a row waits in memory before a flush (default 200 ms).
    pub flush_interval: Duration,
    /// Where failed batches go (JSON lines).
    pub spool_path: PathBuf,
    /// How often a non-empty spool is retried (default 5 s).
    pub replay_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_size: 500,
            flush_interval: Duration::from_millis(200),
            spool_path: PathBuf::from("data/usage.spool.jsonl"),
            replay_interval: Duration::from_secs(5),
        }
    }
}

/// What a writer run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriterStats {
    /// Rows inserted straight from the channel.
    pub written: u64,
    /// Rows appended to the spool.
    pub spooled: u64,
    /// Spooled rows inserted by a replay (this run's or a previous process's).
    pub replayed: u64,
}

/// Consume rows until the channel closes; see the module doc.
pub async fn run_usage_writer(
    store: Store,
    rx: mpsc::Receiver<UsageRow>,
    cfg: WriterConfig,
) -> WriterStats {
    run_usage_writer_acked(store, rx, cfg, Arc::default()).await
}

/// [`run_usage_writer`], counting in `durable` the rows taken from the
/// channel that are durable (inserted, or appended to the fsync'd spool), in
/// channel order, and flagging rows it had to give up on (the usage journal
/// removes its segments by this count).
pub async fn run_usage_writer_acked(
    store: Store,
    mut rx: mpsc::Receiver<UsageRow>,
    cfg: WriterConfig,
    durable: Arc<super::journal::Durable>,
) -> WriterStats {
    let batch_size = cfg.batch_size.max(1);
    let mut w = Writer {
        store,
        cfg,
        stats: WriterStats::default(),
        spool_pending: false,
        durable,
    };
    w.spool_pending = spool_exists(&w.cfg.spool_path);
    if w.spool_pending {
        w.replay(batch_size).await;
    }
    let mut replay_tick =
        tokio::time::interval(w.cfg.replay_interval.max(Duration::from_millis(1)));
    replay_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    replay_tick.tick().await; // the first tick is immediate
    let mut buf: Vec<UsageRow> = Vec::with_capacity(batch_size);
    let mut open = true;
    while open {
        // Wait for the first row of a batch (or a replay tick).
        tokio::select! {
            n = rx.recv_many(&mut buf, batch_size) => {
                if n == 0 {
                    break;
                }
            }
            _ = replay_tick.tick(), if w.spool_pending => {
                w.replay(batch_size).await;
                continue;
            }
        }
        // Fill the batch until it is full or the flush interval elapses.
        let deadline = Instant::now() + w.cfg.flush_interval;
        while buf.len() < batch_size {
            let room = batch_size - buf.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, room)).await {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        w.flush(&mut buf).await;
    }
    // Channel closed: `buf` was flushed above; retry the spool once so a
    // healthy database ends the run with nothing left behind.
    if w.spool_pending {
        w.replay(batch_size).await;
    }
    w.stats
}

/// Attempts to spool a batch (≈1 minute with backoff) before giving up.
const SPOOL_TRIES: u32 = 16;

struct Writer {
    store: Store,
    cfg: WriterConfig,
    stats: WriterStats,
    spool_pending: bool,
    durable: Arc<super::journal::Durable>,
}

/// Insert a spool left by a previous process now (before budgets are
/// loaded from the usage table, so its rows are charged); what the database
/// does not take stays in the spool for the writer.
pub async fn replay_spool(store: &Store, spool_path: &Path, batch_size: usize) -> WriterStats {
    if !spool_exists(spool_path) {
        return WriterStats::default();
    }
    let mut w = Writer {
        store: store.clone(),
        cfg: WriterConfig {
            spool_path: spool_path.to_owned(),
            ..WriterConfig::default()
        },
        stats: WriterStats::default(),
        spool_pending: true,
        durable: Arc::default(),
    };
    w.replay(batch_size.max(1)).await;
    w.stats
}

impl Writer {
    async fn flush(&mut self, buf: &mut Vec<UsageRow>) {
        if buf.is_empty() {
            return;
        }
        // Shared, not lent: the SQLite insert runs on a thread of its own.
        // `buf` keeps its capacity for the next batch.
        let rows: Arc<[UsageRow]> = buf.drain(..).collect();
        if self.spool_pending {
            // The database was down at the last try: keep up with the
            // channel by spooling straight away; the replay tick probes it.
            self.spool(rows).await;
            return;
        }
        match self.store.insert_usage_shared(rows.clone()).await {
            Ok(()) => {
                self.stats.written += rows.len() as u64;
                self.ack(rows.len());
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = rows.len(), "usage insert failed; spooling");
                self.spool(rows).await;
            }
        }
    }

    async fn spool(&mut self, rows: Arc<[UsageRow]>) {
        let n = rows.len() as u64;
        let path = self.cfg.spool_path.clone();
        // Retry the local write (and the database) with backoff: rows are
        // only dropped when neither takes them for about a minute.
        let mut delay = Duration::from_millis(50);
        let mut tries = 0;
        loop {
            tries += 1;
            let (p, r) = (path.clone(), rows.clone());
            let res = tokio::task::spawn_blocking(move || append_lines(&p, &r)).await;
            match res {
                Ok(Ok(())) => break,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, path = %path.display(), "cannot write the usage spool; retrying")
                }
                Err(e) => tracing::error!(error = %e, "usage spool task failed; retrying"),
            }
            // Maybe the database is back meanwhile.
            if self.store.insert_usage_shared(rows.clone()).await.is_ok() {
                self.stats.written += n;
                self.ack(rows.len());
                return;
            }
            if tries >= SPOOL_TRIES {
                tracing::error!(rows = n, path = %path.display(), "usage rows LOST: neither the database nor the spool would take them");
                self.durable
                    .lost
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        self.stats.spooled += n;
        self.ack(rows.len());
        self.spool_pending = true;
    }

    /// `n` more rows from the channel are durable.
    fn ack(&self, n: usize) {
        self.durable
            .rows
            .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
    }

    /// Insert the spool's rows in batches (read a batch at a time, so a
    /// large spool does not fill memory); remove the spool when all are in.
    async fn replay(&mut self, batch_size: usize) {
        let path = self.cfg.spool_path.clone();
        let mut offset = 0u64;
        let mut rejected: Vec<UsageRow> = Vec::new();
        let mut done = 0u64;
        loop {
            let p = path.clone();
            let chunk =
                tokio::task::spawn_blocking(move || read_chunk(&p, offset, batch_size)).await;
            let (chunk, next) = match chunk {
                Ok(Ok(c)) => c,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.spool_pending = false;
                    return;
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, path = %path.display(), "cannot read the usage spool");
                    self.stats.replayed += done;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "usage spool task failed");
                    self.stats.replayed += done;
                    return;
                }
            };
            if next == offset {
                break; // end of file
            }
            offset = next;
            if chunk.is_empty() {
                continue;
            }
            if let Err(e) = self.store.insert_usage(&chunk).await {
                // Down, or is it these rows? Only a reachable usage table
                // can tell.
                if !self.store.usage_table_ok().await {
                    tracing::debug!(error = %e, "usage spool replay: database still unavailable");
                    self.stats.replayed += done;
                    return;
                }
                for row in &chunk {
                    match self.store.insert_usage(std::slice::from_ref(row)).await {
                        Ok(()) => done += 1,
                        Err(e) => {
                            tracing::error!(error = %e, request_id = %row.request_id, "usage row refused; moved aside");
                            rejected.push(row.clone());
                        }
                    }
                }
                continue;
            }
            done += chunk.len() as u64;
        }
        if !rejected.is_empty() {
            let side = rejected_path(&path);
            let res = tokio::task::spawn_blocking(move || append_lines(&side, &rejected)).await;
            if !matches!(res, Ok(Ok(()))) {
                tracing::error!(path = %path.display(), "cannot set aside refused usage rows; keeping the spool");
                self.stats.replayed += done;
                return;
            }
        }
        self.stats.replayed += done;
        let p = path.clone();
        match tokio::task::spawn_blocking(move || std::fs::remove_file(&p)).await {
            Ok(Ok(())) => self.spool_pending = false,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => self.spool_pending = false,
            _ => tracing::error!(path = %path.display(), "cannot remove the replayed usage spool"),
        }
        tracing::info!(rows = done, "usage spool replayed");
    }
}

fn rejected_path(spool: &Path) -> PathBuf {
    let mut s = spool.as_os_str().to_owned();
    s.push(".rejected");
    PathBuf::from(s)
}

fn spool_exists(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false)
}

/// Append rows as JSON lines and fsync. If a crash left a torn last line,
/// it is terminated first so the new rows stay readable.
pub(crate) fn append_lines(path: &Path, rows: &[UsageRow]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let mut out = Vec::with_capacity(rows.len() * 400 + 1);
    if ends_torn(path)? {
        out.push(b'\n');
    }
    for r in rows {
        serde_json::to_writer(&mut out, r).map_err(std::io::Error::other)?;
        out.push(b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&out)?;
    f.sync_data()
}

/// Does the file exist, non-empty, without a final newline?
fn ends_torn(path: &Path) -> std::io::Result<bool> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Up to `max` parseable rows from byte `offset`, and the offset after them
/// (equal to `offset` at the end of the file). A line that does not parse
/// (a torn write) is skipped with a warning; an unterminated last line is
/// still read.
fn read_chunk(path: &Path, offset: u64, max: usize) -> std::io::Result<(Vec<UsageRow>, u64)> {
    let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
    f.seek(SeekFrom::Start(offset))?;
    let mut pos = offset;
    let mut rows = Vec::new();
    let mut line = Vec::new();
    while rows.len() < max {
        line.clear();
        let n = f.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<UsageRow>(text) {
            Ok(r) => rows.push(r),
            Err(e) => {
                tracing::warn!(offset = pos - n as u64, error = %e, path = %path.display(), "skipping an unreadable usage spool line")
            }
        }
    }
    Ok((rows, pos))
}
