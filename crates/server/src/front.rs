//! The connection loop: accept, one hyper connection per socket, and a
//! dispatcher that serves the hot routes itself and everything else
//! through the axum router ([`crate::http::app`]).
//!
//! Hot routes are the ones every model call takes (`POST` chat
//! completions, messages, embeddings). For them the dispatcher runs the
//! same steps the router's middleware would (request id → gateway-key
//! auth → body within the limit → handler, a panic answered as a 500),
//! calling the same functions, without the router's per-request costs:
//! an extensions map for the peer address, the request id and the
//! principal, a boxed body, and a boxed future per middleware layer. What
//! a client sees is the same on both paths; `tests/errors.rs` and the SDK
//! suites drive both.

use crate::http::{self, RequestIds};
use crate::pipeline::{self, RequestCtx};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use bytes::Bytes;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::dialect::Dialect;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceExt;

/// Serve `router` (with the hot routes short-cut) on `listener` until
/// `shutdown` resolves; then stop accepting, let every connection finish
/// its in-flight requests and close, and return.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than
                    // spin (what axum's and hyper's servers do).
                    tracing::error!(error = %e, "accept failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let svc = Front {
            state: state.clone(),
            router: router.clone(),
            peer,
        };
        let conn = builder
            .serve_connection(TokioIo::new(tcp), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors that concern one connection, not the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// The routes every model call takes. [`crate::http::app`] registers the
/// same table, so a program serving the router directly gets them too.
#[derive(Debug, Clone, Copy)]
pub enum Hot {
    Chat,
    Messages,
    Embeddings,
}

/// `POST` paths of the hot routes.
pub const HOT_ROUTES: [(&str, Hot); 5] = [
    ("/v1/chat/completions", Hot::Chat),
    ("/chat/completions", Hot::Chat),
    ("/v1/messages", Hot::Messages),
    ("/v1/embeddings", Hot::Embeddings),
    ("/embeddings", Hot::Embeddings),
];

impl Hot {
    fn of(req: &Request<Incoming>) -> Option<Hot> {
        if req.method() != hyper::Method::POST {
            return None;
        }
        let path = req.uri().path();
        HOT_ROUTES
            .iter()
            .find_map(|(p, h)| (*p == path).then_some(*h))
    }

    /// The dialect the route's answers and errors are in.
    pub fn dialect(self) -> Dialect {
        match self {
            Hot::Messages => Dialect::Anthropic,
            Hot::Chat | Hot::Embeddings => Dialect::OpenAi,
        }
    }

    /// The handler, once the caller is known and the body read.
    pub(crate) async fn run(self, state: Arc<AppState>, body: Bytes, ctx: RequestCtx) -> Response {
        match self {
            Hot::Chat | Hot::Messages => pipeline::chat(state, self.dialect(), body, ctx).await,
            Hot::Embeddings => crate::embeddings::embeddings(state, body, ctx).await,
        }
    }
}

/// One connection's service.
#[derive(Clone)]
struct Front {
    state: Arc<AppState>,
    router: axum::Router,
    peer: SocketAddr,
}

type Fut = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Fut;

    fn call(&self, req: Request<Incoming>) -> Fut {
        match Hot::of(&req) {
            Some(hot) => Box::pin(
                // What the router's catch-panic layer does: a panic is a 500
                // in the API's error shape, and the connection lives on.
                std::panic::AssertUnwindSafe(hot_route(self.state.clone(), self.peer, hot, req))
                    .catch_unwind()
                    .map(|r| Ok(r.unwrap_or_else(http::panic_response))),
            ),
            None => {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(self.peer));
                Box::pin(self.router.clone().oneshot(req))
            }
        }
    }
}

/// A hot route: request id → auth → body → handler, as the router would.
async fn hot_route(
    state: Arc<AppState>,
    peer: SocketAddr,
    hot: Hot,
    req: Request<Incoming>,
) -> Response {
    let mut ids = RequestIds::new(req.headers());
    let started = Instant::now();
    let d = hot.dialect();
    let (parts, body) = req.into_parts();
    let principal =
        match http::authenticate(&state, &parts.headers, parts.uri.path(), Some(peer.ip())) {
            Ok(p) => p,
            Err(e) => {
                http::drain(body, state.max_body_size).await;
                return ids.stamp(e.render(d));
            }
        };
    let bytes = match http::read_json_body(&state, &parts.headers, body, d).await {
        Ok(b) => b,
        Err(r) => return ids.stamp(r),
    };
    let ctx = RequestCtx {
        // The response header was made from it already.
        request_id: std::mem::take(&mut ids.id),
        started,
        principal: Some(principal),
        cache: crate::cache::Directive::from_headers(&parts.headers),
    };
    ids.stamp(hot.run(state, bytes, ctx).await)
}
