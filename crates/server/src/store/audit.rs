//! The audit sink: each event goes to a JSON-lines file (append, flushed and
//! synced per batch) and then, in batches, to the database. The file is
//! written first, so a database outage loses nothing; events the database
//! refused are retried with the next batch (up to [`PENDING_MAX`] held in
//! memory — the file has them all regardless).
//!
//! Repeated security events (refused keys, PII refusals) never reach the
//! queue one per request: [`AuditLog::security`] writes the first event of a
//! (action, reason, source, actor) bucket as is, counts the rest in a
//! bounded in-memory map, and the writer task turns each bucket's count into
//! one summary row per interval ("N more from X between t1 and t2"). A
//! flood therefore costs one map update per request and at most two rows per
//! bucket and interval; buckets beyond [`SecurityLimits::max_sources`] fold
//! into one `(other)` bucket per action. The queue stays free for admin
//! events.

use super::model::AuditEvent;
use super::Store;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
    security: Arc<Aggregator>,
}

/// How repeated security events are aggregated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurityLimits {
    /// Each bucket's count becomes one summary row per interval.
    pub interval: Duration,
    /// Distinct buckets (source address × reason × actor) held per
    /// interval; more fold into one `(other)` bucket per action.
    pub max_sources: usize,
}

impl Default for SecurityLimits {
    fn default() -> Self {
        SecurityLimits {
            interval: Duration::from_secs(10),
            max_sources: 256,
        }
    }
}

/// What makes two security events "the same" for aggregation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecurityKey {
    /// `auth.failure`, `pii.blocked`, …
    pub action: &'static str,
    /// A fixed code (`invalid_api_key`, `key_revoked`, `pii_detected`, …).
    pub reason: &'static str,
    pub ip: Option<IpAddr>,
    /// Key id, `anonymous`, …
    pub actor: Cow<'static, str>,
    pub tenant_id: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug)]
struct Bucket {
    /// Events after the one written individually.
    count: u64,
    /// First and last of those (ms).
    from: i64,
    to: i64,
}

#[derive(Debug)]
struct Aggregator {
    limits: SecurityLimits,
    buckets: Mutex<HashMap<SecurityKey, Bucket>>,
}

impl Aggregator {
    /// Count one event; `true` when it opens a bucket (write it as is).
    fn count(&self, key: SecurityKey, now: i64) -> bool {
        let Ok(mut map) = self.buckets.lock() else {
            return false;
        };
        if let Some(b) = map.get_mut(&key) {
            if b.count == 0 {
                b.from = now;
            }
            b.count += 1;
            b.to = now;
            return false;
        }
        let (key, first) = if map.len() < self.limits.max_sources {
            (key, true)
        } else {
            (
                SecurityKey {
                    action: key.action,
                    reason: "(other)",
                    ip: None,
                    actor: Cow::Borrowed("(other)"),
                    tenant_id: None,
                    target: None,
                },
                false,
            )
        };
        let b = map.entry(key).or_insert(Bucket {
            count: 0,
            from: now,
            to: now,
        });
        if !first {
            if b.count == 0 {
                b.from = now;
            }
            b.count += 1;
            b.to = now;
        }
        first
    }

    /// Take every bucket: one summary event per bucket with a count, and
    /// one log line for the whole interval.
    fn drain(&self, out: &mut Vec<AuditEvent>) {
        let map = match self.buckets.lock() {
            Ok(mut m) if !m.is_empty() => std::mem::take(&mut *m),
            _ => return,
        };
        let (mut events, mut sources) = (0u64, 0usize);
        for (k, b) in map {
            if b.count == 0 {
                continue;
            }
            events += b.count;
            sources += 1;
            out.push(AuditEvent {
                id: super::new_id("aud_"),
                ts: b.to,
                actor: k.actor.into_owned(),
                tenant_id: k.tenant_id,
                action: k.action.to_owned(),
                target: k.target,
                ip: k.ip.map(|i| i.to_string()),
                outcome: "denied".into(),
                details: serde_json::json!({
                    "reason": k.reason,
                    "aggregated": true,
                    "count": b.count,
                    "from": b.from,
                    "to": b.to,
                }),
            });
        }
        if events > 0 {
            tracing::warn!(
                target: "switchyard::audit",
                events,
                buckets = sources,
                interval_ms = self.limits.interval.as_millis() as u64,
                "repeated security events aggregated (one summary audit row per source)"
            );
        }
    }
}

impl AuditLog {
    /// Start the writer task. With neither a store nor a path, events are
    /// consumed and discarded.
    pub fn start(
        store: Option<Store>,
        path: Option<PathBuf>,
    ) -> (AuditLog, tokio::task::JoinHandle<()>) {
        Self::start_with(store, path, SecurityLimits::default())
    }

    /// [`AuditLog::start`] with explicit security-event aggregation limits.
    pub fn start_with(
        store: Option<Store>,
        path: Option<PathBuf>,
        limits: SecurityLimits,
    ) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let limits = SecurityLimits {
            interval: limits.interval.max(Duration::from_millis(10)),
            max_sources: limits.max_sources.max(1),
        };
        let security = Arc::new(Aggregator {
            limits,
            buckets: Mutex::new(HashMap::new()),
        });
        let log = AuditLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            security: security.clone(),
        };
        let task = tokio::spawn(run(store, path, rx, security));
        (log, task)
    }

    /// Record a security event that a caller can repeat at will (a refused
    /// key, a PII refusal): the first of its bucket in an interval is
    /// written as `event()` builds it, the rest only counted (bounded
    /// memory, no allocation for a known bucket, no log line per event).
    pub fn security(&self, key: SecurityKey, event: impl FnOnce() -> AuditEvent) {
        if self.security.count(key, super::now_ms()) {
            self.record(event());
        }
    }

    /// Queue an event; never waits. A full or closed channel counts it in
    /// [`AuditLog::dropped`] and logs it instead.
    pub fn record(&self, ev: AuditEvent) {
        if let Err(e) = self.tx.try_send(ev) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let ev = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            let n = self.dropped.load(Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(target: "switchyard::audit", action = %ev.action, actor = %ev.actor, outcome = %ev.outcome, dropped = n, "audit event dropped (queue full)");
            }
        }
    }

    /// Events that could not be queued.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn run(
    store: Option<Store>,
    path: Option<PathBuf>,
    mut rx: mpsc::Receiver<AuditEvent>,
    security: Arc<Aggregator>,
) {
    let mut file: Option<tokio::fs::File> = None;
    let mut pending: Vec<AuditEvent> = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(security.limits.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    loop {
        let closed = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n == 0,
            _ = tick.tick() => {
                security.drain(&mut batch);
                false
            }
        };
        if closed {
            // Every handle is gone: the last summaries, then stop.
            security.drain(&mut batch);
            if batch.is_empty() {
                break;
            }
        } else if batch.is_empty() {
            continue;
        }
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
        if closed {
            break;
        }
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
