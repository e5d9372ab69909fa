//! Gemini error bodies: `{"error": {"code", "message", "status", "details"}}`
//! (a `google.rpc.Status` as rendered by the REST front end).

use serde_json::{json, Value};

use super::wire::{ErrorEnvelope, Status};
use crate::ir::{ApiError, ErrorKind};

/// Longest stretch of a non-JSON error body kept in the message.
const MAX_BODY_SNIPPET: usize = 512;

/// Classify a google.rpc status name.
fn kind_from_status_name(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
        "UNAUTHENTICATED" => ErrorKind::Authentication,
        "PERMISSION_DENIED" => ErrorKind::PermissionDenied,
        "NOT_FOUND" => ErrorKind::NotFound,
        "RESOURCE_EXHAUSTED" => ErrorKind::RateLimit,
        "UNAVAILABLE" => ErrorKind::Overloaded,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        "INTERNAL" | "UNKNOWN" | "ABORTED" | "DATA_LOSS" | "UNIMPLEMENTED" | "CANCELLED" => {
            ErrorKind::Api
        }
        _ => return None,
    })
}

/// The `google.rpc.ErrorInfo.reason` in `details`, if any
/// (e.g. `API_KEY_INVALID`).
fn error_info_reason(details: Option<&[Value]>) -> Option<String> {
    details?.iter().find_map(|d| {
        let ty = d.get("@type")?.as_str()?;
        if !ty.ends_with("google.rpc.ErrorInfo") {
            return None;
        }
        d.get("reason")?.as_str().map(str::to_owned)
    })
}

/// Build an [`ApiError`] from a Gemini status object. `http_status` is the
/// HTTP status of the response when known (absent for an error inside an
/// SSE stream or a 200 body); otherwise `code` is used.
pub(super) fn from_status(http_status: Option<u16>, s: Status) -> ApiError {
    let code = http_status.filter(|c| *c >= 400).or_else(|| {
        s.code
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| *c >= 400)
    });
    let by_name = s.status.as_deref().and_then(kind_from_status_name);
    let reason = error_info_reason(s.details.as_deref());
    let mut kind = match (code, by_name) {
        (Some(c), _) => ErrorKind::from_status(c),
        (None, Some(k)) => k,
        (None, None) => ErrorKind::Api,
    };
    // Gemini answers a bad API key with 400 INVALID_ARGUMENT + API_KEY_INVALID.
    if by_name == Some(ErrorKind::Authentication) || reason.as_deref() == Some("API_KEY_INVALID") {
        kind = ErrorKind::Authentication;
    }
    let msg = s
        .message
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "Gemini returned an error without a message".to_owned());
    let message = match s.status.as_deref() {
        Some(st) if !st.is_empty() => format!("{msg} ({st})"),
        _ => msg,
    };
    ApiError {
        kind,
        message,
        provider_type: s.status.filter(|st| !st.is_empty()),
        code: reason,
        param: None,
    }
}

/// Decode an upstream error response. The kind comes from the HTTP status
/// (refined to `Authentication` for `UNAUTHENTICATED` / `API_KEY_INVALID`);
/// the message is Gemini's message plus the status name. A body that is not
/// a Gemini error yields its (truncated) text.
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .and_then(|e| e.error)
        // `streamGenerateContent` without `alt=sse` wraps errors in an array.
        .or_else(|| {
            serde_json::from_slice::<Vec<ErrorEnvelope>>(body)
                .ok()
                .and_then(|v| v.into_iter().find_map(|e| e.error))
        });
    if let Some(s) = parsed {
        return from_status(Some(status), s);
    }
    let kind = if status >= 400 {
        ErrorKind::from_status(status)
    } else {
        ErrorKind::BadGateway
    };
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        format!("Gemini returned HTTP {status} with an empty body")
    } else {
        let mut end = text.len().min(MAX_BODY_SNIPPET);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let ellipsis = if end < text.len() { "…" } else { "" };
        format!("Gemini returned HTTP {status}: {}{ellipsis}", &text[..end])
    };
    ApiError::new(kind, message)
}

/// The HTTP status Gemini uses for an error kind (`Overloaded` is 503
/// `UNAVAILABLE` on Gemini, not 529).
pub fn http_status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::Overloaded => 503,
        k => k.status(),
    }
}

fn status_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "INVALID_ARGUMENT",
        ErrorKind::Authentication => "UNAUTHENTICATED",
        ErrorKind::PermissionDenied => "PERMISSION_DENIED",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::RateLimit => "RESOURCE_EXHAUSTED",
        ErrorKind::Api => "INTERNAL",
        ErrorKind::Overloaded => "UNAVAILABLE",
        ErrorKind::BadGateway => "UNKNOWN",
        ErrorKind::Timeout => "DEADLINE_EXCEEDED",
    }
}

/// A Gemini error body for `err` (for the mock provider and tests): `code`
/// is [`http_status`] of the kind, `status` the matching google.rpc name,
/// and `err.code`, when set, becomes a `google.rpc.ErrorInfo` reason.
pub fn encode_error(err: &ApiError) -> Vec<u8> {
    let mut error = json!({
        "code": http_status(err.kind),
        "message": err.message,
        "status": status_name(err.kind),
    });
    if let Some(reason) = &err.code {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "googleapis.com",
        }]);
    }
    json!({ "error": error }).to_string().into_bytes()
}
