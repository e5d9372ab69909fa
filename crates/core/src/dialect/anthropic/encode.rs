//! IR → Anthropic wire: upstream requests and client responses.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::wire::RawUsage;
use crate::dialect::Quirks;
use crate::ir::{
    ApiError, ChatRequest, ChatResponse, ContentPart, FinishReason, ImageSource, Message,
    ResponseFormat, Role, ToolChoice, Usage,
};

/// System instruction appended for `ResponseFormat::JsonObject`: Anthropic's
/// structured outputs need a concrete schema, so "any JSON object" is asked
/// for in words.
pub(super) const JSON_OBJECT_INSTRUCTION: &str =
    "Respond only with a single valid JSON object. Do not include any other text, explanation or Markdown code fences.";

/// Effort levels `output_config.effort` accepts.
const EFFORTS: [&str; 5] = ["low", "medium", "high", "xhigh", "max"];

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutBlock<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: OutImageSource<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: ToolInput,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<OutBlock<'a>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutImageSource<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

impl<'a> OutImageSource<'a> {
    fn from_ir(s: &'a ImageSource) -> Self {
        match s {
            ImageSource::Url(url) => OutImageSource::Url { url },
            ImageSource::Base64 { media_type, data } => OutImageSource::Base64 { media_type, data },
        }
    }
}

/// A `tool_use.input` value: the model's JSON text verbatim, or `{}`.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum ToolInput {
    Raw(Box<RawValue>),
    Empty(EmptyObject),
}

/// Serializes as `{}`.
#[derive(Serialize)]
pub(super) struct EmptyObject {}

/// Tool-call arguments text → the `input` object. Anthropic requires an
/// object; empty, invalid or non-object JSON text becomes `{}` (the model
/// produced something unusable, and a 400 on replay helps nobody).
pub(super) fn tool_input(arguments: &str) -> ToolInput {
    let t = arguments.trim();
    if t.starts_with('{') && serde_json::from_str::<&RawValue>(t).is_ok() {
        if let Ok(raw) = RawValue::from_string(t.to_owned()) {
            return ToolInput::Raw(raw);
        }
    }
    ToolInput::Empty(EmptyObject {})
}

#[derive(Serialize)]
struct OutTextBlock<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Vec<OutBlock<'a>>,
}

#[derive(Serialize)]
struct OutTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
struct OutToolChoice<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_parallel_tool_use: bool,
}

#[derive(Serialize)]
struct OutThinking {
    #[serde(rename = "type")]
    ty: &'static str,
    budget_tokens: u32,
}

#[derive(Serialize)]
struct OutMetadata<'a> {
    user_id: &'a str,
}

#[derive(Serialize)]
struct OutFormat<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    schema: &'a Value,
}

#[derive(Serialize, Default)]
struct OutConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<OutFormat<'a>>,
}

#[derive(Serialize)]
struct OutRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<OutTextBlock<'a>>,
    messages: Vec<OutMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<OutMetadata<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<OutToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<OutThinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutConfig<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

fn content_blocks<'a>(role: Role, parts: &'a [ContentPart], out: &mut Vec<OutBlock<'a>>) {
    for p in parts {
        match p {
            // Anthropic rejects empty text blocks.
            ContentPart::Text(t) if t.is_empty() => {}
            ContentPart::Text(t) => out.push(OutBlock::Text { text: t }),
            ContentPart::Image { source, .. } => out.push(OutBlock::Image {
                source: OutImageSource::from_ir(source),
            }),
            // Thinking is only valid on assistant turns, and only with the
            // signature Anthropic issued; unsigned reasoning from other
            // providers would be rejected, so it is dropped.
            ContentPart::Thinking {
                text,
                signature: Some(sig),
            } if role == Role::Assistant && !sig.is_empty() => out.push(OutBlock::Thinking {
                thinking: text,
                signature: sig,
            }),
            ContentPart::RedactedThinking(data) if role == Role::Assistant => {
                out.push(OutBlock::RedactedThinking { data })
            }
            ContentPart::Thinking { .. } | ContentPart::RedactedThinking(_) => {}
        }
    }
}

/// Append `blocks` to a turn, keeping `tool_result` blocks first (the API
/// requires them to lead the user message that answers the tool calls).
fn merge_into<'a>(turn: &mut Vec<OutBlock<'a>>, blocks: Vec<OutBlock<'a>>) {
    for b in blocks {
        if matches!(b, OutBlock::ToolResult { .. }) {
            let at = turn
                .iter()
                .take_while(|x| matches!(x, OutBlock::ToolResult { .. }))
                .count();
            turn.insert(at, b);
        } else {
            turn.push(b);
        }
    }
}

