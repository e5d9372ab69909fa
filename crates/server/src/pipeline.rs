//! The request pipeline: peek → resolve alias → pick deployment → translate
//! (or pass through) → forward → relay the answer in the client's dialect,
//! with a usage record for every outcome.
//!
//! Pass-through (client dialect = provider dialect, no quirks): the body is
//! forwarded with only `model` spliced in, and the response bytes are relayed
//! as they are while a tap reads `usage`. Otherwise the request goes through
//! the IR: `codec::decode_request` → `codec::encode_request`, and the answer
//! back through `codec::decode_response` / the stream state machines.

use crate::codec::{self, StreamDecoder, StreamEncoder};
use crate::error::GatewayError;
use crate::peek;
use crate::routing::Deployment;
use crate::state::AppState;
use crate::usage::{UsageRecord, UsageSink};
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_core::dialect::{anthropic, openai, Dialect};
use switchyard_core::ir::{ApiError, ErrorKind, StreamEvent, Usage};
use switchyard_core::sse::{write_event, SseDecoder, SseFrame};
use tokio::time::Instant;

/// Per-request facts set by the HTTP layer.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub request_id: String,
    pub started: Instant,
}

/// Largest upstream response body read into memory (non-streaming).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// Handle a chat request arriving in `ingress` format.
pub async fn chat(
    state: Arc<AppState>,
    ingress: Dialect,
    body: Bytes,
    ctx: RequestCtx,
) -> Response {
    match chat_inner(&state, ingress, &body, &ctx).await {
        Ok(r) => r,
        Err(e) => e.render(ingress),
    }
}

/// What is known about a request once routed, for its usage record.
struct Meta {
    request_id: String,
    started: Instant,
    alias: String,
    deployment: Arc<Deployment>,
    ingress: Dialect,
    stream: bool,
    passthrough: bool,
}

impl Meta {
    fn record(
        &self,
        status: u16,
        usage: Option<Usage>,
        ttft: Option<Duration>,
        error: Option<String>,
    ) -> UsageRecord {
        UsageRecord {
            request_id: self.request_id.clone(),
            time: SystemTime::now(),
            alias: self.alias.clone(),
            provider: self.deployment.provider.name.clone(),
            deployment: self.deployment.id.clone(),
            upstream_model: self.deployment.model.clone(),
            ingress: self.ingress.as_str(),
            stream: self.stream,
            passthrough: self.passthrough,
            usage,
            status,
            latency: self.started.elapsed(),
            ttft,
            error,
        }
    }
}

