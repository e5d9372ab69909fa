//! Overlapping matches of different rules (found by the `pii` fuzz target:
//! masking was not idempotent, because the part of a longer, later match
//! outside an earlier rule's span stayed in clear).
use super::*;

fn mask(text: &str) -> (String, String) {
    let det = Detector::new(&PiiConfig::mask_all()).unwrap();
    let mut f = Findings::default();
    let out = det
        .mask_text(text, &mut f)
        .unwrap_or_else(|| text.to_owned());
    (out, f.summary())
}

#[test]
fn overlapping_matches_are_masked_as_one_span() {
    // `secret` (earlier rule) matches up to the dot; `email` matches the
    // whole token. Before: "key [SECRET].doe@example.com now".
    let (out, summary) = mask("key sk-proj-abcdefghijklmnopqrstuvwxyz.doe@example.com now");
    assert_eq!(out, "key [SECRET] now");
    assert_eq!(summary, "secret=1");
}

#[test]
fn masking_is_idempotent_on_overlaps() {
    let det = Detector::new(&PiiConfig::mask_all()).unwrap();
    for text in [
        "key sk-proj-abcdefghijklmnopqrstuvwxyz.doe@example.com now",
        "mail jane.doe@example.com, key sk-proj-abcdefghijklmnopqrstuvwxyz0123jane.doe@example.com",
    ] {
        let mut f = Findings::default();
        let once = det.mask_text(text, &mut f).unwrap();
        let mut again = Findings::default();
        assert_eq!(det.mask_text(&once, &mut again), None, "{once:?}");
    }
}
