//! Serde wire types and small conversions shared by several directions.
//!
//! Reading is lenient (unknown fields ignored, `null` accepted wherever a
//! value is optional); writing follows the OpenAI spec field for field.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Number, Value};

use crate::ir::{FinishReason, ToolCall, Usage};

/// Serialize a value that cannot fail to serialize (no maps with non-string
/// keys, no custom `Serialize` that errors).
pub(super) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

/// A count that tolerates `null`, floats and negatives (read as 0 / truncated).
pub(super) fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = Option::<Number>::deserialize(d)?;
    Ok(n.map_or(0, |n| {
        n.as_u64()
            .or_else(|| n.as_f64().map(|f| if f > 0.0 { f as u64 } else { 0 }))
            .unwrap_or(0)
    }))
}

pub(super) fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    lenient_u64(d).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// `CompletionUsage` as read.
#[derive(Debug, Default, Deserialize)]
pub(super) struct UsageIn {
    #[serde(default, deserialize_with = "lenient_u64")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetailsIn>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetailsIn>,
    /// DeepSeek's own cache-hit count (predates `prompt_tokens_details`).
    #[serde(default, deserialize_with = "lenient_u64")]
    prompt_cache_hit_tokens: u64,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetailsIn {
    #[serde(default, deserialize_with = "lenient_u64")]
    cached_tokens: u64,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetailsIn {
    #[serde(default, deserialize_with = "lenient_u64")]
    reasoning_tokens: u64,
}

impl UsageIn {
    pub(super) fn to_ir(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .map_or(0, |d| d.cached_tokens);
        Usage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            cached_input_tokens: if cached > 0 {
                cached
            } else {
                self.prompt_cache_hit_tokens
            },
            cache_creation_input_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .map_or(0, |d| d.reasoning_tokens),
        }
    }
}

/// `CompletionUsage` as written. The details objects are always present
/// (OpenAI always sends them); `cache_creation_input_tokens` has no OpenAI
/// field and is dropped.
#[derive(Debug, Serialize)]
pub(super) struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetailsOut,
    completion_tokens_details: CompletionDetailsOut,
}

#[derive(Debug, Serialize)]
struct PromptDetailsOut {
    cached_tokens: u64,
}

#[derive(Debug, Serialize)]
struct CompletionDetailsOut {
    reasoning_tokens: u64,
}

impl UsageOut {
    pub(super) fn from_ir(u: &Usage) -> Self {
        UsageOut {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total_tokens(),
            prompt_tokens_details: PromptDetailsOut {
                cached_tokens: u.cached_input_tokens,
            },
            completion_tokens_details: CompletionDetailsOut {
                reasoning_tokens: u.reasoning_tokens,
            },
        }
    }
}

/// Map an upstream `finish_reason`. Unknown values (`eos`, `end_turn`, …)
/// count as a natural stop.
pub(super) fn finish_from_wire(s: &str) -> FinishReason {
    match s {
        "length" | "max_tokens" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

pub(super) fn finish_to_wire(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// vLLM-style `stop_reason`: the matched stop string (an integer token id
/// or `null` otherwise).
pub(super) fn stop_sequence(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// `ChatCompletionMessageToolCall` as written.
#[derive(Debug, Serialize)]
pub(super) struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCallOut<'a>,
}

#[derive(Debug, Serialize)]
struct FunctionCallOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl<'a> ToolCallOut<'a> {
    pub(super) fn from_ir(c: &'a ToolCall) -> Self {
        ToolCallOut {
            id: &c.id,
            kind: "function",
            function: FunctionCallOut {
                name: &c.name,
                arguments: &c.arguments,
            },
        }
    }
}

/// Tool-call `function.arguments` as read: a JSON string per spec, but some
/// OpenAI-compatible servers send the object itself.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ArgumentsIn {
    Text(String),
    Json(Value),
}

impl ArgumentsIn {
    pub(super) fn into_text(self) -> String {
        match self {
            ArgumentsIn::Text(s) => s,
            ArgumentsIn::Json(Value::Null) => String::new(),
            ArgumentsIn::Json(v) => v.to_string(),
        }
    }
}
