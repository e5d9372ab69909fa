//! Governance at request time: who is calling (virtual keys, the master key,
//! static keys), may they call this model, rate limits, budgets — all served
//! from memory. The database is read in the background (change feed every
//! `refresh_interval`, so a revoked key stops working within that bound) and
//! written off the hot path (usage batch writer, audit log).

mod budget;
mod cache;
pub mod keys;
mod ratelimit;

pub use budget::Unpriced;
pub use budget::{parse_span, period_bounds, Crossing, Exhausted, Hold, Ledger};
pub use ratelimit::{Decision, Limiters};

use crate::config::GovernanceConfig;
use crate::error::GatewayError;
use crate::store::{self, AuditEvent, AuditLog, Role, Scope, Store, UsageRow, WriterConfig};
use axum::http::{HeaderName, HeaderValue};
use cache::{Limit, Snapshot};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use switchyard_core::ir::{ApiError, ErrorKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `None` for the master key and static config keys.
    pub key_id: Option<String>,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub role: Role,
    /// The bootstrap master key: every permission, no limits.
    pub master: bool,
    /// Models this caller may use (empty = all).
    pub allowed_models: Arc<[String]>,
    /// Other keys whose per-key rate limits and budgets bind this caller:
    /// the keys that created it and the key it was rotated to (see
    /// `cache::Lineage`). `None` for most keys.
    pub bound_by: Option<Arc<[String]>>,
}

impl Principal {
    /// A static gateway key from the config file (no tenant, no limits).
    pub fn static_key() -> Self {
        Principal {
            key_id: None,
            tenant_id: None,
            user_id: None,
            role: Role::Developer,
            master: false,
            allowed_models: Arc::from(Vec::new()),
            bound_by: None,
        }
    }

    pub fn master() -> Self {
        Principal {
            master: true,
            role: Role::Admin,
            ..Self::static_key()
        }
    }

    /// May this caller use `alias`?
    pub fn may_use(&self, alias: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|m| m == alias || m == "*")
    }

    /// May this caller call models at all?
    pub fn may_call_models(&self) -> bool {
        self.master || matches!(self.role, Role::Admin | Role::Developer)
    }

    /// Actor string for audit events.
    pub fn actor(&self) -> String {
        if self.master {
            "master".into()
        } else {
            self.key_id.clone().unwrap_or_else(|| "static-key".into())
        }
    }
}

/// What admission reserved for one request; settled exactly once.
#[derive(Debug, Default)]
pub struct Admission {
    /// `x-ratelimit-*` headers for the response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    tpm_holds: Vec<(Arc<str>, u64, u64)>,
    holds: Vec<Hold>,
    /// A downgrade budget is exhausted: serve this alias instead.
    pub downgrade_to: Option<String>,
    /// With `downgrade_to`: a budget that limits cost applies (the first
    /// one), so the downgrade alias must be priced too (`Unpriced`).
    pub cost_budget: Option<Arc<store::Budget>>,
    settled: std::sync::atomic::AtomicBool,
}

/// The running governance subsystem.
pub struct Governance {
    pub store: Store,
    snapshot: RwLock<Arc<Snapshot>>,
    watermark: AtomicI64,
    limiters: Limiters,
    pub ledger: Ledger,
    pub audit: AuditLog,
    master: Option<[u8; 32]>,
    touched: Mutex<HashMap<String, store::Millis>>,
    pub cfg: GovernanceConfig,
    http: reqwest::Client,
    /// The runtime governance started on: database work (alerts, admin
    /// operations) runs there, never on an I/O worker's event loop, so no
    /// database connection is bound to a worker runtime.
    pub rt: tokio::runtime::Handle,
    /// The usage write-ahead journal (`governance.journal`).
    pub journal: Option<Arc<store::journal::Journal>>,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance")
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

/// Background tasks; `shutdown` flushes them in order.
pub struct GovernanceTasks {
    refresh: JoinHandle<()>,
    writer: JoinHandle<store::WriterStats>,
    audit: JoinHandle<()>,
    /// The journal's fsync / upkeep task.
    journal: Option<(Arc<store::journal::Journal>, JoinHandle<()>)>,
}

impl GovernanceTasks {
    /// Stop refreshing, then wait for the usage writer to drain (its channel
    /// closes when the last usage sender is dropped) and the audit log.
    pub async fn shutdown(self) -> store::WriterStats {
        self.refresh.abort();
        let _ = self.refresh.await;
        let stats = self.writer.await.unwrap_or_default();
        let _ = self.audit.await;
        if let Some((j, task)) = self.journal {
            // Every usage row is in the database (or the spool) now: the
            // journal's segments can go.
            task.abort();
            let _ = task.await;
            let _ = tokio::task::spawn_blocking(move || j.close()).await;
        }
        stats
    }
}

/// Errors starting governance.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot open the usage journal {0}: {1}")]
    Journal(String, std::io::Error),
}

