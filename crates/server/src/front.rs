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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::dialect::Dialect;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
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
    serve_spread(listener, state, router, None, shutdown).await
}

/// Connections spread over the I/O workers, least busy first.
///
/// Every worker accepts from the same listening socket, and whichever wakes
/// first takes the connection: a client opening its pool in one burst (a
/// load balancer, an SDK with keep-alive, `wrk -c32`) could land every
/// connection on one thread and leave the other cores idle for the
/// connections' lifetime. So the worker that accepts a connection hands it
/// to the worker serving the fewest connections (itself on a tie), through
/// that worker's inbox. That costs a cross-thread wake-up once per
/// connection, never per request.
pub struct Spread {
    active: Box<[AtomicUsize]>,
    inboxes: Box<[mpsc::UnboundedSender<Handoff>]>,
}

/// A connection handed to another worker.
pub struct Handoff {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
}

/// One worker's part of a [`Spread`].
pub struct Lane {
    spread: Arc<Spread>,
    me: usize,
    inbox: mpsc::UnboundedReceiver<Handoff>,
}

impl Lane {
    /// The spread this lane belongs to.
    pub fn spread(&self) -> Arc<Spread> {
        self.spread.clone()
    }
}

impl Spread {
    /// A spread over `n` workers, and each worker's lane.
    pub fn lanes(n: usize) -> Vec<Lane> {
        let (inboxes, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let spread = Arc::new(Spread {
            active: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            inboxes: inboxes.into(),
        });
        rxs.into_iter()
            .enumerate()
            .map(|(me, inbox)| Lane {
                spread: spread.clone(),
                me,
                inbox,
            })
            .collect()
    }

    /// The worker with the fewest connections, `me` on a tie.
    fn pick(&self, me: usize) -> usize {
        let load = |i: usize| self.active[i].load(Ordering::Relaxed);
        (0..self.active.len()).fold(me, |best, i| if load(i) < load(best) { i } else { best })
    }

    /// Connections each worker is serving now.
    pub fn active(&self) -> Vec<usize> {
        self.active
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }
}

/// Counts a connection on its worker while it lives.
struct Active(Option<(Arc<Spread>, usize)>);

impl Drop for Active {
    fn drop(&mut self) {
        if let Some((s, i)) = &self.0 {
            s.active[*i].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// [`serve`], one of several workers sharing `listener` when `lane` is
/// given (see [`Spread`]).
pub async fn serve_spread(
    listener: TcpListener,
    state: Arc<AppState>,
    router: axum::Router,
    mut lane: Option<Lane>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let serve_one = |tcp: tokio::net::TcpStream, peer: SocketAddr, active: Active| {
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
            let _active = active;
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    };
    // A handed-over connection, registered with this worker's reactor.
    let adopt = |h: Handoff, lane: &Lane| match tokio::net::TcpStream::from_std(h.tcp) {
        Ok(tcp) => serve_one(tcp, h.peer, Active(Some((lane.spread.clone(), lane.me)))),
        Err(e) => {
            lane.spread.active[lane.me].fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "could not take over a connection");
        }
    };
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
            Some(h) = async {
                match lane.as_mut() {
                    Some(l) => l.inbox.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(l) = lane.as_ref() {
                    adopt(h, l);
                }
                continue;
            }
            () = &mut shutdown => break,
        };
        let Some(l) = lane.as_ref() else {
            serve_one(tcp, peer, Active(None));
            continue;
        };
        let to = l.spread.pick(l.me);
        l.spread.active[to].fetch_add(1, Ordering::Relaxed);
        if to != l.me {
            match tcp.into_std() {
                Ok(tcp) => match l.spread.inboxes[to].send(Handoff { tcp, peer }) {
                    Ok(()) => continue,
                    // That worker has stopped: serve it here.
                    Err(mpsc::error::SendError(h)) => {
                        l.spread.active[to].fetch_sub(1, Ordering::Relaxed);
                        l.spread.active[l.me].fetch_add(1, Ordering::Relaxed);
                        adopt(h, l);
                    }
                },
                Err(e) => {
                    l.spread.active[to].fetch_sub(1, Ordering::Relaxed);
                    tracing::trace!(error = %e, "connection lost before hand-over");
                }
            }
            continue;
        }
        serve_one(tcp, peer, Active(Some((l.spread.clone(), l.me))));
    }
    drop(listener);
    // Connections already handed to this worker are served like the rest;
    // closing the inbox first makes a late hand-over fail, and its sender
    // then serves that connection itself.
    if let Some(l) = lane.as_mut() {
        l.inbox.close();
        while let Ok(h) = l.inbox.try_recv() {
            adopt(h, l);
        }
    }
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
