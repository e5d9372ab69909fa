use serde_json::{json, Value};

use super::*;
use crate::dialect::{anthropic, gemini, openai, Quirks};
use crate::ir::{
    ChatRequest, ContentPart, ImageSource, Message, ResponseFormat, Role, Tool, ToolCall, Usage,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn id(kind: &str, model: &str) -> Option<(String, String)> {
    lookup(kind, model).map(|m| (m.provider.clone(), m.model.clone()))
}

fn some(p: &str, m: &str) -> Option<(String, String)> {
    Some((p.to_owned(), m.to_owned()))
}

fn usage(input: u64, cached: u64, written: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        cache_creation_input_tokens: written,
        reasoning_tokens: 0,
    }
}

fn priced(kind: &str, model: &str) -> &'static ModelPrice {
    lookup(kind, model).unwrap_or_else(|| panic!("{kind}/{model} not in the table"))
}

// ---------------------------------------------------------------- the table

#[test]
fn bundled_table_parses_and_is_sane() {
    let n = table::parse_bundled().unwrap();
    assert!(n >= 100, "only {n} models");
    assert_eq!(all().count(), n);
    for p in [
        "openai",
        "anthropic",
        "gemini",
        "deepseek",
        "mistral",
        "groq",
        "qwen",
        "moonshot",
        "zhipu",
        "xai",
    ] {
        let info = provider_info(p).unwrap_or_else(|| panic!("no provider {p}"));
        assert!(info.source.starts_with("https://"), "{p}: {}", info.source);
        let d = info.as_of.as_bytes();
        assert!(
            d.len() == 10 && d[4] == b'-' && d[7] == b'-',
            "{p}: as_of {}",
            info.as_of
        );
        assert!(all().any(|m| m.provider == p));
    }
    for m in all() {
        let p = m.price;
        let what = format!("{}/{}", m.provider, m.model);
        assert!(p.input >= 0.0 && p.output >= 0.0, "{what}");
        assert!(p.cached_input <= p.input, "{what}: cache read above input");
        if let Some(w) = p.cache_write {
            assert!(w >= p.cached_input, "{what}");
        }
        assert!(
            m.tiers
                .windows(2)
                .all(|w| w[0].above_tokens < w[1].above_tokens),
            "{what}: tiers not ascending"
        );
        for t in &m.tiers {
            assert!(t.input >= p.input && t.output >= p.output, "{what}");
        }
        if let (Some(ctx), Some(out)) = (m.context_window, m.max_output_tokens) {
            assert!(out <= ctx, "{what}: max output above the context window");
        }
        if let Some(s) = &m.status {
            assert!(s == "deprecated" || s == "retired", "{what}: status {s}");
        }
    }
}

#[test]
fn ids_and_aliases_are_unique_per_provider() {
    let mut seen = std::collections::HashSet::new();
    for m in all() {
        for n in std::iter::once(&m.model).chain(&m.aliases) {
            assert!(
                seen.insert((m.provider.clone(), n.to_ascii_lowercase())),
                "{}/{n} listed twice",
                m.provider
            );
        }
    }
}

// ------------------------------------------------------------------ lookups

#[test]
fn exact_names() {
    assert_eq!(id("openai", "gpt-4o"), some("openai", "gpt-4o"));
    assert_eq!(id("openai", "gpt-4o-mini"), some("openai", "gpt-4o-mini"));
    assert_eq!(id("openai", "gpt-4.1-nano"), some("openai", "gpt-4.1-nano"));
    assert_eq!(id("openai", "o4-mini"), some("openai", "o4-mini"));
    assert_eq!(id("openai", "gpt-5-mini"), some("openai", "gpt-5-mini"));
    assert_eq!(
        id("openai", "text-embedding-3-small"),
        some("openai", "text-embedding-3-small")
    );
    assert_eq!(
        id("anthropic", "claude-haiku-4-5"),
        some("anthropic", "claude-haiku-4-5")
    );
    assert_eq!(
        id("gemini", "gemini-2.5-pro"),
        some("gemini", "gemini-2.5-pro")
    );
    assert_eq!(
        id("gemini", "gemini-embedding-001"),
        some("gemini", "gemini-embedding-001")
    );
    assert_eq!(
        id("deepseek", "deepseek-reasoner"),
        some("deepseek", "deepseek-reasoner")
    );
    assert_eq!(
        id("mistral", "codestral-latest"),
        some("mistral", "codestral")
    );
    assert_eq!(
        id("groq", "llama-3.3-70b-versatile"),
        some("groq", "llama-3.3-70b-versatile")
    );
    assert_eq!(id("qwen", "qwen-plus"), some("qwen", "qwen-plus"));
    assert_eq!(id("moonshot", "kimi-k2.6"), some("moonshot", "kimi-k2.6"));
    assert_eq!(id("zhipu", "GLM-4.6"), some("zhipu", "glm-4.6"));
    assert_eq!(
        id("xai", "grok-4.20"),
        some("xai", "grok-4.20-0309-reasoning")
    );
}