/// Open the usage journal under `{data_dir}/journal/`, storing the rows a
/// previous process left there first (in the database, else the spool);
/// its segments are removed only once their rows are durable.
async fn replay_journal(
    store: &Store,
    cfg: &GovernanceConfig,
    spool: &std::path::Path,
    durable: Arc<store::journal::Durable>,
) -> Result<store::journal::Journal, StartError> {
    let jcfg = store::journal::JournalConfig {
        fsync_interval: cfg.journal_fsync_interval,
        ..store::journal::JournalConfig::in_dir(cfg.data_dir.join("journal"))
    };
    let dir = jcfg.dir.display().to_string();
    let (journal, left) =
        store::journal::Journal::open(jcfg, durable).map_err(|e| StartError::Journal(dir, e))?;
    if left.files.is_empty() {
        return Ok(journal);
    }
    let mut durable_rows = true;
    for chunk in left.rows.chunks(5 * store::USAGE_CHUNK) {
        if let Err(e) = store.insert_usage(chunk).await {
            tracing::warn!(error = %e, "usage journal replay: insert failed; spooling");
            let (p, rows) = (spool.to_owned(), chunk.to_vec());
            let spooled =
                tokio::task::spawn_blocking(move || store::writer_append_lines(&p, &rows)).await;
            if !matches!(spooled, Ok(Ok(()))) {
                durable_rows = false;
            }
        }
    }
    tracing::info!(
        rows = left.rows.len(),
        interrupted = left.interrupted,
        skipped_lines = left.skipped,
        segments = left.files.len(),
        "usage journal replayed"
    );
    if durable_rows {
        tokio::task::spawn_blocking(move || left.remove())
            .await
            .ok();
    } else {
        tracing::error!(
            "usage journal rows could not be stored; its segments are kept for the next start"
        );
    }
    Ok(journal)
}

