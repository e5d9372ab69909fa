//! Anthropic Messages API (`POST /v1/messages`) wire dialect.
//!
//! Wire format per the current public spec (the OpenAPI-generated types of
//! `anthropics/anthropic-sdk-python`, `src/anthropic/types/*`, and the
//! streaming / errors pages of the Anthropic docs):
//!
//! - Requests: `model`, `max_tokens` (required), `messages`, `system`,
//!   `stop_sequences`, sampling parameters, `metadata.user_id`, `tools`,
//!   `tool_choice`, `thinking`, and `output_config` (`format` for structured
//!   outputs, GA without a beta header; `effort`). The deprecated beta
//!   `output_format` is accepted from clients but never sent upstream.
//! - Streams: `message_start` → per block `content_block_start` /
//!   `content_block_delta`* / `content_block_stop` → `message_delta`
//!   (stop reason, cumulative usage) → `message_stop`; `ping` anywhere,
//!   `error` mid-stream, unknown events ignored.
//! - Errors: `{"type":"error","error":{"type","message"},"request_id"?}`.
//!
//! Decisions where the IR and the wire differ are documented on the
//! functions (see [`encode_request`] in particular).

mod decode;
mod encode;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

pub use decode::{decode_request, decode_response};
pub use encode::{encode_request, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

use crate::ir::{ApiError, ErrorKind, Usage};
use crate::sse::{write_event, SseFrame};
use wire::{RawUsage, WireErrorBody, WireUsage};

/// How much of a non-JSON error body is quoted in the error message.
const ERROR_BODY_QUOTE: usize = 500;

/// The Anthropic error `type` string for an error kind.
fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Api | ErrorKind::BadGateway => "api_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
    }
}

/// Classify an Anthropic error `type` string (used for mid-stream `error`
/// events, which arrive under HTTP 200). Unknown types are `Api`.
fn kind_from_type(ty: &str) -> ErrorKind {
    match ty {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" => ErrorKind::RateLimit,
        "overloaded_error" => ErrorKind::Overloaded,
        "timeout_error" => ErrorKind::Timeout,
        _ => ErrorKind::Api,
    }
}

/// Cut `s` to at most `max` bytes on a char boundary, marking the cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// An upstream error response → IR. The kind comes from the HTTP status
/// ([`ErrorKind::from_status`]); the upstream `error.type` and `error.message`
/// are kept. A body that is not an Anthropic (or OpenAI-shaped) error gets
/// its text, truncated to ~500 bytes, into the message.
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    let kind = ErrorKind::from_status(status);
    if let Ok(parsed) = serde_json::from_slice::<WireErrorBody>(body) {
        if let Some(obj) = parsed.error {
            if obj.message.is_some() || obj.ty.is_some() {
                let mut e = ApiError::new(
                    kind,
                    obj.message
                        .unwrap_or_else(|| format!("upstream returned HTTP {status}")),
                );
                e.provider_type = obj.ty;
                return e;
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        format!("upstream returned HTTP {status} with an empty body")
    } else {
        format!(
            "upstream returned HTTP {status}: {}",
            truncate(text, ERROR_BODY_QUOTE)
        )
    };
    ApiError::new(kind, message)
}

fn error_json(err: &ApiError) -> String {
    serde_json::json!({
        "type": "error",
        "error": { "type": error_type(err.kind), "message": err.message },
    })
    .to_string()
}

/// IR error → Anthropic error body (the HTTP status is `err.kind.status()`).
pub fn encode_error(err: &ApiError) -> Vec<u8> {
    error_json(err).into_bytes()
}

/// IR error → an `event: error` SSE frame, as Anthropic sends mid-stream.
pub fn encode_stream_error(err: &ApiError, out: &mut Vec<u8>) {
    write_event(out, Some("error"), &error_json(err));
}

/// Fast path: the `usage` of a Message body, without decoding the content.
pub fn extract_usage(body_json: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct OnlyUsage {
        usage: Option<WireUsage>,
    }
    let u: WireUsage = crate::json_scan::member(body_json, &crate::json_scan::USAGE, || {
        serde_json::from_slice::<OnlyUsage>(body_json).ok()?.usage
    })?;
    let mut raw = RawUsage::default();
    raw.apply(&u);
    Some(raw.to_ir())
}

/// Fast path: fold a `message_start` / `message_delta` frame's usage into
/// `acc` (IR convention, cumulative). Other frames are skipped without
/// parsing when they carry an `event:` name. Returns true if `acc` changed.
pub fn extract_stream_usage(frame: &SseFrame, acc: &mut Usage) -> bool {
    #[derive(serde::Deserialize)]
    struct StartMsg {
        usage: Option<WireUsage>,
    }
    #[derive(serde::Deserialize)]
    struct Frame {
        #[serde(rename = "type")]
        ty: String,
        message: Option<StartMsg>,
        usage: Option<WireUsage>,
    }
    if let Some(ev) = frame.event.as_deref() {
        if ev != "message_start" && ev != "message_delta" {
            return false;
        }
    } else if memchr::memmem::find(frame.data.as_bytes(), b"\"usage\"").is_none() {
        return false;
    }
    let Ok(f) = serde_json::from_str::<Frame>(&frame.data) else {
        return false;
    };
    let wire = match f.ty.as_str() {
        "message_start" => f.message.and_then(|m| m.usage),
        "message_delta" => f.usage,
        _ => None,
    };
    let Some(wire) = wire else {
        return false;
    };
    let mut raw = if f.ty == "message_start" {
        RawUsage::default()
    } else {
        RawUsage::from_ir(acc)
    };
    raw.apply(&wire);
    let new = raw.to_ir();
    let changed = new != *acc;
    *acc = new;
    changed
}
