//! Anthropic wire → IR: client requests (strict, path-naming 400s) and
//! upstream responses.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;

use super::wire::{
    compact_json, BlockHead, RawUsage, RedactedThinkingBlock, TextBlock, ThinkingBlock,
    ToolUseBlock, WireMessage,
};
use crate::ir::{
    ApiError, ChatRequest, ChatResponse, Choice, ContentPart, ErrorKind, FinishReason, ImageSource,
    Message, ResponseFormat, Role, ThinkingConfig, Tool, ToolCall, ToolChoice,
};

/// Name given to a structured-output schema arriving via `output_config`
/// (Anthropic's format has no name; OpenAI's requires one).
pub(super) const OUTPUT_SCHEMA_NAME: &str = "output";

/// Unix seconds now (Anthropic responses carry no timestamp).
pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `stop_reason` → IR. Unknown values are `Stop`.
pub(super) fn finish_from_wire(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // end_turn, stop_sequence, pause_turn and anything newer.
        _ => FinishReason::Stop,
    }
}

// ---------------------------------------------------------------------------
// Path-aware JSON walking over borrowed raw values.

fn bad(path: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_param(path, format!("{path}: {msg}"))
}

fn first_byte(raw: &RawValue) -> u8 {
    raw.get().trim_start().bytes().next().unwrap_or(b' ')
}

fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

fn describe(raw: &RawValue) -> &'static str {
    match first_byte(raw) {
        b'{' => "an object",
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    }
}

fn typed<T: DeserializeOwned>(raw: &RawValue, path: &str, what: &str) -> Result<T, ApiError> {
    serde_json::from_str(raw.get())
        .map_err(|_| bad(path, format_args!("expected {what}, got {}", describe(raw))))
}

fn as_array<'a>(raw: &'a RawValue, path: &str) -> Result<Vec<&'a RawValue>, ApiError> {
    if first_byte(raw) != b'[' {
        return Err(bad(
            path,
            format_args!("expected an array, got {}", describe(raw)),
        ));
    }
    serde_json::from_str(raw.get()).map_err(|_| bad(path, "expected an array"))
}

/// A JSON object being read, with its path for error messages.
struct Obj<'a> {
    path: String,
    map: BTreeMap<String, &'a RawValue>,
}

impl<'a> Obj<'a> {
    fn parse(raw: &'a RawValue, path: String) -> Result<Self, ApiError> {
        if first_byte(raw) != b'{' {
            return Err(bad(
                &path,
                format_args!("expected an object, got {}", describe(raw)),
            ));
        }
        let map = serde_json::from_str(raw.get()).map_err(|_| bad(&path, "expected an object"))?;
        Ok(Obj { path, map })
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The field, treating `null` as absent.
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.map.get(key).copied().filter(|r| !is_null(r))
    }

    fn req(&self, key: &str) -> Result<&'a RawValue, ApiError> {
        self.get(key)
            .ok_or_else(|| bad(&self.child(key), "field required"))
    }

    fn opt<T: DeserializeOwned>(&self, key: &str, what: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|r| typed(r, &self.child(key), what))
            .transpose()
    }

    fn req_t<T: DeserializeOwned>(&self, key: &str, what: &str) -> Result<T, ApiError> {
        typed(self.req(key)?, &self.child(key), what)
    }

    fn req_str(&self, key: &str) -> Result<String, ApiError> {
        self.req_t(key, "a string")
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, ApiError> {
        self.opt(key, "a string")
    }

    fn obj(&self, key: &str) -> Result<Option<Obj<'a>>, ApiError> {
        self.get(key)
            .map(|r| Obj::parse(r, self.child(key)))
            .transpose()
    }

    fn array(&self, key: &str) -> Result<Option<Vec<&'a RawValue>>, ApiError> {
        self.get(key)
            .map(|r| as_array(r, &self.child(key)))
            .transpose()
    }

    /// The block's `type` discriminator.
    fn block_type(&self) -> Result<String, ApiError> {
        self.req_str("type")
    }
}

// ---------------------------------------------------------------------------
// Requests (client → IR).

