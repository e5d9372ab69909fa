//! What a client connection may hold, and for how long (`server.*`):
//! the header, body and idle timeouts, the connection count and the
//! request bytes buffered across all requests.
//!
//! Costs on the request path: the header and idle timeouts are one timer
//! per request head that hyper already arms ([`HeadTimer`]), plus one
//! relaxed atomic per socket read; the body timeout arms a timer only when
//! a body has to be waited for ([`TimedBody`]); the buffered-bytes cap is
//! two atomic additions per hot request ([`Buffered`]).

use crate::config::FrontConfig;
use crate::state::AppState;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When a connection last became ready for a request head, and when the
/// first byte of that head arrived: shared by the connection's socket
/// ([`Clocked`]) and its head timer ([`HeadTimer`]).
#[derive(Debug)]
pub struct HeadClock {
    base: Instant,
    /// No byte read since the head timer was armed: the connection is idle.
    idle: AtomicBool,
    /// Milliseconds after `base` when the head's first byte arrived.
    first_byte: AtomicU64,
    /// hyper's HTTP/1 head timer has taken over (or an HTTP/2 request came):
    /// [`FirstHead`] is done.
    started: AtomicBool,
}

impl HeadClock {
    pub fn new() -> Arc<HeadClock> {
        Arc::new(HeadClock {
            base: Instant::now(),
            idle: AtomicBool::new(true),
            first_byte: AtomicU64::new(0),
            started: AtomicBool::new(false),
        })
    }

    /// A request has been seen (HTTP/2): [`FirstHead`] is done.
    pub fn start(&self) {
        if !self.started.load(Ordering::Relaxed) {
            self.started.store(true, Ordering::Relaxed);
        }
    }

    fn saw_bytes(&self) {
        if self.idle.load(Ordering::Relaxed) {
            self.idle.store(false, Ordering::Relaxed);
            let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.first_byte.store(ms, Ordering::Relaxed);
        }
    }
}

/// A client socket that tells its [`HeadClock`] when bytes arrive.
#[derive(Debug)]
pub struct Clocked<S> {
    io: S,
    clock: Arc<HeadClock>,
}

impl<S> Clocked<S> {
    pub fn new(io: S, clock: Arc<HeadClock>) -> Self {
        Clocked { io, clock }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Clocked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.saw_bytes();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Clocked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// hyper's HTTP/1 header-read timer for one connection, made into two
/// timeouts. hyper arms it whenever the connection is ready for a request
/// head (on accept, and again after each response), and stops it once the
/// head has arrived. Until a byte arrives the connection is idle and the
/// idle timeout applies; from the first byte, the header timeout. So a
/// keep-alive connection may wait long between requests, while a client
/// dripping a header a line at a time is cut after the header timeout.
#[derive(Debug, Clone)]
pub struct HeadTimer {
    clock: Arc<HeadClock>,
    header: Duration,
    idle: Duration,
}

impl HeadTimer {
    pub fn new(clock: Arc<HeadClock>, cfg: &FrontConfig) -> Self {
        HeadTimer {
            clock,
            header: cfg.header_timeout,
            idle: cfg.idle_timeout,
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // Called when hyper starts waiting for a head: the connection is
        // idle until a byte arrives.
        if self.clock.started.swap(true, Ordering::Relaxed) {
            self.clock.idle.store(true, Ordering::Relaxed);
            Box::pin(self.head_sleep(tokio::time::Instant::now()))
        } else {
            // The connection's first head: what the protocol sniffing read
            // counts already (see `FirstHead`).
            Box::pin(self.head_sleep(tokio::time::Instant::from_std(self.clock.base)))
        }
    }
}

impl HeadTimer {
    fn head_sleep(&self, armed: tokio::time::Instant) -> HeadSleep {
        HeadSleep {
            timer: self.clone(),
            armed,
            sleep: tokio::time::sleep_until(armed + self.idle),
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection that must get to its first request head in time:
    /// within the idle timeout of being accepted, and the header timeout of
    /// its first byte. That covers the protocol sniffing (HTTP/1 or
    /// HTTP/2 prior knowledge) before hyper's HTTP/1 head timer takes over;
    /// from then on this only costs one relaxed load per wake-up.
    pub struct FirstHead<F> {
        #[pin]
        conn: F,
        head: Option<Pin<Box<HeadSleep>>>,
        clock: Arc<HeadClock>,
    }
}

impl<F> FirstHead<F> {
    pub fn new(conn: F, timer: &HeadTimer) -> Self {
        FirstHead {
            conn,
            head: Some(Box::pin(
                timer.head_sleep(tokio::time::Instant::from_std(timer.clock.base)),
            )),
            clock: timer.clock.clone(),
        }
    }
}

impl<F: std::future::Future> std::future::Future for FirstHead<F> {
    /// `None`: the connection was closed for being too slow.
    type Output = Option<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.conn.poll(cx) {
            return Poll::Ready(Some(r));
        }
        if let Some(h) = this.head.as_mut() {
            if this.clock.started.load(Ordering::Relaxed) {
                *this.head = None;
            } else if h.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    struct HeadSleep {
        timer: HeadTimer,
        armed: tokio::time::Instant,
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl hyper::rt::Sleep for HeadSleep {}

impl std::future::Future for HeadSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let t = &this.timer;
        let deadline = if t.clock.idle.load(Ordering::Relaxed) {
            *this.armed + t.idle
        } else {
            let first = Duration::from_millis(t.clock.first_byte.load(Ordering::Relaxed));
            tokio::time::Instant::from_std(t.clock.base + first + t.header)
        };
        let mut sleep = this.sleep;
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.poll(cx)
    }
}

/// A request body that must arrive within `server.body_timeout`. The
/// timer starts the first time the body has to be waited for, so a body
/// that came with its headers (most of them) costs no timer at all.
pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            sleep: None,
        }
    }
}

/// The body did not arrive within `server.body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

/// Read and discard a body the gateway answered without using, so that a
/// client still sending it reads the answer instead of a reset, and the
/// connection stays reusable. What has arrived is taken at once; the rest,
/// if any, on a task of its own after the answer has gone out, for at most
/// 1 MiB and 5 s (past that the connection is closed). A client waiting
/// for `100 Continue` is not invited to send it.
pub fn discard<B>(mut body: B, headers: &http::HeaderMap)
where
    B: Body + Unpin + Send + 'static,
{
    const LIMIT: usize = 1024 * 1024;
    if body.is_end_stream()
        || body.size_hint().lower() > LIMIT as u64
        || headers.contains_key(http::header::EXPECT)
    {
        return;
    }
    let mut seen = 0usize;
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    seen += bytes::Buf::remaining(d);
                }
                if seen > LIMIT {
                    return;
                }
            }
            Poll::Ready(_) => return,
            Poll::Pending => break,
        }
    }
    tokio::spawn(async move {
        let rest = async {
            use http_body_util::BodyExt;
            while let Some(Ok(f)) = body.frame().await {
                if let Some(d) = f.data_ref() {
                    seen += bytes::Buf::remaining(d);
                }
                if seen > LIMIT {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), rest).await;
    });
}