impl Governance {
    /// Connect, load everything into memory, start the background tasks.
    /// Returns the usage-row sender for the usage writer.
    pub async fn start(
        cfg: GovernanceConfig,
    ) -> Result<(Arc<Governance>, mpsc::Sender<UsageRow>, GovernanceTasks), StartError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| StartError::DataDir(cfg.data_dir.display().to_string(), e))?;
        let store = Store::connect(&cfg.database_url).await?;
        let changes = store.changes_since(0).await?;
        let watermark = changes.watermark;
        let mut snap = Snapshot::default();
        let (budgets, _) = snap.apply(changes);
        let spool_path = cfg.data_dir.join("usage-spool.jsonl");
        let batch_size = 5 * store::USAGE_CHUNK;
        let durable = Arc::new(store::journal::Durable::default());
        // Rows a killed process left in its journal, and a spool it left,
        // go into the usage table before budgets are loaded from it: an
        // interrupted request is charged.
        let journal = if cfg.journal {
            Some(Arc::new(
                replay_journal(&store, &cfg, &spool_path, durable.clone()).await?,
            ))
        } else {
            None
        };
        let replayed = store::replay_spool(&store, &spool_path, batch_size).await;
        if replayed.replayed > 0 {
            tracing::info!(rows = replayed.replayed, "usage spool replayed at start");
        }
        let ledger = Ledger::default();
        let now = store::now_ms();
        for b in budgets {
            let (start, _) = period_bounds(&b, now);
            let (cost, tokens) = spent(&store, &snap, &b, start).await?;
            ledger.load(b, cost, tokens, now);
        }
        let (audit, audit_task) = AuditLog::start_with(
            Some(store.clone()),
            cfg.audit_file.clone(),
            cfg.security_events,
        );
        let (tx, rx) = mpsc::channel::<UsageRow>(65_536);
        let writer = tokio::spawn(store::run_usage_writer_acked(
            store.clone(),
            rx,
            WriterConfig {
                // A multiple of the INSERT chunk: a full batch is all cached statements.
                batch_size,
                flush_interval: Duration::from_millis(200),
                spool_path,
                replay_interval: Duration::from_secs(5),
            },
            durable,
        ));
        let journal_task = journal.clone().map(|j| {
            let task = tokio::spawn({
                let j = j.clone();
                async move {
                    let mut tick = tokio::time::interval(j.config().fsync_interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        let j = j.clone();
                        let _ = tokio::task::spawn_blocking(move || j.tick()).await;
                    }
                }
            });
            (j, task)
        });
        let gov = Arc::new(Governance {
            store,
            snapshot: RwLock::new(Arc::new(snap)),
            watermark: AtomicI64::new(watermark),
            limiters: Limiters::default(),
            ledger,
            audit,
            master: cfg.master_key.as_ref().map(|k| keys::digest(k.expose())),
            touched: Mutex::new(HashMap::new()),
            http: reqwest::Client::new(),
            rt: tokio::runtime::Handle::current(),
            journal,
            cfg,
        });
        let g = gov.clone();
        let refresh = tokio::spawn(async move {
            let mut tick = tokio::time::interval(g.cfg.refresh_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = g.refresh().await {
                    tracing::warn!(error = %e, "governance refresh failed; serving the last snapshot");
                }
            }
        });
        Ok((
            gov,
            tx,
            GovernanceTasks {
                refresh,
                writer,
                audit: audit_task,
                journal: journal_task,
            },
        ))
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Pull changes from the store into memory (and flush key last-use times).
    pub async fn refresh(&self) -> Result<(), store::StoreError> {
        let since = self.watermark.load(Ordering::Acquire);
        let changes = self.store.changes_since(since).await?;
        let wm = changes.watermark;
        if !changes.is_empty() {
            let mut snap = (*self.snapshot()).clone();
            let (budgets, removed) = snap.apply(changes);
            let now = store::now_ms();
            for b in budgets {
                let (start, _) = period_bounds(&b, now);
                let (cost, tokens) = if self.ledger.contains(&b.id) {
                    (0.0, 0)
                } else {
                    spent(&self.store, &snap, &b, start).await?
                };
                self.ledger.load(b, cost, tokens, now);
            }
            for id in removed {
                self.ledger.remove(&id);
            }
            if let Ok(mut s) = self.snapshot.write() {
                *s = Arc::new(snap);
            }
        }
        self.watermark.store(wm.max(since), Ordering::Release);
        let touched: Vec<(String, store::Millis)> = self
            .touched
            .lock()
            .map(|mut t| t.drain().collect())
            .unwrap_or_default();
        if !touched.is_empty() {
            self.store.touch_keys(&touched).await?;
        }
        Ok(())
    }

    /// Is this the master key?
    pub fn is_master(&self, key: &str) -> bool {
        self.master.is_some_and(|m| m == keys::digest(key))
    }

    /// Resolve a presented virtual key by its digest (`keys::digest`).
    /// `None`: not a virtual key at all.
    pub fn authenticate(
        &self,
        digest: &[u8; 32],
        ip: Option<std::net::IpAddr>,
    ) -> Option<Result<Principal, GatewayError>> {
        if self.master.as_ref() == Some(digest) {
            return Some(Ok(Principal::master()));
        }
        let snap = self.snapshot();
        let k = snap.keys_by_hash.get(digest)?;
        let now = store::now_ms();
        let deny = |status: u16, kind: ErrorKind, code: &'static str, msg: &str| {
            // A refused key can be replayed at line rate: aggregated.
            let key = store::SecurityKey {
                action: "auth.failure",
                reason: code,
                ip,
                actor: std::borrow::Cow::Owned(k.id.clone()),
                tenant_id: Some(k.tenant_id.clone()),
                target: None,
            };
            self.audit.security(key, || AuditEvent {
                id: store::new_id("aud_"),
                ts: now,
                actor: k.id.clone(),
                tenant_id: Some(k.tenant_id.clone()),
                action: "auth.failure".into(),
                target: None,
                ip: ip.map(|i| i.to_string()),
                outcome: "denied".into(),
                details: serde_json::json!({ "reason": code }),
            });
            Some(Err(GatewayError::new(
                status,
                ApiError::new(kind, msg).with_code(code),
            )))
        };
        if k.revoked_at.is_some() {
            return deny(
                401,
                ErrorKind::Authentication,
                "key_revoked",
                "This API key has been revoked.",
            );
        }
        if !k.enabled {
            return deny(
                401,
                ErrorKind::Authentication,
                "key_disabled",
                "This API key is disabled.",
            );
        }
        if k.expires_at.is_some_and(|e| e <= now) {
            return deny(
                401,
                ErrorKind::Authentication,
                "key_expired",
                "This API key has expired.",
            );
        }
        let Some(tenant) = snap.tenants.get(&k.tenant_id) else {
            return deny(
                401,
                ErrorKind::Authentication,
                "invalid_api_key",
                "This API key's organisation no longer exists.",
            );
        };
        if !tenant.status.can_call() {
            return deny(
                403,
                ErrorKind::PermissionDenied,
                "tenant_inactive",
                &format!(
                    "The organisation `{}` is {}; its keys cannot be used.",
                    tenant.name,
                    tenant.status.as_str()
                ),
            );
        }
        let mut role = k.role;
        if let Some(uid) = &k.user_id {
            match snap.users.get(uid) {
                // A key never exceeds its owner's role.
                Some(u) if !u.disabled => role = weaker(k.role, u.role),
                _ => {
                    return deny(
                        403,
                        ErrorKind::PermissionDenied,
                        "user_disabled",
                        "The user owning this API key is disabled.",
                    )
                }
            }
        }
        // A key is never broader than the keys it descends from: each of
        // them must still be usable (one rotated away is stood in for by
        // its successor, also in the lineage), and their model lists
        // narrow its own.
        let lineage = snap.lineage.get(&k.id);
        if let Some(l) = lineage {
            for id in l.ids.iter() {
                let Some(a) = snap.keys.get(id) else { continue };
                if a.rotated_to.is_none()
                    && (a.revoked_at.is_some()
                        || !a.enabled
                        || a.expires_at.is_some_and(|e| e <= now))
                {
                    return deny(
                        401,
                        ErrorKind::Authentication,
                        "key_creator_inactive",
                        "The key that created this API key is revoked, disabled or expired, so this key cannot be used either.",
                    );
                }
            }
        }
        let mut allowed = narrow(k.allowed_models.clone(), &tenant.allowed_models);
        if let Some(m) = lineage.and_then(|l| l.models.as_deref()) {
            allowed = narrow(allowed, m);
        }
        if let Ok(mut t) = self.touched.lock() {
            match t.get_mut(&k.id) {
                Some(at) => *at = now,
                None => {
                    t.insert(k.id.clone(), now);
                }
            }
        }
        Some(Ok(Principal {
            key_id: Some(k.id.clone()),
            tenant_id: Some(k.tenant_id.clone()),
            user_id: k.user_id.clone(),
            role,
            master: false,
            allowed_models: Arc::from(allowed),
            bound_by: lineage.map(|l| l.ids.clone()),
        }))
    }

    /// Rate limits and budgets for one request, before it is forwarded.
    /// `alias` is what the client asked for; `tokens` the worst-case token
    /// count and `cost` the worst-case cost of the request (over the
    /// deployments it may reach that have a price). `unpriced`: one it may
    /// reach has no known price; then a budget that limits cost refuses it
    /// (fails closed) unless `governance.unpriced: allow`; tokens-only
    /// budgets and limits still apply.
    pub fn admit(
        &self,
        p: &Principal,
        alias: &str,
        tokens: u64,
        cost: f64,
        unpriced: Option<&Unpriced>,
    ) -> Result<Admission, GatewayError> {
        self.admit_for(p, alias, &|m| m == alias, tokens, cost, unpriced)
    }

    /// [`Governance::admit`], where `limit_applies(model)` says whether a
    /// rate limit scoped to `model` applies to this request: the request's
    /// alias is `model`, or it may reach one of `model`'s deployments (a
    /// `provider/model` route to the same deployment must not escape it).
    pub fn admit_for(
        &self,
        p: &Principal,
        alias: &str,
        limit_applies: &dyn Fn(&str) -> bool,
        tokens: u64,
        cost: f64,
        unpriced: Option<&Unpriced>,
    ) -> Result<Admission, GatewayError> {
        let mut adm = Admission::default();
        if p.master || p.tenant_id.is_none() {
            return Ok(adm);
        }
        let snap = self.snapshot();
        let scopes = scopes_of(p);
        let now = tokio::time::Instant::now();
        let mut taken: Vec<(&str, u64)> = Vec::new();
        let mut req_hdr: Option<Decision> = None;
        let mut tok_hdr: Option<Decision> = None;
        let mut refused: Option<(Decision, &'static str, String)> = None;
        'outer: for (scope, id) in scopes.clone() {
            let Some(limits) = snap.limits_by_scope.get(scope, id) else {
                continue;
            };
            for Limit { rule: l, key: lk } in limits {
                if l.model.as_deref().is_some_and(|m| !limit_applies(m)) {
                    continue;
                }
                if let Some(rpm) = l.rpm.and_then(|v| u64::try_from(v).ok()) {
                    let d = self.limiters.take_request(lk, rpm, now);
                    if !d.allowed {
                        refused = Some((d, "requests", format!("{} {id}", scope.as_str())));
                        break 'outer;
                    }
                    taken.push((lk, rpm));
                    if req_hdr.is_none_or(|h| d.remaining < h.remaining) {
                        req_hdr = Some(d);
                    }
                }
                if let Some(tpm) = l.tpm.and_then(|v| u64::try_from(v).ok()) {
                    let d = self.limiters.reserve_tokens(lk, tpm, tokens, now);
                    if !d.allowed {
                        refused = Some((d, "tokens", format!("{} {id}", scope.as_str())));
                        break 'outer;
                    }
                    adm.tpm_holds.push((lk.clone(), tpm, tokens));
                    if tok_hdr.is_none_or(|h| d.remaining < h.remaining) {
                        tok_hdr = Some(d);
                    }
                }
            }
        }
        if let Some((d, what, who)) = refused {
            self.undo(&taken, &adm);
            let mut e = GatewayError::new(
                429,
                ApiError::new(ErrorKind::RateLimit, format!("Rate limit reached for {what} per minute on {who}: limit {}. Retry after {}s.", d.limit, d.reset.as_secs().max(1)))
                    .with_code("rate_limit_exceeded"),
            );
            e.headers.push((
                HeaderName::from_static("retry-after"),
                HeaderValue::from(d.reset.as_secs().max(1)),
            ));
            push_headers(&mut e.headers, req_hdr, tok_hdr);
            return Err(e);
        }
        let mut budget_ids: Vec<String> = Vec::new();
        for (scope, id) in scopes {
            if let Some(ids) = snap.budgets_by_scope.get(scope, id) {
                budget_ids.extend(ids.iter().cloned());
            }
        }
        if let Some(u) = unpriced.filter(|_| !self.cfg.unpriced_allow) {
            if let Some(b) = self.ledger.cost_budget(&budget_ids) {
                self.undo(&taken, &adm);
                return Err(u.refusal(&b));
            }
        }
        if !budget_ids.is_empty() {
            match self.ledger.reserve(
                &budget_ids,
                cost,
                i64::try_from(tokens).unwrap_or(i64::MAX),
                store::now_ms(),
            ) {
                Ok(r) => {
                    adm.holds = r.holds;
                    adm.downgrade_to = r
                        .downgrade
                        .and_then(|x| x.budget.downgrade_alias.clone())
                        .filter(|a| a != alias);
                    if adm.downgrade_to.is_some() && !self.cfg.unpriced_allow {
                        adm.cost_budget = self.ledger.cost_budget(&budget_ids);
                    }
                }
                Err(x) => {
                    self.undo(&taken, &adm);
                    let b = &x.budget;
                    let limit = match (b.max_cost, b.max_tokens) {
                        (Some(c), _) => format!("${c:.2}"),
                        (None, Some(t)) => format!("{t} tokens"),
                        _ => "its limit".into(),
                    };
                    let mut err = ApiError::new(
                        ErrorKind::RateLimit,
                        format!(
                            "Budget exhausted: the {} budget `{}` ({limit} per {}) has no room for this request (spent ${:.4}, {} tokens). Raise the budget or wait for the next period.",
                            b.scope.as_str(),
                            b.id,
                            b.period,
                            x.spent_cost,
                            x.spent_tokens
                        ),
                    )
                    .with_code("budget_exceeded");
                    err.provider_type = Some("insufficient_quota".into());
                    return Err(GatewayError::new(429, err));
                }
            }
        }
        push_headers(&mut adm.headers, req_hdr, tok_hdr);
        Ok(adm)
    }

    fn undo(&self, taken: &[(&str, u64)], adm: &Admission) {
        for (k, rpm) in taken {
            self.limiters.refund_request(k, *rpm);
        }
        for (k, tpm, t) in &adm.tpm_holds {
            self.limiters
                .settle_tokens(k, *tpm, i64::try_from(*t).unwrap_or(i64::MAX));
        }
    }

    /// Replace reservations with the real spend (exactly once per admission).
    pub fn settle(self: &Arc<Self>, adm: &Admission, tokens: u64, cost: f64) {
        if adm.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        let used = i64::try_from(tokens).unwrap_or(i64::MAX);
        for (k, tpm, reserved) in &adm.tpm_holds {
            let back = i64::try_from(*reserved).unwrap_or(i64::MAX) - used;
            self.limiters.settle_tokens(k, *tpm, back);
        }
        let crossings = self.ledger.settle(&adm.holds, cost, used);
        for c in crossings {
            let g = self.clone();
            self.rt.spawn(async move { g.alert(c).await });
        }
    }

    async fn alert(&self, c: Crossing) {
        match self
            .store
            .record_alert(&c.budget_id, c.period_start, c.threshold, store::now_ms())
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record budget alert");
                return;
            }
        }
        tracing::warn!(
            target: "switchyard::budget",
            budget = %c.budget_id, scope = %c.scope, scope_id = %c.scope_id,
            threshold = c.threshold, spent_cost = c.spent_cost, spent_tokens = c.spent_tokens,
            "budget alert threshold crossed"
        );
        let details = serde_json::json!({
            "budget_id": c.budget_id, "scope": c.scope, "scope_id": c.scope_id, "threshold": c.threshold,
            "spent_cost": c.spent_cost, "spent_tokens": c.spent_tokens, "period_start": c.period_start,
        });
        self.audit.record(AuditEvent {
            id: store::new_id("aud_"),
            ts: store::now_ms(),
            actor: "system".into(),
            tenant_id: (c.scope == "tenant").then(|| c.scope_id.clone()),
            action: "budget.alert".into(),
            target: Some(c.budget_id.clone()),
            ip: None,
            outcome: "success".into(),
            details: details.clone(),
        });
        if let Some(url) = &self.cfg.alert_webhook {
            let r = self
                .http
                .post(url)
                .json(&serde_json::json!({"type": "budget.alert", "data": details}))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "budget alert webhook failed");
            }
        }
    }
}