#[test]
fn dated_and_versioned_suffixes() {
    assert_eq!(id("openai", "gpt-4o-2024-08-06"), some("openai", "gpt-4o"));
    assert_eq!(id("openai", "gpt-4o-2024-11-20"), some("openai", "gpt-4o"));
    // Separately priced snapshot keeps its own entry.
    assert_eq!(
        id("openai", "gpt-4o-2024-05-13"),
        some("openai", "gpt-4o-2024-05-13")
    );
    assert_eq!(
        id("openai", "gpt-4o-mini-2024-07-18"),
        some("openai", "gpt-4o-mini")
    );
    assert_eq!(
        id("openai", "o3-mini-2025-01-31"),
        some("openai", "o3-mini")
    );
    assert_eq!(id("openai", "gpt-5-2025-08-07"), some("openai", "gpt-5"));
    assert_eq!(
        id("anthropic", "claude-sonnet-4-5-20250929"),
        some("anthropic", "claude-sonnet-4-5")
    );
    assert_eq!(
        id("anthropic", "claude-opus-4-1-20250805"),
        some("anthropic", "claude-opus-4-1")
    );
    assert_eq!(
        id("anthropic", "claude-sonnet-4-20250514"),
        some("anthropic", "claude-sonnet-4")
    );
    assert_eq!(
        id("anthropic", "claude-3-7-sonnet-latest"),
        some("anthropic", "claude-3-7-sonnet")
    );
    assert_eq!(
        id("anthropic", "claude-3-haiku-20240307"),
        some("anthropic", "claude-3-haiku")
    );
    assert_eq!(
        id("gemini", "gemini-2.5-flash-preview-05-20"),
        some("gemini", "gemini-2.5-flash")
    );
    assert_eq!(
        id("gemini", "gemini-2.0-flash-001"),
        some("gemini", "gemini-2.0-flash")
    );
    assert_eq!(id("xai", "grok-4-0709"), some("xai", "grok-4"));
    assert_eq!(id("qwen", "qwen-max-2025-01-25"), some("qwen", "qwen-max"));
    assert_eq!(
        id("mistral", "codestral-2508"),
        some("mistral", "codestral")
    );
    // Dated Mistral ids priced differently from `-latest` keep their entries.
    assert_eq!(
        id("mistral", "mistral-large-2411"),
        some("mistral", "mistral-large-2411")
    );
    assert_eq!(
        id("mistral", "mistral-large-2512"),
        some("mistral", "mistral-large")
    );
    // Vertex `@version`, Ollama/OpenRouter `:tag`.
    assert_eq!(
        id("vertex", "claude-sonnet-4-5@20250929"),
        some("anthropic", "claude-sonnet-4-5")
    );
    assert_eq!(
        id("openrouter", "deepseek/deepseek-chat:free"),
        some("deepseek", "deepseek-chat")
    );
}

