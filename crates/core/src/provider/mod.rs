//! Providers: the built-in catalog of presets and a resolved [`Provider`]
//! that knows how to address and authenticate requests to one upstream.

mod catalog;

pub use catalog::{preset, presets, AuthStyle, PathStyle, Preset};

use crate::dialect::{Dialect, Quirks};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A secret string (API key) that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is sent upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Per-provider timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// From sending the request to the response headers (non-streaming: to
    /// the whole body) — for streams, to the first event.
    pub first_byte: Duration,
    /// Longest gap between two stream chunks.
    pub idle: Duration,
    /// Whole request, stream included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// A configured provider, ready to address requests.
#[derive(Debug)]
pub struct Provider {
    /// The name in the config file (`providers.<name>`).
    pub name: String,
    pub preset: &'static Preset,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Keys, rotated round-robin. Empty when the provider needs none.
    pub keys: Vec<Secret>,
    pub headers: Vec<(String, String)>,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    pub quirks: Quirks,
    pub timeouts: Timeouts,
    /// Label shown in listings ("demo" for the built-in mocks).
    pub label: Option<String>,
    /// The operator's price for this provider's models that have neither a
    /// deployment price nor an entry in the bundled table
    /// (`providers.NAME.default_price`).
    pub default_price: Option<crate::pricing::Price>,
    next_key: AtomicUsize,
    /// Per key: until when (ms since `epoch`) it is out of rotation.
    key_disabled_until: Vec<AtomicU64>,
    epoch: std::time::Instant,
    /// Set by active health checks; passive health is the breakers' job.
    healthy: AtomicBool,
    /// Upstream headers per key (index = key index), and without a key.
    prepared: Vec<http::HeaderMap>,
    no_key: http::HeaderMap,
}

/// How long a key that got 401/403 stays out of rotation before it is
/// tried again (keys get fixed; a permanent ban would need a restart).
pub const KEY_QUARANTINE: Duration = Duration::from_secs(600);

/// One key handed out for one request: its index lets the caller report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef(pub usize);

/// Default Azure OpenAI data-plane API version.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

