//! The request pipeline: peek → resolve alias → pick deployment → translate
//! (or pass through) → forward → relay the answer in the client's dialect,
//! with a usage record for every outcome.
//!
//! Pass-through (client dialect = provider dialect, no quirks): the body is
//! forwarded with only `model` spliced in, and the response bytes are relayed
//! as they are while a tap reads `usage`. Otherwise the request goes through
//! the IR: `codec::decode_request` → `codec::encode_request`, and the answer
//! back through `codec::decode_response` / the stream state machines.

use crate::attempt::{self, Failure, Slot};
use crate::cache::Directive;
use crate::codec::{self, StreamDecoder, StreamEncoder};
use crate::error::GatewayError;
use crate::governance::{Admission, Governance, Principal, Unpriced};
use crate::peek;
use crate::routing::{Alias, Deployment};
use crate::state::AppState;
use crate::upstream;
use crate::usage::{UsageRecord, UsageSink};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_core::dialect::{anthropic, openai, Dialect};
use switchyard_core::ir::{ApiError, ChatRequest, ErrorKind, StreamEvent, Usage};
use switchyard_core::json_scan;
use switchyard_core::pii;
use switchyard_core::pricing;
use switchyard_core::sse::{write_event, SseDecoder, SseFrame};
use tokio::time::Instant;

/// Per-request facts set by the HTTP layer.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub request_id: String,
    pub started: Instant,
    /// Who is calling (set by the auth layer).
    pub principal: Option<Principal>,
    /// What the caller's `Cache-Control` asks of the response cache.
    pub cache: Directive,
}

/// Response header names, built at compile time.
const X_ATTEMPTS: header::HeaderName = header::HeaderName::from_static("x-switchyard-attempts");
const X_PATH: header::HeaderName = header::HeaderName::from_static("x-switchyard-path");

/// Largest upstream response body read into memory (non-streaming).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// Handle a chat request arriving in `ingress` format.
pub async fn chat(
    state: Arc<AppState>,
    ingress: Dialect,
    body: Bytes,
    ctx: RequestCtx,
) -> Response {
    match chat_inner(&state, ingress, &body, &ctx).await {
        Ok(r) => r,
        Err(e) => e.render(ingress),
    }
}

/// What is known about a request once routed, for its usage record.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// Shared (not copied) by the clones each attempt makes.
    pub request_id: Arc<str>,
    pub started: Instant,
    pub alias: Arc<str>,
    pub deployment: Option<Arc<Deployment>>,
    pub ingress: &'static str,
    pub stream: bool,
    pub passthrough: bool,
    pub attempts: u32,
    /// Who pays, and what admission reserved (settled by `record`).
    pub account: Option<Arc<Account>>,
    /// Set by the first `emit`: one record per request, whatever happens.
    pub recorded: Arc<std::sync::atomic::AtomicBool>,
    /// Answered from the response cache: no upstream call, nothing billed.
    pub cache_hit: bool,
    /// The usage-journal segment this request writes its records to, held
    /// until the request is over (`store::journal`); `None` when off.
    pub journal: Option<Arc<crate::store::journal::Segment>>,
}

/// Who pays for a request and what admission reserved for it.
#[derive(Debug)]
pub struct Account {
    pub principal: Principal,
    pub admission: Admission,
    pub governance: Option<Arc<Governance>>,
    /// Prompt-token estimate, used when the provider reports no usage.
    pub prompt_estimate: u64,
}

/// The price of a deployment's usage: the configured price, else the
/// bundled table, else the provider's `default_price`, else zero (unknown
/// models are not billed by guess: their rows are flagged `unpriced`, and
/// a cost budget refuses them at admission, see [`worst_case`]).
pub fn cost_of(dep: &Deployment, usage: &Usage) -> f64 {
    match dep.price {
        Some(p) => pricing::cost_with(
            &pricing::Price::new(p.input, p.output).with_cached_input(p.cached_input),
            usage,
        ),
        None => match dep.table_price() {
            Some(m) => pricing::cost(m, usage),
            None => dep
                .provider
                .default_price
                .map_or(0.0, |p| pricing::cost_with(&p, usage)),
        },
    }
}

