//! OpenAI flavor: `POST /v1/chat/completions`, `POST /v1/embeddings`,
//! `GET /v1/models[/{id}]`.
//!
//! Validation (from `openai-openapi` / `openai-python` `CompletionCreateParams`):
//! * auth `Authorization: Bearer KEY` → 401 (`invalid_api_key` for a wrong key);
//! * body must be a JSON object; unknown top-level fields →
//!   `Unrecognized request argument supplied: X`;
//! * `model` (string) and `messages` (non-empty array) required;
//! * message roles `system|developer|user|assistant|tool|function`, unknown
//!   message fields rejected, content shapes per role (user parts `text`,
//!   `image_url{url}`, `input_audio{data,format}`, `file{…}`; assistant parts
//!   `text`/`refusal`; system/developer/tool parts `text`), assistant
//!   `tool_calls[]` with `id`, `type: function`, `function.name` and
//!   `function.arguments` as a *string*; `tool` messages need `tool_call_id`;
//! * pairing: every `tool` message answers an id of the preceding assistant
//!   `tool_calls`, and every such id is answered before the next non-tool
//!   message;
//! * `temperature` 0..=2, `top_p` 0..=1, `presence_penalty` /
//!   `frequency_penalty` -2..=2, `n` 1..=128, `max_tokens` /
//!   `max_completion_tokens` ≥ 1 and not both, `top_logprobs` 0..=20 and only
//!   with `logprobs`, `stop` string or ≤ 4 strings, `stream` boolean,
//!   `stream_options` only with `stream: true`;
//! * `tools[]` `type: function` + `function.name` (`^[A-Za-z0-9_-]{1,64}$`) +
//!   optional object `parameters` (or `type: custom` + `custom.name`);
//!   `tool_choice` `none|auto|required|{type: function, function: {name}}`
//!   naming a declared tool, and only with `tools`;
//! * `response_format` `text|json_object|json_schema{name, schema?}`;
//! * model names starting with `missing` → 404 `model_not_found`.

use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::common::{as_integer, json_response, json_type_article, now_secs, random_id, ApiError};
use crate::reply::{
    count_tokens, embedding_vector, json_fragments, plan, text_pieces, Finish, LastTurn, Output,
    Plan, Summary, ToolDef, ToolMode,
};
use crate::stream::{json_with_fault, stream_response, StreamSpec};
use crate::{Fault, Incoming};

const CHAT_FIELDS: &[&str] = &[
    "messages",
    "model",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

const MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
];

