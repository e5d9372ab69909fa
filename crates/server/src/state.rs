//! `AppState`: every handle a request needs, built once from a `Config`.
//! No globals: tests build as many independent states as they like.

use crate::config::{Config, HealthCheck, Reliability, Source};
use crate::governance::Governance;
use crate::routing::Router;
use crate::usage::UsageSink;
use crate::FastMap;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use switchyard_core::provider::{Provider, Secret};
use switchyard_core::resilience::RetryBudget;

/// Shared, immutable request context.
#[derive(Debug)]
pub struct AppState {
    pub router: Router,
    /// Pooled HTTP clients per provider (each with its own connect
    /// timeout), one set per I/O worker thread (see [`Clients`]).
    pub clients: Clients,
    /// I/O worker threads `Running::serve` starts (resolved: ≥ 1).
    pub workers: usize,
    /// SHA-256 digests of the accepted gateway keys.
    key_digests: HashSet<[u8; 32]>,
    /// No gateway key required.
    pub open: bool,
    pub usage: UsageSink,
    pub max_body_size: usize,
    pub source: Source,
    pub reliability: Reliability,
    /// Caps retries to a share of traffic across all requests.
    pub retry_budget: RetryBudget,
    /// Providers to probe actively (see `health.rs`).
    pub health_checks: Vec<(Arc<Provider>, HealthCheck)>,
    /// Tenants, virtual keys, limits, budgets (when enabled).
    pub governance: Option<Arc<Governance>>,
    /// `guardrails.pii` (when configured).
    pub pii: Option<crate::guard::PiiGuard>,
    /// The response cache (when configured).
    pub cache: Option<crate::cache::ResponseCache>,
    /// Where `/metrics` is served and the key it asks for.
    pub metrics_endpoint: crate::metrics::Endpoint,
    /// Client-connection timeouts and caps (`server.*`).
    pub front: crate::config::FrontConfig,
    /// Request-body bytes held by in-flight requests now (see
    /// [`crate::front::Buffered`]), capped by `front.max_buffered`.
    pub buffered: std::sync::atomic::AtomicUsize,
    /// Set on a shutdown signal: `/ready` fails from then on.
    pub draining: std::sync::atomic::AtomicBool,
    /// Client connections open now, capped by `front.max_connections`.
    pub connections: std::sync::atomic::AtomicUsize,
    /// Open connections per source address (entries only while > 0),
    /// capped by `front.max_connections_per_ip`.
    pub connections_per_ip: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// `0` (auto) → one worker per CPU.
pub fn resolve_workers(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

thread_local! {
    /// The I/O worker this thread is (set by `Running::serve`'s threads).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Mark the current thread as I/O worker `i` (its upstream connections then
/// come from slot `i` of every [`Clients`]).
pub fn set_worker(i: usize) {
    WORKER.with(|w| w.set(i));
}

/// Upstream HTTP clients, one set per I/O worker plus a shared set.
///
/// A pooled connection's driver task lives on the runtime that opened it;
/// a request on another worker's runtime would wake that task across
/// threads on every read and write. Giving each worker (a current-thread
/// runtime) its own pools keeps a request, its upstream connection and its
/// client connection on one thread. Threads that are not workers (health
/// probes, a caller's own runtime in tests and embedding) share the last set.
#[derive(Debug)]
pub struct Clients {
    /// `slots[worker][provider index]`.
    slots: Vec<Vec<crate::upstream::Client>>,
    index: FastMap<String, usize>,
}

impl Clients {
    fn new(providers: &[Arc<Provider>], workers: usize) -> Result<Clients, String> {
        let index = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        let mut slots = Vec::with_capacity(workers + 1);
        for _ in 0..=workers {
            let mut set = Vec::with_capacity(providers.len());
            for p in providers {
                set.push(crate::upstream::Client::new(
                    &p.base_url,
                    p.timeouts.connect,
                )?);
            }
            slots.push(set);
        }
        Ok(Clients { slots, index })
    }

    /// The calling thread's client for provider `name`.
    pub fn get(&self, name: &str) -> Option<&crate::upstream::Client> {
        let i = *self.index.get(name)?;
        let shared = self.slots.len() - 1;
        let slot = WORKER.with(std::cell::Cell::get).min(shared);
        self.slots.get(slot)?.get(i)
    }
}

/// Hash a key for storage and lookup.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl AppState {
    pub fn new(cfg: Config, usage: UsageSink) -> Result<Arc<AppState>, String> {
        Self::with_governance(cfg, usage, None)
    }

    pub fn with_governance(
        cfg: Config,
        usage: UsageSink,
        governance: Option<Arc<Governance>>,
    ) -> Result<Arc<AppState>, String> {
        let workers = resolve_workers(cfg.workers);
        let clients = Clients::new(&cfg.providers, workers)?;
        let key_digests: HashSet<[u8; 32]> = cfg
            .api_keys
            .iter()
            .map(|k: &Secret| digest(k.expose()))
            .collect();
        let open = key_digests.is_empty() && cfg.allow_unauthenticated;
        // Metric labels name configured aliases only.
        usage
            .metrics()
            .set_aliases(cfg.aliases.iter().map(|a| a.name.clone()));
        Ok(Arc::new(AppState {
            router: Router::new(cfg.aliases, cfg.providers, cfg.direct, cfg.infer_by_prefix),
            clients,
            workers,
            key_digests,
            open,
            usage,
            max_body_size: cfg.max_body_size,
            source: cfg.source,
            retry_budget: RetryBudget::new(
                cfg.reliability.budget_window,
                cfg.reliability.budget_min_per_second,
                cfg.reliability.budget_ratio,
            ),
            reliability: cfg.reliability,
            health_checks: cfg.health_checks,
            governance,
            pii: cfg.pii.map(crate::guard::PiiGuard::new),
            cache: cfg.cache.as_ref().map(crate::cache::ResponseCache::new),
            metrics_endpoint: cfg.metrics_endpoint,
            front: cfg.front,
            buffered: std::sync::atomic::AtomicUsize::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            connections: std::sync::atomic::AtomicUsize::new(0),
            connections_per_ip: Default::default(),
        }))
    }

    /// Is this a valid gateway key? Compares fixed-size digests, so the
    /// time taken does not depend on how much of a key matched.
    pub fn key_ok(&self, key: &str) -> bool {
        self.key_digest_ok(&digest(key))
    }

    /// [`AppState::key_ok`] for an already computed digest.
    pub fn key_digest_ok(&self, d: &[u8; 32]) -> bool {
        self.key_digests.contains(d)
    }
}
