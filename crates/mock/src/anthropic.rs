//! Anthropic flavor: `POST /v1/messages`, `POST /v1/messages/count_tokens`,
//! `GET /v1/models[/{id}]`.
//!
//! Validation (from `anthropic-sdk-python` `MessageCreateParams` and the
//! Messages / errors / versioning docs):
//! * `x-api-key` required (401 `authentication_error`), `anthropic-version`
//!   header required and one of `2023-06-01` / `2023-01-01` (400);
//! * unknown top-level, message, block, tool and metadata fields →
//!   `X: Extra inputs are not permitted`;
//! * `model`, `max_tokens` (integer ≥ 0), `messages` (non-empty) required;
//!   `temperature` / `top_p` 0..=1, `top_k` ≥ 0, `stop_sequences` strings,
//!   `stream` boolean, `system` string or text blocks;
//! * roles `user` / `assistant` only (a `system` role is rejected: the system
//!   prompt is top-level); every message but a final assistant one must have
//!   non-empty content; consecutive same-role turns are allowed (the API
//!   merges them);
//! * content blocks: `text{text}` (non-empty), `image{source}` with
//!   `base64{media_type ∈ jpeg/png/gif/webp, data}` / `url{url}` /
//!   `file{file_id}`, `document{source}`, `tool_use{id,name,input: object}`
//!   (assistant only), `tool_result{tool_use_id, content?, is_error?}` (user
//!   only), `thinking{thinking,signature}`, `redacted_thinking{data}`;
//! * pairing: each `tool_use` in an assistant turn must be answered by a
//!   `tool_result` in the immediately following user message, and every
//!   `tool_result` must answer a `tool_use` of the previous message;
//! * tools: custom tools need `name` and `input_schema` with `type: object`
//!   (names unique); versioned server tools (`web_search_20250305`, …) need a
//!   `name`; `tool_choice` `auto|any|tool{name}|none` (+
//!   `disable_parallel_tool_use`), `tool`/`any` only with tools;
//! * `thinking` `enabled{budget_tokens ≥ 1024, < max_tokens}` / `disabled` /
//!   `adaptive`; `output_config.format` `json_schema{schema}` (structured
//!   outputs → JSON reply);
//! * model names starting with `missing` → 404 `not_found_error`.

use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::common::{as_integer, json_response, now_secs, random_id, ApiError};
use crate::reply::{
    count_tokens, json_fragments, plan, text_pieces, Finish, LastTurn, Output, Summary, ToolDef,
    ToolMode,
};
use crate::stream::{json_with_fault, stream_response, StreamSpec};
use crate::{Fault, Incoming};

const MESSAGE_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "cache_control",
    "container",
    "context_management",
    "inference_geo",
    "mcp_servers",
    "metadata",
    "output_config",
    "output_format",
    "service_tier",
    "stop_sequences",
    "stream",
    "system",
    "temperature",
    "thinking",
    "tool_choice",
    "tools",
    "top_k",
    "top_p",
];

const COUNT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "cache_control",
    "context_management",
    "mcp_servers",
    "output_config",
    "output_format",
    "system",
    "thinking",
    "tool_choice",
    "tools",
];

const MODELS: &[(&str, &str, &str)] = &[
    (
        "claude-sonnet-4-5",
        "Claude Sonnet 4.5",
        "2025-09-29T00:00:00Z",
    ),
    (
        "claude-haiku-4-5",
        "Claude Haiku 4.5",
        "2025-10-01T00:00:00Z",
    ),
    ("claude-opus-4-1", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
];

const BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "container_upload",
];

