//! Model aliases → deployments: name resolution, the per-deployment live
//! state (breaker, load statistics, concurrency limit) and the attempt plan.
//!
//! Resolution order for a requested model name: a configured alias; then
//! `provider/model` (when `routing.direct`); then, in environment mode, a
//! well-known prefix (`gpt-` → openai, `claude-` → anthropic …). Direct and
//! prefix routes are created once and cached, so their breakers and
//! statistics persist like those of configured aliases.

use crate::FastMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use switchyard_core::provider::Provider;
use switchyard_core::resilience::{
    order, Breaker, BreakerConfig, Candidate, EndpointStats, Strategy,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cached_input: f64,
}

/// A bound on in-flight requests to one deployment, with a bounded queue.
#[derive(Debug)]
pub struct Limiter {
    sem: Arc<Semaphore>,
    waiting: AtomicUsize,
    pub max_in_flight: usize,
    pub queue_size: usize,
    pub queue_timeout: Duration,
}

/// Why the limiter refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitRejection {
    /// In-flight and queue both full.
    QueueFull,
    /// Waited `queue_timeout` without a slot.
    QueueTimeout,
}

impl Limiter {
    pub fn new(max_in_flight: usize, queue_size: usize, queue_timeout: Duration) -> Self {
        Limiter {
            sem: Arc::new(Semaphore::new(max_in_flight)),
            waiting: AtomicUsize::new(0),
            max_in_flight,
            queue_size,
            queue_timeout,
        }
    }

    /// A slot, waiting in the queue if needed (never longer than the queue
    /// timeout, never when the queue is full).
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, LimitRejection> {
        if let Ok(p) = self.sem.clone().try_acquire_owned() {
            return Ok(p);
        }
        // The queue place is released on every exit, cancellation included.
        struct Place<'a>(&'a AtomicUsize);
        impl Drop for Place<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let taken = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _place = Place(&self.waiting);
        if taken >= self.queue_size {
            return Err(LimitRejection::QueueFull);
        }
        let r = tokio::time::timeout(self.queue_timeout, self.sem.clone().acquire_owned()).await;
        match r {
            Ok(Ok(p)) => Ok(p),
            _ => Err(LimitRejection::QueueTimeout),
        }
    }
}

/// One provider + upstream model behind an alias, with its live state.
#[derive(Debug)]
pub struct Deployment {
    /// Stable id for headers and logs: `alias#index` or `provider/model`.
    pub id: String,
    pub provider: Arc<Provider>,
    /// Upstream model name (Azure: deployment name).
    pub model: String,
    pub weight: u32,
    /// Lower is preferred by the `priority` strategy.
    pub priority: u32,
    pub region: Option<String>,
    pub price: Option<Price>,
    /// Passive health: opens after repeated failures.
    pub breaker: Breaker,
    /// In-flight count and latency EWMA, for balancing.
    pub stats: Arc<EndpointStats>,
    pub limiter: Option<Limiter>,
    /// Cooling down after the upstream asked to wait (a 429 or 503 with
    /// `retry-after`): nanoseconds since `origin` until which routing passes
    /// this deployment over (0: not cooling). See [`Deployment::cooling`].
    cool_until: AtomicU64,
    origin: tokio::time::Instant,
    /// The chat URL, parsed once: `[non-stream, stream]`.
    chat_uris: [std::sync::OnceLock<Result<http::Uri, String>>; 2],
    /// The embeddings URL, parsed once (`None`: the provider has none).
    embeddings_uri: std::sync::OnceLock<Option<Result<http::Uri, String>>>,
    /// `x-switchyard-provider|deployment|upstream-model` values, built once.
    route_headers: std::sync::OnceLock<Vec<(http::HeaderName, http::HeaderValue)>>,
    /// The bundled price-table entry for this model, looked up once.
    table_price: std::sync::OnceLock<Option<&'static switchyard_core::pricing::ModelPrice>>,
}

fn parse_uri(url: &str) -> Result<http::Uri, String> {
    url.parse::<http::Uri>()
        .map_err(|e| format!("invalid upstream URL `{url}`: {e}"))
}

