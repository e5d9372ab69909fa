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
use crate::limits::{Buffered, TimedBody};
use crate::pipeline::{self, RequestCtx};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use bytes::Bytes;
use futures::FutureExt;
use hyper::body::{Body as _, Incoming};
use hyper::header::HeaderValue;
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
    slot: crate::limits::Slot,
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
///
/// Every connection is held to `server.*`'s limits (see [`crate::limits`]):
/// past `max_connections` a new one is answered 503 and closed; a request
/// head must arrive within `header_timeout` of its first byte, an idle
/// keep-alive connection is closed after `idle_timeout`, and a body must
/// arrive within `body_timeout`. On `shutdown`, `/ready` fails at once; the
/// listener stays open for `shutdown_delay`, then closes, in-flight
/// requests get `shutdown_grace` to finish, and what is left is cut.
pub async fn serve_spread(
    listener: TcpListener,
    state: Arc<AppState>,
    router: axum::Router,
    mut lane: Option<Lane>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut conns = Conns {
        graceful: hyper_util::server::graceful::GracefulShutdown::new(),
        builder: hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()),
        tasks: tokio::task::JoinSet::new(),
        state: state.clone(),
        router,
    };
    // A handed-over connection, registered with this worker's reactor.
    let adopt =
        |conns: &mut Conns, h: Handoff, lane: &Lane| match tokio::net::TcpStream::from_std(h.tcp) {
            Ok(tcp) => conns.serve_one(
                tcp,
                h.peer,
                h.slot,
                Active(Some((lane.spread.clone(), lane.me))),
            ),
            Err(e) => {
                lane.spread.active[lane.me].fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not take over a connection");
            }
        };
    let front = state.front;
    let st = state.clone();
    let shutdown = async move {
        shutdown.await;
        st.draining.store(true, Ordering::Relaxed);
        if !front.shutdown_delay.is_zero() {
            tokio::time::sleep(front.shutdown_delay).await;
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
                    adopt(&mut conns, h, l);
                }
                continue;
            }
            () = &mut shutdown => break,
        };
        // Finished connections' entries, a few at a time.
        while conns.tasks.try_join_next().is_some() {}
        let Some(slot) = crate::limits::Slot::take(&state, peer.ip()) else {
            // Past `server.max_connections` (or this address's share): say
            // so, and close.
            let _ = tcp.try_write(&crate::limits::refused());
            tracing::debug!(%peer, "connection refused: server.max_connections(_per_ip) reached");
            continue;
        };
        let Some(l) = lane.as_ref() else {
            conns.serve_one(tcp, peer, slot, Active(None));
            continue;
        };
        let to = l.spread.pick(l.me);
        l.spread.active[to].fetch_add(1, Ordering::Relaxed);
        if to != l.me {
            match tcp.into_std() {
                Ok(tcp) => match l.spread.inboxes[to].send(Handoff { tcp, peer, slot }) {
                    Ok(()) => continue,
                    // That worker has stopped: serve it here.
                    Err(mpsc::error::SendError(h)) => {
                        l.spread.active[to].fetch_sub(1, Ordering::Relaxed);
                        l.spread.active[l.me].fetch_add(1, Ordering::Relaxed);
                        adopt(&mut conns, h, l);
                    }
                },
                Err(e) => {
                    l.spread.active[to].fetch_sub(1, Ordering::Relaxed);
                    tracing::trace!(error = %e, "connection lost before hand-over");
                }
            }
            continue;
        }
        conns.serve_one(tcp, peer, slot, Active(Some((l.spread.clone(), l.me))));
    }
    drop(listener);
    // Connections already handed to this worker are served like the rest;
    // closing the inbox first makes a late hand-over fail, and its sender
    // then serves that connection itself.
    if let Some(l) = lane.as_mut() {
        l.inbox.close();
        while let Ok(h) = l.inbox.try_recv() {
            adopt(&mut conns, h, l);
        }
    }
    let Conns {
        graceful,
        mut tasks,
        ..
    } = conns;
    // Idle connections close now; the others after their current request.
    if tokio::time::timeout(front.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            grace = ?front.shutdown_grace,
            "shutdown grace period over: closing the connections still open"
        );
    }
    // Dropping a connection's task drops its requests, whose usage guards
    // record what they had used.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// One worker's connections and what it serves them with.
