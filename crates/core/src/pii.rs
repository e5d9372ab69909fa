//! Personal-data detection and masking for request bodies.
//!
//! A [`Detector`] holds the configured rules (built-in entities and custom
//! patterns). [`Detector::apply`] takes a raw request body (OpenAI chat,
//! Anthropic messages or embeddings JSON) and says whether it is clean,
//! rewritten with placeholders (`[EMAIL]`, `[PHONE]` …), or must be refused.
//!
//! Cost model: the common clean request costs one scan of the raw bytes by
//! a [`regex::bytes::RegexSet`] of every rule's pattern. Only when some rule
//! may match (or the body holds `\u` escapes, or with custom rules any
//! escape, which could hide a match from a raw scan) is the body parsed, and
//! every string value is inspected (issue 18 §3: guardrails see every byte
//! they let through), but identifiers and protocol fields, tool names,
//! thinking blocks (whose signatures must round-trip unchanged) and base64
//! media (see `walk`). A body that names a member twice is unreadable, and a
//! body with nothing to mask is forwarded byte for byte.
//!
//! Matches are validated beyond the pattern: card numbers by the Luhn
//! checksum, IBANs by ISO 7064 mod 97, Chinese resident IDs by their check
//! character and birth date, US SSNs by the assigned ranges, IPv4 octets by
//! range; every match must stand alone (no ASCII letter or digit glued to
//! either end). Values are never logged or echoed: findings carry entity
//! names and counts only.

use regex::bytes::RegexSet;
use regex::Regex;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// What to do with a request in which a rule found something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace each match with the rule's placeholder and forward.
    Mask,
    /// Refuse the request (nothing is forwarded).
    Block,
}

/// The built-in entities, by their config name.
pub const BUILT_IN: &[&str] = &[
    "secret",
    "email",
    "iban",
    "cn_id",
    "credit_card",
    "ssn",
    "phone",
    "ip_address",
];

/// A user-defined rule: a name and a regular expression (Rust `regex`
/// syntax, matched against decoded text).
#[derive(Debug, Clone)]
pub struct CustomRule {
    pub name: String,
    pub pattern: String,
    pub action: Action,
}

/// Which rules to run and what each does.
#[derive(Debug, Clone)]
pub struct PiiConfig {
    /// Built-in entities (names from [`BUILT_IN`]) with their action.
    pub entities: Vec<(String, Action)>,
    pub custom: Vec<CustomRule>,
}

impl PiiConfig {
    /// Every built-in entity, masked.
    pub fn mask_all() -> Self {
        PiiConfig {
            entities: BUILT_IN
                .iter()
                .map(|e| ((*e).to_owned(), Action::Mask))
                .collect(),
            custom: Vec::new(),
        }
    }
}

/// The JSON shape of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// OpenAI `/v1/chat/completions`: `messages`.
    OpenAiChat,
    /// Anthropic `/v1/messages`: `system` and `messages`.
    AnthropicMessages,
    /// OpenAI `/v1/embeddings`: `input`.
    Embeddings,
}

type Validate = fn(&str) -> bool;

struct Rule {
    name: Arc<str>,
    placeholder: String,
    regex: Regex,
    validate: Validate,
    action: Action,
}

