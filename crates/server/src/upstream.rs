//! The upstream HTTP client: hyper connections over rustls in a pool of our
//! own, nothing between it and the request path.
//!
//! A general-purpose client (reqwest) parses and re-serialises the URL
//! several times per request (into a `Url`, back into a `Uri`, and again in
//! its redirect layer) and stacks redirect and retry services a gateway
//! does not want: a provider's redirect must not be followed with the
//! caller's key, and retries are the attempt loop's business. Here a
//! request is a prepared `Uri` (cached per deployment), the provider's
//! prepared headers and the body bytes.
//!
//! - HTTP/1.1 and HTTP/2 (ALPN), keep-alive pools (per provider, per I/O
//!   worker: see `state::Clients`), `TCP_NODELAY`, connect timeout.
//!   hyper-util's pool cost ~11k instructions per request (a SipHash of the
//!   origin key three times, a checkout future, a task spawned per HTTP/1
//!   request to wait for the connection to go idle); see [`Client`].
//! - TLS: rustls (ring) with the Mozilla roots from `webpki-roots`.
//! - Proxies: `HTTPS_PROXY` / `ALL_PROXY` (with `user:pass@` basic auth)
//!   and `NO_PROXY` apply to `https://` providers through an HTTP `CONNECT`
//!   tunnel. Plain `http://` providers (local servers) are reached directly.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body: the whole payload, already in memory.
pub type Body = Full<Bytes>;

/// A pooled client for one provider.
///
/// The pool is ours, not hyper-util's: a request looks its origin up by a
/// byte comparison of scheme and authority among the provider's few
/// origins, takes the most recently returned idle HTTP/1 connection (or
/// the origin's shared HTTP/2 connection), and gives an HTTP/1 connection
/// back when the caller has read its response body to the end (see
/// [`ResponseBody`]): no hashing, no checkout future, no task spawned per
/// request to wait for the connection to become idle.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: hyper_rustls::HttpsConnector<Direct>,
    idle_timeout: Duration,
    origins: Mutex<Vec<Origin>>,
}

/// One (scheme, authority) the provider's URLs point at.
#[derive(Debug)]
struct Origin {
    https: bool,
    authority: http::uri::Authority,
    /// The `Host` header an HTTP/1 request to it carries.
    host: http::HeaderValue,
    /// Idle HTTP/1 connections, oldest first (taken from the back).
    idle: VecDeque<Idle>,
    /// The shared HTTP/2 connection, when the origin negotiated one by ALPN.
    h2: Option<(http2::SendRequest<Body>, Instant)>,
    /// A reaper task is watching this origin's idle connections.
    reaping: bool,
}

#[derive(Debug)]
struct Idle {
    tx: http1::SendRequest<Body>,
    since: Instant,
}

/// At most this many idle HTTP/1 connections are kept per origin.
const MAX_IDLE_PER_ORIGIN: usize = 256;

/// Why an upstream request failed before a response.
#[derive(Debug)]
pub enum SendError {
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// Anything else (refused, reset, TLS, proxy …), with its cause chain.
    Failed(String),
}

enum Handshaken {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Client {
    /// A client for a provider at `base` (its base URL, to decide on a
    /// proxy), with this connect timeout.
    pub fn new(base: &str, connect_timeout: Duration) -> Result<Client, String> {
        Client::with_tls(base, connect_timeout, tls_config()?, POOL_IDLE_TIMEOUT)
    }

