//! Gemini flavor (Generative Language API v1beta):
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`
//! (SSE with `?alt=sse`, otherwise the streamed JSON array form),
//! `:embedContent`, `:batchEmbedContents`, `:countTokens`,
//! `GET /v1beta/models[/{model}]`.
//!
//! Validation (from `generative_service.proto` / `content.proto` and the
//! ai.google.dev reference), with field names accepted in lowerCamelCase or
//! snake_case like proto3 JSON:
//! * `x-goog-api-key` header or `?key=`: missing → 403 `PERMISSION_DENIED`,
//!   wrong → 400 `INVALID_ARGUMENT` "API key not valid";
//! * unknown fields anywhere in the request (including `parameters` schemas,
//!   e.g. `additionalProperties`) → `Invalid JSON payload received. Unknown
//!   name "x" at 'path': Cannot find field.`;
//! * `contents` required and non-empty; roles `user` / `model` (or unset);
//!   `parts` non-empty; each part sets exactly one of the `data` oneof
//!   (`text`, `inlineData{mimeType, data: base64}`, `functionCall{name}`,
//!   `functionResponse{name, response: object}`, `fileData{fileUri}`,
//!   `executableCode`, `codeExecutionResult`);
//! * turn order: a function-call turn must follow a user turn or a
//!   function-response turn; a function-response turn must follow a
//!   function-call turn with the same number of parts;
//! * `generationConfig`: `temperature` 0..=2, `topP` 0..=1, `candidateCount`
//!   1..=8, `maxOutputTokens` ≥ 1, `stopSequences` ≤ 5 strings,
//!   `responseMimeType` one of the documented types;
//! * `tools[].functionDeclarations[]` with a valid `name`; `toolConfig.
//!   functionCallingConfig.mode` a valid enum value;
//! * model names starting with `missing` → 404 `NOT_FOUND`.
//! * a model that is not one path segment of `A-Z a-z 0-9 - _ .` (a `/`,
//!   a second `:`, `%`, a space) → 404 `NOT_FOUND`, like any unknown path.

use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::common::{as_integer, json_response, random_id, ApiError};
use crate::reply::{
    count_tokens, embedding_vector, plan, text_pieces, Finish, LastTurn, Output, Plan, Summary,
    ToolDef, ToolMode,
};
use crate::stream::{json_with_fault, stream_response, StreamSpec};
use crate::{Fault, Incoming};

/// A Gemini-shaped error.
pub(crate) fn error(code: u16, status: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: code,
        body: json!({"error": {"code": code, "message": message.into(), "status": status}}),
        headers: Vec::new(),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    error(400, "INVALID_ARGUMENT", message)
}

/// `* GenerateContentRequest.{path}: {msg}\n` style validation error.
fn field_error(request: &str, path: &str, msg: &str) -> ApiError {
    let message = format!("* {request}.{path}: {msg}\n");
    let mut e = invalid(message.clone());
    e.body["error"]["details"] = json!([{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": path, "description": msg}]
    }]);
    e
}

fn unknown_name(name: &str, at: &str) -> ApiError {
    let message = if at.is_empty() {
        format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
    } else {
        format!(
            "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
        )
    };
    let mut e = invalid(message.clone());
    e.body["error"]["details"] = json!([{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": at, "description": message}]
    }]);
    e
}

fn bad_value(path: &str, ty: &str, v: &Value) -> ApiError {
    invalid(format!("Invalid value at '{path}' ({ty}), {v}"))
}

/// The error returned for `Fault::Status(code)`.
pub(crate) fn status_error(code: u16) -> ApiError {
    match code {
        400 => invalid("Request contains an invalid argument."),
        401 => error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ),
        403 => error(403, "PERMISSION_DENIED", "The caller does not have permission"),
        404 => error(404, "NOT_FOUND", "Requested entity was not found."),
        429 => rate_limited(1),
        500 => error(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        ),
        503 => error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        504 => error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
        c if c >= 500 => error(c, "UNKNOWN", "Unknown error."),
        c => error(c, "FAILED_PRECONDITION", format!("Mock fault status {c}.")),
    }
}

/// 429 `RESOURCE_EXHAUSTED` with a `RetryInfo` detail and `retry-after`.
pub(crate) fn rate_limited(secs: u64) -> ApiError {
    let mut e = error(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
    );
    e.body["error"]["details"] = json!([{
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": format!("{secs}s")
    }]);
    e.with_header("retry-after", secs.to_string())
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

fn check_auth(req: &Incoming) -> Result<(), ApiError> {
    let header = req
        .headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let key = header.or_else(|| query_param(req.query.as_deref(), "key").filter(|s| !s.is_empty()));
    let Some(key) = key else {
        return Err(error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        ));
    };
    if let Some(expected) = &req.opts.api_key {
        if key != expected {
            let mut e = invalid("API key not valid. Please pass a valid API key.");
            e.body["error"]["details"] = json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"}
            }]);
            return Err(e);
        }
    }
    Ok(())
}