#[test]
fn prefixes_and_compatible_hosts() {
    assert_eq!(
        id("gemini", "models/gemini-2.5-flash"),
        some("gemini", "gemini-2.5-flash")
    );
    assert_eq!(id("azure", "gpt-4o-mini"), some("openai", "gpt-4o-mini"));
    assert_eq!(id("openrouter", "openai/gpt-4o"), some("openai", "gpt-4o"));
    assert_eq!(
        id("openrouter", "anthropic/claude-sonnet-4.5"),
        some("anthropic", "claude-sonnet-4-5")
    );
    assert_eq!(
        id("openrouter", "google/gemini-2.5-pro"),
        some("gemini", "gemini-2.5-pro")
    );
    assert_eq!(id("openrouter", "x-ai/grok-4"), some("xai", "grok-4"));
    assert_eq!(
        id("openrouter", "moonshotai/kimi-k2-thinking"),
        some("moonshot", "kimi-k2-thinking")
    );
    assert_eq!(id("openrouter", "z-ai/glm-4.6"), some("zhipu", "glm-4.6"));
    assert_eq!(
        id("openrouter", "mistralai/mistral-small-latest"),
        some("mistral", "mistral-small")
    );
    assert_eq!(
        id("custom", "openrouter/openai/gpt-4.1"),
        some("openai", "gpt-4.1")
    );
    assert_eq!(
        id("gemini", "gemini/models/gemini-2.5-pro"),
        some("gemini", "gemini-2.5-pro")
    );
    // Groq's own namespaced ids are Groq's prices, not OpenAI's.
    assert_eq!(
        id("groq", "openai/gpt-oss-120b"),
        some("groq", "openai/gpt-oss-120b")
    );
    // Hosts without a table of their own: resolved by name.
    assert_eq!(id("together", "gpt-4o"), some("openai", "gpt-4o"));
    assert_eq!(
        id("", "claude-opus-4-5"),
        some("anthropic", "claude-opus-4-5")
    );
}

#[test]
fn unknown_names_and_foreign_models() {
    assert_eq!(id("openai", "no-such-model"), None);
    assert_eq!(id("openai", ""), None);
    assert_eq!(id("openrouter", "meta-llama/llama-3.3-70b-instruct"), None);
    // A first-party host is priced only from its own table.
    assert_eq!(id("openai", "claude-sonnet-4-5"), None);
    assert_eq!(id("deepseek", "gpt-4o"), None);
    // Retired Claude 3.5 Haiku is not in the table; no prefix fallback
    // to another model.
    assert_eq!(id("anthropic", "claude-3-5-haiku-20241022"), None);
    assert_eq!(id("openai", "gpt-4o-audio-preview"), None);
}

#[test]
fn fine_tuned_models_resolve_to_their_base() {
    // OpenAI: `ft:BASE:org::id` and `ft:BASE:org:suffix:id`.
    assert_eq!(
        id("openai", "ft:gpt-4o-2024-08-06:acme::abc123"),
        some("openai", "gpt-4o")
    );
    assert_eq!(
        id("openai", "ft:gpt-4o-mini-2024-07-18:acme:support-bot:9xYz"),
        some("openai", "gpt-4o-mini")
    );
    // The separately priced dated snapshot keeps its own entry.
    assert_eq!(
        id("openai", "ft:gpt-4o-2024-05-13:acme::x"),
        some("openai", "gpt-4o-2024-05-13")
    );
    // Azure bills at OpenAI's table; aggregators with a vendor prefix too.
    assert_eq!(
        id("azure", "FT:GPT-4O-2024-08-06:acme::abc123"),
        some("openai", "gpt-4o")
    );
    assert_eq!(
        id("openrouter", "openai/ft:gpt-4o-mini:acme::1"),
        some("openai", "gpt-4o-mini")
    );
    // Mistral's fine-tunes use the same `ft:BASE:…` form.
    assert_eq!(
        id(
            "mistral",
            "ft:mistral-large-2411:587a6b29:20240514:7e773925"
        ),
        some("mistral", "mistral-large-2411")
    );
    // No base, or an unknown base: unpriced (never a guess).
    assert_eq!(id("openai", "ft::acme::abc123"), None);
    assert_eq!(id("openai", "ft:"), None);
    assert_eq!(id("openai", "ft:totally-unknown-base:acme::abc"), None);
    assert_eq!(id("openai", "ft"), None);
}