async fn chat_inner(
    state: &AppState,
    ingress: Dialect,
    body: &Bytes,
    ctx: &RequestCtx,
) -> Result<Response, GatewayError> {
    let peek = peek::peek(body)?;
    let route = state
        .router
        .resolve(&peek.model)
        .ok_or_else(|| GatewayError::model_not_found(&peek.model))?;
    let dep = route
        .pick()
        .ok_or_else(|| GatewayError::model_not_found(&peek.model))?
        .clone();
    let provider = dep.provider.clone();
    let pd = provider.dialect();
    let passthrough = pd == ingress && provider.passthrough_ok();
    let stream = peek.stream;
    // What the client asked to see at the end of an OpenAI stream.
    let client_wants_usage = ingress == Dialect::OpenAi && peek.include_usage;

    let upstream_body = if passthrough {
        peek.rewrite(body, &dep.model, ingress == Dialect::OpenAi && stream)
    } else {
        let mut ir = codec::decode_request(ingress, body)?;
        ir.stream = stream;
        codec::encode_request(pd, &ir, &dep.model, &provider.quirks)?
    };
    let meta = Meta {
        request_id: ctx.request_id.clone(),
        started: ctx.started,
        alias: route.alias.name.clone(),
        deployment: dep.clone(),
        ingress,
        stream,
        passthrough,
    };

    let client = state
        .clients
        .get(&provider.name)
        .ok_or_else(|| GatewayError::unreachable(&provider.name, "no HTTP client"))?;
    let url = provider.chat_url(&dep.model, stream);
    let resp = match send(client, &provider, &url, upstream_body, stream).await {
        Ok(r) => r,
        Err(e) => {
            state.usage.record(meta.record(
                e.status.as_u16(),
                None,
                None,
                Some(e.error.message.clone()),
            ));
            return Err(e);
        }
    };
    let ttft = ctx.started.elapsed();
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        let headers = resp.headers().clone();
        let bytes = read_capped(resp, provider.timeouts.first_byte, 1024 * 1024)
            .await
            .unwrap_or_default();
        let err = codec::decode_error(pd, status, &bytes);
        let e = GatewayError::upstream(&provider.name, status, err, &headers);
        state.usage.record(meta.record(
            e.status.as_u16(),
            None,
            None,
            Some(e.error.message.clone()),
        ));
        return Err(e);
    }

    if !stream {
        let remaining = provider
            .timeouts
            .total
            .saturating_sub(ctx.started.elapsed());
        let bytes = match read_capped(
            resp,
            remaining.min(provider.timeouts.first_byte),
            MAX_UPSTREAM_BODY,
        )
        .await
        {
            Ok(b) => b,
            Err(e) => {
                state.usage.record(meta.record(
                    e.status.as_u16(),
                    None,
                    None,
                    Some(e.error.message.clone()),
                ));
                return Err(e);
            }
        };
        let (out, usage) = if passthrough {
            // The body is relayed as is, but never as a 200 if it is not JSON.
            if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                let e = GatewayError::bad_upstream(
                    &provider.name,
                    &format!("the body is not valid JSON ({err})"),
                );
                state
                    .usage
                    .record(meta.record(502, None, None, Some(e.error.message.clone())));
                return Err(e);
            }
            let usage = codec::extract_usage(pd, &bytes);
            (Bytes::from(bytes), usage)
        } else {
            match codec::decode_response(pd, &bytes, &dep.model) {
                Ok(r) => (Bytes::from(codec::encode_response(ingress, &r)), r.usage),
                Err(err) => {
                    let e = GatewayError::bad_upstream(&provider.name, &err.message);
                    state
                        .usage
                        .record(meta.record(502, None, None, Some(e.error.message.clone())));
                    return Err(e);
                }
            }
        };
        state.usage.record(meta.record(200, usage, None, None));
        return Ok(ok_response(&meta, out, "application/json"));
    }

    let mode = if passthrough {
        Mode::Passthrough {
            reframe: ingress == Dialect::OpenAi && !client_wants_usage,
        }
    } else {
        Mode::Translate {
            dec: Box::new(StreamDecoder::new(pd, &dep.model)),
            enc: Box::new(StreamEncoder::new(ingress, client_wants_usage)),
        }
    };
    let relay = Relay {
        upstream: Box::pin(resp.bytes_stream()),
        sse: SseDecoder::new(),
        frames: Vec::new(),
        events: Vec::new(),
        mode,
        ingress,
        upstream_dialect: pd,
        usage: None,
        terminal: false,
        done: false,
        idle: provider.timeouts.idle,
        deadline: ctx.started + provider.timeouts.total,
        provider: provider.name.clone(),
        guard: Guard {
            sink: state.usage.clone(),
            meta,
            ttft,
            status: 499,
            usage: None,
            error: Some("client disconnected".into()),
        },
    };
    let _ = status;
    let builder = stream_headers(&relay.guard.meta);
    Ok(builder
        .body(Body::from_stream(relay.into_stream()))
        .unwrap_or_else(|_| Response::new(Body::empty())))
}

