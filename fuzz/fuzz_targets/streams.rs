//! Stream decoders (one per upstream dialect), fed SSE bytes in arbitrary
//! chunkings through the SSE decoder; the events they produce are then
//! re-encoded for both client dialects. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::dialect::{anthropic, gemini, openai};
use switchyard_core::sse::{SseDecoder, SseFrame};
use switchyard_fuzz::{chunks, split_first};

enum Dec {
    O(openai::StreamDecoder),
    A(anthropic::StreamDecoder),
    G(gemini::StreamDecoder),
}

fuzz_target!(|data: &[u8]| {
    let (sel, body) = split_first(data);
    let mut dec = match sel % 3 {
        0 => Dec::O(openai::StreamDecoder::new()),
        1 => Dec::A(anthropic::StreamDecoder::new()),
        _ => Dec::G(gemini::StreamDecoder::new("fallback")),
    };
    let mut sse = SseDecoder::new();
    let mut frames: Vec<SseFrame> = Vec::new();
    let mut events = Vec::new();
    let mut oenc = openai::StreamEncoder::new(sel & 0x80 != 0);
    let mut aenc = anthropic::StreamEncoder::new();
    let mut out = Vec::new();
    let mut failed = false;
    for c in chunks(sel >> 2, body) {
        if sse.feed(c, &mut frames).is_err() {
            return;
        }
        for f in frames.drain(..) {
            if failed {
                break;
            }
            let r = match &mut dec {
                Dec::O(d) => d.on_frame(&f, &mut events),
                Dec::A(d) => d.on_frame(&f, &mut events),
                Dec::G(d) => d.on_frame(&f, &mut events),
            };
            if let Err(e) = r {
                openai::encode_stream_error(&e, &mut out);
                anthropic::encode_stream_error(&e, &mut out);
                failed = true;
            }
            let mut usage = Default::default();
            let _ = anthropic::extract_stream_usage(&f, &mut usage);
        }
        for ev in events.drain(..) {
            oenc.on_event(&ev, &mut out);
            aenc.on_event(&ev, &mut out);
        }
    }
    let _ = sse.finish();
    if !failed {
        match &mut dec {
            Dec::O(d) => {
                let _ = d.is_done();
                d.finish(&mut events)
            }
            Dec::A(d) => {
                let _ = d.is_done();
                d.finish(&mut events)
            }
            Dec::G(d) => d.finish(&mut events),
        }
    }
    for ev in events.drain(..) {
        oenc.on_event(&ev, &mut out);
        aenc.on_event(&ev, &mut out);
    }
    oenc.finish(&mut out);
    aenc.finish(&mut out);
});
