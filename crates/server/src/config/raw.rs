//! The config file as written: serde types with `deny_unknown_fields`, no
//! interpretation. `super::validate` turns this into a runtime `Config`.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    #[serde(default)]
    pub routing: RawRouting,
    #[serde(default)]
    pub reliability: RawReliability,
    #[serde(default)]
    pub governance: RawGovernance,
    #[serde(default)]
    pub guardrails: RawGuardrails,
    pub cache: Option<RawCache>,
}

/// Checks applied to request content before it leaves the gateway.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrails {
    pub pii: Option<RawPii>,
}

/// Personal-data detection in prompts and embedding inputs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPii {
    /// Default true when the section is present.
    pub enabled: Option<bool>,
    /// `mask` (default) or `block`: what a match does.
    pub action: Option<String>,
    /// Built-in entities to detect (default: all).
    pub entities: Option<Vec<String>>,
    /// Entities that refuse the request instead of being masked.
    #[serde(default)]
    pub block: Vec<String>,
    /// Site-specific patterns.
    #[serde(default)]
    pub custom: Vec<RawPiiRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPiiRule {
    pub name: Option<String>,
    pub pattern: Option<String>,
    /// `mask` or `block` (default: the section's `action`).
    pub action: Option<String>,
}

/// Exact-match response cache.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Default true when the section is present.
    pub enabled: Option<bool>,
    /// How long an answer is served from the cache (default 10m).
    pub ttl: Option<String>,
    /// Memory the cached bodies may use (default 64MiB).
    pub max_size: Option<RawSize>,
    /// Who shares entries: `tenant` (default), `key` or `global`.
    pub scope: Option<String>,
}

/// Tenants, keys, limits, budgets, usage and audit storage.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGovernance {
    /// Default true.
    pub enabled: Option<bool>,
    /// `sqlite://…` (default `sqlite://{data_dir}/switchyard.db`) or `postgres://…`.
    pub database_url: Option<String>,
    /// Where the SQLite file, usage spool and audit log live (default `./data`).
    pub data_dir: Option<String>,
    /// `${ENV}` reference to the bootstrap admin key.
    pub master_key: Option<String>,
    /// How often the in-memory view pulls changes (bounds revocation delay).
    pub refresh_interval: Option<String>,
    /// JSON-lines audit file (default `{data_dir}/audit.jsonl`).
    pub audit_file: Option<String>,
    /// POSTed `{type: "budget.alert", data}` when a budget threshold is crossed.
    pub alert_webhook: Option<String>,
    /// Repeated security events (refused keys, PII refusals) are written
    /// once per source and interval plus one summary row (default `10s`).
    pub audit_summary_interval: Option<String>,
    /// Distinct sources tracked per interval; more fold into `(other)` (256).
    pub audit_max_sources: Option<usize>,
    /// Usage write-ahead journal under `{data_dir}/journal/` (default true).
    pub journal: Option<bool>,
    /// How often the journal is fsync'd (default 1s).
    pub journal_fsync_interval: Option<String>,
    /// Plan templates (override or add to basic / professional / enterprise).
    #[serde(default)]
    pub plans: BTreeMap<String, RawPlan>,
    /// Requests to models with no known price under a cost budget: `deny`
    /// (default: refused) or `allow` (admitted at cost 0, rows flagged).
    pub unpriced: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub monthly_tokens: Option<i64>,
    pub monthly_cost: Option<f64>,
    #[serde(default)]
    pub models: Vec<String>,
}

