//! Strict, deterministic impersonations of the OpenAI, Anthropic and Gemini
//! HTTP APIs.
//!
//! A [`MockServer`] listens on a real socket and answers exactly one
//! provider's wire format ([`Flavor`]). It is used by the gateway's
//! `switchyard mock` command and keyless demo mode, and by integration tests
//! that need a provider to talk to. It deliberately does **not** depend on
//! `switchyard-core`: it is an independent reading of each provider's public
//! specification, so it can catch translation mistakes in the gateway.
//!
//! # What each flavor impersonates, and from which spec
//!
//! * **OpenAI** (`base_url` = `http://ADDR/v1`), from `openai/openai-openapi`
//!   and the generated types in `openai/openai-python`
//!   (`types/chat/completion_create_params.py`, `chat_completion*.py`,
//!   `types/embedding*.py`): `POST /v1/chat/completions` (JSON and SSE
//!   `chat.completion.chunk` streams ending in `data: [DONE]`, usage chunk with
//!   `choices: []` only with `stream_options.include_usage`),
//!   `POST /v1/embeddings` (float or little-endian f32 `base64`),
//!   `GET /v1/models`. Auth: `Authorization: Bearer KEY`. Errors:
//!   `{"error":{"message","type","param","code"}}`; responses carry
//!   `x-request-id`, `openai-processing-ms`, `openai-version` and
//!   `x-ratelimit-*` headers.
//! * **Anthropic** (`base_url` = `http://ADDR`), from
//!   `anthropics/anthropic-sdk-python` (`types/message_create_params.py` and
//!   the block/param types) and the Messages, streaming, errors and versioning
//!   docs: `POST /v1/messages` (JSON, and SSE with `event:` lines:
//!   `message_start`, `content_block_start`, `ping`, `content_block_delta`
//!   with `text_delta` / `input_json_delta`, `content_block_stop`,
//!   `message_delta`, `message_stop`), `POST /v1/messages/count_tokens`,
//!   `GET /v1/models`. Auth: `x-api-key`; the `anthropic-version` header is
//!   required. Errors: `{"type":"error","error":{"type","message"},"request_id"}`
//!   plus a `request-id` header.
//! * **Gemini** (`base_url` = `http://ADDR/v1beta`), from
//!   `googleapis/googleapis` (`google/ai/generativelanguage/v1beta/
//!   generative_service.proto`, `content.proto`) and ai.google.dev
//!   (`api/generate-content`, `api/embeddings`):
//!   `POST /v1beta/models/{model}:generateContent`,
//!   `:streamGenerateContent` (SSE with `?alt=sse`, otherwise the streamed JSON
//!   array form), `:embedContent`, `:batchEmbedContents`, `:countTokens`,
//!   `GET /v1beta/models[/{model}]`. Auth: `x-goog-api-key` header or `?key=`.
//!   Errors: `{"error":{"code","message","status"}}`. JSON field names are
//!   accepted in both lowerCamelCase and proto snake_case, like the real
//!   proto3-JSON front end.
//!
//! # Strict validation
//!
//! Every request is validated the way the real API does it and rejected with
//! the provider's error shape and a message naming the offending field:
//! required fields, field types and ranges, unknown fields (OpenAI
//! `Unrecognized request argument supplied: X`, Anthropic
//! `X: Extra inputs are not permitted`, Gemini
//! `Invalid JSON payload received. Unknown name "x"`), roles, content block /
//! part shapes, tool definitions and tool-call/result pairing. See the flavor
//! modules' docs for the full list. Model names starting with `missing` get the
//! provider's 404 "model not found" error; every other name is accepted.
//!
//! # Deterministic replies
//!
//! The reply text is [`expected_text`] (`"[{label}] You said: {text}"`), or
//! [`expected_tool_result_text`] when the last turn is a tool result. Images
//! are acknowledged with a `" (N image[s])"` suffix
//! ([`expected_text_with_images`]). Token counts come from [`count_tokens`]
//! (`ceil(chars / 4)`), see [`reply`] for the exact rules, including tool
//! calls with schema-synthesised arguments ([`synthesize_from_schema`]), stop
//! sequences, `max_tokens` truncation, JSON mode and multiple choices.
//! Embeddings come from [`embedding_vector`].
//!
//! # Faults
//!
//! Faults are injected per request, either from a queue ([`MockServer::push_fault`],
//! one fault popped per request) or sticky ([`MockServer::set_sticky_fault`]);
//! a queued fault wins over the sticky one. See [`Fault`] for the list:
//! provider-shaped error statuses, rate limiting with `retry-after`,
//! overload, hangs, slow first byte, connections dropped mid-stream, the
//! provider's documented mid-stream error event, malformed bodies and delays
//! between stream events.

mod anthropic;
mod common;
mod gemini;
mod openai;
pub mod reply;
mod stream;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use reply::{
    count_tokens, embedding_vector, expected_text, expected_text_with_images,
    expected_tool_result_text, synthesize_from_schema,
};