/// An Anthropic-shaped error (body `request_id` and `request-id` header agree).
pub(crate) fn error(status: u16, ty: &str, message: impl Into<String>) -> ApiError {
    let rid = format!("req_{}", random_id(24));
    ApiError {
        status,
        body: json!({
            "type": "error",
            "error": {"type": ty, "message": message.into()},
            "request_id": rid,
        }),
        headers: vec![("request-id".into(), rid)],
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    error(400, "invalid_request_error", message)
}

fn extra(path: &str) -> ApiError {
    invalid(format!("{path}: Extra inputs are not permitted"))
}

fn required(path: &str) -> ApiError {
    invalid(format!("{path}: Field required"))
}

/// The error returned for `Fault::Status(code)`.
pub(crate) fn status_error(code: u16) -> ApiError {
    match code {
        400 => invalid("Invalid request (mock fault)."),
        401 => error(401, "authentication_error", "invalid x-api-key"),
        402 => error(
            402,
            "billing_error",
            "Your credit balance is too low to access the Anthropic API.",
        ),
        403 => error(
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => error(404, "not_found_error", "Not Found"),
        413 => error(
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => rate_limited(1),
        504 => error(504, "timeout_error", "Request timed out."),
        529 => error(529, "overloaded_error", "Overloaded"),
        c if c >= 500 => error(c, "api_error", "Internal server error"),
        c => error(
            c,
            "invalid_request_error",
            format!("Mock fault status {c}."),
        ),
    }
}

/// 429 `rate_limit_error` with `retry-after` and `anthropic-ratelimit-*`.
pub(crate) fn rate_limited(secs: u64) -> ApiError {
    let reset = rfc3339(now_secs().saturating_add(secs));
    error(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    )
    .with_header("retry-after", secs.to_string())
    .with_header("anthropic-ratelimit-requests-limit", "50")
    .with_header("anthropic-ratelimit-requests-remaining", "0")
    .with_header("anthropic-ratelimit-requests-reset", reset)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn success_headers() -> Vec<(String, String)> {
    let reset = rfc3339(now_secs() + 1);
    vec![
        ("request-id".into(), format!("req_{}", random_id(24))),
        ("anthropic-ratelimit-requests-limit".into(), "4000".into()),
        (
            "anthropic-ratelimit-requests-remaining".into(),
            "3999".into(),
        ),
        ("anthropic-ratelimit-requests-reset".into(), reset.clone()),
        (
            "anthropic-ratelimit-input-tokens-limit".into(),
            "400000".into(),
        ),
        (
            "anthropic-ratelimit-input-tokens-remaining".into(),
            "399000".into(),
        ),
        (
            "anthropic-ratelimit-input-tokens-reset".into(),
            reset.clone(),
        ),
        (
            "anthropic-ratelimit-output-tokens-limit".into(),
            "80000".into(),
        ),
        (
            "anthropic-ratelimit-output-tokens-remaining".into(),
            "79000".into(),
        ),
        ("anthropic-ratelimit-output-tokens-reset".into(), reset),
    ]
}

fn check_headers(req: &Incoming) -> Result<(), ApiError> {
    let key = req
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if key.is_empty() {
        return Err(error(
            401,
            "authentication_error",
            "x-api-key header is required",
        ));
    }
    if let Some(expected) = &req.opts.api_key {
        if key != expected {
            return Err(error(401, "authentication_error", "invalid x-api-key"));
        }
    }
    match req.headers.get("anthropic-version").and_then(|v| v.to_str().ok()) {
        None => Err(invalid("anthropic-version: header is required")),
        Some("2023-06-01") | Some("2023-01-01") => Ok(()),
        Some(other) => Err(invalid(format!(
            "anthropic-version: Unknown version '{other}'. Supported versions: 2023-06-01, 2023-01-01"
        ))),
    }
}

enum Route {
    Messages,
    CountTokens,
    Models,
    Model(String),
}

pub(crate) async fn handle(req: Incoming) -> Response {
    let route = match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v1/messages") => Route::Messages,
        ("POST", "/v1/messages/count_tokens") => Route::CountTokens,
        ("GET", "/v1/models") => Route::Models,
        ("GET", p) if p.starts_with("/v1/models/") => {
            Route::Model(p["/v1/models/".len()..].to_string())
        }
        _ => return error(404, "not_found_error", "Not Found").into_response(),
    };
    if let Err(e) = check_headers(&req) {
        return e.into_response();
    }
    let result = match route {
        Route::Messages => messages(&req),
        Route::CountTokens => count(&req),
        Route::Models => Ok(models()),
        Route::Model(id) => model(&id),
    };
    result.unwrap_or_else(ApiError::into_response)
}

fn model_entry(id: &str, name: &str, created: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": name, "created_at": created})
}

fn models() -> Response {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, n, c)| model_entry(id, n, c))
        .collect();
    json_response(
        200,
        &json!({
            "data": data,
            "has_more": false,
            "first_id": MODELS.first().map(|m| m.0),
            "last_id": MODELS.last().map(|m| m.0),
        }),
        &success_headers(),
    )
}

fn model(id: &str) -> Result<Response, ApiError> {
    if id.starts_with("missing") || id.is_empty() {
        return Err(error(404, "not_found_error", format!("model: {id}")));
    }
    let (name, created) = MODELS
        .iter()
        .find(|m| m.0 == id)
        .map(|m| (m.1, m.2))
        .unwrap_or((id, "2025-01-01T00:00:00Z"));
    Ok(json_response(
        200,
        &model_entry(id, name, created),
        &success_headers(),
    ))
}

fn parse_body(req: &Incoming) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid(
            "Input should be a valid dictionary or object to extract fields from",
        )),
        Err(e) => Err(invalid(format!(
            "There was an error parsing the body of your request: {e}"
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dictionary",
    }
}

fn want_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, ApiError> {
    match m.get(key) {
        None => Err(required(&format!("{path}.{key}"))),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(format!(
            "{path}.{key}: Input should be a valid string"
        ))),
    }
}