const MODELS: &[(&str, &str, &[&str])] = &[
    (
        "gemini-2.5-flash",
        "Gemini 2.5 Flash",
        &["generateContent", "countTokens", "streamGenerateContent"],
    ),
    (
        "gemini-2.5-pro",
        "Gemini 2.5 Pro",
        &["generateContent", "countTokens", "streamGenerateContent"],
    ),
    (
        "gemini-embedding-001",
        "Gemini Embedding 001",
        &["embedContent", "countTokens", "batchEmbedContents"],
    ),
];

fn model_entry(id: &str, display: &str, methods: &[&str]) -> Value {
    json!({
        "name": format!("models/{id}"),
        "version": "001",
        "displayName": display,
        "description": format!("{display} (mock)"),
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": methods,
    })
}

fn headers(req: &Incoming) -> Vec<(String, String)> {
    vec![(
        "server-timing".into(),
        format!("gfet4t7; dur={}", req.started.elapsed().as_millis()),
    )]
}

fn not_found_model(model: &str, method: &str) -> ApiError {
    error(
        404,
        "NOT_FOUND",
        format!("models/{model} is not found for API version v1beta, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."),
    )
}

pub(crate) async fn handle(req: Incoming) -> Response {
    let not_found = || error(404, "NOT_FOUND", "Requested entity was not found.").into_response();
    let Some(rest) = req.path.strip_prefix("/v1beta/models") else {
        return not_found();
    };
    let rest = rest.to_string();
    if let Err(e) = check_auth(&req) {
        return e.into_response();
    }
    let result = match (req.method.as_str(), rest.as_str()) {
        ("GET", "") | ("GET", "/") => {
            let models: Vec<Value> = MODELS
                .iter()
                .map(|(i, d, m)| model_entry(i, d, m))
                .collect();
            Ok(json_response(
                200,
                &json!({"models": models}),
                &headers(&req),
            ))
        }
        ("GET", r) if r.starts_with('/') && !r.contains(':') => {
            let id = &r[1..];
            if id.starts_with("missing") || id.is_empty() {
                Err(error(
                    404,
                    "NOT_FOUND",
                    format!("models/{id} is not found for API version v1beta."),
                ))
            } else {
                let (d, m) = MODELS
                    .iter()
                    .find(|x| x.0 == id)
                    .map(|x| (x.1, x.2))
                    .unwrap_or((id, &["generateContent", "countTokens"][..]));
                Ok(json_response(200, &model_entry(id, d, m), &headers(&req)))
            }
        }
        ("POST", r) if r.starts_with('/') => match r[1..].split_once(':') {
            // A model id is one path segment of plain id characters: a
            // `/`, a second `:`, an escape or a space is another resource.
            Some((model, method))
                if !model.is_empty()
                    && model != "."
                    && model != ".."
                    && model
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
            {
                let model = model.to_string();
                match method {
                    "generateContent" => generate(&req, &model, false),
                    "streamGenerateContent" => generate(&req, &model, true),
                    "embedContent" => embed(&req, &model, false),
                    "batchEmbedContents" => embed(&req, &model, true),
                    "countTokens" => count(&req, &model),
                    _ => return not_found(),
                }
            }
            _ => return not_found(),
        },
        _ => return not_found(),
    };
    result.unwrap_or_else(ApiError::into_response)
}

// ---------------------------------------------------------------------------
// Field-name handling (proto3 JSON accepts lowerCamelCase and snake_case).

fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Check every key of `m` against `allowed` (snake_case) and return a map
/// keyed by snake_case names.
fn fields(
    m: &Map<String, Value>,
    allowed: &[&str],
    at: &str,
) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    for (k, v) in m {
        let s = snake(k);
        if !allowed.contains(&s.as_str()) {
            return Err(unknown_name(k, at));
        }
        out.insert(s, v.clone());
    }
    Ok(out)
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object().ok_or_else(|| {
        invalid(format!(
            "Invalid JSON payload received. Expected an object at '{path}', got {v}."
        ))
    })
}

fn as_array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, ApiError> {
    v.as_array().ok_or_else(|| {
        invalid(format!(
            "Invalid JSON payload received. Expected a list at '{path}', got {v}."
        ))
    })
}

fn as_str<'a>(v: &'a Value, path: &str) -> Result<&'a str, ApiError> {
    v.as_str().ok_or_else(|| bad_value(path, "TYPE_STRING", v))
}