/// What counts against budget `b` since `start`: its scope's usage; for a
/// key budget, also the usage of every key it binds (keys created from it,
/// the key it was rotated from), which the ledger charges it live.
async fn spent(
    store: &Store,
    snap: &Snapshot,
    b: &store::Budget,
    start: store::Millis,
) -> Result<(f64, i64), store::StoreError> {
    match b.scope {
        Scope::Key => {
            store
                .spend_since_keys(&snap.bound_keys(&b.scope_id), start)
                .await
        }
        s => store.spend_since(s, &b.scope_id, start).await,
    }
}

/// The weaker of two roles (admin > billing/developer > viewer; billing and
/// developer are not ordered, so a mix yields viewer).
fn weaker(a: Role, b: Role) -> Role {
    use Role::*;
    match (a, b) {
        (x, y) if x == y => x,
        (Admin, y) | (y, Admin) => y,
        _ => Viewer,
    }
}

/// Model list `a` narrowed by `b` (each empty or holding `*` = all).
/// Disjoint lists allow nothing (an empty list would mean "all").
fn narrow(a: Vec<String>, b: &[String]) -> Vec<String> {
    let all = |l: &[String]| l.is_empty() || l.iter().any(|m| m == "*");
    if all(b) {
        return a;
    }
    if all(&a) {
        return b.to_vec();
    }
    let both: Vec<String> = a.into_iter().filter(|m| b.contains(m)).collect();
    if both.is_empty() {
        vec![String::from("\u{0}nothing")]
    } else {
        both
    }
}

