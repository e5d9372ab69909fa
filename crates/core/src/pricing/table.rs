//! The bundled table: parsing (once) and model-name resolution.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::{ModelPrice, Price, Tier};

const PRICES_JSON: &str = include_str!("prices.json");

/// Where one provider's figures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Table provider id (`openai`, `anthropic`, …).
    pub id: String,
    /// The pricing page(s) and open tables the figures were taken from.
    pub source: String,
    /// The date the figures were current (YYYY-MM-DD).
    pub as_of: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(rename = "_format")]
    _format: Option<String>,
    providers: Vec<RawProvider>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: String,
    source: String,
    as_of: String,
    models: Vec<RawModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    input: f64,
    output: f64,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    #[serde(default)]
    tiers: Vec<RawTier>,
    context_window: Option<u64>,
    max_input_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    above_tokens: u64,
    input: f64,
    output: f64,
}

struct ProviderTable {
    info: ProviderInfo,
    models: Vec<ModelPrice>,
    /// Lower-cased id or alias → index into `models`.
    index: HashMap<String, usize>,
}

#[derive(Default)]
struct Table {
    providers: Vec<ProviderTable>,
}

impl Table {
    fn provider(&self, id: &str) -> Option<&ProviderTable> {
        self.providers.iter().find(|p| p.info.id == id)
    }
}

fn parse(text: &str) -> Result<Table, serde_json::Error> {
    let raw: RawFile = serde_json::from_str(text)?;
    let providers = raw
        .providers
        .into_iter()
        .map(|p| {
            let mut models = Vec::with_capacity(p.models.len());
            let mut index = HashMap::new();
            for m in p.models {
                let i = models.len();
                index.insert(m.id.to_ascii_lowercase(), i);
                for a in &m.aliases {
                    index.insert(a.to_ascii_lowercase(), i);
                }
                let mut tiers: Vec<Tier> = m
                    .tiers
                    .iter()
                    .map(|t| Tier {
                        above_tokens: t.above_tokens,
                        input: t.input,
                        output: t.output,
                    })
                    .collect();
                tiers.sort_by_key(|t| t.above_tokens);
                models.push(ModelPrice {
                    provider: p.id.clone(),
                    model: m.id,
                    aliases: m.aliases,
                    price: Price {
                        input: m.input,
                        output: m.output,
                        cached_input: m.cached_input.unwrap_or(m.input),
                        cache_write: m.cache_write,
                    },
                    tiers,
                    context_window: m.context_window,
                    max_input_tokens: m.max_input_tokens,
                    max_output_tokens: m.max_output_tokens,
                    status: m.status,
                });
            }
            ProviderTable {
                info: ProviderInfo {
                    id: p.id,
                    source: p.source,
                    as_of: p.as_of,
                },
                models,
                index,
            }
        })
        .collect();
    Ok(Table { providers })
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| parse(PRICES_JSON).unwrap_or_default())
}

/// Whether the bundled table parsed (for tests).
#[cfg(test)]
pub(super) fn parse_bundled() -> Result<usize, serde_json::Error> {
    parse(PRICES_JSON).map(|t| t.providers.iter().map(|p| p.models.len()).sum())
}

/// The source and date of one table provider's figures.
pub fn provider_info(provider: &str) -> Option<&'static ProviderInfo> {
    table().provider(provider).map(|p| &p.info)
}

/// Every model in the table, provider by provider.
pub fn all() -> impl Iterator<Item = &'static ModelPrice> {
    table().providers.iter().flat_map(|p| p.models.iter())
}

/// The table provider whose prices a provider kind (or a vendor prefix in a
/// model name) bills at. `None` for aggregators, multi-vendor clouds and
/// self-hosted kinds (`openrouter`, `together`, `vertex`, `bedrock`, `vllm`,
/// …): their model names are resolved across the whole table instead.
fn table_provider(kind: &str) -> Option<&'static str> {
    let k = kind.trim().to_ascii_lowercase();
    Some(match k.as_str() {
        "openai" | "azure" | "azure_openai" | "azure-openai" => "openai",
        "anthropic" | "claude" => "anthropic",
        "gemini" | "google" | "google-ai-studio" => "gemini",
        "deepseek" | "deepseek-ai" => "deepseek",
        "mistral" | "mistralai" | "mistral-ai" => "mistral",
        "groq" => "groq",
        "qwen" | "alibaba" | "dashscope" => "qwen",
        "moonshot" | "moonshotai" | "kimi" => "moonshot",
        "zhipu" | "zhipuai" | "z-ai" | "zai" | "bigmodel" => "zhipu",
        "xai" | "x-ai" | "grok" => "xai",
        _ => return None,
    })
}

/// Order of the cross-provider search for hosts without their own prices.
const SEARCH_ORDER: &[&str] = &[
    "openai",
    "anthropic",
    "gemini",
    "xai",
    "deepseek",
    "mistral",
    "qwen",
    "moonshot",
    "zhipu",
    "groq",
];

