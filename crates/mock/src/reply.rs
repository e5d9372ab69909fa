//! The deterministic reply logic shared by all flavors, public so tests can
//! predict what a mock will answer.
//!
//! Rules (applied by every flavor after the request has been validated):
//!
//! 1. **Tool call.** If the request declares tools, tool choice is not
//!    `none`, and the last message is a user turn (not a tool result), the
//!    reply calls a tool: the forced one if tool choice names one, else the
//!    first declared tool. If the user text contains the word `parallel`
//!    (case-insensitive), there are at least two tools, parallel calls are
//!    allowed and no single tool is forced, the first two tools are called in
//!    one turn. Arguments come from [`synthesize_from_schema`] with only the
//!    required properties filled.
//! 2. **Tool result.** If the last message is a tool result, the text is
//!    [`expected_tool_result_text`].
//! 3. **Text.** Otherwise [`expected_text_with_images`] of the last user text.
//! 4. **JSON mode.** With OpenAI `response_format` `json_object`/`json_schema`,
//!    Anthropic `output_config.format` (`json_schema`), or Gemini
//!    `responseMimeType: application/json`, the text is a JSON object: the
//!    schema synthesised with every property filled, or
//!    `{"reply": <text>}` without a schema.
//! 5. **Stop sequences** truncate the text at the earliest occurrence of any
//!    sequence (finish reason stop / `stop_sequence` / `STOP`).
//! 6. **Max tokens.** If [`count_tokens`] of the text exceeds the limit, the
//!    text is cut to `limit * 4` characters (finish reason length /
//!    `max_tokens` / `MAX_TOKENS`).
//! 7. **Usage.** Input tokens = sum over messages (and the system prompt) of
//!    `count_tokens(text) + 4`, plus 85 per image, plus
//!    `count_tokens(tool definitions JSON)`. Output tokens =
//!    `count_tokens(text)` or `count_tokens(arguments JSON)` for each tool
//!    call, times the number of choices.

use serde_json::{json, Map, Value};

/// The reply text for a plain user turn: `"[{label}] You said: {text}"`.
pub fn expected_text(label: &str, last_user_text: &str) -> String {
    format!("[{label}] You said: {last_user_text}")
}

/// [`expected_text`] with `" (1 image)"` / `" (N images)"` appended when the
/// last user turn carried images.
pub fn expected_text_with_images(label: &str, last_user_text: &str, images: usize) -> String {
    let base = expected_text(label, last_user_text);
    match images {
        0 => base,
        1 => format!("{base} (1 image)"),
        n => format!("{base} ({n} images)"),
    }
}

/// The reply text after a tool result: `"[{label}] Tool {name} returned: {content}"`.
pub fn expected_tool_result_text(label: &str, tool_name: &str, content: &str) -> String {
    format!("[{label}] Tool {tool_name} returned: {content}")
}

/// The mock's token estimate: `ceil(chars / 4)` (Unicode scalar values).
pub fn count_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4)
}

/// A JSON value satisfying `schema`, built deterministically: `enum` → first
/// value, `const` → it, string → `"demo"`, number/integer → `1`, boolean →
/// `true`, null → `null`, array → `[]`, object → its properties (only the
/// `required` ones unless `all_properties`) filled recursively; `anyOf` /
/// `oneOf` / `allOf` → the first branch. Depth is bounded.
pub fn synthesize_from_schema(schema: &Value, all_properties: bool) -> Value {
    synth(schema, all_properties, 0)
}

fn synth(schema: &Value, all: bool, depth: usize) -> Value {
    let Some(obj) = schema.as_object() else {
        return Value::String("demo".into());
    };
    if depth > 16 {
        return Value::Null;
    }
    if let Some(v) = obj.get("const") {
        return v.clone();
    }
    if let Some(first) = obj
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf", "any_of", "one_of"] {
        if let Some(first) = obj
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return synth(first, all, depth + 1);
        }
    }
    let ty = match obj.get("type") {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null")
            .to_ascii_lowercase(),
        _ if obj.contains_key("properties") => "object".into(),
        _ if obj.contains_key("items") => "array".into(),
        _ => "object".into(),
    };
    match ty.as_str() {
        "string" => Value::String("demo".into()),
        "number" | "integer" => json!(1),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        "array" => Value::Array(Vec::new()),
        _ => {
            let mut out = Map::new();
            let props = obj.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = props {
                for (name, sub) in props {
                    if all || required.contains(&name.as_str()) {
                        out.insert(name.clone(), synth(sub, all, depth + 1));
                    }
                }
            }
            for name in required {
                if !out.contains_key(name) {
                    out.insert(name.to_string(), Value::String("demo".into()));
                }
            }
            Value::Object(out)
        }
    }
}

