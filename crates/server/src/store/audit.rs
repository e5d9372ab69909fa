//! The audit sink: each event goes to a JSON-lines file (append, flushed and
//! synced per batch) and then, in batches, to the database. The file is
//! written first, so a database outage loses nothing; events the database
//! refused are retried with the next batch (up to [`PENDING_MAX`] held in
//! memory — the file has them all regardless).

use super::model::AuditEvent;
use super::Store;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Channel capacity: admin actions and auth failures are rare; a flood of
/// auth failures beyond this is counted in [`AuditLog::dropped`].
pub const CAPACITY: usize = 8_192;
/// Events per batch.
const BATCH: usize = 256;
/// Events kept for a database retry.
pub const PENDING_MAX: usize = 10_000;

/// Non-blocking handle to the audit task. Cloning shares the task; the task
/// ends (after a final flush) when every handle is dropped.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditEvent>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// Start the writer task. With neither a store nor a path, events are
    /// consumed and discarded.
    pub fn start(
        store: Option<Store>,
        path: Option<PathBuf>,
    ) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let log = AuditLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let task = tokio::spawn(run(store, path, rx));
        (log, task)
    }

    /// Queue an event; never waits. A full or closed channel counts it in
    /// [`AuditLog::dropped`] and logs it instead.
    pub fn record(&self, ev: AuditEvent) {
        if let Err(e) = self.tx.try_send(ev) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let ev = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            tracing::warn!(target: "switchyard::audit", action = %ev.action, actor = %ev.actor, outcome = %ev.outcome, "audit event dropped (queue full)");
        }
    }

    /// Events that could not be queued.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn run(store: Option<Store>, path: Option<PathBuf>, mut rx: mpsc::Receiver<AuditEvent>) {
    let mut file: Option<tokio::fs::File> = None;
    let mut pending: Vec<AuditEvent> = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if let Some(p) = &path {
            write_file(p, &mut file, &batch).await;
        }
        if let Some(store) = &store {
            pending.append(&mut batch);
            match store.insert_audit(&pending).await {
                Ok(()) => pending.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, events = pending.len(), "audit insert failed; will retry");
                    if pending.len() > PENDING_MAX {
                        let excess = pending.len() - PENDING_MAX;
                        pending.drain(..excess);
                    }
                }
            }
        }
        batch.clear();
    }
    if let (Some(store), false) = (&store, pending.is_empty()) {
        if let Err(e) = store.insert_audit(&pending).await {
            tracing::warn!(error = %e, events = pending.len(), "audit events not in the database at shutdown (they are in the audit file, if configured)");
        }
    }
}

async fn write_file(path: &PathBuf, file: &mut Option<tokio::fs::File>, events: &[AuditEvent]) {
    let mut out = Vec::with_capacity(events.len() * 256);
    for ev in events {
        if serde_json::to_writer(&mut out, ev).is_ok() {
            out.push(b'\n');
        }
    }
    for attempt in 0..2 {
        if file.is_none() {
            if let Some(parent) = path.parent() {
                if !parent.as_os_str().is_empty() {
                    let _ = tokio::fs::create_dir_all(parent).await;
                }
            }
            match tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
            {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::error!(error = %e, path = %path.display(), "cannot open the audit log file");
                    return;
                }
            }
        }
        if let Some(f) = file.as_mut() {
            let res = async {
                f.write_all(&out).await?;
                f.flush().await?;
                f.sync_data().await
            }
            .await;
            match res {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(error = %e, path = %path.display(), attempt, "cannot write the audit log file");
                    *file = None; // reopen once (e.g. after rotation)
                }
            }
        }
    }
}
