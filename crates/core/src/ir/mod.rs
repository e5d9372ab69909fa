//! The canonical intermediate representation (IR).
//!
//! Every client dialect decodes into these types and every provider dialect
//! encodes from them. They are deliberately *not* any provider's serde wire
//! types: wire types live at the edge, in `crate::dialect::*`, with explicit
//! conversions. Nothing here is `Serialize`/`Deserialize` on purpose.
//!
//! Conventions that every dialect must respect:
//! - `Usage::input_tokens` is the *total* prompt size, cached tokens included
//!   (OpenAI semantics). Anthropic reports cache reads/writes separately and its
//!   decoder adds them up; its encoder subtracts them again.
//! - `Usage::output_tokens` includes reasoning tokens.
//! - Tool-call arguments are carried as the JSON *text* the model produced,
//!   never re-parsed on the way through.
//! - System and developer instructions are ordinary messages with
//!   [`Role::System`] / [`Role::Developer`]; dialects with a top-level system
//!   field hoist them.

mod stream;

pub use stream::StreamEvent;

use serde_json::Value;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    /// OpenAI's `developer` role; other dialects treat it as system.
    Developer,
    User,
    Assistant,
    /// The result of a tool call; `Message::tool_call_id` says which.
    Tool,
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A remote URL (`https://…`).
    Url(String),
    /// Inline bytes, base64-encoded, with their media type (`image/png`).
    /// `data:` URLs are decoded into this form.
    Base64 { media_type: String, data: String },
}

impl ImageSource {
    /// Parse an OpenAI-style `image_url.url`, turning `data:` URLs into
    /// [`ImageSource::Base64`]. Returns `None` for a malformed `data:` URL.
    pub fn from_url(url: &str) -> Option<Self> {
        match url.strip_prefix("data:") {
            None => Some(ImageSource::Url(url.to_owned())),
            Some(rest) => {
                let (meta, data) = rest.split_once(',')?;
                let media_type = meta.strip_suffix(";base64")?;
                if media_type.is_empty() || data.is_empty() {
                    return None;
                }
                Some(ImageSource::Base64 {
                    media_type: media_type.to_owned(),
                    data: data.to_owned(),
                })
            }
        }
    }

    /// The OpenAI `image_url.url` form (a `data:` URL for inline bytes).
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Url(u) => u.clone(),
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

/// One piece of message content.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text(String),
    Image {
        source: ImageSource,
        /// OpenAI's `detail` (`auto`, `low`, `high`), when given.
        detail: Option<String>,
    },
    /// Model reasoning ("thinking"). `signature` is Anthropic's opaque
    /// integrity token; it must be returned verbatim on later turns.
    Thinking {
        text: String,
        signature: Option<String>,
    },
    /// Anthropic's `redacted_thinking` block, carried opaquely.
    RedactedThinking(String),
}

impl ContentPart {
    pub fn text(s: impl Into<String>) -> Self {
        ContentPart::Text(s.into())
    }
}

/// A tool call made by the assistant.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, exactly as the model produced them.
    pub arguments: String,
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
    /// OpenAI's optional participant `name`.
    pub name: Option<String>,
    /// Assistant turns: the tool calls it made, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Tool turns: the id of the call this answers.
    pub tool_call_id: Option<String>,
    /// Tool turns: the tool reported an error (Anthropic `is_error`).
    pub is_error: bool,
    /// Assistant turns: a refusal message (OpenAI `refusal`).
    pub refusal: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: Vec<ContentPart>) -> Self {
        Message {
            role,
            content,
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
            refusal: None,
        }
    }

    /// All text parts joined, ignoring images and thinking.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.content {
            if let ContentPart::Text(t) = p {
                out.push_str(t);
            }
        }
        out
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
    /// OpenAI structured-outputs `strict`.
    pub strict: Option<bool>,
}

/// How the model must use tools.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Must call some tool (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Required,
    /// Must call this tool.
    Tool(String),
}

/// Requested output format.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        description: Option<String>,
        schema: Value,
        strict: Option<bool>,
    },
}

/// Extended thinking request (Anthropic `thinking`, Gemini `thinkingConfig`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThinkingConfig {
    pub budget_tokens: u32,
}