impl Meta {
    /// Send the request's usage record — only the first call per request
    /// does anything — and settle its admission.
    pub fn emit(
        &self,
        sink: &UsageSink,
        status: u16,
        usage: Option<Usage>,
        ttft: Option<Duration>,
        error: Option<String>,
    ) {
        if !self
            .recorded
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let r = self.record(status, usage, ttft, error);
            match &self.journal {
                None => {
                    sink.record(r);
                }
                Some(seg) => {
                    // In the kernel before the client has its answer.
                    seg.finished(&r.to_row());
                    seg.queued();
                    if !sink.record(r) {
                        seg.not_queued();
                    }
                }
            }
        }
    }

    /// Journal that this attempt is about to reach `dep` (a no-op when the
    /// journal is off): if the process dies before the request records
    /// itself, the next start bills it from this.
    pub fn journal_started(&self, dep: &Deployment, attempt: u32) {
        let Some(seg) = &self.journal else { return };
        let p = self.account.as_ref().map(|a| &a.principal);
        let prompt = self.account.as_ref().map_or(0, |a| a.prompt_estimate);
        let usage = Usage {
            input_tokens: prompt,
            ..Usage::default()
        };
        let ts = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let b = std::borrow::Cow::Borrowed;
        seg.started(&crate::store::journal::Started {
            request_id: b(&self.request_id),
            ts,
            tenant_id: p.and_then(|p| p.tenant_id.as_deref()).map(b),
            user_id: p.and_then(|p| p.user_id.as_deref()).map(b),
            key_id: p.and_then(|p| p.key_id.as_deref()).map(b),
            alias: b(&self.alias),
            provider: b(&dep.provider.name),
            deployment: b(&dep.id),
            upstream_model: b(&dep.model),
            ingress: b(self.ingress),
            stream: self.stream,
            input_tokens: i64::try_from(prompt).unwrap_or(i64::MAX),
            cost: cost_of(dep, &usage),
            attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
            unpriced: !dep.has_own_price(),
        });
    }

    /// Record a refusal (its status and message) and hand the error back.
    pub fn refuse(&self, sink: &UsageSink, e: GatewayError) -> GatewayError {
        self.emit(
            sink,
            e.status.as_u16(),
            None,
            None,
            Some(e.error.message.clone()),
        );
        e
    }

    /// The usage record (and the admission's settlement); use `emit`.
    fn record(
        &self,
        status: u16,
        usage: Option<Usage>,
        ttft: Option<Duration>,
        error: Option<String>,
    ) -> UsageRecord {
        let d = self.deployment.as_deref();
        let (usage, estimated) = match (usage, &self.account) {
            _ if self.cache_hit => (Some(Usage::default()), false),
            (Some(u), _) => (Some(u), false),
            // Served (or abandoned by the client after the upstream started):
            // the prompt was billed even if no usage was reported.
            (None, Some(a)) if status == 200 || (status == 499 && self.deployment.is_some()) => (
                Some(Usage {
                    input_tokens: a.prompt_estimate,
                    ..Usage::default()
                }),
                true,
            ),
            (None, _) => (None, false),
        };
        let cost = match (d, &usage) {
            _ if self.cache_hit => 0.0,
            (Some(d), Some(u)) => cost_of(d, u),
            _ => 0.0,
        };
        if let Some(a) = &self.account {
            if let Some(g) = &a.governance {
                g.settle(&a.admission, usage.map_or(0, |u| u.total_tokens()), cost);
            }
        }
        let p = self.account.as_ref().map(|a| &a.principal);
        UsageRecord {
            tenant_id: p.and_then(|p| p.tenant_id.clone()),
            user_id: p.and_then(|p| p.user_id.clone()),
            key_id: p.and_then(|p| p.key_id.clone()),
            cost,
            estimated,
            unpriced: !self.cache_hit && d.is_some_and(|d| !d.has_own_price()),
            request_id: self.request_id.to_string(),
            time: SystemTime::now(),
            alias: self.alias.to_string(),
            provider: if self.cache_hit {
                "cache".to_owned()
            } else {
                d.map(|d| d.provider.name.clone()).unwrap_or_default()
            },
            deployment: d.map(|d| d.id.clone()).unwrap_or_default(),
            upstream_model: d.map(|d| d.model.clone()).unwrap_or_default(),
            ingress: self.ingress,
            stream: self.stream,
            passthrough: self.passthrough,
            usage,
            status,
            latency: self.started.elapsed(),
            ttft,
            error,
            attempts: self.attempts,
            cache_hit: self.cache_hit,
        }
    }
}

/// Request facts every attempt shares.
struct Job<'a> {
    state: &'a AppState,
    ingress: Dialect,
    body: &'a Bytes,
    peek: &'a peek::Peek<'a>,
    /// The decoded request, when some deployment needs translation.
    ir: Option<&'a ChatRequest>,
    ctx: &'a RequestCtx,
    /// Where a successful answer is stored, when the cache applies.
    cache_key: Option<crate::cache::Key>,
    /// `x-switchyard-pii` of this request (kept with a cached answer).
    pii_header: Option<HeaderValue>,
    /// The request's record-to-be; attempts fill in the deployment.
    meta: Meta,
}