/// An OpenAI-shaped error.
pub(crate) fn error(
    status: u16,
    message: impl Into<String>,
    ty: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> ApiError {
    ApiError {
        status,
        body: json!({"error": {
            "message": message.into(),
            "type": ty,
            "param": param,
            "code": code,
        }}),
        headers: base_headers(0),
    }
}

fn invalid(message: impl Into<String>, param: Option<&str>, code: Option<&str>) -> ApiError {
    error(400, message, "invalid_request_error", param, code)
}

fn base_headers(ms: u128) -> Vec<(String, String)> {
    vec![
        ("x-request-id".into(), format!("req_{}", random_id(32))),
        ("openai-processing-ms".into(), ms.to_string()),
        ("openai-version".into(), "2020-10-01".into()),
    ]
}

fn success_headers(ms: u128) -> Vec<(String, String)> {
    let mut h = base_headers(ms);
    h.extend([
        ("x-ratelimit-limit-requests".into(), "10000".into()),
        ("x-ratelimit-remaining-requests".into(), "9999".into()),
        ("x-ratelimit-reset-requests".into(), "6ms".into()),
        ("x-ratelimit-limit-tokens".into(), "30000000".into()),
        ("x-ratelimit-remaining-tokens".into(), "29999000".into()),
        ("x-ratelimit-reset-tokens".into(), "2ms".into()),
    ]);
    h
}

/// The error returned for `Fault::Status(code)`.
pub(crate) fn status_error(code: u16) -> ApiError {
    match code {
        400 => invalid("Invalid request (mock fault).", None, None),
        401 => error(
            401,
            "Incorrect API key provided: sk-mock***. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ),
        403 => error(
            403,
            "You are not allowed to sample from this model",
            "invalid_request_error",
            None,
            None,
        ),
        404 => error(
            404,
            "The model `mock` does not exist or you do not have access to it.",
            "invalid_request_error",
            None,
            Some("model_not_found"),
        ),
        429 => rate_limited(1),
        502 => error(502, "Bad gateway.", "server_error", None, None),
        503 => error(
            503,
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
            None,
        ),
        c if c >= 500 => error(
            c,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            None,
        ),
        c => error(c, format!("Mock fault status {c}."), "invalid_request_error", None, None),
    }
}

/// 429 with `retry-after`, `retry-after-ms` and `x-ratelimit-*` headers.
pub(crate) fn rate_limited(secs: u64) -> ApiError {
    error(
        429,
        format!(
            "Rate limit reached for requests on mock organization: Limit 10000, Used 10000, Requested 1. Please try again in {secs}s."
        ),
        "requests",
        None,
        Some("rate_limit_exceeded"),
    )
    .with_header("retry-after", secs.to_string())
    .with_header("retry-after-ms", (secs.saturating_mul(1000)).to_string())
    .with_header("x-ratelimit-limit-requests", "10000")
    .with_header("x-ratelimit-remaining-requests", "0")
    .with_header("x-ratelimit-reset-requests", format!("{secs}s"))
    .with_header("x-ratelimit-limit-tokens", "30000000")
    .with_header("x-ratelimit-remaining-tokens", "29999000")
    .with_header("x-ratelimit-reset-tokens", "2ms")
}

fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn check_auth(req: &Incoming) -> Result<(), ApiError> {
    let header = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or("");
    if key.is_empty() {
        return Err(error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            None,
        ));
    }
    if let Some(expected) = &req.opts.api_key {
        if key != expected {
            return Err(error(
                401,
                format!(
                    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    mask_key(key)
                ),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ));
        }
    }
    Ok(())
}

pub(crate) async fn handle(req: Incoming) -> Response {
    let route = match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v1/chat/completions") => Route::Chat,
        ("POST", "/v1/embeddings") => Route::Embeddings,
        ("GET", "/v1/models") => Route::Models,
        ("GET", p) if p.starts_with("/v1/models/") => {
            Route::Model(p["/v1/models/".len()..].to_string())
        }
        (m, p) => {
            return error(
                404,
                format!("Invalid URL ({m} {p})"),
                "invalid_request_error",
                None,
                None,
            )
            .into_response()
        }
    };
    if let Err(e) = check_auth(&req) {
        return e.into_response();
    }
    let result = match route {
        Route::Chat => chat(&req),
        Route::Embeddings => embeddings(&req),
        Route::Models => Ok(models(&req)),
        Route::Model(id) => model(&req, &id),
    };
    result.unwrap_or_else(ApiError::into_response)
}

enum Route {
    Chat,
    Embeddings,
    Models,
    Model(String),
}

fn model_entry(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "openai"})
}

fn models(req: &Incoming) -> Response {
    let data: Vec<Value> = MODELS.iter().map(|m| model_entry(m)).collect();
    json_response(
        200,
        &json!({"object": "list", "data": data}),
        &base_headers(req.started.elapsed().as_millis()),
    )
}

fn model(req: &Incoming, id: &str) -> Result<Response, ApiError> {
    if id.starts_with("missing") || id.is_empty() {
        return Err(model_not_found(id));
    }
    Ok(json_response(
        200,
        &model_entry(id),
        &base_headers(req.started.elapsed().as_millis()),
    ))
}

fn model_not_found(model: &str) -> ApiError {
    error(
        404,
        format!("The model `{model}` does not exist or you do not have access to it."),
        "invalid_request_error",
        None,
        Some("model_not_found"),
    )
}

fn parse_body(req: &Incoming) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(invalid(
            format!(
                "Invalid type for body: expected an object, but got {} instead.",
                json_type_article(&other)
            ),
            None,
            Some("invalid_type"),
        )),
        Err(_) => Err(invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
            None,
            None,
        )),
    }
}

// ---------------------------------------------------------------------------
// Field checks.

fn missing(param: &str) -> ApiError {
    invalid(
        format!("Missing required parameter: '{param}'."),
        Some(param),
        Some("missing_required_parameter"),
    )
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> ApiError {
    invalid(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            json_type_article(got)
        ),
        Some(param),
        Some("invalid_type"),
    )
}