    fn with_tls(
        base: &str,
        connect_timeout: Duration,
        tls: rustls::ClientConfig,
        idle_timeout: Duration,
    ) -> Result<Client, String> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let direct = match base.parse::<Uri>().ok().and_then(|u| proxy_for(&u)) {
            Some((proxy, auth)) => {
                let mut t = Tunnel::new(proxy, http);
                if let Some(a) = auth {
                    t = t.with_auth(a);
                }
                Direct::Tunnel(t)
            }
            None => Direct::Plain(http),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(direct);
        Ok(Client {
            inner: Arc::new(Inner {
                connector,
                idle_timeout,
                origins: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Send a request (its URI absolute); resolves at the response head.
    ///
    /// A request that a pooled connection hands back unsent (hyper saw it
    /// close before writing) goes out again on another connection. One
    /// that was written and then met a hang-up is not sent again: the
    /// upstream may have read it, and a second model call costs money (the
    /// attempt loop's retry policy decides); nor is one that a fresh
    /// connection fails.
    pub async fn send(
        &self,
        mut req: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, SendError> {
        let uri = req.uri().clone();
        let (at, host) = self.inner.origin(&uri)?;
        loop {
            let (conn, reused) = match self.inner.checkout(at) {
                Some(c) => (c, true),
                // Boxed: a connect (TCP, proxy, TLS, handshake) is a large
                // state machine, and inline it would be part of the future
                // of every request, pooled or not (moved and copied whole).
                None => (Box::pin(self.connect(&uri, at)).await?, false),
            };
            let sent = match conn {
                Handshaken::H2(mut tx) => tx.try_send_request(req).await.map(|r| (r, None)),
                Handshaken::H1(mut tx) => {
                    to_origin_form(&mut req, &host);
                    tx.try_send_request(req).await.map(|r| (r, Some(tx)))
                }
            };
            match sent {
                Ok((resp, back)) => {
                    return Ok(resp.map(|inner| ResponseBody {
                        inner,
                        back: back.map(|tx| Checkin {
                            pool: Arc::clone(&self.inner),
                            at,
                            tx,
                        }),
                    }))
                }
                Err(mut e) => match e.take_message() {
                    Some(mut unsent) if reused => {
                        *unsent.uri_mut() = uri.clone();
                        req = unsent;
                    }
                    _ => return Err(SendError::Failed(error_chain(&e.into_error()))),
                },
            }
        }
    }

    /// Open a connection to origin `at` (TCP, proxy tunnel, TLS with ALPN)
    /// and start its driver task on this runtime.
    async fn connect(&self, uri: &Uri, at: usize) -> Result<Handshaken, SendError> {
        use hyper_util::client::legacy::connect::Connection as _;
        use tower::{Service as _, ServiceExt as _};
        let mut c = self.inner.connector.clone();
        let io = match c.ready().await {
            Ok(c) => c.call(uri.clone()).await,
            Err(e) => Err(e),
        }
        .map_err(|e| {
            if is_connect_timeout(&*e) {
                SendError::ConnectTimeout
            } else {
                SendError::Failed(error_chain(&*e))
            }
        })?;
        let failed = |e: hyper::Error| SendError::Failed(error_chain(&e));
        if io.connected().is_negotiated_h2() {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
            });
            self.inner.share_h2(at, &tx);
            Ok(Handshaken::H2(tx))
        } else {
            let (tx, conn) = http1::handshake(io).await.map_err(failed)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            Ok(Handshaken::H1(tx))
        }
    }

    /// Idle HTTP/1 connections and whether an HTTP/2 one is shared, for
    /// origin `uri` (tests).
    #[cfg(test)]
    fn pooled(&self, uri: &str) -> (usize, bool) {
        let uri: Uri = uri.parse().expect("test URI");
        let Ok((at, _)) = self.inner.origin(&uri) else {
            return (0, false);
        };
        let origins = self.inner.lock();
        (origins[at].idle.len(), origins[at].h2.is_some())
    }
}

/// How long an idle pooled upstream connection is kept for reuse. The pool
/// checks once per this interval, and never hands out one idle longer.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Origin>> {
        // The pool's state is consistent at every step, so a panic
        // elsewhere while it was held does not make it unusable.
        self.origins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index of `uri`'s origin (added on first sight) and its `Host`
    /// header.
    fn origin(&self, uri: &Uri) -> Result<(usize, http::HeaderValue), SendError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(SendError::Failed(format!("not an http(s) URL: {uri}"))),
        };
        let Some(authority) = uri.authority() else {
            return Err(SendError::Failed(format!("URL has no host: {uri}")));
        };
        let mut origins = self.lock();
        if let Some(i) = origins
            .iter()
            .position(|o| o.https == https && o.authority.as_str() == authority.as_str())
        {
            return Ok((i, origins[i].host.clone()));
        }
        let default_port = if https { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(p) if p != default_port => format!("{}:{p}", authority.host()),
            _ => authority.host().to_owned(),
        };
        let host = http::HeaderValue::from_str(&host)
            .map_err(|_| SendError::Failed(format!("URL has an invalid host: {uri}")))?;
        origins.push(Origin {
            https,
            authority: authority.clone(),
            host: host.clone(),
            idle: VecDeque::new(),
            h2: None,
            reaping: false,
        });
        Ok((origins.len() - 1, host))
    }

    /// A connection to origin `at` that is still open: the shared HTTP/2
    /// one, else the most recently returned idle HTTP/1 one.
    fn checkout(&self, at: usize) -> Option<Handshaken> {
        let mut origins = self.lock();
        let o = origins.get_mut(at)?;
        if let Some((tx, used)) = &mut o.h2 {
            if !tx.is_closed() {
                *used = Instant::now();
                return Some(Handshaken::H2(tx.clone()));
            }
            o.h2 = None;
        }
        let now = Instant::now();
        while let Some(c) = o.idle.pop_back() {
            // A connection comes back when its response body ended; its
            // driver marks it ready in the same turn as it reads the
            // body's last bytes. One that is not ready has closed, or is
            // about to.
            if c.tx.is_ready() && now.duration_since(c.since) < self.idle_timeout {
                return Some(Handshaken::H1(c.tx));
            }
        }
        None
    }

    /// Give back an HTTP/1 connection whose response was read to the end.
    fn checkin(self: &Arc<Self>, at: usize, tx: http1::SendRequest<Body>) {
        if tx.is_closed() {
            return;
        }
        let mut origins = self.lock();
        let Some(o) = origins.get_mut(at) else {
            return;
        };
        if o.idle.len() >= MAX_IDLE_PER_ORIGIN {
            o.idle.pop_front();
        }
        o.idle.push_back(Idle {
            tx,
            since: Instant::now(),
        });
        if !o.reaping {
            o.reaping = self.reap_later(at);
        }
    }

    /// Offer a new HTTP/2 connection as origin `at`'s shared one.
    fn share_h2(self: &Arc<Self>, at: usize, tx: &http2::SendRequest<Body>) {
        let mut origins = self.lock();
        let Some(o) = origins.get_mut(at) else {
            return;
        };
        if o.h2.as_ref().is_none_or(|(t, _)| t.is_closed()) {
            o.h2 = Some((tx.clone(), Instant::now()));
            if !o.reaping {
                o.reaping = self.reap_later(at);
            }
        }
    }

    /// Close origin `at`'s connections once idle for the idle timeout,
    /// checking once per timeout while it has any. False when there is no
    /// runtime to run the check on.
    fn reap_later(self: &Arc<Self>, at: usize) -> bool {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut guard = Reaping {
            pool: Arc::downgrade(self),
            at,
            armed: true,
        };
        let every = self.idle_timeout;
        rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = guard.pool.upgrade() else {
                    return;
                };
                let mut origins = pool.lock();
                let Some(o) = origins.get_mut(at) else {
                    return;
                };
                let now = Instant::now();
                o.idle
                    .retain(|c| !c.tx.is_closed() && now.duration_since(c.since) < every);
                if o.h2
                    .as_ref()
                    .is_some_and(|(t, used)| t.is_closed() || now.duration_since(*used) >= every)
                {
                    o.h2 = None;
                }
                if o.idle.is_empty() && o.h2.is_none() {
                    // Under the lock: a connection given back after this
                    // starts a new reaper, and this one's guard must not
                    // clear that one's flag.
                    o.reaping = false;
                    guard.disarm();
                    return;
                }
            }
        });
        true
    }
}

