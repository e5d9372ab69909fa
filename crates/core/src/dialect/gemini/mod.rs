//! Google Gemini (`generativelanguage.googleapis.com/v1beta`) as an
//! *upstream* wire format: `models/{m}:generateContent`,
//! `models/{m}:streamGenerateContent?alt=sse` and
//! `models/{m}:batchEmbedContents`.
//!
//! Clients never speak Gemini to the gateway, so this module only has the
//! provider direction: [`encode_request`], [`decode_response`],
//! [`StreamDecoder`], [`decode_error`], the embeddings pair, plus
//! [`encode_error`] for the mock provider and tests.
//!
//! Wire format source: `googleapis/googleapis`
//! `google/ai/generativelanguage/v1beta/{generative_service,content}.proto`
//! (REST JSON = lowerCamelCase field names) and the `googleapis/python-genai`
//! SDK; see `testdata/README.md`.
//!
//! # Decisions
//!
//! - **Tool schemas** go into `functionDeclarations[].parametersJsonSchema`,
//!   which takes real JSON Schema (it is a `google.protobuf.Value`), rather
//!   than `parameters`, an OpenAPI-3.0 subset that rejects
//!   `additionalProperties`, `$schema`, `const`, `propertyNames`, …. The
//!   schema is passed through almost verbatim (see [`request`]): only the
//!   root `$schema` is removed, a missing root `type` becomes `object`, and a
//!   schema with no properties at all is omitted (Gemini's documented form
//!   for a parameterless function). Structured output likewise uses
//!   `generationConfig.responseJsonSchema`.
//! - **Thought signatures.** Gemini 2.5/3 put an opaque `thoughtSignature`
//!   on `functionCall` parts and Gemini 3 rejects a later request whose
//!   function calls lack it. OpenAI clients only round-trip the tool-call
//!   id, so the signature rides in the id: `{id}__ts_{signature}`, the
//!   signature re-encoded as unpadded base64url so the id stays within
//!   `[A-Za-z0-9_-]`. [`encode_request`] splits it back off. Trade-off:
//!   such ids are long (signatures are hundreds to a few thousand bytes).
//!   An assistant turn whose calls carry no signature at all (history from
//!   another model) gets Google's documented bypass value
//!   `skip_thought_signature_validator` on its first call. Signatures on
//!   `thought` parts travel in `ContentPart::Thinking::signature`;
//!   signatures on plain text parts (optional to return, per Google) are
//!   dropped because the IR has no slot for them.
//! - **Tool-call ids.** Gemini's `functionCall.id` is used when present;
//!   otherwise `call_{nonce}_{n}` is synthesised, unique per response.
//! - **Tool results** become `functionResponse` parts, all consecutive tool
//!   messages in one `user` turn. The function name is looked up from the
//!   earlier assistant call with that id (unknown id → 400). `response`
//!   must be an object: tool output that is a JSON object is sent as is;
//!   anything else is wrapped as `{"output": …}` (the key the API reference
//!   recommends), and an `is_error` result as `{"error": …}`.
//! - **Finish reasons**: `STOP` → `Stop` (`ToolCalls` if the candidate has
//!   function calls), `MAX_TOKENS` → `Length`, every safety-like reason
//!   (`SAFETY`, `RECITATION`, `LANGUAGE`, `BLOCKLIST`, `PROHIBITED_CONTENT`,
//!   `SPII`, `IMAGE_*`) → `ContentFilter`, and `MALFORMED_FUNCTION_CALL`,
//!   `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`, `OTHER` or anything
//!   unknown → `Stop`. A blocked prompt (`promptFeedback.blockReason`, no
//!   candidates) becomes one empty choice finishing with `ContentFilter`.
//! - **Thinking**: `thinking.budget_tokens` → `thinkingBudget`;
//!   `reasoning_effort` uses the budgets Google's own OpenAI-compatible
//!   endpoint uses (`low` 1024, `medium` 8192, `high` 24576, `none` 0) plus
//!   `minimal` 512 (the smallest budget every 2.5 model accepts) and -1
//!   (dynamic) for anything else. `includeThoughts` is set whenever thinking
//!   is requested, so thought summaries come back as reasoning.
//!   `thinkingLevel` is not used: it errors on pre-3 models and this
//!   encoder does not know the model.
//! - **Usage**: input = `promptTokenCount + toolUsePromptTokenCount`,
//!   output = `candidatesTokenCount + thoughtsTokenCount`, cached =
//!   `cachedContentTokenCount`, reasoning = `thoughtsTokenCount`.
//! - **Embeddings**: Gemini reports no token usage for `batchEmbedContents`,
//!   and the decoder never sees the inputs, so
//!   [`decode_embeddings_response`] reports 0 input tokens unless the
//!   upstream sends `usageMetadata`; callers fill it in with
//!   [`estimate_embeddings_usage`] (≈ characters / 4).
//! - Dropped: `user`, `parallel_tool_calls`, `Tool::strict`, image
//!   `detail`, `RedactedThinking`.