fn invalid_value(param: &str, got: &str, supported: &[&str]) -> ApiError {
    let list = match supported {
        [] => String::new(),
        [one] => format!("'{one}'"),
        [init @ .., last] => {
            let head: Vec<String> = init.iter().map(|s| format!("'{s}'")).collect();
            if init.len() == 1 {
                format!("{} and '{last}'", head.join(", "))
            } else {
                format!("{}, and '{last}'", head.join(", "))
            }
        }
    };
    invalid(
        format!("Invalid value: '{got}'. Supported values are: {list}."),
        Some(param),
        Some("invalid_value"),
    )
}

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// An optional decimal in `[min, max]` (`null` means absent).
fn opt_decimal(
    m: &Map<String, Value>,
    key: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let f = v.as_f64().ok_or_else(|| wrong_type(key, "a decimal", v))?;
            if f < min {
                return Err(invalid(
                    format!("Invalid '{key}': decimal below minimum value. Expected a value >= {}, but got {} instead.", fmt_num(min), fmt_num(f)),
                    Some(key),
                    Some("decimal_below_min_value"),
                ));
            }
            if f > max {
                return Err(invalid(
                    format!("Invalid '{key}': decimal above maximum value. Expected a value <= {}, but got {} instead.", fmt_num(max), fmt_num(f)),
                    Some(key),
                    Some("decimal_above_max_value"),
                ));
            }
            Ok(Some(f))
        }
    }
}

/// An optional integer in `[min, max]`.
fn opt_integer(
    m: &Map<String, Value>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let i = as_integer(v).ok_or_else(|| wrong_type(key, "an integer", v))?;
            if i < min {
                return Err(invalid(
                    format!("Invalid '{key}': integer below minimum value. Expected a value >= {min}, but got {i} instead."),
                    Some(key),
                    Some("integer_below_min_value"),
                ));
            }
            if i > max {
                return Err(invalid(
                    format!("Invalid '{key}': integer above maximum value. Expected a value <= {max}, but got {i} instead."),
                    Some(key),
                    Some("integer_above_max_value"),
                ));
            }
            Ok(Some(i))
        }
    }
}

fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(key, "a boolean", v)),
    }
}

fn req_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Err(missing(path)),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(wrong_type(path, "a string", v)),
    }
}

// ---------------------------------------------------------------------------
// Messages.

struct MsgInfo {
    role: String,
    text: String,
    images: usize,
    tool_call_ids: Vec<(String, String)>,
    tool_call_id: Option<String>,
}

const MESSAGE_FIELDS: &[&str] = &[
    "role",
    "content",
    "name",
    "tool_calls",
    "tool_call_id",
    "function_call",
    "refusal",
    "audio",
    // Assistant messages echoed back from a response carry these (the
    // function-calling guide appends `completion.choices[0].message`).
    "annotations",
];

const PART_TYPES: &[&str] = &[
    "text",
    "image_url",
    "input_audio",
    "refusal",
    "audio",
    "file",
];

