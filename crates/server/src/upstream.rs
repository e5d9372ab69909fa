//! The upstream HTTP client: hyper's pooled client over rustls, nothing
//! between it and the request path.
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
//! - TLS: rustls (ring) with the Mozilla roots from `webpki-roots`.
//! - Proxies: `HTTPS_PROXY` / `ALL_PROXY` (with `user:pass@` basic auth)
//!   and `NO_PROXY` apply to `https://` providers through an HTTP `CONNECT`
//!   tunnel. Plain `http://` providers (local servers) are reached directly.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body: the whole payload, already in memory.
pub type Body = Full<Bytes>;

/// A pooled client for one provider.
#[derive(Clone, Debug)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<Direct>, Body>,
}

/// Why an upstream request failed before a response.
#[derive(Debug)]
pub enum SendError {
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// Anything else (refused, reset, TLS, proxy …), with its cause chain.
    Failed(String),
}

impl Client {
    /// A client for a provider at `base` (its base URL, to decide on a
    /// proxy), with this connect timeout.
    pub fn new(base: &str, connect_timeout: Duration) -> Result<Client, String> {
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
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(direct);
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Client { inner })
    }

    /// Send a request; resolves at the response head.
    pub async fn send(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, SendError> {
        self.inner.request(req).await.map_err(|e| {
            if is_connect_timeout(&e) {
                SendError::ConnectTimeout
            } else {
                SendError::Failed(error_chain(&e))
            }
        })
    }
}

/// How long an idle pooled upstream connection is kept for reuse. hyper's
/// pool checks once per this interval, so a connection goes between one and
/// two intervals after its last use.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

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
pub async fn read_body(body: Incoming, cap: usize) -> Result<Bytes, String> {
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

    #[tokio::test]
    async fn plain_http_providers_are_never_proxied() {
        assert!(proxy_for(&"http://127.0.0.1:11434".parse().unwrap()).is_none());
    }
}