fn parse_body(req: &Incoming) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(v) => Err(invalid(format!(
            "Invalid JSON payload received. Expected an object, got {v}."
        ))),
        Err(e) => Err(invalid(format!("Invalid JSON payload received. {e}"))),
    }
}

// ---------------------------------------------------------------------------
// Contents.

const PART_FIELDS: &[&str] = &[
    "text",
    "inline_data",
    "function_call",
    "function_response",
    "file_data",
    "executable_code",
    "code_execution_result",
    "thought",
    "thought_signature",
    "video_metadata",
    "part_metadata",
    "media_resolution",
];
const DATA_FIELDS: &[&str] = &[
    "text",
    "inline_data",
    "function_call",
    "function_response",
    "file_data",
    "executable_code",
    "code_execution_result",
];

#[derive(Default)]
struct ContentInfo {
    role: String,
    text: String,
    images: usize,
    calls: Vec<String>,
    responses: Vec<(String, String)>,
}

fn parse_content(
    v: &Value,
    path: &str,
    request: &str,
    check_role: bool,
) -> Result<ContentInfo, ApiError> {
    let o = fields(as_object(v, path)?, &["role", "parts"], path)?;
    let mut info = ContentInfo::default();
    if let Some(r) = o.get("role") {
        let r = as_str(r, &format!("{path}.role"))?;
        if check_role && !r.is_empty() && r != "user" && r != "model" {
            return Err(invalid("Please use a valid role: user, model."));
        }
        info.role = r.to_string();
    }
    let parts = match o.get("parts") {
        None => Vec::new(),
        Some(p) => as_array(p, &format!("{path}.parts"))?.clone(),
    };
    if parts.is_empty() {
        return Err(field_error(
            request,
            &format!("{path}.parts"),
            "contents.parts must not be empty.",
        ));
    }
    for (j, part) in parts.iter().enumerate() {
        let pp = format!("{path}.parts[{j}]");
        let p = fields(as_object(part, &pp)?, PART_FIELDS, &pp)?;
        let set: Vec<&str> = DATA_FIELDS
            .iter()
            .copied()
            .filter(|f| p.contains_key(*f))
            .collect();
        match set.as_slice() {
            [] => {
                return Err(field_error(
                    request,
                    &format!("{pp}.data"),
                    "required oneof field 'data' must have one initialized field",
                ))
            }
            [_] => {}
            [_, second, ..] => {
                return Err(invalid(format!(
                    "Invalid value at '{pp}.data' (oneof), oneof field 'data' is already set. Cannot set '{second}'"
                )))
            }
        }
        if let Some(t) = p.get("text") {
            let t = as_str(t, &format!("{pp}.text"))?;
            if !info.text.is_empty() && !t.is_empty() {
                info.text.push('\n');
            }
            info.text.push_str(t);
        }
        if let Some(d) = p.get("inline_data") {
            let dp = format!("{pp}.inline_data");
            let d = fields(as_object(d, &dp)?, &["mime_type", "data"], &dp)?;
            let mime = d
                .get("mime_type")
                .map(|m| as_str(m, &format!("{dp}.mime_type")))
                .transpose()?;
            let Some(mime) = mime.filter(|m| !m.is_empty()) else {
                return Err(field_error(
                    request,
                    &format!("{dp}.mime_type"),
                    "mime_type must be specified.",
                ));
            };
            let data = d
                .get("data")
                .map(|x| as_str(x, &format!("{dp}.data")))
                .transpose()?
                .unwrap_or("");
            let ok = base64::engine::general_purpose::STANDARD
                .decode(data)
                .is_ok()
                || base64::engine::general_purpose::URL_SAFE
                    .decode(data)
                    .is_ok();
            if !ok {
                let shown: String = data.chars().take(32).collect();
                return Err(invalid(format!(
                    "Invalid value at '{dp}.data' (TYPE_BYTES), Base64 decoding failed for \"{shown}\""
                )));
            }
            if mime.starts_with("image/") {
                info.images += 1;
            }
        }
        if let Some(fc) = p.get("function_call") {
            let fp = format!("{pp}.function_call");
            let f = fields(as_object(fc, &fp)?, &["id", "name", "args"], &fp)?;
            let name = f
                .get("name")
                .map(|n| as_str(n, &format!("{fp}.name")))
                .transpose()?
                .unwrap_or("");
            if name.is_empty() {
                return Err(field_error(
                    request,
                    &format!("{fp}.name"),
                    "Name cannot be empty.",
                ));
            }
            if let Some(a) = f.get("args") {
                if !a.is_object() && !a.is_null() {
                    return Err(bad_value(
                        &format!("{fp}.args"),
                        "type.googleapis.com/google.protobuf.Struct",
                        a,
                    ));
                }
            }
            info.calls.push(name.to_string());
        }
        if let Some(fr) = p.get("function_response") {
            let fp = format!("{pp}.function_response");
            let f = fields(
                as_object(fr, &fp)?,
                &[
                    "id",
                    "name",
                    "response",
                    "will_continue",
                    "scheduling",
                    "parts",
                ],
                &fp,
            )?;
            let name = f
                .get("name")
                .map(|n| as_str(n, &format!("{fp}.name")))
                .transpose()?
                .unwrap_or("");
            if name.is_empty() {
                return Err(field_error(
                    request,
                    &format!("{fp}.name"),
                    "Name cannot be empty.",
                ));
            }
            let response = match f.get("response") {
                Some(r @ Value::Object(_)) => r.clone(),
                Some(other) => {
                    return Err(bad_value(
                        &format!("{fp}.response"),
                        "type.googleapis.com/google.protobuf.Struct",
                        other,
                    ))
                }
                None => {
                    return Err(field_error(
                        request,
                        &format!("{fp}.response"),
                        "response must be specified.",
                    ))
                }
            };
            let content = match response.get("content").or_else(|| response.get("result")) {
                Some(Value::String(s)) if response.as_object().is_some_and(|m| m.len() == 1) => {
                    s.clone()
                }
                _ => response.to_string(),
            };
            info.responses.push((name.to_string(), content));
        }
        if let Some(fd) = p.get("file_data") {
            let fp = format!("{pp}.file_data");
            let f = fields(as_object(fd, &fp)?, &["mime_type", "file_uri"], &fp)?;
            let uri = f
                .get("file_uri")
                .map(|u| as_str(u, &format!("{fp}.file_uri")))
                .transpose()?;
            if uri.is_none_or(str::is_empty) {
                return Err(field_error(
                    request,
                    &format!("{fp}.file_uri"),
                    "file_uri must be specified.",
                ));
            }
            if f.get("mime_type")
                .and_then(Value::as_str)
                .is_some_and(|m| m.starts_with("image/"))
            {
                info.images += 1;
            }
        }
    }
    Ok(info)
}