/// Anthropic Messages request body → IR. Strict: malformed JSON, missing
/// required fields, wrong types and content the IR cannot carry (documents,
/// search results, server tools, …) are 400s naming the field path
/// (`messages.1.content.0.source`). Unknown top-level fields (`cache_control`,
/// `service_tier`, `container`, …) are ignored.
///
/// - `tool_result` blocks of a user turn become `Role::Tool` messages (one per
///   block, in order), followed by a `Role::User` message with the turn's
///   other blocks, if any.
/// - `thinking: {type: "adaptive"}` has no IR form and is dropped (the model
///   then runs without a budget); `disabled` is `None`.
/// - `output_config.format` (and the deprecated beta `output_format`)
///   become `ResponseFormat::JsonSchema` named `"output"`;
///   `output_config.effort` becomes `reasoning_effort`.
/// - `include_usage` is set for streams: Anthropic streams always carry
///   usage, so an upstream of another dialect must be asked for it.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid("request body is not valid UTF-8"))?;
    let root: &RawValue = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
    let top = Obj::parse(root, String::new())?;

    let mut req = ChatRequest {
        model: top.req_str("model")?,
        max_tokens: Some(top.req_t("max_tokens", "a non-negative integer")?),
        stream: top.opt("stream", "a boolean")?.unwrap_or(false),
        temperature: top.opt("temperature", "a number")?,
        top_p: top.opt("top_p", "a number")?,
        top_k: top.opt("top_k", "a non-negative integer")?,
        ..ChatRequest::default()
    };
    req.include_usage = req.stream;

    if let Some(system) = top.get("system") {
        let parts = decode_system(system, "system")?;
        if !parts.is_empty() {
            req.messages.push(Message::new(Role::System, parts));
        }
    }

    let messages = as_array(top.req("messages")?, "messages")?;
    for (i, raw) in messages.into_iter().enumerate() {
        decode_message(raw, format!("messages.{i}"), &mut req.messages)?;
    }

    if let Some(stops) = top.array("stop_sequences")? {
        for (i, s) in stops.into_iter().enumerate() {
            req.stop
                .push(typed(s, &format!("stop_sequences.{i}"), "a string")?);
        }
    }

    if let Some(meta) = top.obj("metadata")? {
        req.user = meta.opt_str("user_id")?;
    }

    if let Some(tools) = top.array("tools")? {
        for (i, raw) in tools.into_iter().enumerate() {
            req.tools.push(decode_tool(raw, format!("tools.{i}"))?);
        }
    }

    if let Some(tc) = top.obj("tool_choice")? {
        let ty = tc.req_str("type")?;
        req.tool_choice = Some(match ty.as_str() {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Required,
            "none" => ToolChoice::None,
            "tool" => ToolChoice::Tool(tc.req_str("name")?),
            other => {
                return Err(bad(
                    &tc.child("type"),
                    format_args!(
                        "unknown tool_choice type `{other}` (expected auto, any, tool or none)"
                    ),
                ))
            }
        });
        if tc.opt::<bool>("disable_parallel_tool_use", "a boolean")? == Some(true) {
            req.parallel_tool_calls = Some(false);
        }
    }

    if let Some(th) = top.obj("thinking")? {
        match th.req_str("type")?.as_str() {
            "enabled" => {
                req.thinking = Some(ThinkingConfig {
                    budget_tokens: th.req_t("budget_tokens", "a non-negative integer")?,
                })
            }
            "disabled" | "adaptive" => {}
            other => {
                return Err(bad(
                    &th.child("type"),
                    format_args!(
                        "unknown thinking type `{other}` (expected enabled, disabled or adaptive)"
                    ),
                ))
            }
        }
    }

    if let Some(fmt) = top.obj("output_format")? {
        req.response_format = Some(decode_output_format(&fmt)?);
    }
    if let Some(cfg) = top.obj("output_config")? {
        if let Some(fmt) = cfg.obj("format")? {
            req.response_format = Some(decode_output_format(&fmt)?);
        }
        req.reasoning_effort = cfg.opt_str("effort")?;
    }

    Ok(req)
}

fn decode_output_format(fmt: &Obj<'_>) -> Result<ResponseFormat, ApiError> {
    match fmt.req_str("type")?.as_str() {
        "json_schema" => Ok(ResponseFormat::JsonSchema {
            name: OUTPUT_SCHEMA_NAME.to_owned(),
            description: None,
            schema: fmt.req_t("schema", "a JSON schema object")?,
            strict: None,
        }),
        other => Err(bad(
            &fmt.child("type"),
            format_args!("unsupported output format type `{other}` (expected json_schema)"),
        )),
    }
}

