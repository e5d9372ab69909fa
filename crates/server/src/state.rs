//! `AppState`: every handle a request needs, built once from a `Config`.
//! No globals: tests build as many independent states as they like.

use crate::config::{Config, HealthCheck, Reliability, Source};
use crate::governance::Governance;
use crate::routing::Router;
use crate::usage::UsageSink;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use switchyard_core::provider::{Provider, Secret};
use switchyard_core::resilience::RetryBudget;

/// Shared, immutable request context.
#[derive(Debug)]
pub struct AppState {
    pub router: Router,
    /// One pooled HTTP client per provider (its own connect timeout).
    pub clients: HashMap<String, reqwest::Client>,
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
}

/// Hash a key for storage and lookup.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl AppState {
    pub fn new(cfg: Config, usage: UsageSink) -> Result<Arc<AppState>, reqwest::Error> {
        Self::with_governance(cfg, usage, None)
    }

    pub fn with_governance(
        cfg: Config,
        usage: UsageSink,
        governance: Option<Arc<Governance>>,
    ) -> Result<Arc<AppState>, reqwest::Error> {
        let mut clients = HashMap::new();
        for p in &cfg.providers {
            let c = reqwest::Client::builder()
                .connect_timeout(p.timeouts.connect)
                .tcp_nodelay(true)
                .pool_idle_timeout(std::time::Duration::from_secs(90))
                .pool_max_idle_per_host(256)
                .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
                .build()?;
            clients.insert(p.name.clone(), c);
        }
        let key_digests: HashSet<[u8; 32]> = cfg
            .api_keys
            .iter()
            .map(|k: &Secret| digest(k.expose()))
            .collect();
        let open = key_digests.is_empty() && cfg.allow_unauthenticated;
        Ok(Arc::new(AppState {
            router: Router::new(cfg.aliases, cfg.providers, cfg.direct, cfg.infer_by_prefix),
            clients,
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
        }))
    }

    /// Is this a valid gateway key? Compares fixed-size digests, so the
    /// time taken does not depend on how much of a key matched.
    pub fn key_ok(&self, key: &str) -> bool {
        self.key_digests.contains(&digest(key))
    }
}