fn check_turns(infos: &[ContentInfo]) -> Result<(), ApiError> {
    for (i, c) in infos.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| infos.get(p));
        if !c.calls.is_empty() {
            let ok = prev.is_some_and(|p| p.role != "model" && p.calls.is_empty());
            if !ok {
                return Err(invalid(
                    "Please ensure that function call turn comes immediately after a user turn or after a function response turn.",
                ));
            }
        }
        if !c.responses.is_empty() {
            match prev {
                Some(p) if !p.calls.is_empty() => {
                    if p.calls.len() != c.responses.len() {
                        return Err(invalid(
                            "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
                        ));
                    }
                }
                _ => {
                    return Err(invalid(
                        "Please ensure that function response turn comes immediately after a function call turn.",
                    ))
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Schemas, tools, generation config.

const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "max_items",
    "min_items",
    "properties",
    "required",
    "min_properties",
    "max_properties",
    "min_length",
    "max_length",
    "pattern",
    "example",
    "any_of",
    "property_ordering",
    "default",
    "items",
    "minimum",
    "maximum",
];
const SCHEMA_TYPES: &[&str] = &[
    "TYPE_UNSPECIFIED",
    "STRING",
    "NUMBER",
    "INTEGER",
    "BOOLEAN",
    "ARRAY",
    "OBJECT",
    "NULL",
];

fn check_schema(v: &Value, path: &str, depth: usize) -> Result<(), ApiError> {
    if depth > 32 {
        return Ok(());
    }
    let o = fields(as_object(v, path)?, SCHEMA_FIELDS, path)?;
    if let Some(t) = o.get("type") {
        let t = as_str(t, &format!("{path}.type"))?;
        if !SCHEMA_TYPES.contains(&t.to_ascii_uppercase().as_str()) {
            return Err(bad_value(
                &format!("{path}.type"),
                "type.googleapis.com/google.ai.generativelanguage.v1beta.Type",
                &Value::String(t.to_string()),
            ));
        }
    }
    if let Some(props) = o.get("properties") {
        let pp = format!("{path}.properties");
        for (k, sub) in as_object(props, &pp)? {
            check_schema(sub, &format!("{pp}[{k}].value"), depth + 1)?;
        }
    }
    if let Some(items) = o.get("items") {
        check_schema(items, &format!("{path}.items"), depth + 1)?;
    }
    if let Some(any) = o.get("any_of") {
        for (i, sub) in as_array(any, &format!("{path}.any_of"))?.iter().enumerate() {
            check_schema(sub, &format!("{path}.any_of[{i}]"), depth + 1)?;
        }
    }
    Ok(())
}

fn valid_fn_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

fn parse_tools(v: &Value, request: &str) -> Result<Vec<ToolDef>, ApiError> {
    let mut out = Vec::new();
    for (i, t) in as_array(v, "tools")?.iter().enumerate() {
        let tp = format!("tools[{i}]");
        let t = fields(
            as_object(t, &tp)?,
            &[
                "function_declarations",
                "google_search_retrieval",
                "code_execution",
                "google_search",
                "url_context",
                "computer_use",
                "file_search",
                "google_maps",
            ],
            &tp,
        )?;
        let Some(decls) = t.get("function_declarations") else {
            continue;
        };
        for (j, d) in as_array(decls, &format!("{tp}.function_declarations"))?
            .iter()
            .enumerate()
        {
            let dp = format!("{tp}.function_declarations[{j}]");
            let d = fields(
                as_object(d, &dp)?,
                &[
                    "name",
                    "description",
                    "behavior",
                    "parameters",
                    "parameters_json_schema",
                    "response",
                    "response_json_schema",
                ],
                &dp,
            )?;
            let name = d
                .get("name")
                .map(|n| as_str(n, &format!("{dp}.name")))
                .transpose()?
                .unwrap_or("");
            if name.is_empty() {
                return Err(field_error(
                    request,
                    &format!("{dp}.name"),
                    "Name cannot be empty.",
                ));
            }
            if !valid_fn_name(name) {
                return Err(field_error(
                    request,
                    &format!("{dp}.name"),
                    "Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 128.",
                ));
            }
            if d.contains_key("parameters") && d.contains_key("parameters_json_schema") {
                return Err(field_error(
                    request,
                    &format!("{dp}.parameters"),
                    "parameters and parameters_json_schema cannot both be set.",
                ));
            }
            let schema = if let Some(p) = d.get("parameters") {
                check_schema(p, &format!("{dp}.parameters"), 0)?;
                p.clone()
            } else if let Some(p) = d.get("parameters_json_schema") {
                p.clone()
            } else {
                json!({"type": "object"})
            };
            out.push(ToolDef {
                name: name.to_string(),
                schema,
            });
        }
    }
    Ok(out)
}

const GEN_FIELDS: &[&str] = &[
    "stop_sequences",
    "response_mime_type",
    "response_schema",
    "_response_json_schema",
    "response_json_schema",
    "response_modalities",
    "candidate_count",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_logprobs",
    "logprobs",
    "enable_enhanced_civic_answers",
    "speech_config",
    "thinking_config",
    "image_config",
    "media_resolution",
];

struct GenConfig {
    stop: Vec<String>,
    json: Option<Option<Value>>,
    candidates: usize,
    max_tokens: Option<u64>,
}

fn num(
    o: &Map<String, Value>,
    key: &str,
    min: f64,
    max: f64,
    request: &str,
) -> Result<(), ApiError> {
    let path = format!("generation_config.{key}");
    match o.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => {
            let f = v
                .as_f64()
                .ok_or_else(|| bad_value(&path, "TYPE_FLOAT", v))?;
            if f < min || f > max {
                return Err(field_error(
                    request,
                    &path,
                    &format!("{key} must be in the range [{min:.1}, {max:.1}]."),
                ));
            }
            Ok(())
        }
    }
}

fn int(
    o: &Map<String, Value>,
    key: &str,
    min: i64,
    max: i64,
    request: &str,
) -> Result<Option<i64>, ApiError> {
    let path = format!("generation_config.{key}");
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let i = as_integer(v).ok_or_else(|| bad_value(&path, "TYPE_INT32", v))?;
            if i < min || i > max {
                return Err(field_error(
                    request,
                    &path,
                    &format!("{key} must be in the range [{min}, {max}]."),
                ));
            }
            Ok(Some(i))
        }
    }
}

