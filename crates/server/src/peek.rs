//! Cheap request inspection and byte-level rewriting for the pass-through
//! fast path: read only `model`, `stream` and `stream_options` (borrowed,
//! everything else skipped), and splice a new `model` value into the
//! original bytes instead of re-serialising the body. What is skipped is
//! still checked to be readable in full (`json_scan::readable`: UTF-8, no
//! lone surrogate escapes, nesting within serde's limit), so a body is
//! never forwarded that a guardrail or decoder could not have read.

use serde::Deserialize;
use serde_json::value::RawValue;
use switchyard_core::ir::ApiError;

/// What the gateway needs to know before routing.
#[derive(Debug)]
pub struct Peek<'a> {
    pub model: std::borrow::Cow<'a, str>,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// The output cap the client set (`max_completion_tokens` / `max_tokens`).
    pub max_tokens: Option<u64>,
    /// OpenAI `n` as sent (absent/`null`: 1); read with [`Peek::choices`],
    /// on chat routes only (embeddings have no `n`).
    n_raw: Option<serde_json::Value>,
    model_raw: &'a RawValue,
    stream_options_raw: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<serde_json::Value>,
    #[serde(borrow, default, deserialize_with = "raw_even_null")]
    stream_options: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<serde_json::Value>,
    #[serde(default)]
    max_completion_tokens: Option<serde_json::Value>,
    #[serde(default)]
    n: Option<serde_json::Value>,
}

/// A present member as its raw text, `null` included: `Option` alone reads
/// `null` as absent, and forcing usage on would then add a second
/// `stream_options` member (which the upstream may read last, as `null`).
fn raw_even_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// The most choices one chat request may ask for (OpenAI's `n` range).
pub const MAX_CHOICES: u64 = 128;

impl Peek<'_> {
    /// How many choices the request asks for (OpenAI `n`): every one may
    /// produce up to the output cap, so admission reserves that many times
    /// it. Absent or `null` is 1; anything but an integer in
    /// `1..=MAX_CHOICES` is refused, naming `n`.
    pub fn choices(&self) -> Result<u64, ApiError> {
        match &self.n_raw {
            None | Some(serde_json::Value::Null) => Ok(1),
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_CHOICES).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "n",
                        format!("`n` must be an integer from 1 to {MAX_CHOICES}, got {v}"),
                    )
                }),
        }
    }
}

/// Inspect a request body.
pub fn peek(body: &[u8]) -> Result<Peek<'_>, ApiError> {
    let head: Head<'_> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            let msg = e.to_string();
            if msg.contains("invalid type") {
                ApiError::invalid(format!("the request body must be a JSON object: {msg}"))
            } else {
                ApiError::invalid(format!("invalid request body: {msg}"))
            }
        } else {
            ApiError::invalid(format!(
                "We could not parse the JSON body of your request: {e}. The body must be a JSON object."
            ))
        }
    })?;
    // The lexical parse above skipped what `Head` does not name; the rest
    // of the gateway (guardrails, translation, estimates, the cache, the
    // upstream) relies on every byte being readable too.
    switchyard_core::json_scan::readable(body).map_err(|e| ApiError::invalid(e.to_string()))?;
    let Some(model_raw) = head.model else {
        return Err(ApiError::invalid_param(
            "model",
            "you must provide a model parameter (`model` is missing)",
        ));
    };
    let model: std::borrow::Cow<'_, str> = serde_json::from_str(model_raw.get())
        .map_err(|_| ApiError::invalid_param("model", "`model` must be a string"))?;
    if model.is_empty() {
        return Err(ApiError::invalid_param(
            "model",
            "`model` must not be empty",
        ));
    }
    let stream = match head.stream {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "stream",
                "`stream` must be a boolean",
            ))
        }
    };
    let include_usage = match head.stream_options {
        Some(raw) if raw.get() != "null" => {
            let so: StreamOptions = serde_json::from_str(raw.get()).map_err(|_| {
                ApiError::invalid_param("stream_options", "`stream_options` must be an object")
            })?;
            so.include_usage.unwrap_or(false)
        }
        _ => false,
    };
    let max_tokens = head
        .max_completion_tokens
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .or_else(|| head.max_tokens.as_ref().and_then(serde_json::Value::as_u64));
    Ok(Peek {
        model,
        stream,
        include_usage,
        max_tokens,
        n_raw: head.n,
        model_raw,
        stream_options_raw: head.stream_options,
    })
}

