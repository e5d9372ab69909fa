//! The one place that dispatches over wire dialects.
//!
//! Adding a dialect means adding an arm to each `match` below; the compiler
//! lists every place.

use switchyard_core::dialect::{anthropic, gemini, openai, Dialect, Quirks};
use switchyard_core::ir::{ApiError, ChatRequest, ChatResponse, StreamEvent, Usage};
use switchyard_core::sse::SseFrame;

/// Client format → IR.
pub fn decode_request(d: Dialect, body: &[u8]) -> Result<ChatRequest, ApiError> {
    match d {
        Dialect::OpenAi => openai::decode_request(body),
        Dialect::Anthropic => anthropic::decode_request(body),
        Dialect::Gemini => Err(ApiError::invalid(
            "the Gemini format is not accepted from clients",
        )),
    }
}

/// IR → provider format.
pub fn encode_request(
    d: Dialect,
    req: &ChatRequest,
    model: &str,
    q: &Quirks,
) -> Result<Vec<u8>, ApiError> {
    match d {
        Dialect::OpenAi => openai::encode_request(req, model, q),
        Dialect::Anthropic => anthropic::encode_request(req, model, q),
        Dialect::Gemini => gemini::encode_request(req, q),
    }
}

/// Provider response → IR.
pub fn decode_response(d: Dialect, body: &[u8], model: &str) -> Result<ChatResponse, ApiError> {
    match d {
        Dialect::OpenAi => openai::decode_response(body),
        Dialect::Anthropic => anthropic::decode_response(body),
        Dialect::Gemini => gemini::decode_response(body, model),
    }
}

/// IR → client format.
pub fn encode_response(d: Dialect, resp: &ChatResponse) -> Vec<u8> {
    match d {
        Dialect::Anthropic => anthropic::encode_response(resp),
        Dialect::OpenAi | Dialect::Gemini => openai::encode_response(resp),
    }
}

/// Provider error body → IR.
pub fn decode_error(d: Dialect, status: u16, body: &[u8]) -> ApiError {
    match d {
        Dialect::OpenAi => openai::decode_error(status, body),
        Dialect::Anthropic => anthropic::decode_error(status, body),
        Dialect::Gemini => gemini::decode_error(status, body),
    }
}

/// Usage from a complete provider response body, cheaply.
pub fn extract_usage(d: Dialect, body: &[u8]) -> Option<Usage> {
    match d {
        Dialect::OpenAi => openai::extract_usage(body),
        Dialect::Anthropic => anthropic::extract_usage(body),
        Dialect::Gemini => gemini::extract_usage(body),
    }
}

/// Provider SSE frames → canonical events.
pub enum StreamDecoder {
    OpenAi(openai::StreamDecoder),
    Anthropic(anthropic::StreamDecoder),
    Gemini(gemini::StreamDecoder),
}

impl StreamDecoder {
    pub fn new(d: Dialect, model: &str) -> Self {
        match d {
            Dialect::OpenAi => StreamDecoder::OpenAi(openai::StreamDecoder::new()),
            Dialect::Anthropic => StreamDecoder::Anthropic(anthropic::StreamDecoder::new()),
            Dialect::Gemini => StreamDecoder::Gemini(gemini::StreamDecoder::new(model)),
        }
    }

    pub fn on_frame(&mut self, f: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        match self {
            StreamDecoder::OpenAi(s) => s.on_frame(f, out),
            StreamDecoder::Anthropic(s) => s.on_frame(f, out),
            StreamDecoder::Gemini(s) => s.on_frame(f, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match self {
            StreamDecoder::OpenAi(s) => s.finish(out),
            StreamDecoder::Anthropic(s) => s.finish(out),
            StreamDecoder::Gemini(s) => s.finish(out),
        }
    }
}

/// Canonical events → client SSE bytes.
pub enum StreamEncoder {
    OpenAi(openai::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
}

impl StreamEncoder {
    pub fn new(d: Dialect, include_usage: bool) -> Self {
        match d {
            Dialect::Anthropic => StreamEncoder::Anthropic(anthropic::StreamEncoder::new()),
            Dialect::OpenAi | Dialect::Gemini => {
                StreamEncoder::OpenAi(openai::StreamEncoder::new(include_usage))
            }
        }
    }

    pub fn on_event(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(s) => s.on_event(ev, out),
            StreamEncoder::Anthropic(s) => s.on_event(ev, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(s) => s.finish(out),
            StreamEncoder::Anthropic(s) => s.finish(out),
        }
    }
}

/// A mid-stream error in the client's format.
pub fn encode_stream_error(d: Dialect, e: &ApiError, out: &mut Vec<u8>) {
    match d {
        Dialect::Anthropic => anthropic::encode_stream_error(e, out),
        Dialect::OpenAi | Dialect::Gemini => openai::encode_stream_error(e, out),
    }
}