fn parse_gen_config(v: Option<&Value>, request: &str) -> Result<GenConfig, ApiError> {
    let mut g = GenConfig {
        stop: Vec::new(),
        json: None,
        candidates: 1,
        max_tokens: None,
    };
    let Some(v) = v else { return Ok(g) };
    let o = fields(
        as_object(v, "generation_config")?,
        GEN_FIELDS,
        "generation_config",
    )?;
    num(&o, "temperature", 0.0, 2.0, request)?;
    num(&o, "top_p", 0.0, 1.0, request)?;
    int(&o, "top_k", 1, i64::from(i32::MAX), request)?;
    g.candidates = int(&o, "candidate_count", 1, 8, request)?.unwrap_or(1) as usize;
    g.max_tokens = int(&o, "max_output_tokens", 1, i64::from(i32::MAX), request)?.map(|x| x as u64);
    if let Some(s) = o.get("stop_sequences") {
        let a = as_array(s, "generation_config.stop_sequences")?;
        if a.len() > 5 {
            return Err(field_error(
                request,
                "generation_config.stop_sequences",
                "stop_sequences must have at most 5 elements.",
            ));
        }
        for (i, x) in a.iter().enumerate() {
            g.stop
                .push(as_str(x, &format!("generation_config.stop_sequences[{i}]"))?.to_string());
        }
    }
    if let Some(m) = o.get("response_mime_type") {
        let m = as_str(m, "generation_config.response_mime_type")?;
        const MIMES: &[&str] = &[
            "text/plain",
            "application/json",
            "application/xml",
            "application/yaml",
            "text/x.enum",
        ];
        if !MIMES.contains(&m) {
            return Err(field_error(
                request,
                "generation_config.response_mime_type",
                "allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`.",
            ));
        }
        if m == "application/json" {
            let schema = o
                .get("response_schema")
                .or_else(|| o.get("response_json_schema"))
                .or_else(|| o.get("_response_json_schema"))
                .cloned();
            g.json = Some(schema);
        }
    }
    if let Some(s) = o.get("response_schema") {
        check_schema(s, "generation_config.response_schema", 0)?;
    }
    Ok(g)
}