impl Deployment {
    /// The response headers naming where a request went (values that are
    /// not valid header text are left out).
    pub fn route_headers(&self) -> &[(http::HeaderName, http::HeaderValue)] {
        self.route_headers.get_or_init(|| {
            [
                ("x-switchyard-provider", self.provider.name.as_str()),
                ("x-switchyard-deployment", self.id.as_str()),
                ("x-switchyard-upstream-model", self.model.as_str()),
            ]
            .into_iter()
            .filter_map(|(n, v)| {
                Some((
                    http::HeaderName::from_static(n),
                    http::HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect()
        })
    }

    /// The bundled price-table entry for this deployment's model, if any.
    pub fn table_price(&self) -> Option<&'static switchyard_core::pricing::ModelPrice> {
        *self.table_price.get_or_init(|| {
            switchyard_core::pricing::lookup(self.provider.preset.kind, &self.model)
        })
    }

    /// Does this deployment have a price of its own: a configured `price:`
    /// or an entry in the bundled table? `false` means its cost is the
    /// provider's `default_price` (if the operator set one) or unknown;
    /// usage rows flag it (`unpriced`).
    pub fn has_own_price(&self) -> bool {
        self.price.is_some() || self.table_price().is_some()
    }

    /// Can this deployment's cost be computed at all (own price, or the
    /// provider's `default_price`)?
    pub fn is_priced(&self) -> bool {
        self.has_own_price() || self.provider.default_price.is_some()
    }

    /// The upstream chat URL for this deployment (parsed on first use).
    pub fn chat_uri(&self, stream: bool) -> Result<http::Uri, String> {
        self.chat_uris[usize::from(stream)]
            .get_or_init(|| parse_uri(&self.provider.chat_url(&self.model, stream)))
            .clone()
    }

    /// The upstream embeddings URL (parsed on first use); `None` when the
    /// provider has no embeddings API.
    pub fn embeddings_uri(&self) -> Option<Result<http::Uri, String>> {
        self.embeddings_uri
            .get_or_init(|| {
                self.provider
                    .embeddings_url(&self.model)
                    .map(|u| parse_uri(&u))
            })
            .clone()
    }

    pub fn new(id: String, provider: Arc<Provider>, model: String) -> Self {
        Deployment {
            id,
            provider,
            model,
            weight: 1,
            priority: 0,
            region: None,
            price: None,
            breaker: Breaker::new(BreakerConfig::default()),
            stats: Arc::new(EndpointStats::new()),
            limiter: None,
            cool_until: AtomicU64::new(0),
            origin: tokio::time::Instant::now(),
            chat_uris: Default::default(),
            embeddings_uri: std::sync::OnceLock::new(),
            table_price: std::sync::OnceLock::new(),
            route_headers: std::sync::OnceLock::new(),
        }
    }

    /// Can this deployment take a request right now (breaker not open,
    /// provider not marked unhealthy by active checks)?
    pub fn is_available(&self) -> bool {
        self.breaker.is_available() && self.provider.is_healthy()
    }

    /// The upstream asked us to wait `d` before sending it more (`retry-after`
    /// on a 429 or 503): pass this deployment over until then (at most
    /// [`MAX_COOLDOWN`]). The latest answer wins, longer or shorter.
    pub fn cool_down(&self, d: Duration) {
        let d = u64::try_from(d.min(MAX_COOLDOWN).as_nanos()).unwrap_or(u64::MAX);
        let until = self.now_nanos().saturating_add(d).max(1);
        self.cool_until.store(until, Ordering::Release);
    }

    /// How much longer this deployment is cooling down (`None`: it is not).
    /// One atomic load when it is not.
    pub fn cooling(&self) -> Option<Duration> {
        let until = self.cool_until.load(Ordering::Acquire);
        if until == 0 {
            return None;
        }
        let now = self.now_nanos();
        (until > now).then(|| Duration::from_nanos(until - now))
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Blended price per 1M tokens, for the `lowest_cost` strategy.
    fn cost(&self) -> Option<f64> {
        self.price.map(|p| p.input + p.output)
    }
}

/// The longest a `retry-after` cools a deployment down: an upstream asking
/// for an hour (a daily quota) is asked again after this.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(300);

/// A model name clients use, served by one or more deployments.
#[derive(Debug)]
pub struct Alias {
    pub name: String,
    pub description: Option<String>,
    pub deployments: Vec<Arc<Deployment>>,
    pub strategy: Strategy,
    /// Aliases tried, in order, when every deployment of this one failed.
    pub fallbacks: Vec<String>,
    /// Alias used when the upstream says the prompt exceeds the context window.
    pub context_window_fallback: Option<String>,
    /// Alias used when the upstream refuses on content-policy grounds.
    pub content_policy_fallback: Option<String>,
    /// `guardrails.pii` applies to this alias (`pii: false` exempts it).
    pub pii: bool,
    /// Answers may be served from / stored in the response cache.
    pub cache: bool,
    rr: AtomicUsize,
}

impl Alias {
    pub fn new(name: String, deployments: Vec<Arc<Deployment>>) -> Self {
        Alias {
            name,
            description: None,
            deployments,
            strategy: Strategy::default(),
            fallbacks: Vec::new(),
            context_window_fallback: None,
            content_policy_fallback: None,
            pii: true,
            cache: true,
            rr: AtomicUsize::new(0),
        }
    }

    /// The deployments in the order this request should try them.
    pub fn ordered(&self) -> Vec<Arc<Deployment>> {
        if self.deployments.len() <= 1 {
            return self.deployments.clone();
        }
        let cands: Vec<Candidate<'_>> = self
            .deployments
            .iter()
            .map(|d| Candidate {
                weight: d.weight,
                priority: d.priority,
                cost: d.cost(),
                stats: &d.stats,
            })
            .collect();
        order(self.strategy, &cands, &self.rr)
            .into_iter()
            .filter_map(|i| self.deployments.get(i).cloned())
            .collect()
    }

    /// At least one deployment can serve.
    pub fn is_available(&self) -> bool {
        self.deployments.iter().any(|d| d.is_available())
    }
}

/// The routing table. Configured aliases are immutable; direct routes are
/// added on first use.
#[derive(Debug, Default)]
pub struct Router {
    aliases: FastMap<String, Arc<Alias>>,
    /// Aliases in config order, for `/v1/models`.
    ordered: Vec<Arc<Alias>>,
    providers: FastMap<String, Arc<Provider>>,
    direct: bool,
    infer_by_prefix: bool,
    /// `provider/model` and prefix routes created on demand.
    dynamic: RwLock<FastMap<String, Arc<Alias>>>,
}

/// Upper bound on cached dynamic routes (a client cannot grow memory forever).
const MAX_DYNAMIC: usize = 4096;

impl Router {
    pub fn new(
        aliases: Vec<Alias>,
        providers: Vec<Arc<Provider>>,
        direct: bool,
        infer_by_prefix: bool,
    ) -> Self {
        let ordered: Vec<Arc<Alias>> = aliases.into_iter().map(Arc::new).collect();
        Router {
            aliases: ordered
                .iter()
                .map(|a| (a.name.clone(), a.clone()))
                .collect(),
            ordered,
            providers: providers.into_iter().map(|p| (p.name.clone(), p)).collect(),
            direct,
            infer_by_prefix,
            dynamic: RwLock::new(FastMap::default()),
        }
    }

    /// Every configured alias, in config order.
    pub fn aliases(&self) -> &[Arc<Alias>] {
        &self.ordered
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    /// A configured alias by exact name (fallback targets).
    pub fn alias(&self, name: &str) -> Option<Arc<Alias>> {
        self.aliases.get(name).cloned()
    }

    /// Every alias a request for `alias` may be diverted to: its fallbacks,
    /// then its context-window and content-policy fallbacks (one level, as
    /// the attempt plan follows them).
    pub fn fallback_aliases<'a>(
        &'a self,
        alias: &'a Alias,
    ) -> impl Iterator<Item = Arc<Alias>> + 'a {
        alias
            .fallbacks
            .iter()
            .chain(alias.context_window_fallback.iter())
            .chain(alias.content_policy_fallback.iter())
            .filter_map(|f| self.alias(f))
    }

    /// Resolve a requested model name.
    pub fn resolve(&self, model: &str) -> Option<Arc<Alias>> {
        if let Some(a) = self.aliases.get(model) {
            return Some(a.clone());
        }
        if let Some(a) = self.dynamic.read().ok().and_then(|m| m.get(model).cloned()) {
            return Some(a);
        }
        let (provider, upstream) = self.dynamic_target(model)?;
        let alias = Arc::new(Alias::new(
            model.to_owned(),
            vec![Arc::new(Deployment::new(
                format!("{}/{upstream}", provider.name),
                provider.clone(),
                upstream.to_owned(),
            ))],
        ));
        if let Ok(mut m) = self.dynamic.write() {
            if m.len() < MAX_DYNAMIC {
                return Some(m.entry(model.to_owned()).or_insert(alias).clone());
            }
        }
        Some(alias)
    }

    /// The refusal for a model name [`Router::resolve`] did not resolve:
    /// a 400 naming the problem when it addresses a provider directly (or
    /// by prefix) with a name that provider cannot take, else a 404.
    pub fn unresolved(&self, model: &str) -> crate::error::GatewayError {
        let Some((provider, upstream)) = self.dynamic_target_unchecked(model) else {
            return crate::error::GatewayError::model_not_found(model);
        };
        let why = provider
            .model_name_problem(upstream)
            .unwrap_or("letters, digits and `-_.:@/+` only, without empty, `.` or `..` segments, at most 256 bytes");
        let mut e = switchyard_core::ir::ApiError::new(
            switchyard_core::ir::ErrorKind::InvalidRequest,
            format!(
                "The model `{model}` cannot be sent to provider `{}`: `{upstream}` is not a valid model name there ({why}).",
                provider.name
            ),
        )
        .with_code("invalid_model_name");
        e.param = Some("model".into());
        crate::error::GatewayError::new(400, e)
    }

    fn dynamic_target<'m>(&self, model: &'m str) -> Option<(&Arc<Provider>, &'m str)> {
        let (provider, upstream) = self.dynamic_target_unchecked(model)?;
        safe_model_name(provider, upstream).then_some((provider, upstream))
    }

    fn dynamic_target_unchecked<'m>(&self, model: &'m str) -> Option<(&Arc<Provider>, &'m str)> {
        if self.direct {
            if let Some((p, m)) = model.split_once('/') {
                if let Some(provider) = self.providers.get(p) {
                    if !m.is_empty() {
                        return Some((provider, m));
                    }
                }
            }
        }
        if self.infer_by_prefix {
            let mut providers: Vec<&Arc<Provider>> = self.providers.values().collect();
            providers.sort_by(|a, b| a.name.cmp(&b.name));
            for p in providers {
                if p.preset
                    .model_prefixes
                    .iter()
                    .any(|pre| model.starts_with(pre))
                {
                    return Some((p, model));
                }
            }
        }
        None
    }
}

/// Client-supplied model names end up in upstream URL paths (Gemini, Azure)
/// and in the route cache: accept only plain model-id characters, no dot
/// segments, bounded length. Names from the config file are trusted.
pub fn safe_model_name(provider: &Provider, name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/+".contains(&b))
        && provider.model_name_problem(name).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_waiter_frees_its_queue_place() {
        let l = Arc::new(Limiter::new(1, 1, Duration::from_secs(5)));
        let held = l.acquire().await.unwrap();
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(l.waiting.load(Ordering::Acquire), 0);
        drop(held);
        assert!(l.acquire().await.is_ok());
    }

    #[test]
    fn dynamic_names_cannot_escape_the_model_path() {
        let p = |kind| {
            Provider::new(
                "p".into(),
                switchyard_core::provider::preset(kind).unwrap(),
                "https://x".into(),
                vec![],
                vec![],
                None,
                Default::default(),
            )
        };
        let (g, o) = (p("gemini"), p("openrouter"));
        assert!(safe_model_name(&g, "gemini-2.5-flash"));
        assert!(safe_model_name(&g, "models/gemini-2.5-flash"));
        assert!(!safe_model_name(&g, "../../v1beta/cachedContents#"));
        assert!(!safe_model_name(&g, "x/y"));
        assert!(!safe_model_name(&p("azure"), "%2e%2e/files"));
        assert!(safe_model_name(&o, "openai/gpt-4o"));
        assert!(!safe_model_name(&o, "a?b"));
        assert!(!safe_model_name(&o, &"x".repeat(300)));
        // Issue 18 §7: other sub-paths and methods.
        assert!(!safe_model_name(&g, "models/a/b/c"));
        assert!(!safe_model_name(
            &g,
            "x:streamGenerateContent:generateContent"
        ));
        assert!(!safe_model_name(&p("azure"), "d:x"));
        assert!(safe_model_name(&o, "ft:gpt-4o-2024-08-06:acme::abc123"));
    }
}
