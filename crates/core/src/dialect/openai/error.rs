//! Error bodies: `{"error": {"message", "type", "param", "code"}}`.

use serde::Serialize;
use serde_json::Value;

use super::wire::to_json;
use crate::ir::{ApiError, ErrorKind};
use crate::sse::write_event;

/// How much of a non-JSON upstream body is quoted in the error message.
const BODY_SNIPPET: usize = 500;

/// `type` strings OpenAI (and faithful compatibles) use; a provider type in
/// this set is passed through to clients unchanged.
const OPENAI_TYPES: &[&str] = &[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "server_error",
    "insufficient_quota",
    "tokens",
    "requests",
];

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// The OpenAI `type` string for an error kind.
fn type_for(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "invalid_request_error",
        // OpenAI's own 401s (no key, a wrong key) are `invalid_request_error`
        // with code `invalid_api_key`; clients tell them apart by status.
        ErrorKind::Authentication => "invalid_request_error",
        ErrorKind::PermissionDenied => "permission_error",
        // OpenAI reports unknown models and routes as 404 `invalid_request_error`.
        ErrorKind::NotFound => "invalid_request_error",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Api | ErrorKind::Overloaded | ErrorKind::BadGateway | ErrorKind::Timeout => {
            "server_error"
        }
    }
}

/// Classify an error `type` (or `code`) string when there is no HTTP status
/// to go by (errors inside a 200 stream or body).
fn kind_for_type(t: &str) -> Option<ErrorKind> {
    Some(match t {
        "invalid_request_error" | "invalid_request" => ErrorKind::InvalidRequest,
        "authentication_error" | "invalid_api_key" => ErrorKind::Authentication,
        "permission_error" => ErrorKind::PermissionDenied,
        "not_found_error" | "model_not_found" => ErrorKind::NotFound,
        "rate_limit_error"
        | "rate_limit_exceeded"
        | "tokens"
        | "requests"
        | "insufficient_quota" => ErrorKind::RateLimit,
        "overloaded_error" | "overloaded" | "service_unavailable" => ErrorKind::Overloaded,
        "timeout" | "timeout_error" => ErrorKind::Timeout,
        "server_error" | "api_error" | "internal_error" => ErrorKind::Api,
        _ => return None,
    })
}

fn body_json(err: &ApiError) -> Vec<u8> {
    let kind = match err.provider_type.as_deref() {
        Some(t) if OPENAI_TYPES.contains(&t) => t,
        _ => type_for(err.kind),
    };
    to_json(&ErrorBody {
        error: ErrorObject {
            message: &err.message,
            kind,
            param: err.param.as_deref(),
            code: err.code.as_deref(),
        },
    })
}

/// The client-facing error body for `err`.
pub fn encode_error(err: &ApiError) -> Vec<u8> {
    body_json(err)
}

/// A mid-stream error as OpenAI sends it: one SSE event whose data is the
/// error body. openai-python and openai-node raise as soon as they see a
/// chunk with an `error` key and stop reading, so nothing should follow it:
/// the server must *not* append `data: [DONE]` (a client waiting for
/// `[DONE]` then sees the stream end abnormally, which is the truth).
pub fn encode_stream_error(err: &ApiError, out: &mut Vec<u8>) {
    let body = body_json(err);
    write_event(out, None, &String::from_utf8_lossy(&body));
}

/// Scalar `code`/`param` values may be strings or numbers.
fn scalar_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Build an `ApiError` from an `error` value (object or bare string),
/// classifying it by `kind` when given, else by its type/code strings.
pub(super) fn error_from_value(kind: Option<ErrorKind>, error: &Value) -> ApiError {
    let obj = match error {
        Value::Object(o) => o,
        Value::String(s) => return ApiError::new(kind.unwrap_or(ErrorKind::Api), s.clone()),
        other => {
            return ApiError::new(
                kind.unwrap_or(ErrorKind::Api),
                format!("upstream error: {other}"),
            )
        }
    };
    let provider_type = scalar_text(obj.get("type"));
    let code = scalar_text(obj.get("code"));
    let kind = kind
        .or_else(|| provider_type.as_deref().and_then(kind_for_type))
        .or_else(|| code.as_deref().and_then(kind_for_type))
        .unwrap_or(ErrorKind::Api);
    let message = scalar_text(obj.get("message"))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "upstream reported an error without a message".to_owned());
    ApiError {
        kind,
        message,
        provider_type,
        code,
        param: scalar_text(obj.get("param")),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= BODY_SNIPPET {
        return text.to_owned();
    }
    let mut end = BODY_SNIPPET;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// An upstream error response (`status` ≥ 400, or an error object inside a
/// 2xx body) as an `ApiError`. The kind always follows the HTTP status.
/// Accepts the OpenAI shape, a bare `{"error": "text"}`, a list wrapping
/// either (Gemini's OpenAI endpoint), and `{"message"}`/`{"detail"}` bodies;
/// anything else is quoted (truncated) in the message.
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    let kind = ErrorKind::from_status(status);
    let fallback = || {
        let text = snippet(body);
        let message = if text.is_empty() {
            format!("upstream returned HTTP {status} with an empty body")
        } else {
            format!("upstream returned HTTP {status}: {text}")
        };
        ApiError::new(kind, message)
    };
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return fallback();
    };
    let value = match value {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        v => v,
    };
    let Value::Object(obj) = &value else {
        return fallback();
    };
    if let Some(err) = obj.get("error").filter(|e| !e.is_null()) {
        return error_from_value(Some(kind), err);
    }
    for key in ["message", "detail"] {
        if let Some(Value::String(m)) = obj.get(key) {
            return ApiError::new(kind, m.clone());
        }
    }
    fallback()
}