fn parse_tool_mode(v: Option<&Value>, tools: &mut Vec<ToolDef>) -> Result<ToolMode, ApiError> {
    let Some(v) = v else {
        return Ok(ToolMode::Auto);
    };
    let o = fields(
        as_object(v, "tool_config")?,
        &["function_calling_config", "retrieval_config"],
        "tool_config",
    )?;
    let Some(fc) = o.get("function_calling_config") else {
        return Ok(ToolMode::Auto);
    };
    let p = "tool_config.function_calling_config";
    let f = fields(as_object(fc, p)?, &["mode", "allowed_function_names"], p)?;
    let mode = match f.get("mode") {
        None => "AUTO".to_string(),
        Some(m) => as_str(m, &format!("{p}.mode"))?.to_string(),
    };
    let allowed: Vec<String> = match f.get("allowed_function_names") {
        None => Vec::new(),
        Some(a) => as_array(a, &format!("{p}.allowed_function_names"))?
            .iter()
            .enumerate()
            .map(|(i, x)| {
                as_str(x, &format!("{p}.allowed_function_names[{i}]")).map(str::to_string)
            })
            .collect::<Result<_, _>>()?,
    };
    let m = match mode.as_str() {
        "MODE_UNSPECIFIED" | "AUTO" | "VALIDATED" => ToolMode::Auto,
        "NONE" => ToolMode::None,
        "ANY" => ToolMode::Any,
        other => return Err(bad_value(
            &format!("{p}.mode"),
            "type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode",
            &Value::String(other.to_string()),
        )),
    };
    if !allowed.is_empty() {
        if m != ToolMode::Any {
            return Err(field_error(
                "GenerateContentRequest",
                &format!("{p}.allowed_function_names"),
                "allowed_function_names can only be set when mode is ANY.",
            ));
        }
        tools.retain(|t| allowed.contains(&t.name));
        if allowed.len() == 1 {
            return Ok(ToolMode::Forced(allowed[0].clone()));
        }
    }
    Ok(m)
}

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "contents",
    "tools",
    "tool_config",
    "safety_settings",
    "system_instruction",
    "generation_config",
    "cached_content",
];

struct GenReq {
    summary: Summary,
}

fn validate_generate(
    body: &Map<String, Value>,
    request: &str,
    at: &str,
) -> Result<GenReq, ApiError> {
    let o = fields(body, REQUEST_FIELDS, at)?;
    let contents = match o.get("contents") {
        None => Vec::new(),
        Some(c) => as_array(c, "contents")?.clone(),
    };
    if contents.is_empty() {
        return Err(field_error(
            request,
            "contents",
            "contents is not specified",
        ));
    }
    let infos = contents
        .iter()
        .enumerate()
        .map(|(i, c)| parse_content(c, &format!("contents[{i}]"), request, true))
        .collect::<Result<Vec<_>, _>>()?;
    check_turns(&infos)?;
    let mut s = Summary::new();
    if let Some(si) = o.get("system_instruction") {
        let info = parse_content(si, "system_instruction", request, false)?;
        s.add_input(&info.text, 0);
    }
    let mut tools = match o.get("tools") {
        Some(t) => {
            s.input_tokens += count_tokens(&t.to_string());
            parse_tools(t, request)?
        }
        None => Vec::new(),
    };
    let mode = parse_tool_mode(o.get("tool_config"), &mut tools)?;
    if let Some(ss) = o.get("safety_settings") {
        for (i, x) in as_array(ss, "safety_settings")?.iter().enumerate() {
            let p = format!("safety_settings[{i}]");
            fields(as_object(x, &p)?, &["category", "threshold", "method"], &p)?;
        }
    }
    let g = parse_gen_config(o.get("generation_config"), request)?;
    for c in &infos {
        s.add_input(&c.text, c.images);
        if c.role != "model" && c.responses.is_empty() {
            s.last_user_text = c.text.clone();
            s.last_user_images = c.images;
        }
    }
    if let Some(last) = infos.last() {
        s.last = if last.role == "model" {
            LastTurn::Assistant
        } else if let Some((name, content)) = last.responses.last() {
            LastTurn::ToolResult {
                name: name.clone(),
                content: content.clone(),
            }
        } else {
            LastTurn::User
        };
    }
    s.tools = tools;
    s.tool_mode = mode;
    s.stop = g.stop;
    s.json = g.json;
    s.max_tokens = g.max_tokens;
    s.choices = g.candidates;
    Ok(GenReq { summary: s })
}

