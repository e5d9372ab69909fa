//! The attempt loop shared by every request path: try the alias's
//! deployments in strategy order, then its fallback aliases, skipping open
//! breakers and unhealthy providers at zero cost; retry retryable failures
//! with backoff and full jitter, honouring `retry-after`, within the retry
//! budget; never retry a client error.
//!
//! Attempt limit: every distinct deployment of the plan gets one try, plus
//! `reliability.retries` repeats. Every attempt after the first withdraws from
//! the retry budget, so a full outage adds at most the budget's share of load.

use crate::error::GatewayError;
use crate::routing::{Alias, Deployment, LimitRejection};
use crate::state::AppState;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::ir::{ApiError, ErrorKind};
use switchyard_core::provider::KeyRef;
use switchyard_core::resilience::{parse_retry_after, InFlight};
use tokio::sync::OwnedSemaphorePermit;

/// How a failed attempt affects what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Another attempt (here or elsewhere) may succeed.
    Retryable,
    /// The request itself is wrong: answer the client now.
    Fatal,
    /// The prompt exceeds the model's context window.
    ContextWindow,
    /// The provider refused on content-policy grounds.
    ContentPolicy,
}

/// A failed attempt.
#[derive(Debug)]
pub struct Failure {
    pub err: GatewayError,
    pub class: Class,
    /// Count against the deployment's breaker.
    pub breaker: bool,
    /// Upstream asked us to wait this long.
    pub retry_after: Option<Duration>,
    /// The provider key was refused (401/403).
    pub bad_key: Option<KeyRef>,
}

impl Failure {
    /// Not the upstream's fault and not worth retrying.
    pub fn fatal(err: GatewayError) -> Self {
        Failure {
            err,
            class: Class::Fatal,
            breaker: false,
            retry_after: None,
            bad_key: None,
        }
    }

    /// The upstream failed in a way another attempt may not.
    pub fn retryable(err: GatewayError) -> Self {
        Failure {
            err,
            class: Class::Retryable,
            breaker: true,
            retry_after: None,
            bad_key: None,
        }
    }

    /// Classify an upstream error response and turn it into the caller's
    /// error (`GatewayError::upstream`: which upstream messages are carried).
    ///
    /// - 400/404/413/422 are the caller's request: never retried, never a
    ///   deployment failure (a "context too long" or content-policy refusal
    ///   may divert to the alias's fallback for it);
    /// - 429 is back-pressure, not a fault: retried (elsewhere first), the
    ///   deployment cools down for its `retry-after`, the breaker is untouched;
    /// - 408, 5xx, 529, and a refused provider key (401/403, or Gemini's 400
    ///   `API_KEY_INVALID`) or account (402): retried and counted by the
    ///   breaker; a refused key also leaves the rotation;
    /// - 409: retried, not counted;
    /// - anything else (a 3xx we do not follow, 405, 410…): answered at once.
    pub fn from_upstream(
        provider: &str,
        status: u16,
        err: ApiError,
        headers: &axum::http::HeaderMap,
        key: Option<KeyRef>,
    ) -> Self {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let retry_after = parse_retry_after(header("retry-after-ms"), header("retry-after"));
        let credentials = refused_credentials(status, &err);
        let class = match status {
            _ if credentials => Class::Retryable,
            400 | 413 | 422 if is_context_window(&err) => Class::ContextWindow,
            400 | 403 | 422 if is_content_policy(&err) => Class::ContentPolicy,
            400 | 404 | 413 | 422 => Class::Fatal,
            402 | 408 | 409 | 429 | 500..=599 => Class::Retryable,
            _ => Class::Fatal,
        };
        Failure {
            breaker: class == Class::Retryable && !matches!(status, 409 | 429),
            bad_key: credentials.then_some(key).flatten(),
            err: GatewayError::upstream(provider, status, err, headers),
            class,
            retry_after,
        }
    }
}

