//! `POST /v1/chat/completions` request bodies: the strict client-facing
//! decoder and the upstream encoder.
//!
//! Decoding walks a `serde_json::Value` so that every rejection names the
//! exact field path (`messages[2].content[0].image_url.url`) in `param`,
//! the way OpenAI does; typed sub-objects (content parts, tools, response
//! formats) use serde wire enums tagged by `type`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::wire::{to_json, ToolCallOut};
use crate::dialect::{MaxTokensField, Quirks};
use crate::ir::{
    ApiError, ChatRequest, ContentPart, ImageSource, Message, ResponseFormat, Role, Tool, ToolCall,
    ToolChoice,
};

// ---------------------------------------------------------------------------
// Path-aware field access
// ---------------------------------------------------------------------------

pub(super) fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn invalid_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid_param(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
    )
    .with_code("invalid_type")
}

pub(super) fn missing(param: &str) -> ApiError {
    ApiError::invalid_param(param, format!("Missing required parameter: '{param}'."))
        .with_code("missing_required_parameter")
}

pub(super) fn invalid_value(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_param(param, message).with_code("invalid_value")
}

fn unsupported(param: &str, what: &str) -> ApiError {
    ApiError::invalid_param(
        param,
        format!("'{param}': {what} is not supported by this gateway."),
    )
    .with_code("unsupported_value")
}

/// Parse a body into a JSON object, with OpenAI's wording for bad JSON.
pub(super) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(ApiError::invalid(format!(
            "The request body must be a JSON object, but got {}.",
            type_name(&other)
        ))),
        Err(e) => Err(ApiError::invalid(format!(
            "We could not parse the JSON body of your request ({e}). \
             The API expects a JSON payload."
        ))),
    }
}

/// A field that is present and not `null`.
pub(super) fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(super) fn opt_str(
    obj: &Map<String, Value>,
    key: &str,
    base: &str,
) -> Result<Option<String>, ApiError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid_type(&join(base, key), "a string", v)),
    }
}

pub(super) fn req_str(obj: &Map<String, Value>, key: &str, base: &str) -> Result<String, ApiError> {
    opt_str(obj, key, base)?.ok_or_else(|| missing(&join(base, key)))
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid_type(key, "a boolean", v)),
    }
}

fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(v) => Err(invalid_type(key, "a number", v)),
    }
}

fn opt_i64(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid_type(key, "an integer", &Value::Number(n.clone()))),
        Some(v) => Err(invalid_type(key, "an integer", v)),
    }
}

pub(super) fn opt_u32(
    obj: &Map<String, Value>,
    key: &str,
    base: &str,
) -> Result<Option<u32>, ApiError> {
    let param = join(base, key);
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) if n.is_f64() => Err(invalid_type(
            &param,
            "an integer",
            &Value::Number(n.clone()),
        )),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                invalid_value(
                    &param,
                    format!(
                        "Invalid '{param}': {n} is out of range (expected 0 to {}).",
                        u32::MAX
                    ),
                )
            }),
        Some(v) => Err(invalid_type(&param, "an integer", v)),
    }
}

fn opt_array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    base: &str,
) -> Result<Option<&'a Vec<Value>>, ApiError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(invalid_type(&join(base, key), "an array", v)),
    }
}

/// Deserialize a typed wire object, reporting serde's complaint at `param`.
fn typed<'a, T: Deserialize<'a>>(v: &'a Value, param: &str) -> Result<T, ApiError> {
    if !v.is_object() {
        return Err(invalid_type(param, "an object", v));
    }
    T::deserialize(v).map_err(|e| invalid_value(param, format!("Invalid '{param}': {e}.")))
}

// ---------------------------------------------------------------------------
// Wire types for typed sub-objects
// ---------------------------------------------------------------------------

/// `ChatCompletionContentPartParam` (plus the assistant-only refusal part).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartIn {
    Text { text: String },
    ImageUrl { image_url: ImageUrlIn },
    InputAudio {},
    File {},
    Refusal { refusal: String },
}

#[derive(Deserialize)]
struct ImageUrlIn {
    url: String,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Deserialize)]