#[test]
fn made_up_names_stay_unpriced() {
    for (kind, model) in [
        ("openai", "totally-unpriced-model"),
        ("anthropic", "claude-opus-9"),
        ("anthropic", "claude-opus-9-20990101"),
        ("openai", "gpt-99"),
        ("gemini", "gemini-99-ultra"),
        ("openrouter", "acme/secret-model"),
        ("openai", "ft:acme-model:x::y"),
    ] {
        assert_eq!(id(kind, model), None, "{kind}/{model}");
    }
}

// ------------------------------------------------------------------- costs

#[test]
fn openai_cost_with_cached_reads() {
    // 10k prompt of which 4k cached, 1k output (reasoning included).
    let p = priced("openai", "gpt-4o-2024-08-06");
    let c = cost(p, &usage(10_000, 4_000, 0, 1_000));
    // 6,000 × 2.50 + 4,000 × 1.25 + 1,000 × 10 = 30,000 µ$ → $0.03.
    assert!(close(c, 0.03), "{c}");
    // o4-mini with reasoning: output_tokens already includes them.
    let mut u = usage(2_000, 0, 0, 5_000);
    u.reasoning_tokens = 4_000;
    let c = cost(priced("openai", "o4-mini"), &u);
    // 2,000 × 1.1 + 5,000 × 4.4 = 24,200 µ$.
    assert!(close(c, 0.0242), "{c}");
}

#[test]
fn anthropic_cost_with_cache_reads_and_writes() {
    // 10k prompt: 2k uncached, 6k read from cache, 2k written; 500 output.
    let p = priced("anthropic", "claude-sonnet-4-5-20250929");
    let c = cost(p, &usage(10_000, 6_000, 2_000, 500));
    // 2,000 × 3 + 6,000 × 0.30 + 2,000 × 3.75 + 500 × 15 = 22,800 µ$.
    assert!(close(c, 0.0228), "{c}");
    let c = cost(
        priced("anthropic", "claude-haiku-4-5"),
        &usage(10_000, 6_000, 2_000, 500),
    );
    // 2,000 × 1 + 6,000 × 0.1 + 2,000 × 1.25 + 500 × 5 = 7,600 µ$.
    assert!(close(c, 0.0076), "{c}");
}

#[test]
fn gemini_deepseek_and_others_cost() {
    // Gemini 2.5 Flash: 100k prompt, 20k cached, 5k output.
    let c = cost(
        priced("gemini", "gemini-2.5-flash"),
        &usage(100_000, 20_000, 0, 5_000),
    );
    // 80,000 × 0.30 + 20,000 × 0.03 + 5,000 × 2.50 = 37,100 µ$.
    assert!(close(c, 0.0371), "{c}");
    // DeepSeek V4 Flash: 1M prompt, 900k cache hits, 100k output.
    let c = cost(
        priced("deepseek", "deepseek-v4-flash"),
        &usage(1_000_000, 900_000, 0, 100_000),
    );
    // 100,000 × 0.14 + 900,000 × 0.0028 + 100,000 × 0.28 = 44,520 µ$.
    assert!(close(c, 0.04452), "{c}");
    // Mistral Large (no cache discount): 1k in, 1k out.
    let c = cost(
        priced("mistral", "mistral-large-latest"),
        &usage(1_000, 0, 0, 1_000),
    );
    assert!(close(c, 0.002), "{c}");
    // Groq Llama 3.3 70B: 1M in, 1M out.
    let c = cost(
        priced("groq", "llama-3.3-70b-versatile"),
        &usage(1_000_000, 0, 0, 1_000_000),
    );
    assert!(close(c, 1.38), "{c}");
    // Kimi K2.6: 10k prompt, 8k cached, 1k output.
    let c = cost(
        priced("moonshot", "kimi-k2.6"),
        &usage(10_000, 8_000, 0, 1_000),
    );
    // 2,000 × 0.95 + 8,000 × 0.16 + 1,000 × 4 = 7,180 µ$.
    assert!(close(c, 0.00718), "{c}");
    // GLM-4.6 and Grok 4.3 (below its tier).
    let c = cost(priced("zhipu", "glm-4.6"), &usage(10_000, 0, 0, 1_000));
    assert!(close(c, 0.0082), "{c}");
    let c = cost(priced("xai", "grok-4.3"), &usage(10_000, 2_000, 0, 1_000));
    // 8,000 × 1.25 + 2,000 × 0.2 + 1,000 × 2.5 = 12,900 µ$.
    assert!(close(c, 0.0129), "{c}");
    // Embeddings: input only.
    let c = cost(
        priced("openai", "text-embedding-3-small"),
        &usage(1_000_000, 0, 0, 0),
    );
    assert!(close(c, 0.02), "{c}");
}