/// `system`: a string or an array of text blocks.
fn decode_system(raw: &RawValue, path: &str) -> Result<Vec<ContentPart>, ApiError> {
    match first_byte(raw) {
        b'"' => {
            let s: String = typed(raw, path, "a string")?;
            Ok(if s.is_empty() {
                Vec::new()
            } else {
                vec![ContentPart::Text(s)]
            })
        }
        b'[' => {
            let mut parts = Vec::new();
            for (i, b) in as_array(raw, path)?.into_iter().enumerate() {
                let block = Obj::parse(b, format!("{path}.{i}"))?;
                let ty = block.block_type()?;
                if ty != "text" {
                    return Err(bad(
                        &block.child("type"),
                        format_args!("only text blocks are allowed here, got `{ty}`"),
                    ));
                }
                parts.push(ContentPart::Text(block.req_str("text")?));
            }
            Ok(parts)
        }
        _ => Err(bad(
            path,
            format_args!(
                "expected a string or an array of text blocks, got {}",
                describe(raw)
            ),
        )),
    }
}

fn unsupported_block(path: &str, ty: &str) -> ApiError {
    bad(
        path,
        format_args!("content block type `{ty}` is not supported through this gateway"),
    )
}

fn decode_image(block: &Obj<'_>) -> Result<ContentPart, ApiError> {
    let src = block
        .obj("source")?
        .ok_or_else(|| bad(&block.child("source"), "field required"))?;
    let source = match src.req_str("type")?.as_str() {
        "base64" => ImageSource::Base64 {
            media_type: src.req_str("media_type")?,
            data: src.req_str("data")?,
        },
        "url" => ImageSource::Url(src.req_str("url")?),
        other => {
            return Err(bad(
                &src.child("type"),
                format_args!("image source type `{other}` is not supported through this gateway (use base64 or url)"),
            ))
        }
    };
    Ok(ContentPart::Image {
        source,
        detail: None,
    })
}

fn decode_message(raw: &RawValue, path: String, out: &mut Vec<Message>) -> Result<(), ApiError> {
    let msg = Obj::parse(raw, path)?;
    let role_path = msg.child("role");
    let role = match msg.req_str("role")?.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        other => {
            return Err(bad(
                &role_path,
                format_args!("unknown role `{other}` (expected user or assistant)"),
            ))
        }
    };
    let content_path = msg.child("content");
    let content = msg.req("content")?;
    if role == Role::System {
        out.push(Message::new(
            Role::System,
            decode_system(content, &content_path)?,
        ));
        return Ok(());
    }
    if first_byte(content) == b'"' {
        let s: String = typed(content, &content_path, "a string")?;
        out.push(Message::new(role, vec![ContentPart::Text(s)]));
        return Ok(());
    }
    if first_byte(content) != b'[' {
        return Err(bad(
            &content_path,
            format_args!(
                "expected a string or an array of content blocks, got {}",
                describe(content)
            ),
        ));
    }

    let before = out.len();
    let mut main = Message::new(role, Vec::new());
    for (i, b) in as_array(content, &content_path)?.into_iter().enumerate() {
        let block = Obj::parse(b, format!("{content_path}.{i}"))?;
        let ty = block.block_type()?;
        match ty.as_str() {
            "text" => main.content.push(ContentPart::Text(block.req_str("text")?)),
            "image" => main.content.push(decode_image(&block)?),
            "thinking" => main.content.push(ContentPart::Thinking {
                text: block.req_str("thinking")?,
                signature: block.opt_str("signature")?,
            }),
            "redacted_thinking" => main
                .content
                .push(ContentPart::RedactedThinking(block.req_str("data")?)),
            "tool_use" if role == Role::Assistant => {
                let input = block.req("input")?;
                if first_byte(input) != b'{' {
                    return Err(bad(
                        &block.child("input"),
                        format_args!("expected an object, got {}", describe(input)),
                    ));
                }
                main.tool_calls.push(ToolCall {
                    id: block.req_str("id")?,
                    name: block.req_str("name")?,
                    arguments: compact_json(input.get()),
                });
            }
            "tool_result" if role == Role::User => {
                out.push(decode_tool_result(&block)?);
            }
            "tool_use" | "tool_result" => {
                return Err(bad(
                    &block.child("type"),
                    format_args!(
                        "`{ty}` blocks are not allowed in a {} message",
                        match role {
                            Role::Assistant => "assistant",
                            _ => "user",
                        }
                    ),
                ))
            }
            _ => return Err(unsupported_block(&block.child("type"), &ty)),
        }
    }
    // A user turn made only of tool results produces no trailing user message.
    let had_tool_results = out.len() > before;
    if !(had_tool_results && main.content.is_empty()) {
        out.push(main);
    }
    Ok(())
}

