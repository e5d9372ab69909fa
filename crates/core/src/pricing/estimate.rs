//! Cheap, pessimistic token estimates for worst-case reservations.
//!
//! These are **upper-bound-ish heuristics**, not tokenizers: they are meant
//! to reserve budget or rate-limit capacity before a request is sent and to
//! be reconciled with the provider's reported usage afterwards. They err
//! high on purpose, and by construction never fall below the mock
//! providers' own count (`switchyard-mock`'s `count_tokens` = `ceil(chars /
//! 4)` per message text, `+ 4` per message, `+ 85` per image, plus the tool
//! definitions' JSON), which the tests check against all three wire
//! encodings.

use std::io;

use crate::ir::{ChatRequest, ContentPart, Message, ResponseFormat, Tool};

use super::ModelPrice;

/// Output reservation when neither the request nor the table gives a limit.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4096;

/// Fixed cost of a message (role, separators): real chat templates spend
/// 3–4 tokens per message, the mock 4.
const PER_MESSAGE: u64 = 4;
/// Reply priming (`<|start|>assistant<|message|>` in OpenAI's accounting).
const PER_REQUEST: u64 = 3;
/// A `detail: low` image: OpenAI's fixed 85 tokens (also the mock's flat
/// per-image count).
const IMAGE_LOW: u64 = 85;
/// Any other image (`high`, `auto`, unspecified): about the most one image
/// costs after the providers' own downscaling — Anthropic ≈ 1,600 for
/// ~1.15 MP, OpenAI `high` up to ~1,450 for 2048×768 tiles, Gemini 258 per
/// 768 px tile.
const IMAGE_HIGH: u64 = 1_600;
/// JSON scaffolding around one tool definition in the most verbose wire
/// form, in characters. OpenAI's
/// `{"type":"function","function":{"name":"","description":"","parameters":,"strict":false}},`
/// is 90; Gemini's declaration plus an added root `"type":"object",` is
/// ~70; Anthropic's is shorter.
const TOOL_JSON_CHARS: u64 = 100;
/// The `[...]` / `{"functionDeclarations":[...]}` wrapper of the tool list.
const TOOLS_WRAPPER_CHARS: u64 = 32;
/// Tool-call scaffolding in an assistant turn (id/name/arguments fields).
const PER_TOOL_CALL: u64 = 8;

/// Estimate the prompt tokens of a chat request, pessimistically.
///
/// Text is counted as `ceil(ascii_chars / 4) + non_ascii_chars`: about 4
/// characters per token for English and code, and one token per character
/// for CJK and other scripts that real tokenizers split finely (an ASCII
/// `chars / 4` rule would under-count those several times over). Each
/// content part adds a token (the mock joins parts with newlines), each
/// message 4 tokens plus its `name`, tool-call ids, names and
/// argument JSON; images are 85 tokens at `detail: low` and 1,600
/// otherwise; thinking text is counted though providers may drop it; tool
/// definitions are counted as their JSON (name, description, parameter
/// schema, plus fixed scaffolding), and a `json_schema` response format as
/// its schema. Allocation-free: strings are scanned in place and schemas
/// are serialized into a counting sink.
///
/// Not counted: audio/documents (not in the IR) and provider-side system
/// prompts (e.g. tool-use preambles, which add a few hundred tokens on
/// Anthropic) — add a margin if those matter.
pub fn estimate_prompt_tokens(req: &ChatRequest) -> u64 {
    let mut total = PER_REQUEST;
    for m in &req.messages {
        total = total.saturating_add(message_tokens(m));
    }
    if !req.tools.is_empty() {
        let mut c = Counter::default();
        c.add_chars(TOOLS_WRAPPER_CHARS);
        for t in &req.tools {
            tool_chars(t, &mut c);
        }
        total = total.saturating_add(c.tokens());
    }
    if let Some(ResponseFormat::JsonSchema {
        name,
        description,
        schema,
        ..
    }) = &req.response_format
    {
        let mut c = Counter::default();
        c.add_chars(TOOL_JSON_CHARS);
        c.add_str(name);
        if let Some(d) = description {
            c.add_str(d);
        }
        c.add_json(schema);
        total = total.saturating_add(c.tokens());
    }
    total
}