struct ToolCallIn {
    id: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: FunctionCallIn,
}

#[derive(Deserialize)]
struct FunctionCallIn {
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToolIn {
    Function { function: FunctionDefIn },
    Custom {},
}

/// Also the shape of a legacy `functions[]` entry.
#[derive(Deserialize)]
struct FunctionDefIn {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

impl FunctionDefIn {
    fn into_tool(self) -> Tool {
        Tool {
            name: self.name,
            description: self.description,
            // Per the spec, omitting `parameters` means "no arguments".
            parameters: self
                .parameters
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            strict: self.strict,
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormatIn {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaIn },
}

#[derive(Deserialize)]
struct JsonSchemaIn {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Which content parts a role may carry.
#[derive(Clone, Copy, PartialEq)]
enum Parts {
    /// system / developer.
    Text,
    /// user, and tool results (images there are an extension some
    /// providers accept).
    TextImage,
    /// assistant: text and refusal parts.
    TextRefusal,
}

struct Content {
    parts: Vec<ContentPart>,
    refusal: Option<String>,
}

fn decode_part(v: &Value, param: &str, allowed: Parts, out: &mut Content) -> Result<(), ApiError> {
    match typed::<PartIn>(v, param)? {
        PartIn::Text { text } => out.parts.push(ContentPart::Text(text)),
        PartIn::ImageUrl { image_url } if allowed == Parts::TextImage => {
            let source = ImageSource::from_url(&image_url.url).ok_or_else(|| {
                invalid_value(
                    &format!("{param}.image_url.url"),
                    format!("Invalid '{param}.image_url.url': expected an http(s) URL or a base64 data URL (data:<media type>;base64,<data>)."),
                )
            })?;
            out.parts.push(ContentPart::Image {
                source,
                detail: image_url.detail,
            });
        }
        PartIn::Refusal { refusal } if allowed == Parts::TextRefusal => match &mut out.refusal {
            Some(r) => r.push_str(&refusal),
            None => out.refusal = Some(refusal),
        },
        PartIn::InputAudio {} => return Err(unsupported(param, "an 'input_audio' content part")),
        PartIn::File {} => return Err(unsupported(param, "a 'file' content part")),
        PartIn::ImageUrl { .. } | PartIn::Refusal { .. } => {
            let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
            return Err(invalid_value(
                &join(param, "type"),
                format!("Invalid value for '{param}.type': '{kind}' parts are not allowed in this message's role."),
            ));
        }
    }
    Ok(())
}

/// `content`: a string or an array of parts; `None` when absent or null.
fn decode_content(
    obj: &Map<String, Value>,
    base: &str,
    allowed: Parts,
) -> Result<Option<Content>, ApiError> {
    let param = join(base, "content");
    let mut out = Content {
        parts: Vec::new(),
        refusal: None,
    };
    match field(obj, "content") {
        None => return Ok(None),
        Some(Value::String(s)) => out.parts.push(ContentPart::Text(s.clone())),
        Some(Value::Array(items)) => {
            for (j, item) in items.iter().enumerate() {
                decode_part(item, &format!("{param}[{j}]"), allowed, &mut out)?;
            }
        }
        Some(v) => {
            return Err(invalid_type(
                &param,
                "a string or an array of content parts",
                v,
            ))
        }
    }
    Ok(Some(out))
}

fn required_content(
    obj: &Map<String, Value>,
    base: &str,
    allowed: Parts,
) -> Result<Vec<ContentPart>, ApiError> {
    decode_content(obj, base, allowed)?
        .map(|c| c.parts)
        .ok_or_else(|| missing(&join(base, "content")))
}

fn decode_tool_calls(obj: &Map<String, Value>, base: &str) -> Result<Vec<ToolCall>, ApiError> {
    let mut calls = Vec::new();
    if let Some(items) = opt_array(obj, "tool_calls", base)? {
        for (k, item) in items.iter().enumerate() {
            let param = format!("{base}.tool_calls[{k}]");
            let call: ToolCallIn = typed(item, &param)?;
            if let Some(kind) = call.kind.as_deref().filter(|k| *k != "function") {
                return Err(unsupported(&param, &format!("a '{kind}' tool call")));
            }
            calls.push(ToolCall {
                id: call.id,
                name: call.function.name,
                arguments: call.function.arguments,
            });
        }
    }
    // Legacy `function_call`: its id is the function name, which is also how
    // the matching legacy `function` message refers to it.
    if let Some(v) = field(obj, "function_call") {
        let f: FunctionCallIn = typed(v, &join(base, "function_call"))?;
        calls.push(ToolCall {
            id: f.name.clone(),
            name: f.name,
            arguments: f.arguments,
        });
    }
    Ok(calls)
}

fn decode_assistant(obj: &Map<String, Value>, base: &str) -> Result<Message, ApiError> {
    if field(obj, "audio").is_some() {
        return Err(unsupported(
            &join(base, "audio"),
            "a reference to a previous audio response",
        ));
    }
    let content = decode_content(obj, base, Parts::TextRefusal)?;
    let (mut parts, part_refusal) = content.map_or((Vec::new(), None), |c| (c.parts, c.refusal));
    if let Some(reasoning) = opt_str(obj, "reasoning_content", base)? {
        parts.insert(
            0,
            ContentPart::Thinking {
                text: reasoning,
                signature: None,
            },
        );
    }
    let mut msg = Message::new(Role::Assistant, parts);
    msg.refusal = opt_str(obj, "refusal", base)?.or(part_refusal);
    msg.tool_calls = decode_tool_calls(obj, base)?;
    Ok(msg)
}

fn decode_message(v: &Value, i: usize) -> Result<Message, ApiError> {
    let base = format!("messages[{i}]");
    let obj = v
        .as_object()
        .ok_or_else(|| invalid_type(&base, "an object", v))?;
    let role = req_str(obj, "role", &base)?;
    let mut msg = match role.as_str() {
        "system" => Message::new(Role::System, required_content(obj, &base, Parts::Text)?),
        "developer" => Message::new(Role::Developer, required_content(obj, &base, Parts::Text)?),
        "user" => Message::new(Role::User, required_content(obj, &base, Parts::TextImage)?),
        "assistant" => decode_assistant(obj, &base)?,
        "tool" => {
            let mut m = Message::new(Role::Tool, required_content(obj, &base, Parts::TextImage)?);
            m.tool_call_id = Some(req_str(obj, "tool_call_id", &base)?);
            return Ok(m);
        }
        "function" => {
            // Legacy function result: answers the call whose id is its name.
            let content =
                decode_content(obj, &base, Parts::Text)?.map_or_else(Vec::new, |c| c.parts);
            let mut m = Message::new(Role::Tool, content);
            m.tool_call_id = Some(req_str(obj, "name", &base)?);
            return Ok(m);
        }
        other => {
            let param = join(&base, "role");
            return Err(invalid_value(
                &param,
                format!(
                    "Invalid value for '{param}': '{other}'. Supported values are: 'system', \
                     'developer', 'user', 'assistant', 'tool', and 'function'."
                ),
            ));
        }
    };
    msg.name = opt_str(obj, "name", &base)?;
    Ok(msg)
}

fn decode_messages(obj: &Map<String, Value>) -> Result<Vec<Message>, ApiError> {
    let items = opt_array(obj, "messages", "")?.ok_or_else(|| missing("messages"))?;
    if items.is_empty() {
        return Err(invalid_value(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
        )
        .with_code("empty_array"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, m)| decode_message(m, i))
        .collect()
}

fn decode_tools(obj: &Map<String, Value>) -> Result<Vec<Tool>, ApiError> {
    let mut tools = Vec::new();
    if let Some(items) = opt_array(obj, "tools", "")? {
        for (i, item) in items.iter().enumerate() {
            let param = format!("tools[{i}]");
            match typed::<ToolIn>(item, &param)? {
                ToolIn::Function { function } => tools.push(function.into_tool()),
                ToolIn::Custom {} => return Err(unsupported(&param, "a 'custom' tool")),
            }
        }
    } else if let Some(items) = opt_array(obj, "functions", "")? {
        for (i, item) in items.iter().enumerate() {
            let f: FunctionDefIn = typed(item, &format!("functions[{i}]"))?;
            tools.push(f.into_tool());
        }
    }
    Ok(tools)
}

fn named_choice(v: &Value, param: &str) -> Result<String, ApiError> {
    let name = v
        .as_object()
        .and_then(|o| o.get("name"))
        .and_then(Value::as_str);
    name.map(str::to_owned)
        .ok_or_else(|| missing(&join(param, "name")))
}

fn decode_tool_choice(obj: &Map<String, Value>) -> Result<Option<ToolChoice>, ApiError> {
    let mode = |s: &str, param: &str| {
        match s {
        "auto" => Ok(ToolChoice::Auto),
        "none" => Ok(ToolChoice::None),
        "required" => Ok(ToolChoice::Required),
        other => Err(invalid_value(
            param,
            format!("Invalid value for '{param}': '{other}'. Supported values are: 'none', 'auto', and 'required'."),
        )),
    }
    };
    if let Some(v) = field(obj, "tool_choice") {
        return match v {
            Value::String(s) => mode(s, "tool_choice").map(Some),
            Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                Some("function") => {
                    let f = o
                        .get("function")
                        .ok_or_else(|| missing("tool_choice.function"))?;
                    Ok(Some(ToolChoice::Tool(named_choice(
                        f,
                        "tool_choice.function",
                    )?)))
                }
                Some(other) => Err(unsupported(
                    "tool_choice.type",
                    &format!("tool_choice type '{other}'"),
                )),
                None => Err(missing("tool_choice.type")),
            },
            other => Err(invalid_type("tool_choice", "a string or an object", other)),
        };
    }
    // Legacy `function_call`: "none" | "auto" | {"name"}.
    match field(obj, "function_call") {
        None => Ok(None),
        Some(Value::String(s)) if s != "required" => mode(s, "function_call").map(Some),
        Some(v @ Value::Object(_)) => Ok(Some(ToolChoice::Tool(named_choice(v, "function_call")?))),
        Some(other) => Err(invalid_type(
            "function_call",
            "'none', 'auto' or an object",
            other,
        )),
    }
}

fn decode_response_format(obj: &Map<String, Value>) -> Result<Option<ResponseFormat>, ApiError> {
    let Some(v) = field(obj, "response_format") else {
        return Ok(None);
    };
    Ok(Some(
        match typed::<ResponseFormatIn>(v, "response_format")? {
            ResponseFormatIn::Text => ResponseFormat::Text,
            ResponseFormatIn::JsonObject => ResponseFormat::JsonObject,
            ResponseFormatIn::JsonSchema { json_schema } => ResponseFormat::JsonSchema {
                name: json_schema.name,
                description: json_schema.description,
                schema: json_schema.schema.unwrap_or(Value::Null),
                strict: json_schema.strict,
            },
        },
    ))
}

fn decode_stop(obj: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match field(obj, "stop") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid_type(&format!("stop[{i}]"), "a string", other)),
            })
            .collect(),
        Some(other) => Err(invalid_type(
            "stop",
            "a string or an array of strings",
            other,
        )),
    }
}

fn decode_include_usage(obj: &Map<String, Value>) -> Result<bool, ApiError> {
    match field(obj, "stream_options") {
        None => Ok(false),
        Some(Value::Object(o)) => match field(o, "include_usage") {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(invalid_type("stream_options.include_usage", "a boolean", v)),
        },
        Some(v) => Err(invalid_type("stream_options", "an object", v)),
    }
}

/// Decode a client's Chat Completions request. Fields the IR does not carry
/// (`logprobs`, `metadata`, `store`, `service_tier`, `logit_bias`, …) are
/// ignored; everything it does carry is type-checked, and a rejection names
/// the offending field path in `param`.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let obj = parse_object(body)?;
    let model = req_str(&obj, "model", "")?;
    let messages = decode_messages(&obj)?;
    let n = opt_u32(&obj, "n", "")?;
    if n == Some(0) {
        return Err(invalid_value(
            "n",
            "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        ));
    }
    Ok(ChatRequest {
        model,
        messages,
        tools: decode_tools(&obj)?,
        tool_choice: decode_tool_choice(&obj)?,
        parallel_tool_calls: opt_bool(&obj, "parallel_tool_calls")?,
        max_tokens: match opt_u32(&obj, "max_completion_tokens", "")? {
            Some(m) => Some(m),
            None => opt_u32(&obj, "max_tokens", "")?,
        },
        temperature: opt_f64(&obj, "temperature")?,
        top_p: opt_f64(&obj, "top_p")?,
        // Not OpenAI, but commonly sent to OpenAI-compatible servers.
        top_k: opt_u32(&obj, "top_k", "")?,
        stop: decode_stop(&obj)?,
        seed: opt_i64(&obj, "seed")?,
        n,
        presence_penalty: opt_f64(&obj, "presence_penalty")?,
        frequency_penalty: opt_f64(&obj, "frequency_penalty")?,
        user: opt_str(&obj, "user", "")?,
        response_format: decode_response_format(&obj)?,
        reasoning_effort: opt_str(&obj, "reasoning_effort", "")?,
        thinking: None,
        stream: opt_bool(&obj, "stream")?.unwrap_or(false),
        include_usage: decode_include_usage(&obj)?,
    })
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct RequestOut<'a> {
    model: &'a str,
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormatOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptionsOut>,
}

#[derive(Serialize)]
struct StreamOptionsOut {
    include_usage: bool,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    /// Always written; `null` only for assistant turns without text.
    content: Option<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'a> {
    Text(String),
    Parts(Vec<PartOut<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartOut<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrlOut<'a> },
}

#[derive(Serialize)]
struct ImageUrlOut<'a> {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct ToolOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDefOut<'a>,
}

#[derive(Serialize)]
struct FunctionDefOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolChoiceOut<'a> {
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NameOut<'a>,
    },
}