async fn chat_inner(
    state: &AppState,
    ingress: Dialect,
    original: &Bytes,
    ctx: &RequestCtx,
) -> Result<Response, GatewayError> {
    let peek = peek::peek(original)?;
    let choices = peek.choices()?;
    let mut alias = state
        .router
        .resolve(&peek.model)
        .ok_or_else(|| state.router.unresolved(&peek.model))?;
    if let Some(p) = &ctx.principal {
        authorize(p, &peek.model)?;
    }
    let mut headers = Vec::new();
    // Decode once, up front, only if some deployment in the plan needs the IR.
    let stream = peek.stream;
    let decode = |alias: &Alias, body: &Bytes| -> Result<Option<ChatRequest>, GatewayError> {
        if needs_translation(state, alias, ingress) {
            let mut ir = codec::decode_request(ingress, body)?;
            ir.stream = stream;
            Ok(Some(ir))
        } else {
            Ok(None)
        }
    };
    let mut ir = decode(&alias, original)?;
    let (account, downgrade) = match (&state.governance, &ctx.principal) {
        (Some(gov), Some(p)) if !p.master && p.tenant_id.is_some() => {
            let prompt = match &ir {
                Some(ir) => pricing::estimate_prompt_tokens(ir),
                None => pricing::estimate_tokens_of_bytes(original.len()),
            };
            let (tokens, cost, unpriced) =
                worst_case(state, &alias, prompt, peek.max_tokens, choices);
            let applies = |m: &str| limit_applies(state, &alias, m);
            let admission =
                gov.admit_for(p, &alias.name, &applies, tokens, cost, unpriced.as_ref())?;
            headers.extend(admission.headers.iter().cloned());
            let downgrade = admission.downgrade_to.clone();
            (
                Some(Arc::new(Account {
                    principal: p.clone(),
                    admission,
                    governance: Some(gov.clone()),
                    prompt_estimate: prompt,
                })),
                downgrade,
            )
        }
        (_, Some(p)) => (
            Some(Arc::new(Account {
                principal: p.clone(),
                admission: Admission::default(),
                governance: None,
                prompt_estimate: 0,
            })),
            None,
        ),
        _ => (None, None),
    };
    let meta = Meta {
        request_id: Arc::from(ctx.request_id.as_str()),
        started: ctx.started,
        alias: Arc::from(alias.name.as_str()),
        deployment: None,
        ingress: ingress.as_str(),
        stream: peek.stream,
        passthrough: false,
        attempts: 0,
        account,
        recorded: Arc::default(),
        cache_hit: false,
        journal: journal_segment(state),
    };
    // From here on the request is accounted for whatever happens: if this
    // future is dropped (client gone, timeout), the guard records it and
    // settles its reservations.
    let mut pending = Pending {
        sink: &state.usage,
        meta: &meta,
        armed: true,
    };
    // A refusal from here on is recorded (and its reservations settled).
    let refuse = |e: GatewayError| meta.refuse(&state.usage, e);
    if let Some(a) = downgrade.and_then(|to| state.router.alias(&to)) {
        // The reservation priced the alias asked for: under a cost budget
        // the downgrade target must have a known price too.
        let cost_budget = meta
            .account
            .as_ref()
            .and_then(|a| a.admission.cost_budget.as_ref());
        if let Some(b) = cost_budget {
            if let Some(u) = first_unpriced(state, &a) {
                return Err(refuse(u.refusal(b)));
            }
        }
        tracing::info!(from = %alias.name, to = %a.name, "budget exhausted: downgrading");
        alias = a;
        ir = decode(&alias, original).map_err(refuse)?;
    }
    // The response cache: a hit is answered here, after admission and
    // before anything else. The key covers the body as received; masking
    // is deterministic, so equal bodies were masked alike.
    let lookup = crate::cache::Lookup::new(
        state.cache.as_ref(),
        !peek.stream && alias.cache,
        ctx,
        ingress.as_str(),
        &alias.name,
        original,
    );
    // The record names the alias actually used (after a downgrade).
    let routed = Meta {
        alias: if *meta.alias == *alias.name {
            meta.alias.clone()
        } else {
            Arc::from(alias.name.as_str())
        },
        ..meta.clone()
    };
    if let Some(e) = &lookup.hit {
        pending.armed = false;
        let hit = Meta {
            deployment: e.deployment.clone(),
            passthrough: e.passthrough,
            cache_hit: true,
            ..routed
        };
        hit.emit(&state.usage, 200, None, None, None);
        let mut resp = ok_response(&hit, e.body.clone(), "application/json");
        let h = resp.headers_mut();
        e.decorate(h);
        for (k, v) in headers {
            h.insert(k, v);
        }
        return Ok(resp);
    }
    // Personal data is masked (or the request refused) before the prompt
    // goes anywhere: translation, the upstream, the cache entry.
    let kind = match ingress {
        Dialect::Anthropic => pii::BodyKind::AnthropicMessages,
        _ => pii::BodyKind::OpenAiChat,
    };
    let checked = crate::guard::screen(state, ctx, &alias, kind, original).map_err(refuse)?;
    let body = checked.body.as_ref().unwrap_or(original);
    // `peek` holds offsets into the body it read: re-read masked bytes,
    // and translate from them.
    let peek = match &checked.body {
        Some(m) => {
            let p = peek::peek(m).map_err(|e| refuse(e.into()))?;
            if ir.is_some() {
                ir = decode(&alias, m).map_err(refuse)?;
            }
            p
        }
        None => peek,
    };
    if let Some(h) = &checked.header {
        headers.push((crate::guard::X_PII, h.clone()));
    }
    if state.cache.is_some() && !peek.stream {
        headers.push((crate::cache::X_CACHE, lookup.status()));
    }
    let job = Job {
        state,
        ingress,
        body,
        peek: &peek,
        ir: ir.as_ref(),
        ctx,
        cache_key: lookup.key,
        pii_header: checked.header.clone(),
        meta: routed,
    };
    let result = attempt::run(state, &alias, |dep, slot| attempt_chat(&job, dep, slot)).await;
    // The outcome records itself now (below, in the attempt, or when the
    // stream ends).
    pending.armed = false;
    match result {
        Ok(done) => {
            let mut resp = done.value;
            let h = resp.headers_mut();
            h.insert(X_ATTEMPTS, count_value(done.attempts));
            for (k, v) in headers {
                h.insert(k, v);
            }
            Ok(resp)
        }
        Err((mut e, attempts, last)) => {
            let meta = Meta {
                deployment: last,
                attempts,
                ..job.meta.clone()
            };
            meta.emit(
                &state.usage,
                e.status.as_u16(),
                None,
                None,
                Some(e.error.message.clone()),
            );
            e.headers.push((X_ATTEMPTS, count_value(attempts)));
            e.headers.extend(headers);
            Err(e)
        }
    }
}

/// The usage-journal segment for a new request, when the journal is on.
pub(crate) fn journal_segment(state: &AppState) -> Option<Arc<crate::store::journal::Segment>> {
    state
        .governance
        .as_ref()
        .and_then(|g| g.journal.as_ref())
        .map(|j| j.current())
}

/// Records a request whose handling was abandoned (the future dropped)
/// before it produced its own record. A no-op once a record exists.
struct Pending<'a> {
    sink: &'a UsageSink,
    meta: &'a Meta,
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Only reached with nothing recorded when the future is cancelled
        // mid-flight, or on an early `?` return: both mean no response.
        self.meta.emit(
            self.sink,
            499,
            None,
            None,
            Some("request abandoned before a response".into()),
        );
    }
}

/// May this caller call this model?
pub(crate) fn authorize(p: &Principal, model: &str) -> Result<(), GatewayError> {
    if !p.may_call_models() {
        return Err(GatewayError::new(
            403,
            ApiError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "keys with the `{}` role cannot call models",
                    p.role.as_str()
                ),
            )
            .with_code("permission_denied"),
        ));
    }
    if !p.may_use(model) {
        return Err(GatewayError::new(
            403,
            ApiError::new(
                ErrorKind::PermissionDenied,
                format!("this API key is not allowed to use the model `{model}`"),
            )
            .with_code("model_not_allowed"),
        ));
    }
    Ok(())
}

/// Every deployment a request to `alias` may reach: its own, then those of
/// its fallback, context-window and content-policy fallback aliases (the
/// attempt loop does not follow a fallback's own fallbacks).
pub(crate) fn each_reachable(state: &AppState, alias: &Alias, mut f: impl FnMut(&Arc<Deployment>)) {
    alias.deployments.iter().for_each(&mut f);
    for a in state.router.fallback_aliases(alias) {
        a.deployments.iter().for_each(&mut f);
    }
}