/// The scopes whose rate limits and budgets apply to a caller: its tenant,
/// user and key, and the keys that bind it (`Principal::bound_by`).
fn scopes_of(p: &Principal) -> impl Iterator<Item = (Scope, &str)> + Clone {
    [
        (Scope::Tenant, p.tenant_id.as_deref()),
        (Scope::User, p.user_id.as_deref()),
        (Scope::Key, p.key_id.as_deref()),
    ]
    .into_iter()
    .filter_map(|(s, id)| Some((s, id?)))
    .chain(
        p.bound_by
            .iter()
            .flat_map(|l| l.iter().map(|id| (Scope::Key, id.as_str()))),
    )
}

/// OpenAI-style `x-ratelimit-*` headers.
fn push_headers(
    h: &mut Vec<(HeaderName, HeaderValue)>,
    req: Option<Decision>,
    tok: Option<Decision>,
) {
    // All values are written into one buffer and handed out as slices of
    // it: one allocation for the six headers instead of one (or two, with
    // a formatted `String`) per header.
    let mut buf = bytes::BytesMut::with_capacity(96);
    let mut ends = [0usize; 6];
    let mut n = 0;
    for d in [req, tok].iter().flatten() {
        let mut num = itoa::Buffer::new();
        buf.extend_from_slice(num.format(d.limit).as_bytes());
        ends[n] = buf.len();
        buf.extend_from_slice(num.format(d.remaining).as_bytes());
        ends[n + 1] = buf.len();
        write_reset(&mut buf, d.reset);
        ends[n + 2] = buf.len();
        n += 3;
    }
    let buf = buf.freeze();
    let names = [req, tok]
        .into_iter()
        .zip(RATE_HEADERS)
        .filter(|(d, _)| d.is_some())
        .flat_map(|(_, names)| names);
    h.reserve(n);
    let mut start = 0;
    for (name, &end) in names.zip(&ends[..n]) {
        // Digits, `.` and `s` only: always a valid header value.
        if let Ok(v) = HeaderValue::from_maybe_shared(buf.slice(start..end)) {
            h.push((name, v));
        }
        start = end;
    }
}

