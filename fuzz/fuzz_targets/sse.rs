//! SSE decoder: never panics, and the frames do not depend on how the
//! bytes were chunked (one piece against a seeded chunking).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::sse::SseDecoder;
use switchyard_fuzz::{chunks, split_first};

fuzz_target!(|data: &[u8]| {
    let (seed, body) = split_first(data);

    let mut one = SseDecoder::new();
    let mut whole = Vec::new();
    let ok_whole = one.feed(body, &mut whole).is_ok();
    let left_whole = one.finish();

    let mut inc = SseDecoder::new();
    let mut pieces = Vec::new();
    let mut ok_pieces = true;
    for c in chunks(seed, body) {
        // An empty feed between pieces must change nothing.
        ok_pieces &= inc.feed(&[], &mut pieces).is_ok();
        ok_pieces &= inc.feed(c, &mut pieces).is_ok();
    }
    let left_pieces = inc.finish();

    if ok_whole && ok_pieces {
        assert_eq!(whole, pieces, "frames depend on the chunking");
        assert_eq!(left_whole, left_pieces, "leftover depends on the chunking");
    }
    // After finish() the decoder starts afresh.
    let mut again = Vec::new();
    let _ = one.feed(body, &mut again);
    if ok_whole {
        assert_eq!(whole, again, "finish() did not reset the decoder");
    }
});