/// Make `req` what an HTTP/1 connection sends: the path in origin form and
/// the origin's `Host` header (unless the request sets one).
fn to_origin_form(req: &mut http::Request<Body>, host: &http::HeaderValue) {
    req.headers_mut()
        .entry(http::header::HOST)
        .or_insert_with(|| host.clone());
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(pq);
}

/// Held by a reaper task: if the task is dropped while it sleeps (its
/// runtime shut down under it), the origin is marked unwatched, so the next
/// connection given back starts a new reaper. (A reaper that finds its
/// origin empty clears the mark itself, under the lock, and disarms this.)
struct Reaping {
    pool: std::sync::Weak<Inner>,
    at: usize,
    armed: bool,
}

impl Reaping {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Reaping {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pool) = self.pool.upgrade() {
            if let Some(o) = pool.lock().get_mut(self.at) {
                o.reaping = false;
            }
        }
    }
}

/// An upstream response body. Reading an HTTP/1 body to its end gives the
/// connection back to the pool; dropping it earlier closes the connection
/// (HTTP/1 cannot reuse a connection with a response half read).
#[derive(Debug)]
pub struct ResponseBody {
    inner: Incoming,
    back: Option<Checkin>,
}

#[derive(Debug)]
struct Checkin {
    pool: Arc<Inner>,
    at: usize,
    tx: http1::SendRequest<Body>,
}

