//! Byte-level JSON helpers for the pass-through fast path, where the
//! gateway forwards bytes and only needs one fact about them.
//!
//! - [`top_level`] / [`member`]: one top-level member of an object (a
//!   response's `usage`) without parsing the rest. It skips the values it
//!   does not want by their brackets and strings alone, and only answers
//!   what it is sure of: a key written with escapes, or bytes that are not
//!   an object where it looks, give [`Member::Unsure`], and the caller
//!   parses the whole text instead. It does not validate what it skips: a
//!   malformed document may still yield the member, or be said to lack
//!   it, where a full parse would refuse the whole text.
//! - [`is_valid`]: whether a text is JSON (each stream event must be),
//!   never yes where `serde_json` says no.
//! - [`readable`]: whether a text a lexical parse accepted can be read in
//!   full (UTF-8, no lone surrogate escapes, nesting within serde's limit):
//!   every request body on the hot routes must be, before anything
//!   (guardrail, estimate, cache, upstream) relies on it.
//!
//! Strings, where the bytes are, are crossed with a SIMD search for the
//! next quote or backslash.

/// What [`top_level`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    /// The member's value, and everything after it (hand it to a
    /// streaming deserializer, which stops at the value's end).
    Value(&'a [u8]),
    /// The object has no such member.
    Absent,
    /// Cannot tell without a full parse.
    Unsure,
}

/// `usage`, the member the pass-through path reads from every response.
pub static USAGE: std::sync::LazyLock<Key> = std::sync::LazyLock::new(|| Key::new("usage"));

/// A member name to look up, with its search prepared once (keep it in a
/// `static`: see [`Key::new`]).
pub struct Key {
    name: &'static [u8],
    /// `"name"`, searched forward with SIMD.
    quoted: memchr::memmem::Finder<'static>,
}

impl Key {
    /// `name` as written in JSON without escapes (`usage`).
    pub fn new(name: &'static str) -> Key {
        let quoted = format!("\"{name}\"").into_bytes();
        Key {
            name: name.as_bytes(),
            quoted: memchr::memmem::Finder::new(&quoted).into_owned(),
        }
    }

    /// Whether `"name"` occurs anywhere in `json` (a cheap prefilter).
    pub fn occurs_in(&self, json: &[u8]) -> bool {
        self.quoted.find(json).is_some()
    }
}

/// The top-level member `key` of the JSON object in `json` as a `T`;
/// `None` when it is absent, `null` or not a `T`. `full` is the caller's
/// whole-text parse, for when the scan cannot be sure.
pub fn member<T: serde::de::DeserializeOwned>(
    json: &[u8],
    key: &Key,
    full: impl FnOnce() -> Option<T>,
) -> Option<T> {
    match top_level(json, key) {
        Member::Value(v) => {
            let mut de = serde_json::Deserializer::from_slice(v);
            serde::Deserialize::deserialize(&mut de).ok().flatten()
        }
        Member::Absent => None,
        Member::Unsure => full(),
    }
}

/// The value of the top-level member `key` of the JSON object in `json`.
pub fn top_level<'a>(json: &'a [u8], key: &Key) -> Member<'a> {
    if let Some(m) = from_the_end(json, key) {
        return m;
    }
    scan(json, key.name).unwrap_or(Member::Unsure)
}

/// The quick way, for members near the end of the object (a response's
/// `usage` comes after its `choices`): find the last `"key"` (SIMD search)
/// and prove it is a top-level key by walking the rest of the document,
/// which must close the object and end. `None` when that proof fails (the
/// walk from the start decides).
///
/// Why the proof holds: in a JSON text a quote right after `key`'s last
/// letter ends a string, so a match whose first quote is not escaped is a
/// string that is exactly `key`; followed by `:` it is a member name; and
/// if the members after its value close an object with the document's
/// last byte, that object is the top-level one.
fn from_the_end<'a>(json: &'a [u8], key: &Key) -> Option<Member<'a>> {
    let Some(at) = key.quoted.find_iter(json).last() else {
        // No `"key"` anywhere: only a name written with escapes could
        // still be it, and there is no backslash to write one with.
        let object = json.get(ws(json, 0)) == Some(&b'{');
        return (object && memchr::memchr(b'\\', json).is_none()).then_some(Member::Absent);
    };
    let backslashes = json[..at].iter().rev().take_while(|&&b| b == b'\\').count();
    if backslashes % 2 == 1 {
        return None;
    }
    let mut i = ws(json, at + key.name.len() + 2);
    if *json.get(i)? != b':' {
        return None;
    }
    let value = ws(json, i + 1);
    i = ws(json, value_end(json, value)?);
    loop {
        match *json.get(i)? {
            b'}' => {
                return (ws(json, i + 1) == json.len()).then_some(Member::Value(&json[value..]));
            }
            b',' => i = ws(json, value_end(json, member_name(json, ws(json, i + 1))?)?),
            _ => return None,
        }
    }
}