/// Compiled rules. Cheap to share (`Arc`) across threads.
pub struct Detector {
    rules: Vec<Rule>,
    /// The same patterns over raw bytes: the clean-request fast path.
    prefilter: RegexSet,
    /// Some rule is the operator's own pattern, which may match characters
    /// JSON writes as escapes (`\t`, `\n`, `\"`, `\/` …).
    custom: bool,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field(
                "rules",
                &self.rules.iter().map(|r| &*r.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Entities found in one request: names and counts, never values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// `(entity, count, action)`, in order of first occurrence.
    pub counts: Vec<(Arc<str>, u32, Action)>,
}

impl Findings {
    fn add(&mut self, rule: &Rule) {
        match self.counts.iter_mut().find(|(n, _, _)| *n == rule.name) {
            Some((_, c, _)) => *c += 1,
            None => self.counts.push((rule.name.clone(), 1, rule.action)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Entities whose rule blocks.
    pub fn blocking(&self) -> impl Iterator<Item = (&str, u32)> {
        self.counts
            .iter()
            .filter(|(_, _, a)| *a == Action::Block)
            .map(|(n, c, _)| (&**n, *c))
    }

    /// `email=2, phone=1` (for a response header or a log line).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (i, (n, c, _)) in self.counts.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(n);
            s.push('=');
            s.push_str(&c.to_string());
        }
        s
    }
}

/// The result of [`Detector::apply`].
#[derive(Debug)]
pub enum Outcome {
    /// Nothing found: forward the original bytes.
    Clean,
    /// Found and masked: forward `body` instead.
    Masked { body: Vec<u8>, findings: Findings },
    /// A blocking rule matched: refuse. (Masking rules' findings included.)
    Blocked { findings: Findings },
    /// The body had to be read and could not be (not UTF-8, a lone
    /// surrogate escape, nesting beyond serde's limit, not JSON): refuse,
    /// since what was not read was not checked. The reason names the
    /// problem, never the text.
    Unreadable { reason: String },
}

/// A configuration problem (unknown entity, bad pattern).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Detector {
    pub fn new(cfg: &PiiConfig) -> Result<Detector, ConfigError> {
        let mut rules = Vec::new();
        // Custom rules first: a site's own identifiers win over the
        // generic shapes they may resemble.
        for c in &cfg.custom {
            let name = c.name.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(ConfigError(format!(
                    "custom PII rule name `{}` must be letters, digits, `_` or `-`",
                    c.name
                )));
            }
            if BUILT_IN.contains(&name) || rules.iter().any(|r: &Rule| &*r.name == name) {
                return Err(ConfigError(format!("PII rule `{name}` is defined twice")));
            }
            let regex = Regex::new(&c.pattern).map_err(|e| {
                ConfigError(format!("custom PII rule `{name}`: invalid pattern: {e}"))
            })?;
            if regex.is_match("") {
                return Err(ConfigError(format!(
                    "custom PII rule `{name}`: the pattern matches empty text"
                )));
            }
            rules.push(Rule {
                name: Arc::from(name),
                placeholder: format!("[{}]", name.to_ascii_uppercase().replace('-', "_")),
                regex,
                validate: |_| true,
                action: c.action,
            });
        }
        // Built-ins in a fixed precedence order, whatever the config's order.
        for b in BUILT_IN {
            let Some((_, action)) = cfg.entities.iter().find(|(n, _)| n == b) else {
                continue;
            };
            let (pattern, validate) = built_in(b);
            let regex = Regex::new(pattern)
                .map_err(|e| ConfigError(format!("built-in PII rule `{b}`: {e}")))?;
            rules.push(Rule {
                name: Arc::from(*b),
                placeholder: format!("[{}]", b.to_ascii_uppercase()),
                regex,
                validate,
                action: *action,
            });
        }
        for (n, _) in &cfg.entities {
            if !BUILT_IN.contains(&n.as_str()) {
                return Err(ConfigError(format!(
                    "unknown PII entity `{n}`; built-in entities: {}",
                    BUILT_IN.join(", ")
                )));
            }
        }
        let prefilter = RegexSet::new(rules.iter().map(|r| r.regex.as_str()))
            .map_err(|e| ConfigError(format!("PII rules: {e}")))?;
        Ok(Detector {
            rules,
            prefilter,
            custom: !cfg.custom.is_empty(),
        })
    }

    /// Rule names, in precedence order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.name)
    }

    /// Mask one text. `None` when nothing was found (no allocation).
    pub fn mask_text(&self, text: &str, findings: &mut Findings) -> Option<String> {
        self.mask_with(text, findings, None)
    }

    fn mask_with(
        &self,
        text: &str,
        findings: &mut Findings,
        only: Option<&[bool]>,
    ) -> Option<String> {
        // Every match of every rule; overlapping matches are masked as one
        // span (their union), named by the earliest rule among them. (Masking
        // only the earlier rule's part would leave the rest of a longer
        // match in clear: `sk-proj-….doe@example.com` kept `doe@example.com`.)
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if only.is_some_and(|o| !o[i]) {
                continue;
            }
            for m in rule.regex.find_iter(text) {
                let (s, e) = (m.start(), m.end());
                if !stands_alone(text, s, e) || !(rule.validate)(m.as_str()) {
                    continue;
                }
                spans.push((s, e, i));
            }
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_unstable_by_key(|&(s, _, i)| (s, i));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut k = 0;
        while let Some(&(s, mut e, mut i)) = spans.get(k) {
            k += 1;
            while let Some(&(s2, e2, i2)) = spans.get(k).filter(|n| n.0 < e) {
                debug_assert!(s2 >= s);
                e = e.max(e2);
                i = i.min(i2);
                k += 1;
            }
            let rule = &self.rules[i];
            out.push_str(&text[at..s]);
            out.push_str(&rule.placeholder);
            findings.add(rule);
            at = e;
        }
        out.push_str(&text[at..]);
        Some(out)
    }