impl ResponseBody {
    fn ended(&mut self) {
        if let Some(c) = self.back.take() {
            c.pool.checkin(c.at, c.tx);
        }
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => this.ended(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.ended(),
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A `POST` of `body` to `uri` with the provider's prepared headers.
/// `Content-Type`, `Accept` and `User-Agent` are added unless the
/// provider's headers set them.
pub fn post(
    uri: Uri,
    headers: &http::HeaderMap,
    body: Vec<u8>,
    accept: &'static str,
) -> http::Request<Body> {
    use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT as UA};
    let mut req = http::Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    h.reserve(headers.len() + 3);
    for (k, v) in headers {
        h.append(k.clone(), v.clone());
    }
    h.entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/json"));
    h.entry(ACCEPT).or_insert(HeaderValue::from_static(accept));
    h.entry(UA).or_insert(HeaderValue::from_static(USER_AGENT));
    req
}

/// A `GET` (health probes).
pub fn get(uri: Uri, headers: &http::HeaderMap) -> http::Request<Body> {
    use http::header::{HeaderValue, USER_AGENT as UA};
    let mut req = http::Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    for (k, v) in headers {
        h.append(k.clone(), v.clone());
    }
    h.entry(UA).or_insert(HeaderValue::from_static(USER_AGENT));
    req
}

/// Read a whole body, at most `cap` bytes (one chunk: no copy).
pub async fn read_body(body: ResponseBody, cap: usize) -> Result<Bytes, String> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, cap).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(format!("response body larger than {cap} bytes"))
        }
        Err(e) => Err(format!(
            "connection lost while reading the body: {}",
            error_chain(&*e)
        )),
    }
}

/// The TLS settings every client shares (built once: the root store is
/// ~150 certificates; clones share it).
fn tls_config() -> Result<rustls::ClientConfig, String> {
    static TLS: std::sync::OnceLock<Result<rustls::ClientConfig, String>> =
        std::sync::OnceLock::new();
    TLS.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth())
    })
    .clone()
}

/// The user agent sent upstream.
pub const USER_AGENT: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// An error with its causes, `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.ends_with(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

fn is_connect_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
            // A wrapping io::Error's `source` skips what it wraps.
            if let Some(inner) = io.get_ref() {
                if is_connect_timeout(inner) {
                    return true;
                }
            }
        }
        cur = c.source();
    }
    false
}

/// The proxy (and its `Proxy-Authorization`) for an `https://` target, from
/// the environment (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`).
fn proxy_for(target: &Uri) -> Option<(Uri, Option<http::HeaderValue>)> {
    if target.scheme_str() != Some("https") {
        return None;
    }
    let m = hyper_util::client::proxy::matcher::Matcher::from_env();
    let i = m.intercept(target)?;
    Some((i.uri().clone(), i.basic_auth().cloned()))
}

/// The TCP connector under TLS: straight to the host, or through a proxy.
#[derive(Clone, Debug)]
pub enum Direct {
    Plain(HttpConnector),
    Tunnel(Tunnel<HttpConnector>),
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl tower::Service<Uri> for Direct {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Direct::Plain(c) => c.poll_ready(cx).map_err(Into::into),
            Direct::Tunnel(c) => c.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        match self {
            Direct::Plain(c) => {
                let f = c.call(dst);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Direct::Tunnel(c) => {
                let f = c.call(dst);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_does_not_repeat_a_cause_already_in_the_message() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(inner);
        assert_eq!(error_chain(&outer), "refused");
    }

    #[test]
    fn a_timed_out_cause_is_a_connect_timeout() {
        let e = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        ));
        assert!(is_connect_timeout(&e));
        let e = std::io::Error::other("refused");
        assert!(!is_connect_timeout(&e));
    }

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A local upstream: counts connections, checks what an HTTP/1 request
    /// carries (origin-form target, `Host` with the port) and answers
    /// `body_len` bytes. Over TLS (ALPN h2, h1) when `tls` is set.
    struct Upstream {
        addr: std::net::SocketAddr,
        conns: Arc<AtomicUsize>,
        /// Connections the server has seen closed.
        closed: Arc<AtomicUsize>,
    }

    async fn upstream(body_len: usize, tls: bool) -> Upstream {
        use hyper::service::service_fn;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let acceptor = tls.then(|| {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let cert =
                CertificateDer::from_pem_slice(include_bytes!("../tests/fixtures/localhost.crt"))
                    .unwrap();
            let key =
                PrivateKeyDer::from_pem_slice(include_bytes!("../tests/fixtures/localhost.key"))
                    .unwrap();
            let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
            cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
        });
        let (c, d) = (conns.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let d = d.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<Incoming>| async move {
                        let ok = req.version() == http::Version::HTTP_2
                            || (req.uri().scheme().is_none()
                                && req.headers().get("host").map(|h| h.as_bytes())
                                    == Some(format!("127.0.0.1:{}", addr.port()).as_bytes())
                                && req.uri() == "/v1/x?q=1");
                        let status = if ok { 200 } else { 400 };
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(vec![b'x'; body_len])))
                                .unwrap(),
                        )
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = match acceptor {
                        Some(a) => match a.accept(tcp).await {
                            Ok(t) => builder.serve_connection(TokioIo::new(t), svc).await,
                            Err(_) => Ok(()),
                        },
                        None => builder.serve_connection(TokioIo::new(tcp), svc).await,
                    };
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Upstream {
            addr,
            conns,
            closed,
        }
    }