impl Provider {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        preset: &'static Preset,
        base_url: String,
        keys: Vec<Secret>,
        headers: Vec<(String, String)>,
        api_version: Option<String>,
        timeouts: Timeouts,
    ) -> Self {
        let prepared = keys
            .iter()
            .map(|k| Self::prepare(preset, &headers, Some(k)))
            .collect();
        let no_key = Self::prepare(preset, &headers, None);
        Provider {
            name,
            preset,
            base_url: base_url.trim_end_matches('/').to_owned(),
            headers,
            api_version,
            quirks: preset.quirks.clone(),
            timeouts,
            label: None,
            default_price: None,
            next_key: AtomicUsize::new(0),
            key_disabled_until: keys.iter().map(|_| AtomicU64::new(0)).collect(),
            prepared,
            no_key,
            keys,
            epoch: std::time::Instant::now(),
            healthy: AtomicBool::new(true),
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.preset.dialect
    }

    /// Why `name` cannot be this provider's upstream model name (`None`
    /// when it can). Where the name goes into the URL path (Gemini's
    /// `models/{model}:generateContent`, Azure's `deployments/{name}/…`) it
    /// must be one path segment of plain id characters, `A-Z a-z 0-9 - _ .`
    /// and not `.` or `..` (Gemini also takes the `models/` prefix), or it
    /// would reach another resource or method (`a/b/c`, `x:streamGenerateContent`,
    /// `%2e%2e`, `?`, `#`). Where it travels in the JSON body, any text
    /// without control characters. Never empty, at most 256 bytes.
    pub fn model_name_problem(&self, name: &str) -> Option<&'static str> {
        if name.is_empty() {
            return Some("the name is empty");
        }
        if name.len() > 256 {
            return Some("the name is longer than 256 bytes");
        }
        let segment = match self.preset.path_style {
            PathStyle::OpenAi | PathStyle::Anthropic => {
                return name
                    .chars()
                    .any(char::is_control)
                    .then_some("the name holds control characters");
            }
            PathStyle::Gemini => gemini_model(name),
            PathStyle::AzureDeployment => name,
        };
        if segment.is_empty() || segment == "." || segment == ".." {
            return Some("the name must be one plain URL path segment");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Some(match self.preset.path_style {
                PathStyle::Gemini => "a Gemini model id is letters, digits, `-`, `_` and `.` (optionally after `models/`): it goes into the URL path `models/{model}:generateContent`",
                _ => "an Azure deployment name is letters, digits, `-`, `_` and `.`: it goes into the URL path `deployments/{name}/…`",
            });
        }
        None
    }

    /// URL for a chat request.
    pub fn chat_url(&self, upstream_model: &str, stream: bool) -> String {
        match self.preset.path_style {
            PathStyle::OpenAi => format!("{}/chat/completions", self.base_url),
            PathStyle::AzureDeployment => format!(
                "{}/openai/deployments/{}/chat/completions?api-version={}",
                self.base_url,
                upstream_model,
                self.api_version
                    .as_deref()
                    .unwrap_or(AZURE_DEFAULT_API_VERSION)
            ),
            PathStyle::Anthropic => format!("{}/v1/messages", self.base_url),
            PathStyle::Gemini => {
                let m = gemini_model(upstream_model);
                if stream {
                    format!("{}/models/{m}:streamGenerateContent?alt=sse", self.base_url)
                } else {
                    format!("{}/models/{m}:generateContent", self.base_url)
                }
            }
        }
    }

    /// URL for an embeddings request, when the provider has one.
    pub fn embeddings_url(&self, upstream_model: &str) -> Option<String> {
        if !self.preset.embeddings {
            return None;
        }
        Some(match self.preset.path_style {
            PathStyle::OpenAi => format!("{}/embeddings", self.base_url),
            PathStyle::AzureDeployment => format!(
                "{}/openai/deployments/{}/embeddings?api-version={}",
                self.base_url,
                upstream_model,
                self.api_version
                    .as_deref()
                    .unwrap_or(AZURE_DEFAULT_API_VERSION)
            ),
            PathStyle::Anthropic => return None,
            PathStyle::Gemini => {
                format!(
                    "{}/models/{}:batchEmbedContents",
                    self.base_url,
                    gemini_model(upstream_model)
                )
            }
        })
    }

    /// The next API key in rotation, skipping quarantined keys (unless all
    /// are quarantined: then plain round-robin, so requests still carry a key).
    pub fn key(&self) -> Option<(KeyRef, &Secret)> {
        let n = self.keys.len();
        if n == 0 {
            return None;
        }
        let start = self.next_key.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        for i in 0..n {
            let idx = (start + i) % n;
            if self
                .key_disabled_until
                .get(idx)
                .map_or(0, |a| a.load(Ordering::Relaxed))
                <= now
            {
                return self.keys.get(idx).map(|k| (KeyRef(idx), k));
            }
        }
        self.keys.get(start % n).map(|k| (KeyRef(start % n), k))
    }

    /// Take a key out of rotation (the upstream answered 401/403 with it).
    /// Returns false if it was already out.
    pub fn quarantine_key(&self, k: KeyRef) -> bool {
        let until = self.now_ms() + KEY_QUARANTINE.as_millis() as u64;
        match self.key_disabled_until.get(k.0) {
            Some(a) => a.swap(until, Ordering::Relaxed) <= self.now_ms(),
            None => false,
        }
    }

    /// How many keys are currently in rotation.
    pub fn keys_in_rotation(&self) -> usize {
        let now = self.now_ms();
        self.key_disabled_until
            .iter()
            .filter(|a| a.load(Ordering::Relaxed) <= now)
            .count()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Active health-check verdict (true until a checker says otherwise).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Every header an upstream request carries — auth (with the key used),
    /// preset defaults, configured extras (which win) — prepared once per
    /// key, so a request only clones a small map.
    pub fn request_headers(&self) -> (&http::HeaderMap, Option<KeyRef>) {
        match self.key() {
            Some((r, _)) => (self.prepared.get(r.0).unwrap_or(&self.no_key), Some(r)),
            None => (&self.no_key, None),
        }
    }

    fn prepare(
        preset: &Preset,
        extra: &[(String, String)],
        key: Option<&Secret>,
    ) -> http::HeaderMap {
        use http::header::{HeaderName, HeaderValue};
        let mut m = http::HeaderMap::new();
        if let Some(k) = key {
            let (name, value) = match preset.auth {
                AuthStyle::Bearer => (
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", k.expose()),
                ),
                AuthStyle::Header(h) => match HeaderName::from_bytes(h.as_bytes()) {
                    Ok(n) => (n, k.expose().to_owned()),
                    Err(_) => return m,
                },
            };
            if let Ok(mut v) = HeaderValue::from_str(&value) {
                v.set_sensitive(true);
                m.insert(name, v);
            }
        }
        for (k, v) in preset.default_headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                m.insert(n, v);
            }
        }
        for (k, v) in extra {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                m.insert(n, v);
            }
        }
        m
    }

    /// URL for the provider's model list (used by active health checks).
    pub fn models_url(&self) -> String {
        match self.preset.path_style {
            PathStyle::OpenAi | PathStyle::Gemini => format!("{}/models", self.base_url),
            PathStyle::AzureDeployment => format!(
                "{}/openai/models?api-version={}",
                self.base_url,
                self.api_version
                    .as_deref()
                    .unwrap_or(AZURE_DEFAULT_API_VERSION)
            ),
            PathStyle::Anthropic => format!("{}/v1/models", self.base_url),
        }
    }

    /// True when a same-dialect request can be forwarded as bytes.
    pub fn passthrough_ok(&self) -> bool {
        self.quirks.is_passthrough()
    }
}

