//! Prometheus metrics, every name and label set in one place.
//!
//! Request metrics are fed by the usage writer task from the usage records
//! it already receives, so the request path does no metrics work at all.
//! Breaker states and provider health are read from the routing table at
//! scrape time. Labels are aliases, providers, deployments and status
//! classes — never keys, tenants or users (unbounded cardinality).
//!
//! Every label value comes from the config, never from what a caller sends:
//! a model name that is not a configured alias (a direct `provider/model`
//! route, a prefix route, an unknown name) is counted under
//! `alias="(direct)"` with its (configured) provider, so made-up names
//! cannot grow the families. Deployments, providers and PII entities are
//! configured names; status is a class; ingress a fixed word.
//!
//! Access ([`Endpoint`]): with `server.metrics_listen`, `/metrics` is served
//! only on that address (and 404 on the gateway port); with
//! `server.metrics_key`, it asks for that key wherever it is served. With
//! neither, the gateway port asks for a gateway key (`server.api_keys`) or
//! the master key, unless the gateway itself is open (no keys).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `switchyard_requests_total` | counter | alias, provider, ingress, status |
//! | `switchyard_request_duration_seconds` | histogram | alias, provider |
//! | `switchyard_time_to_first_token_seconds` | histogram | alias, provider |
//! | `switchyard_tokens_total` | counter | alias, provider, kind (`input`, `output`, `cached_input`) |
//! | `switchyard_cost_usd_total` | counter | alias, provider |
//! | `switchyard_upstream_attempts_total` | counter | alias, provider |
//! | `switchyard_usage_records_dropped_total` | counter | — |
//! | `switchyard_breaker_state` | gauge (0 closed, 1 half-open, 2 open) | deployment, provider |
//! | `switchyard_provider_healthy` | gauge (0/1) | provider |
//! | `switchyard_provider_keys_in_rotation` | gauge | provider |
//! | `switchyard_pii_findings_total` | counter | entity, action (`mask`, `block`) |
//! | `switchyard_pii_requests_total` | counter | outcome (`masked`, `blocked`) |
//! | `switchyard_cache_lookups_total` | counter | result (`hit`, `miss`) |
//! | `switchyard_cache_entries` / `switchyard_cache_bytes` | gauge | — |
//!
//! Cache hits are also in `switchyard_requests_total` with provider `cache`.

use crate::state::AppState;
use crate::usage::UsageRecord;
use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use switchyard_core::provider::Secret;
use switchyard_core::resilience::BreakerState;

/// The `alias` label of requests to names that are not configured aliases.
pub const DIRECT_ALIAS: &str = "(direct)";

/// Where `/metrics` is served and what it asks for.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// `server.metrics_listen`: serve `/metrics` on this address only.
    pub listen: Option<std::net::SocketAddr>,
    /// `server.metrics_key`: the bearer key a scraper must send.
    pub key: Option<Secret>,
}

/// Which listener a `/metrics` request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The gateway's own port.
    Gateway,
    /// `server.metrics_listen`.
    Separate,
}

/// `Ok(())` to serve; otherwise the status to answer with.
fn access(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    port: Port,
) -> Result<(), axum::http::StatusCode> {
    use axum::http::StatusCode;
    let ep = &state.metrics_endpoint;
    if port == Port::Gateway && ep.listen.is_some() {
        return Err(StatusCode::NOT_FOUND);
    }
    let presented = crate::http::presented_key(headers);
    let ok = match (&ep.key, port) {
        (Some(k), _) => {
            presented.is_some_and(|p| crate::state::digest(p) == crate::state::digest(k.expose()))
        }
        (None, Port::Separate) => true,
        (None, Port::Gateway) => {
            state.open
                || presented.is_some_and(|p| {
                    state.key_ok(p) || state.governance.as_ref().is_some_and(|g| g.is_master(p))
                })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

/// `GET /metrics` for one listener (see [`Endpoint`]).
pub fn router(state: Arc<AppState>, port: Port) -> axum::Router {
    use axum::response::IntoResponse;
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let state = state.clone();
            async move {
                if let Err(status) = access(&state, &headers, port) {
                    let msg = if status == axum::http::StatusCode::NOT_FOUND {
                        "Not found: /metrics is served on server.metrics_listen."
                    } else {
                        "/metrics needs a key: send `Authorization: Bearer <key>` with server.metrics_key, or a gateway key or the master key when no metrics key is set."
                    };
                    let body = serde_json::json!({"error": {
                        "message": msg,
                        "type": if status == axum::http::StatusCode::NOT_FOUND { "not_found_error" } else { "authentication_error" },
                    }});
                    return (status, axum::Json(body)).into_response();
                }
                let body = state.usage.metrics().render(&state);
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
                    .into_response()
            }
        }),
    )
}

