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
    #[serde(default)]
    pub deployments: Vec<RawDeployment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub provider: Option<String>,
    /// The upstream model name (Azure: the deployment name).
    pub model: Option<String>,
    pub weight: Option<u32>,
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