fn parse_content(
    content: &Value,
    path: &str,
    allowed: &[&str],
    info: &mut MsgInfo,
) -> Result<(), ApiError> {
    match content {
        Value::String(s) => {
            info.text.push_str(s);
            Ok(())
        }
        Value::Array(parts) => {
            for (j, part) in parts.iter().enumerate() {
                let ppath = format!("{path}[{j}]");
                let Some(p) = part.as_object() else {
                    return Err(wrong_type(&ppath, "an object", part));
                };
                let ty = req_str(p, "type", &format!("{ppath}.type"))?;
                if !PART_TYPES.contains(&ty) {
                    return Err(invalid_value(&format!("{ppath}.type"), ty, PART_TYPES));
                }
                if !allowed.contains(&ty) {
                    return Err(invalid_value(&format!("{ppath}.type"), ty, allowed));
                }
                match ty {
                    "text" => {
                        let t = req_str(p, "text", &format!("{ppath}.text"))?;
                        if !info.text.is_empty() {
                            info.text.push('\n');
                        }
                        info.text.push_str(t);
                    }
                    "refusal" => {
                        req_str(p, "refusal", &format!("{ppath}.refusal"))?;
                    }
                    "image_url" => {
                        let iu = p
                            .get("image_url")
                            .ok_or_else(|| missing(&format!("{ppath}.image_url")))?;
                        let iu = iu.as_object().ok_or_else(|| {
                            wrong_type(&format!("{ppath}.image_url"), "an object", iu)
                        })?;
                        let url = req_str(iu, "url", &format!("{ppath}.image_url.url"))?;
                        if !(url.starts_with("http://")
                            || url.starts_with("https://")
                            || url.starts_with("data:image/"))
                        {
                            return Err(invalid(
                                format!("Invalid '{ppath}.image_url.url'. Expected a base64-encoded data URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value without the 'data:' prefix."),
                                Some(&format!("{ppath}.image_url.url")),
                                Some("invalid_value"),
                            ));
                        }
                        if let Some(d) = iu.get("detail") {
                            let ds = d.as_str().unwrap_or("");
                            if !["auto", "low", "high"].contains(&ds) {
                                return Err(invalid_value(
                                    &format!("{ppath}.image_url.detail"),
                                    ds,
                                    &["auto", "low", "high"],
                                ));
                            }
                        }
                        info.images += 1;
                    }
                    "input_audio" => {
                        let ia = p
                            .get("input_audio")
                            .and_then(Value::as_object)
                            .ok_or_else(|| missing(&format!("{ppath}.input_audio")))?;
                        req_str(ia, "data", &format!("{ppath}.input_audio.data"))?;
                        let f = req_str(ia, "format", &format!("{ppath}.input_audio.format"))?;
                        if !["wav", "mp3"].contains(&f) {
                            return Err(invalid_value(
                                &format!("{ppath}.input_audio.format"),
                                f,
                                &["wav", "mp3"],
                            ));
                        }
                    }
                    "file" => {
                        p.get("file")
                            .and_then(Value::as_object)
                            .ok_or_else(|| missing(&format!("{ppath}.file")))?;
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        other => Err(wrong_type(path, "a string or array", other)),
    }
}

fn parse_message(i: usize, m: &Value) -> Result<MsgInfo, ApiError> {
    let path = format!("messages[{i}]");
    let Some(obj) = m.as_object() else {
        return Err(wrong_type(&path, "an object", m));
    };
    let role = req_str(obj, "role", &format!("{path}.role"))?;
    const ROLES: &[&str] = &[
        "system",
        "assistant",
        "user",
        "function",
        "tool",
        "developer",
    ];
    if !ROLES.contains(&role) {
        return Err(invalid_value(&format!("{path}.role"), role, ROLES));
    }
    for key in obj.keys() {
        if !MESSAGE_FIELDS.contains(&key.as_str()) {
            return Err(invalid(
                format!("Additional properties are not allowed ('{key}' was unexpected) - 'messages.{i}'"),
                Some(&format!("{path}.{key}")),
                None,
            ));
        }
    }
    let mut info = MsgInfo {
        role: role.to_string(),
        text: String::new(),
        images: 0,
        tool_call_ids: Vec::new(),
        tool_call_id: None,
    };
    let cpath = format!("{path}.content");
    let content = obj.get("content").filter(|v| !v.is_null());
    match role {
        "system" | "developer" => {
            let c = content.ok_or_else(|| missing(&cpath))?;
            parse_content(c, &cpath, &["text"], &mut info)?;
        }
        "user" => {
            let c = content.ok_or_else(|| missing(&cpath))?;
            parse_content(
                c,
                &cpath,
                &["text", "image_url", "input_audio", "file"],
                &mut info,
            )?;
        }
        "tool" => {
            let c = content.ok_or_else(|| missing(&cpath))?;
            parse_content(c, &cpath, &["text"], &mut info)?;
            let id = req_str(obj, "tool_call_id", &format!("{path}.tool_call_id"))?;
            info.tool_call_id = Some(id.to_string());
        }
        "function" => {
            req_str(obj, "name", &format!("{path}.name"))?;
            if let Some(c) = content {
                parse_content(c, &cpath, &["text"], &mut info)?;
            }
        }
        _ => {
            // assistant
            if let Some(c) = content {
                parse_content(c, &cpath, &["text", "refusal"], &mut info)?;
            }
            if let Some(tc) = obj.get("tool_calls").filter(|v| !v.is_null()) {
                let tpath = format!("{path}.tool_calls");
                let arr = tc
                    .as_array()
                    .ok_or_else(|| wrong_type(&tpath, "an array", tc))?;
                for (k, call) in arr.iter().enumerate() {
                    let cp = format!("{tpath}[{k}]");
                    let c = call
                        .as_object()
                        .ok_or_else(|| wrong_type(&cp, "an object", call))?;
                    let id = req_str(c, "id", &format!("{cp}.id"))?;
                    let ty = req_str(c, "type", &format!("{cp}.type"))?;
                    if ty != "function" && ty != "custom" {
                        return Err(invalid_value(
                            &format!("{cp}.type"),
                            ty,
                            &["function", "custom"],
                        ));
                    }
                    let fpath = format!("{cp}.{ty}");
                    let f = c.get(ty).ok_or_else(|| missing(&fpath))?;
                    let f = f
                        .as_object()
                        .ok_or_else(|| wrong_type(&fpath, "an object", f))?;
                    let name = req_str(f, "name", &format!("{fpath}.name"))?;
                    let arg_key = if ty == "function" {
                        "arguments"
                    } else {
                        "input"
                    };
                    req_str(f, arg_key, &format!("{fpath}.{arg_key}"))?;
                    info.tool_call_ids.push((id.to_string(), name.to_string()));
                }
            }
            if content.is_none()
                && info.tool_call_ids.is_empty()
                && obj.get("function_call").is_none()
            {
                return Err(missing(&cpath));
            }
        }
    }
    Ok(info)
}

/// Tool-call / tool-result pairing.
fn check_pairing(msgs: &[MsgInfo]) -> Result<(), ApiError> {
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut last_calls: Vec<(String, String)> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        if m.role == "tool" {
            let id = m.tool_call_id.clone().unwrap_or_default();
            if !last_calls.iter().any(|(c, _)| *c == id) {
                return Err(invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                    Some(&format!("messages.[{i}].role")),
                    None,
                ));
            }
            pending.retain(|(c, _)| *c != id);
            continue;
        }
        if !pending.is_empty() {
            return Err(unanswered(i, &pending));
        }
        last_calls.clear();
        if m.role == "assistant" && !m.tool_call_ids.is_empty() {
            pending = m.tool_call_ids.clone();
            last_calls = m.tool_call_ids.clone();
        }
    }
    if !pending.is_empty() {
        return Err(unanswered(msgs.len(), &pending));
    }
    Ok(())
}

fn unanswered(i: usize, pending: &[(String, String)]) -> ApiError {
    let ids: Vec<&str> = pending.iter().map(|(c, _)| c.as_str()).collect();
    invalid(
        format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            ids.join(", ")
        ),
        Some(&format!("messages.[{i}].role")),
        None,
    )
}

// ---------------------------------------------------------------------------
// Chat completions.

struct ChatReq {
    model: String,
    stream: bool,
    include_usage: bool,
    n: usize,
    forced_named: bool,
    summary: Summary,
}

fn valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate_chat(body: &Map<String, Value>) -> Result<ChatReq, ApiError> {
    for key in body.keys() {
        if !CHAT_FIELDS.contains(&key.as_str()) {
            return Err(invalid(
                format!("Unrecognized request argument supplied: {key}"),
                None,
                None,
            ));
        }
    }
    let model = req_str(body, "model", "model")?.to_string();
    let messages = match body.get("messages") {
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(a)) => a,
        Some(v) => return Err(wrong_type("messages", "an array", v)),
    };
    if messages.is_empty() {
        return Err(invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    let infos = messages
        .iter()
        .enumerate()
        .map(|(i, m)| parse_message(i, m))
        .collect::<Result<Vec<_>, _>>()?;

    opt_decimal(body, "temperature", 0.0, 2.0)?;
    opt_decimal(body, "top_p", 0.0, 1.0)?;
    opt_decimal(body, "presence_penalty", -2.0, 2.0)?;
    opt_decimal(body, "frequency_penalty", -2.0, 2.0)?;
    let n = opt_integer(body, "n", 1, 128)?.unwrap_or(1);
    let max_tokens = opt_integer(body, "max_tokens", 1, i64::MAX)?;
    let max_completion = opt_integer(body, "max_completion_tokens", 1, i64::MAX)?;
    if max_tokens.is_some() && max_completion.is_some() {
        return Err(invalid(
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
            Some("max_tokens"),
            Some("invalid_parameter_combination"),
        ));
    }
    opt_integer(body, "seed", i64::MIN, i64::MAX)?;
    let logprobs = opt_bool(body, "logprobs")?.unwrap_or(false);
    if opt_integer(body, "top_logprobs", 0, 20)?.is_some() && !logprobs {
        return Err(invalid(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is specified.",
            Some("top_logprobs"),
            None,
        ));
    }
    let stream = opt_bool(body, "stream")?.unwrap_or(false);
    let mut include_usage = false;
    match body.get("stream_options") {
        None | Some(Value::Null) => {}
        Some(so) => {
            if !stream {
                return Err(invalid(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    Some("stream_options"),
                    None,
                ));
            }
            let so = so
                .as_object()
                .ok_or_else(|| wrong_type("stream_options", "an object", so))?;
            for key in so.keys() {
                if key != "include_usage" && key != "include_obfuscation" {
                    return Err(invalid(
                        format!("Unrecognized request argument supplied: stream_options.{key}"),
                        Some("stream_options"),
                        None,
                    ));
                }
            }
            include_usage = opt_bool(so, "include_usage")
                .map_err(|_| {
                    wrong_type(
                        "stream_options.include_usage",
                        "a boolean",
                        so.get("include_usage").unwrap_or(&Value::Null),
                    )
                })?
                .unwrap_or(false);
        }
    }
    let stop: Vec<String> = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            if a.len() > 4 {
                return Err(invalid(
                    format!("Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length {} instead.", a.len()),
                    Some("stop"),
                    Some("array_above_max_length"),
                ));
            }
            a.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| wrong_type(&format!("stop[{i}]"), "a string", v))
                })
                .collect::<Result<_, _>>()?
        }
        Some(v) => return Err(wrong_type("stop", "a string or array", v)),
    };

    // Tools.
    let mut tools = Vec::new();
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, t) in a.iter().enumerate() {
                let path = format!("tools[{i}]");
                let t = t
                    .as_object()
                    .ok_or_else(|| wrong_type(&path, "an object", t))?;
                let ty = req_str(t, "type", &format!("{path}.type"))?;
                match ty {
                    "function" => {
                        let f = t
                            .get("function")
                            .ok_or_else(|| missing(&format!("{path}.function")))?;
                        let f = f.as_object().ok_or_else(|| {
                            wrong_type(&format!("{path}.function"), "an object", f)
                        })?;
                        let name = req_str(f, "name", &format!("{path}.function.name"))?;
                        if !valid_function_name(name) {
                            return Err(invalid(
                                format!("Invalid '{path}.function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."),
                                Some(&format!("{path}.function.name")),
                                Some("invalid_value"),
                            ));
                        }
                        let schema = match f.get("parameters") {
                            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
                            Some(p @ Value::Object(_)) => p.clone(),
                            Some(p) => {
                                return Err(wrong_type(
                                    &format!("{path}.function.parameters"),
                                    "an object",
                                    p,
                                ))
                            }
                        };
                        tools.push(ToolDef {
                            name: name.to_string(),
                            schema,
                        });
                    }
                    "custom" => {
                        let c = t
                            .get("custom")
                            .and_then(Value::as_object)
                            .ok_or_else(|| missing(&format!("{path}.custom")))?;
                        req_str(c, "name", &format!("{path}.custom.name"))?;
                    }
                    other => {
                        return Err(invalid_value(
                            &format!("{path}.type"),
                            other,
                            &["function", "custom"],
                        ))
                    }
                }
            }
        }
        Some(v) => return Err(wrong_type("tools", "an array", v)),
    }
    let has_tools = body.get("tools").is_some_and(|t| !t.is_null());
    let mut forced_named = false;
    let tool_mode = match body.get("tool_choice") {
        None | Some(Value::Null) => ToolMode::Auto,
        Some(tc) => {
            if !has_tools {
                return Err(invalid(
                    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                    Some("tool_choice"),
                    None,
                ));
            }
            match tc {
                Value::String(s) => match s.as_str() {
                    "none" => ToolMode::None,
                    "auto" => ToolMode::Auto,
                    "required" => ToolMode::Any,
                    other => {
                        return Err(invalid_value(
                            "tool_choice",
                            other,
                            &["none", "auto", "required"],
                        ))
                    }
                },
                Value::Object(o) => {
                    let ty = req_str(o, "type", "tool_choice.type")?;
                    match ty {
                        "function" => {
                            let f = o
                                .get("function")
                                .and_then(Value::as_object)
                                .ok_or_else(|| missing("tool_choice.function"))?;
                            let name = req_str(f, "name", "tool_choice.function.name")?;
                            if !tools.iter().any(|t| t.name == name) {
                                return Err(invalid(
                                    format!("Invalid value for 'tool_choice': function '{name}' is not among the provided 'tools'."),
                                    Some("tool_choice"),
                                    Some("invalid_value"),
                                ));
                            }
                            forced_named = true;
                            ToolMode::Forced(name.to_string())
                        }
                        "allowed_tools" => ToolMode::Auto,
                        "custom" => ToolMode::Auto,
                        other => {
                            return Err(invalid_value(
                                "tool_choice.type",
                                other,
                                &["function", "allowed_tools", "custom"],
                            ))
                        }
                    }
                }
                other => return Err(wrong_type("tool_choice", "a string or object", other)),
            }
        }
    };
    let parallel_allowed = opt_bool(body, "parallel_tool_calls")?.unwrap_or(true);

    // Response format.
    let json_mode = match body.get("response_format") {
        None | Some(Value::Null) => None,
        Some(rf) => {
            let o = rf
                .as_object()
                .ok_or_else(|| wrong_type("response_format", "an object", rf))?;
            let ty = req_str(o, "type", "response_format.type")?;
            match ty {
                "text" => None,
                "json_object" => Some(None),
                "json_schema" => {
                    let js = o
                        .get("json_schema")
                        .ok_or_else(|| missing("response_format.json_schema"))?;
                    let js = js.as_object().ok_or_else(|| {
                        wrong_type("response_format.json_schema", "an object", js)
                    })?;
                    req_str(js, "name", "response_format.json_schema.name")?;
                    Some(js.get("schema").filter(|s| s.is_object()).cloned())
                }
                other => {
                    return Err(invalid_value(
                        "response_format.type",
                        other,
                        &["json_schema", "json_object", "text"],
                    ))
                }
            }
        }
    };

    check_pairing(&infos)?;

    let mut s = Summary::new();
    let mut id_names: Vec<(String, String)> = Vec::new();
    for m in &infos {
        s.add_input(&m.text, m.images);
        id_names.extend(m.tool_call_ids.iter().cloned());
        if m.role == "user" {
            s.last_user_text = m.text.clone();
            s.last_user_images = m.images;
        }
    }
    if let Some(last) = infos.last() {
        s.last = match last.role.as_str() {
            "tool" => {
                let id = last.tool_call_id.clone().unwrap_or_default();
                let name = id_names
                    .iter()
                    .rev()
                    .find(|(c, _)| *c == id)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default();
                LastTurn::ToolResult {
                    name,
                    content: last.text.clone(),
                }
            }
            "assistant" => LastTurn::Assistant,
            _ => LastTurn::User,
        };
    }
    if let Some(t) = body.get("tools") {
        s.input_tokens += count_tokens(&t.to_string());
    }
    s.tools = tools;
    s.tool_mode = tool_mode;
    s.parallel_allowed = parallel_allowed;
    s.max_tokens = max_completion.or(max_tokens).map(|v| v.max(0) as u64);
    s.stop = stop;
    s.json = json_mode;
    s.choices = n.max(1) as usize;
    Ok(ChatReq {
        model,
        stream,
        include_usage,
        n: n.max(1) as usize,
        forced_named,
        summary: s,
    })
}