/// The upstream refused the *gateway's* provider key: 401, 403 that is not a
/// content-policy refusal, or an error the dialect decoded as an
/// authentication failure whatever its status (Gemini answers a bad key with
/// 400 `API_KEY_INVALID`).
pub fn refused_credentials(status: u16, e: &ApiError) -> bool {
    e.kind == ErrorKind::Authentication || status == 401 || (status == 403 && !is_content_policy(e))
}

/// Provider messages that mean "the prompt is too long for this model"
/// (OpenAI `context_length_exceeded`, Anthropic "prompt is too long",
/// Gemini "exceeds the maximum number of tokens", and common compatibles).
pub fn is_context_window(e: &ApiError) -> bool {
    if e.code.as_deref() == Some("context_length_exceeded") {
        return true;
    }
    let m = e.message.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "maximum context length",
        "context window",
        "prompt is too long",
        "exceeds the maximum number of tokens",
        "input is too long",
        "too many tokens",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Provider messages that mean a content-policy refusal (OpenAI/Azure
/// `content_policy_violation` / `content_filter`, safety blocks).
pub fn is_content_policy(e: &ApiError) -> bool {
    if matches!(
        e.code.as_deref(),
        Some("content_policy_violation" | "content_filter")
    ) {
        return true;
    }
    let m = e.message.to_ascii_lowercase();
    [
        "content_policy_violation",
        "content management policy",
        "content_filter",
        "violates our usage policies",
        "safety reasons",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// What an attempt may hold for as long as its response lives.
pub struct Slot {
    pub permit: Option<OwnedSemaphorePermit>,
    pub in_flight: InFlight,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// A successful outcome and what it took.
pub struct Done<T> {
    pub value: T,
    pub attempts: u32,
    pub deployment: Arc<Deployment>,
}

/// The order of deployments to try for one request.
struct Plan {
    queue: VecDeque<Arc<Deployment>>,
    fallbacks: VecDeque<String>,
    /// Aliases already planned (a handful: compared, not hashed); only
    /// kept when there are fallbacks to check against it.
    visited_aliases: Vec<String>,
    /// Every deployment the plan has handed out, for later passes.
    seen: Vec<Arc<Deployment>>,
    pass: usize,
}

impl Plan {
    fn new(alias: &Alias) -> Self {
        Plan {
            queue: alias.ordered().into(),
            fallbacks: alias.fallbacks.iter().cloned().collect(),
            visited_aliases: if alias.fallbacks.is_empty() {
                Vec::new()
            } else {
                vec![alias.name.clone()]
            },
            seen: Vec::new(),
            pass: 0,
        }
    }

    /// Jump to a specific alias (context-window / content-policy fallback).
    fn divert(&mut self, alias: &Alias) {
        self.queue = alias.ordered().into();
        self.fallbacks.clear();
        // Later passes must not go back to the deployments that said no.
        self.seen.clear();
        if !self.visited_aliases.contains(&alias.name) {
            self.visited_aliases.push(alias.name.clone());
        }
    }

    fn next(&mut self, state: &AppState) -> Option<Arc<Deployment>> {
        loop {
            if let Some(d) = self.queue.pop_front() {
                if !self.seen.iter().any(|s| Arc::ptr_eq(s, &d)) {
                    self.seen.push(d.clone());
                }
                return Some(d);
            }
            if let Some(f) = self.fallbacks.pop_front() {
                if !self.visited_aliases.contains(&f) {
                    if let Some(a) = state.router.alias(&f) {
                        self.queue = a.ordered().into();
                    }
                    self.visited_aliases.push(f);
                }
                continue;
            }
            // Another pass over everything tried so far (retries).
            self.pass += 1;
            if self.seen.is_empty() || self.pass > 16 {
                return None;
            }
            self.queue = self.seen.iter().cloned().collect();
        }
    }
}

/// Run `attempt` against the alias's deployments until one succeeds or the
/// policy says stop. `attempt` gets the deployment and the slot it must keep
/// alive for as long as its response streams.
///
/// Ejected deployments (breaker open, provider unhealthy, cooling down after
/// a `retry-after`) are passed over at zero cost. When *every* deployment the
/// plan holds (fallbacks included) is ejected, the request is not refused:
/// the plan is walked again as if none were (Envoy's panic mode), so an alias
/// is never less available than its upstream; the retry budget still bounds
/// the load. In that walk a deployment cooling down is waited for when its
/// `retry-after` is within `max_retry_after`; otherwise the caller gets a 429
/// with the time left.
pub async fn run<T, F, Fut>(
    state: &AppState,
    alias: &Arc<Alias>,
    mut attempt: F,
) -> Result<Done<T>, (GatewayError, u32, Option<Arc<Deployment>>)>
where
    F: FnMut(Arc<Deployment>, Slot) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let rel = &state.reliability;
    let started = tokio::time::Instant::now();
    let mut plan = Plan::new(alias);
    let distinct = count_distinct(state, alias);
    let max_attempts = distinct + rel.retries;
    state.retry_budget.deposit();
    let mut attempts = 0u32;
    let mut skipped = 0u32;
    // Deployments passed over because they were ejected.
    let mut ejected = 0u32;
    // Every deployment was ejected: route as if none were.
    let mut panic = false;
    let mut last: Option<GatewayError> = None;
    // Deployments that failed in this request (repeats wait for backoff; a
    // `retry-after` they sent is their cool-down, `Deployment::cooling`).
    let mut failed: HashSet<String> = HashSet::new();
    let mut last_dep: Option<Arc<Deployment>> = None;

    loop {
        while let Some(dep) = plan.next(state) {
            if attempts >= max_attempts || skipped > 64 {
                break;
            }
            if started.elapsed() >= dep.provider.timeouts.total {
                // The request's total time is spent: no new upstream work.
                last.get_or_insert_with(|| {
                    GatewayError::timeout(&dep.provider.name, "the request's total timeout elapsed")
                });
                break;
            }
            let mut wait = Duration::ZERO;
            let tried = failed.contains(&dep.id);
            let cooling = dep.cooling();
            // A deployment this request already tried is waited for (within
            // `max_retry_after`) like any retry; a fresh one is passed over
            // while it cools down, unless nothing else is left (panic).
            let eject = !panic && (!dep.is_available() || (cooling.is_some() && !tried));
            if eject {
                skipped += 1;
                ejected += 1;
                if last.is_none() {
                    last = Some(match cooling {
                        Some(left) => cooling_down(&dep, left),
                        None => unavailable(
                            &dep,
                            "its circuit breaker is open or its provider is unhealthy",
                        ),
                    });
                }
                // A whole pass of unavailable deployments: stop.
                if skipped as usize >= plan.seen.len()
                    && attempts == 0
                    && plan.queue.is_empty()
                    && plan.fallbacks.is_empty()
                {
                    break;
                }
                continue;
            }
            if let Some(left) = cooling {
                if left > rel.max_retry_after {
                    // The upstream wants a longer pause than we wait out: let the
                    // client see a 429 and `retry-after` (unless others succeed).
                    skipped += 1;
                    last.get_or_insert_with(|| cooling_down(&dep, left));
                    if skipped as usize >= plan.seen.len()
                        && attempts == 0
                        && plan.queue.is_empty()
                        && plan.fallbacks.is_empty()
                    {
                        break;
                    }
                    continue;
                }
                wait = left;
            }
            if tried {
                wait = wait.max(rel.backoff.delay(attempts));
            }
            if attempts > 0 && !state.retry_budget.withdraw() {
                tracing::warn!(alias = %alias.name, "retry budget exhausted: not retrying");
                break;
            }
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            // In panic mode an open breaker does not stop the attempt; its
            // outcome is still reported to the breaker.
            let permit = dep.breaker.try_acquire();
            if permit.is_none() && !panic {
                skipped += 1;
                ejected += 1;
                last.get_or_insert_with(|| unavailable(&dep, "its circuit breaker is open"));
                continue;
            }
            let slot_permit = match &dep.limiter {
                None => None,
                Some(l) => match l.acquire().await {
                    Ok(p) => Some(p),
                    Err(why) => {
                        drop(permit);
                        skipped += 1;
                        last = Some(busy(&dep, why, l.max_in_flight));
                        continue;
                    }
                },
            };
            attempts += 1;
            last_dep = Some(dep.clone());
            let slot = Slot {
                permit: slot_permit,
                in_flight: dep.stats.start(),
                attempt: attempts,
            };
            match attempt(dep.clone(), slot).await {
                Ok(value) => {
                    match permit {
                        Some(p) => p.success(),
                        None => dep.breaker.record_success(),
                    }
                    return Ok(Done {
                        value,
                        attempts,
                        deployment: dep,
                    });
                }
                Err(f) => {
                    match permit {
                        Some(p) if f.breaker => p.failure(),
                        Some(p) => drop(p),
                        None if f.breaker => dep.breaker.record_failure(),
                        None => {}
                    }
                    if let Some(k) = f.bad_key {
                        if dep.provider.quarantine_key(k) {
                            tracing::warn!(
                                provider = %dep.provider.name,
                                key_index = k.0,
                                keys_left = dep.provider.keys_in_rotation(),
                                "provider API key refused (401/403): taken out of rotation"
                            );
                        }
                    }
                    tracing::debug!(deployment = %dep.id, class = ?f.class, error = %f.err.error.message, "attempt failed");
                    match f.class {
                        Class::Fatal => return Err((f.err, attempts, last_dep)),
                        Class::ContextWindow | Class::ContentPolicy => {
                            let target = if f.class == Class::ContextWindow {
                                &alias.context_window_fallback
                            } else {
                                &alias.content_policy_fallback
                            };
                            match target.as_deref().and_then(|t| state.router.alias(t)) {
                                Some(a) if !plan.visited_aliases.contains(&a.name) => {
                                    tracing::info!(from = %alias.name, to = %a.name, reason = ?f.class, "diverting to fallback alias");
                                    plan.divert(&a);
                                    last = Some(f.err);
                                }
                                _ => return Err((f.err, attempts, last_dep)),
                            }
                        }
                        Class::Retryable => {
                            if let Some(ra) = f.retry_after {
                                dep.cool_down(ra);
                            }
                            failed.insert(dep.id.clone());
                            last = Some(f.err);
                        }
                    }
                }
            }
        }
        if panic || attempts > 0 || ejected == 0 {
            break;
        }
        // Nothing was tried because everything was ejected: try again as if
        // nothing were.
        tracing::debug!(alias = %alias.name, "every deployment is ejected: routing to them anyway (panic mode)");
        panic = true;
        plan = Plan::new(alias);
        skipped = 0;
        last = None;
    }
    Err((
        last.unwrap_or_else(|| {
            GatewayError::new(
                503,
                ApiError::new(
                    ErrorKind::Overloaded,
                    format!("no deployment of `{}` is available", alias.name),
                ),
            )
        }),
        attempts,
        last_dep,
    ))
}

fn count_distinct(state: &AppState, alias: &Alias) -> u32 {
    let mut n = alias.deployments.len();
    // A fallback list is a handful of names: compare them, no hash set
    // (which cost ~900 instructions per request even with no fallbacks).
    let fallbacks = &alias.fallbacks;
    for (i, f) in fallbacks.iter().enumerate() {
        if *f != alias.name && !fallbacks[..i].contains(f) {
            n += state.router.alias(f).map_or(0, |a| a.deployments.len());
        }
    }
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn unavailable(dep: &Deployment, why: &str) -> GatewayError {
    GatewayError::new(
        503,
        ApiError::new(
            ErrorKind::Overloaded,
            format!(
                "deployment `{}` ({}) is not available: {why}",
                dep.id, dep.provider.name
            ),
        )
        .with_code("deployment_unavailable"),
    )
}

/// The answer when the only deployments left are cooling down for longer
/// than we wait: the upstream's own 429, with the time left.
fn cooling_down(dep: &Deployment, left: Duration) -> GatewayError {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let mut e = GatewayError::new(
        429,
        ApiError::new(
            ErrorKind::RateLimit,
            format!(
                "upstream provider `{}` asked the gateway to wait before sending more requests to deployment `{}`; retry after {secs} s",
                dep.provider.name, dep.id
            ),
        )
        .with_code("upstream_rate_limited"),
    );
    e.headers.push((
        axum::http::HeaderName::from_static("retry-after"),
        axum::http::HeaderValue::from(secs),
    ));
    e
}

fn busy(dep: &Deployment, why: LimitRejection, max: usize) -> GatewayError {
    let (status, what) = match why {
        LimitRejection::QueueFull => (429, "its queue is full"),
        LimitRejection::QueueTimeout => (503, "no slot freed up within the queue timeout"),
    };
    let mut e = GatewayError::new(
        status,
        ApiError::new(ErrorKind::RateLimit, format!("deployment `{}` is at its concurrency limit ({max} in flight) and {what}; retry shortly", dep.id))
            .with_code("concurrency_limit"),
    );
    if status == 429 {
        e.headers.push((
            axum::http::HeaderName::from_static("retry-after"),
            axum::http::HeaderValue::from_static("1"),
        ));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, err: ApiError) -> (Class, bool, bool) {
        let f = Failure::from_upstream(
            "p",
            status,
            err,
            &axum::http::HeaderMap::new(),
            Some(KeyRef(0)),
        );
        (f.class, f.breaker, f.bad_key.is_some())
    }

    #[test]
    fn only_the_deployments_own_faults_count_against_its_breaker() {
        let e = |s: u16| ApiError::new(ErrorKind::from_status(s), "m");
        for s in [400, 404, 413, 422] {
            assert_eq!(classify(s, e(s)), (Class::Fatal, false, false), "{s}");
        }
        for s in [429, 409] {
            assert_eq!(classify(s, e(s)), (Class::Retryable, false, false), "{s}");
        }
        for s in [402, 408, 500, 502, 503, 504, 529] {
            assert_eq!(classify(s, e(s)), (Class::Retryable, true, false), "{s}");
        }
        for s in [401, 403] {
            assert_eq!(classify(s, e(s)), (Class::Retryable, true, true), "{s}");
        }
        // Gemini's bad key is a 400 that decodes as an authentication error.
        let gemini = ApiError::new(ErrorKind::Authentication, "API key not valid");
        assert_eq!(classify(400, gemini), (Class::Retryable, true, true));
        let long = ApiError::invalid("This model's maximum context length is 8192 tokens")
            .with_code("context_length_exceeded");
        assert_eq!(classify(400, long), (Class::ContextWindow, false, false));
        let policy = ApiError::new(ErrorKind::PermissionDenied, "x").with_code("content_filter");
        assert_eq!(classify(403, policy), (Class::ContentPolicy, false, false));
        assert_eq!(classify(307, e(307)), (Class::Fatal, false, false));
    }

    #[test]
    fn a_retry_after_is_read_from_either_header() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("retry-after", axum::http::HeaderValue::from_static("3"));
        let f =
            Failure::from_upstream("p", 429, ApiError::new(ErrorKind::RateLimit, "x"), &h, None);
        assert_eq!(f.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(f.err.status.as_u16(), 429);
        assert_eq!(
            f.err.error.message,
            "upstream provider `p` is rate limiting the gateway (429); retry later"
        );
    }
}