#[derive(Serialize)]
struct NameOut<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormatOut<'a> {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaOut<'a> },
}

#[derive(Serialize)]
struct JsonSchemaOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Value::is_null")]
    schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

fn role_str(role: Role, q: &Quirks) -> &'static str {
    match role {
        Role::System => "system",
        Role::Developer if q.developer_role => "developer",
        Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// User content: a plain string when it is a single text part, else parts.
/// Thinking parts are dropped.
fn user_content(parts: &[ContentPart]) -> ContentOut<'_> {
    match parts {
        [ContentPart::Text(t)] => return ContentOut::Text(t.clone()),
        [] => return ContentOut::Text(String::new()),
        _ => {}
    }
    let out = parts
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text(text) => Some(PartOut::Text { text }),
            ContentPart::Image { source, detail } => Some(PartOut::ImageUrl {
                image_url: ImageUrlOut {
                    url: source.to_url(),
                    detail: detail.as_deref(),
                },
            }),
            ContentPart::Thinking { .. } | ContentPart::RedactedThinking(_) => None,
        })
        .collect();
    ContentOut::Parts(out)
}

fn encode_message<'a>(m: &'a Message, q: &Quirks) -> MessageOut<'a> {
    let text = || ContentOut::Text(m.text());
    let content = match m.role {
        Role::User => Some(user_content(&m.content)),
        // OpenAI requires assistant `content` unless there are tool calls.
        Role::Assistant => {
            let has_text = m.content.iter().any(|p| matches!(p, ContentPart::Text(_)));
            (has_text || m.tool_calls.is_empty()).then(text)
        }
        Role::System | Role::Developer | Role::Tool => Some(text()),
    };
    MessageOut {
        role: role_str(m.role, q),
        content,
        name: m.name.as_deref().filter(|_| m.role != Role::Tool),
        refusal: m.refusal.as_deref().filter(|_| m.role == Role::Assistant),
        tool_calls: m.tool_calls.iter().map(ToolCallOut::from_ir).collect(),
        tool_call_id: m.tool_call_id.as_deref().filter(|_| m.role == Role::Tool),
    }
}