fn finish_reason(p: &Plan) -> &'static str {
    match p.finish {
        Finish::Length => "MAX_TOKENS",
        _ => "STOP",
    }
}

fn usage(p: &Plan, n: usize, complete: bool) -> Value {
    let out = if complete {
        p.output_tokens * n as u64
    } else {
        0
    };
    let mut u = json!({
        "promptTokenCount": p.input_tokens,
        "totalTokenCount": p.input_tokens + out,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": p.input_tokens}],
    });
    if complete {
        u["candidatesTokenCount"] = json!(out);
    }
    u
}

fn generate(req: &Incoming, model: &str, streaming: bool) -> Result<Response, ApiError> {
    let body = parse_body(req)?;
    let g = validate_generate(&body, "GenerateContentRequest", "")?;
    let method = if streaming {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    if model.starts_with("missing") {
        return Err(not_found_model(model, method));
    }
    if matches!(req.fault, Some(Fault::StreamError { .. })) && !streaming {
        return Err(status_error(500));
    }
    let p = plan(&req.opts.label, &g.summary);
    let n = g.summary.choices;
    let response_id = random_id(22);
    let candidate = |parts: Value, finish: Option<&str>| -> Value {
        let mut c: Vec<Value> = (0..n)
            .map(|i| json!({"content": {"parts": parts, "role": "model"}, "index": i}))
            .collect();
        if let Some(f) = finish {
            for x in &mut c {
                x["finishReason"] = json!(f);
            }
        }
        Value::Array(c)
    };
    let response = |candidates: Value, usage_v: Value| {
        json!({"candidates": candidates, "usageMetadata": usage_v,
               "modelVersion": model, "responseId": response_id})
    };
    let full_parts: Value = match &p.output {
        Output::Text(t) => json!([{"text": t}]),
        Output::Calls(calls) => Value::Array(
            calls
                .iter()
                .map(|c| json!({"functionCall": {"name": c.name, "args": c.args}}))
                .collect(),
        ),
    };
    if !streaming {
        let out = response(
            candidate(full_parts, Some(finish_reason(&p))),
            usage(&p, n, true),
        );
        return Ok(json_with_fault(&out, headers(req), req.fault.as_ref()));
    }

    let mut docs: Vec<Value> = Vec::new();
    match &p.output {
        Output::Text(t) => {
            let pieces = text_pieces(t);
            let count = pieces.len();
            if count == 0 {
                docs.push(response(
                    candidate(json!([{"text": ""}]), Some(finish_reason(&p))),
                    usage(&p, n, true),
                ));
            }
            for (i, piece) in pieces.into_iter().enumerate() {
                let last = i + 1 == count;
                docs.push(response(
                    candidate(json!([{"text": piece}]), last.then(|| finish_reason(&p))),
                    usage(&p, n, last),
                ));
            }
        }
        Output::Calls(_) => {
            docs.push(response(
                candidate(full_parts, Some(finish_reason(&p))),
                usage(&p, n, true),
            ));
        }
    }
    let sse = query_param(req.query.as_deref(), "alt") == Some("sse");
    let err = status_error(503).body;
    let spec = if sse {
        StreamSpec {
            frames: docs
                .iter()
                .map(|d| Bytes::from(format!("data: {d}\r\n\r\n")))
                .collect(),
            error_frames: vec![Bytes::from(format!("data: {err}\r\n\r\n"))],
            malformed_frame: Bytes::from_static(
                b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\r\n\r\n",
            ),
            malformed_tail: Vec::new(),
            content_type: "text/event-stream",
            headers: headers(req),
        }
    } else {
        let mut frames: Vec<Bytes> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let sep = if i == 0 { "[" } else { "\n,\r\n" };
                Bytes::from(format!("{sep}{d:#}"))
            })
            .collect();
        frames.push(Bytes::from_static(b"\n]"));
        StreamSpec {
            frames,
            error_frames: vec![Bytes::from(format!("\n,\r\n{err:#}\n]"))],
            malformed_frame: Bytes::from_static(b"\n,\r\n{\"candidates\": [{\"content\": "),
            malformed_tail: vec![Bytes::from_static(b"\n]")],
            content_type: "application/json; charset=UTF-8",
            headers: headers(req),
        }
    };
    Ok(stream_response(spec, req.fault.as_ref()))
}