#[test]
fn cost_with_configured_price() {
    let p = Price::new(1.0, 2.0);
    assert_eq!(p.cached_input, 1.0);
    // Unknown cache-write rate: written tokens billed at the input rate.
    let c = cost_with(&p, &usage(3_000, 0, 1_000, 1_000));
    assert!(close(c, 0.005), "{c}");
    let p = Price::new(1.0, 2.0)
        .with_cached_input(0.1)
        .with_cache_write(1.25);
    let c = cost_with(&p, &usage(3_000, 1_000, 1_000, 1_000));
    // 1,000 × 1 + 1,000 × 0.1 + 1,000 × 1.25 + 1,000 × 2 = 4,350 µ$.
    assert!(close(c, 0.00435), "{c}");
    // Inconsistent usage is clamped: nothing negative, nothing twice.
    let c = cost_with(&p, &usage(1_000, 5_000, 5_000, 0));
    assert!(close(c, 0.0001), "{c}");
    assert_eq!(cost_with(&p, &Usage::default()), 0.0);
}

#[test]
fn long_prompt_tiers() {
    let p = priced("gemini", "gemini-2.5-pro");
    // Exactly at the threshold: base rates.
    let c = cost(p, &usage(200_000, 0, 0, 10_000));
    // 200,000 × 1.25 + 10,000 × 10 = 350,000 µ$.
    assert!(close(c, 0.35), "{c}");
    // Above it: the whole request at the tier's rates, cache read scaled.
    let c = cost(p, &usage(250_000, 50_000, 0, 10_000));
    // 200,000 × 2.50 + 50,000 × 0.25 + 10,000 × 15 = 662,500 µ$.
    assert!(close(c, 0.6625), "{c}");
    assert_eq!(p.price_for_prompt(200_000), p.price);
    let t = p.price_for_prompt(200_001);
    assert!(close(t.input, 2.5) && close(t.output, 15.0) && close(t.cached_input, 0.25));

    // Claude Sonnet 4.5 long context: cache write scales too (3.75 → 7.5).
    let p = priced("anthropic", "claude-sonnet-4-5");
    let t = p.price_for_prompt(300_000);
    assert!(close(t.input, 6.0) && close(t.output, 22.5));
    assert!(close(t.cached_input, 0.6) && close(t.cache_write.unwrap(), 7.5));
    let c = cost(p, &usage(300_000, 100_000, 100_000, 1_000));
    // 100,000 × 6 + 100,000 × 0.6 + 100,000 × 7.5 + 1,000 × 22.5.
    assert!(close(c, 1.4325), "{c}");

    // Several tiers: the highest one exceeded applies.
    let p = priced("qwen", "qwen3-max");
    assert!(close(p.price_for_prompt(10_000).input, 1.2));
    assert!(close(p.price_for_prompt(100_000).input, 2.4));
    assert!(close(p.price_for_prompt(200_000).output, 15.0));

    // Untiered models are flat.
    let p = priced("openai", "gpt-4.1");
    assert_eq!(p.price_for_prompt(1_000_000), p.price);
}

#[test]
fn limits_and_max_output() {
    let p = priced("openai", "gpt-5");
    assert_eq!(p.context_window, Some(400_000));
    assert_eq!(p.max_prompt_tokens(), Some(272_000));
    assert_eq!(p.max_output_tokens, Some(128_000));
    let c = priced("anthropic", "claude-opus-4-1");
    assert_eq!(c.max_prompt_tokens(), Some(200_000));

    assert_eq!(max_output_tokens(Some(100), Some(p)), 100);
    assert_eq!(max_output_tokens(None, Some(p)), 128_000);
    assert_eq!(max_output_tokens(None, None), 4096);
    let e = priced("openai", "text-embedding-3-large");
    assert_eq!(max_output_tokens(None, Some(e)), DEFAULT_MAX_OUTPUT_TOKENS);
}