/// Does a rate limit scoped to the model `limited` apply to a request for
/// `alias`? Yes when `alias` is `limited`, or when the request may reach
/// a deployment of `limited` (same provider, same upstream model) — e.g.
/// through a `provider/model` route or a fallback.
pub(crate) fn limit_applies(state: &AppState, alias: &Alias, limited: &str) -> bool {
    if alias.name == limited {
        return true;
    }
    let Some(target) = state.router.alias(limited) else {
        return false;
    };
    let mut hit = false;
    each_reachable(state, alias, |d| {
        hit = hit
            || target
                .deployments
                .iter()
                .any(|t| t.provider.name == d.provider.name && t.model == d.model);
    });
    hit
}

/// The first deployment `alias` may reach whose cost cannot be computed.
pub(crate) fn first_unpriced(state: &AppState, alias: &Alias) -> Option<Unpriced> {
    let mut found = None;
    each_reachable(state, alias, |d| {
        if found.is_none() && !d.is_priced() {
            found = Some(Unpriced {
                provider: d.provider.name.clone(),
                model: d.model.clone(),
            });
        }
    });
    found
}

/// Worst-case tokens and cost of a request: prompt estimate plus the most
/// output it may produce (`choices` times the output cap: OpenAI `n`), at the highest price among the deployments (and
/// fallbacks) it may reach that have a price; and the first of them with no
/// known price, if any: a cost budget then fails closed (`Governance::admit`).
fn worst_case(
    state: &AppState,
    alias: &Alias,
    prompt: u64,
    max_tokens: Option<u64>,
    choices: u64,
) -> (u64, f64, Option<Unpriced>) {
    let mut worst_out = 0u64;
    let mut worst_cost = 0.0f64;
    let mut unpriced = None;
    each_reachable(state, alias, |d| {
        let table = d.table_price();
        let out = pricing::max_output_tokens(
            max_tokens.map(|m| u32::try_from(m).unwrap_or(u32::MAX)),
            table,
        )
        .saturating_mul(choices);
        worst_out = worst_out.max(out);
        if unpriced.is_none() && !d.is_priced() {
            unpriced = Some(Unpriced {
                provider: d.provider.name.clone(),
                model: d.model.clone(),
            });
        }
        let u = Usage {
            input_tokens: prompt,
            output_tokens: out,
            ..Usage::default()
        };
        worst_cost = worst_cost.max(cost_of(d, &u));
    });
    (prompt.saturating_add(worst_out), worst_cost, unpriced)
}

/// Does any deployment this alias may use speak another dialect (or need quirks)?
fn needs_translation(state: &AppState, alias: &Alias, ingress: Dialect) -> bool {
    let direct = |a: &Alias| {
        a.deployments
            .iter()
            .any(|d| d.provider.dialect() != ingress || !d.provider.passthrough_ok())
    };
    direct(alias) || state.router.fallback_aliases(alias).any(|a| direct(&a))
}

/// One attempt against one deployment. On success the response is ready to
/// send (streams: the first bytes are in hand, so failing over is no longer
/// possible and no longer needed).
async fn attempt_chat(
    job: &Job<'_>,
    dep: Arc<Deployment>,
    slot: Slot,
) -> Result<Response, Failure> {
    let state = job.state;
    let provider = dep.provider.clone();
    let pd = provider.dialect();
    let ingress = job.ingress;
    let passthrough = pd == ingress && provider.passthrough_ok();
    let stream = job.peek.stream;
    let client_wants_usage = ingress == Dialect::OpenAi && job.peek.include_usage;
    // The client forbade parallel tool calls; providers without that switch
    // (Gemini) may still make several: keep the first, as the client expects.
    let one_tool_call = !passthrough
        && job
            .ir
            .is_some_and(|ir| ir.parallel_tool_calls == Some(false));
    let upstream_body = match (passthrough, job.ir) {
        (true, _) => job
            .peek
            .rewrite(job.body, &dep.model, ingress == Dialect::OpenAi && stream),
        (false, Some(ir)) => codec::encode_request(pd, ir, &dep.model, &provider.quirks)
            .map_err(|e| Failure::fatal(GatewayError::client(e)))?,
        (false, None) => {
            // Unreachable by construction (`needs_translation`); decode now rather than fail.
            let mut ir = codec::decode_request(ingress, job.body)
                .map_err(|e| Failure::fatal(GatewayError::client(e)))?;
            ir.stream = stream;
            codec::encode_request(pd, &ir, &dep.model, &provider.quirks)
                .map_err(|e| Failure::fatal(GatewayError::client(e)))?
        }
    };
    let meta = Meta {
        deployment: Some(dep.clone()),
        passthrough,
        attempts: slot.attempt,
        ..job.meta.clone()
    };
    let client = state.clients.get(&provider.name).ok_or_else(|| {
        Failure::retryable(GatewayError::unreachable(&provider.name, "no HTTP client"))
    })?;
    let uri = dep
        .chat_uri(stream)
        .map_err(|m| Failure::fatal(GatewayError::unreachable(&provider.name, &m)))?;
    let attempt_started = Instant::now();
    // Headers (and, non-streaming, the whole body) within the first-byte
    // timeout, and never past the request's total: one timer for both.
    let deadline = (attempt_started + provider.timeouts.first_byte)
        .min(job.ctx.started + provider.timeouts.total);
    let (headers, key) = provider.request_headers();
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let req = upstream::post(uri, headers, upstream_body, accept);
    meta.journal_started(&dep, slot.attempt);
    let answer = exchange(client, &provider.name, req, stream, deadline)
        .await
        .map_err(Failure::retryable)?;
    let resp = match answer {
        Answer::Whole(parts, bytes) if !parts.status.is_success() => {
            let status = parts.status.as_u16();
            let err = codec::decode_error(pd, status, &bytes);
            return Err(Failure::from_upstream(
                &provider.name,
                status,
                err,
                &parts.headers,
                key,
            ));
        }
        Answer::Whole(_, bytes) => {
            let (out, usage) = if passthrough {
                // The body is relayed as is, but never as a 200 if it is not JSON.
                // One pass in the common case: usage extraction deserialises the
                // whole body (unknown fields skipped but syntax-checked, trailing
                // bytes rejected), so when it finds usage the body is valid JSON;
                // only a body without usage needs the separate validation.
                let usage = codec::extract_usage(pd, &bytes);
                if usage.is_none() {
                    if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                        return Err(Failure::retryable(GatewayError::bad_upstream(
                            &provider.name,
                            &format!("the body is not valid JSON ({err})"),
                        )));
                    }
                }
                (bytes, usage)
            } else {
                match codec::decode_response(pd, &bytes, &dep.model) {
                    Ok(mut r) => {
                        if one_tool_call {
                            for c in &mut r.choices {
                                c.message.tool_calls.truncate(1);
                            }
                        }
                        (Bytes::from(codec::encode_response(ingress, &r)), r.usage)
                    }
                    Err(err) => {
                        return Err(Failure::retryable(GatewayError::bad_upstream(
                            &provider.name,
                            &err.message,
                        )))
                    }
                }
            };
            dep.stats.observe_latency(attempt_started.elapsed());
            if let (Some(c), Some(k)) = (&state.cache, job.cache_key) {
                c.keep(k, &out, &dep, passthrough, job.pii_header.clone());
            }
            meta.emit(&state.usage, 200, usage, None, None);
            drop(slot);
            return Ok(ok_response(&meta, out, "application/json"));
        }
        Answer::Streaming(resp) => resp,
    };

    let mode = if passthrough {
        Mode::Passthrough {
            reframe: ingress == Dialect::OpenAi && !client_wants_usage,
        }
    } else {
        Mode::Translate {
            dec: Box::new(StreamDecoder::new(pd, &dep.model)),
            enc: Box::new(StreamEncoder::new(ingress, client_wants_usage)),
            one_tool_call,
        }
    };
    let first_byte_deadline = attempt_started + provider.timeouts.first_byte;
    let mut relay = Relay {
        upstream: resp.into_body(),
        timer: Box::pin(tokio::time::sleep_until(first_byte_deadline)),
        last_data: Instant::now(),
        sse: SseDecoder::new(),
        frames: Vec::new(),
        events: Vec::new(),
        mode,
        ingress,
        upstream_dialect: pd,
        usage: None,
        terminal: false,
        done: false,
        failure: None,
        committed: false,
        idle: provider.timeouts.idle,
        first_byte_deadline: first_byte_deadline.min(job.ctx.started + provider.timeouts.total),
        deadline: job.ctx.started + provider.timeouts.total,
        deployment: dep.clone(),
        guard: Guard {
            sink: state.usage.clone(),
            meta,
            ttft: Duration::ZERO,
            status: 499,
            usage: None,
            error: Some("client disconnected".into()),
            armed: false,
        },
        _slot: slot,
    };
    // Hold the response until the first bytes are in hand: a failure before
    // then is still retryable elsewhere.
    let first = relay.pull().await;
    if let Some(f) = relay.failure.take() {
        return Err(f);
    }
    relay.committed = true;
    relay.guard.armed = true;
    relay.guard.ttft = job.ctx.started.elapsed();
    // The first bytes may already hold the whole answer.
    relay.record_if_complete();
    dep.stats.observe_latency(attempt_started.elapsed());
    let mut resp = stream_response(&relay.guard.meta, Body::empty());
    let body = futures::stream::iter(first.map(Ok::<_, std::convert::Infallible>))
        .chain(relay.into_stream());
    *resp.body_mut() = Body::from_stream(body);
    Ok(resp)
}