fn check_keys(m: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), ApiError> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(extra(&format!("{path}.{k}")));
        }
    }
    Ok(())
}

fn opt_range(m: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<(), ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => {
            let f = v
                .as_f64()
                .ok_or_else(|| invalid(format!("{key}: Input should be a valid number")))?;
            if f < min {
                return Err(invalid(format!(
                    "{key}: Input should be greater than or equal to {min}"
                )));
            }
            if f > max {
                return Err(invalid(format!(
                    "{key}: Input should be less than or equal to {max}"
                )));
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// Messages.

#[derive(Default)]
struct MsgInfo {
    role: String,
    text: String,
    images: usize,
    tool_uses: Vec<(String, String)>,
    /// (block index, tool_use_id, content text)
    tool_results: Vec<(usize, String, String)>,
}

fn check_image_source(src: &Value, path: &str, block: &str) -> Result<(), ApiError> {
    let s = src
        .as_object()
        .ok_or_else(|| invalid(format!("{path}.source: Input should be a valid dictionary")))?;
    let ty = want_str(s, "type", &format!("{path}.source"))?;
    let spath = format!("{path}.source.{ty}");
    match ty {
        "base64" => {
            check_keys(s, &["type", "media_type", "data"], &spath)?;
            let mt = want_str(s, "media_type", &spath)?;
            if block == "image" {
                const MEDIA: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];
                if !MEDIA.contains(&mt) {
                    return Err(invalid(format!(
                        "{spath}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                    )));
                }
            } else if mt != "application/pdf" {
                return Err(invalid(format!(
                    "{spath}.media_type: Input should be 'application/pdf'"
                )));
            }
            let data = want_str(s, "data", &spath)?;
            if base64::engine::general_purpose::STANDARD
                .decode(data)
                .is_err()
            {
                return Err(invalid(format!("{spath}.data: invalid base64 data")));
            }
        }
        "url" => {
            check_keys(s, &["type", "url"], &spath)?;
            want_str(s, "url", &spath)?;
        }
        "file" => {
            check_keys(s, &["type", "file_id"], &spath)?;
            want_str(s, "file_id", &spath)?;
        }
        "text" if block == "document" => {
            check_keys(s, &["type", "media_type", "data"], &spath)?;
            want_str(s, "data", &spath)?;
        }
        "content" if block == "document" => {}
        other => {
            let expected = if block == "image" {
                "'base64', 'url', 'file'"
            } else {
                "'base64', 'text', 'content', 'url', 'file'"
            };
            return Err(invalid(format!(
                "{path}.source: Input tag '{other}' found using 'type' does not match any of the expected tags: {expected}"
            )));
        }
    }
    Ok(())
}

fn text_of_result_content(
    c: Option<&Value>,
    path: &str,
    info: &mut MsgInfo,
) -> Result<String, ApiError> {
    match c {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut out = String::new();
            for (k, b) in blocks.iter().enumerate() {
                let bp = format!("{path}.content.{k}");
                let o = b
                    .as_object()
                    .ok_or_else(|| invalid(format!("{bp}: Input should be a valid dictionary")))?;
                let ty = want_str(o, "type", &bp)?;
                match ty {
                    "text" => {
                        check_keys(o, &["type", "text", "cache_control", "citations"], &format!("{bp}.text"))?;
                        out.push_str(want_str(o, "text", &format!("{bp}.text"))?);
                    }
                    "image" => {
                        check_keys(o, &["type", "source", "cache_control"], &format!("{bp}.image"))?;
                        let src = o
                            .get("source")
                            .ok_or_else(|| required(&format!("{bp}.image.source")))?;
                        check_image_source(src, &format!("{bp}.image"), "image")?;
                        info.images += 1;
                    }
                    "document" | "search_result" | "tool_reference" => {}
                    other => {
                        return Err(invalid(format!(
                            "{bp}: Input tag '{other}' found using 'type' does not match any of the expected tags: 'text', 'image', 'search_result', 'document'"
                        )))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(invalid(format!(
            "{path}.content: Input should be a valid list"
        ))),
    }
}

fn parse_message(i: usize, m: &Value, is_last: bool) -> Result<MsgInfo, ApiError> {
    let path = format!("messages.{i}");
    let o = m
        .as_object()
        .ok_or_else(|| invalid(format!("{path}: Input should be a valid dictionary")))?;
    check_keys(o, &["role", "content"], &path)?;
    let role = match o.get("role") {
        None => return Err(required(&format!("{path}.role"))),
        Some(Value::String(r)) if r == "user" || r == "assistant" => r.clone(),
        Some(_) => {
            return Err(invalid(format!(
                "{path}.role: Input should be 'user' or 'assistant'"
            )))
        }
    };
    let mut info = MsgInfo {
        role: role.clone(),
        ..MsgInfo::default()
    };
    let empty_err = || {
        invalid(format!(
            "{path}: all messages must have non-empty content except for the optional final assistant message"
        ))
    };
    let may_be_empty = is_last && role == "assistant";
    match o.get("content") {
        None => return Err(required(&format!("{path}.content"))),
        Some(Value::String(s)) => {
            if s.is_empty() && !may_be_empty {
                return Err(empty_err());
            }
            info.text.push_str(s);
        }
        Some(Value::Array(blocks)) => {
            if blocks.is_empty() && !may_be_empty {
                return Err(empty_err());
            }
            for (j, b) in blocks.iter().enumerate() {
                parse_block(&path, j, b, &role, &mut info)?;
            }
        }
        Some(v) => {
            return Err(invalid(format!(
                "{path}.content: Input should be a valid string or list, got {}",
                type_name(v)
            )))
        }
    }
    Ok(info)
}

fn parse_block(
    path: &str,
    j: usize,
    b: &Value,
    role: &str,
    info: &mut MsgInfo,
) -> Result<(), ApiError> {
    let bp = format!("{path}.content.{j}");
    let o = b
        .as_object()
        .ok_or_else(|| invalid(format!("{bp}: Input should be a valid dictionary")))?;
    let ty = match o.get("type") {
        None => {
            return Err(invalid(format!(
                "{bp}: Unable to extract tag using discriminator 'type'"
            )))
        }
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(invalid(format!(
                "{bp}.type: Input should be a valid string"
            )))
        }
    };
    if !BLOCK_TYPES.contains(&ty) {
        let tags: Vec<String> = BLOCK_TYPES.iter().map(|t| format!("'{t}'")).collect();
        return Err(invalid(format!(
            "{bp}: Input tag '{ty}' found using 'type' does not match any of the expected tags: {}",
            tags.join(", ")
        )));
    }
    let tp = format!("{bp}.{ty}");
    let user_only = [
        "image",
        "document",
        "tool_result",
        "search_result",
        "container_upload",
    ];
    let assistant_only = [
        "tool_use",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
    ];
    if role == "assistant" && user_only.contains(&ty) {
        return Err(invalid(format!(
            "{bp}: `{ty}` blocks are only allowed in `user` messages"
        )));
    }
    if role == "user" && assistant_only.contains(&ty) {
        return Err(invalid(format!(
            "{bp}: `{ty}` blocks are only allowed in `assistant` messages"
        )));
    }
    match ty {
        "text" => {
            check_keys(o, &["type", "text", "cache_control", "citations"], &tp)?;
            let t = want_str(o, "text", &tp)?;
            if t.is_empty() {
                return Err(invalid(format!(
                    "{tp}: text content blocks must be non-empty"
                )));
            }
            if !info.text.is_empty() {
                info.text.push('\n');
            }
            info.text.push_str(t);
        }
        "image" => {
            check_keys(o, &["type", "source", "cache_control"], &tp)?;
            let src = o
                .get("source")
                .ok_or_else(|| required(&format!("{tp}.source")))?;
            check_image_source(src, &tp, "image")?;
            info.images += 1;
        }
        "document" => {
            check_keys(
                o,
                &[
                    "type",
                    "source",
                    "cache_control",
                    "citations",
                    "context",
                    "title",
                ],
                &tp,
            )?;
            let src = o
                .get("source")
                .ok_or_else(|| required(&format!("{tp}.source")))?;
            check_image_source(src, &tp, "document")?;
        }
        "tool_use" => {
            check_keys(
                o,
                &["type", "id", "name", "input", "cache_control", "caller"],
                &tp,
            )?;
            let id = want_str(o, "id", &tp)?;
            let name = want_str(o, "name", &tp)?;
            match o.get("input") {
                None => return Err(required(&format!("{tp}.input"))),
                Some(Value::Object(_)) => {}
                Some(_) => {
                    return Err(invalid(format!(
                        "{tp}.input: Input should be a valid dictionary"
                    )))
                }
            }
            info.tool_uses.push((id.to_string(), name.to_string()));
        }
        "tool_result" => {
            check_keys(
                o,
                &[
                    "type",
                    "tool_use_id",
                    "content",
                    "is_error",
                    "cache_control",
                ],
                &tp,
            )?;
            let id = want_str(o, "tool_use_id", &tp)?.to_string();
            if let Some(e) = o.get("is_error") {
                if !e.is_boolean() {
                    return Err(invalid(format!(
                        "{tp}.is_error: Input should be a valid boolean"
                    )));
                }
            }
            let text = text_of_result_content(o.get("content"), &tp, info)?;
            info.tool_results.push((j, id, text));
        }
        "thinking" => {
            check_keys(o, &["type", "thinking", "signature"], &tp)?;
            want_str(o, "thinking", &tp)?;
            want_str(o, "signature", &tp)?;
        }
        "redacted_thinking" => {
            check_keys(o, &["type", "data"], &tp)?;
            want_str(o, "data", &tp)?;
        }
        _ => {}
    }
    Ok(())
}

fn check_pairing(msgs: &[MsgInfo]) -> Result<(), ApiError> {
    for (i, m) in msgs.iter().enumerate() {
        if m.role == "assistant" && !m.tool_uses.is_empty() {
            let answered: Vec<&str> = match msgs.get(i + 1) {
                Some(next) if next.role == "user" => next
                    .tool_results
                    .iter()
                    .map(|(_, id, _)| id.as_str())
                    .collect(),
                _ => Vec::new(),
            };
            let missing: Vec<&str> = m
                .tool_uses
                .iter()
                .map(|(id, _)| id.as_str())
                .filter(|id| !answered.contains(id))
                .collect();
            if !missing.is_empty() {
                return Err(invalid(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    missing.join(", ")
                )));
            }
        }
        if m.role == "user" && !m.tool_results.is_empty() {
            let prev: Vec<&str> = match i.checked_sub(1).and_then(|p| msgs.get(p)) {
                Some(p) if p.role == "assistant" => {
                    p.tool_uses.iter().map(|(id, _)| id.as_str()).collect()
                }
                _ => Vec::new(),
            };
            for (j, id, _) in &m.tool_results {
                if !prev.contains(&id.as_str()) {
                    return Err(invalid(format!(
                        "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                    )));
                }
            }
        }
    }
    Ok(())
}

struct MsgReq {
    model: String,
    stream: bool,
    summary: Summary,
}

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_server_tool_type(ty: &str) -> bool {
    // Versioned server/client tools look like `web_search_20250305`.
    ty.rsplit_once('_').is_some_and(|(base, date)| {
        !base.is_empty() && date.len() == 8 && date.chars().all(|c| c.is_ascii_digit())
    })
}

fn validate(body: &Map<String, Value>, counting: bool) -> Result<MsgReq, ApiError> {
    check_keys(
        body,
        if counting {
            COUNT_FIELDS
        } else {
            MESSAGE_FIELDS
        },
        "",
    )
    .map_err(|e| {
        // Top-level paths have no leading dot.
        let msg = e.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches('.')
            .to_string();
        invalid(msg)
    })?;
    let model = match body.get("model") {
        None => return Err(required("model")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("model: Input should be a valid string")),
    };
    let mut max_tokens = None;
    if !counting {
        max_tokens = match body.get("max_tokens") {
            None => return Err(required("max_tokens")),
            Some(v) => match as_integer(v) {
                Some(i) if i >= 0 => Some(i as u64),
                Some(_) => {
                    return Err(invalid(
                        "max_tokens: Input should be greater than or equal to 0",
                    ))
                }
                None => return Err(invalid("max_tokens: Input should be a valid integer")),
            },
        };
    }
    let messages = match body.get("messages") {
        None => return Err(required("messages")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid("messages: Input should be a valid list")),
    };
    if messages.is_empty() {
        return Err(invalid("messages: at least one message is required"));
    }
    let n = messages.len();
    let infos = messages
        .iter()
        .enumerate()
        .map(|(i, m)| parse_message(i, m, i + 1 == n))
        .collect::<Result<Vec<_>, _>>()?;

    opt_range(body, "temperature", 0.0, 1.0)?;
    opt_range(body, "top_p", 0.0, 1.0)?;
    if let Some(v) = body.get("top_k") {
        match as_integer(v) {
            Some(i) if i >= 0 => {}
            Some(_) => return Err(invalid("top_k: Input should be greater than or equal to 0")),
            None => return Err(invalid("top_k: Input should be a valid integer")),
        }
    }
    let stream = match body.get("stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream: Input should be a valid boolean")),
    };
    let stop: Vec<String> = match body.get("stop_sequences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    invalid(format!(
                        "stop_sequences.{i}: Input should be a valid string"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("stop_sequences: Input should be a valid list")),
    };
    let mut system_text = String::new();
    match body.get("system") {
        None => {}
        Some(Value::String(s)) => system_text.push_str(s),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                let p = format!("system.{i}");
                let o = b
                    .as_object()
                    .ok_or_else(|| invalid(format!("{p}: Input should be a valid dictionary")))?;
                check_keys(o, &["type", "text", "cache_control", "citations"], &p)?;
                if want_str(o, "type", &p)? != "text" {
                    return Err(invalid(format!("{p}.type: Input should be 'text'")));
                }
                system_text.push_str(want_str(o, "text", &p)?);
            }
        }
        Some(_) => return Err(invalid("system: Input should be a valid string or list")),
    }
    if let Some(md) = body.get("metadata") {
        let o = md
            .as_object()
            .ok_or_else(|| invalid("metadata: Input should be a valid dictionary"))?;
        check_keys(o, &["user_id"], "metadata")?;
    }
    match body.get("thinking") {
        None => {}
        Some(Value::Object(t)) => {
            match t.get("type").and_then(Value::as_str) {
                Some("enabled") => {
                    check_keys(t, &["type", "budget_tokens", "display"], "thinking.enabled")?;
                    let budget = t
                        .get("budget_tokens")
                        .ok_or_else(|| required("thinking.enabled.budget_tokens"))?;
                    let budget = as_integer(budget).ok_or_else(|| {
                        invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
                    })?;
                    if budget < 1024 {
                        return Err(invalid(
                            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                        ));
                    }
                    if let Some(mt) = max_tokens {
                        if budget as u64 >= mt {
                            return Err(invalid(
                                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
                            ));
                        }
                    }
                }
                Some("disabled") => check_keys(t, &["type"], "thinking.disabled")?,
                Some("adaptive") => check_keys(t, &["type", "display"], "thinking.adaptive")?,
                _ => {
                    return Err(invalid(
                        "thinking: Input tag found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'",
                    ))
                }
            }
        }
        Some(_) => return Err(invalid("thinking: Input should be a valid dictionary")),
    }
    let mut json_mode = None;
    for key in ["output_config", "output_format"] {
        let Some(v) = body.get(key) else { continue };
        let o = v
            .as_object()
            .ok_or_else(|| invalid(format!("{key}: Input should be a valid dictionary")))?;
        let fmt = if key == "output_config" {
            check_keys(o, &["effort", "format"], key)?;
            o.get("format").filter(|f| !f.is_null())
        } else {
            Some(v)
        };
        if let Some(f) = fmt {
            let path = if key == "output_config" {
                "output_config.format"
            } else {
                key
            };
            let fo = f
                .as_object()
                .ok_or_else(|| invalid(format!("{path}: Input should be a valid dictionary")))?;
            check_keys(fo, &["type", "schema"], path)?;
            if fo.get("type").and_then(Value::as_str) != Some("json_schema") {
                return Err(invalid(format!(
                    "{path}.type: Input should be 'json_schema'"
                )));
            }
            let schema = fo
                .get("schema")
                .ok_or_else(|| required(&format!("{path}.schema")))?;
            if !schema.is_object() {
                return Err(invalid(format!(
                    "{path}.schema: Input should be a valid dictionary"
                )));
            }
            json_mode = Some(Some(schema.clone()));
        }
    }

    // Tools.
    let mut tools: Vec<ToolDef> = Vec::new();
    let mut all_names: Vec<String> = Vec::new();
    match body.get("tools") {
        None => {}
        Some(Value::Array(a)) => {
            for (i, t) in a.iter().enumerate() {
                let p = format!("tools.{i}");
                let o = t
                    .as_object()
                    .ok_or_else(|| invalid(format!("{p}: Input should be a valid dictionary")))?;
                let ty = o.get("type").and_then(Value::as_str);
                match ty {
                    None | Some("custom") => {
                        let cp = format!("{p}.custom");
                        check_keys(
                            o,
                            &[
                                "type",
                                "name",
                                "description",
                                "input_schema",
                                "cache_control",
                                "strict",
                                "input_examples",
                                "defer_loading",
                                "allowed_callers",
                                "eager_input_streaming",
                            ],
                            &cp,
                        )?;
                        let name = want_str(o, "name", &cp)?;
                        if !valid_tool_name(name) {
                            return Err(invalid(format!(
                                "{cp}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
                            )));
                        }
                        let schema = o
                            .get("input_schema")
                            .ok_or_else(|| required(&format!("{cp}.input_schema")))?;
                        let so = schema.as_object().ok_or_else(|| {
                            invalid(format!("{cp}.input_schema: Input should be a valid dictionary"))
                        })?;
                        if so.get("type").and_then(Value::as_str) != Some("object") {
                            return Err(invalid(format!(
                                "{cp}.input_schema.type: Input should be 'object'"
                            )));
                        }
                        all_names.push(name.to_string());
                        tools.push(ToolDef {
                            name: name.to_string(),
                            schema: schema.clone(),
                        });
                    }
                    Some(server) if is_server_tool_type(server) => {
                        all_names.push(want_str(o, "name", &format!("{p}.{server}"))?.to_string());
                    }
                    Some(other) => {
                        return Err(invalid(format!(
                            "{p}: Input tag '{other}' found using 'type' does not match any of the expected tags"
                        )))
                    }
                }
            }
        }
        Some(_) => return Err(invalid("tools: Input should be a valid list")),
    }
    let mut sorted = all_names.clone();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("tools: Tool names must be unique."));
    }
    let mut parallel_allowed = true;
    let tool_mode = match body.get("tool_choice") {
        None => ToolMode::Auto,
        Some(Value::Object(o)) => {
            let ty = want_str(o, "type", "tool_choice")?;
            let tp = format!("tool_choice.{ty}");
            let mode = match ty {
                "auto" => {
                    check_keys(o, &["type", "disable_parallel_tool_use"], &tp)?;
                    ToolMode::Auto
                }
                "any" => {
                    check_keys(o, &["type", "disable_parallel_tool_use"], &tp)?;
                    ToolMode::Any
                }
                "none" => {
                    check_keys(o, &["type"], &tp)?;
                    ToolMode::None
                }
                "tool" => {
                    check_keys(o, &["type", "name", "disable_parallel_tool_use"], &tp)?;
                    let name = want_str(o, "name", &tp)?;
                    if !all_names.iter().any(|n| n == name) {
                        return Err(invalid(format!(
                            "{tp}.name: Tool '{name}' not found in provided tools"
                        )));
                    }
                    ToolMode::Forced(name.to_string())
                }
                other => {
                    return Err(invalid(format!(
                        "tool_choice: Input tag '{other}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
                    )))
                }
            };
            if let Some(d) = o.get("disable_parallel_tool_use") {
                parallel_allowed = !d.as_bool().ok_or_else(|| {
                    invalid(format!(
                        "{tp}.disable_parallel_tool_use: Input should be a valid boolean"
                    ))
                })?;
            }
            if matches!(mode, ToolMode::Any | ToolMode::Forced(_)) && all_names.is_empty() {
                return Err(invalid(
                    "tool_choice: `tool_choice` may only be specified while providing `tools`",
                ));
            }
            mode
        }
        Some(_) => return Err(invalid("tool_choice: Input should be a valid dictionary")),
    };

    check_pairing(&infos)?;

    let mut s = Summary::new();
    if !system_text.is_empty() {
        s.add_input(&system_text, 0);
    }
    if let Some(t) = body.get("tools") {
        s.input_tokens += count_tokens(&t.to_string());
    }
    let mut names: Vec<(String, String)> = Vec::new();
    for m in &infos {
        s.add_input(&m.text, m.images);
        names.extend(m.tool_uses.iter().cloned());
        if m.role == "user" && m.tool_results.is_empty() {
            s.last_user_text = m.text.clone();
            s.last_user_images = m.images;
        }
    }
    if let Some(last) = infos.last() {
        s.last = if last.role == "assistant" {
            LastTurn::Assistant
        } else if let Some((_, id, content)) = last.tool_results.last() {
            let name = names
                .iter()
                .rev()
                .find(|(i, _)| i == id)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            LastTurn::ToolResult {
                name,
                content: content.clone(),
            }
        } else {
            LastTurn::User
        };
    }
    s.tools = tools;
    s.tool_mode = tool_mode;
    s.parallel_allowed = parallel_allowed;
    s.max_tokens = max_tokens;
    s.stop = stop;
    s.json = json_mode;
    Ok(MsgReq {
        model,
        stream,
        summary: s,
    })
}

fn count(req: &Incoming) -> Result<Response, ApiError> {
    let body = parse_body(req)?;
    let r = validate(&body, true)?;
    if r.model.starts_with("missing") {
        return Err(error(404, "not_found_error", format!("model: {}", r.model)));
    }
    Ok(json_response(
        200,
        &json!({"input_tokens": r.summary.input_tokens}),
        &success_headers(),
    ))
}

fn messages(req: &Incoming) -> Result<Response, ApiError> {
    let body = parse_body(req)?;
    let r = validate(&body, false)?;
    if r.model.starts_with("missing") {
        return Err(error(404, "not_found_error", format!("model: {}", r.model)));
    }
    if matches!(req.fault, Some(Fault::StreamError { .. })) && !r.stream {
        return Err(status_error(500));
    }
    let mut p = plan(&req.opts.label, &r.summary);
    if r.summary.max_tokens == Some(0) {
        p.output = Output::Text(String::new());
        p.finish = Finish::Length;
        p.output_tokens = 0;
    }
    let (stop_reason, stop_sequence) = match &p.finish {
        Finish::Stop => ("end_turn", Value::Null),
        Finish::Length => ("max_tokens", Value::Null),
        Finish::StopSequence(s) => ("stop_sequence", Value::String(s.clone())),
        Finish::ToolUse => ("tool_use", Value::Null),
    };
    let id = format!("msg_{}", random_id(24));
    let blocks: Vec<Value> = match &p.output {
        Output::Text(t) if t.is_empty() => Vec::new(),
        Output::Text(t) => vec![json!({"type": "text", "text": t})],
        Output::Calls(calls) => calls
            .iter()
            .map(|c| {
                json!({"type": "tool_use", "id": format!("toolu_{}", random_id(24)),
                       "name": c.name, "input": c.args})
            })
            .collect(),
    };
    let headers = success_headers();
    if !r.stream {
        let out = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": r.model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": p.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": p.output_tokens,
                "service_tier": "standard",
            },
        });
        return Ok(json_with_fault(&out, headers, req.fault.as_ref()));
    }

    let ev = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut frames = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": r.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": p.input_tokens, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 1,
                      "service_tier": "standard"}}}),
    )];
    let ping = ev("ping", json!({"type": "ping"}));
    let mut pinged = false;
    for (index, block) in blocks.iter().enumerate() {
        let start_block = match block["type"].as_str() {
            Some("tool_use") => {
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}})
            }
            _ => json!({"type": "text", "text": ""}),
        };
        frames.push(ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start_block}),
        ));
        if !pinged {
            frames.push(ping.clone());
            pinged = true;
        }
        match block["type"].as_str() {
            Some("tool_use") => {
                for frag in json_fragments(&block["input"].to_string()) {
                    frames.push(ev(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": frag}}),
                    ));
                }
            }
            _ => {
                for piece in text_pieces(block["text"].as_str().unwrap_or("")) {
                    frames.push(ev(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": piece}}),
                    ));
                }
            }
        }
        frames.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    if !pinged {
        frames.push(ping);
    }
    frames.push(ev(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
               "usage": {"output_tokens": p.output_tokens}}),
    ));
    frames.push(ev("message_stop", json!({"type": "message_stop"})));
    let err =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    Ok(stream_response(
        StreamSpec {
            frames,
            error_frames: vec![ev("error", err)],
            malformed_frame: Bytes::from(
                "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\n\n",
            ),
            malformed_tail: Vec::new(),
            content_type: "text/event-stream; charset=utf-8",
            headers,
        },
        req.fault.as_ref(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    #[test]
    fn rfc3339_formats() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
