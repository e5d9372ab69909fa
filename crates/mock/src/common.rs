//! Helpers shared by the flavors: ids, clocks, error responses, JSON replies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::response::Response;
use serde_json::Value;

use crate::reply::splitmix64;
use crate::{anthropic, build_response, gemini, openai, Flavor};

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh alphanumeric id of `len` characters (unique within the process).
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut state = COUNTER.fetch_add(1, Ordering::Relaxed) ^ nanos.rotate_left(17);
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut r = splitmix64(&mut state);
        for _ in 0..10 {
            if out.len() >= len {
                break;
            }
            out.push(char::from(ALPHABET[(r % 62) as usize]));
            r /= 62;
        }
    }
    out
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An error response in a provider's shape.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn into_response(self) -> Response {
        json_response(self.status, &self.body, &self.headers)
    }
}

/// A JSON response with the given status and extra headers.
pub(crate) fn json_response(status: u16, body: &Value, headers: &[(String, String)]) -> Response {
    build_response(
        status,
        "application/json",
        headers,
        Body::from(body.to_string()),
    )
}

pub(crate) fn fault_status(flavor: Flavor, code: u16) -> Response {
    match flavor {
        Flavor::OpenAi => openai::status_error(code),
        Flavor::Anthropic => anthropic::status_error(code),
        Flavor::Gemini => gemini::status_error(code),
    }
    .into_response()
}

pub(crate) fn fault_rate_limited(flavor: Flavor, secs: u64) -> Response {
    match flavor {
        Flavor::OpenAi => openai::rate_limited(secs),
        Flavor::Anthropic => anthropic::rate_limited(secs),
        Flavor::Gemini => gemini::rate_limited(secs),
    }
    .into_response()
}

/// Each provider's documented "prompt longer than the context window" error.
pub(crate) fn fault_context_length(flavor: Flavor) -> Response {
    match flavor {
        Flavor::OpenAi => openai::error(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130001 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            Some("messages"),
            Some("context_length_exceeded"),
        ),
        Flavor::Anthropic => anthropic::error(400, "invalid_request_error", "prompt is too long: 200001 tokens > 200000 maximum"),
        Flavor::Gemini => gemini::error(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).",
        ),
    }
    .into_response()
}

pub(crate) fn fault_overloaded(flavor: Flavor) -> Response {
    match flavor {
        Flavor::OpenAi => openai::status_error(503),
        Flavor::Anthropic => anthropic::status_error(529),
        Flavor::Gemini => gemini::status_error(503),
    }
    .into_response()
}

/// A JSON type name in the style "a string" / "an object".
pub(crate) fn json_type_article(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `true` if the number is an integer (also `3.0`).
pub(crate) fn as_integer(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Some(f as i64)
    } else {
        None
    }
}
