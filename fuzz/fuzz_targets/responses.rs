//! Upstream response and error decoders (chat, embeddings, errors, per
//! dialect): never panic on any bytes; a decoded response re-encodes for
//! every client dialect as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::dialect::{anthropic, gemini, openai};
use switchyard_fuzz::split_first;

fn json(b: &[u8]) {
    assert!(
        serde_json::from_slice::<serde_json::Value>(b).is_ok(),
        "encoder wrote invalid JSON"
    );
}

fuzz_target!(|data: &[u8]| {
    let (sel, body) = split_first(data);
    let status = 400 + u16::from(sel >> 3) * 4;
    let resp = match sel % 8 {
        0 => openai::decode_response(body),
        1 => anthropic::decode_response(body),
        2 => gemini::decode_response(body, "fallback"),
        3 => {
            if let Ok(e) = openai::decode_embeddings_response(body) {
                json(&openai::encode_embeddings_response(&e, false));
                json(&openai::encode_embeddings_response(&e, true));
            }
            return;
        }
        4 => {
            if let Ok(e) = gemini::decode_embeddings_response(body, "m") {
                json(&openai::encode_embeddings_response(&e, false));
            }
            return;
        }
        5 => Err(openai::decode_error(status, body)),
        6 => Err(anthropic::decode_error(status, body)),
        _ => Err(gemini::decode_error(status, body)),
    };
    let _ = openai::extract_usage(body);
    let _ = anthropic::extract_usage(body);
    let _ = gemini::extract_usage(body);
    match resp {
        Ok(r) => {
            json(&openai::encode_response(&r));
            json(&anthropic::encode_response(&r));
        }
        Err(e) => {
            json(&openai::encode_error(&e));
            json(&anthropic::encode_error(&e));
            json(&gemini::encode_error(&e));
            let _ = gemini::http_status(e.kind);
        }
    }
});