fn decode_tool_result(block: &Obj<'_>) -> Result<Message, ApiError> {
    let mut msg = Message::new(Role::Tool, Vec::new());
    msg.tool_call_id = Some(block.req_str("tool_use_id")?);
    msg.is_error = block.opt("is_error", "a boolean")?.unwrap_or(false);
    if let Some(content) = block.get("content") {
        let path = block.child("content");
        if first_byte(content) == b'"' {
            msg.content
                .push(ContentPart::Text(typed(content, &path, "a string")?));
        } else {
            for (i, b) in as_array(content, &path)?.into_iter().enumerate() {
                let inner = Obj::parse(b, format!("{path}.{i}"))?;
                let ty = inner.block_type()?;
                match ty.as_str() {
                    "text" => msg.content.push(ContentPart::Text(inner.req_str("text")?)),
                    "image" => msg.content.push(decode_image(&inner)?),
                    _ => return Err(unsupported_block(&inner.child("type"), &ty)),
                }
            }
        }
    }
    Ok(msg)
}

fn decode_tool(raw: &RawValue, path: String) -> Result<Tool, ApiError> {
    let t = Obj::parse(raw, path)?;
    if let Some(ty) = t.opt_str("type")? {
        if ty != "custom" {
            return Err(bad(
                &t.child("type"),
                format_args!("server tool `{ty}` is not supported through this gateway; only custom tools ({{name, description, input_schema}}) are"),
            ));
        }
    }
    let schema_raw = t.req("input_schema")?;
    if first_byte(schema_raw) != b'{' {
        return Err(bad(
            &t.child("input_schema"),
            format_args!(
                "expected a JSON schema object, got {}",
                describe(schema_raw)
            ),
        ));
    }
    Ok(Tool {
        name: t.req_str("name")?,
        description: t.opt_str("description")?,
        parameters: typed::<Value>(schema_raw, &t.child("input_schema"), "an object")?,
        strict: t.opt("strict", "a boolean")?,
    })
}

// ---------------------------------------------------------------------------
// Responses (upstream → IR).

fn upstream_err(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::BadGateway, msg)
}

/// Anthropic `Message` body → IR. Server-tool blocks (`server_tool_use`,
/// `web_search_tool_result`, …) are skipped; thinking keeps its signature;
/// `tool_use.input` becomes compact JSON text with its key order kept.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| upstream_err("upstream response is not valid UTF-8"))?;
    let wire: WireMessage<'_> = serde_json::from_str(text)
        .map_err(|e| upstream_err(format!("malformed upstream Anthropic response: {e}")))?;

    let mut message = Message::new(Role::Assistant, Vec::new());
    for (i, raw) in wire.content.iter().enumerate() {
        let malformed =
            |e: serde_json::Error| upstream_err(format!("malformed upstream content.{i}: {e}"));
        let head: BlockHead = serde_json::from_str(raw.get()).map_err(malformed)?;
        match head.ty.as_str() {
            "text" => {
                let b: TextBlock = serde_json::from_str(raw.get()).map_err(malformed)?;
                message.content.push(ContentPart::Text(b.text));
            }
            "thinking" => {
                let b: ThinkingBlock = serde_json::from_str(raw.get()).map_err(malformed)?;
                message.content.push(ContentPart::Thinking {
                    text: b.thinking,
                    signature: b.signature.filter(|s| !s.is_empty()),
                });
            }
            "redacted_thinking" => {
                let b: RedactedThinkingBlock =
                    serde_json::from_str(raw.get()).map_err(malformed)?;
                message.content.push(ContentPart::RedactedThinking(b.data));
            }
            "tool_use" => {
                let b: ToolUseBlock<'_> = serde_json::from_str(raw.get()).map_err(malformed)?;
                message.tool_calls.push(ToolCall {
                    id: b.id,
                    name: b.name,
                    arguments: b
                        .input
                        .filter(|r| !is_null(r))
                        .map_or_else(|| "{}".to_owned(), |r| compact_json(r.get())),
                });
            }
            _ => {}
        }
    }

    let usage = wire.usage.as_ref().map(|u| {
        let mut raw = RawUsage::default();
        raw.apply(u);
        raw.to_ir()
    });
    Ok(ChatResponse {
        id: wire.id,
        model: wire.model,
        created: now_secs(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: wire.stop_reason.as_deref().map(finish_from_wire),
            stop_sequence: wire.stop_sequence,
        }],
        usage,
        system_fingerprint: None,
    })
}