fn scan<'a>(json: &'a [u8], key: &[u8]) -> Option<Member<'a>> {
    let mut i = ws(json, 0);
    if *json.get(i)? != b'{' {
        return None;
    }
    i = ws(json, i + 1);
    if *json.get(i)? == b'}' {
        return Some(Member::Absent);
    }
    loop {
        if *json.get(i)? != b'"' {
            return None;
        }
        let end = string_end(json, i)?;
        // `end` is one past the closing quote; a key with a backslash may
        // spell `key` with escapes: leave that to the full parse.
        let name = &json[i + 1..end - 1];
        if memchr::memchr(b'\\', name).is_some() {
            return None;
        }
        i = ws(json, end);
        if *json.get(i)? != b':' {
            return None;
        }
        i = ws(json, i + 1);
        if name == key {
            return Some(Member::Value(&json[i..]));
        }
        i = ws(json, value_end(json, i)?);
        match *json.get(i)? {
            b',' => i = ws(json, i + 1),
            b'}' => return Some(Member::Absent),
            _ => return None,
        }
    }
}

/// The index after the JSON whitespace from `i`.
fn ws(json: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = json.get(i) {
        i += 1;
    }
    i
}

/// One past the end of the value that starts at `i`.
fn value_end(json: &[u8], i: usize) -> Option<usize> {
    match *json.get(i)? {
        b'"' => string_end(json, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&b) = json.get(j) {
                match b {
                    b'"' => {
                        j = string_end(json, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        // A number, `true`, `false` or `null`: up to the next delimiter.
        _ => {
            let n = json[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(json.len() - i);
            (n > 0).then_some(i + n)
        }
    }
}

/// True when `json` is one well-formed JSON text (any value, with
/// surrounding whitespace), decided at memchr speed over strings. `false`
/// means "not sure": the caller asks a full parser. It never says true
/// for a UTF-8 text `serde_json` refuses; it gives up (false) on nesting
/// deeper than 64 levels, which serde would still accept, and on a lone
/// surrogate escape, which serde accepts only when it skips the string.
/// It does not check UTF-8 (its callers hold `str`s).
pub fn is_valid(json: &[u8]) -> bool {
    validate(json).is_some()
}

const MAX_DEPTH: usize = 64;

fn validate(j: &[u8]) -> Option<()> {
    let mut stack = [0u8; MAX_DEPTH];
    let mut depth = 0usize;
    let mut i = ws(j, 0);
    loop {
        // A value starts at `i`.
        match *j.get(i)? {
            open @ (b'{' | b'[') => {
                *stack.get_mut(depth)? = open;
                depth += 1;
                i = ws(j, i + 1);
                // `}` and `]` are two past `{` and `[` in ASCII.
                if *j.get(i)? == open + 2 {
                    depth -= 1;
                    i += 1;
                } else {
                    if open == b'{' {
                        i = member_name(j, i)?;
                    }
                    continue;
                }
            }
            b'"' => i = string_end(j, i)?,
            b't' => i = literal(j, i, b"true")?,
            b'f' => i = literal(j, i, b"false")?,
            b'n' => i = literal(j, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number_end(j, i)?,
            _ => return None,
        }
        // After a value: close containers, or on to the next value.
        loop {
            i = ws(j, i);
            if depth == 0 {
                return (i == j.len()).then_some(());
            }
            match (stack[depth - 1], *j.get(i)?) {
                (b'{', b',') => {
                    i = member_name(j, ws(j, i + 1))?;
                    break;
                }
                (b'[', b',') => {
                    i = ws(j, i + 1);
                    break;
                }
                (b'{', b'}') | (b'[', b']') => {
                    depth -= 1;
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

/// `"name" :` at `i`; the index of the value after it.
fn member_name(j: &[u8], i: usize) -> Option<usize> {
    if *j.get(i)? != b'"' {
        return None;
    }
    let i = ws(j, string_end(j, i)?);
    if *j.get(i)? != b':' {
        return None;
    }
    Some(ws(j, i + 1))
}

/// One past the closing quote of the string whose opening quote is at `i`;
/// `None` for what JSON forbids in a string too (raw control characters,
/// unknown escapes).
fn string_end(j: &[u8], i: usize) -> Option<usize> {
    let mut p = i + 1;
    // Names and short values end within a few words: eight bytes at a time
    // in a register first (a vector search costs more to set up).
    let mut words = 0;
    while words < 4 {
        let Some(w) = j.get(p..p + 8) else { break };
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(w).ok()?);
        let stop = special(w);
        if stop == 0 {
            p += 8;
            words += 1;
            continue;
        }
        p += (stop.trailing_zeros() / 8) as usize;
        match j[p] {
            b'"' => return Some(p + 1),
            b'\\' => p = escape_end(j, p)?,
            _ => return None,
        }
    }
    loop {
        let k = p + memchr::memchr2(b'"', b'\\', j.get(p..)?)?;
        // A plain loop the compiler turns into vector compares.
        if j[p..k].iter().fold(false, |bad, &b| bad | (b < 0x20)) {
            return None;
        }
        if j[k] == b'"' {
            return Some(k + 1);
        }
        p = escape_end(j, k)?;
    }
}

/// The index after the escape whose backslash is at `k`. A `\u` escape
/// of a UTF-16 surrogate must be the first half of a pair whose second
/// half follows at once (as `serde_json` demands of a string).
fn escape_end(j: &[u8], k: usize) -> Option<usize> {
    match *j.get(k + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(k + 2),
        b'u' => match hex4(j.get(k + 2..k + 6)?)? {
            0xD800..=0xDBFF => (j.get(k + 6..k + 8)? == b"\\u"
                && (0xDC00..=0xDFFF).contains(&hex4(j.get(k + 8..k + 12)?)?))
            .then_some(k + 12),
            0xDC00..=0xDFFF => None,
            _ => Some(k + 6),
        },
        _ => None,
    }
}

/// The value of four hex digits.
fn hex4(h: &[u8]) -> Option<u16> {
    h.iter().try_fold(0u16, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some(acc << 4 | d as u16)
    })
}

/// The deepest nesting of arrays and objects `serde_json` reads (its
/// recursion limit of 128 counts the container that exceeds it).
pub const MAX_NESTING: usize = 127;

/// Why a JSON text that a parser accepted lexically (for instance
/// skipping the members it does not need) cannot be read in full by
/// `serde_json`, and so by the gateway's decoders and guardrails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The bytes from offset `at` on are not UTF-8.
    NotUtf8 { at: usize },
    /// The `\u` escape at offset `at` is of a UTF-16 surrogate that is not
    /// half of a high-low pair.
    LoneSurrogate { at: usize },
    /// Arrays and objects nest deeper than [`MAX_NESTING`] at offset `at`.
    TooDeep { at: usize },
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::NotUtf8 { at } => write!(
                f,
                "the request body is not valid UTF-8 (invalid byte at offset {at}); JSON must be UTF-8"
            ),
            Unreadable::LoneSurrogate { at } => write!(
                f,
                "the request body holds a lone UTF-16 surrogate escape at offset {at} (\\ud800-\\udfff not in a high-low pair), which is not text"
            ),
            Unreadable::TooDeep { at } => write!(
                f,
                "the request body nests arrays and objects deeper than {MAX_NESTING} levels (at offset {at})"
            ),
        }
    }
}

/// Whether a JSON text that a parser has already accepted lexically can
/// also be read in full: UTF-8, no lone surrogate escapes, nesting within
/// [`MAX_NESTING`]. What it says of a malformed text is unspecified (it
/// does not look for syntax errors). SIMD passes: the UTF-8 check, a
/// search for `\u` escapes, a count of `{` and `[`; only a body with more
/// than [`MAX_NESTING`] of them is walked (strings crossed at memchr speed).
pub fn readable(j: &[u8]) -> Result<(), Unreadable> {
    // SIMD validation (std's is several times slower on non-ASCII text);
    // std's, for the offset, only when it fails.
    if simdutf8::basic::from_utf8(j).is_err() {
        return Err(Unreadable::NotUtf8 {
            at: std::str::from_utf8(j).err().map_or(0, |e| e.valid_up_to()),
        });
    }
    lone_surrogate(j)?;
    // Too few brackets in all to nest beyond the limit (the common body:
    // one SIMD count), or the walk.
    if memchr::memchr2_iter(b'{', b'[', j)
        .nth(MAX_NESTING)
        .is_some()
    {
        nesting(j)?;
    }
    Ok(())
}

/// The first `\u` escape of a surrogate that is not half of a pair. In a
/// lexically valid text every backslash is inside a string and, read from
/// the left, starts an escape: a SIMD search for the next backslash finds
/// each one, and only the escape's own bytes are looked at.
fn lone_surrogate(j: &[u8]) -> Result<(), Unreadable> {
    // `\uD800`–`\uDBFF` (high) and `\uDC00`–`\uDFFF` (low), any case.
    let half = |at: usize| -> Option<bool> {
        let (d, x) = (*j.get(at + 2)?, *j.get(at + 3)?);
        if j.get(at..at + 2) != Some(b"\\u") || d | 0x20 != b'd' {
            return None;
        }
        match x | 0x20 {
            b'8' | b'9' | b'a' | b'b' => Some(true),
            b'c' | b'd' | b'e' | b'f' => Some(false),
            _ => None,
        }
    };
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', j.get(i..).unwrap_or_default()) {
        let p = i + k;
        i = match j.get(p + 1) {
            Some(b'u') => match half(p) {
                None => p + 6,
                Some(true) if half(p + 6) == Some(false) => p + 12,
                Some(_) => return Err(Unreadable::LoneSurrogate { at: p }),
            },
            _ => p + 2,
        };
    }
    Ok(())
}

/// Nesting deeper than [`MAX_NESTING`]: the walk (strings crossed by
/// [`string_end`]).
fn nesting(j: &[u8]) -> Result<(), Unreadable> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = j.get(i) {
        match b {
            b'"' => match string_end(j, i) {
                Some(end) => {
                    i = end;
                    continue;
                }
                // Not lexically valid after all: not this check's verdict.
                None => return Ok(()),
            },
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Unreadable::TooDeep { at: i });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The bytes of `w` (little-endian: the first byte lowest) that end a run
/// of plain string content (`"`, `\\`, below 0x20), as their high bits.
/// Only the lowest one is exact (a borrow can flag a byte above a match),
/// which is the one [`string_end`] takes.
#[inline(always)]
fn special(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (ONES * b'"' as u64);
    let backslash = w ^ (ONES * b'\\' as u64);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    (zero(quote) | zero(backslash) | (w.wrapping_sub(ONES * 0x20) & !w)) & HIGH
}

fn literal(j: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (j.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn number_end(j: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: usize| {
        j[i.min(j.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    if j.get(i) == Some(&b'-') {
        i += 1;
    }
    match *j.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i += digits(i),
        _ => return None,
    }
    if j.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    if let Some(b'e' | b'E') = j.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = j.get(i) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return None;
        }
        i += n;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// What a full parse says the member is (`None`: absent or null, or
    /// the document does not parse).
    fn full(json: &str, key: &str) -> Option<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        v.as_object()?.get(key).cloned().filter(|v| !v.is_null())
    }

    fn fast(json: &str, key: &str) -> Member<'static> {
        let leaked: &'static str = Box::leak(json.to_owned().into_boxed_str());
        let name: &'static str = Box::leak(key.to_owned().into_boxed_str());
        top_level(leaked.as_bytes(), &Key::new(name))
    }

    fn fast_value(json: &str, key: &str) -> Result<Option<serde_json::Value>, ()> {
        match fast(json, key) {
            Member::Value(v) => {
                let mut de = serde_json::Deserializer::from_slice(v);
                Ok(Option::<serde_json::Value>::deserialize(&mut de)
                    .ok()
                    .flatten()
                    .filter(|v| !v.is_null()))
            }
            Member::Absent => Ok(None),
            Member::Unsure => Err(()),
        }
    }

    #[test]
    fn agrees_with_a_full_parse_on_valid_documents() {
        let docs = [
            r#"{"id":"x","usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"usage":{"prompt_tokens":1},"id":"x"}"#,
            r#" { "id" : "x" , "usage" : { "a" : [1, 2, {"usage": 3}] } } "#,
            "{\n\t\"choices\": [{\"message\": {\"content\": \"say \\\"usage\\\": {}\"}}],\r\n \"usage\": null}",
            r#"{"choices":[{"message":{"content":"a \\\" } ] { [ \\\\"}}],"usage":{"total_tokens":7}}"#,
            r#"{"choices":[{"delta":{"content":"\\\\"}}],"x":"\\\\\\\\","usage":{"n":1}}"#,
            r#"{"a":true,"b":false,"c":null,"d":-1.5e3,"e":[],"f":{},"usage":{"n":2}}"#,
            r#"{"a":"usage","b":{"usage":{"n":1}}}"#,
            r#"{"choices":[]}"#,
            r#"{}"#,
            r#"{ }"#,
            r#"{"usage":[1,2]}"#,
            r#"{"usage":"text"}"#,
            r#"{"usage":12}"#,
            r#"{"usagex":1,"xusage":2,"usag":3}"#,
            r#"{"content":"€ ünïcödé ✓ 🚀","usage":{"n":"🚀"}}"#,
            // the last `"usage"` is not the top-level one
            r#"{"usage":{"n":1},"choices":[{"usage":{"n":2}}]}"#,
            r#"{"usage":{"n":1},"x":{"usage":{"n":2}},"y":1}"#,
            r#"{"choices":[{"usage":{"n":2}}],"usage":{"n":1},"tail":{"usage":3}}"#,
            r#"{"a":"x\"usage\":1","usage":{"n":1},"b":"\"usage\": 2"}"#,
            r#"{"a":"\\","usage" : {"n":5} , "b" : [ "usage" ] }"#,
            r#"{"usage":{"n":1},"x\"usage":{"n":9}}"#,
            r#"{"usage":{"n":1},"x\\\"usage":{"n":9}}"#,
            r#"{"choices":[{"text":"no key here"}],"id":"u"}"#,
            r#"{"choices":[{"text":"an escape \n but no key"}]}"#,
            // escapes past the first 16 bytes of a string (the SIMD part)
            r#"{"content":"0123456789abcdefghij \" } ] \\","usage":{"n":3}}"#,
            r#"{"content":"0123456789abcdefghij\\\"usage\":{","usage":{"n":4}}"#,
        ];
        for doc in docs {
            assert!(
                serde_json::from_str::<serde_json::Value>(doc).is_ok(),
                "{doc}"
            );
            assert_eq!(fast_value(doc, "usage"), Ok(full(doc, "usage")), "{doc}");
        }
    }

    #[test]
    fn agrees_on_the_provider_fixtures() {
        let fixtures = [
            include_str!("dialect/openai/testdata/response_text.json"),
            include_str!("dialect/openai/testdata/response_tool_calls.json"),
            include_str!("dialect/openai/testdata/embeddings_float.json"),
            include_str!("dialect/openai/testdata/error_invalid_api_key.json"),
            include_str!("dialect/anthropic/testdata/response_tool_use.json"),
            include_str!("dialect/gemini/testdata/generate_text.json"),
        ];
        let streams = [
            include_str!("dialect/openai/testdata/stream_text_usage.sse"),
            include_str!("dialect/openai/testdata/stream_tool_calls.sse"),
            include_str!("dialect/openai/testdata/stream_deepseek_reasoning.sse"),
            include_str!("dialect/anthropic/testdata/stream_text.sse"),
        ];
        let events = streams
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| d.starts_with('{'));
        let mut n = 0;
        for doc in fixtures.into_iter().chain(events) {
            for key in ["usage", "id", "choices", "type", "message", "usageMetadata"] {
                assert_eq!(fast_value(doc, key), Ok(full(doc, key)), "{key} in {doc}");
            }
            n += 1;
        }
        assert!(n > 20, "only {n} documents");
    }

    #[test]
    fn leaves_what_it_cannot_be_sure_of_to_a_full_parse() {
        for doc in [
            r#"{"us\u0061ge":{"n":1}}"#, // an escaped key may be the one asked for
            r#"["usage"]"#,
            r#""usage""#,
            r#"{"a":"\u0041","us\u0061ge":{"n":1}}"#,
            r#"["usage"]"#,
            r#""usage""#,
            "",
            r#"{"a":"\"usage\":1"#,
        ] {
            assert_eq!(fast(doc, "usage"), Member::Unsure, "{doc:?}");
        }
        // Not validated: a malformed document may still yield the member
        // or be said to lack it (a full parse refuses it; either way the
        // caller has no usage to trust more).
        for doc in [
            r#"{"a" 1}"#,
            r#"{"a":{"b":1"#,
            r#"{"a":}"#,
            "{",
            r#"{"a":1,"#,
        ] {
            assert_eq!(fast(doc, "usage"), Member::Absent, "{doc:?}");
        }
        assert_eq!(fast(r#"{"a":1 "usage":2}"#, "usage"), Member::Value(b"2}"));
    }

    /// serde_json's verdict, as the relay asks it.
    fn serde_ok(b: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok()
    }

    #[test]
    fn validity_agrees_with_serde_on_hand_picked_texts() {
        let valid = [
            "{}",
            "[]",
            " { } ",
            "0",
            "-0",
            "1.5e-3",
            "-12.0E+4",
            "1E9",
            "\"\"",
            "true",
            "false",
            "null",
            r#"{"a":[1,2,{"b":null}],"c":"x\"y\\z\/\b\f\n\r\t\u00e9\uD83D\uDE80"}"#,
            r#"{"choices":[{"delta":{"content":"€ ✓ 🚀"},"index":0,"finish_reason":null}]}"#,
            "[[[[[[[[[[]]]]]]]]]]",
            "{\"a\" : 1 ,\n\t\"b\" :\r\n[ ] }",
        ];
        for t in valid {
            assert!(serde_ok(t.as_bytes()), "serde refuses {t:?}");
            assert!(is_valid(t.as_bytes()), "{t:?}");
        }
        // A lone surrogate escape: serde's skipping accepts it, but no
        // parse into a string does. `is_valid` is unsure (the relay's
        // serde check decides).
        assert!(serde_ok(br#""\ud800""#) && !is_valid(br#""\ud800""#));
        let invalid = [
            "",
            " ",
            "{",
            "}",
            "[",
            "[1,]",
            "{,}",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{1:2}"#,
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e+",
            "+1",
            "tru",
            "nul",
            "True",
            "NaN",
            "[1 2]",
            "{}{}",
            "{} x",
            "\"\\x\"",
            "\"\\u12G4\"",
            "\"\\u12\"",
            "\"a\nb\"",
            "\"\t\"",
            "\"unterminated",
            "[\"a\",]",
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            "]",
            "[}",
            "{]",
            "not json",
            "data: {}",
        ];
        for t in invalid {
            assert!(!serde_ok(t.as_bytes()), "serde accepts {t:?}");
            assert!(!is_valid(t.as_bytes()), "{t:?}");
        }
        // Deeper than it goes: unsure, not invalid.
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(serde_ok(deep.as_bytes()) && !is_valid(deep.as_bytes()));
    }

    #[test]
    fn validity_never_says_yes_where_serde_says_no() {
        // Deterministic xorshift; texts built from JSON's own characters,
        // then cut and mutated.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let base: Vec<&str> = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a\"b\\c\u00e9 \n"},"finish_reason":null}],"usage":null}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":-1.5e+3}}"#,
            r#"[true,false,null,0,-0.0,1E5,"",{},[],{"":[{}]}]"#,
        ]
        .to_vec();
        let alphabet = b"{}[]\",:\\ \n\t0123456789-+.eEtrufalsn\x01\x1fu/bx\xff\xc3";
        let (mut agreed_valid, mut checked) = (0, 0);
        for round in 0..40_000 {
            let mut t = base[round % base.len()].as_bytes().to_vec();
            for _ in 0..(next() % 3 + 1) {
                let at = (next() as usize) % (t.len() + 1);
                match next() % 4 {
                    0 => t.truncate(at),
                    1 if at < t.len() => t[at] = alphabet[(next() as usize) % alphabet.len()],
                    2 => t.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                    _ if at < t.len() => {
                        t.remove(at);
                    }
                    _ => {}
                }
            }
            let fast = is_valid(&t);
            let full = serde_ok(&t);
            assert!(
                !fast || full,
                "said valid, serde refuses: {:?}",
                String::from_utf8_lossy(&t)
            );
            checked += 1;
            agreed_valid += usize::from(fast && full);
        }
        // The mutations must leave enough valid texts to mean something.
        assert!(agreed_valid > 1_000, "{agreed_valid} of {checked}");
    }

    /// `string_end` by the definition, one byte at a time.
    fn string_end_by_bytes(j: &[u8], i: usize) -> Option<usize> {
        let mut p = i + 1;
        loop {
            match *j.get(p)? {
                b'"' => return Some(p + 1),
                b'\\' => p = escape_end(j, p)?,
                0..=0x1f => return None,
                _ => p += 1,
            }
        }
    }

    #[test]
    fn string_end_stops_at_every_kind_of_byte_at_every_offset() {
        let stops: &[&[u8]] = &[
            b"\"", b"\\\"", b"\\n", b"\\u00e9", b"\\x", b"\\u00g9", b"\x00", b"\x01", b"\x1f",
        ];
        let plain: &[u8] = &[
            b' ', b'a', 0x7f, 0x80, 0xc3, 0xff, b'!', b'#', b']', b'\x21',
        ];
        for len in 0..80 {
            for stop in stops {
                for fill in plain {
                    let mut t = vec![b'"'];
                    t.extend(std::iter::repeat_n(*fill, len));
                    t.extend_from_slice(stop);
                    t.extend_from_slice(b"tail\" , 1]");
                    for cut in [t.len(), len + 1, len + 3] {
                        let t = &t[..cut.min(t.len())];
                        assert_eq!(
                            string_end(t, 0),
                            string_end_by_bytes(t, 0),
                            "{:?}",
                            String::from_utf8_lossy(t)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn member_parses_the_value_or_asks_the_full_parse() {
        let get = |doc: &str| {
            let mut asked = false;
            let n = member::<u32>(doc.as_bytes(), &USAGE, || {
                asked = true;
                Some(99)
            });
            (n, asked)
        };
        assert_eq!(get(r#"{"a":[1],"usage":7}"#), (Some(7), false));
        assert_eq!(get(r#"{"usage":null}"#), (None, false));
        assert_eq!(get(r#"{"usage":"seven"}"#), (None, false));
        assert_eq!(get(r#"{"a":1}"#), (None, false));
        // Only an escaped name needs the whole text parsed.
        assert_eq!(get(r#"{"a":"\n","us\u0061ge":7}"#), (Some(99), true));
    }

    #[test]
    fn never_panics_on_truncated_input() {
        let doc = r#" {"id":"x","choices":[{"message":{"content":"a\"b\\"}}],"n":-1.5,"t":true,"usage":{"prompt_tokens":1}} "#;
        for cut in 0..=doc.len() {
            let key = Key::new("usage");
            let _ = top_level(&doc.as_bytes()[..cut], &key);
            let _ = top_level(&doc.as_bytes()[cut..], &key);
        }
    }

    #[test]
    fn readable_agrees_with_a_full_parse() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let mut docs: Vec<Vec<u8>> = [
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"x\ud800\u0041"}"#,
            r#"{"a":"x\ud800\n"}"#,
            r#"{"a":"\ud800\ud800"}"#,
            r#"{"a":"\\ud800"}"#,
            r#"{"a":"\\\ud800"}"#,
            r#"{"a":"\uDBFF\uDFFF","b":"\uD800"}"#,
            r#"{"a":"[[[[","b":"\u00e9"}"#,
            r#"["\ud83d"]"#,
        ]
        .iter()
        .map(|d| d.as_bytes().to_vec())
        .collect();
        for n in [1, 64, 126, 127, 128, 129, 300] {
            docs.push(nest(n).into_bytes());
            docs.push(format!(r#"{{"a":{},"b":"]]]"}}"#, nest(n)).into_bytes());
        }
        docs.push(b"{\"a\":\"caf\xc3\xa9\"}".to_vec());
        docs.push(b"{\"a\":\"caf\xc3(\"}".to_vec());
        docs.push(b"{\"a\":\"\xff\"}".to_vec());
        docs.push(b"{\"a\":\"\xed\xa0\x80\"}".to_vec());
        for d in &docs {
            // The text is lexically JSON (what `readable` assumes).
            assert!(
                serde_json::from_slice::<serde::de::IgnoredAny>(d).is_ok(),
                "{d:?}"
            );
            let serde = serde_json::from_slice::<serde_json::Value>(d).is_ok();
            let fast = readable(d);
            assert_eq!(
                fast.is_ok(),
                serde,
                "{:?}: {fast:?}",
                String::from_utf8_lossy(d)
            );
            // `is_valid` (whose texts are `str`s) never says yes where
            // serde says no.
            assert!(
                std::str::from_utf8(d).is_err() || !is_valid(d) || serde,
                "{d:?}"
            );
        }
        assert_eq!(
            readable(br#"{"a":1,"b":"\ud800"}"#),
            Err(Unreadable::LoneSurrogate { at: 12 })
        );
        assert_eq!(
            readable(b"{\"a\":\"\xff\"}"),
            Err(Unreadable::NotUtf8 { at: 6 })
        );
        assert!(matches!(
            readable(nest(128).as_bytes()),
            Err(Unreadable::TooDeep { at: 127 })
        ));
    }

    /// On every text serde's skipping parse accepts, `readable` says yes
    /// exactly when a full parse into a `Value` does (mutated texts).
    #[test]
    fn readable_is_exactly_serdes_full_parse() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(125), "]".repeat(125));
        let base: Vec<Vec<u8>> = vec![
            br#"{"model":"m","messages":[{"role":"user","content":"a\ud83d\ude00b \u00e9 \\ud800"}]}"#.to_vec(),
            "{\"x\":\"caf\u{e9} \u{1f600}\",\"y\":[[[{\"z\":\"\\uDBFF\\uDFFF\"}]]]}".as_bytes().to_vec(),
            deep.into_bytes(),
        ];
        let alphabet: &[&[u8]] = &[
            b"[",
            b"]",
            b"{}",
            b"[[",
            b"]]",
            b"\\ud800",
            b"\\udc00",
            b"\\u0041",
            b"\\\\",
            b"\xff",
            b"\xc3",
            b"\xa9",
            b"\xf0\x9f",
            b"\xed\xa0\x80",
            b"a",
            b"\"",
            b",",
        ];
        let (mut readable_ok, mut unreadable, mut lexical) = (0, 0, 0);
        for round in 0..30_000 {
            let mut t = base[round % base.len()].clone();
            for _ in 0..(next() % 3 + 1) {
                let at = (next() as usize) % (t.len() + 1);
                let piece = alphabet[(next() as usize) % alphabet.len()];
                if next() % 2 == 0 {
                    t.splice(at..at, piece.iter().copied());
                } else if at < t.len() {
                    t.remove(at);
                }
            }
            if serde_json::from_slice::<serde::de::IgnoredAny>(&t).is_err() {
                continue;
            }
            lexical += 1;
            let full = serde_json::from_slice::<serde_json::Value>(&t).is_ok();
            let fast = readable(&t);
            assert_eq!(
                fast.is_ok(),
                full,
                "{:?}: {fast:?}",
                String::from_utf8_lossy(&t)
            );
            if full {
                readable_ok += 1;
            } else {
                unreadable += 1;
            }
        }
        assert!(
            readable_ok > 1_000 && unreadable > 1_000,
            "{readable_ok} readable, {unreadable} not, of {lexical}"
        );
    }

    /// `cargo test --release -p switchyard-core --lib json_scan::tests::readable_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a timing, not a test"]
    fn readable_cost() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(40);
        let cases = [
            (
                "1 KiB chat",
                format!(
                    r#"{{"model":"gpt-4o","messages":[{{"role":"system","content":"{}"}},{{"role":"user","content":"{}"}}],"temperature":0.2}}"#,
                    &text[..400],
                    &text[..500]
                ),
            ),
            (
                "8 KiB chat, 8 turns",
                format!(
                    r#"{{"model":"gpt-4o","messages":[{}]}}"#,
                    vec![format!(r#"{{"role":"user","content":"{text}"}}"#); 4].join(",")
                ),
            ),
            (
                "2 KiB non-ASCII, escaped",
                format!(
                    r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
                    r"caf\u00e9 \u4f60\u597d \ud83d\ude00 ".repeat(60)
                ),
            ),
            (
                "2 KiB non-ASCII, raw",
                format!(
                    r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
                    "café 你好 😀 ".repeat(120)
                ),
            ),
        ];
        // Under callgrind: READABLE_N=1000 READABLE_CASE=0 valgrind --tool=callgrind
        // --toggle-collect='*json_scan*readable*' <test binary> readable_cost --ignored
        let n: usize = std::env::var("READABLE_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let only: Option<usize> = std::env::var("READABLE_CASE")
            .ok()
            .and_then(|v| v.parse().ok());
        for (i, (name, body)) in cases.into_iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            let b = body.as_bytes();
            let t = std::time::Instant::now();
            for _ in 0..n {
                assert!(readable(std::hint::black_box(b)).is_ok());
            }
            let ns = t.elapsed().as_nanos() as f64 / n as f64;
            let t = std::time::Instant::now();
            for _ in 0..n {
                assert!(std::str::from_utf8(std::hint::black_box(b)).is_ok());
            }
            let utf8 = t.elapsed().as_nanos() as f64 / n as f64;
            let t = std::time::Instant::now();
            for _ in 0..n {
                assert!(simdutf8::basic::from_utf8(std::hint::black_box(b)).is_ok());
            }
            let simd = t.elapsed().as_nanos() as f64 / n as f64;
            println!("{name}: std utf-8 {utf8:.0} ns, simdutf8 {simd:.0} ns");
            let t = std::time::Instant::now();
            for _ in 0..n {
                assert!(nesting(std::hint::black_box(b)).is_ok());
            }
            let walk = t.elapsed().as_nanos() as f64 / n as f64;
            println!("{name}: the nesting walk alone {walk:.0} ns");
            let t = std::time::Instant::now();
            for _ in 0..n {
                let v: serde::de::IgnoredAny =
                    serde_json::from_slice(std::hint::black_box(b)).unwrap();
                std::hint::black_box(v);
            }
            let skip = t.elapsed().as_nanos() as f64 / n as f64;
            println!(
                "{name}: {} bytes, readable {ns:.0} ns ({:.2} GB/s); serde skip-parse {skip:.0} ns",
                b.len(),
                b.len() as f64 / ns
            );
        }
    }
}
