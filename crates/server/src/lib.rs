//! # switchyard-server
//!
//! The Switchyard gateway: an OpenAI- and Anthropic-compatible HTTP API in
//! front of many LLM providers.
//!
//! ## Layout
//! - [`config`]: YAML config (two phases: raw → validated), env mode.
//! - [`routing`]: aliases → deployments.
//! - [`front`]: the connection loop; hot routes served without the router.
//! - [`http`]: routes and middleware (request id, auth, limits).
//! - [`limits`]: connection timeouts and caps (header, body, idle, count, bytes).
//! - [`pipeline`]: the chat request path (peek, route, translate or pass
//!   through, forward, stream relay, usage).
//! - [`embeddings`]: the embeddings request path.
//! - [`attempt`]: the retry / failover / fallback loop every request runs.
//! - [`codec`]: the single dispatch over wire dialects.
//! - [`peek`]: borrowed peeking and byte splicing for the fast path.
//! - [`governance`]: virtual keys, roles, rate limits, budgets at request time.
//! - [`metrics`]: Prometheus metrics (fed off the hot path) at `/metrics`.
//! - [`health`]: active provider health probes.
//! - [`upstream`]: the pooled upstream HTTP client (hyper + rustls).
//! - [`usage`]: usage records through a bounded channel.
//! - [`store`]: governance storage (SQLite or PostgreSQL via one code path),
//!   the usage batch writer with its spool, and the audit sink.
//! - [`demo`]: the keyless demo (built-in mock providers).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod attempt;
pub mod cache;
pub mod codec;
pub mod config;
pub mod demo;
pub mod embeddings;
pub mod error;
pub mod front;
pub mod governance;
pub mod guard;
pub mod health;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod peek;
pub mod pipeline;
pub mod routing;
pub mod state;
pub mod store;
pub mod trim;
pub mod upstream;
pub mod usage;

/// The hash map of the request path's lookups (aliases, clients, keys,
/// limits, budgets): foldhash, seeded per process, instead of std's SipHash,
/// which cost about a thousand instructions per governed request across
/// these maps (callgrind). None of them takes keys a client chooses as
/// insertions (client text is only looked up), so SipHash's defence against
/// crafted collisions buys nothing here.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serve the gateway on `listener` until `shutdown` resolves, then finish
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: Arc<state::AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = http::app(state.clone()).merge(metrics_router(state.clone()));
    front::serve(listener, state, app, shutdown).await
}

/// Serve on `state.workers` I/O threads, each running its own
/// current-thread runtime that accepts from (a duplicate of) `listener`
/// and hands each connection to the worker serving the fewest
/// ([`front::Spread`]).
///
/// Thread-per-core: a connection, the request tasks on it and the pooled
/// upstream connections it uses (see [`state::Clients`]) stay on one
/// thread, so a request costs no cross-thread wake-ups. Background work
/// (usage writer, governance refresh, health probes) stays on the caller's
/// runtime. Returns once every worker has drained after `shutdown`, or
/// with the first worker's error (which stops the others).
pub async fn serve_workers(
    listener: TcpListener,
    state: Arc<state::AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use futures::StreamExt;
    let std_listener = listener.into_std()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stopper = {
        let s = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = s.send(true);
        })
    };
    let mut done = futures::stream::FuturesUnordered::new();
    let mut result = Ok(());
    let lanes = front::Spread::lanes(state.workers);
    for (i, lane) in lanes.into_iter().enumerate() {
        let started = std_listener.try_clone().and_then(|l| {
            let st = state.clone();
            let mut stop = stop_rx.clone();
            let (tx, rx) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
            std::thread::Builder::new()
                .name(format!("switchyard-io-{i}"))
                .spawn(move || {
                    state::set_worker(i);
                    let r = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .and_then(|rt| {
                            rt.block_on(async move {
                                trim::spawn_on_worker(upstream::POOL_IDLE_TIMEOUT);
                                let l = TcpListener::from_std(l)?;
                                let app = http::app(st.clone()).merge(metrics_router(st.clone()));
                                front::serve_spread(l, st, app, Some(lane), async move {
                                    let _ = stop.wait_for(|s| *s).await;
                                })
                                .await
                            })
                        });
                    let _ = tx.send(r);
                })?;
            Ok(rx)
        });
        match started {
            Ok(rx) => done.push(rx),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(std_listener);
    if result.is_err() {
        let _ = stop_tx.send(true);
    }
    // A worker that fails stops the others: the gateway never keeps serving
    // on part of its threads without saying so.
    while let Some(r) = done.next().await {
        let r = r.unwrap_or_else(|_| Err(std::io::Error::other("an I/O worker thread panicked")));
        if let Err(e) = r {
            let _ = stop_tx.send(true);
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    stopper.abort();
    result
}

/// A gateway built from a config, with its background tasks.
pub struct Running {
    pub state: std::sync::Arc<state::AppState>,
    usage_writer: tokio::task::JoinHandle<()>,
    governance: Option<governance::GovernanceTasks>,
    _health: health::HealthTasks,
}

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("governance: {0}")]
    Governance(#[from] governance::StartError),
    #[error("cannot build the upstream HTTP clients: {0}")]
    Http(String),
}

/// Start governance (database, caches, writers), the usage pipeline and
/// health checks, and build the shared state.
pub async fn build(mut cfg: config::Config) -> Result<Running, BuildError> {
    let (gov, store_tx, gov_tasks) = match cfg.governance.take() {
        Some(g) => {
            let (gov, tx, tasks) = governance::Governance::start(g).await?;
            (Some(gov), Some(tx), Some(tasks))
        }
        None => (None, None, None),
    };
    let (usage, writer) = usage::UsageSink::with_store(store_tx);
    let usage_writer = tokio::spawn(writer);
    let state = state::AppState::with_governance(cfg, usage, gov).map_err(BuildError::Http)?;
    let health = health::spawn(&state);
    Ok(Running {
        state,
        usage_writer,
        governance: gov_tasks,
        _health: health,
    })
}

impl Running {
    /// Serve until `shutdown`, then drain: in-flight requests finish, every
    /// usage record is written (or spooled), the audit log is flushed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Running {
            state,
            usage_writer,
            governance,
            _health,
        } = self;
        // `server.metrics_listen`: /metrics alone on its own address.
        let metrics_task = match state.metrics_endpoint.listen {
            Some(addr) => {
                let l = TcpListener::bind(addr).await?;
                tracing::info!(%addr, "serving /metrics on its own listener");
                Some(tokio::spawn(metrics::serve_separate(l, state.clone())))
            }
            None => None,
        };
        let r = serve_workers(listener, state, shutdown).await;
        if let Some(t) = metrics_task {
            t.abort();
        }
        drop(_health);
        let _ = usage_writer.await;
        if let Some(g) = governance {
            let stats = g.shutdown().await;
            tracing::info!(
                written = stats.written,
                spooled = stats.spooled,
                replayed = stats.replayed,
                "usage writer drained"
            );
        }
        r
    }
}

/// `GET /metrics` (Prometheus text format) on the gateway port, outside
/// the auth layer; it checks its own key (see [`metrics::Endpoint`]).
fn metrics_router(state: std::sync::Arc<state::AppState>) -> axum::Router {
    metrics::router(state, metrics::Port::Gateway)
}