mod embeddings;
mod error;
mod request;
mod response;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

pub use embeddings::{
    decode_embeddings_response, encode_embeddings_request, estimate_embeddings_usage,
};
pub use error::{decode_error, encode_error, http_status};
pub use request::encode_request;
pub use response::{decode_response, extract_usage};
pub use stream::StreamDecoder;

use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// `models/{m}` (or `tunedModels/{m}`) for a model given with or without
/// its collection prefix.
fn model_resource(upstream_model: &str) -> String {
    let m = upstream_model.trim_start_matches('/');
    if m.starts_with("models/") || m.starts_with("tunedModels/") {
        m.to_owned()
    } else {
        format!("models/{m}")
    }
}

/// Path (relative to a base URL like
/// `https://generativelanguage.googleapis.com/v1beta`) for a model and mode.
pub fn chat_path(upstream_model: &str, stream: bool) -> String {
    let res = model_resource(upstream_model);
    if stream {
        format!("/{res}:streamGenerateContent?alt=sse")
    } else {
        format!("/{res}:generateContent")
    }
}

/// Path of the `batchEmbedContents` method for a model.
pub fn embeddings_path(upstream_model: &str) -> String {
    format!("/{}:batchEmbedContents", model_resource(upstream_model))
}

// ------------------------------------------------------------ tool-call ids

/// Separator between a tool-call id and the thought signature carried in it.
const SIG_SEP: &str = "__ts_";

/// Google's documented value that makes Gemini 3 skip thought-signature
/// validation for function calls it did not produce.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Decodes standard or URL-safe base64, padded or not (proto3 JSON `bytes`
/// accepts all four forms).
const LENIENT_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    LENIENT_STD
        .decode(s)
        .or_else(|_| LENIENT_URL.decode(s))
        .ok()
}

/// The IR tool-call id for a Gemini call: `base`, plus the signature (as
/// unpadded base64url) when there is one. A signature that is not base64
/// (never the case for the `bytes` field) is dropped.
fn join_call_id(base: &str, signature: Option<&str>) -> String {
    match signature.and_then(decode_b64) {
        Some(bytes) if !bytes.is_empty() => {
            format!(
                "{base}{SIG_SEP}{}",
                general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            )
        }
        _ => base.to_owned(),
    }
}

/// Split an IR tool-call id into the Gemini `id` and the thought signature
/// (standard padded base64, as Gemini sent it).
fn split_call_id(id: &str) -> (&str, Option<String>) {
    if let Some((base, sig)) = id.split_once(SIG_SEP) {
        if let Some(bytes) = decode_b64(sig).filter(|b| !b.is_empty()) {
            return (base, Some(general_purpose::STANDARD.encode(bytes)));
        }
    }
    (id, None)
}

/// A short random-enough hex nonce for synthesised ids, without a `rand`
/// dependency: std's randomly keyed hasher over time and a counter.
fn nonce() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = RandomState::new().hash_one((t, n));
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// Mints tool-call ids for calls Gemini gave no `id`, unique per response.
#[derive(Debug)]
struct CallIds {
    nonce: String,
    next: u64,
}

impl CallIds {
    fn new() -> Self {
        CallIds {
            nonce: nonce(),
            next: 0,
        }
    }

    /// The IR id for a call: Gemini's id or a fresh one, plus the signature.
    fn id_for(&mut self, gemini_id: Option<&str>, signature: Option<&str>) -> String {
        match gemini_id.filter(|s| !s.is_empty()) {
            Some(id) => join_call_id(id, signature),
            None => {
                let base = format!("call_{}_{}", self.nonce, self.next);
                self.next += 1;
                join_call_id(&base, signature)
            }
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