struct Conns {
    graceful: hyper_util::server::graceful::GracefulShutdown,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    tasks: tokio::task::JoinSet<()>,
    state: Arc<AppState>,
    router: axum::Router,
}

impl Conns {
    fn serve_one(
        &mut self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        slot: crate::limits::Slot,
        active: Active,
    ) {
        let _ = tcp.set_nodelay(true);
        // The header and idle timeouts: hyper's header-read timer, per
        // connection (see `limits::HeadTimer`).
        let clock = crate::limits::HeadClock::new();
        let timer = crate::limits::HeadTimer::new(clock.clone(), &self.state.front);
        let mut builder = self.builder.clone();
        builder
            .http1()
            .timer(timer.clone())
            .header_read_timeout(self.state.front.idle_timeout);
        let io = TokioIo::new(crate::limits::Clocked::new(tcp, clock.clone()));
        let svc = Front {
            state: self.state.clone(),
            router: self.router.clone(),
            peer,
            clock,
        };
        let conn = builder.serve_connection(io, svc).into_owned();
        let conn = crate::limits::FirstHead::new(self.graceful.watch(conn), &timer);
        self.tasks.spawn(async move {
            let _active = active;
            let _slot = slot;
            match conn.await {
                Some(Err(e)) => tracing::trace!(error = %e, "connection ended with an error"),
                None => tracing::trace!("connection closed: no request head in time"),
                Some(Ok(())) => {}
            }
        });
    }
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
    fn of<B>(req: &Request<B>) -> Option<Hot> {
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
    clock: Arc<crate::limits::HeadClock>,
}

type Fut = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Fut;

    fn call(&self, req: Request<Incoming>) -> Fut {
        self.clock.start();
        let front = &self.state.front;
        let req = req.map(|b| TimedBody::new(b, front.body_timeout));
        // A declared body past the limit is answered at once, unread.
        if req.body().size_hint().lower() > self.state.max_body_size as u64 {
            let ids = RequestIds::new(req.headers());
            let d = http::dialect_for(req.uri().path());
            let mut resp = http::too_large(&self.state, d);
            resp.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            return Box::pin(std::future::ready(Ok(ids.stamp(resp))));
        }
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
    req: Request<TimedBody<Incoming>>,
) -> Response {
    let mut ids = RequestIds::new(req.headers());
    let started = Instant::now();
    let d = hot.dialect();
    let (parts, body) = req.into_parts();
    let principal =
        match http::authenticate(&state, &parts.headers, parts.uri.path(), Some(peer.ip())) {
            Ok(p) => p,
            Err(e) => {
                // Answered before the body is read.
                crate::limits::discard(body, &parts.headers);
                return ids.stamp(e.render(d));
            }
        };
    // The body counts against `server.max_buffered` from its declared
    // length (before it is read) to the end of the request.
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    let Some(mut held) = Buffered::take(&state, declared) else {
        crate::limits::discard(body, &parts.headers);
        return ids.stamp(http::overloaded(&state, d));
    };
    let bytes = match http::read_json_body(&state, &parts.headers, body, d).await {
        Ok(b) => b,
        Err(r) => return ids.stamp(r),
    };
    if !held.grow_to(bytes.len()) {
        return ids.stamp(http::overloaded(&state, d));
    }
    let ctx = RequestCtx {
        // The response header was made from it already.
        request_id: std::mem::take(&mut ids.id),
        started,
        principal: Some(principal),
        cache: crate::cache::Directive::from_headers(&parts.headers),
    };
    let resp = hot.run(state.clone(), bytes, ctx).await;
    drop(held);
    ids.stamp(resp)
}
