//! The OpenAI Chat Completions wire dialect (also spoken by every
//! OpenAI-compatible provider), plus OpenAI embeddings.
//!
//! Reference: the OpenAI OpenAPI spec as generated into openai-python
//! (`src/openai/types/chat/*.py`, `types/completion_usage.py`) and its
//! streaming client (`src/openai/_streaming.py`); see `testdata/README.md`.
//!
//! - Client-facing decoders ([`decode_request`],
//!   [`decode_embeddings_request`]) are strict: a bad field is a 400 whose
//!   `param` is the field path, like OpenAI's own.
//! - Upstream-facing decoders ([`decode_response`], [`StreamDecoder`],
//!   [`decode_error`], [`decode_embeddings_response`]) are lenient: unknown
//!   fields are ignored, nulls accepted, and common compatible-provider
//!   deviations (DeepSeek `reasoning_content`, vLLM `reasoning` /
//!   `stop_reason`, object-valued tool arguments) understood.
//! - Encoders produce what OpenAI itself sends, field for field.
//!
//! Mid-stream errors are one `data: {"error": {...}}` event with no
//! `[DONE]` after it (see [`encode_stream_error`]).

mod embeddings;
mod error;
mod request;
mod response;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

use serde::Deserialize;

pub use embeddings::{
    decode_embeddings_request, decode_embeddings_response, encode_embeddings_request,
    encode_embeddings_response,
};
pub use error::{decode_error, encode_error, encode_stream_error};
pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

use crate::ir::Usage;
use crate::json_scan::USAGE;

/// Only the `usage` of a chunk or body; serde skips everything else.
#[derive(Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<wire::UsageIn>,
}

/// Fast path for same-dialect pass-through: the `usage` of a response body
/// or stream chunk, without decoding the rest. `None` when absent, `null`
/// or unparseable.
pub fn extract_usage(chunk_or_body_json: &[u8]) -> Option<Usage> {
    let usage: wire::UsageIn = crate::json_scan::member(chunk_or_body_json, &USAGE, || {
        serde_json::from_slice::<UsageOnly>(chunk_or_body_json)
            .ok()?
            .usage
    })?;
    Some(usage.to_ir())
}