/// Which provider API a [`MockServer`] impersonates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// OpenAI Chat Completions / Embeddings / Models.
    OpenAi,
    /// Anthropic Messages / Models.
    Anthropic,
    /// Google Gemini (Generative Language API v1beta).
    Gemini,
}

impl Flavor {
    /// All flavors, in the order `switchyard mock` assigns ports.
    pub const ALL: [Flavor; 3] = [Flavor::OpenAi, Flavor::Anthropic, Flavor::Gemini];

    /// A short lowercase name: `openai`, `anthropic`, `gemini`.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::OpenAi => "openai",
            Flavor::Anthropic => "anthropic",
            Flavor::Gemini => "gemini",
        }
    }

    /// The path suffix appended to `http://ADDR` to form the provider base URL.
    pub fn base_path(self) -> &'static str {
        match self {
            Flavor::OpenAi => "/v1",
            Flavor::Anthropic => "",
            Flavor::Gemini => "/v1beta",
        }
    }
}

/// Options for one mock server.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Which API to impersonate.
    pub flavor: Flavor,
    /// If `Some`, the auth header must carry exactly this key; if `None`, any
    /// non-empty key is accepted.
    pub api_key: Option<String>,
    /// Appears in every reply text, e.g. `demo-openai`.
    pub label: String,
}

impl MockOptions {
    /// Options with no required key and the label `mock-{flavor}`.
    pub fn new(flavor: Flavor) -> Self {
        MockOptions {
            flavor,
            api_key: None,
            label: format!("mock-{}", flavor.name()),
        }
    }
}

/// A fault to inject into a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with the provider-shaped error body for this HTTP status
    /// (400, 401, 403, 404, 429, 500, 502, 503, 504, 529…).
    Status(u16),
    /// 429 with `retry-after` (and OpenAI's `retry-after-ms` and
    /// `x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`, Gemini's
    /// `RetryInfo` detail).
    RateLimited {
        /// Seconds the client should wait.
        retry_after_secs: u64,
    },
    /// Anthropic 529 `overloaded_error`; OpenAI 503; Gemini 503 `UNAVAILABLE`.
    Overloaded,
    /// 400 with the provider's "prompt exceeds the context window" error
    /// (OpenAI `context_length_exceeded`, Anthropic "prompt is too long",
    /// Gemini "exceeds the maximum number of tokens").
    ContextLengthExceeded,
    /// Accept the request and never answer (until the server shuts down).
    Hang,
    /// Wait this long, then answer normally.
    SlowFirstByte(Duration),
    /// Streaming: send N events, then abort the connection without the
    /// terminator. Non-streaming: send half the body (with the full
    /// `content-length`), then abort.
    DropMidStream {
        /// Events sent before the connection is aborted.
        after_chunks: usize,
    },
    /// Streaming: N events, then the provider's documented mid-stream error
    /// (Anthropic `event: error` with `overloaded_error`; OpenAI a `data:`
    /// chunk holding an `error` object; Gemini an `error` object), then the
    /// stream ends. Non-streaming requests get the provider's 500 error.
    StreamError {
        /// Events sent before the error event.
        after_chunks: usize,
    },
    /// 200 with a body that is not valid JSON (or SSE whose data is not JSON).
    MalformedBody,
    /// Streaming: wait this long between events. Ignored when not streaming.
    ChunkDelay(Duration),
}

/// One request received by a mock server.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    /// Headers with lowercase names; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The raw body.
    pub body: Bytes,
    /// The body parsed as JSON, if it was valid JSON.
    pub json: Option<serde_json::Value>,
}

impl RecordedRequest {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Shared state of one mock server: options, request log and faults.
#[derive(Debug)]
pub struct MockState {
    opts: MockOptions,
    log: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<VecDeque<Fault>>,
    sticky: Mutex<Option<Fault>>,
    shutdown: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another handler panicked mid-update; the data
    // (a log or a queue) is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MockState {
    /// New state. `shutdown` flips to `true` when the server stops, which
    /// releases requests suffering [`Fault::Hang`].
    pub fn new(opts: MockOptions, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(MockState {
            opts,
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
            sticky: Mutex::new(None),
            shutdown,
        })
    }

    /// The options this state was created with.
    pub fn options(&self) -> &MockOptions {
        &self.opts
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).clone()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.log).clear();
    }

    /// Queue a fault for the next request that has none.
    pub fn push_fault(&self, f: Fault) {
        lock(&self.faults).push_back(f);
    }

    /// Set or clear the fault applied to every request.
    pub fn set_sticky_fault(&self, f: Option<Fault>) {
        *lock(&self.sticky) = f;
    }

    fn next_fault(&self) -> Option<Fault> {
        if let Some(f) = lock(&self.faults).pop_front() {
            return Some(f);
        }
        lock(&self.sticky).clone()
    }
}

/// The axum router serving one flavor with the given state. `opts` wins over
/// the options stored in `state` (normally they are the same).
pub fn router(opts: MockOptions, state: Arc<MockState>) -> Router {
    let ctx = Arc::new(Ctx { opts, state });
    Router::new().fallback(handle).with_state(ctx)
}

