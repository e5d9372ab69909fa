//! Configuration, in two phases: `raw` (serde, as written) → [`Config`]
//! (validated, env-interpolated, secrets resolved).
//!
//! Every problem is reported with its location and a plain-English fix;
//! `switchyard check` and server start-up print the same list.

mod interp;
mod lenient;
mod raw;

pub use raw::RawConfig;

use crate::routing::{Alias, Deployment, Limiter, Price};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::pii::Action as PiiAction;
use switchyard_core::provider::{self, Preset, Provider, Secret, Timeouts};
use switchyard_core::resilience::Breaker;
use switchyard_core::resilience::{Backoff, BreakerConfig, Strategy};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
/// Default request-body limit. Images as data URLs make bodies big: 16 MiB
/// holds about 12 MB of images in base64 (several full-size photos, or
/// dozens at the 1–2 MP the providers recommend), while one request cannot
/// hold the 32 MB a single provider accepts at most.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
/// Default cap on request bytes buffered across all in-flight requests.
pub const DEFAULT_MAX_BUFFERED: usize = 256 * 1024 * 1024;

/// Where the running configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(String),
    /// Providers detected from environment variables.
    Environment,
    /// No keys anywhere: built-in demo providers.
    Demo,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    pub listen: String,
    pub max_body_size: usize,
    pub api_keys: Vec<Secret>,
    pub allow_unauthenticated: bool,
    /// I/O worker threads, each with its own event loop and upstream
    /// connection pools (thread-per-core); 0 = one per CPU.
    pub workers: usize,
    pub providers: Vec<Arc<Provider>>,
    pub aliases: Vec<Alias>,
    /// Accept `provider/model` names.
    pub direct: bool,
    /// Route unknown names by well-known prefixes (`gpt-` → openai …).
    pub infer_by_prefix: bool,
    pub source: Source,
    pub reliability: Reliability,
    /// Providers with active health probes.
    pub health_checks: Vec<(Arc<Provider>, HealthCheck)>,
    /// `None` when governance is disabled.
    pub governance: Option<GovernanceConfig>,
    /// Personal-data rules (`guardrails.pii`); `None` when off.
    pub pii: Option<Arc<switchyard_core::pii::Detector>>,
    /// The response cache; `None` when off.
    pub cache: Option<crate::cache::CacheConfig>,
    /// `server.metrics_listen` / `server.metrics_key`.
    pub metrics_endpoint: crate::metrics::Endpoint,
    /// Client-connection limits and timeouts, shutdown drain.
    pub front: FrontConfig,
}

/// How the gateway treats client connections (`server.*`): timeouts that
/// bound what a slow or idle client can hold, the connection and
/// buffered-bytes caps, and the shutdown drain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrontConfig {
    /// From a request's first byte to the end of its headers.
    pub header_timeout: Duration,
    /// From the first wait for a request body to its end.
    pub body_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
    /// Connections served at once (past it: 503 and close).
    pub max_connections: usize,
    /// Connections one source address may hold (past it: 503 and close).
    pub max_connections_per_ip: usize,
    /// Request-body bytes held across all in-flight requests (past it: 503).
    pub max_buffered: usize,
    /// After SIGTERM, in-flight requests get this long, then are cut.
    pub shutdown_grace: Duration,
    /// After SIGTERM, keep serving this long with `/ready` failing (lets a
    /// load balancer stop sending before the listener closes).
    pub shutdown_delay: Duration,
}

impl Default for FrontConfig {
    fn default() -> Self {
        FrontConfig {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            // Longer than the 60 s idle timeout of common load balancers
            // (AWS ALB, nginx upstream keep-alive), so they close first.
            idle_timeout: Duration::from_secs(75),
            max_connections: 4096,
            // A quarter of the slots: one client (or one load-balancer node)
            // can never take them all, and still has plenty.
            max_connections_per_ip: 1024,
            max_buffered: DEFAULT_MAX_BUFFERED,
            shutdown_grace: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
        }
    }
}

/// Validated governance settings.
#[derive(Debug, Clone)]
pub struct GovernanceConfig {
    pub database_url: String,
    pub data_dir: std::path::PathBuf,
    pub master_key: Option<Secret>,
    pub refresh_interval: Duration,
    pub audit_file: Option<std::path::PathBuf>,
    pub alert_webhook: Option<String>,
    pub plans: BTreeMap<String, Plan>,
    /// Aggregation of repeated security events (refused keys, PII
    /// refusals): `governance.audit_summary_interval` (10 s) and
    /// `governance.audit_max_sources` (256).
    pub security_events: crate::store::SecurityLimits,
    /// The usage write-ahead journal (`{data_dir}/journal/`): usage rows
    /// survive a killed process. Default on.
    pub journal: bool,
    /// How often the journal is fsync'd (power loss; a process kill loses
    /// nothing written). Default 1 s.
    pub journal_fsync_interval: Duration,
    /// `governance.unpriced: allow`: a request to a model with no known
    /// price is admitted under a cost budget at cost 0 (rows flagged
    /// `unpriced`). Default `deny`: refused while a cost budget applies.
    pub unpriced_allow: bool,
}

/// A plan template applied to new tenants.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub monthly_tokens: Option<i64>,
    pub monthly_cost: Option<f64>,
    pub models: Vec<String>,
}

/// The built-in plans (overridable under `governance.plans`).
pub fn default_plans() -> BTreeMap<String, Plan> {
    let p = |rpm, tpm, tokens, cost| Plan {
        rpm: Some(rpm),
        tpm: Some(tpm),
        monthly_tokens: tokens,
        monthly_cost: cost,
        models: Vec::new(),
    };
    BTreeMap::from([
        (
            "basic".to_owned(),
            p(60, 100_000, Some(10_000_000), Some(50.0)),
        ),
        (
            "professional".to_owned(),
            p(600, 1_000_000, Some(200_000_000), Some(2_000.0)),
        ),
        ("enterprise".to_owned(), p(6_000, 10_000_000, None, None)),
    ])
}