/// IR → Anthropic Messages request for `upstream_model`.
///
/// - All system/developer messages, wherever they are, are hoisted into
///   `system` (text blocks, in order).
/// - Consecutive tool messages (and any adjacent user message) merge into one
///   user turn whose `tool_result` blocks come first; other consecutive
///   same-role turns merge too. Empty text parts and empty turns are dropped.
/// - Tool-call arguments become `input`; empty/invalid/non-object JSON text
///   becomes `{}`.
/// - Thinking parts are sent back only on assistant turns and only when they
///   carry a signature; unsigned thinking (from other providers) is dropped.
/// - `max_tokens`: the request's value, else `q.default_max_tokens`; when
///   thinking is on and that default is not above the budget, the budget
///   plus the default.
/// - `temperature` is clamped to Anthropic's 0–1 (OpenAI allows 0–2).
/// - `response_format`: `json_schema` → `output_config.format` (structured
///   outputs, GA, no beta header); `json_object` → an extra system
///   instruction ([`JSON_OBJECT_INSTRUCTION`]); `text` → nothing.
/// - `reasoning_effort` in low/medium/high/xhigh/max → `output_config.effort`;
///   other values (`minimal`, `none`) are dropped.
/// - `parallel_tool_calls: false` → `tool_choice.disable_parallel_tool_use`
///   (with `auto` if no choice was given). Without tools, `tool_choice` is
///   omitted.
/// - `n > 1` is a 400; `seed`, penalties, `name`, image `detail` are dropped;
///   whitespace-only stop sequences (rejected by Anthropic) are dropped.
pub fn encode_request(
    req: &ChatRequest,
    upstream_model: &str,
    q: &Quirks,
) -> Result<Vec<u8>, ApiError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(ApiError::invalid_param(
            "n",
            "n > 1 is not supported by Anthropic models",
        ));
    }

    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<OutBlock<'_>>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                for p in &m.content {
                    if let ContentPart::Text(t) = p {
                        if !t.is_empty() {
                            system.push(OutTextBlock {
                                ty: "text",
                                text: t,
                            });
                        }
                    }
                }
                continue;
            }
            Role::User => {
                let mut blocks = Vec::new();
                content_blocks(Role::User, &m.content, &mut blocks);
                ("user", blocks)
            }
            Role::Assistant => ("assistant", assistant_blocks(m)),
            Role::Tool => {
                let id = m.tool_call_id.as_deref().ok_or_else(|| {
                    ApiError::invalid_param(
                        &format!("messages.{i}.tool_call_id"),
                        format!("messages.{i}: a tool message needs a tool_call_id"),
                    )
                })?;
                let mut content = Vec::new();
                content_blocks(Role::Tool, &m.content, &mut content);
                (
                    "user",
                    vec![OutBlock::ToolResult {
                        tool_use_id: id,
                        content,
                        is_error: m.is_error,
                    }],
                )
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, prev)) if *r == role => merge_into(prev, blocks),
            _ => turns.push((role, blocks)),
        }
    }

    let mut config = OutConfig::default();
    match &req.response_format {
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            config.format = Some(OutFormat {
                ty: "json_schema",
                schema,
            })
        }
        Some(ResponseFormat::JsonObject) => system.push(OutTextBlock {
            ty: "text",
            text: JSON_OBJECT_INSTRUCTION,
        }),
        Some(ResponseFormat::Text) | None => {}
    }
    config.effort = req
        .reasoning_effort
        .as_deref()
        .filter(|e| EFFORTS.contains(e));

    let max_tokens = match (req.max_tokens, req.thinking) {
        (Some(m), _) => m,
        (None, Some(t)) if t.budget_tokens >= q.default_max_tokens => {
            t.budget_tokens.saturating_add(q.default_max_tokens)
        }
        (None, _) => q.default_max_tokens,
    };

    let tools: Vec<OutTool<'_>> = req
        .tools
        .iter()
        .map(|t| OutTool {
            name: &t.name,
            description: t.description.as_deref(),
            input_schema: &t.parameters,
            strict: t.strict,
        })
        .collect();
    let no_parallel = req.parallel_tool_calls == Some(false);
    let tool_choice = if tools.is_empty() {
        None
    } else {
        let (ty, name) = match &req.tool_choice {
            Some(ToolChoice::Auto) => ("auto", None),
            Some(ToolChoice::None) => ("none", None),
            Some(ToolChoice::Required) => ("any", None),
            Some(ToolChoice::Tool(n)) => ("tool", Some(n.as_str())),
            None if no_parallel => ("auto", None),
            None => ("", None),
        };
        (!ty.is_empty()).then_some(OutToolChoice {
            ty,
            name,
            disable_parallel_tool_use: no_parallel && ty != "none",
        })
    };

    let out = OutRequest {
        model: upstream_model,
        max_tokens,
        system,
        messages: turns
            .into_iter()
            .map(|(role, content)| OutMessage { role, content })
            .collect(),
        stop_sequences: req
            .stop
            .iter()
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
            .collect(),
        temperature: req.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: req.top_p,
        top_k: req.top_k,
        metadata: req.user.as_deref().map(|user_id| OutMetadata { user_id }),
        tools,
        tool_choice,
        thinking: req.thinking.map(|t| OutThinking {
            ty: "enabled",
            budget_tokens: t.budget_tokens,
        }),
        output_config: (config.effort.is_some() || config.format.is_some()).then_some(config),
        stream: req.stream,
    };
    serde_json::to_vec(&out)
        .map_err(|e| ApiError::invalid(format!("cannot encode the request: {e}")))
}

