//! json_scan against serde_json (differential): where the scan answers,
//! it agrees with a full parse of a valid document, and `is_valid` never
//! says yes where serde_json's skipping parse says no.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::sync::LazyLock;
use switchyard_core::json_scan::{self, Key, Member};
use switchyard_fuzz::split_first;

static KEYS: LazyLock<[(&str, Key); 3]> = LazyLock::new(|| {
    [
        ("usage", Key::new("usage")),
        ("a", Key::new("a")),
        ("", Key::new("")),
    ]
});

/// How many times `key` is a member name of the top-level object (`None`
/// when the text is not one JSON object). serde_json keeps the last of
/// duplicate members, which the scan does not promise to pick.
fn occurrences(json: &[u8], key: &str) -> Option<usize> {
    struct Count<'k>(&'k str);
    impl<'de> Visitor<'de> for Count<'_> {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while let Some((k, IgnoredAny)) = m.next_entry::<String, IgnoredAny>()? {
                n += usize::from(k == self.0);
            }
            Ok(n)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let n = (&mut de).deserialize_map(Count(key)).ok()?;
    de.end().ok()?;
    Some(n)
}

fuzz_target!(|data: &[u8]| {
    let (sel, json) = split_first(data);

    // is_valid's contract is serde_json's own skipping parse (what the
    // pipeline falls back to), which, like is_valid, reads a string's
    // bytes without decoding them (invalid UTF-8, lone surrogate escapes).
    if json_scan::is_valid(json) {
        let skip = serde_json::from_slice::<IgnoredAny>(json);
        assert!(
            skip.is_ok(),
            "is_valid said yes, serde_json said {:?}",
            skip.err()
        );
    }
    let full: Result<Value, _> = serde_json::from_slice(json);

    let (name, key) = &KEYS[usize::from(sel) % 3];
    let found = json_scan::top_level(json, key);
    if let Member::Value(v) = found {
        // The member's bytes start where the value does.
        assert!(json.ends_with(v));
    }
    let (Ok(Value::Object(obj)), Some(count)) = (&full, occurrences(json, name)) else {
        return;
    };
    if count > 1 {
        return;
    }
    assert_eq!(
        found == Member::Absent,
        count == 0 && found != Member::Unsure,
        "absent/present disagrees with serde_json"
    );
    match found {
        Member::Value(v) => {
            let mut de = serde_json::Deserializer::from_slice(v);
            let got: Value = serde::Deserialize::deserialize(&mut de)
                .unwrap_or_else(|e| panic!("scan's value does not parse: {e}"));
            assert_eq!(Some(&got), obj.get(*name), "scan found another value");
        }
        Member::Absent => assert!(!obj.contains_key(*name)),
        Member::Unsure => {}
    }
    // `member`'s fallback is the caller's full parse, which (like the
    // scan's path) reads `null` as absent.
    let expected = obj.get(*name).filter(|v| !v.is_null()).cloned();
    let typed: Option<Value> = json_scan::member(json, key, || expected.clone());
    assert_eq!(typed, expected);
});