/// Find a model's price.
///
/// `provider_kind` is the catalog kind of the upstream (`openai`, `azure`,
/// `openrouter`, …); `model` the upstream model name. Matching is
/// ASCII-case-insensitive and tries, in order:
///
/// 1. The name as given in the table of the provider the kind bills at
///    (`azure` → `openai`, `google` → `gemini`; Groq's own names such as
///    `openai/gpt-oss-120b` included), after dropping a `models/` prefix.
/// 2. Each `vendor/` prefix peeled off in turn (`openrouter` with
///    `openai/gpt-4o`, `gemini/gemini-2.5-pro`); a recognised vendor
///    (`openai`, `anthropic`, `google`, `x-ai`, `mistralai`, `qwen`,
///    `moonshotai`, `z-ai`, `deepseek`, …) selects that provider's table.
/// 3. Only for kinds without a table of their own (aggregators,
///    self-hosted, unknown) or when a vendor prefix was named: a search of
///    all tables by name.
///
/// In every table an exact id or alias wins; failing that, version-ish
/// suffixes are stripped one at a time and the name retried: `@…` (Vertex
/// `claude-sonnet-4-5@20250929`), `:…` (`:latest`, `:free`, Bedrock `:0`),
/// `-latest`, `-preview`, `-exp`, and trailing all-digit segments of two or
/// more digits (`-2024-08-06`, `-20250929`, `-0709`, `-001`, `-2411`). So
/// `gpt-4o-2024-08-06` → `gpt-4o`, while the separately priced
/// `gpt-4o-2024-05-13` keeps its own entry. Claude names written with dots
/// (`claude-sonnet-4.5`, OpenRouter style) are read with dashes.
///
/// Fine-tuned models named `ft:BASE:…` (OpenAI's
/// `ft:gpt-4o-2024-08-06:org::id` and `ft:gpt-4o-mini-2024-07-18:org:suffix:id`,
/// and Mistral's `ft:open-mistral-7b:…`) resolve to `BASE`'s entry: the base
/// model is unambiguous in that naming. Providers may bill fine-tuned
/// inference above the base rate; configure a deployment `price:` to be exact.
/// Other fine-tune namings (Azure deployment names, Gemini `tunedModels/…`,
/// hosted LoRA names) do not name a base and stay unpriced.
pub fn lookup(provider_kind: &str, model: &str) -> Option<&'static ModelPrice> {
    let t = table();
    let lowered = model.trim().to_ascii_lowercase();
    let mut name = lowered.strip_prefix("models/").unwrap_or(&lowered);
    let own = table_provider(provider_kind);
    if let Some(m) = own.and_then(|p| find_in(t, p, name)) {
        return Some(m);
    }
    let mut hinted = None;
    while let Some((head, rest)) = name.split_once('/') {
        if let Some(p) = table_provider(head) {
            hinted = Some(p);
        }
        name = rest.strip_prefix("models/").unwrap_or(rest);
        for p in [hinted, own].into_iter().flatten() {
            if let Some(m) = find_in(t, p, name) {
                return Some(m);
            }
        }
    }
    if own.is_some() && hinted.is_none() {
        return None;
    }
    SEARCH_ORDER.iter().find_map(|p| find_in(t, p, name))
}

/// Exact id/alias, then the name with version-ish suffixes stripped.
fn find_in(t: &'static Table, provider: &str, name: &str) -> Option<&'static ModelPrice> {
    let p = t.provider(provider)?;
    let get = |n: &str| p.index.get(n).and_then(|&i| p.models.get(i));
    let dashed;
    let mut n = fine_tune_base(name).unwrap_or(name);
    if provider == "anthropic" && n.starts_with("claude") && n.contains('.') {
        dashed = n.replace('.', "-");
        n = &dashed;
    }
    // Each step strips at least one character, so this terminates; the
    // bound is a belt-and-braces guard.
    for _ in 0..16 {
        if let Some(m) = get(n) {
            return Some(m);
        }
        n = strip_suffix(n)?;
    }
    None
}

/// `BASE` of a fine-tuned model named `ft:BASE:…` (or `ft:BASE`).
pub(super) fn fine_tune_base(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("ft:")?;
    let base = rest.split(':').next().unwrap_or_default();
    (!base.is_empty()).then_some(base)
}

/// One version-ish suffix off the end of `n`, or `None` when none is left.
fn strip_suffix(n: &str) -> Option<&str> {
    if let Some((head, _)) = n.split_once('@') {
        return Some(head);
    }
    if let Some((head, _)) = n.rsplit_once(':') {
        return Some(head);
    }
    for s in ["-latest", "-preview", "-exp"] {
        if let Some(head) = n.strip_suffix(s) {
            return Some(head);
        }
    }
    let (head, last) = n.rsplit_once('-')?;
    (last.len() >= 2 && last.bytes().all(|b| b.is_ascii_digit()) && !head.is_empty())
        .then_some(head)
}
