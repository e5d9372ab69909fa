//! The fast, neutral upstream: a minimal hyper HTTP/1.1 server answering
//! with pre-serialised OpenAI / Anthropic responses.
//!
//! - `POST /v1/chat/completions`: a fixed `chat.completion`, or, when the body
//!   contains `"stream":true`, 20 `chat.completion.chunk` events, a usage chunk
//!   and `data: [DONE]`.
//! - `POST /v1/messages`: a fixed Anthropic `message`, or its SSE stream.
//! - `GET /v1/models`: a one-entry model list.
//!
//! Nothing is parsed beyond a substring search for `"stream":true`. Every
//! byte string is built once at start-up. `chunk_delay` spaces stream events
//! (for the relay-timing proof); `fail500` answers every request with a 500.

use anyhow::Context;
use bytes::Bytes;
use futures::stream::{self, StreamExt as _};
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Number of `chat.completion.chunk` events in an OpenAI stream (before the
/// usage chunk and `[DONE]`).
pub const STREAM_CHUNKS: usize = 20;

/// How the upstream behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Delay between consecutive stream events.
    pub chunk_delay: Duration,
    /// Answer everything with HTTP 500.
    pub fail500: bool,
}

/// The pre-serialised responses.
#[derive(Debug)]
pub struct Fixtures {
    openai_json: Bytes,
    openai_events: Vec<Bytes>,
    anthropic_json: Bytes,
    anthropic_events: Vec<Bytes>,
    models_json: Bytes,
    error_json: Bytes,
}

const CREATED: u64 = 1_700_000_000;

impl Fixtures {
    /// The non-streaming OpenAI reply (also what the nginx upstream serves).
    pub fn openai_json(&self) -> &[u8] {
        &self.openai_json
    }

    pub fn new() -> Fixtures {
        let openai_json = Bytes::from(format!(
            concat!(
                r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":{},"model":"bench-model","#,
                r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello from the bench upstream, a fixed reply.","refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"#,
                r#""usage":{{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}},"system_fingerprint":"fp_bench"}}"#
            ),
            CREATED
        ));
        let mut openai_events = Vec::with_capacity(STREAM_CHUNKS + 2);
        for i in 0..STREAM_CHUNKS {
            let (delta, finish) = if i == 0 {
                (
                    r#"{"role":"assistant","content":"tok0 "}"#.to_owned(),
                    "null",
                )
            } else if i + 1 == STREAM_CHUNKS {
                ("{}".to_owned(), r#""stop""#)
            } else {
                (format!(r#"{{"content":"tok{i} "}}"#), "null")
            };
            openai_events.push(Bytes::from(format!(
                concat!(
                    r#"data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":{},"model":"bench-model","system_fingerprint":"fp_bench","#,
                    r#""choices":[{{"index":0,"delta":{},"logprobs":null,"finish_reason":{}}}]}}"#,
                    "\n\n"
                ),
                CREATED, delta, finish
            )));
        }
        openai_events.push(Bytes::from(format!(
            concat!(
                r#"data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":{},"model":"bench-model","system_fingerprint":"fp_bench","#,
                r#""choices":[],"usage":{{"prompt_tokens":12,"completion_tokens":19,"total_tokens":31}}}}"#,
                "\n\n"
            ),
            CREATED
        )));
        openai_events.push(Bytes::from_static(b"data: [DONE]\n\n"));

        let anthropic_json = Bytes::from_static(
            concat!(
                r#"{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model","#,
                r#""content":[{"type":"text","text":"Hello from the bench upstream, a fixed reply."}],"#,
                r#""stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":10}}"#
            )
            .as_bytes(),
        );
        let mut anthropic_events = vec![
            sse_event(
                "message_start",
                concat!(
                    r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model","#,
                    r#""content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#
                ),
            ),
            sse_event(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
        ];
        for i in 0..STREAM_CHUNKS - 4 {
            anthropic_events.push(sse_event(
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"tok{i} "}}}}"#
                ),
            ));
        }
        anthropic_events.push(sse_event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ));
        anthropic_events.push(sse_event(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":16}}"#,
        ));
        anthropic_events.push(sse_event("message_stop", r#"{"type":"message_stop"}"#));

        Fixtures {
            openai_json,
            openai_events,
            anthropic_json,
            anthropic_events,
            models_json: Bytes::from_static(
                br#"{"object":"list","data":[{"id":"bench-model","object":"model","created":1700000000,"owned_by":"bench"}]}"#,
            ),
            error_json: Bytes::from_static(
                br#"{"error":{"message":"bench upstream: injected failure","type":"server_error","param":null,"code":null}}"#,
            ),
        }
    }
}

