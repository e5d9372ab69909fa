//! Usage records: one per request, sent from the hot path through a bounded
//! channel to a single writer task, which is drained on graceful shutdown.
//!
//! The writer currently emits each record as a structured log line
//! (`target: "switchyard::usage"`) and keeps process totals; persistent
//! storage plugs in behind [`UsageSink`] without touching the hot path.

use crate::store::UsageRow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_core::ir::Usage;
use tokio::sync::mpsc;

/// One request's accounting.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub request_id: String,
    pub time: SystemTime,
    pub alias: String,
    pub provider: String,
    pub deployment: String,
    pub upstream_model: String,
    /// `openai` or `anthropic`: the API the client called.
    pub ingress: &'static str,
    pub stream: bool,
    pub passthrough: bool,
    pub usage: Option<Usage>,
    pub status: u16,
    pub latency: Duration,
    /// Time to first upstream byte (streams).
    pub ttft: Option<Duration>,
    pub error: Option<String>,
    /// Upstream attempts made (retries and fallbacks included).
    pub attempts: u32,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub key_id: Option<String>,
    /// USD, from the provider's usage and the deployment's price.
    pub cost: f64,
    /// Usage was estimated because the provider reported none.
    pub estimated: bool,
    /// The deployment's model has no price of its own (no deployment
    /// `price:`, not in the bundled table): `cost` is the provider's
    /// `default_price` estimate, or 0 when there is none.
    pub unpriced: bool,
    /// Answered from the response cache (no upstream call, no cost).
    pub cache_hit: bool,
}

impl UsageRecord {
    /// The row stored in the usage table.
    pub fn to_row(&self) -> UsageRow {
        self.clone().into_row()
    }

    /// The row stored in the usage table, moving the record's text.
    pub fn into_row(self) -> UsageRow {
        let u = self.usage.unwrap_or_default();
        let ts = self
            .time
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        UsageRow {
            request_id: self.request_id,
            ts,
            tenant_id: self.tenant_id,
            user_id: self.user_id,
            key_id: self.key_id,
            alias: self.alias,
            provider: self.provider,
            deployment: self.deployment,
            upstream_model: self.upstream_model,
            ingress: self.ingress.to_owned(),
            input_tokens: i64::try_from(u.input_tokens).unwrap_or(i64::MAX),
            output_tokens: i64::try_from(u.output_tokens).unwrap_or(i64::MAX),
            cached_input_tokens: i64::try_from(u.cached_input_tokens).unwrap_or(i64::MAX),
            cost: self.cost,
            estimated: self.estimated,
            unpriced: self.unpriced,
            latency_ms: self.latency.as_secs_f64() * 1000.0,
            ttft_ms: self.ttft.map(|d| d.as_secs_f64() * 1000.0),
            status: i32::from(self.status),
            error_class: self
                .error
                .as_ref()
                .map(|_| error_class(self.status).to_owned()),
            cache_hit: self.cache_hit,
            attempts: i32::try_from(self.attempts).unwrap_or(i32::MAX),
            stream: self.stream,
        }
    }
}

/// A coarse class for error rows (for grouping without parsing messages).
fn error_class(status: u16) -> &'static str {
    match status {
        400 | 413 | 415 | 422 => "invalid_request",
        401 | 403 => "auth",
        404 => "not_found",
        429 => "rate_limited",
        499 => "client_disconnected",
        502 => "upstream_error",
        503 => "unavailable",
        504 => "timeout",
        _ => "error",
    }
}

/// Process-wide totals, for `/health` style reporting and tests.
#[derive(Debug, Default)]
pub struct Totals {
    pub requests: AtomicU64,
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
    /// Records that could not be queued (channel full or closed).
    pub dropped: AtomicU64,
    /// The most recent records written, for inspection (tests), once asked
    /// for with [`Totals::keep_recent`]: a gateway that nobody inspects
    /// does not hold a thousand records for nothing.
    recent: std::sync::Mutex<std::collections::VecDeque<UsageRecord>>,
    recent_cap: std::sync::atomic::AtomicUsize,
}

/// How many recent records [`Totals`] keeps when asked to.
pub const RECENT: usize = 1024;

impl Totals {
    /// From now on, keep the last `n` records (0: none, the default).
    pub fn keep_recent(&self, n: usize) {
        self.recent_cap.store(n, Ordering::Relaxed);
    }

