//! Model prices, request cost, and worst-case token estimates.
//!
//! A bundled price table (`prices.json` in this directory, embedded with
//! `include_str!`, parsed once on first use) gives, per provider and model,
//! the list price in **USD per 1M tokens** for input, output and prompt-cache
//! reads, the cache-write rate where the provider bills one, optional
//! long-prompt [`Tier`]s, and the context window / max output tokens. Every
//! provider block in the file names its `source` and `as_of` date
//! ([`provider_info`]). Prices are list prices (no batch, priority, regional
//! or negotiated rates) and go stale: configuration can override them with a
//! [`Price`] and [`cost_with`].
//!
//! - [`lookup`] finds a model's [`ModelPrice`], tolerating dated suffixes,
//!   `models/` and vendor prefixes, and OpenAI-compatible hosts (see its
//!   docs for the exact rules).
//! - [`cost`] / [`cost_with`] price one request's [`Usage`] using the IR
//!   conventions (see [`cost_with`]).
//! - [`estimate_prompt_tokens`], [`estimate_tokens_of_bytes`] and
//!   [`max_output_tokens`] size worst-case reservations before a request is
//!   sent (budgets, rate limits, context-window fallback).
//!
//! Nothing here does I/O or panics; a table that failed to parse (it is
//! checked by the tests) behaves as an empty one.

mod estimate;
mod table;
#[cfg(test)]
mod tests;

pub use estimate::{
    estimate_prompt_tokens, estimate_tokens_of_bytes, max_output_tokens, DEFAULT_MAX_OUTPUT_TOKENS,
};
pub use table::{all, lookup, provider_info, ProviderInfo};

use crate::ir::Usage;

/// Per-token rates in USD per 1M tokens.
///
/// Usable on its own, e.g. for a price configured by the operator; the
/// bundled table's rates are in [`ModelPrice::price`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Uncached prompt tokens.
    pub input: f64,
    /// Generated tokens, reasoning included.
    pub output: f64,
    /// Prompt tokens read from the provider's cache. Providers without a
    /// cache discount have `cached_input == input`.
    pub cached_input: f64,
    /// Prompt tokens written to the cache (Anthropic's 5-minute write,
    /// Qwen's explicit cache). `None`: billed at `input`.
    pub cache_write: Option<f64>,
}

impl Price {
    /// A price with no cache discount (`cached_input = input`, no write rate).
    pub fn new(input: f64, output: f64) -> Self {
        Price {
            input,
            output,
            cached_input: input,
            cache_write: None,
        }
    }

    /// With a cache-read rate.
    pub fn with_cached_input(mut self, cached_input: f64) -> Self {
        self.cached_input = cached_input;
        self
    }

    /// With a cache-write rate.
    pub fn with_cache_write(mut self, cache_write: f64) -> Self {
        self.cache_write = Some(cache_write);
        self
    }
}

/// A long-prompt price tier.
///
/// Semantics (Gemini 2.5 Pro, Claude Sonnet 4/4.5 long context, GPT-5.4/5.5
/// long context, Grok 4.x, Qwen): when a request's prompt — the IR's
/// `input_tokens`, i.e. cached and cache-written tokens included — is
/// **strictly greater** than `above_tokens`, the **whole request** (all of
/// its input *and* output tokens) is billed at the tier's rates; it is not a
/// marginal bracket. With several tiers the highest one exceeded applies.
/// The cache-read and cache-write rates scale by the same factor as the
/// input rate (`tier.input / base.input`), which is how every provider in
/// the table prices them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier {
    pub above_tokens: u64,
    pub input: f64,
    pub output: f64,
}

/// One model's entry in the bundled price table.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    /// Table provider id (`openai`, `anthropic`, `gemini`, `deepseek`,
    /// `mistral`, `groq`, `qwen`, `moonshot`, `zhipu`, `xai`).
    pub provider: String,
    /// Canonical model id, e.g. `claude-sonnet-4-5` (no date suffix).
    pub model: String,
    /// Other ids billed identically (`mistral-large-latest`, …).
    pub aliases: Vec<String>,
    /// Base rates (prompts at or below every tier threshold).
    pub price: Price,
    /// Long-prompt tiers, ascending by `above_tokens`.
    pub tiers: Vec<Tier>,
    /// Total context window (prompt + output), when the source gives one.
    pub context_window: Option<u64>,
    /// Prompt limit when it is below the context window (GPT-5: 272k of 400k).
    pub max_input_tokens: Option<u64>,
    /// Maximum generated tokens per request (absent for embedding models).
    pub max_output_tokens: Option<u64>,
    /// `None` when served; `deprecated` (announced for retirement) or
    /// `retired` (kept for historic records).
    pub status: Option<String>,
}

impl ModelPrice {
    /// The rates that apply to a request whose prompt is `prompt_tokens`
    /// long (see [`Tier`]).
    pub fn price_for_prompt(&self, prompt_tokens: u64) -> Price {
        let base = self.price;
        let Some(tier) = self
            .tiers
            .iter()
            .filter(|t| prompt_tokens > t.above_tokens)
            .max_by_key(|t| t.above_tokens)
        else {
            return base;
        };
        let factor = if base.input > 0.0 {
            tier.input / base.input
        } else {
            1.0
        };
        Price {
            input: tier.input,
            output: tier.output,
            cached_input: base.cached_input * factor,
            cache_write: base.cache_write.map(|w| w * factor),
        }
    }

    /// The largest prompt the model accepts: `max_input_tokens`, else the
    /// context window.
    pub fn max_prompt_tokens(&self) -> Option<u64> {
        self.max_input_tokens.or(self.context_window)
    }
}

/// The USD cost of one request at the table's rates, long-prompt tiers
/// applied (see [`Tier`] and [`cost_with`]).
pub fn cost(price: &ModelPrice, usage: &Usage) -> f64 {
    cost_with(&price.price_for_prompt(usage.input_tokens), usage)
}

/// The USD cost of one request at the given rates (no tiers).
///
/// IR conventions (see `crate::ir`): `input_tokens` is the whole prompt,
/// with `cached_input_tokens` (cache reads, billed at `cached_input`) and
/// `cache_creation_input_tokens` (cache writes, billed at `cache_write`,
/// else at `input`) counted inside it; the rest is billed at `input`.
/// `output_tokens` already includes reasoning tokens and is billed at
/// `output`. Inconsistent usage (parts larger than the total) is clamped so
/// that no token is billed twice and none is negative.
pub fn cost_with(price: &Price, usage: &Usage) -> f64 {
    let input = usage.input_tokens;
    let cached = usage.cached_input_tokens.min(input);
    let written = usage.cache_creation_input_tokens.min(input - cached);
    let uncached = input - cached - written;
    let micro = uncached as f64 * price.input
        + cached as f64 * price.cached_input
        + written as f64 * price.cache_write.unwrap_or(price.input)
        + usage.output_tokens as f64 * price.output;
    micro / 1_000_000.0
}