fn finish_reason(p: &Plan, forced_named: bool) -> &'static str {
    match p.finish {
        Finish::Length => "length",
        Finish::ToolUse if !forced_named => "tool_calls",
        _ => "stop",
    }
}

fn usage(p: &Plan, n: usize) -> Value {
    let completion = p.output_tokens * n as u64;
    json!({
        "prompt_tokens": p.input_tokens,
        "completion_tokens": completion,
        "total_tokens": p.input_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn chat(req: &Incoming) -> Result<Response, ApiError> {
    let body = parse_body(req)?;
    let c = validate_chat(&body)?;
    if c.model.starts_with("missing") {
        return Err(model_not_found(&c.model));
    }
    if matches!(req.fault, Some(Fault::StreamError { .. })) && !c.stream {
        return Err(status_error(500));
    }
    let p = plan(&req.opts.label, &c.summary);
    let id = format!("chatcmpl-{}", random_id(29));
    let created = now_secs();
    let fingerprint = "fp_mock0001";
    // Tool call ids are shared by all choices of one response.
    let call_ids: Vec<String> = match &p.output {
        Output::Calls(calls) => calls
            .iter()
            .map(|_| format!("call_{}", random_id(24)))
            .collect(),
        Output::Text(_) => Vec::new(),
    };
    let headers = success_headers(req.started.elapsed().as_millis());
    if !c.stream {
        let message = match &p.output {
            Output::Text(t) => json!({
                "role": "assistant", "content": t, "refusal": null, "annotations": []
            }),
            Output::Calls(calls) => {
                let tc: Vec<Value> = calls
                    .iter()
                    .zip(&call_ids)
                    .map(|(call, cid)| {
                        json!({"id": cid, "type": "function",
                               "function": {"name": call.name, "arguments": call.args.to_string()}})
                    })
                    .collect();
                json!({"role": "assistant", "content": null, "tool_calls": tc,
                       "refusal": null, "annotations": []})
            }
        };
        let choices: Vec<Value> = (0..c.n)
            .map(|i| {
                json!({"index": i, "message": message, "logprobs": null,
                       "finish_reason": finish_reason(&p, c.forced_named)})
            })
            .collect();
        let out = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": c.model,
            "choices": choices,
            "usage": usage(&p, c.n),
            "service_tier": "default",
            "system_fingerprint": fingerprint,
        });
        return Ok(json_with_fault(&out, headers, req.fault.as_ref()));
    }

    // Streaming.
    let chunk = |choices: Value, usage_v: Option<Value>| -> Bytes {
        let mut v = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": c.model,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
            "choices": choices,
        });
        if c.include_usage {
            if let Some(map) = v.as_object_mut() {
                map.insert("usage".into(), usage_v.unwrap_or(Value::Null));
            }
        }
        Bytes::from(format!("data: {v}\n\n"))
    };
    let delta = |i: usize, d: Value, finish: Value| json!([{"index": i, "delta": d, "logprobs": null, "finish_reason": finish}]);
    let mut frames = Vec::new();
    for i in 0..c.n {
        frames.push(chunk(
            delta(
                i,
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            ),
            None,
        ));
        match &p.output {
            Output::Text(t) => {
                for piece in text_pieces(t) {
                    frames.push(chunk(
                        delta(i, json!({"content": piece}), Value::Null),
                        None,
                    ));
                }
            }
            Output::Calls(calls) => {
                for (k, (call, cid)) in calls.iter().zip(&call_ids).enumerate() {
                    frames.push(chunk(
                        delta(
                            i,
                            json!({"tool_calls": [{"index": k, "id": cid, "type": "function",
                                    "function": {"name": call.name, "arguments": ""}}]}),
                            Value::Null,
                        ),
                        None,
                    ));
                    for frag in json_fragments(&call.args.to_string()) {
                        frames.push(chunk(
                            delta(
                                i,
                                json!({"tool_calls": [{"index": k, "function": {"arguments": frag}}]}),
                                Value::Null,
                            ),
                            None,
                        ));
                    }
                }
            }
        }
        frames.push(chunk(
            delta(i, json!({}), json!(finish_reason(&p, c.forced_named))),
            None,
        ));
    }
    if c.include_usage {
        frames.push(chunk(json!([]), Some(usage(&p, c.n))));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let err = json!({"error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error", "param": null, "code": null}});
    Ok(stream_response(
        StreamSpec {
            frames,
            error_frames: vec![Bytes::from(format!("data: {err}\n\n"))],
            malformed_frame: Bytes::from(format!(
                "data: {{\"id\": \"{id}\", \"object\": \"chat.completion.chunk\", \"choices\": [{{\"delta\": \n\n"
            )),
            malformed_tail: vec![Bytes::from_static(b"data: [DONE]\n\n")],
            content_type: "text/event-stream; charset=utf-8",
            headers,
        },
        req.fault.as_ref(),
    ))
}