/// Request-body bytes held by one request, counted in
/// [`AppState::buffered`] until dropped.
pub struct Buffered<'a> {
    total: &'a AtomicUsize,
    held: usize,
    cap: usize,
}

impl<'a> Buffered<'a> {
    /// Count `n` bytes, or `None` when that would pass `server.max_buffered`.
    pub fn take(state: &'a AppState, n: usize) -> Option<Buffered<'a>> {
        let mut b = Buffered {
            total: &state.buffered,
            held: 0,
            cap: state.front.max_buffered,
        };
        b.grow_to(n).then_some(b)
    }

    /// Count up to `n` bytes in all; false (nothing more counted) when
    /// that would pass the cap.
    pub fn grow_to(&mut self, n: usize) -> bool {
        if n <= self.held {
            return true;
        }
        let more = n - self.held;
        let before = self.total.fetch_add(more, Ordering::Relaxed);
        if before.saturating_add(more) > self.cap {
            self.total.fetch_sub(more, Ordering::Relaxed);
            return false;
        }
        self.held = n;
        true
    }
}

impl Drop for Buffered<'_> {
    fn drop(&mut self) {
        if self.held > 0 {
            self.total.fetch_sub(self.held, Ordering::Relaxed);
        }
    }
}

/// One client connection counted against `server.max_connections` and
/// its source address's `server.max_connections_per_ip` while it lives.
#[derive(Debug)]
pub struct Slot(Arc<AppState>, std::net::IpAddr);

impl Slot {
    /// A slot, or `None` when `server.max_connections` are open already or
    /// `peer` holds `server.max_connections_per_ip`. (A lock per accepted
    /// connection, not per request; the map holds only open addresses.)
    pub fn take(state: &Arc<AppState>, peer: std::net::IpAddr) -> Option<Slot> {
        let before = state.connections.fetch_add(1, Ordering::Relaxed);
        if before >= state.front.max_connections {
            state.connections.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let mut per_ip = state
            .connections_per_ip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = per_ip.entry(peer).or_insert(0);
        if *n >= state.front.max_connections_per_ip {
            drop(per_ip);
            state.connections.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(Slot(state.clone(), peer))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
        let mut per_ip = self
            .0
            .connections_per_ip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = per_ip.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.1);
            }
        }
    }
}

/// What a connection past `server.max_connections` is told before it is
/// closed (best effort: the socket's buffer takes it without waiting).
pub fn refused() -> Vec<u8> {
    let body = r#"{"error":{"message":"the gateway is at its connection limit (server.max_connections, or this address's server.max_connections_per_ip); retry shortly","type":"overloaded_error","code":"overloaded"}}"#;
    format!("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
}