    /// Inspect a request body. One the detector must parse and cannot is
    /// `Unreadable`, never `Clean`. The prefilter alone passes a body only
    /// when no rule matches its raw bytes and it has no `\u` escape; give it
    /// bodies that [`crate::json_scan::readable`] accepted (the gateway
    /// checks every request body so), since a provider that decodes invalid
    /// UTF-8 leniently could see text the raw scan did not. A JSON value of
    /// another shape (no `messages` / `input`) is `Clean`.
    pub fn apply(&self, kind: BodyKind, body: &[u8]) -> Outcome {
        let hits = self.prefilter.matches(body);
        // An escape can hide a match from the raw scan: `\u` any (`\u0040`
        // is `@`); the others (`\t`, `\n`, `\"`, `\/` …) only from a
        // custom pattern, since the built-in shapes never contain them.
        let escaped = if self.custom {
            memchr::memchr(b'\\', body).is_some()
        } else {
            memchr::memmem::find(body, b"\\u").is_some()
        };
        if !hits.matched_any() && !escaped {
            return Outcome::Clean;
        }
        // Without such escapes the raw scan is exact about which rules can
        // match, so only those run on the decoded text.
        let only: Option<Vec<bool>> =
            (!escaped).then(|| (0..self.rules.len()).map(|i| hits.matched(i)).collect());
        let mut v = match parse_strict(body) {
            Ok(v) => v,
            Err(e) => {
                // serde's message names the problem and its place only
                // ("lone leading surrogate in hex escape at line 1 column 9",
                // "duplicate member `content` at line 1 column 80").
                return Outcome::Unreadable {
                    reason: e.to_string(),
                };
            }
        };
        let _ = kind; // every kind is walked whole
        let mut findings = Findings::default();
        let mut changed = false;
        {
            let mut visit = |s: &mut String| {
                if let Some(m) = self.mask_with(s, &mut findings, only.as_deref()) {
                    *s = m;
                    changed = true;
                }
            };
            // Every string value in the body (tool descriptions, `stop`,
            // `user`, `metadata`, schemas, predictions …), except the few
            // that must not change: see `walk`.
            walk(&mut v, "", &mut visit);
        }
        if findings.blocking().next().is_some() {
            return Outcome::Blocked { findings };
        }
        if !changed {
            return Outcome::Clean;
        }
        match serde_json::to_vec(&v) {
            Ok(body) => Outcome::Masked { body, findings },
            // Unreachable for a `Value` that came from JSON; refuse rather
            // than forward unmasked text.
            Err(_) => Outcome::Blocked { findings },
        }
    }
}

/// Members whose string values are identifiers or protocol fields that
/// must round-trip unchanged (a masked `tool_call_id` would break the pairing
/// with its call). Only string values are left: an object under such a
/// member (a schema property called `id`) is walked like any other.
const SKIP_KEYS: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "tool_call_id",
    "tool_use_id",
    "file_id",
    "signature",
    "encrypted_content",
    "encrypted_index",
];

/// Content blocks left whole: thinking, signed by the provider.
const SKIP_BLOCKS: &[&str] = &["thinking", "redacted_thinking"];

/// Visit every string value under `v` except: the [`SKIP_KEYS`] string
/// members; `name` outside a message (a tool's or function's name, which
/// must match the tool's calls; a message's participant `name` is scanned);
/// thinking blocks; and media payloads that are pure base64 (`data` of a
/// `{"type":"base64"}` source or of `input_audio`, a `data:…;base64,` URL in
/// `url` or `file_data`). A text `document` source (`{"type":"text",
/// "data":…}`) is scanned. Member names are not values and are not scanned.
fn walk(v: &mut Value, parent: &str, visit: &mut impl FnMut(&mut String)) {
    match v {
        Value::String(s) => visit(s),
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, parent, visit)),
        Value::Object(o) => {
            let ty = o.get("type").and_then(Value::as_str);
            if ty.is_some_and(|t| SKIP_BLOCKS.contains(&t)) {
                return;
            }
            let base64_source = ty == Some("base64") || parent == "input_audio";
            let message = o.contains_key("role");
            for (k, x) in o.iter_mut() {
                if let Value::String(s) = x {
                    let k = k.as_str();
                    let skip = SKIP_KEYS.contains(&k)
                        || (k == "name" && !message)
                        || (k == "data" && base64_source && is_base64(s))
                        || ((k == "url" || k == "file_data") && is_base64_data_url(s));
                    if skip {
                        continue;
                    }
                }
                walk(x, k, visit);
            }
        }
        _ => {}
    }
}

/// Only the standard base64 alphabet and padding (not `-`, which every
/// `sk-…` key holds): a payload with anything else is scanned as text.
fn is_base64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// `data:<type>;base64,<base64>`.
fn is_base64_data_url(s: &str) -> bool {
    s.strip_prefix("data:")
        .and_then(|r| r.split_once(";base64,"))
        .is_some_and(|(mime, payload)| !mime.contains(',') && is_base64(payload))
}

