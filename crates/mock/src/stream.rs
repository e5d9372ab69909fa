//! Streaming bodies (one HTTP chunk per event) and body-level faults.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::{build_response, Fault};

enum Step {
    Frame(Bytes),
    Fail,
}

fn body_from_steps(steps: Vec<Step>, delay: Option<Duration>) -> Body {
    let queue: VecDeque<Step> = steps.into();
    let stream = futures::stream::unfold((queue, true), move |(mut queue, first)| async move {
        let step = queue.pop_front()?;
        if let (Some(d), false) = (delay, first) {
            tokio::time::sleep(d).await;
        }
        let item = match step {
            Step::Frame(b) => Ok(b),
            Step::Fail => {
                // Let the frames already produced reach the socket first, so
                // the client sees a response that breaks off midway.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "mock fault: connection dropped",
                ))
            }
        };
        Some((item, (queue, false)))
    });
    Body::from_stream(stream)
}

/// A response whose body fails at once: the client sees the connection abort.
pub(crate) fn aborted_response() -> Response {
    build_response(
        200,
        "application/json",
        &[("content-length".to_string(), "64".to_string())],
        body_from_steps(vec![Step::Fail], None),
    )
}

/// A streamed response made of pre-rendered event frames.
pub(crate) struct StreamSpec {
    /// Every frame of a normal stream, terminator included.
    pub frames: Vec<Bytes>,
    /// The provider's mid-stream error frame(s), for [`Fault::StreamError`].
    pub error_frames: Vec<Bytes>,
    /// A frame whose payload is not valid JSON, for [`Fault::MalformedBody`].
    pub malformed_frame: Bytes,
    /// Frame(s) to close the malformed stream with (e.g. `data: [DONE]`).
    pub malformed_tail: Vec<Bytes>,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
}

pub(crate) fn stream_response(spec: StreamSpec, fault: Option<&Fault>) -> Response {
    let mut delay = None;
    let total = spec.frames.len();
    let steps: Vec<Step> = match fault {
        Some(Fault::DropMidStream { after_chunks }) => {
            let n = (*after_chunks).min(total.saturating_sub(1));
            let mut s: Vec<Step> = spec.frames.into_iter().take(n).map(Step::Frame).collect();
            s.push(Step::Fail);
            s
        }
        Some(Fault::StreamError { after_chunks }) => {
            let n = (*after_chunks).min(total.saturating_sub(1));
            spec.frames
                .into_iter()
                .take(n)
                .chain(spec.error_frames)
                .map(Step::Frame)
                .collect()
        }
        Some(Fault::MalformedBody) => {
            let mut s: Vec<Step> = spec.frames.into_iter().take(1).map(Step::Frame).collect();
            s.push(Step::Frame(spec.malformed_frame));
            s.extend(spec.malformed_tail.into_iter().map(Step::Frame));
            s
        }
        Some(Fault::ChunkDelay(d)) => {
            delay = Some(*d);
            spec.frames.into_iter().map(Step::Frame).collect()
        }
        _ => spec.frames.into_iter().map(Step::Frame).collect(),
    };
    let mut headers = spec.headers;
    headers.push(("cache-control".into(), "no-cache".into()));
    build_response(
        200,
        spec.content_type,
        &headers,
        body_from_steps(steps, delay),
    )
}

/// A complete (non-streaming) JSON success response, shaped by `fault`:
/// [`Fault::DropMidStream`] sends half the body then aborts,
/// [`Fault::MalformedBody`] sends a truncated JSON document.
pub(crate) fn json_with_fault(
    body: &Value,
    headers: Vec<(String, String)>,
    fault: Option<&Fault>,
) -> Response {
    let text = body.to_string();
    match fault {
        Some(Fault::DropMidStream { .. }) => {
            let bytes = Bytes::from(text);
            let half = bytes.len() / 2;
            let mut h = headers;
            h.push(("content-length".into(), bytes.len().to_string()));
            build_response(
                200,
                "application/json",
                &h,
                body_from_steps(vec![Step::Frame(bytes.slice(..half)), Step::Fail], None),
            )
        }
        Some(Fault::MalformedBody) => {
            let cut: String = text.chars().take(text.chars().count() / 2).collect();
            build_response(
                200,
                "application/json",
                &headers,
                Body::from(format!("{cut}<<not json")),
            )
        }
        _ => build_response(200, "application/json", &headers, Body::from(text)),
    }
}