impl GovernanceConfig {
    /// Defaults under `data_dir`: SQLite file, audit log, no master key.
    pub fn in_dir(data_dir: impl Into<std::path::PathBuf>, master_key: Option<Secret>) -> Self {
        let data_dir = data_dir.into();
        GovernanceConfig {
            database_url: format!("sqlite://{}", data_dir.join("switchyard.db").display()),
            audit_file: Some(data_dir.join("audit.jsonl")),
            data_dir,
            master_key,
            refresh_interval: Duration::from_millis(500),
            alert_webhook: None,
            plans: default_plans(),
            security_events: crate::store::SecurityLimits::default(),
            journal: true,
            journal_fsync_interval: Duration::from_secs(1),
            unpriced_allow: false,
        }
    }
}

/// Retry policy, shared by every request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reliability {
    /// Retries after the first attempt (across deployments and fallbacks).
    pub retries: u32,
    pub backoff: Backoff,
    /// The gateway waits out an upstream `retry-after` up to this long;
    /// longer ones are passed to the client. (Any `retry-after` also cools
    /// its deployment down: `Deployment::cooling`.)
    pub max_retry_after: Duration,
    /// Retries may add at most this share of load (retry budget).
    pub budget_ratio: f32,
    pub budget_min_per_second: u32,
    pub budget_window: Duration,
}

impl Default for Reliability {
    fn default() -> Self {
        Reliability {
            retries: 2,
            backoff: Backoff::default(),
            max_retry_after: Duration::from_secs(10),
            budget_ratio: 0.2,
            budget_min_per_second: 5,
            budget_window: Duration::from_secs(10),
        }
    }
}

/// Active health probing of one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted path, e.g. `models.fast.deployments[0].provider`.
    pub path: String,
    /// 1-based line in the file, when it could be located.
    pub line: Option<usize>,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}\n    fix: {}", self.message, self.fix)
    }
}

/// Looks up environment variables (injectable for tests).
pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Parse and validate a YAML config text.
///
/// Every string scalar is `${VAR}`-interpolated first (secrets excepted:
/// they must stay references, see `lenient::is_secret_key`), so a variable
/// can fill any field: `enabled: ${FLAG:-true}`, `retries: ${N:-2}`.
pub fn from_yaml(text: &str, file: &str, env: EnvFn<'_>) -> Result<Config, Vec<Problem>> {
    let mut tree: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(vec![yaml_problem(&e, text)]),
    };
    if tree.is_null() {
        tree = serde_yaml::Value::Mapping(Default::default());
    }
    let mut unset = Vec::new();
    lenient::interpolate_tree(&mut tree, env, "", &mut unset);
    if !unset.is_empty() {
        return Err(unset
            .into_iter()
            .map(|(path, var)| Problem {
                line: interp::locate(text, &path),
                path,
                message: format!("environment variable `{var}` is not set"),
                fix: format!("export {var}=…, or write `${{{var}:-default}}` to give a default"),
            })
            .collect());
    }
    let raw: RawConfig = match RawConfig::deserialize(lenient::Lenient(tree)) {
        Ok(r) => r,
        Err(e) => {
            // The tree has no positions; the same error from a direct parse
            // of the text has them.
            let strip = |m: String| match m.find(" at line ") {
                Some(i) => m[..i].to_owned(),
                None => m,
            };
            let located = match serde_yaml::from_str::<RawConfig>(text) {
                Err(d) if strip(d.to_string()).ends_with(&strip(e.to_string())) => d,
                _ => e,
            };
            return Err(vec![yaml_problem(&located, text)]);
        }
    };
    let mut v = Validator {
        text,
        env,
        problems: Vec::new(),
    };
    let cfg = v.config(raw, Source::File(file.to_owned()));
    if v.problems.is_empty() {
        Ok(cfg)
    } else {
        Err(v.problems)
    }
}

fn yaml_problem(e: &serde_yaml::Error, text: &str) -> Problem {
    let msg = e.to_string();
    let line = e.location().map(|l| l.line());
    let trap = line
        .and_then(|l| text.lines().nth(l.saturating_sub(1)))
        .and_then(lenient::flow_reference_trap);
    let fix = if let Some(t) = trap {
        t
    } else if msg.contains("unknown field") {
        "remove or rename the field; `switchyard check` lists the accepted ones in the message above".into()
    } else if msg.contains("invalid type") {
        "give the field a value of the expected type".into()
    } else {
        "fix the YAML syntax at that position (indentation, quoting, a missing colon)".into()
    };
    Problem {
        path: String::new(),
        line,
        message: msg,
        fix,
    }
}

