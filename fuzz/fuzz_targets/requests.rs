//! Client request decoders (OpenAI chat and embeddings, Anthropic
//! messages): never panic on any bytes; whatever they accept encodes to
//! every upstream dialect without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::dialect::{anthropic, gemini, openai, Quirks};
use switchyard_fuzz::split_first;

fuzz_target!(|data: &[u8]| {
    let (sel, body) = split_first(data);
    let q = if sel & 0x80 == 0 {
        Quirks::REFERENCE
    } else {
        Quirks {
            max_tokens_field: switchyard_core::dialect::MaxTokensField::MaxTokens,
            stream_options: false,
            n: false,
            seed: false,
            parallel_tool_calls: false,
            json_schema: false,
            developer_role: false,
            user: false,
            penalties: false,
            default_max_tokens: 1,
        }
    };
    let req = match sel % 3 {
        0 => openai::decode_request(body),
        1 => anthropic::decode_request(body),
        _ => {
            if let Ok(e) = openai::decode_embeddings_request(body) {
                let _ = openai::encode_embeddings_request(&e, "m");
                let _ = gemini::encode_embeddings_request(&e, "m");
                let _ = gemini::estimate_embeddings_usage(&e);
            }
            return;
        }
    };
    let Ok(req) = req else { return };
    if let Ok(b) = openai::encode_request(&req, "up-model", &q) {
        assert!(serde_json::from_slice::<serde_json::Value>(&b).is_ok());
    }
    if let Ok(b) = anthropic::encode_request(&req, "up-model", &q) {
        assert!(serde_json::from_slice::<serde_json::Value>(&b).is_ok());
    }
    if let Ok(b) = gemini::encode_request(&req, &q) {
        assert!(serde_json::from_slice::<serde_json::Value>(&b).is_ok());
    }
});