fn assistant_blocks(m: &Message) -> Vec<OutBlock<'_>> {
    let mut blocks = Vec::new();
    content_blocks(Role::Assistant, &m.content, &mut blocks);
    if let Some(r) = m.refusal.as_deref().filter(|r| !r.is_empty()) {
        blocks.push(OutBlock::Text { text: r });
    }
    for tc in &m.tool_calls {
        blocks.push(OutBlock::ToolUse {
            id: &tc.id,
            name: &tc.name,
            input: tool_input(&tc.arguments),
        });
    }
    blocks
}

// ---------------------------------------------------------------------------
// Responses (IR → client).

/// IR finish reason → `stop_reason`.
pub(super) fn stop_reason(
    reason: FinishReason,
    stop_sequence: Option<&str>,
    called_tools: bool,
) -> &'static str {
    match reason {
        FinishReason::ToolCalls => "tool_use",
        FinishReason::Length => "max_tokens",
        FinishReason::ContentFilter => "refusal",
        FinishReason::Stop if stop_sequence.is_some() => "stop_sequence",
        // Some providers say "stop" after calling tools.
        FinishReason::Stop if called_tools => "tool_use",
        FinishReason::Stop => "end_turn",
    }
}

#[derive(Serialize)]
pub(super) struct OutUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutOutputDetails>,
}

#[derive(Serialize)]
pub(super) struct OutOutputDetails {
    pub thinking_tokens: u64,
}

impl OutUsage {
    pub fn from_ir(u: &Usage) -> Self {
        let raw = RawUsage::from_ir(u);
        OutUsage {
            input_tokens: raw.input,
            output_tokens: raw.output,
            cache_creation_input_tokens: raw.cache_creation,
            cache_read_input_tokens: raw.cache_read,
            output_tokens_details: (raw.thinking > 0).then_some(OutOutputDetails {
                thinking_tokens: raw.thinking,
            }),
        }
    }
}

#[derive(Serialize)]
pub(super) struct OutResponse<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub role: &'static str,
    pub content: Vec<OutBlock<'a>>,
    pub model: &'a str,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<&'a str>,
    pub usage: OutUsage,
}

/// IR → Anthropic `Message` body. Uses the first choice; `usage.input_tokens`
/// is the uncached part (total − cache reads − cache writes). Refusal text is
/// rendered as a text block (`stop_reason` says `refusal`). A missing finish
/// reason is `end_turn` (or `tool_use` if tools were called).
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let choice = resp.choices.first();
    let content = choice
        .map(|c| assistant_blocks(&c.message))
        .unwrap_or_default();
    let called_tools = choice.is_some_and(|c| !c.message.tool_calls.is_empty());
    let reason = choice
        .and_then(|c| c.finish_reason)
        .unwrap_or(FinishReason::Stop);
    let stop_sequence = choice
        .and_then(|c| c.stop_sequence.as_deref())
        .filter(|_| reason == FinishReason::Stop);
    let out = OutResponse {
        id: &resp.id,
        ty: "message",
        role: "assistant",
        content,
        model: &resp.model,
        stop_reason: Some(stop_reason(reason, stop_sequence, called_tools)),
        stop_sequence,
        usage: OutUsage::from_ir(&resp.usage.unwrap_or_default()),
    };
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}