struct Validator<'a> {
    text: &'a str,
    env: EnvFn<'a>,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_owned(),
            line: interp::locate(self.text, path),
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// A plain (non-secret) string value: `from_yaml` has already
    /// interpolated every such scalar, so this only hands it back.
    fn string(&mut self, _path: &str, value: &str) -> Option<String> {
        Some(value.to_owned())
    }

    /// Interpolate a secret's `${VAR}` reference (secrets skip the tree pass).
    fn resolve(&mut self, path: &str, value: &str) -> Option<String> {
        match interp::interpolate(value, self.env) {
            Ok(s) => Some(s),
            Err(var) => {
                self.problem(
                    path,
                    format!("environment variable `{var}` is not set"),
                    format!("export {var}=…, or write `${{{var}:-default}}` to give a default"),
                );
                None
            }
        }
    }

    /// A secret must come from the environment or a file, never inline.
    fn secret(&mut self, path: &str, value: &str) -> Option<Secret> {
        if !interp::is_single_reference(value) {
            self.problem(
                path,
                "secrets must not be written inline in the config file",
                "put the key in an environment variable and write `${MY_PROVIDER_KEY}`, or use `api_key_file:`",
            );
            return None;
        }
        let s = self.resolve(path, value)?;
        if s.is_empty() {
            self.problem(
                path,
                "the key is empty",
                "set the environment variable to the provider's API key",
            );
            return None;
        }
        Some(Secret::new(s))
    }

    fn duration(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        match humantime::parse_duration(v.trim()) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                self.problem(
                    path,
                    format!("`{v}` is not a duration"),
                    "write a duration like `500ms`, `30s` or `2m`",
                );
                default
            }
        }
    }

    fn config(&mut self, raw: RawConfig, source: Source) -> Config {
        let listen = match raw.server.listen.as_deref() {
            Some(l) => self.string("server.listen", l).unwrap_or_default(),
            None => DEFAULT_LISTEN.to_owned(),
        };
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            self.problem(
                "server.listen",
                format!("`{listen}` is not a socket address"),
                "write host:port, e.g. `127.0.0.1:4000` or `0.0.0.0:4000`",
            );
        }
        let max_body_size = match &raw.server.max_body_size {
            None => DEFAULT_MAX_BODY,
            Some(raw::RawSize::Bytes(b)) => usize::try_from(*b).unwrap_or(usize::MAX),
            Some(raw::RawSize::Text(t)) => match interp::parse_size(t) {
                Some(b) => b,
                None => {
                    self.problem(
                        "server.max_body_size",
                        format!("`{t}` is not a size"),
                        "write a size like `20MiB`, `512KiB` or a byte count",
                    );
                    DEFAULT_MAX_BODY
                }
            },
        };
        let mut api_keys = Vec::new();
        for (i, k) in raw.server.api_keys.iter().enumerate() {
            if let Some(s) = self.secret(&format!("server.api_keys[{i}]"), k) {
                api_keys.push(s);
            }
        }
        let allow_unauthenticated = raw.server.allow_unauthenticated.unwrap_or(false);
        let workers = match raw.server.workers {
            Some(w) if w > 1024 => {
                self.problem(
                    "server.workers",
                    format!("{w} worker threads is more than this gateway supports (1024)"),
                    "leave it out (one per CPU) or write a small number like `4`",
                );
                0
            }
            Some(w) => w as usize,
            None => 0,
        };

        let mut metrics_endpoint = crate::metrics::Endpoint::default();
        if let Some(l) = raw.server.metrics_listen.as_deref() {
            let l = self.string("server.metrics_listen", l).unwrap_or_default();
            match l.parse::<std::net::SocketAddr>() {
                Ok(a) => metrics_endpoint.listen = Some(a),
                Err(_) if l.is_empty() => {}
                Err(_) => self.problem(
                    "server.metrics_listen",
                    format!("`{l}` is not a socket address"),
                    "write host:port, e.g. `0.0.0.0:9090` (a port your scraper reaches and clients do not)",
                ),
            }
        }
        if let Some(k) = &raw.server.metrics_key {
            metrics_endpoint.key = self.secret("server.metrics_key", k);
        }
        let front = self.front(&raw.server, max_body_size);
        let reliability = self.reliability(&raw.reliability);
        let governance = self.governance(&raw.governance);
        let pii = raw.guardrails.pii.as_ref().and_then(|p| self.pii(p));
        let cache = raw.cache.as_ref().and_then(|c| self.cache(c));
        let global_breaker = match &raw.reliability.breaker {
            Some(b) => self.breaker("reliability.breaker", b, BreakerConfig::default()),
            None => BreakerConfig::default(),
        };
        let mut providers: BTreeMap<String, Arc<Provider>> = BTreeMap::new();
        let mut breakers: BTreeMap<String, BreakerConfig> = BTreeMap::new();
        let mut health_checks = Vec::new();
        for (name, p) in &raw.providers {
            if let Some(prov) = self.provider(name, p) {
                let prov = Arc::new(prov);
                let b = match &p.breaker {
                    Some(b) => {
                        self.breaker(&format!("providers.{name}.breaker"), b, global_breaker)
                    }
                    None => global_breaker,
                };
                breakers.insert(name.clone(), b);
                if let Some(h) = &p.health_check {
                    if let Some(h) = self.health_check(&format!("providers.{name}.health_check"), h)
                    {
                        health_checks.push((prov.clone(), h));
                    }
                }
                providers.insert(name.clone(), prov);
            }
        }
        if raw.providers.is_empty() {
            self.problem("providers", "no providers are defined", "add at least one provider, e.g.\n      providers:\n        openai:\n          kind: openai\n          api_key: ${OPENAI_API_KEY}");
        }
        let mut aliases = Vec::new();
        for (name, m) in &raw.models {
            if let Some(a) = self.alias(name, m, &providers, &breakers, &raw) {
                aliases.push(a);
            }
        }
        Config {
            listen,
            max_body_size,
            api_keys,
            allow_unauthenticated,
            workers,
            providers: providers.into_values().collect(),
            aliases,
            direct: raw.routing.direct.unwrap_or(true),
            infer_by_prefix: false,
            source,
            reliability,
            health_checks,
            governance,
            pii,
            cache,
            metrics_endpoint,
            front,
        }
    }

    fn front(&mut self, s: &raw::RawServer, max_body_size: usize) -> FrontConfig {
        let d = FrontConfig::default();
        let max_buffered = match &s.max_buffered {
            None => d.max_buffered.max(max_body_size),
            Some(raw::RawSize::Bytes(b)) => usize::try_from(*b).unwrap_or(usize::MAX),
            Some(raw::RawSize::Text(t)) => interp::parse_size(t).unwrap_or_else(|| {
                self.problem(
                    "server.max_buffered",
                    format!("`{t}` is not a size"),
                    "write a size like `256MiB` or a byte count",
                );
                d.max_buffered
            }),
        };
        if max_buffered < max_body_size {
            self.problem(
                "server.max_buffered",
                format!("{max_buffered} bytes is less than server.max_body_size ({max_body_size}): a request of the largest allowed size could never be served"),
                "make it at least server.max_body_size (default 256MiB)",
            );
        }
        let max_connections = match s.max_connections {
            Some(0) => {
                self.problem(
                    "server.max_connections",
                    "0 connections would refuse every client",
                    "leave it out (4096) or write a positive number",
                );
                d.max_connections
            }
            Some(n) => n as usize,
            None => d.max_connections,
        };
        let max_connections_per_ip = match s.max_connections_per_ip {
            Some(0) => {
                self.problem(
                    "server.max_connections_per_ip",
                    "0 connections per address would refuse every client",
                    "leave it out (1024) or write a positive number",
                );
                d.max_connections_per_ip
            }
            Some(n) => n as usize,
            None => d.max_connections_per_ip,
        };
        let shutdown_delay = match s.shutdown_delay.as_deref().map(str::trim) {
            Some("0" | "0s") => Duration::ZERO,
            v => self.duration("server.shutdown_delay", v, d.shutdown_delay),
        };
        FrontConfig {
            header_timeout: self.duration(
                "server.header_timeout",
                s.header_timeout.as_deref(),
                d.header_timeout,
            ),
            body_timeout: self.duration(
                "server.body_timeout",
                s.body_timeout.as_deref(),
                d.body_timeout,
            ),
            idle_timeout: self.duration(
                "server.idle_timeout",
                s.idle_timeout.as_deref(),
                d.idle_timeout,
            ),
            max_connections,
            max_connections_per_ip,
            max_buffered,
            shutdown_grace: self.duration(
                "server.shutdown_grace",
                s.shutdown_grace.as_deref(),
                d.shutdown_grace,
            ),
            shutdown_delay,
        }
    }

    fn pii_action(&mut self, path: &str, v: Option<&str>, default: PiiAction) -> PiiAction {
        match v {
            None => default,
            Some("mask") => PiiAction::Mask,
            Some("block") => PiiAction::Block,
            Some(other) => {
                self.problem(
                    path,
                    format!("unknown PII action `{other}`"),
                    "use `mask` (replace with a placeholder) or `block` (refuse the request)",
                );
                default
            }
        }
    }

    fn pii(&mut self, p: &raw::RawPii) -> Option<Arc<switchyard_core::pii::Detector>> {
        use switchyard_core::pii::{CustomRule, Detector, PiiConfig, BUILT_IN};
        if p.enabled == Some(false) {
            return None;
        }
        let base = "guardrails.pii";
        let action = self.pii_action(
            &format!("{base}.action"),
            p.action.as_deref(),
            PiiAction::Mask,
        );
        let names: Vec<String> = match &p.entities {
            Some(list) => list.clone(),
            None => BUILT_IN.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut ok = true;
        for (field, list) in [("entities", &names), ("block", &p.block)] {
            for (i, n) in list.iter().enumerate() {
                if !BUILT_IN.contains(&n.as_str()) {
                    ok = false;
                    let hint = closest(n, BUILT_IN.iter().copied());
                    self.problem(
                        &format!("{base}.{field}[{i}]"),
                        format!("unknown PII entity `{n}`"),
                        match hint {
                            Some(h) => format!(
                                "did you mean `{h}`? Built-in entities: {}",
                                BUILT_IN.join(", ")
                            ),
                            None => format!(
                                "built-in entities: {}; define others under `custom:`",
                                BUILT_IN.join(", ")
                            ),
                        },
                    );
                }
            }
        }
        for (i, b) in p.block.iter().enumerate() {
            if p.entities.is_some() && !names.contains(b) && BUILT_IN.contains(&b.as_str()) {
                ok = false;
                self.problem(
                    &format!("{base}.block[{i}]"),
                    format!("`{b}` is blocked but not in `entities`, so it is never detected"),
                    "add it to `entities`, or remove it from `block`",
                );
            }
        }
        let entities = names
            .into_iter()
            .map(|n| {
                let a = if p.block.contains(&n) {
                    PiiAction::Block
                } else {
                    action
                };
                (n, a)
            })
            .collect();
        let mut custom = Vec::new();
        for (i, c) in p.custom.iter().enumerate() {
            let path = format!("{base}.custom[{i}]");
            let (Some(name), Some(pattern)) = (&c.name, &c.pattern) else {
                ok = false;
                self.problem(
                    &path,
                    "a custom rule needs `name` and `pattern`",
                    "e.g. `- name: employee_id` and `pattern: \"EMP-[0-9]{6}\"`",
                );
                continue;
            };
            let a = self.pii_action(&format!("{path}.action"), c.action.as_deref(), action);
            custom.push(CustomRule {
                name: name.clone(),
                pattern: pattern.clone(),
                action: a,
            });
        }
        if !ok {
            return None;
        }
        match Detector::new(&PiiConfig { entities, custom }) {
            Ok(d) => Some(Arc::new(d)),
            Err(e) => {
                self.problem(
                    base,
                    e.0,
                    "fix the rule named in the message (patterns use Rust `regex` syntax)",
                );
                None
            }
        }
    }

    fn cache(&mut self, c: &raw::RawCache) -> Option<crate::cache::CacheConfig> {
        use crate::cache::{CacheConfig, Scope};
        if c.enabled == Some(false) {
            return None;
        }
        let mut cfg = CacheConfig::default();
        cfg.ttl = self.duration("cache.ttl", c.ttl.as_deref(), cfg.ttl);
        match &c.max_size {
            None => {}
            Some(raw::RawSize::Bytes(b)) => {
                cfg.max_size = usize::try_from(*b).unwrap_or(usize::MAX)
            }
            Some(raw::RawSize::Text(t)) => match interp::parse_size(t) {
                Some(b) => cfg.max_size = b,
                None => self.problem(
                    "cache.max_size",
                    format!("`{t}` is not a size"),
                    "write a size like `64MiB` or a byte count",
                ),
            },
        }
        if cfg.max_size == 0 {
            self.problem(
                "cache.max_size",
                "a zero-byte cache holds nothing",
                "give a size like `64MiB`, or `enabled: false`",
            );
        }
        match c.scope.as_deref() {
            None | Some("tenant") => cfg.scope = Scope::Tenant,
            Some("key") => cfg.scope = Scope::Key,
            Some("global") => cfg.scope = Scope::Global,
            Some(other) => self.problem(
                "cache.scope",
                format!("unknown cache scope `{other}`"),
                "use `tenant` (callers of one tenant share answers), `key` (each API key its own) or `global`",
            ),
        }
        Some(cfg)
    }

    fn governance(&mut self, g: &raw::RawGovernance) -> Option<GovernanceConfig> {
        if g.enabled == Some(false) {
            return None;
        }
        let dir = match &g.data_dir {
            Some(d) => self.string("governance.data_dir", d)?,
            None => "data".to_owned(),
        };
        let master = match &g.master_key {
            Some(k) => self.secret("governance.master_key", k),
            None => (self.env)("SWITCHYARD_MASTER_KEY").map(Secret::new),
        };
        let mut cfg = GovernanceConfig::in_dir(dir, master);
        if let Some(u) = &g.database_url {
            let u = self.string("governance.database_url", u)?;
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                self.problem(
                    "governance.database_url",
                    format!("`{u}` is not a SQLite or PostgreSQL URL"),
                    "write `sqlite://data/switchyard.db` or `postgres://user@host:5432/db`",
                );
            }
            cfg.database_url = u;
        }
        cfg.refresh_interval = self.duration(
            "governance.refresh_interval",
            g.refresh_interval.as_deref(),
            cfg.refresh_interval,
        );
        if let Some(a) = &g.audit_file {
            cfg.audit_file = Some(self.string("governance.audit_file", a)?.into());
        }
        cfg.security_events.interval = self.duration(
            "governance.audit_summary_interval",
            g.audit_summary_interval.as_deref(),
            cfg.security_events.interval,
        );
        match g.audit_max_sources {
            Some(0) => self.problem(
                "governance.audit_max_sources",
                "0 sources would fold every security event into `(other)`".to_owned(),
                "use at least 1 (the default is 256)",
            ),
            Some(n) => cfg.security_events.max_sources = n,
            None => {}
        }
        if let Some(j) = g.journal {
            cfg.journal = j;
        }
        cfg.journal_fsync_interval = self.duration(
            "governance.journal_fsync_interval",
            g.journal_fsync_interval.as_deref(),
            cfg.journal_fsync_interval,
        );
        if let Some(w) = &g.alert_webhook {
            let w = self.string("governance.alert_webhook", w)?;
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                self.problem(
                    "governance.alert_webhook",
                    format!("`{w}` is not an http(s) URL"),
                    "give the URL alerts are POSTed to",
                );
            }
            cfg.alert_webhook = Some(w);
        }
        for (name, p) in &g.plans {
            cfg.plans.insert(
                name.clone(),
                Plan {
                    rpm: p.rpm,
                    tpm: p.tpm,
                    monthly_tokens: p.monthly_tokens,
                    monthly_cost: p.monthly_cost,
                    models: p.models.clone(),
                },
            );
        }
        match g.unpriced.as_deref().map(str::trim) {
            None | Some("deny") => {}
            Some("allow") => cfg.unpriced_allow = true,
            Some(other) => self.problem(
                "governance.unpriced",
                format!("unknown policy `{other}`"),
                "use `deny` (default: requests to models with no known price are refused while a cost budget applies) or `allow` (admitted at cost 0, usage rows flagged `unpriced`)",
            ),
        }
        Some(cfg)
    }

    fn reliability(&mut self, r: &raw::RawReliability) -> Reliability {
        let d = Reliability::default();
        let retries = r.retries.unwrap_or(d.retries);
        if retries > 10 {
            self.problem(
                "reliability.retries",
                format!("{retries} retries would multiply load during an outage"),
                "use at most 10 (the default is 2)",
            );
        }
        let backoff = match &r.backoff {
            None => d.backoff,
            Some(b) => Backoff {
                base: self.duration(
                    "reliability.backoff.base",
                    b.base.as_deref(),
                    d.backoff.base,
                ),
                max: self.duration("reliability.backoff.max", b.max.as_deref(), d.backoff.max),
            },
        };
        let max_retry_after = self.duration(
            "reliability.max_retry_after",
            r.max_retry_after.as_deref(),
            d.max_retry_after,
        );
        let (mut ratio, mut min, mut window) =
            (d.budget_ratio, d.budget_min_per_second, d.budget_window);
        if let Some(b) = &r.retry_budget {
            ratio = b.ratio.unwrap_or(ratio);
            if !(0.0..=1.0).contains(&ratio) {
                self.problem(
                    "reliability.retry_budget.ratio",
                    format!("{ratio} is not a share between 0 and 1"),
                    "write e.g. `0.2` for retries worth at most 20% of traffic",
                );
            }
            min = b.min_per_second.unwrap_or(min);
            window = self.duration(
                "reliability.retry_budget.window",
                b.window.as_deref(),
                window,
            );
        }
        Reliability {
            retries,
            backoff,
            max_retry_after,
            budget_ratio: ratio,
            budget_min_per_second: min,
            budget_window: window,
        }
    }

    fn breaker(&mut self, path: &str, b: &raw::RawBreaker, base: BreakerConfig) -> BreakerConfig {
        let cfg = BreakerConfig {
            consecutive_failures: b.consecutive_failures.unwrap_or(base.consecutive_failures),
            failure_rate: b.failure_rate.unwrap_or(base.failure_rate),
            min_requests: b.min_requests.unwrap_or(base.min_requests),
            window: self.duration(&format!("{path}.window"), b.window.as_deref(), base.window),
            cooldown: self.duration(
                &format!("{path}.cooldown"),
                b.cooldown.as_deref(),
                base.cooldown,
            ),
            half_open_probes: b.half_open_probes.unwrap_or(base.half_open_probes),
            successes_to_close: b.successes_to_close.unwrap_or(base.successes_to_close),
        };
        if cfg.consecutive_failures == 0 || cfg.half_open_probes == 0 || cfg.successes_to_close == 0
        {
            self.problem(path, "`consecutive_failures`, `half_open_probes` and `successes_to_close` must be at least 1", "use 1 or more (defaults: 5, 1, 1)");
        }
        if !(0.0..=1.0).contains(&cfg.failure_rate) || cfg.failure_rate == 0.0 {
            self.problem(
                &format!("{path}.failure_rate"),
                format!("{} is not a rate in (0, 1]", cfg.failure_rate),
                "write e.g. `0.5` to open at 50% failures",
            );
        }
        cfg
    }

    fn health_check(&mut self, path: &str, h: &raw::RawHealthCheck) -> Option<HealthCheck> {
        if h.enabled == Some(false) {
            return None;
        }
        let d = HealthCheck::default();
        let hc = HealthCheck {
            interval: self.duration(
                &format!("{path}.interval"),
                h.interval.as_deref(),
                d.interval,
            ),
            timeout: self.duration(&format!("{path}.timeout"), h.timeout.as_deref(), d.timeout),
            unhealthy_after: h.unhealthy_after.unwrap_or(d.unhealthy_after).max(1),
            healthy_after: h.healthy_after.unwrap_or(d.healthy_after).max(1),
        };
        if hc.timeout > hc.interval {
            self.problem(
                &format!("{path}.timeout"),
                "the probe timeout is longer than the interval",
                "make `timeout` shorter than `interval`",
            );
        }
        Some(hc)
    }

    fn provider(&mut self, name: &str, p: &raw::RawProvider) -> Option<Provider> {
        let base = format!("providers.{name}");
        let Some(kind) = p.kind.as_deref() else {
            self.problem(
                &base,
                "`kind` is missing",
                format!("add `kind:` with one of: {}", kinds()),
            );
            return None;
        };
        let Some(preset) = provider::preset(kind) else {
            let hint = closest(kind, provider::presets().iter().map(|p| p.kind));
            self.problem(
                &format!("{base}.kind"),
                format!("unknown provider kind `{kind}`"),
                match hint {
                    Some(h) => format!("did you mean `{h}`? Known kinds: {}", kinds()),
                    None => format!(
                        "use one of: {} (`switchyard providers` describes each)",
                        kinds()
                    ),
                },
            );
            return None;
        };
        let base_url = match p.base_url.as_deref() {
            Some(u) => self.string(&format!("{base}.base_url"), u)?,
            None => match preset
                .base_url_env
                .and_then(|e| (self.env)(e))
                .or(preset.base_url.map(str::to_owned))
            {
                Some(u) => u,
                None => {
                    let env_hint = preset
                        .base_url_env
                        .map(|e| format!(" (or set {e})"))
                        .unwrap_or_default();
                    self.problem(
                        &base,
                        format!("`{kind}` providers have no default base URL"),
                        format!("add `base_url:`{env_hint}"),
                    );
                    return None;
                }
            },
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            self.problem(
                &format!("{base}.base_url"),
                format!("`{base_url}` is not an http(s) URL"),
                "write a URL such as `https://api.example.com/v1`",
            );
        }
        let mut keys = Vec::new();
        if let Some(k) = &p.api_key {
            keys.extend(self.secret(&format!("{base}.api_key"), k));
        }
        for (i, k) in p.api_keys.iter().enumerate() {
            keys.extend(self.secret(&format!("{base}.api_keys[{i}]"), k));
        }
        if let Some(f) = &p.api_key_file {
            let path = self.string(&format!("{base}.api_key_file"), f)?;
            match std::fs::read_to_string(&path) {
                Ok(s) => match s.lines().next().map(str::trim).filter(|l| !l.is_empty()) {
                    Some(k) => keys.push(Secret::new(k)),
                    None => self.problem(
                        &format!("{base}.api_key_file"),
                        format!("`{path}` is empty"),
                        "write the key on the file's first line",
                    ),
                },
                Err(e) => self.problem(
                    &format!("{base}.api_key_file"),
                    format!("cannot read `{path}`: {e}"),
                    "check the path and the file's permissions",
                ),
            }
        }
        if keys.is_empty()
            && p.api_key.is_none()
            && p.api_keys.is_empty()
            && p.api_key_file.is_none()
        {
            if let Some(k) = preset.key_env.iter().find_map(|e| (self.env)(e)) {
                keys.push(Secret::new(k));
            } else if preset.key_required {
                let envs = preset.key_env.join(" or ");
                self.problem(
                    &base,
                    format!("no API key for `{kind}`"),
                    format!("set {envs}, or add `api_key: ${{SOME_ENV_VAR}}` / `api_key_file:`"),
                );
            }
        }
        let mut headers = Vec::new();
        for (h, v) in &p.headers {
            let path = format!("{base}.headers.{h}");
            let value = self.string(&path, v)?;
            if http::HeaderName::from_bytes(h.as_bytes()).is_err()
                || http::HeaderValue::from_str(&value).is_err()
            {
                self.problem(
                    &path,
                    format!("`{h}` is not a valid header"),
                    "use an ASCII header name and value",
                );
                continue;
            }
            headers.push((h.to_ascii_lowercase(), value));
        }
        let api_version = match &p.api_version {
            Some(v) => Some(self.string(&format!("{base}.api_version"), v)?),
            None => None,
        };
        if api_version.is_some() && preset.kind != "azure" {
            self.problem(
                &format!("{base}.api_version"),
                "`api_version` only applies to `kind: azure`",
                "remove it",
            );
        }
        let t = &p.timeouts;
        let d = Timeouts::default();

        let timeouts = Timeouts {
            connect: self.duration(
                &format!("{base}.timeouts.connect"),
                t.connect.as_deref(),
                d.connect,
            ),
            first_byte: self.duration(
                &format!("{base}.timeouts.first_byte"),
                t.first_byte.as_deref(),
                d.first_byte,
            ),
            idle: self.duration(&format!("{base}.timeouts.idle"), t.idle.as_deref(), d.idle),
            total: self.duration(
                &format!("{base}.timeouts.total"),
                t.total.as_deref(),
                d.total,
            ),
        };
        let default_price = p
            .default_price
            .as_ref()
            .and_then(|r| self.default_price(&format!("{base}.default_price"), r));
        let mut provider = Provider::new(
            name.to_owned(),
            preset,
            base_url,
            keys,
            headers,
            api_version,
            timeouts,
        );
        provider.default_price = default_price;
        Some(provider)
    }

    /// `providers.NAME.default_price`: both rates required (a missing one
    /// would silently bill 0), non-negative.
    fn default_price(
        &mut self,
        path: &str,
        r: &raw::RawPrice,
    ) -> Option<switchyard_core::pricing::Price> {
        let (Some(input), Some(output)) = (r.input, r.output) else {
            self.problem(
                path,
                "`input` and `output` are both required",
                "give USD per 1M tokens, e.g. `default_price: {input: 5, output: 15}`",
            );
            return None;
        };
        let cached = r.cached_input.unwrap_or(input);
        if [input, output, cached]
            .iter()
            .any(|v| !v.is_finite() || *v < 0.0)
        {
            self.problem(
                path,
                "prices must be non-negative numbers",
                "give USD per 1M tokens, e.g. `input: 2.5`",
            );
            return None;
        }
        Some(switchyard_core::pricing::Price::new(input, output).with_cached_input(cached))
    }

    fn alias(
        &mut self,
        name: &str,
        m: &raw::RawModel,
        providers: &BTreeMap<String, Arc<Provider>>,
        breakers: &BTreeMap<String, BreakerConfig>,
        raw: &RawConfig,
    ) -> Option<Alias> {
        let base = format!("models.{name}");
        if m.deployments.is_empty() {
            self.problem(&base, "the model has no deployments", "add `deployments:` with at least one `- provider: NAME` and `model: UPSTREAM_MODEL`");
            return None;
        }
        if name.contains('/') && raw.routing.direct.unwrap_or(true) {
            if let Some((p, _)) = name.split_once('/') {
                if providers.contains_key(p) {
                    self.problem(
                        &base,
                        format!("the alias `{name}` shadows direct routing to provider `{p}`"),
                        "rename the alias, or set `routing.direct: false`",
                    );
                }
            }
        }
        let mut deployments = Vec::new();
        for (i, d) in m.deployments.iter().enumerate() {
            let path = format!("{base}.deployments[{i}]");
            let Some(pname) = d.provider.as_deref() else {
                self.problem(
                    &path,
                    "`provider` is missing",
                    "add `provider:` naming one of the entries under `providers:`",
                );
                continue;
            };
            let Some(provider) = providers.get(pname) else {
                if raw.providers.contains_key(pname) {
                    continue; // the provider itself is invalid; already reported
                }
                let hint = closest(pname, providers.keys().map(String::as_str));
                let known = providers.keys().cloned().collect::<Vec<_>>().join(", ");
                self.problem(
                    &format!("{path}.provider"),
                    format!("provider `{pname}` is not defined"),
                    match hint {
                        Some(h) => format!("did you mean `{h}`? Defined providers: {known}"),
                        None => format!("define it under `providers:` (defined: {known})"),
                    },
                );
                continue;
            };
            let Some(model) = d.model.as_deref() else {
                self.problem(
                    &path,
                    "`model` is missing",
                    "add `model:` with the upstream model name (for Azure, the deployment name)",
                );
                continue;
            };
            let Some(model) = self.string(&format!("{path}.model"), model) else {
                continue;
            };
            if let Some(why) = provider.model_name_problem(&model) {
                // The name goes into the upstream URL or body as written.
                self.problem(
                    &format!("{path}.model"),
                    format!("`{model}` is not a valid model name for provider `{pname}`: {why}"),
                    "write the provider's model id (for Azure, the deployment name), e.g. `gemini-2.5-flash`",
                );
                continue;
            }
            let weight = d.weight.unwrap_or(1);
            if weight == 0 {
                self.problem(
                    &format!("{path}.weight"),
                    "weight 0 would never be chosen",
                    "use a weight ≥ 1, or remove the deployment",
                );
            }
            let price = d.price.map(|p| Price {
                input: p.input.unwrap_or(0.0),
                output: p.output.unwrap_or(0.0),
                cached_input: p.cached_input.or(p.input).unwrap_or(0.0),
            });
            if let Some(p) = &price {
                if [p.input, p.output, p.cached_input]
                    .iter()
                    .any(|v| !v.is_finite() || *v < 0.0)
                {
                    self.problem(
                        &format!("{path}.price"),
                        "prices must be non-negative numbers",
                        "give USD per 1M tokens, e.g. `input: 2.5`",
                    );
                }
            }
            let mut dep = Deployment::new(format!("{name}#{i}"), provider.clone(), model);
            dep.weight = weight.max(1);
            dep.priority = d.priority.unwrap_or(i as u32);
            dep.region = d.region.clone();
            dep.price = price;
            dep.breaker = Breaker::named(
                format!("{name}#{i}"),
                breakers.get(pname).copied().unwrap_or_default(),
            );
            if let Some(max) = d.max_concurrency {
                if max == 0 {
                    self.problem(
                        &format!("{path}.max_concurrency"),
                        "0 would refuse every request",
                        "use 1 or more, or remove it for no limit",
                    );
                } else {
                    let qt = self.duration(
                        &format!("{path}.queue_timeout"),
                        d.queue_timeout.as_deref(),
                        Duration::from_secs(5),
                    );
                    dep.limiter = Some(Limiter::new(
                        max as usize,
                        d.queue_size.unwrap_or(0) as usize,
                        qt,
                    ));
                }
            } else if d.queue_size.is_some() || d.queue_timeout.is_some() {
                self.problem(
                    &path,
                    "`queue_size` / `queue_timeout` need `max_concurrency`",
                    "add `max_concurrency:` or remove the queue settings",
                );
            }
            deployments.push(Arc::new(dep));
        }
        if deployments.is_empty() {
            return None;
        }
        let mut alias = Alias::new(name.to_owned(), deployments);
        alias.description = m.description.clone();
        if let Some(st) = &m.strategy {
            match Strategy::parse(st) {
                Some(s) => alias.strategy = s,
                None => self.problem(
                    &format!("{base}.strategy"),
                    format!("unknown strategy `{st}`"),
                    "use weighted, round_robin, least_outstanding, lowest_latency, lowest_cost or priority",
                ),
            }
        }
        for (i, f) in m.fallbacks.iter().enumerate() {
            self.check_alias_ref(&format!("{base}.fallbacks[{i}]"), name, f, raw);
        }
        alias.fallbacks = m.fallbacks.clone();
        for (field, v) in [
            ("context_window_fallback", &m.context_window_fallback),
            ("content_policy_fallback", &m.content_policy_fallback),
        ] {
            if let Some(f) = v {
                self.check_alias_ref(&format!("{base}.{field}"), name, f, raw);
            }
        }
        alias.context_window_fallback = m.context_window_fallback.clone();
        alias.content_policy_fallback = m.content_policy_fallback.clone();
        alias.pii = m.pii.unwrap_or(true);
        alias.cache = m.cache.unwrap_or(true);
        Some(alias)
    }

    fn check_alias_ref(&mut self, path: &str, from: &str, to: &str, raw: &RawConfig) {
        if to == from {
            self.problem(
                path,
                "an alias cannot fall back to itself",
                "name a different alias",
            );
        } else if !raw.models.contains_key(to) {
            let hint = closest(to, raw.models.keys().map(String::as_str));
            self.problem(
                path,
                format!("fallback alias `{to}` is not defined under `models:`"),
                match hint {
                    Some(h) => format!("did you mean `{h}`?"),
                    None => "define it under `models:` or remove the reference".into(),
                },
            );
        }
    }
}