impl Peek<'_> {
    /// Rewrite the body for the upstream: new `model` value and, when
    /// `force_usage`, `stream_options.include_usage = true`.
    pub fn rewrite(&self, body: &[u8], upstream_model: &str, force_usage: bool) -> Vec<u8> {
        let mut edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::with_capacity(2);
        let quoted = serde_json::to_vec(upstream_model).unwrap_or_else(|_| b"\"\"".to_vec());
        if let Some(r) = range_in(body, self.model_raw) {
            edits.push((r, quoted));
        }
        if force_usage && !self.include_usage {
            match self
                .stream_options_raw
                .and_then(|raw| range_in(body, raw).map(|r| (raw, r)))
            {
                Some((raw, r)) => {
                    let mut obj: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(raw.get()).unwrap_or_default();
                    obj.insert("include_usage".into(), serde_json::Value::Bool(true));
                    let v = serde_json::to_vec(&obj)
                        .unwrap_or_else(|_| b"{\"include_usage\":true}".to_vec());
                    edits.push((r, v));
                }
                None => {
                    // Insert right after the opening brace.
                    if let Some(open) = body.iter().position(|b| *b == b'{') {
                        edits.push((
                            open + 1..open + 1,
                            b"\"stream_options\":{\"include_usage\":true},".to_vec(),
                        ));
                    }
                }
            }
        }
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = Vec::with_capacity(body.len() + 64);
        let mut pos = 0;
        for (r, v) in edits {
            if r.start < pos || r.end > body.len() {
                continue;
            }
            out.extend_from_slice(&body[pos..r.start]);
            out.extend_from_slice(&v);
            pos = r.end;
        }
        out.extend_from_slice(&body[pos..]);
        out
    }
}

/// The byte range of a borrowed `RawValue` inside the buffer it came from.
fn range_in(body: &[u8], raw: &RawValue) -> Option<std::ops::Range<usize>> {
    let start = (raw.get().as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start + raw.get().len();
    (end <= body.len()).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_model_and_usage() {
        let body = br#"{ "model" : "alias", "stream":true, "messages":[{"role":"user","content":"model"}]}"#;
        let p = peek(body).unwrap();
        assert_eq!(p.model, "alias");
        assert!(p.stream && !p.include_usage);
        let out = p.rewrite(body, "gpt-4o\"x", true);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "gpt-4o\"x");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["messages"][0]["content"], "model");
    }

    #[test]
    fn a_null_stream_options_is_replaced_not_doubled() {
        let body = br#"{"model":"a","stream":true,"stream_options":null}"#;
        let p = peek(body).unwrap();
        assert!(!p.include_usage);
        let out = p.rewrite(body, "b", true);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"b","stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn keeps_other_stream_options() {
        let body = br#"{"model":"a","stream":true,"stream_options":{"include_usage":false,"x":1}}"#;
        let p = peek(body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&p.rewrite(body, "b", true)).unwrap();
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
    }

    #[test]
    fn choices_default_to_one_and_stay_in_range() {
        let n = |b: &str| peek(b.as_bytes()).unwrap().choices();
        assert_eq!(n(r#"{"model":"a"}"#).unwrap(), 1);
        assert_eq!(n(r#"{"model":"a","n":null}"#).unwrap(), 1);
        assert_eq!(n(r#"{"model":"a","n":128}"#).unwrap(), 128);
        for bad in ["0", "129", "-1", "1.5", "\"2\"", "true"] {
            let e = n(&format!(r#"{{"model":"a","n":{bad}}}"#)).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("n"), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(peek(b"{}").unwrap_err().param.as_deref(), Some("model"));
        assert_eq!(
            peek(br#"{"model":1}"#).unwrap_err().param.as_deref(),
            Some("model")
        );
        assert_eq!(
            peek(br#"{"model":"a","stream":"yes"}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("stream")
        );
        assert!(peek(b"{not json").is_err());
        assert!(peek(b"[1]").is_err());
        assert!(peek(br#"{"model":"a","model":"b"}"#).is_err());
    }

    #[test]
    fn skipped_members_must_be_readable_too() {
        let deep = format!(
            r#"{{"model":"a","x":{}{}}}"#,
            "[".repeat(128),
            "]".repeat(128)
        );
        for (body, word) in [
            (br#"{"model":"a","x":"\ud800"}"#.to_vec(), "surrogate"),
            (br#"{"model":"a","x":"\udfff\ud800"}"#.to_vec(), "surrogate"),
            (b"{\"model\":\"a\",\"x\":\"\xff\"}".to_vec(), "UTF-8"),
            (deep.into_bytes(), "deeper than 127"),
        ] {
            let e = peek(&body).unwrap_err();
            assert!(e.message.contains(word), "{}", e.message);
        }
        let ok = format!(
            r#"{{"model":"a","x":{}{},"y":"\\ud800 \ud83d\ude00 é"}}"#,
            "[".repeat(126),
            "]".repeat(126)
        );
        assert!(peek(ok.as_bytes()).is_ok());
    }
}