fn encode_tool(t: &Tool) -> ToolOut<'_> {
    ToolOut {
        kind: "function",
        function: FunctionDefOut {
            name: &t.name,
            description: t.description.as_deref(),
            parameters: &t.parameters,
            strict: t.strict,
        },
    }
}

fn encode_tool_choice(c: &ToolChoice) -> ToolChoiceOut<'_> {
    match c {
        ToolChoice::Auto => ToolChoiceOut::Mode("auto"),
        ToolChoice::None => ToolChoiceOut::Mode("none"),
        ToolChoice::Required => ToolChoiceOut::Mode("required"),
        ToolChoice::Tool(name) => ToolChoiceOut::Named {
            kind: "function",
            function: NameOut { name },
        },
    }
}

fn encode_response_format<'a>(f: &'a ResponseFormat, q: &Quirks) -> ResponseFormatOut<'a> {
    match f {
        ResponseFormat::Text => ResponseFormatOut::Text,
        ResponseFormat::JsonObject => ResponseFormatOut::JsonObject,
        // Degrade to JSON mode where structured outputs are unsupported.
        ResponseFormat::JsonSchema { .. } if !q.json_schema => ResponseFormatOut::JsonObject,
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => ResponseFormatOut::JsonSchema {
            json_schema: JsonSchemaOut {
                name,
                description: description.as_deref(),
                schema,
                strict: *strict,
            },
        },
    }
}

