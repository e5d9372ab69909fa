//! Non-streaming `chat.completion` response bodies.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::error_from_value;
use super::wire::{
    finish_from_wire, finish_to_wire, lenient_u32, lenient_u64, stop_sequence, to_json,
    ArgumentsIn, ToolCallOut, UsageIn, UsageOut,
};
use crate::ir::{ApiError, ChatResponse, Choice, ContentPart, ErrorKind, Message, Role, ToolCall};

#[derive(Deserialize)]
struct ResponseIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    created: u64,
    #[serde(default)]
    choices: Option<Vec<ChoiceIn>>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    system_fingerprint: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceIn {
    #[serde(default, deserialize_with = "lenient_u32")]
    index: u32,
    #[serde(default)]
    message: Option<MessageIn>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    stop_reason: Option<Value>,
}

#[derive(Deserialize)]
struct MessageIn {
    #[serde(default)]
    content: Option<ContentIn>,
    #[serde(default)]
    reasoning_content: Option<String>,
    /// vLLM / OpenRouter name for the same thing.
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallIn>>,
    #[serde(default)]
    function_call: Option<FunctionIn>,
}

/// A string per spec; some compatibles send an array of text parts.
#[derive(Deserialize)]
#[serde(untagged)]
enum ContentIn {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Deserialize)]
struct ToolCallIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionIn>,
}

#[derive(Deserialize)]
struct FunctionIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<ArgumentsIn>,
}

impl FunctionIn {
    fn into_call(self, id: Option<String>) -> ToolCall {
        let name = self.name.unwrap_or_default();
        ToolCall {
            id: id.unwrap_or_else(|| name.clone()),
            name,
            arguments: self
                .arguments
                .map(ArgumentsIn::into_text)
                .unwrap_or_default(),
        }
    }
}

fn content_text(c: ContentIn) -> String {
    match c {
        ContentIn::Text(s) => s,
        ContentIn::Parts(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
    }
}

fn decode_message(m: MessageIn) -> Message {
    let mut parts = Vec::new();
    if let Some(text) = m
        .reasoning_content
        .or(m.reasoning)
        .filter(|t| !t.is_empty())
    {
        parts.push(ContentPart::Thinking {
            text,
            signature: None,
        });
    }
    if let Some(c) = m.content {
        parts.push(ContentPart::Text(content_text(c)));
    }
    let mut msg = Message::new(Role::Assistant, parts);
    msg.refusal = m.refusal;
    msg.tool_calls = m
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.function.map(|f| f.into_call(c.id)))
        .collect();
    if let Some(f) = m.function_call {
        msg.tool_calls.push(f.into_call(None));
    }
    msg
}

fn decode_choice(c: ChoiceIn) -> Choice {
    Choice {
        index: c.index,
        message: c
            .message
            .map_or_else(|| Message::new(Role::Assistant, Vec::new()), decode_message),
        finish_reason: c.finish_reason.as_deref().map(finish_from_wire),
        stop_sequence: stop_sequence(c.stop_reason.as_ref()),
    }
}

/// Decode an upstream `chat.completion` (leniently: unknown fields ignored,
/// nulls accepted). A body carrying an `error` object instead of choices is
/// returned as that error; one that is not a completion at all is a 502.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let r: ResponseIn = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::BadGateway,
            format!("upstream returned an invalid chat completion: {e}"),
        )
    })?;
    if let Some(err) = r.error.as_ref().filter(|e| !e.is_null()) {
        if r.choices.is_none() {
            return Err(error_from_value(None, err));
        }
    }
    let Some(choices) = r.choices else {
        return Err(ApiError::new(
            ErrorKind::BadGateway,
            "upstream returned a chat completion without `choices`",
        ));
    };
    Ok(ChatResponse {
        id: r.id.unwrap_or_default(),
        model: r.model.unwrap_or_default(),
        created: r.created,
        choices: choices.into_iter().map(decode_choice).collect(),
        usage: r.usage.as_ref().map(UsageIn::to_ir),
        system_fingerprint: r.system_fingerprint,
    })
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'a str>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

/// `ChatCompletionMessage`: `role`, `content` and `refusal` are required
/// (nullable) in the spec, `annotations` is sent as `[]` by OpenAI.
#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<&'a str>,
    /// DeepSeek-style reasoning text (non-standard; what reasoning-aware
    /// OpenAI clients read).
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
    annotations: [(); 0],
}

/// Text parts joined, or `None` if there are none.
fn joined_text(parts: &[ContentPart]) -> Option<String> {
    let mut out: Option<String> = None;
    for p in parts {
        if let ContentPart::Text(t) = p {
            out.get_or_insert_with(String::new).push_str(t);
        }
    }
    out
}

fn joined_thinking(parts: &[ContentPart]) -> Option<String> {
    let mut out: Option<String> = None;
    for p in parts {
        if let ContentPart::Thinking { text, .. } = p {
            out.get_or_insert_with(String::new).push_str(text);
        }
    }
    out
}

fn encode_choice(c: &Choice) -> ChoiceOut<'_> {
    let m = &c.message;
    ChoiceOut {
        index: c.index,
        message: MessageOut {
            role: "assistant",
            // OpenAI sends `""` for an empty completion, `null` when the
            // turn is only tool calls or a refusal.
            content: joined_text(&m.content)
                .or_else(|| (m.tool_calls.is_empty() && m.refusal.is_none()).then(String::new)),
            refusal: m.refusal.as_deref(),
            reasoning_content: joined_thinking(&m.content),
            tool_calls: m.tool_calls.iter().map(ToolCallOut::from_ir).collect(),
            annotations: [],
        },
        logprobs: None,
        finish_reason: finish_to_wire(c.finish_reason.unwrap_or(crate::ir::FinishReason::Stop)),
    }
}

/// Encode a `chat.completion` for an OpenAI client. Thinking becomes
/// `reasoning_content`; Anthropic signatures and redacted thinking have no
/// OpenAI representation and are dropped; a missing finish reason is `stop`.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    to_json(&ResponseOut {
        id: &resp.id,
        object: "chat.completion",
        created: resp.created,
        model: &resp.model,
        choices: resp.choices.iter().map(encode_choice).collect(),
        usage: resp.usage.as_ref().map(UsageOut::from_ir),
        system_fingerprint: resp.system_fingerprint.as_deref(),
    })
}