/// Serve `/metrics` alone on `listener` (`server.metrics_listen`) until the
/// task is aborted.
pub async fn serve_separate(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
) -> std::io::Result<()> {
    axum::serve(listener, router(state, Port::Separate)).await
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReqLabels {
    alias: String,
    provider: String,
    ingress: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    alias: String,
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    alias: String,
    provider: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    deployment: String,
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PiiLabels {
    entity: String,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ])
}

/// The metric handles of one (alias, provider, ingress, status class):
/// looked up once, then reused, so observing a request allocates nothing
/// and hashes one short key instead of building eight label sets.
#[derive(Debug, Clone)]
struct Handles {
    requests: Counter,
    duration: Histogram,
    ttft: Histogram,
    /// input, output, cached_input.
    tokens: [Counter; 3],
    cost: Counter<f64, AtomicU64>,
    attempts: Counter,
}

/// Request metrics, updated off the hot path by the usage writer.
#[derive(Debug)]
pub struct Metrics {
    /// `alias \0 provider \0 ingress \0 status` → handles, plus the
    /// reusable key buffer. Only the usage writer observes, so the lock is
    /// never contended.
    handles: std::sync::Mutex<(String, std::collections::HashMap<String, Handles>)>,
    /// Configured alias names: the only `alias` label values besides
    /// [`DIRECT_ALIAS`] (set once by `AppState`; unset, every name folds).
    aliases: OnceLock<std::collections::HashSet<String>>,
    requests: Family<ReqLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    ttft: Family<RouteLabels, Histogram, fn() -> Histogram>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<RouteLabels, Counter<f64, AtomicU64>>,
    attempts: Family<RouteLabels, Counter>,
    dropped: Counter,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let requests = Family::<ReqLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let ttft = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        let cost = Family::<RouteLabels, Counter<f64, AtomicU64>>::default();
        let attempts = Family::<RouteLabels, Counter>::default();
        let dropped = Counter::default();
        registry.register(
            "requests",
            "Requests by model alias, provider, client API and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "End-to-end request latency",
            duration.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time to the first streamed bytes",
            ttft.clone(),
        );
        registry.register(
            "tokens",
            "Tokens by kind, as reported by providers",
            tokens.clone(),
        );
        registry.register(
            "cost_usd",
            "Spend in USD computed from usage and prices",
            cost.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Upstream attempts, retries and fallbacks included",
            attempts.clone(),
        );
        registry.register(
            "usage_records_dropped",
            "Usage records that could not be queued",
            dropped.clone(),
        );
        Metrics {
            handles: Default::default(),
            aliases: OnceLock::new(),
            requests,
            duration,
            ttft,
            tokens,
            cost,
            attempts,
            dropped,
            registry,
        }
    }

    /// The configured aliases: other names are labelled [`DIRECT_ALIAS`].
    /// Only the first call counts.
    pub fn set_aliases(&self, names: impl IntoIterator<Item = String>) {
        let _ = self.aliases.set(names.into_iter().collect());
    }

    /// The `alias` label for a record: configured names only.
    fn alias_label<'a>(&self, alias: &'a str) -> &'a str {
        match self.aliases.get() {
            Some(known) if known.contains(alias) => alias,
            _ => DIRECT_ALIAS,
        }
    }

    /// Account one finished request.
    pub fn observe(&self, r: &UsageRecord) {
        let status = match r.status {
            200..=299 => "2xx",
            499 => "499",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let Ok(mut guard) = self.handles.lock() else {
            return;
        };
        let (key, map) = &mut *guard;
        key.clear();
        let alias = self.alias_label(&r.alias);
        for part in [alias, &r.provider, r.ingress, status] {
            key.push_str(part);
            key.push('\0');
        }
        if !map.contains_key(key.as_str()) {
            let h = self.handles_for(alias, r, status);
            map.insert(key.clone(), h);
        }
        let Some(h) = map.get(key.as_str()) else {
            return;
        };
        h.requests.inc();
        h.duration.observe(r.latency.as_secs_f64());
        if let Some(t) = r.ttft {
            h.ttft.observe(t.as_secs_f64());
        }
        if let Some(u) = r.usage {
            for (c, n) in
                h.tokens
                    .iter()
                    .zip([u.input_tokens, u.output_tokens, u.cached_input_tokens])
            {
                if n > 0 {
                    c.inc_by(n);
                }
            }
        }
        if r.cost > 0.0 {
            h.cost.inc_by(r.cost);
        }
        h.attempts.inc_by(u64::from(r.attempts));
    }

    /// Create (or find) every family member for a label combination.
    fn handles_for(&self, alias: &str, r: &UsageRecord, status: &str) -> Handles {
        let route = RouteLabels {
            alias: alias.to_owned(),
            provider: r.provider.clone(),
        };
        let token = |kind: &'static str| {
            self.tokens
                .get_or_create(&TokenLabels {
                    alias: alias.to_owned(),
                    provider: r.provider.clone(),
                    kind,
                })
                .clone()
        };
        Handles {
            requests: self
                .requests
                .get_or_create(&ReqLabels {
                    alias: alias.to_owned(),
                    provider: r.provider.clone(),
                    ingress: r.ingress.to_owned(),
                    status: status.to_owned(),
                })
                .clone(),
            duration: self.duration.get_or_create(&route).clone(),
            ttft: self.ttft.get_or_create(&route).clone(),
            tokens: [token("input"), token("output"), token("cached_input")],
            cost: self.cost.get_or_create(&route).clone(),
            attempts: self.attempts.get_or_create(&route).clone(),
        }
    }

    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// The exposition text, with live gauges read from the routing table.
    pub fn render(&self, state: &AppState) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            return String::new();
        }
        // `encode` ends with `# EOF`; append the scrape-time gauges before it.
        if let Some(stripped) = out.strip_suffix("# EOF\n") {
            out.truncate(stripped.len());
        }
        let mut live = Registry::with_prefix("switchyard");
        let breaker = Family::<DeploymentLabels, Gauge>::default();
        let healthy = Family::<ProviderLabels, Gauge>::default();
        let keys = Family::<ProviderLabels, Gauge>::default();
        live.register(
            "breaker_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open",
            breaker.clone(),
        );
        live.register(
            "provider_healthy",
            "Active health-check verdict per provider (1 healthy)",
            healthy.clone(),
        );
        live.register(
            "provider_keys_in_rotation",
            "Provider API keys currently in rotation",
            keys.clone(),
        );
        for a in state.router.aliases() {
            for d in &a.deployments {
                let v = match d.breaker.state() {
                    BreakerState::Closed => 0,
                    BreakerState::HalfOpen => 1,
                    BreakerState::Open => 2,
                };
                breaker
                    .get_or_create(&DeploymentLabels {
                        deployment: d.id.clone(),
                        provider: d.provider.name.clone(),
                    })
                    .set(v);
            }
        }
        for p in state.router.providers() {
            let l = ProviderLabels {
                provider: p.name.clone(),
            };
            healthy.get_or_create(&l).set(i64::from(p.is_healthy()));
            keys.get_or_create(&l)
                .set(i64::try_from(p.keys_in_rotation()).unwrap_or(i64::MAX));
        }
        if let Some(g) = &state.pii {
            let found = Family::<PiiLabels, Counter>::default();
            let reqs = Family::<OutcomeLabels, Counter>::default();
            live.register(
                "pii_findings",
                "Personal-data matches in requests, by entity and action",
                found.clone(),
            );
            live.register(
                "pii_requests",
                "Requests masked or refused by guardrails.pii",
                reqs.clone(),
            );
            for (entity, action, n) in g.findings() {
                found
                    .get_or_create(&PiiLabels {
                        entity: entity.to_owned(),
                        action,
                    })
                    .inc_by(n);
            }
            for (outcome, c) in [
                ("masked", &g.requests_masked),
                ("blocked", &g.requests_blocked),
            ] {
                reqs.get_or_create(&OutcomeLabels { outcome })
                    .inc_by(c.load(std::sync::atomic::Ordering::Relaxed));
            }
        }
        if let Some(c) = &state.cache {
            let lookups = Family::<ResultLabels, Counter>::default();
            let entries = Gauge::<i64>::default();
            let bytes = Gauge::<i64>::default();
            live.register(
                "cache_lookups",
                "Response-cache lookups by result",
                lookups.clone(),
            );
            live.register("cache_entries", "Responses in the cache", entries.clone());
            live.register(
                "cache_bytes",
                "Bytes the cached responses weigh",
                bytes.clone(),
            );
            let (hits, misses, n, weight) = c.stats();
            lookups
                .get_or_create(&ResultLabels { result: "hit" })
                .inc_by(hits);
            lookups
                .get_or_create(&ResultLabels { result: "miss" })
                .inc_by(misses);
            entries.set(i64::try_from(n).unwrap_or(i64::MAX));
            bytes.set(i64::try_from(weight).unwrap_or(i64::MAX));
        }
        let mut tail = String::new();
        if encode(&mut tail, &live).is_ok() {
            out.push_str(&tail);
        } else {
            out.push_str("# EOF\n");
        }
        out
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;