fn kinds() -> String {
    provider::presets()
        .iter()
        .map(|p| p.kind)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate by edit distance, if close enough to be a typo.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Build a configuration from environment variables alone: every preset
/// whose key variable is set becomes a provider, its well-known models become
/// aliases, and `provider/model` plus prefix routing are on.
pub fn from_env(env: EnvFn<'_>) -> Option<Config> {
    let mut providers = Vec::new();
    let mut aliases: Vec<Alias> = Vec::new();
    for preset in provider::presets() {
        let Some(key) = preset.key_env.iter().find_map(|e| env(e)) else {
            continue;
        };
        let Some(base_url) = preset
            .base_url_env
            .and_then(env)
            .or(preset.base_url.map(str::to_owned))
        else {
            continue;
        };
        let p = Arc::new(Provider::new(
            preset.kind.to_owned(),
            preset,
            base_url,
            vec![Secret::new(key)],
            Vec::new(),
            None,
            Timeouts::default(),
        ));
        for m in preset.default_models {
            if aliases.iter().any(|a| a.name == *m) {
                continue;
            }
            let dep = Deployment::new(format!("{}/{m}", preset.kind), p.clone(), (*m).to_owned());
            let mut alias = Alias::new((*m).to_owned(), vec![Arc::new(dep)]);
            alias.description = Some(format!("{} {m}", preset.display_name));
            aliases.push(alias);
        }
        providers.push(p);
    }
    if providers.is_empty() {
        return None;
    }
    Some(Config {
        listen: env("SWITCHYARD_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
        max_body_size: DEFAULT_MAX_BODY,
        api_keys: gateway_keys_from_env(env),
        allow_unauthenticated: false,
        workers: env("SWITCHYARD_WORKERS")
            .and_then(|w| w.trim().parse().ok())
            .unwrap_or(0),
        providers,
        aliases,
        direct: true,
        infer_by_prefix: true,
        source: Source::Environment,
        reliability: Reliability::default(),
        health_checks: Vec::new(),
        governance: Some(GovernanceConfig::in_dir(
            env("SWITCHYARD_DATA_DIR").unwrap_or_else(|| "data".into()),
            env("SWITCHYARD_MASTER_KEY").map(Secret::new),
        )),
        pii: None,
        cache: None,
        metrics_endpoint: crate::metrics::Endpoint {
            listen: env("SWITCHYARD_METRICS_LISTEN").and_then(|l| l.trim().parse().ok()),
            key: env("SWITCHYARD_METRICS_KEY")
                .filter(|k| !k.is_empty())
                .map(Secret::new),
        },
        front: FrontConfig::default(),
    })
}

/// One warning per configured alias with a deployment whose price is
/// unknown (no `price:`, not in the bundled table, no provider
/// `default_price`): under a cost budget, requests to it are refused.
pub fn unpriced_warnings(cfg: &Config) -> Vec<String> {
    let allow = cfg.governance.as_ref().is_some_and(|g| g.unpriced_allow);
    cfg.aliases
        .iter()
        .filter_map(|a| {
            let missing: Vec<&Arc<Deployment>> =
                a.deployments.iter().filter(|d| !d.is_priced()).collect();
            let first = missing.first()?;
            let names: Vec<String> = missing
                .iter()
                .map(|d| format!("`{}:{}`", d.provider.name, d.model))
                .collect();
            let effect = if allow {
                "requests to it are admitted at cost 0 under cost budgets (`governance.unpriced: allow`)"
            } else {
                "under a cost budget requests to it are refused (`governance.unpriced: deny`)"
            };
            Some(format!(
                "models.{}: no known price for {}; {effect}. Price it with `price: {{input: …, output: …}}` (USD per 1M tokens) on the deployment, or `providers.{}.default_price`{}",
                a.name,
                names.join(", "),
                first.provider.name,
                if allow { "" } else { ", or set `governance.unpriced: allow`" },
            ))
        })
        .collect()
}

/// Gateway keys from `SWITCHYARD_API_KEYS` (comma-separated) and
/// `SWITCHYARD_MASTER_KEY`.
pub fn gateway_keys_from_env(env: EnvFn<'_>) -> Vec<Secret> {
    let mut keys: Vec<Secret> = env("SWITCHYARD_API_KEYS")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(Secret::new)
                .collect()
        })
        .unwrap_or_default();
    if let Some(m) = env("SWITCHYARD_MASTER_KEY") {
        keys.push(Secret::new(m));
    }
    keys
}

/// Presets, for `switchyard providers`.
pub fn preset_table() -> Vec<&'static Preset> {
    provider::presets().iter().collect()
}

#[cfg(test)]
mod tests;