/// Global retry / breaker defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReliability {
    /// Retries after the first attempt, across deployments and fallbacks.
    pub retries: Option<u32>,
    pub backoff: Option<RawBackoff>,
    /// Longest `retry-after` the gateway waits out itself (a `retry-after`
    /// also cools its deployment down, whatever its length).
    pub max_retry_after: Option<String>,
    pub retry_budget: Option<RawRetryBudget>,
    /// Counts a deployment's own faults only (never 429s or client errors);
    /// when every deployment is ejected, requests are routed anyway.
    pub breaker: Option<RawBreaker>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackoff {
    pub base: Option<String>,
    pub max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetryBudget {
    /// Retries allowed as a share of requests (0.2 = 20%).
    pub ratio: Option<f32>,
    /// Retries always allowed per second, whatever the ratio.
    pub min_per_second: Option<u32>,
    /// Window over which requests and retries are counted.
    pub window: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub consecutive_failures: Option<u32>,
    pub failure_rate: Option<f32>,
    pub min_requests: Option<u32>,
    pub window: Option<String>,
    pub cooldown: Option<String>,
    pub half_open_probes: Option<u32>,
    pub successes_to_close: Option<u32>,
}

/// Active health probes of a provider (GET its model list).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub enabled: Option<bool>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub unhealthy_after: Option<u32>,
    pub healthy_after: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// Largest accepted request body, e.g. `20MiB` or a byte count.
    pub max_body_size: Option<RawSize>,
    /// Gateway API keys clients must present (use `${ENV}` references).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Serve without any gateway key (only sensible on loopback).
    pub allow_unauthenticated: Option<bool>,
    /// I/O worker threads (one event loop each); 0 or absent = one per CPU.
    pub workers: Option<u32>,
    /// Serve `/metrics` only on this `host:port` (no key unless
    /// `metrics_key`); the gateway port then answers it 404.
    pub metrics_listen: Option<String>,
    /// `${ENV}` reference to the key a scraper sends for `/metrics`.
    pub metrics_key: Option<String>,
    /// Time a client has to send a request's headers, from its first byte.
    pub header_timeout: Option<String>,
    /// Time a client has to send a request's body.
    pub body_timeout: Option<String>,
    /// How long an idle keep-alive connection is kept open.
    pub idle_timeout: Option<String>,
    /// Client connections served at once; more are answered 503 and closed.
    pub max_connections: Option<u32>,
    /// Client connections one source address may hold at once (past it,
    /// 503 and close), so one client cannot take every slot.
    pub max_connections_per_ip: Option<u32>,
    /// Request bytes held in memory across all requests; past it, 503.
    pub max_buffered: Option<RawSize>,
    /// On SIGTERM: how long in-flight requests may take before they are cut.
    pub shutdown_grace: Option<String>,
    /// On SIGTERM: how long to keep serving (with `/ready` failing) first.
    pub shutdown_delay: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Preset kind (`openai`, `anthropic`, `gemini`, `deepseek`, …).
    pub kind: Option<String>,
    pub base_url: Option<String>,
    /// `${ENV_VAR}` reference to the key.
    pub api_key: Option<String>,
    /// Several `${ENV_VAR}` references, rotated round-robin.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// A file holding the key (first line).
    pub api_key_file: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// Breaker settings for this provider's deployments.
    pub breaker: Option<RawBreaker>,
    pub health_check: Option<RawHealthCheck>,
    /// USD per 1M tokens for this provider's models that have no deployment
    /// `price:` and are not in the bundled table (default: none, unpriced).
    pub default_price: Option<RawPrice>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<String>,
    pub first_byte: Option<String>,
    pub idle: Option<String>,
    pub total: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub description: Option<String>,
    /// Load-balancing strategy among the deployments.
    pub strategy: Option<String>,
    /// Aliases tried in order when all deployments failed.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    pub context_window_fallback: Option<String>,
    pub content_policy_fallback: Option<String>,
    #[serde(default)]
    pub deployments: Vec<RawDeployment>,
    /// `false` exempts this alias from `guardrails.pii`.
    pub pii: Option<bool>,
    /// `false` exempts this alias from the response cache.
    pub cache: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub provider: Option<String>,
    /// The upstream model name (Azure: the deployment name).
    pub model: Option<String>,
    pub weight: Option<u32>,
    /// For the `priority` strategy: lower is tried first.
    pub priority: Option<u32>,
    /// Most requests in flight to this deployment at once.
    pub max_concurrency: Option<u32>,
    /// Requests allowed to wait for a slot (default 0 with a limit set).
    pub queue_size: Option<u32>,
    /// Longest wait in that queue (default 5s).
    pub queue_timeout: Option<String>,
    pub region: Option<String>,
    pub price: Option<RawPrice>,
}

/// USD per 1M tokens.
#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cached_input: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    /// Accept `provider/model` names for any configured provider.
    pub direct: Option<bool>,
}