/// A small count as a header value, without formatting (and allocating)
/// in the common cases.
pub(crate) fn count_value(n: u32) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match DIGITS.get(n as usize) {
        Some(d) => HeaderValue::from_static(d),
        None => HeaderValue::from(n),
    }
}

/// An upstream answer: read whole (non-streaming, or any error status), or
/// a successful stream still to be relayed.
pub(crate) enum Answer {
    Whole(http::response::Parts, Bytes),
    Streaming(http::Response<upstream::ResponseBody>),
}

/// Send the upstream request and, unless it is a successful stream, read
/// the whole answer, all before `deadline`.
pub(crate) async fn exchange(
    client: &upstream::Client,
    provider: &str,
    req: http::Request<upstream::Body>,
    stream: bool,
    deadline: Instant,
) -> Result<Answer, GatewayError> {
    let head = std::sync::atomic::AtomicBool::new(false);
    let fut = async {
        let resp = client.send(req).await.map_err(|e| match e {
            upstream::SendError::ConnectTimeout => {
                GatewayError::timeout(provider, "connect timeout")
            }
            upstream::SendError::Failed(m) => GatewayError::unreachable(provider, &m),
        })?;
        head.store(true, std::sync::atomic::Ordering::Relaxed);
        let ok = resp.status().is_success();
        if stream && ok {
            return Ok(Answer::Streaming(resp));
        }
        let (parts, body) = resp.into_parts();
        let cap = if ok { MAX_UPSTREAM_BODY } else { 1024 * 1024 };
        match upstream::read_body(body, cap).await {
            Ok(bytes) => Ok(Answer::Whole(parts, bytes)),
            // An error status stands even if its body was cut short.
            Err(_) if !ok => Ok(Answer::Whole(parts, Bytes::new())),
            Err(m) => Err(GatewayError::bad_upstream(provider, &m)),
        }
    };
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) if head.load(std::sync::atomic::Ordering::Relaxed) => Err(GatewayError::timeout(
            provider,
            "response body not complete within the first-byte timeout",
        )),
        Err(_) => Err(GatewayError::timeout(
            provider,
            "no response headers within the first-byte timeout",
        )),
    }
}

/// The deployment's prepared `x-switchyard-*` headers and the path taken.
fn route_headers(h: &mut HeaderMap, meta: &Meta) {
    if let Some(d) = &meta.deployment {
        for (name, value) in d.route_headers() {
            h.insert(name.clone(), value.clone());
        }
    }
    h.insert(
        X_PATH,
        HeaderValue::from_static(if meta.passthrough {
            "passthrough"
        } else {
            "translated"
        }),
    );
}