    /// The most recent records kept, oldest first.
    pub fn recent(&self) -> Vec<UsageRecord> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The sending half, cloned into request handlers.
#[derive(Debug, Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<UsageRecord>,
    totals: Arc<Totals>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// Channel capacity: enough to absorb bursts while the writer flushes.
pub const CAPACITY: usize = 65_536;

/// How often the writer drains the channel while records flow.
const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(10);
/// … and once it has found nothing for `QUIET_TICKS` ticks.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_millis(100);
const QUIET_TICKS: u32 = 20;
/// Idle ticks after `QUIET_TICKS` before the allocator trim (0.8 s).
const TRIM_AFTER_IDLE_TICKS: u32 = 8;

/// One record through metrics, totals, the log line and the store.
async fn consume(
    m: &crate::metrics::Metrics,
    t: &Totals,
    store: Option<&mpsc::Sender<UsageRow>>,
    r: UsageRecord,
) {
    m.observe(&r);
    t.requests.fetch_add(1, Ordering::Relaxed);
    let u = r.usage.unwrap_or_default();
    t.input_tokens.fetch_add(u.input_tokens, Ordering::Relaxed);
    t.output_tokens
        .fetch_add(u.output_tokens, Ordering::Relaxed);
    // One access-log line per request, at debug: formatting a line per
    // request costs more than the rest of the hot path (enable with
    // SWITCHYARD_LOG=info,switchyard::usage=debug).
    tracing::debug!(
        target: "switchyard::usage",
        request_id = %r.request_id,
        alias = %r.alias,
        provider = %r.provider,
        deployment = %r.deployment,
        upstream_model = %r.upstream_model,
        ingress = r.ingress,
        stream = r.stream,
        passthrough = r.passthrough,
        status = r.status,
        input_tokens = u.input_tokens,
        output_tokens = u.output_tokens,
        cached_input_tokens = u.cached_input_tokens,
        usage_reported = r.usage.is_some(),
        latency_ms = r.latency.as_secs_f64() * 1000.0,
        ttft_ms = r.ttft.map(|d| d.as_secs_f64() * 1000.0),
        error = r.error.as_deref(),
        attempts = r.attempts,
        cost = r.cost,
        tenant = r.tenant_id.as_deref(),
        key = r.key_id.as_deref(),
        "request"
    );
    // The row takes the record's text unless the record is also kept.
    let cap = t.recent_cap.load(Ordering::Relaxed);
    let (row, kept) = match store {
        Some(_) if cap > 0 => (Some(r.to_row()), Some(r)),
        Some(_) => (Some(r.into_row()), None),
        None => (None, (cap > 0).then_some(r)),
    };
    if let (Some(s), Some(row)) = (store, row) {
        if s.send(row).await.is_err() {
            t.dropped.fetch_add(1, Ordering::Relaxed);
            m.dropped();
        }
    }
    if let Some(r) = kept {
        if let Ok(mut recent) = t.recent.lock() {
            while recent.len() >= cap {
                recent.pop_front();
            }
            recent.push_back(r);
        }
    }
}

impl UsageSink {
    /// Create the sink and the writer task's future.
    pub fn new() -> (UsageSink, impl std::future::Future<Output = ()>) {
        Self::with_store(None)
    }

    /// Like `new`, and every record also goes to the store's usage writer
    /// (the writer task awaits that channel; the hot path never does).
    pub fn with_store(
        store: Option<mpsc::Sender<UsageRow>>,
    ) -> (UsageSink, impl std::future::Future<Output = ()>) {
        let (tx, mut rx) = mpsc::channel::<UsageRecord>(CAPACITY);
        let totals = Arc::new(Totals::default());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let m = metrics.clone();
        let t = totals.clone();
        let writer = async move {
            // The writer never awaits the channel: that would have a
            // request's `try_send` wake this task — a futex wake-up on the
            // I/O worker before its response goes out, and a context switch
            // per request. It drains on a timer instead: every 10 ms while
            // records flow, every 100 ms once it has been quiet for a while.
            // A record waits at most one tick. When every sender is gone the
            // writer drains what is left and ends.
            let mut quiet = 0u32;
            loop {
                let every = if quiet >= QUIET_TICKS {
                    DRAIN_IDLE
                } else {
                    DRAIN_EVERY
                };
                tokio::time::sleep(every).await;
                let mut n = 0usize;
                loop {
                    match rx.try_recv() {
                        Ok(r) => {
                            n += 1;
                            consume(&m, &t, store.as_ref(), r).await;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                quiet = if n == 0 { quiet.saturating_add(1) } else { 0 };
                if quiet == QUIET_TICKS + TRIM_AFTER_IDLE_TICKS {
                    // Records stopped about a second ago: this thread (the
                    // control runtime's, which frees them and runs the
                    // batch writer) hands its freed memory back, as the
                    // I/O workers do.
                    crate::trim::collect_here();
                }
            }
        };
        (
            UsageSink {
                tx,
                totals,
                metrics,
            },
            writer,
        )
    }

    /// Queue a record without waiting. Never blocks the hot path; a full
    /// channel is counted, not silently ignored. False when it was dropped
    /// (the usage journal, if on, still has it).
    pub fn record(&self, r: UsageRecord) -> bool {
        if self.tx.try_send(r).is_err() {
            self.totals.dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.dropped();
            tracing::warn!("usage channel full or closed: record dropped");
            return false;
        }
        true
    }

    /// Prometheus metrics fed by this sink's writer.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }
}