/// A deterministic unit-length embedding of `text` with `dims` components
/// (FNV-1a hash of the text seeding a splitmix64 generator).
pub fn embedding_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut state = h;
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            let r = splitmix64(&mut state);
            // 24 random bits mapped to [-1, 1).
            ((r >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------
// Flavor-neutral request summary and reply plan (crate-internal).

/// The kind of the last message in the conversation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LastTurn {
    /// A user turn with text and a number of images.
    User,
    /// A tool result for the named tool with its textual content.
    ToolResult { name: String, content: String },
    /// An assistant / model turn (prefill).
    Assistant,
}

#[derive(Debug, Clone)]
pub(crate) struct ToolDef {
    pub name: String,
    pub schema: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolMode {
    Auto,
    None,
    /// Must call some tool (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Any,
    Forced(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub last: LastTurn,
    pub last_user_text: String,
    pub last_user_images: usize,
    pub tools: Vec<ToolDef>,
    pub tool_mode: ToolMode,
    pub parallel_allowed: bool,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    /// `Some(None)`: JSON mode without schema; `Some(Some(schema))`: with schema.
    pub json: Option<Option<Value>>,
    pub input_tokens: u64,
    pub choices: usize,
}

impl Summary {
    pub fn new() -> Self {
        Summary {
            last: LastTurn::User,
            last_user_text: String::new(),
            last_user_images: 0,
            tools: Vec::new(),
            tool_mode: ToolMode::Auto,
            parallel_allowed: true,
            max_tokens: None,
            stop: Vec::new(),
            json: None,
            input_tokens: 0,
            choices: 1,
        }
    }

    /// Account for one message's text and images in the input usage.
    pub fn add_input(&mut self, text: &str, images: usize) {
        self.input_tokens += count_tokens(text) + 4 + 85 * images as u64;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedCall {
    pub name: String,
    pub args: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Finish {
    Stop,
    Length,
    StopSequence(String),
    ToolUse,
}

#[derive(Debug, Clone)]
pub(crate) enum Output {
    Text(String),
    Calls(Vec<PlannedCall>),
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub output: Output,
    pub finish: Finish,
    /// Output tokens of one choice.
    pub output_tokens: u64,
    pub input_tokens: u64,
}

fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case(word))
}

pub(crate) fn plan(label: &str, s: &Summary) -> Plan {
    let input_tokens = s.input_tokens;
    if s.last == LastTurn::User && !s.tools.is_empty() && s.tool_mode != ToolMode::None {
        let mut chosen: Vec<&ToolDef> = Vec::new();
        match &s.tool_mode {
            ToolMode::Forced(name) => {
                if let Some(t) = s.tools.iter().find(|t| &t.name == name) {
                    chosen.push(t);
                }
            }
            _ => {
                if has_word(&s.last_user_text, "parallel")
                    && s.tools.len() >= 2
                    && s.parallel_allowed
                {
                    chosen.extend(s.tools.iter().take(2));
                } else {
                    chosen.extend(s.tools.first());
                }
            }
        }
        if !chosen.is_empty() {
            let calls: Vec<PlannedCall> = chosen
                .into_iter()
                .map(|t| PlannedCall {
                    name: t.name.clone(),
                    args: synthesize_from_schema(&t.schema, false),
                })
                .collect();
            let output_tokens = calls
                .iter()
                .map(|c| count_tokens(&c.args.to_string()) + count_tokens(&c.name))
                .sum();
            return Plan {
                output: Output::Calls(calls),
                finish: Finish::ToolUse,
                output_tokens,
                input_tokens,
            };
        }
    }
    let mut text = match &s.last {
        LastTurn::ToolResult { name, content } => expected_tool_result_text(label, name, content),
        _ => expected_text_with_images(label, &s.last_user_text, s.last_user_images),
    };
    if let Some(schema) = &s.json {
        text = match schema {
            Some(schema) => synthesize_from_schema(schema, true).to_string(),
            None => json!({ "reply": text }).to_string(),
        };
    }
    let mut finish = Finish::Stop;
    let earliest = s
        .stop
        .iter()
        .filter(|seq| !seq.is_empty())
        .filter_map(|seq| text.find(seq.as_str()).map(|pos| (pos, seq)))
        .min_by_key(|(pos, _)| *pos);
    if let Some((pos, seq)) = earliest {
        text.truncate(pos);
        finish = Finish::StopSequence(seq.clone());
    }
    if let Some(limit) = s.max_tokens {
        if count_tokens(&text) > limit {
            let keep = usize::try_from(limit.saturating_mul(4)).unwrap_or(usize::MAX);
            text = text.chars().take(keep).collect();
            finish = Finish::Length;
        }
    }
    let output_tokens = count_tokens(&text);
    Plan {
        output: Output::Text(text),
        finish,
        output_tokens,
        input_tokens,
    }
}

/// Split text into stream pieces of about three words each (whitespace kept).
pub(crate) fn text_pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut words = 0;
    for (i, ch) in text.char_indices() {
        cur.push(ch);
        if ch == ' ' {
            words += 1;
            let next_is_space = text[i + 1..].starts_with(' ');
            if words >= 3 && !next_is_space {
                out.push(std::mem::take(&mut cur));
                words = 0;
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Split a JSON argument string into at least two fragments (when it has at
/// least two characters), on character boundaries.
pub(crate) fn json_fragments(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 2 {
        return vec![s.to_string()];
    }
    let size = (chars.len() / 3).max(1);
    chars
        .chunks(size)
        .map(|c| c.iter().collect::<String>())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn synth_fills_required() {
        let schema = json!({"type":"object","properties":{
            "city":{"type":"string"},"unit":{"enum":["c","f"]},
            "n":{"type":"integer"},"opt":{"type":"boolean"},
            "nested":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"]}},
            "required":["city","unit","n","nested"]});
        assert_eq!(
            synthesize_from_schema(&schema, false),
            json!({"city":"demo","unit":"c","n":1,"nested":{"x":1}})
        );
    }

    #[test]
    fn pieces_roundtrip() {
        let t = "[lbl] You said: hello there my  dear friend, how are you";
        assert_eq!(text_pieces(t).concat(), t);
        assert!(text_pieces(t).len() >= 3);
        let j = r#"{"a":"demo"}"#;
        assert!(json_fragments(j).len() >= 2);
        assert_eq!(json_fragments(j).concat(), j);
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding_vector("hello", 8);
        assert_eq!(a, embedding_vector("hello", 8));
        assert_ne!(a, embedding_vector("world", 8));
        let n: f32 = a.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4);
    }
}