// --------------------------------------------------------------- estimates

/// The mock's `count_tokens`: ceil(chars / 4).
fn mock_count(s: &str) -> u64 {
    (s.chars().count() as u64).div_ceil(4)
}

/// The mock's per-message text: parts joined by newlines, skipping the
/// separator while nothing was collected yet.
fn join(acc: &mut String, t: &str) {
    if !acc.is_empty() {
        acc.push('\n');
    }
    acc.push_str(t);
}

fn msg(text: &str, images: u64) -> u64 {
    mock_count(text) + 4 + 85 * images
}

/// The OpenAI mock's input count for an encoded Chat Completions body.
fn mock_openai(body: &Value) -> u64 {
    let mut n = 0;
    for m in body["messages"].as_array().unwrap() {
        let (mut text, mut images) = (String::new(), 0);
        match &m["content"] {
            Value::String(s) => text.push_str(s),
            Value::Array(parts) => {
                for p in parts {
                    match p["type"].as_str() {
                        Some("text") => join(&mut text, p["text"].as_str().unwrap()),
                        Some("image_url") => images += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        n += msg(&text, images);
    }
    if let Some(t) = body.get("tools") {
        n += mock_count(&t.to_string());
    }
    n
}

/// The Anthropic mock's input count for an encoded Messages body.
fn mock_anthropic(body: &Value) -> u64 {
    let mut n = 0;
    let mut system = String::new();
    match &body["system"] {
        Value::String(s) => system.push_str(s),
        Value::Array(blocks) => {
            for b in blocks {
                system.push_str(b["text"].as_str().unwrap());
            }
        }
        _ => {}
    }
    if !system.is_empty() {
        n += msg(&system, 0);
    }
    if let Some(t) = body.get("tools") {
        n += mock_count(&t.to_string());
    }
    for m in body["messages"].as_array().unwrap() {
        let (mut text, mut images) = (String::new(), 0);
        match &m["content"] {
            Value::String(s) => text.push_str(s),
            Value::Array(blocks) => {
                for b in blocks {
                    match b["type"].as_str() {
                        Some("text") => join(&mut text, b["text"].as_str().unwrap()),
                        Some("image") => images += 1,
                        Some("tool_result") => {
                            if let Value::Array(inner) = &b["content"] {
                                images +=
                                    inner.iter().filter(|x| x["type"] == "image").count() as u64;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        n += msg(&text, images);
    }
    n
}

/// The Gemini mock's input count for an encoded generateContent body.
fn mock_gemini(body: &Value) -> u64 {
    let get = |a: &str, b: &str| body.get(a).or_else(|| body.get(b)).cloned();
    let mut n = 0;
    let parts_text = |c: &Value| {
        let (mut text, mut images) = (String::new(), 0);
        for p in c["parts"].as_array().into_iter().flatten() {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                if !text.is_empty() && !t.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
            for key in ["inline_data", "inlineData", "file_data", "fileData"] {
                if let Some(d) = p.get(key) {
                    let mime = d
                        .get("mime_type")
                        .or_else(|| d.get("mimeType"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if mime.starts_with("image/") {
                        images += 1;
                    }
                }
            }
        }
        (text, images)
    };
    if let Some(si) = get("system_instruction", "systemInstruction") {
        let (text, _) = parts_text(&si);
        n += msg(&text, 0);
    }
    if let Some(t) = body.get("tools") {
        n += mock_count(&t.to_string());
    }
    for c in body["contents"].as_array().unwrap() {
        let (text, images) = parts_text(c);
        n += msg(&text, images);
    }
    n
}

/// The mock formula computed straight from the IR (each message's text
/// parts joined by newlines), without tools.
fn mock_ir(req: &ChatRequest) -> u64 {
    req.messages
        .iter()
        .map(|m| {
            let mut text = String::new();
            let mut images = 0;
            for p in &m.content {
                match p {
                    ContentPart::Text(t) => join(&mut text, t),
                    ContentPart::Image { .. } => images += 1,
                    _ => {}
                }
            }
            msg(&text, images)
        })
        .sum()
}

fn text_msg(role: Role, text: &str) -> Message {
    Message::new(role, vec![ContentPart::text(text)])
}

fn image(detail: Option<&str>, inline: bool) -> ContentPart {
    let source = if inline {
        ImageSource::Base64 {
            media_type: "image/png".into(),
            data: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==".into(),
        }
    } else {
        ImageSource::Url("https://example.com/cat.png".into())
    };
    ContentPart::Image {
        source,
        detail: detail.map(str::to_owned),
    }
}

fn weather_tool() -> Tool {
    Tool {
        name: "get_weather".into(),
        description: Some("Get the \"current\" weather\nfor a city — in °C.".into()),
        parameters: json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            },
            "required": ["city"],
            "additionalProperties": false
        }),
        strict: Some(true),
    }
}

fn varied_requests() -> Vec<ChatRequest> {
    let base = |messages: Vec<Message>| ChatRequest {
        model: "m".into(),
        messages,
        max_tokens: Some(256),
        ..ChatRequest::default()
    };
    // 1. Minimal.
    let mut out = vec![base(vec![text_msg(Role::User, "Hi")])];

    // 2. System + long English text.
    out.push(base(vec![
        text_msg(
            Role::System,
            "You are a terse assistant. Answer in one line.",
        ),
        text_msg(
            Role::User,
            &"The quick brown fox jumps over the lazy dog. ".repeat(200),
        ),
    ]));

    // 3. Multi-part user turn with images of every detail, URL and inline.
    out.push(base(vec![Message::new(
        Role::User,
        vec![
            ContentPart::text("Compare these pictures:"),
            image(Some("low"), false),
            image(Some("high"), true),
            ContentPart::text("and this one"),
            image(None, true),
            image(Some("auto"), false),
        ],
    )]));

    // 4. Non-Latin text and emoji, several short parts (ceil per part).
    out.push(base(vec![
        text_msg(Role::System, "Réponds en français, s'il te plaît."),
        Message::new(
            Role::User,
            vec![
                ContentPart::text("日本語のテキストを要約してください。東京は日本の首都です。"),
                ContentPart::text("a"),
                ContentPart::text("b"),
                ContentPart::text("😀🎉🚀 Привет, мир! مرحبا"),
            ],
        ),
    ]));

    // 5. Tools, an assistant tool call, its result and a follow-up.
    let mut call = Message::new(Role::Assistant, vec![ContentPart::text("Let me check.")]);
    call.tool_calls.push(ToolCall {
        id: "call_abc123".into(),
        name: "get_weather".into(),
        arguments: r#"{"city":"Paris","unit":"celsius"}"#.into(),
    });
    let mut result = text_msg(Role::Tool, r#"{"temp": 21, "sky": "clear"}"#);
    result.tool_call_id = Some("call_abc123".into());
    let mut req = base(vec![
        text_msg(Role::System, "Use tools when helpful."),
        text_msg(Role::User, "What's the weather in Paris?"),
        call,
        result,
        text_msg(Role::User, "Thanks! And tomorrow?"),
    ]);
    req.tools = vec![
        weather_tool(),
        Tool {
            name: "noop".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {}}),
            strict: None,
        },
        Tool {
            name: "search".into(),
            description: Some("Search the web".into()),
            parameters: json!({
                "type": "object",
                "properties": {"q": {"type": "string"}, "n": {"type": "integer", "minimum": 1}},
                "required": ["q"]
            }),
            strict: None,
        },
    ];
    out.push(req);

    // 6. Developer role, named user, multi-turn, JSON-schema output.
    let mut named = text_msg(Role::User, "List three colours.");
    named.name = Some("alice".into());
    let mut req = base(vec![
        text_msg(Role::Developer, "Always answer with JSON."),
        named,
        text_msg(Role::Assistant, r#"{"colours":["red","green","blue"]}"#),
        text_msg(Role::User, "Now three fruits."),
    ]);
    req.response_format = Some(ResponseFormat::JsonSchema {
        name: "list".into(),
        description: None,
        schema: json!({"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}}}),
        strict: Some(true),
    });
    out.push(req);

    // 7. Many tiny messages (per-message overhead dominates).
    let mut msgs = Vec::new();
    for i in 0..40 {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        msgs.push(text_msg(role, &"x".repeat(i % 5 + 1)));
    }
    out.push(base(msgs));

    out
}

#[test]
fn estimate_never_below_the_mock_count() {
    type Encoded = Result<Vec<u8>, crate::ir::ApiError>;
    type MockCount = fn(&Value) -> u64;
    let q = Quirks::default();
    for (i, req) in varied_requests().iter().enumerate() {
        let est = estimate_prompt_tokens(req);
        let ir = mock_ir(req);
        assert!(
            est >= ir,
            "request {i}: estimate {est} < IR mock count {ir}"
        );

        let mut checked = 0;
        let bodies: [(&str, Encoded, MockCount); 3] = [
            ("openai", openai::encode_request(req, "m", &q), mock_openai),
            (
                "anthropic",
                anthropic::encode_request(req, "m", &q),
                mock_anthropic,
            ),
            ("gemini", gemini::encode_request(req, &q), mock_gemini),
        ];
        for (dialect, body, count) in bodies {
            let body = body.unwrap_or_else(|e| panic!("request {i}: {dialect}: {e}"));
            let v: Value = serde_json::from_slice(&body).unwrap();
            let mock = count(&v);
            assert!(
                est >= mock,
                "request {i}: estimate {est} < {dialect} mock count {mock}"
            );
            // The pass-through estimate covers it too, except for images
            // by URL (documented).
            let has_url_image = req.messages.iter().any(|m| {
                m.content.iter().any(|p| {
                    matches!(
                        p,
                        ContentPart::Image {
                            source: ImageSource::Url(_),
                            ..
                        }
                    )
                })
            });
            if !has_url_image {
                let by_bytes = estimate_tokens_of_bytes(body.len());
                assert!(
                    by_bytes >= mock,
                    "request {i}: {dialect}: bytes/3 {by_bytes} < mock {mock}"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 3);
    }
}

#[test]
fn estimate_shape() {
    // Empty request: just the reply priming.
    assert_eq!(estimate_prompt_tokens(&ChatRequest::default()), 3);
    // "Hi": 3 + 4 + ceil(2/4) + 1.
    let req = ChatRequest {
        messages: vec![text_msg(Role::User, "Hi")],
        ..ChatRequest::default()
    };
    assert_eq!(estimate_prompt_tokens(&req), 9);
    // Images: 85 at low detail, 1,600 otherwise.
    let with = |detail: Option<&str>| ChatRequest {
        messages: vec![Message::new(Role::User, vec![image(detail, false)])],
        ..ChatRequest::default()
    };
    assert_eq!(estimate_prompt_tokens(&with(Some("low"))), 3 + 4 + 85);
    assert_eq!(estimate_prompt_tokens(&with(Some("high"))), 3 + 4 + 1_600);
    assert_eq!(estimate_prompt_tokens(&with(None)), 3 + 4 + 1_600);
    // CJK counts one token per character.
    let cjk = ChatRequest {
        messages: vec![text_msg(Role::User, "東京都")],
        ..ChatRequest::default()
    };
    assert_eq!(estimate_prompt_tokens(&cjk), 3 + 4 + 3 + 1);
    // Tools add their JSON size.
    let mut tooled = req.clone();
    tooled.tools = vec![weather_tool()];
    let schema_chars = weather_tool().parameters.to_string().len() as u64;
    assert!(estimate_prompt_tokens(&tooled) >= 9 + schema_chars / 4);

    assert_eq!(estimate_tokens_of_bytes(0), 0);
    assert_eq!(estimate_tokens_of_bytes(1), 1);
    assert_eq!(estimate_tokens_of_bytes(3_000), 1_000);
    assert_eq!(estimate_tokens_of_bytes(3_001), 1_001);
}