// ---------------------------------------------------------------------------
// Embeddings.

fn embeddings(req: &Incoming) -> Result<Response, ApiError> {
    let body = parse_body(req)?;
    for key in body.keys() {
        if !["input", "model", "encoding_format", "dimensions", "user"].contains(&key.as_str()) {
            return Err(invalid(
                format!("Unrecognized request argument supplied: {key}"),
                None,
                None,
            ));
        }
    }
    let model = req_str(&body, "model", "model")?.to_string();
    let bad_input = || {
        invalid(
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            None,
            None,
        )
    };
    let texts: Vec<String> = match body.get("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() => {
            if a.iter().all(Value::is_string) {
                let v: Vec<String> = a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect();
                if v.iter().any(String::is_empty) {
                    return Err(bad_input());
                }
                v
            } else if a.iter().all(|x| x.is_u64()) {
                vec![a.iter().map(Value::to_string).collect::<Vec<_>>().join(",")]
            } else if a.iter().all(|x| {
                x.as_array()
                    .is_some_and(|inner| !inner.is_empty() && inner.iter().all(Value::is_u64))
            }) {
                a.iter()
                    .map(|x| {
                        x.as_array()
                            .map(|inner| {
                                inner
                                    .iter()
                                    .map(Value::to_string)
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            } else {
                return Err(bad_input());
            }
        }
        Some(_) => return Err(bad_input()),
    };
    let base64_out = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "float" => false,
        Some(Value::String(s)) if s == "base64" => true,
        Some(Value::String(s)) => {
            return Err(invalid_value("encoding_format", s, &["float", "base64"]))
        }
        Some(v) => return Err(wrong_type("encoding_format", "a string", v)),
    };
    let dims = opt_integer(&body, "dimensions", 1, 3072)?.unwrap_or(8) as usize;
    if model.starts_with("missing") {
        return Err(model_not_found(&model));
    }
    let mut prompt_tokens = 0;
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            prompt_tokens += count_tokens(t);
            let v = embedding_vector(t, dims);
            let emb = if base64_out {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": emb})
        })
        .collect();
    let out = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    });
    Ok(json_with_fault(
        &out,
        success_headers(req.started.elapsed().as_millis()),
        req.fault.as_ref(),
    ))
}