#[derive(Debug)]
struct Ctx {
    opts: MockOptions,
    state: Arc<MockState>,
}

/// Everything a flavor handler needs to answer one request.
pub(crate) struct Incoming {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub opts: MockOptions,
    /// A fault that shapes the response (drop, stream error, malformed, delay).
    pub fault: Option<Fault>,
    pub started: Instant,
}

async fn handle(
    State(ctx): State<Arc<Ctx>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let path = uri.path().to_string();
    let query = uri.query().map(str::to_string);
    record(&ctx.state, &method, &path, &query, &headers, &body);

    let fault = ctx.state.next_fault();
    let flavor = ctx.opts.flavor;
    let mut shaping = None;
    match fault {
        Some(Fault::Status(code)) => return common::fault_status(flavor, code),
        Some(Fault::RateLimited { retry_after_secs }) => {
            return common::fault_rate_limited(flavor, retry_after_secs)
        }
        Some(Fault::Overloaded) => return common::fault_overloaded(flavor),
        Some(Fault::ContextLengthExceeded) => return common::fault_context_length(flavor),
        Some(Fault::Hang) => {
            let mut rx = ctx.state.shutdown.clone();
            // Wait until the server shuts down (or its sender is gone), then
            // abort the connection instead of answering.
            let _ = rx.wait_for(|stopped| *stopped).await;
            return stream::aborted_response();
        }
        Some(Fault::SlowFirstByte(d)) => tokio::time::sleep(d).await,
        Some(other) => shaping = Some(other),
        None => {}
    }

    let req = Incoming {
        method,
        path,
        query,
        headers,
        body,
        opts: ctx.opts.clone(),
        fault: shaping,
        started,
    };
    match flavor {
        Flavor::OpenAi => openai::handle(req).await,
        Flavor::Anthropic => anthropic::handle(req).await,
        Flavor::Gemini => gemini::handle(req).await,
    }
}

fn record(
    state: &MockState,
    method: &Method,
    path: &str,
    query: &Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_ascii_lowercase())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let json = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    lock(&state.log).push(RecordedRequest {
        method: method.as_str().to_string(),
        path: path.to_string(),
        query: query.clone(),
        headers: map,
        body: body.clone(),
        json,
    });
}

/// A running mock server. Dropping it shuts the server down.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    flavor: Flavor,
    state: Arc<MockState>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Start a server on `127.0.0.1:0`.
    pub async fn start(opts: MockOptions) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::start_on(listener, opts).await
    }

    /// Start a server on an already bound listener.
    pub async fn start_on(listener: TcpListener, opts: MockOptions) -> std::io::Result<MockServer> {
        let addr = listener.local_addr()?;
        let (stop, rx) = watch::channel(false);
        let state = MockState::new(opts.clone(), rx.clone());
        let app = router(opts.clone(), state.clone());
        let mut signal = rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = signal.wait_for(|stopped| *stopped).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "mock server stopped with an error");
            }
        });
        Ok(MockServer {
            addr,
            flavor: opts.flavor,
            state,
            stop,
            task: Some(task),
        })
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The flavor being served.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The base URL a provider config would use: OpenAI `http://ADDR/v1`,
    /// Anthropic `http://ADDR`, Gemini `http://ADDR/v1beta`.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.flavor.base_path())
    }

    /// The shared state (request log, faults).
    pub fn state(&self) -> Arc<MockState> {
        self.state.clone()
    }

    /// Every received request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.state.clear_requests();
    }

    /// Queue a fault: each request pops one (if any) and suffers it.
    pub fn push_fault(&self, f: Fault) {
        self.state.push_fault(f);
    }

    /// Set (or clear with `None`) a fault applied to every request.
    pub fn set_sticky_fault(&self, f: Option<Fault>) {
        self.state.set_sticky_fault(f);
    }

    /// Stop accepting connections and wait (briefly) for in-flight requests.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Start one server per flavor on consecutive ports starting at `first_port`
/// (`0` picks free ports), for `switchyard mock`. Prints nothing.
pub async fn start_all(
    host: std::net::IpAddr,
    first_port: u16,
    api_key: Option<String>,
    label_prefix: &str,
) -> std::io::Result<Vec<MockServer>> {
    let mut out = Vec::new();
    for (i, flavor) in Flavor::ALL.into_iter().enumerate() {
        let port = if first_port == 0 {
            0
        } else {
            first_port.saturating_add(i as u16)
        };
        let listener = TcpListener::bind((host, port)).await?;
        let opts = MockOptions {
            flavor,
            api_key: api_key.clone(),
            label: format!("{label_prefix}-{}", flavor.name()),
        };
        out.push(MockServer::start_on(listener, opts).await?);
    }
    Ok(out)
}

/// Build a response from parts; never fails (invalid header values are skipped).
pub(crate) fn build_response(
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    body: Body,
) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            h.append(name, value);
        }
    }
    resp
}