/// Encode a request for an OpenAI-compatible upstream, honouring `q`.
///
/// - `model` is `upstream_model`; the output limit goes in the field
///   `q.max_tokens_field` names.
/// - Parameters the provider does not accept are dropped, except `n > 1`,
///   which is refused (silently returning fewer choices would be wrong).
/// - `developer` turns become `system` without `q.developer_role`;
///   `json_schema` formats degrade to `json_object` without `q.json_schema`.
/// - Streaming requests always ask for the usage chunk when the provider
///   supports `stream_options` (the gateway needs usage for accounting).
/// - Thinking parts in the history are dropped: OpenAI takes no reasoning
///   input on Chat Completions. `top_k`, `thinking`, tool-result `is_error`
///   and images outside user turns have no OpenAI field and are dropped too.
/// - `tool_choice`/`parallel_tool_calls` are only sent along with tools
///   (OpenAI rejects them otherwise).
pub fn encode_request(
    req: &ChatRequest,
    upstream_model: &str,
    q: &Quirks,
) -> Result<Vec<u8>, ApiError> {
    if !q.n && req.n.is_some_and(|n| n > 1) {
        return Err(invalid_value(
            "n",
            "This provider does not support generating more than one choice ('n' > 1).",
        ));
    }
    let has_tools = !req.tools.is_empty();
    let (max_completion_tokens, max_tokens) = match q.max_tokens_field {
        MaxTokensField::MaxCompletionTokens => (req.max_tokens, None),
        MaxTokensField::MaxTokens => (None, req.max_tokens),
    };
    let out = RequestOut {
        model: upstream_model,
        messages: req.messages.iter().map(|m| encode_message(m, q)).collect(),
        tools: req.tools.iter().map(encode_tool).collect(),
        tool_choice: req
            .tool_choice
            .as_ref()
            .filter(|_| has_tools)
            .map(encode_tool_choice),
        parallel_tool_calls: req
            .parallel_tool_calls
            .filter(|_| has_tools && q.parallel_tool_calls),
        max_completion_tokens,
        max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: &req.stop,
        seed: req.seed.filter(|_| q.seed),
        n: req.n.filter(|_| q.n),
        presence_penalty: req.presence_penalty.filter(|_| q.penalties),
        frequency_penalty: req.frequency_penalty.filter(|_| q.penalties),
        user: req.user.as_deref().filter(|_| q.user),
        response_format: req
            .response_format
            .as_ref()
            .map(|f| encode_response_format(f, q)),
        reasoning_effort: req.reasoning_effort.as_deref(),
        stream: req.stream,
        stream_options: (req.stream && q.stream_options).then_some(StreamOptionsOut {
            include_usage: true,
        }),
    };
    Ok(to_json(&out))
}
