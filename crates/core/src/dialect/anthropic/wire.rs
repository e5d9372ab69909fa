//! Serde wire types for what the gateway *reads* from an Anthropic upstream
//! (responses, stream events, errors), plus the usage arithmetic shared by
//! every direction. What the gateway writes lives in `encode.rs`; client
//! requests are walked path-by-path in `decode.rs` for precise 400s.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::ir::Usage;

/// `usage` of a Message, or `message_delta.usage` (`MessageDeltaUsage`,
/// whose fields are all cumulative and, except `output_tokens`, optional).
#[derive(Debug, Deserialize, Default, Clone)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens_details: Option<OutputTokensDetails>,
}

#[derive(Debug, Deserialize, Default, Clone)]
pub(super) struct OutputTokensDetails {
    #[serde(default)]
    pub thinking_tokens: Option<u64>,
}

/// Anthropic's own usage counters (input *excluding* cache reads/writes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
    pub thinking: u64,
}

impl RawUsage {
    /// Overwrite the counters the wire object carries (all are cumulative).
    pub fn apply(&mut self, u: &WireUsage) {
        if let Some(v) = u.input_tokens {
            self.input = v;
        }
        if let Some(v) = u.output_tokens {
            self.output = v;
        }
        if let Some(v) = u.cache_read_input_tokens {
            self.cache_read = v;
        }
        if let Some(v) = u.cache_creation_input_tokens {
            self.cache_creation = v;
        }
        if let Some(v) = u
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.thinking_tokens)
        {
            self.thinking = v;
        }
    }

    /// To the IR convention: `input_tokens` is the total prompt.
    pub fn to_ir(self) -> Usage {
        Usage {
            input_tokens: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_creation),
            output_tokens: self.output,
            cached_input_tokens: self.cache_read,
            cache_creation_input_tokens: self.cache_creation,
            reasoning_tokens: self.thinking,
        }
    }

    /// From the IR convention (uncached input = total − reads − writes).
    pub fn from_ir(u: &Usage) -> Self {
        RawUsage {
            input: u
                .input_tokens
                .saturating_sub(u.cached_input_tokens)
                .saturating_sub(u.cache_creation_input_tokens),
            output: u.output_tokens,
            cache_read: u.cached_input_tokens,
            cache_creation: u.cache_creation_input_tokens,
            thinking: u.reasoning_tokens,
        }
    }
}

/// Error body: `{"type":"error","error":{"type","message"},"request_id"?}`.
/// Lenient so that OpenAI-shaped `{"error":{"message","type"}}` bodies from
/// compatible upstreams decode too.
#[derive(Debug, Deserialize)]
pub(super) struct WireErrorBody {
    #[serde(default)]
    pub error: Option<WireErrorObj>,
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct WireErrorObj {
    #[serde(rename = "type", default)]
    pub ty: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A non-streaming `Message` response. Content blocks stay raw so that
/// `tool_use.input` keeps its key order (internally tagged enums cannot hold
/// `RawValue`); see [`BlockHead`].
#[derive(Debug, Deserialize)]
pub(super) struct WireMessage<'a> {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(borrow, default)]
    pub content: Vec<&'a RawValue>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

/// Just the discriminator of a content block.
#[derive(Debug, Deserialize)]
pub(super) struct BlockHead {
    #[serde(rename = "type")]
    pub ty: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct TextBlock {
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ThinkingBlock {
    pub thinking: String,
    #[serde(default)]
    pub signature: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RedactedThinkingBlock {
    pub data: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ToolUseBlock<'a> {
    pub id: String,
    pub name: String,
    #[serde(borrow)]
    pub input: Option<&'a RawValue>,
}

/// One streaming event (`RawMessageStreamEvent` plus `ping` and `error`).
/// New event types must be tolerated, hence `Unknown`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum WireEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        #[serde(default)]
        error: WireErrorObj,
    },
    #[serde(other)]
    Unknown,
}

/// The most frequent stream event, `content_block_delta` with a
/// `text_delta`, read without the content buffering serde does for the
/// internally tagged [`WireEvent`]. Any other shape fails to parse here (a
/// missing field) or is rejected by [`TextDeltaEvent::text`], and the caller
/// falls back to [`WireEvent`], so the result is the same either way.
#[derive(Debug, Deserialize)]
pub(super) struct TextDeltaEvent<'a> {
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
    pub index: u32,
    #[serde(borrow)]
    delta: TextDeltaBody<'a>,
}

#[derive(Debug, Deserialize)]
struct TextDeltaBody<'a> {
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
}

impl TextDeltaEvent<'_> {
    /// The text, when this really is a `content_block_delta` / `text_delta`.
    pub fn text(self) -> Option<(u32, String)> {
        (self.ty == "content_block_delta" && self.delta.ty == "text_delta")
            .then(|| (self.index, self.delta.text.into_owned()))
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct StartMessage {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    /// Server tool blocks (`server_tool_use`, `web_search_tool_result`, …):
    /// the IR cannot carry them; their deltas are dropped.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    /// `citations_delta` and anything newer.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// Strip insignificant whitespace from valid JSON text without reordering
/// keys (serde_json's `Value` would sort them).
pub(super) fn compact_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            out.push(c);
        }
    }
    out
}