    fn test_client(idle: Duration) -> Client {
        use rustls::pki_types::pem::PemObject;
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(include_bytes!(
            "../tests/fixtures/test-ca.crt"
        ))
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Client::with_tls("http://127.0.0.1", Duration::from_secs(2), tls, idle).unwrap()
    }

    /// `POST {base}{path}` with a small JSON body.
    fn request(base: &str, path: &str) -> http::Request<Body> {
        let uri: Uri = format!("{base}{path}").parse().unwrap();
        post(
            uri,
            &http::HeaderMap::new(),
            b"{}".to_vec(),
            "application/json",
        )
    }

    /// `POST {base}/v1/x?q=1`, to the response head.
    async fn head(c: &Client, base: &str) -> http::Response<ResponseBody> {
        c.send(request(base, "/v1/x?q=1")).await.unwrap()
    }

    /// The status and body length of one request, its body read to the end.
    async fn call(c: &Client, base: &str) -> (u16, usize) {
        let r = head(c, base).await;
        let status = r.status().as_u16();
        let body = read_body(r.into_body(), 8 << 20).await.unwrap();
        (status, body.len())
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection_in_origin_form_with_host() {
        let up = upstream(100, false).await;
        let c = test_client(POOL_IDLE_TIMEOUT);
        let base = format!("http://127.0.0.1:{}", up.addr.port());
        for _ in 0..5 {
            assert_eq!(call(&c, &base).await, (200, 100));
        }
        assert_eq!(up.conns.load(Ordering::SeqCst), 1);
        assert_eq!(c.pooled(&base), (1, false));
    }

    #[tokio::test]
    async fn concurrent_requests_open_connections_that_all_come_back() {
        let up = upstream(10, false).await;
        let c = test_client(POOL_IDLE_TIMEOUT);
        let base = format!("http://127.0.0.1:{}", up.addr.port());
        for round in 0..3 {
            let all = (0..8).map(|_| call(&c, &base));
            for r in futures::future::join_all(all).await {
                assert_eq!(r, (200, 10), "round {round}");
            }
            assert_eq!(c.pooled(&base).0, up.conns.load(Ordering::SeqCst));
        }
        // The first round opened what the later rounds used.
        assert!(up.conns.load(Ordering::SeqCst) <= 8);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_does_not_go_back_to_the_pool() {
        let up = upstream(4 << 20, false).await;
        let c = test_client(POOL_IDLE_TIMEOUT);
        let base = format!("http://127.0.0.1:{}", up.addr.port());
        let r = head(&c, &base).await;
        assert_eq!(r.status(), 200);
        drop(r);
        assert_eq!(c.pooled(&base), (0, false));
        // The next request gets a connection of its own and a whole body.
        assert_eq!(call(&c, &base).await, (200, 4 << 20));
        assert_eq!(up.conns.load(Ordering::SeqCst), 2);
        assert_eq!(c.pooled(&base), (1, false));
    }

    #[tokio::test]
    async fn a_pooled_connection_the_upstream_closed_is_not_used() {
        // A server that answers one request per connection and hangs up
        // without saying so (no `Connection: close`).
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = Arc::new(AtomicUsize::new(0));
        let n = conns.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut tcp, _)) = l.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                drop(tcp);
            }
        });
        let c = test_client(POOL_IDLE_TIMEOUT);
        let base = format!("http://127.0.0.1:{port}");
        for i in 1..=3 {
            assert_eq!(call(&c, &base).await, (200, 2));
            // Let the connection's driver see the hang-up.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(conns.load(Ordering::SeqCst), i);
        }
    }

    #[tokio::test]
    async fn a_pooled_connection_that_closed_unseen_fails_one_request_clearly() {
        // The upstream answers on its first connection, then hangs up while
        // this runtime is blocked, so the pooled connection still looks
        // ready when the next request takes it. hyper writes the request
        // before it reads the hang-up, so the request may have reached the
        // upstream: it is not sent again here (a POST to a model costs
        // money; the attempt loop's retry policy decides), the caller gets
        // a plain error, and the dead connection is not used again.
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (hang_up, hang_up_rx) = std::sync::mpsc::channel::<()>();
        let (hung_up, hung_up_rx) = std::sync::mpsc::channel::<()>();
        let conns = Arc::new(AtomicUsize::new(0));
        let n = conns.clone();
        std::thread::spawn(move || {
            let mut open = Vec::new();
            for tcp in l.incoming() {
                let Ok(mut tcp) = tcp else { return };
                let first = n.fetch_add(1, Ordering::SeqCst) == 0;
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                if first {
                    let _ = hang_up_rx.recv();
                    drop(tcp);
                    let _ = hung_up.send(());
                } else {
                    open.push(tcp);
                }
            }
        });
        let c = test_client(POOL_IDLE_TIMEOUT);
        let base = format!("http://127.0.0.1:{port}");
        assert_eq!(call(&c, &base).await, (200, 2));
        // Blocking this thread keeps the connection's driver from running.
        hang_up.send(()).unwrap();
        hung_up_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.pooled(&base), (1, false), "the hang-up is not seen yet");
        match c.send(request(&base, "/v1/x")).await {
            Err(SendError::Failed(m)) => assert!(m.contains("connection closed"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.pooled(&base), (0, false));
        assert_eq!(call(&c, &base).await, (200, 2));
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn idle_connections_close_after_the_idle_timeout() {
        let up = upstream(10, false).await;
        let c = test_client(Duration::from_millis(200));
        let base = format!("http://127.0.0.1:{}", up.addr.port());
        assert_eq!(call(&c, &base).await, (200, 10));
        assert_eq!(c.pooled(&base), (1, false));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(c.pooled(&base), (0, false));
        assert_eq!(
            up.closed.load(Ordering::SeqCst),
            1,
            "the upstream saw it close"
        );
        // And the pool still works afterwards.
        assert_eq!(call(&c, &base).await, (200, 10));
        assert_eq!(up.conns.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_reaper_lost_with_its_runtime_is_replaced() {
        // An upstream on a thread of its own, outliving the runtimes below.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let up = upstream(10, false).await;
                tx.send(up.addr).unwrap();
                std::future::pending::<()>().await;
            });
        });
        let base = format!("http://127.0.0.1:{}", rx.recv().unwrap().port());
        let c = test_client(Duration::from_millis(200));
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        // The origin's reaper starts on a runtime that then ends (an
        // embedding caller's, a test's), and its connection with it.
        let rt = runtime();
        assert_eq!(rt.block_on(call(&c, &base)), (200, 10));
        drop(rt);
        let rt = runtime();
        rt.block_on(async {
            assert_eq!(call(&c, &base).await, (200, 10));
            assert_eq!(c.pooled(&base), (1, false));
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert_eq!(c.pooled(&base), (0, false), "reaped by a new reaper");
        });
    }

    #[tokio::test]
    async fn https_upstreams_that_offer_http2_share_one_connection() {
        let up = upstream(100, true).await;
        let c = test_client(POOL_IDLE_TIMEOUT);
        let base = format!("https://localhost:{}", up.addr.port());
        assert_eq!(call(&c, &base).await, (200, 100));
        let all = (0..10).map(|_| call(&c, &base));
        for r in futures::future::join_all(all).await {
            assert_eq!(r, (200, 100));
        }
        assert_eq!(up.conns.load(Ordering::SeqCst), 1);
        assert_eq!(c.pooled(&base), (0, true));
    }

    #[tokio::test]
    async fn plain_http_providers_are_never_proxied() {
        assert!(proxy_for(&"http://127.0.0.1:11434".parse().unwrap()).is_none());
    }
}