/// A 200 with `ctype` and the route headers, built in place (the response
/// builder wraps every step in a `Result`).
fn ok_with(meta: &Meta, body: Body, fixed: &[(HeaderName, &'static str)]) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.reserve(fixed.len() + 5);
    for (name, value) in fixed {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
    route_headers(h, meta);
    r
}

fn ok_response(meta: &Meta, body: Bytes, ctype: &'static str) -> Response {
    ok_with(meta, Body::from(body), &[(header::CONTENT_TYPE, ctype)])
}

fn stream_response(meta: &Meta, body: Body) -> Response {
    const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
    ok_with(
        meta,
        body,
        &[
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (X_ACCEL_BUFFERING, "no"),
        ],
    )
}

/// How stream bytes are produced.
enum Mode {
    /// Same dialect: relay upstream bytes. `reframe` = drop the usage-only
    /// chunk the gateway asked for but the client did not (OpenAI).
    Passthrough { reframe: bool },
    /// Different dialects: upstream frames → IR events → client frames.
    Translate {
        dec: Box<StreamDecoder>,
        enc: Box<StreamEncoder>,
        /// Drop tool calls after the first (client set `parallel_tool_calls: false`).
        one_tool_call: bool,
    },
}

/// Records usage when the stream ends — however it ends (client
/// disconnect drops the stream, and with it this guard). Disarmed while the
/// attempt may still fail over, so a failed attempt leaves no record.
struct Guard {
    sink: UsageSink,
    meta: Meta,
    ttft: Duration,
    status: u16,
    usage: Option<Usage>,
    error: Option<String>,
    armed: bool,
}

impl Guard {
    /// Record now (once); the drop then does nothing.
    fn emit_now(&mut self) {
        if self.armed {
            self.armed = false;
            self.meta.emit(
                &self.sink,
                self.status,
                self.usage,
                Some(self.ttft),
                self.error.take(),
            );
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            self.meta.emit(
                &self.sink,
                self.status,
                self.usage,
                Some(self.ttft),
                self.error.take(),
            );
        }
    }
}

struct Relay {
    upstream: upstream::ResponseBody,
    /// Fires at the first-byte, idle or total limit; re-armed lazily (only
    /// when it fires early), not once per chunk.
    timer: Pin<Box<tokio::time::Sleep>>,
    /// When the last upstream data arrived (the idle timeout's origin).
    last_data: Instant,
    sse: SseDecoder,
    frames: Vec<SseFrame>,
    events: Vec<StreamEvent>,
    mode: Mode,
    ingress: Dialect,
    upstream_dialect: Dialect,
    usage: Option<Usage>,
    /// The upstream sent its terminal event (`[DONE]`, `message_stop`, a finish).
    terminal: bool,
    done: bool,
    /// Set when the stream failed before the client saw a byte.
    failure: Option<Failure>,
    /// The client has the response: failures now end the stream in-band.
    committed: bool,
    idle: Duration,
    /// Until the first output, the first-byte timeout applies.
    first_byte_deadline: Instant,
    deadline: Instant,
    deployment: Arc<Deployment>,
    guard: Guard,
    /// Concurrency slot and in-flight mark, held for the stream's life.
    _slot: Slot,
}

impl Relay {
    fn into_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
        futures::stream::unfold(
            self,
            |mut r| async move { r.pull().await.map(|b| (Ok(b), r)) },
        )
    }

    /// The next non-empty output, or `None` at the end.
    async fn pull(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            let limit = if self.committed {
                (self.last_data + self.idle).min(self.deadline)
            } else {
                self.first_byte_deadline
            };
            if self.timer.deadline() > limit {
                self.timer.as_mut().reset(limit);
            }
            let (up, timer) = (&mut self.upstream, &mut self.timer);
            let next = std::future::poll_fn(|cx| {
                use hyper::body::Body as _;
                if let std::task::Poll::Ready(f) = Pin::new(&mut *up).poll_frame(cx) {
                    return std::task::Poll::Ready(Some(f));
                }
                if std::future::Future::poll(timer.as_mut(), cx).is_ready() {
                    return std::task::Poll::Ready(None);
                }
                std::task::Poll::Pending
            })
            .await;
            let out = match next {
                None => {
                    let now = Instant::now();
                    if now < limit {
                        // Armed for an earlier limit; data came since.
                        self.timer.as_mut().reset(limit);
                        continue;
                    }
                    let what = if !self.committed {
                        "no data within the first-byte timeout"
                    } else if now >= self.deadline {
                        "total timeout"
                    } else {
                        "no data within the idle timeout"
                    };
                    let msg = format!(
                        "upstream provider `{}` stream stalled: {what}",
                        self.deployment.provider.name
                    );
                    self.fail(ApiError::new(ErrorKind::Timeout, msg), 504)
                }
                Some(next) => self.on_frame(next),
            };
            if !out.is_empty() {
                let out = if self.committed && !self.done {
                    self.coalesce(out).await
                } else {
                    out
                };
                self.record_if_complete();
                return Some(out);
            }
        }
    }

    /// When these are the answer's last bytes (the stream is over, or a
    /// relayed stream's terminal event is in them), the record goes out
    /// now, before the client has them, rather than when the stream is
    /// dropped: a request whose client got its whole answer is recorded
    /// exactly, even if the process dies right after.
    fn record_if_complete(&mut self) {
        if !self.committed || !self.guard.armed {
            return;
        }
        let relayed_end = self.terminal && matches!(self.mode, Mode::Passthrough { .. });
        if !(self.done || relayed_end) {
            return;
        }
        if !self.done && self.guard.status == 499 {
            self.guard.status = 200;
            self.guard.error = None;
        }
        self.guard.usage = self.usage;
        self.guard.emit_now();
    }

    /// One upstream frame (or the end of the body) turned into output.
    fn on_frame(&mut self, next: Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>) -> Bytes {
        match next {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => {
                    self.last_data = Instant::now();
                    self.on_chunk(chunk)
                }
                // Trailers carry nothing a client of ours needs.
                Err(_) => Bytes::new(),
            },
            Some(Err(e)) => {
                let msg = format!(
                    "upstream provider `{}` connection lost mid-stream: {}",
                    self.deployment.provider.name,
                    upstream::error_chain(&e)
                );
                self.fail(ApiError::new(ErrorKind::BadGateway, msg), 502)
            }
            None => self.on_end(),
        }
    }

    /// Append the upstream chunks that are already here to `out`, so a burst
    /// (several events in one TCP read) goes to the client in one write
    /// instead of one write per event.
    ///
    /// hyper's client connection task hands the body over one chunk at a
    /// time, so the next chunk, even when it is already in that task's read
    /// buffer, shows up only after the task has run again. Re-queueing this
    /// task behind it (a scheduler turn on this I/O worker: no syscall, no
    /// thread wake-up) lets it; with hyper 1.12 the hand-over takes two turns
    /// (measured). When nothing more has come after `TURNS` turns, `out` goes
    /// as it is: a chunk is never held waiting for the network. Bounded in
    /// events and bytes.
    async fn coalesce(&mut self, out: Bytes) -> Bytes {
        const TURNS: u32 = 2;
        const MAX_EVENTS: usize = 64;
        const MAX_BYTES: usize = 64 * 1024;
        let mut acc: Option<Vec<u8>> = None;
        let mut events = 0;
        let mut turns = 0;
        while !self.done
            && events < MAX_EVENTS
            && acc.as_ref().map_or(out.len(), Vec::len) < MAX_BYTES
        {
            let up = &mut self.upstream;
            let next = std::future::poll_fn(|cx| {
                use hyper::body::Body as _;
                std::task::Poll::Ready(match Pin::new(&mut *up).poll_frame(cx) {
                    std::task::Poll::Ready(f) => Some(f),
                    std::task::Poll::Pending => None,
                })
            })
            .await;
            let Some(next) = next else {
                if turns == TURNS {
                    break;
                }
                turns += 1;
                requeue().await;
                continue;
            };
            turns = 0;
            events += 1;
            let more = self.on_frame(next);
            if !more.is_empty() {
                acc.get_or_insert_with(|| out.to_vec())
                    .extend_from_slice(&more);
            }
        }
        acc.map_or(out, Bytes::from)
    }

    fn on_chunk(&mut self, chunk: Bytes) -> Bytes {
        self.frames.clear();
        if self.sse.feed(&chunk, &mut self.frames).is_err() {
            return self.fail(
                ApiError::new(ErrorKind::BadGateway, "upstream sent an oversized SSE line"),
                502,
            );
        }
        let frames = std::mem::take(&mut self.frames);
        let out = match &mut self.mode {
            Mode::Passthrough { reframe } => {
                let reframe = *reframe;
                let mut out = Vec::new();
                for f in &frames {
                    match tap(
                        self.upstream_dialect,
                        f,
                        &mut self.usage,
                        &mut self.terminal,
                    ) {
                        Tap::Invalid => {
                            let provider = self.deployment.provider.name.clone();
                            self.frames = frames;
                            let mut b = if reframe { out } else { Vec::new() };
                            b.extend_from_slice(&self.fail(
                                ApiError::new(ErrorKind::BadGateway, format!("upstream provider `{provider}` sent a stream event that is not valid JSON")),
                                502,
                            ));
                            return Bytes::from(b);
                        }
                        Tap::Hide => {}
                        Tap::UpstreamError => {
                            // The provider's own error event (Anthropic `event: error`),
                            // classified like the HTTP status it stands for.
                            let (status, err) = stream_error(self.upstream_dialect, &f.data);
                            if !self.committed {
                                self.frames = frames;
                                self.done = true;
                                self.failure = Some(Failure::from_upstream(
                                    &self.deployment.provider.name,
                                    status,
                                    err,
                                    &http::HeaderMap::new(),
                                    None,
                                ));
                                return Bytes::new();
                            }
                            let msg = format!(
                                "upstream provider `{}` sent an error event mid-stream: {}",
                                self.deployment.provider.name, f.data
                            );
                            // Already well-formed for this client: relay it and end.
                            if counts_against_breaker(status) {
                                self.deployment.breaker.record_failure();
                            }
                            self.guard.status = 502;
                            self.guard.error = Some(msg);
                            self.done = true;
                            if reframe {
                                write_event(&mut out, f.event.as_deref(), &f.data);
                            }
                        }
                        Tap::Keep => {
                            if reframe {
                                write_event(&mut out, f.event.as_deref(), &f.data);
                            }
                        }
                    }
                }
                if reframe {
                    Bytes::from(out)
                } else {
                    chunk
                }
            }
            Mode::Translate {
                dec,
                enc,
                one_tool_call,
            } => {
                let one_tool_call = *one_tool_call;
                let mut out = Vec::new();
                let mut failed = None;
                let mut early = None;
                'frames: for f in &frames {
                    self.events.clear();
                    if let Err(e) = dec.on_frame(f, &mut self.events) {
                        failed = Some(e);
                        break;
                    }
                    for ev in &self.events {
                        match ev {
                            StreamEvent::Usage(u) => self.usage = Some(*u),
                            StreamEvent::Finish { .. } => self.terminal = true,
                            StreamEvent::Error(e) if !self.committed && out.is_empty() => {
                                // Nothing has reached the client: fail over
                                // like the HTTP error it stands for.
                                early = Some(e.clone());
                                break 'frames;
                            }
                            StreamEvent::Error(e) => {
                                self.guard.status = 502;
                                self.guard.error = Some(e.message.clone());
                                self.terminal = true;
                            }
                            StreamEvent::ToolCallStart { index, .. }
                            | StreamEvent::ToolCallDelta { index, .. }
                                if one_tool_call && *index > 0 =>
                            {
                                continue
                            }
                            _ => {}
                        }
                        enc.on_event(ev, &mut out);
                    }
                }
                if let Some(e) = early {
                    self.frames = frames;
                    self.done = true;
                    self.failure = Some(Failure::from_upstream(
                        &self.deployment.provider.name,
                        error_status(&e),
                        e,
                        &http::HeaderMap::new(),
                        None,
                    ));
                    return Bytes::new();
                }
                if let Some(e) = failed {
                    let mut b = out;
                    b.extend_from_slice(&self.fail(
                        ApiError::new(
                            ErrorKind::BadGateway,
                            format!(
                                "upstream provider `{}` sent an invalid stream event: {}",
                                self.deployment.provider.name, e.message
                            ),
                        ),
                        502,
                    ));
                    return Bytes::from(b);
                }
                Bytes::from(out)
            }
        };
        self.frames = frames;
        // Usage seen so far is billed even if the client leaves mid-stream.
        self.guard.usage = self.usage;
        out
    }

    fn on_end(&mut self) -> Bytes {
        self.done = true;
        let leftover = self.sse.finish();
        let ok = match &self.mode {
            Mode::Passthrough { .. } => self.terminal,
            Mode::Translate { .. } => self.terminal,
        };
        if !ok {
            let why = if leftover {
                "the stream ended inside an event"
            } else {
                "the stream ended before its final event"
            };
            return self.fail(
                ApiError::new(
                    ErrorKind::BadGateway,
                    format!(
                        "upstream provider `{}` closed the stream early: {why}",
                        self.deployment.provider.name
                    ),
                ),
                502,
            );
        }
        let mut out = Vec::new();
        if let Mode::Translate { dec, enc, .. } = &mut self.mode {
            self.events.clear();
            dec.finish(&mut self.events);
            for ev in &self.events {
                if let StreamEvent::Usage(u) = ev {
                    self.usage = Some(*u);
                }
                enc.on_event(ev, &mut out);
            }
            enc.finish(&mut out);
        }
        if self.guard.status == 499 {
            self.guard.status = 200;
            self.guard.error = None;
        }
        self.guard.usage = self.usage;
        Bytes::from(out)
    }

    /// End the stream with a well-formed error in the client's dialect
    /// (or, before anything was sent, hand the error to the attempt loop).
    fn fail(&mut self, err: ApiError, status: u16) -> Bytes {
        self.done = true;
        if !self.committed {
            let mut e = GatewayError::new(status, err);
            e.error
                .code
                .get_or_insert_with(|| "upstream_stream_failed".into());
            self.failure = Some(Failure::retryable(e));
            return Bytes::new();
        }
        self.deployment.breaker.record_failure();
        self.guard.status = status;
        self.guard.error = Some(err.message.clone());
        self.guard.usage = self.usage;
        // A blank line first: if a relayed upstream chunk ended mid-event,
        // this terminates it instead of gluing the error onto it.
        let mut out = b"\n".to_vec();
        codec::encode_stream_error(self.ingress, &err, &mut out);
        Bytes::from(out)
    }
}