/// The `x-ratelimit-*` names, made at compile time (a name made per
/// request is validated byte by byte each time).
const RATE_HEADERS: [[HeaderName; 3]; 2] = [
    [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
];

/// Seconds with millisecond precision (`1.500s`), in integer arithmetic:
/// float formatting cost more than the rest of the limit check.
fn write_reset(buf: &mut bytes::BytesMut, d: Duration) {
    let ms = (d.as_nanos() + 500_000) / 1_000_000;
    let mut n = itoa::Buffer::new();
    buf.extend_from_slice(n.format(ms / 1000).as_bytes());
    let frac = (ms % 1000) as u16;
    buf.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
        b's',
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_lists_narrow_with_empty_and_star_meaning_all() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(narrow(v(&[]), &v(&[])), v(&[]));
        assert_eq!(narrow(v(&["a"]), &v(&[])), v(&["a"]));
        assert_eq!(narrow(v(&[]), &v(&["a"])), v(&["a"]));
        assert_eq!(narrow(v(&["*"]), &v(&["a"])), v(&["a"]));
        assert_eq!(narrow(v(&["a", "b"]), &v(&["b", "c"])), v(&["b"]));
        // Disjoint: nothing (not the empty list, which would mean all).
        assert_eq!(narrow(v(&["a"]), &v(&["b"])), v(&["\u{0}nothing"]));
    }

    #[test]
    fn lineage_follows_creators_and_rotation_and_binds_their_rules() {
        use crate::store::{ApiKey, Changes};
        let key = |id: &str, parent: Option<&str>, rotated: Option<&str>, models: &[&str]| ApiKey {
            id: id.into(),
            hash: format!("{:064x}", id.len() + id.as_bytes()[id.len() - 1] as usize),
            prefix: String::new(),
            name: None,
            tenant_id: "t".into(),
            user_id: None,
            role: Role::Developer,
            allowed_models: models.iter().map(|s| s.to_string()).collect(),
            metadata: serde_json::json!({}),
            expires_at: None,
            enabled: true,
            revoked_at: None,
            rotated_to: rotated.map(Into::into),
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
            parent_key_id: parent.map(Into::into),
            disabled_by: None,
        };
        let mut snap = Snapshot::default();
        snap.apply(Changes {
            keys: vec![
                key("k1", None, Some("k1b"), &["a", "b"]),
                key("k1b", None, None, &["a", "b"]),
                key("k2", Some("k1"), None, &["b", "c"]),
                key("k3", Some("k2"), None, &[]),
                key("free", None, None, &[]),
            ],
            ..Changes::default()
        });
        let l = snap.lineage.get("k3").unwrap();
        assert_eq!(&*l.ids, ["k2", "k1", "k1b"]);
        assert_eq!(l.models.as_deref(), Some(&["b".to_string()][..]));
        assert!(!snap.lineage.contains_key("free"));
        let mut bound = snap.bound_keys("k1b");
        bound.sort();
        assert_eq!(bound, ["k1", "k1b", "k2", "k3"]);
    }

    #[test]
    fn reset_headers_are_seconds_to_the_millisecond() {
        for (d, text) in [
            (Duration::from_millis(1500), "1.500s"),
            (Duration::from_micros(1_234_500), "1.235s"),
            (Duration::from_micros(2), "0.000s"),
            (Duration::from_secs(61), "61.000s"),
        ] {
            let mut b = bytes::BytesMut::new();
            write_reset(&mut b, d);
            assert_eq!(&b[..], text.as_bytes(), "{d:?}");
        }
        let d = Decision {
            allowed: true,
            limit: 60,
            remaining: 59,
            reset: Duration::from_secs(1),
        };
        let mut h = Vec::new();
        push_headers(&mut h, Some(d), None);
        let h: Vec<(&str, &str)> = h
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            h,
            [
                ("x-ratelimit-limit-requests", "60"),
                ("x-ratelimit-remaining-requests", "59"),
                ("x-ratelimit-reset-requests", "1.000s"),
            ]
        );
        let t = Decision {
            allowed: true,
            limit: 100_000,
            remaining: 0,
            reset: Duration::from_millis(59_999),
        };
        for (req, tok, want) in [
            (
                None,
                Some(t),
                vec![("tokens", "100000"), ("tokens", "0"), ("tokens", "59.999s")],
            ),
            (
                Some(d),
                Some(t),
                vec![
                    ("requests", "60"),
                    ("requests", "59"),
                    ("requests", "1.000s"),
                    ("tokens", "100000"),
                    ("tokens", "0"),
                    ("tokens", "59.999s"),
                ],
            ),
            (None, None, vec![]),
        ] {
            let mut h = Vec::new();
            push_headers(&mut h, req, tok);
            let got: Vec<(&str, &str)> = h
                .iter()
                .map(|(n, v)| (n.as_str().rsplit('-').next().unwrap(), v.to_str().unwrap()))
                .collect();
            assert_eq!(got, want);
            let kinds: Vec<&str> = h
                .iter()
                .map(|(n, _)| n.as_str().split('-').nth(2).unwrap())
                .collect();
            let expect: Vec<&str> = ["limit", "remaining", "reset"]
                .into_iter()
                .cycle()
                .take(want.len())
                .collect();
            assert_eq!(kinds, expect);
        }
    }
}
