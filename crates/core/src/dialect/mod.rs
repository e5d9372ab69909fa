//! Wire dialects: one module per wire format, each a set of pure functions
//! between the canonical IR (`crate::ir`) and that format's bytes, plus one
//! streaming state machine per direction.
//!
//! Every dialect module exposes the same shape (functions it cannot support,
//! such as Gemini as a *client* format, are simply absent):
//!
//! | function | direction |
//! |---|---|
//! | `decode_request(&[u8]) -> Result<ChatRequest, ApiError>` | client → IR (strict: 400 naming the field) |
//! | `encode_request(&ChatRequest, upstream_model, &Quirks) -> Result<Vec<u8>, ApiError>` | IR → provider |
//! | `decode_response(&[u8]) -> Result<ChatResponse, ApiError>` | provider → IR |
//! | `encode_response(&ChatResponse) -> Vec<u8>` | IR → client |
//! | `StreamDecoder::{new, on_frame, finish}` | provider SSE frames → `StreamEvent`s |
//! | `StreamEncoder::{new, on_event, finish}` | `StreamEvent`s → client SSE bytes |
//! | `decode_error(status, &[u8]) -> ApiError` | provider error body → IR |
//! | `encode_error(&ApiError) -> Vec<u8>` | IR → client error body |
//!
//! The one place that dispatches over dialects is [`Dialect`]; the server's
//! pipeline matches on it.

pub mod anthropic;
pub mod gemini;
pub mod openai;

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI Chat Completions (and every OpenAI-compatible provider).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
        }
    }
}

/// Which field an OpenAI-compatible upstream expects for the output limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_completion_tokens` (current OpenAI).
    #[default]
    MaxCompletionTokens,
    /// `max_tokens` (most OpenAI-compatible providers, Azure before 2024-09).
    MaxTokens,
}

/// Per-provider deviations from a dialect, as data. The default is the
/// dialect's reference provider behaving exactly as documented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quirks {
    pub max_tokens_field: MaxTokensField,
    /// Accepts `stream_options: {include_usage}`.
    pub stream_options: bool,
    /// Accepts `n` > 1.
    pub n: bool,
    /// Accepts `seed`.
    pub seed: bool,
    /// Accepts `parallel_tool_calls`.
    pub parallel_tool_calls: bool,
    /// Accepts `response_format: {type: json_schema}`.
    pub json_schema: bool,
    /// Accepts the `developer` role (otherwise it is sent as `system`).
    pub developer_role: bool,
    /// Accepts `user`.
    pub user: bool,
    /// Accepts `presence_penalty` / `frequency_penalty`.
    pub penalties: bool,
    /// Anthropic: `max_tokens` is required; used when the client gave none.
    pub default_max_tokens: u32,
}

impl Default for Quirks {
    fn default() -> Self {
        Quirks::REFERENCE
    }
}

impl Quirks {
    /// The dialect's reference provider, exactly as documented.
    pub const REFERENCE: Quirks = Quirks {
        max_tokens_field: MaxTokensField::MaxCompletionTokens,
        stream_options: true,
        n: true,
        seed: true,
        parallel_tool_calls: true,
        json_schema: true,
        developer_role: true,
        user: true,
        penalties: true,
        default_max_tokens: 4096,
    };

    /// True when a request in this dialect can be forwarded byte-for-byte
    /// (only the model name rewritten).
    pub fn is_passthrough(&self) -> bool {
        *self == Quirks::default()
    }
}