/// Send the upstream request, bounded by the connect and first-byte timeouts.
async fn send(
    client: &reqwest::Client,
    provider: &switchyard_core::provider::Provider,
    url: &str,
    body: Vec<u8>,
    stream: bool,
) -> Result<reqwest::Response, GatewayError> {
    let mut rb = client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    rb = rb.header(
        header::ACCEPT,
        if stream {
            "text/event-stream"
        } else {
            "application/json"
        },
    );
    for (k, v) in provider.request_headers() {
        rb = rb.header(k, v);
    }
    match tokio::time::timeout(
        provider.timeouts.first_byte.min(provider.timeouts.total),
        rb.send(),
    )
    .await
    {
        Err(_) => Err(GatewayError::timeout(
            &provider.name,
            "no response headers within the first-byte timeout",
        )),
        Ok(Err(e)) if e.is_timeout() => {
            Err(GatewayError::timeout(&provider.name, "connect timeout"))
        }
        Ok(Err(e)) => Err(GatewayError::unreachable(&provider.name, &error_chain(&e))),
        Ok(Ok(r)) => Ok(r),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Read a whole body with a time bound and a size cap.
async fn read_capped(
    resp: reqwest::Response,
    within: Duration,
    cap: usize,
) -> Result<Vec<u8>, GatewayError> {
    let url_host = resp.url().host_str().unwrap_or("upstream").to_owned();
    let fut = async {
        let mut out = Vec::new();
        let mut s = resp.bytes_stream();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| {
                GatewayError::bad_upstream(
                    &url_host,
                    &format!(
                        "connection lost while reading the body: {}",
                        error_chain(&e)
                    ),
                )
            })?;
            if out.len() + chunk.len() > cap {
                return Err(GatewayError::bad_upstream(
                    &url_host,
                    "response body too large",
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    match tokio::time::timeout(within, fut).await {
        Ok(r) => r,
        Err(_) => Err(GatewayError::timeout(
            &url_host,
            "response body not complete within the timeout",
        )),
    }
}

fn route_headers(b: axum::http::response::Builder, meta: &Meta) -> axum::http::response::Builder {
    let mut b = b;
    let p = &meta.deployment.provider.name;
    if let Ok(v) = HeaderValue::from_str(p) {
        b = b.header("x-switchyard-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.deployment.id) {
        b = b.header("x-switchyard-deployment", v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.deployment.model) {
        b = b.header("x-switchyard-upstream-model", v);
    }
    b.header("x-switchyard-attempts", "1").header(
        "x-switchyard-path",
        if meta.passthrough {
            "passthrough"
        } else {
            "translated"
        },
    )
}

fn ok_response(meta: &Meta, body: Bytes, ctype: &'static str) -> Response {
    route_headers(
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, ctype),
        meta,
    )
    .body(Body::from(body))
    .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn stream_headers(meta: &Meta) -> axum::http::response::Builder {
    route_headers(
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .header("x-accel-buffering", "no"),
        meta,
    )
}

/// How stream bytes are produced.
enum Mode {
    /// Same dialect: relay upstream bytes. `reframe` = drop the usage-only
    /// chunk the gateway asked for but the client did not (OpenAI).
    Passthrough { reframe: bool },
    /// Different dialects: upstream frames → IR events → client frames.
    Translate {
        dec: Box<StreamDecoder>,
        enc: Box<StreamEncoder>,
    },
}

/// Records usage when the stream ends — however it ends (client
/// disconnect drops the stream, and with it this guard).
struct Guard {
    sink: UsageSink,
    meta: Meta,
    ttft: Duration,
    status: u16,
    usage: Option<Usage>,
    error: Option<String>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sink.record(self.meta.record(
            self.status,
            self.usage,
            Some(self.ttft),
            self.error.take(),
        ));
    }
}

struct Relay {
    upstream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    sse: SseDecoder,
    frames: Vec<SseFrame>,
    events: Vec<StreamEvent>,
    mode: Mode,
    ingress: Dialect,
    upstream_dialect: Dialect,
    usage: Option<Usage>,
    /// The upstream sent its terminal event (`[DONE]`, `message_stop`, a finish).
    terminal: bool,
    done: bool,
    idle: Duration,
    deadline: Instant,
    provider: String,
    guard: Guard,
}

impl Relay {
    fn into_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
        futures::stream::unfold(self, |mut r| async move {
            loop {
                if r.done {
                    return None;
                }
                let now = Instant::now();
                let wait = r.idle.min(r.deadline.saturating_duration_since(now));
                let out = match tokio::time::timeout(wait, r.upstream.next()).await {
                    Err(_) => {
                        let what = if Instant::now() >= r.deadline {
                            "total timeout"
                        } else {
                            "no data within the idle timeout"
                        };
                        r.fail(
                            ApiError::new(
                                ErrorKind::Timeout,
                                format!(
                                    "upstream provider `{}` stream stalled: {what}",
                                    r.provider
                                ),
                            ),
                            504,
                        )
                    }
                    Ok(Some(Ok(chunk))) => r.on_chunk(chunk),
                    Ok(Some(Err(e))) => r.fail(
                        ApiError::new(
                            ErrorKind::BadGateway,
                            format!(
                                "upstream provider `{}` connection lost mid-stream: {}",
                                r.provider,
                                error_chain(&e)
                            ),
                        ),
                        502,
                    ),
                    Ok(None) => r.on_end(),
                };
                if !out.is_empty() {
                    return Some((Ok(out), r));
                }
            }
        })
    }

    fn on_chunk(&mut self, chunk: Bytes) -> Bytes {
        self.frames.clear();
        if self.sse.feed(&chunk, &mut self.frames).is_err() {
            return self.fail(
                ApiError::new(ErrorKind::BadGateway, "upstream sent an oversized SSE line"),
                502,
            );
        }
        let frames = std::mem::take(&mut self.frames);
        let out = match &mut self.mode {
            Mode::Passthrough { reframe } => {
                let reframe = *reframe;
                let mut out = Vec::new();
                for f in &frames {
                    let drop_it = tap(
                        self.upstream_dialect,
                        f,
                        &mut self.usage,
                        &mut self.terminal,
                    );
                    if reframe && !drop_it {
                        write_event(&mut out, f.event.as_deref(), &f.data);
                    }
                }
                if reframe {
                    Bytes::from(out)
                } else {
                    chunk
                }
            }
            Mode::Translate { dec, enc } => {
                let mut out = Vec::new();
                let mut failed = None;
                for f in &frames {
                    self.events.clear();
                    if let Err(e) = dec.on_frame(f, &mut self.events) {
                        failed = Some(e);
                        break;
                    }
                    for ev in &self.events {
                        match ev {
                            StreamEvent::Usage(u) => self.usage = Some(*u),
                            StreamEvent::Finish { .. } => self.terminal = true,
                            StreamEvent::Error(e) => {
                                self.guard.status = 502;
                                self.guard.error = Some(e.message.clone());
                                self.terminal = true;
                            }
                            _ => {}
                        }
                        enc.on_event(ev, &mut out);
                    }
                }
                if let Some(e) = failed {
                    let mut b = out;
                    b.extend_from_slice(&self.fail(
                        ApiError::new(
                            ErrorKind::BadGateway,
                            format!(
                                "upstream provider `{}` sent an invalid stream event: {}",
                                self.provider, e.message
                            ),
                        ),
                        502,
                    ));
                    return Bytes::from(b);
                }
                Bytes::from(out)
            }
        };
        self.frames = frames;
        out
    }

    fn on_end(&mut self) -> Bytes {
        self.done = true;
        let leftover = self.sse.finish();
        let ok = match &self.mode {
            Mode::Passthrough { .. } => self.terminal,
            Mode::Translate { .. } => self.terminal,
        };
        if !ok {
            let why = if leftover {
                "the stream ended inside an event"
            } else {
                "the stream ended before its final event"
            };
            return self.fail(
                ApiError::new(
                    ErrorKind::BadGateway,
                    format!(
                        "upstream provider `{}` closed the stream early: {why}",
                        self.provider
                    ),
                ),
                502,
            );
        }
        let mut out = Vec::new();
        if let Mode::Translate { dec, enc } = &mut self.mode {
            self.events.clear();
            dec.finish(&mut self.events);
            for ev in &self.events {
                if let StreamEvent::Usage(u) = ev {
                    self.usage = Some(*u);
                }
                enc.on_event(ev, &mut out);
            }
            enc.finish(&mut out);
        }
        if self.guard.status == 499 {
            self.guard.status = 200;
            self.guard.error = None;
        }
        self.guard.usage = self.usage;
        Bytes::from(out)
    }

    /// End the stream with a well-formed error in the client's dialect.
    fn fail(&mut self, err: ApiError, status: u16) -> Bytes {
        self.done = true;
        self.guard.status = status;
        self.guard.error = Some(err.message.clone());
        self.guard.usage = self.usage;
        let mut out = Vec::new();
        codec::encode_stream_error(self.ingress, &err, &mut out);
        Bytes::from(out)
    }
}

/// Pass-through tap: read usage and the terminal marker from one upstream
/// frame. Returns true when the frame is the usage-only chunk the gateway
/// added (OpenAI) and should be hidden from a client that did not ask.
fn tap(d: Dialect, f: &SseFrame, usage: &mut Option<Usage>, terminal: &mut bool) -> bool {
    match d {
        Dialect::OpenAi => {
            if f.data == "[DONE]" {
                *terminal = true;
                return false;
            }
            if memchr::memmem::find(f.data.as_bytes(), b"\"usage\":{").is_some()
                || memchr::memmem::find(f.data.as_bytes(), b"\"usage\": {").is_some()
            {
                if let Some(u) = openai::extract_usage(f.data.as_bytes()) {
                    *usage = Some(u);
                    return is_usage_only_chunk(&f.data);
                }
            }
            false
        }
        Dialect::Anthropic => {
            let mut acc = usage.unwrap_or_default();
            if anthropic::extract_stream_usage(f, &mut acc) {
                *usage = Some(acc);
            }
            if f.event.as_deref() == Some("message_stop") || f.event.as_deref() == Some("error") {
                *terminal = true;
            }
            false
        }
        Dialect::Gemini => false,
    }
}

/// An OpenAI chunk with `"choices": []` (the usage-only final chunk).
fn is_usage_only_chunk(data: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct C<'a> {
        #[serde(borrow)]
        choices: Option<Vec<&'a serde_json::value::RawValue>>,
    }
    matches!(serde_json::from_str::<C<'_>>(data), Ok(C { choices: Some(v) }) if v.is_empty())
}