/// A chat request in canonical form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The model (alias) as the client named it.
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    /// Upper bound on generated tokens (OpenAI `max_completion_tokens` /
    /// `max_tokens`, Anthropic `max_tokens`, Gemini `maxOutputTokens`).
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    /// Number of choices (OpenAI `n`, Gemini `candidateCount`).
    pub n: Option<u32>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// End-user identifier (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    pub response_format: Option<ResponseFormat>,
    /// OpenAI `reasoning_effort` (`minimal`/`low`/`medium`/`high`).
    pub reasoning_effort: Option<String>,
    pub thinking: Option<ThinkingConfig>,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: the client wants the final
    /// usage-only chunk.
    pub include_usage: bool,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end of turn (or a stop sequence: see `Choice::stop_sequence`).
    Stop,
    /// Hit the token limit.
    Length,
    /// The model called tools and waits for their results.
    ToolCalls,
    /// Blocked by a safety / content filter, or refused.
    ContentFilter,
}

/// One generated alternative.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub index: u32,
    /// Always `Role::Assistant`.
    pub message: Message,
    pub finish_reason: Option<FinishReason>,
    /// The stop sequence that ended generation, when the provider says.
    pub stop_sequence: Option<String>,
}

/// Token accounting for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Total prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Generated tokens, reasoning included.
    pub output_tokens: u64,
    /// Of `input_tokens`, how many were read from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Of `input_tokens`, how many were written to the prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Of `output_tokens`, how many were reasoning.
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// A complete (non-streaming) chat response.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub id: String,
    /// The model that answered, as the upstream named it.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    pub choices: Vec<Choice>,
    pub usage: Option<Usage>,
    pub system_fingerprint: Option<String>,
}

/// One embeddings input.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingInput {
    Text(String),
    Tokens(Vec<u32>),
}

/// An embeddings request in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: Vec<EmbeddingInput>,
    /// True when the client sent a single input rather than an array.
    pub single: bool,
    pub dimensions: Option<u32>,
    /// `float` (default) or `base64`.
    pub encoding_format: Option<String>,
    pub user: Option<String>,
}

/// An embeddings response in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsResponse {
    pub model: String,
    pub data: Vec<Vec<f32>>,
    pub usage: Usage,
}

/// The class of an error, independent of dialect; each dialect maps it to
/// its own `type` string and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: malformed or invalid request.
    InvalidRequest,
    /// 401: missing or bad credentials.
    Authentication,
    /// 403: not allowed.
    PermissionDenied,
    /// 404: unknown model or route.
    NotFound,
    /// 413: body too large.
    RequestTooLarge,
    /// 429: rate limited.
    RateLimit,
    /// 500: internal error (provider-side, as reported by a provider).
    Api,
    /// 529 / 503: provider overloaded.
    Overloaded,
    /// 502: upstream failed in a way the client cannot fix.
    BadGateway,
    /// 504: upstream timed out.
    Timeout,
}

impl ErrorKind {
    /// The HTTP status the gateway answers with for this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimit => 429,
            ErrorKind::Api => 500,
            ErrorKind::Overloaded => 529,
            ErrorKind::BadGateway => 502,
            ErrorKind::Timeout => 504,
        }
    }

    /// Classify an upstream HTTP status.
    pub fn from_status(status: u16) -> Self {
        match status {
            400 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            503 | 529 => ErrorKind::Overloaded,
            _ => ErrorKind::Api,
        }
    }
}

/// An error as a dialect reports it: kind, message and, where the wire
/// format has them, the provider's own `type`/`code`/`param` strings.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// The provider's own error type string (e.g. `overloaded_error`).
    pub provider_type: Option<String>,
    /// OpenAI `code` (e.g. `model_not_found`).
    pub code: Option<String>,
    /// OpenAI `param`: the offending field.
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            provider_type: None,
            code: None,
            param: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::InvalidRequest, message);
        e.param = Some(param.to_owned());
        e
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_become_base64() {
        assert_eq!(
            ImageSource::from_url("data:image/png;base64,iVBORw0"),
            Some(ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0".into()
            })
        );
        assert_eq!(ImageSource::from_url("data:image/png,xyz"), None);
        assert_eq!(
            ImageSource::from_url("https://x/y.png"),
            Some(ImageSource::Url("https://x/y.png".into()))
        );
    }
}