/// Gemini model ids may be given with or without the `models/` prefix.
fn gemini_model(m: &str) -> &str {
    m.strip_prefix("models/").unwrap_or(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(kind: &str, base: &str, keys: &[&str]) -> Provider {
        Provider::new(
            kind.into(),
            preset(kind).unwrap(),
            base.into(),
            keys.iter().map(|k| Secret::new(*k)).collect(),
            vec![("x-extra".into(), "1".into())],
            None,
            Timeouts::default(),
        )
    }

    #[test]
    fn azure_uses_deployment_paths_api_version_and_api_key_header() {
        let p = provider("azure", "https://res.openai.azure.com/", &["k1"]);
        assert_eq!(
            p.chat_url("my-gpt4o", true),
            "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            p.embeddings_url("emb").unwrap(),
            "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21"
        );
        let h = p.request_headers().0;
        assert_eq!(h["api-key"], "k1");
        assert!(h.get("authorization").is_none());
        assert_eq!(h["x-extra"], "1");
    }

    #[test]
    fn model_names_stay_in_their_url_segment() {
        let p = |kind| {
            Provider::new(
                "p".into(),
                preset(kind).unwrap(),
                "https://x".into(),
                vec![],
                vec![],
                None,
                Default::default(),
            )
        };
        let (g, az, o, a) = (p("gemini"), p("azure"), p("openai"), p("anthropic"));
        for ok in [
            "gemini-2.5-flash",
            "models/gemini-2.5-flash",
            "text-embedding-004",
            "gemma_3.1",
        ] {
            assert_eq!(g.model_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "models/",
            "a/b/c",
            "models/a/b/c",
            "x:streamGenerateContent",
            "gemini-2.5-flash:streamGenerateContent:generateContent",
            "..",
            "models/..",
            "%2e%2e",
            "a?b",
            "a#b",
            "a b",
            "a\tb",
            "tunedModels/x",
        ] {
            assert!(g.model_name_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(az.model_name_problem("my-gpt4o.v2_1"), None);
        for bad in ["a/b", "../files", "x?api-version=1", "d:x", "models/x"] {
            assert!(az.model_name_problem(bad).is_some(), "{bad:?}");
        }
        // In the body any text goes, but not control characters.
        for ok in [
            "ft:gpt-4o-2024-08-06:acme::abc123",
            "openai/gpt-4o",
            "a b?#%",
        ] {
            assert_eq!(o.model_name_problem(ok), None, "{ok}");
            assert_eq!(a.model_name_problem(ok), None, "{ok}");
        }
        assert!(o.model_name_problem("a\nb").is_some());
        assert!(o.model_name_problem(&"x".repeat(257)).is_some());
    }

    #[test]
    fn urls_and_auth_per_dialect() {
        let a = provider("anthropic", "https://api.anthropic.com", &["ak"]);
        assert_eq!(
            a.chat_url("claude", true),
            "https://api.anthropic.com/v1/messages"
        );
        assert!(a.embeddings_url("x").is_none());
        let h = a.request_headers().0;
        assert_eq!(h["x-api-key"], "ak");
        assert_eq!(h["anthropic-version"], "2023-06-01");
        let g = provider(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            &["gk"],
        );
        assert_eq!(
            g.chat_url("models/gemini-2.5-flash", true),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(g.request_headers().0["x-goog-api-key"], "gk");
        let d = provider("deepseek", "https://api.deepseek.com", &["dk"]);
        assert_eq!(
            d.chat_url("deepseek-chat", false),
            "https://api.deepseek.com/chat/completions"
        );
        assert_eq!(d.request_headers().0["authorization"], "Bearer dk");
    }

    #[test]
    fn keys_rotate_round_robin_and_never_print() {
        let p = provider("openai", "https://api.openai.com/v1", &["a", "b"]);
        let seen: Vec<String> = (0..4)
            .map(|_| p.key().unwrap().1.expose().to_owned())
            .collect();
        assert_eq!(seen, ["a", "b", "a", "b"]);
        assert!(!format!("{p:?}").contains("\"a\""));
        // A refused key leaves the rotation.
        assert!(p.quarantine_key(KeyRef(0)));
        assert!(!p.quarantine_key(KeyRef(0)));
        assert_eq!(p.keys_in_rotation(), 1);
        let seen: Vec<String> = (0..3)
            .map(|_| p.key().unwrap().1.expose().to_owned())
            .collect();
        assert_eq!(seen, ["b", "b", "b"]);
    }
}
