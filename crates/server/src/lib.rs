//! # switchyard-server
//!
//! The Switchyard gateway: an OpenAI- and Anthropic-compatible HTTP API in
//! front of many LLM providers.
//!
//! ## Layout
//! - [`config`]: YAML config (two phases: raw → validated), env mode.
//! - [`routing`]: aliases → deployments.
//! - [`http`]: routes and middleware (request id, auth, limits).
//! - [`pipeline`]: the chat request path (peek, route, translate or pass
//!   through, forward, stream relay, usage).
//! - [`embeddings`]: the embeddings request path.
//! - [`attempt`]: the retry / failover / fallback loop every request runs.
//! - [`codec`]: the single dispatch over wire dialects.
//! - [`peek`]: borrowed peeking and byte splicing for the fast path.
//! - [`health`]: active provider health probes.
//! - [`usage`]: usage records through a bounded channel.
//! - [`store`]: governance storage (SQLite or PostgreSQL via one code path),
//!   the usage batch writer with its spool, and the audit sink.
//! - [`demo`]: the keyless demo (built-in mock providers).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod attempt;
pub mod codec;
pub mod config;
pub mod demo;
pub mod embeddings;
pub mod error;
pub mod health;
pub mod http;
pub mod peek;
pub mod pipeline;
pub mod routing;
pub mod state;
pub mod store;
pub mod usage;

use axum::serve::ListenerExt;
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
    let app = http::app(state);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