fn message_tokens(m: &Message) -> u64 {
    let mut t = PER_MESSAGE;
    if let Some(n) = &m.name {
        t += text_tokens(n) + 1;
    }
    for p in &m.content {
        t = t.saturating_add(match p {
            ContentPart::Text(s) => text_tokens(s) + 1,
            ContentPart::Image { detail, .. } => match detail.as_deref() {
                Some(d) if d.eq_ignore_ascii_case("low") => IMAGE_LOW,
                _ => IMAGE_HIGH,
            },
            ContentPart::Thinking { text, .. } => text_tokens(text) + 1,
            ContentPart::RedactedThinking(data) => text_tokens(data) + 1,
        });
    }
    for c in &m.tool_calls {
        t = t.saturating_add(
            PER_TOOL_CALL + text_tokens(&c.id) + text_tokens(&c.name) + text_tokens(&c.arguments),
        );
    }
    if let Some(id) = &m.tool_call_id {
        t = t.saturating_add(text_tokens(id) + 1);
    }
    if let Some(r) = &m.refusal {
        t = t.saturating_add(text_tokens(r) + 1);
    }
    t
}

fn tool_chars(t: &Tool, c: &mut Counter) {
    c.add_chars(TOOL_JSON_CHARS);
    c.add_json_str(&t.name);
    if let Some(d) = &t.description {
        c.add_json_str(d);
    }
    c.add_json(&t.parameters);
}

/// `ceil(ascii / 4) + non_ascii_chars` for one string.
fn text_tokens(s: &str) -> u64 {
    let mut c = Counter::default();
    c.add_str(s);
    c.tokens()
}

/// Counts ASCII bytes and non-ASCII characters of what is written to it.
#[derive(Default)]
struct Counter {
    ascii: u64,
    non_ascii: u64,
}

impl Counter {
    fn add_chars(&mut self, n: u64) {
        self.ascii = self.ascii.saturating_add(n);
    }

    fn add_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b < 0x80 {
                self.ascii += 1;
            } else if b >= 0xC0 {
                // A UTF-8 leading byte: one non-ASCII character.
                self.non_ascii += 1;
            }
        }
    }

    fn add_str(&mut self, s: &str) {
        self.add_bytes(s.as_bytes());
    }

    /// A string as it appears JSON-encoded (quotes and escapes included).
    fn add_json_str(&mut self, s: &str) {
        // Writing to a `Counter` cannot fail; an error would only mean an
        // under-count of this string, never a panic.
        let _ = serde_json::to_writer(&mut *self, s);
    }

    fn add_json(&mut self, v: &serde_json::Value) {
        let _ = serde_json::to_writer(&mut *self, v);
    }

    fn tokens(&self) -> u64 {
        self.ascii.div_ceil(4).saturating_add(self.non_ascii)
    }
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.add_bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Estimate the tokens of a request body that is forwarded without being
/// decoded (pass-through), from its length in bytes: `ceil(bytes / 3)`.
///
/// Why bytes / 3 is a safe bound for JSON-encoded chat text:
/// - English prose and code run ~4 characters per token and every
///   character is at least one byte, so text needs about bytes / 4; the
///   JSON keys, quotes and escapes around it add bytes faster than tokens.
///   Only pathological input (long runs of one-character tokens, such as
///   punctuation or rare symbols) tokenizes denser than 3 bytes per token.
/// - CJK characters take 3 bytes in UTF-8 and are about one token each, so
///   bytes / 3 still covers them; `\uXXXX` escapes take 6 bytes per
///   character.
/// - Inline images/audio are base64 (≥ 1.33 bytes per source byte), so a
///   typical inline image is far more bytes / 3 than its token cost.
/// - Against the mock's count (chars / 4 + 4 per message): every message
///   spends ≥ 28 bytes of JSON (`{"role":"user","content":""}`), ≥ 9 tokens
///   at bytes / 3.
///
/// The exception is an image given **by URL**: 1,600 tokens can hide in a
/// short URL. Callers that can cheaply count image parts should add the
/// per-image allowance; for the mock, an URL image part
/// (`{"type":"image_url","image_url":{"url":"https://…"}}`, ≥ 50 bytes)
/// covers only ~17 of the mock's 85 tokens.
pub fn estimate_tokens_of_bytes(body_len: usize) -> u64 {
    (body_len as u64).div_ceil(3)
}

/// The output tokens to reserve: the request's own limit, else the model's
/// maximum output from the table, else [`DEFAULT_MAX_OUTPUT_TOKENS`].
pub fn max_output_tokens(req_max: Option<u32>, model: Option<&ModelPrice>) -> u64 {
    req_max
        .map(u64::from)
        .or_else(|| model.and_then(|m| m.max_output_tokens))
        .unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS)
}