impl Default for Fixtures {
    fn default() -> Self {
        Fixtures::new()
    }
}

fn sse_event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

type Body = BoxBody<Bytes, Infallible>;

/// True when a request body asks for a stream (`"stream":true`, with or
/// without a space after the colon).
pub fn wants_stream(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"stream\":true").is_some()
        || memchr::memmem::find(body, b"\"stream\": true").is_some()
}

fn full(status: StatusCode, ctype: &'static str, b: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(b).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    r
}

fn sse(events: &[Bytes], delay: Duration) -> Response<Body> {
    let events: Vec<Bytes> = events.to_vec();
    let body: Body = if delay.is_zero() {
        BodyExt::boxed(StreamBody::new(stream::iter(
            events
                .into_iter()
                .map(|b| Ok::<_, Infallible>(Frame::data(b))),
        )))
    } else {
        BodyExt::boxed(StreamBody::new(
            stream::iter(events.into_iter().enumerate()).then(move |(i, b)| async move {
                if i > 0 {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, Infallible>(Frame::data(b))
            }),
        ))
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

async fn handle(
    req: Request<Incoming>,
    fx: Arc<Fixtures>,
    opts: Arc<Options>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if opts.fail500 {
        return Ok(full(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            fx.error_json.clone(),
        ));
    }
    let path = parts.uri.path();
    let resp = match (parts.method.as_str(), path) {
        ("POST", "/v1/chat/completions") => {
            if wants_stream(&body) {
                sse(&fx.openai_events, opts.chunk_delay)
            } else {
                full(StatusCode::OK, "application/json", fx.openai_json.clone())
            }
        }
        ("POST", "/v1/messages") => {
            if wants_stream(&body) {
                sse(&fx.anthropic_events, opts.chunk_delay)
            } else {
                full(
                    StatusCode::OK,
                    "application/json",
                    fx.anthropic_json.clone(),
                )
            }
        }
        ("GET", "/v1/models") => full(StatusCode::OK, "application/json", fx.models_json.clone()),
        _ => full(
            StatusCode::NOT_FOUND,
            "application/json",
            Bytes::from_static(
                br#"{"error":{"message":"not found","type":"invalid_request_error"}}"#,
            ),
        ),
    };
    Ok(resp)
}

/// Serve on `listener` forever (HTTP/1.1, keep-alive, `TCP_NODELAY`).
pub async fn serve(listener: TcpListener, opts: Options) -> anyhow::Result<()> {
    let fx = Arc::new(Fixtures::new());
    let opts = Arc::new(opts);
    loop {
        let (tcp, _) = listener.accept().await.context("accept")?;
        let _ = tcp.set_nodelay(true);
        let fx = fx.clone();
        let opts = opts.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, fx.clone(), opts.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_detection() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(br#"{"model":"m", "stream": true}"#));
        assert!(!wants_stream(br#"{"model":"m","stream":false}"#));
    }

    #[test]
    fn fixtures_are_json() {
        let fx = Fixtures::new();
        for b in [&fx.openai_json, &fx.anthropic_json, &fx.models_json] {
            serde_json::from_slice::<serde_json::Value>(b).unwrap();
        }
        assert_eq!(fx.openai_events.len(), STREAM_CHUNKS + 2);
        for e in &fx.openai_events[..STREAM_CHUNKS + 1] {
            let s = std::str::from_utf8(e).unwrap();
            let data = s.strip_prefix("data: ").unwrap().trim_end();
            serde_json::from_str::<serde_json::Value>(data).unwrap();
        }
        for e in &fx.anthropic_events {
            let s = std::str::from_utf8(e).unwrap();
            let data = s.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
            serde_json::from_str::<serde_json::Value>(data).unwrap();
        }
    }
}