/// Parse like `serde_json::from_slice::<Value>`, but refuse an object that
/// names a member twice: parsers disagree on which one wins (serde keeps the
/// last, others the first), so the scan could read one and a provider the
/// other.
fn parse_strict(body: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = StrictValue::deserialize(&mut de)?;
    de.end()?;
    Ok(v.0)
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                // Name the member when it looks like a protocol field; an
                // arbitrary key could be the very text being guarded.
                let named = k.len() <= 40
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                return Err(de::Error::custom(if named {
                    format!("duplicate member `{k}`")
                } else {
                    "duplicate member in an object".to_owned()
                }));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// The match is a whole token: no ASCII letter or digit glued to an end
/// that is itself a letter or digit, and no decimal point or digit-group
/// separator joining it to more digits (`3.14159…`, `1,234,…`).
fn stands_alone(text: &str, s: usize, e: usize) -> bool {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric();
    let sep = |c: u8| c == b'.' || c == b',';
    let first_word = b.get(s).is_some_and(|c| word(*c));
    let last_word = e > s && word(b[e - 1]);
    let glued_before = s > 0
        && first_word
        && (word(b[s - 1]) || (sep(b[s - 1]) && s > 1 && b[s - 2].is_ascii_digit()));
    let glued_after = e < b.len()
        && last_word
        && (word(b[e]) || (sep(b[e]) && b.get(e + 1).is_some_and(u8::is_ascii_digit)));
    !glued_before && !glued_after
}

fn built_in(name: &str) -> (&'static str, Validate) {
    match name {
        "secret" => (
            concat!(
                r"sk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_-]{20,}",
                r"|AKIA[0-9A-Z]{16}",
                r"|gh[pousr]_[A-Za-z0-9]{36,}",
                r"|github_pat_[A-Za-z0-9_]{22,}",
                r"|xox[abprs]-[A-Za-z0-9-]{10,}",
                r"|AIza[0-9A-Za-z_-]{35}",
                r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            ),
            |_| true,
        ),
        "email" => (
            r"[A-Za-z0-9_.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            |_| true,
        ),
        "iban" => (
            r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
            valid_iban,
        ),
        "credit_card" => (
            concat!(
                r"[0-9]{4}(?:[ -]?[0-9]{4}){3}",
                r"|[0-9]{4}[ -]?[0-9]{6}[ -]?[0-9]{5}",
                r"|[0-9]{13,19}",
            ),
            valid_card,
        ),
        "cn_id" => (r"[1-9][0-9]{16}[0-9Xx]", valid_cn_id),
        "ssn" => (r"[0-9]{3}-[0-9]{2}-[0-9]{4}", valid_ssn),
        "phone" => (
            concat!(
                r"\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,4}",
                r"|\([0-9]{3}\) ?[0-9]{3}[ .-][0-9]{4}",
                r"|[0-9]{3}[ .-][0-9]{3}[ .-][0-9]{4}",
                r"|1[3-9][0-9]{9}",
            ),
            valid_phone,
        ),
        "ip_address" => (
            r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}",
            valid_ipv4,
        ),
        _ => ("$^", |_| false),
    }
}

fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
}

fn valid_card(s: &str) -> bool {
    let d: Vec<u32> = digits(s).collect();
    // Issuer prefixes start 2–6 (Mastercard 2-series, Amex/Diners/JCB,
    // Visa, Mastercard, Discover/UnionPay): millisecond timestamps and most
    // internal ids do not.
    if !(13..=19).contains(&d.len()) || !(2..=6).contains(&d[0]) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn valid_iban(s: &str) -> bool {
    let c: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&c.len()) {
        return false;
    }
    // Move the first four characters to the end, letters → 10..35, mod 97.
    let mut rem = 0u32;
    for &b in c[4..].iter().chain(&c[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn valid_cn_id(s: &str) -> bool {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = s.as_bytes();
    if b.len() != 18 {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter()
            .fold(0, |acc, c| acc * 10 + u32::from(c.wrapping_sub(b'0')))
    };
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=2099).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(W)
        .map(|(c, w)| u32::from(c - b'0') * w)
        .sum();
    let want = CHECK[(sum % 11) as usize];
    b[17].to_ascii_uppercase() == want
}

fn valid_ssn(s: &str) -> bool {
    let area = &s[0..3];
    let group = &s[4..6];
    let serial = &s[7..11];
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

fn valid_phone(s: &str) -> bool {
    let n = digits(s).count();
    if s.starts_with('+') {
        (8..=15).contains(&n)
    } else {
        (10..=11).contains(&n)
    }
}

fn valid_ipv4(s: &str) -> bool {
    s.split('.')
        .all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255) && (o.len() == 1 || !o.starts_with('0')))
}

#[cfg(test)]
mod overlap_tests;
#[cfg(test)]
mod tests;