/// An error event inside a stream, and the HTTP status it stands for (its
/// kind, or the provider's error type; 500 when neither says more).
fn stream_error(d: Dialect, data: &str) -> (u16, ApiError) {
    let err = codec::decode_error(d, 0, data.as_bytes());
    (error_status(&err), err)
}

/// The HTTP status an in-stream error stands for.
fn error_status(err: &ApiError) -> u16 {
    match err.kind {
        ErrorKind::Api | ErrorKind::BadGateway => match err.provider_type.as_deref() {
            Some("rate_limit_error" | "requests" | "tokens") => 429,
            Some("overloaded_error") => 529,
            Some("invalid_request_error") => 400,
            Some("authentication_error") => 401,
            Some("permission_error") => 403,
            Some("not_found_error") => 404,
            Some("request_too_large") => 413,
            _ if err.code.as_deref() == Some("rate_limit_exceeded") => 429,
            _ => 500,
        },
        k => k.status(),
    }
}

/// Whether an upstream failure with this status is the deployment's own
/// fault (`attempt::Failure::from_upstream`'s rule, for in-stream errors).
fn counts_against_breaker(status: u16) -> bool {
    matches!(status, 401..=403 | 408 | 500..=599)
}

/// Let the tasks already queued on this worker run once, then continue.
/// Unlike `tokio::task::yield_now`, which waits for the I/O driver to be
/// polled (an `epoll_wait` per call), this only goes to the back of the
/// local run queue.
async fn requeue() {
    let mut queued = false;
    std::future::poll_fn(|cx| {
        if queued {
            return std::task::Poll::Ready(());
        }
        queued = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// What the pass-through tap decided about one upstream frame.
#[derive(Debug, PartialEq, Eq)]
enum Tap {
    Keep,
    /// The provider's documented mid-stream error event.
    UpstreamError,
    /// The usage-only chunk the gateway asked for but the client did not.
    Hide,
    /// Not valid JSON: the upstream is broken.
    Invalid,
}

/// Pass-through tap: check one upstream frame is valid JSON and read usage
/// and the terminal marker from it, without re-encoding anything.
fn tap(d: Dialect, f: &SseFrame, usage: &mut Option<Usage>, terminal: &mut bool) -> Tap {
    if d == Dialect::OpenAi && f.data == "[DONE]" {
        *terminal = true;
        return Tap::Keep;
    }
    // Every event must be JSON. The quick check says yes to nearly all of
    // them; only what it doubts goes to the full parser for the verdict.
    if !json_scan::is_valid(f.data.as_bytes())
        && serde_json::from_str::<serde::de::IgnoredAny>(&f.data).is_err()
    {
        return Tap::Invalid;
    }
    match d {
        Dialect::OpenAi => {
            let b = f.data.as_bytes();
            if json_scan::USAGE.occurs_in(b) {
                if let Some(u) = openai::extract_usage(b) {
                    *usage = Some(u);
                    if is_usage_only_chunk(&f.data) {
                        return Tap::Hide;
                    }
                }
            }
            Tap::Keep
        }
        Dialect::Anthropic => {
            let mut acc = usage.unwrap_or_default();
            if anthropic::extract_stream_usage(f, &mut acc) {
                *usage = Some(acc);
            }
            match f.event.as_deref() {
                Some("message_stop") => {
                    *terminal = true;
                    Tap::Keep
                }
                Some("error") => {
                    *terminal = true;
                    Tap::UpstreamError
                }
                _ => Tap::Keep,
            }
        }
        Dialect::Gemini => Tap::Keep,
    }
}

/// An OpenAI chunk with `"choices": []` (the usage-only final chunk).
fn is_usage_only_chunk(data: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct C<'a> {
        #[serde(borrow)]
        choices: Option<Vec<&'a serde_json::value::RawValue>>,
    }
    matches!(serde_json::from_str::<C<'_>>(data), Ok(C { choices: Some(v) }) if v.is_empty())
}