// ---------------------------------------------------------------------------
// Embeddings and token counting.

const EMBED_FIELDS: &[&str] = &[
    "model",
    "content",
    "task_type",
    "title",
    "output_dimensionality",
];

fn embed_one(v: &Map<String, Value>, request: &str, at: &str) -> Result<(String, usize), ApiError> {
    let o = fields(v, EMBED_FIELDS, at)?;
    let prefix = if at.is_empty() {
        String::new()
    } else {
        format!("{at}.")
    };
    let Some(c) = o.get("content") else {
        return Err(field_error(
            request,
            &format!("{prefix}content"),
            "content is not specified",
        ));
    };
    let info = parse_content(c, &format!("{prefix}content"), request, false)?;
    let dims = match o.get("output_dimensionality") {
        None => 8,
        Some(d) => match as_integer(d) {
            Some(i) if i >= 1 => i as usize,
            _ => {
                return Err(field_error(
                    request,
                    &format!("{prefix}output_dimensionality"),
                    "output_dimensionality must be a positive integer.",
                ))
            }
        },
    };
    if let Some(t) = o.get("task_type") {
        const TASKS: &[&str] = &[
            "TASK_TYPE_UNSPECIFIED",
            "RETRIEVAL_QUERY",
            "RETRIEVAL_DOCUMENT",
            "SEMANTIC_SIMILARITY",
            "CLASSIFICATION",
            "CLUSTERING",
            "QUESTION_ANSWERING",
            "FACT_VERIFICATION",
            "CODE_RETRIEVAL_QUERY",
        ];
        let ts = as_str(t, &format!("{prefix}task_type"))?;
        if !TASKS.contains(&ts) {
            return Err(bad_value(
                &format!("{prefix}task_type"),
                "type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType",
                t,
            ));
        }
    }
    Ok((info.text, dims))
}

fn embed(req: &Incoming, model: &str, batch: bool) -> Result<Response, ApiError> {
    let body = parse_body(req)?;
    let method = if batch {
        "batchEmbedContents"
    } else {
        "embedContent"
    };
    let out = if batch {
        let o = fields(&body, &["requests"], "")?;
        let reqs = match o.get("requests") {
            Some(r) => as_array(r, "requests")?.clone(),
            None => Vec::new(),
        };
        if reqs.is_empty() {
            return Err(field_error(
                "BatchEmbedContentsRequest",
                "requests",
                "requests is not specified",
            ));
        }
        let mut embs = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let at = format!("requests[{i}]");
            let r = as_object(r, &at)?;
            if let Some(m) = r.get("model") {
                let m = as_str(m, &format!("{at}.model"))?;
                if m != format!("models/{model}") {
                    return Err(field_error(
                        "BatchEmbedContentsRequest",
                        &format!("{at}.model"),
                        &format!(
                            "Model \"{m}\" does not match the model in the URL \"models/{model}\"."
                        ),
                    ));
                }
            }
            let (text, dims) = embed_one(r, "BatchEmbedContentsRequest", &at)?;
            embs.push(json!({"values": embedding_vector(&text, dims)}));
        }
        json!({"embeddings": embs})
    } else {
        let (text, dims) = embed_one(&body, "EmbedContentRequest", "")?;
        json!({"embedding": {"values": embedding_vector(&text, dims)}})
    };
    if model.starts_with("missing") {
        return Err(not_found_model(model, method));
    }
    Ok(json_with_fault(&out, headers(req), req.fault.as_ref()))
}

fn count(req: &Incoming, model: &str) -> Result<Response, ApiError> {
    let body = parse_body(req)?;
    let o = fields(&body, &["contents", "generate_content_request"], "")?;
    let tokens = if let Some(g) = o.get("generate_content_request") {
        let g = as_object(g, "generate_content_request")?;
        validate_generate(g, "CountTokensRequest", "generate_content_request")?
            .summary
            .input_tokens
    } else {
        let mut m = Map::new();
        if let Some(c) = o.get("contents") {
            m.insert("contents".into(), c.clone());
        }
        validate_generate(&m, "CountTokensRequest", "")?
            .summary
            .input_tokens
    };
    if model.starts_with("missing") {
        return Err(not_found_model(model, "countTokens"));
    }
    Ok(json_response(
        200,
        &json!({"totalTokens": tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}),
        &headers(req),
    ))
}
