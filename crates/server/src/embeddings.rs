//! `/v1/embeddings`: OpenAI-format in, any provider with an embeddings API
//! behind (OpenAI-compatible as pass-through, Gemini translated), through
//! the same retry / failover loop as chat.

use crate::attempt::{self, Failure, Slot};
use crate::error::GatewayError;
use crate::peek;
use crate::pipeline::{Meta, RequestCtx};
use crate::routing::Deployment;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;
use switchyard_core::dialect::{gemini, openai, Dialect};
use switchyard_core::ir::EmbeddingsRequest;

pub async fn embeddings(state: Arc<AppState>, body: Bytes, ctx: RequestCtx) -> Response {
    match inner(&state, &body, &ctx).await {
        Ok(r) => r,
        Err(e) => e.render(Dialect::OpenAi),
    }
}

async fn inner(
    state: &AppState,
    original: &Bytes,
    ctx: &RequestCtx,
) -> Result<Response, GatewayError> {
    let p = peek::peek(original)?;
    let alias = state
        .router
        .resolve(&p.model)
        .ok_or_else(|| state.router.unresolved(&p.model))?;
    if let Some(pr) = &ctx.principal {
        crate::pipeline::authorize(pr, &p.model)?;
    }
    let mut extra: Vec<(header::HeaderName, HeaderValue)> = Vec::new();
    let req = openai::decode_embeddings_request(original)?;
    let prompt = switchyard_core::pricing::estimate_tokens_of_bytes(original.len());
    let account = match (&state.governance, &ctx.principal) {
        (Some(g), Some(pr)) => {
            let usage = switchyard_core::ir::Usage {
                input_tokens: prompt,
                ..Default::default()
            };
            // The most expensive deployment it may reach (fallbacks
            // included); an unpriced one fails closed under a cost budget.
            let mut worst = 0.0f64;
            crate::pipeline::each_reachable(state, &alias, |d| {
                worst = worst.max(crate::pipeline::cost_of(d, &usage));
            });
            let unpriced = crate::pipeline::first_unpriced(state, &alias);
            let applies = |m: &str| crate::pipeline::limit_applies(state, &alias, m);
            let admission =
                g.admit_for(pr, &alias.name, &applies, prompt, worst, unpriced.as_ref())?;
            Some(Arc::new(crate::pipeline::Account {
                principal: pr.clone(),
                admission,
                governance: Some(g.clone()),
                prompt_estimate: prompt,
            }))
        }
        (None, Some(pr)) => Some(Arc::new(crate::pipeline::Account {
            principal: pr.clone(),
            admission: Default::default(),
            governance: None,
            prompt_estimate: prompt,
        })),
        _ => None,
    };
    let meta = Meta {
        request_id: Arc::from(ctx.request_id.as_str()),
        started: ctx.started,
        alias: Arc::from(alias.name.as_str()),
        deployment: None,
        ingress: "openai-embeddings",
        stream: false,
        passthrough: false,
        attempts: 0,
        account,
        recorded: Arc::default(),
        cache_hit: false,
        journal: crate::pipeline::journal_segment(state),
    };
    // The response cache (after admission, before masking, like chat).
    let lookup = crate::cache::Lookup::new(
        state.cache.as_ref(),
        alias.cache,
        ctx,
        meta.ingress,
        &alias.name,
        original,
    );
    if let Some(e) = &lookup.hit {
        let hit = Meta {
            deployment: e.deployment.clone(),
            passthrough: e.passthrough,
            cache_hit: true,
            ..meta.clone()
        };
        hit.emit(&state.usage, 200, None, None, None);
        let mut resp = ok(e.deployment.as_deref(), e.body.clone());
        let h = resp.headers_mut();
        e.decorate(h);
        h.extend(extra);
        return Ok(resp);
    }
    // Personal data: masked (or refused, and recorded) before it goes anywhere.
    let refuse = |e: GatewayError| meta.refuse(&state.usage, e);
    let checked = crate::guard::screen(
        state,
        ctx,
        &alias,
        switchyard_core::pii::BodyKind::Embeddings,
        original,
    )
    .map_err(refuse)?;
    let masked = checked.body;
    let pii_header = checked.header;
    let body = masked.as_ref().unwrap_or(original);
    // `peek` borrows the body: re-read masked bytes (the model is unchanged).
    let (p, req) = match &masked {
        None => (p, req),
        Some(m) => (
            peek::peek(m).map_err(|e| refuse(e.into()))?,
            openai::decode_embeddings_request(m).map_err(|e| refuse(e.into()))?,
        ),
    };
    if let Some(h) = &pii_header {
        extra.push((crate::guard::X_PII, h.clone()));
    }
    if state.cache.is_some() {
        extra.push((crate::cache::X_CACHE, lookup.status()));
    }
    let stash = (lookup.key, pii_header);
    let job = (state, &p, body, &req, &meta, &stash);
    // If this future is dropped mid-flight, the request is still recorded
    // (and its reservations settled); `emit` makes it once only.
    struct Abandoned<'a>(&'a AppState, &'a Meta);
    impl Drop for Abandoned<'_> {
        fn drop(&mut self) {
            self.1.emit(
                &self.0.usage,
                499,
                None,
                None,
                Some("request abandoned before a response".into()),
            );
        }
    }
    let guard = Abandoned(state, &meta);
    let result = attempt::run(state, &alias, |dep, slot| attempt_embed(job, dep, slot)).await;
    std::mem::forget(guard);
    match result {
        Ok(done) => {
            let mut resp = done.value;
            let h = resp.headers_mut();
            h.insert(X_ATTEMPTS, crate::pipeline::count_value(done.attempts));
            h.extend(extra);
            Ok(resp)
        }
        Err((mut e, attempts, last)) => {
            let m = Meta {
                deployment: last,
                attempts,
                ..meta.clone()
            };
            m.emit(
                &state.usage,
                e.status.as_u16(),
                None,
                None,
                Some(e.error.message.clone()),
            );
            e.headers
                .push((X_ATTEMPTS, crate::pipeline::count_value(attempts)));
            e.headers.extend(extra);
            Err(e)
        }
    }
}

type Job<'a> = (
    &'a AppState,
    &'a peek::Peek<'a>,
    &'a Bytes,
    &'a EmbeddingsRequest,
    &'a Meta,
    &'a (Option<crate::cache::Key>, Option<HeaderValue>),
);

async fn attempt_embed(
    job: Job<'_>,
    dep: Arc<Deployment>,
    slot: Slot,
) -> Result<Response, Failure> {
    let (state, p, body, req, meta, (cache_key, pii_header)) = job;
    let cache_key = *cache_key;
    let provider = &dep.provider;
    let Some(uri) = dep.embeddings_uri() else {
        return Err(Failure::fatal(GatewayError::unsupported(format!(
            "model `{}` is served by `{}` ({}), which has no embeddings API; route embeddings to an alias backed by an embeddings-capable provider",
            p.model, provider.name, provider.preset.display_name
        ))));
    };
    let want_base64 = req.encoding_format.as_deref() == Some("base64");
    let upstream_body = match provider.dialect() {
        Dialect::OpenAi => p.rewrite(body, &dep.model, false),
        Dialect::Gemini => gemini::encode_embeddings_request(req, &dep.model)
            .map_err(|e| Failure::fatal(GatewayError::client(e)))?,
        Dialect::Anthropic => {
            return Err(Failure::fatal(GatewayError::unsupported(
                "Anthropic has no embeddings API",
            )))
        }
    };
    let client = state.clients.get(&provider.name).ok_or_else(|| {
        Failure::retryable(GatewayError::unreachable(&provider.name, "no HTTP client"))
    })?;
    let uri = uri.map_err(|m| Failure::fatal(GatewayError::unreachable(&provider.name, &m)))?;
    let (headers, key) = provider.request_headers();
    let up_req = crate::upstream::post(uri, headers, upstream_body, "application/json");
    meta.journal_started(&dep, slot.attempt);
    let deadline =
        tokio::time::Instant::now() + provider.timeouts.first_byte.min(provider.timeouts.total);
    let (parts, bytes) =
        match crate::pipeline::exchange(client, &provider.name, up_req, false, deadline).await {
            Ok(crate::pipeline::Answer::Whole(parts, bytes)) => (parts, bytes),
            Ok(crate::pipeline::Answer::Streaming(_)) => {
                return Err(Failure::retryable(GatewayError::bad_upstream(
                    &provider.name,
                    "unexpected streaming answer",
                )))
            }
            Err(e) => return Err(Failure::retryable(e)),
        };
    let (status, headers) = (parts.status.as_u16(), parts.headers);
    if !(200..300).contains(&status) {
        let err = crate::codec::decode_error(provider.dialect(), status, &bytes);
        return Err(Failure::from_upstream(
            &provider.name,
            status,
            err,
            &headers,
            key,
        ));
    }
    let (out, usage) = match provider.dialect() {
        Dialect::Gemini => {
            let mut r = gemini::decode_embeddings_response(&bytes, &dep.model).map_err(|e| {
                Failure::retryable(GatewayError::bad_upstream(&provider.name, &e.message))
            })?;
            if r.usage.input_tokens == 0 {
                // Gemini reports no usage for embeddings: estimate (documented).
                r.usage = gemini::estimate_embeddings_usage(req);
            }
            (
                Bytes::from(openai::encode_embeddings_response(&r, want_base64)),
                Some(r.usage),
            )
        }
        _ => {
            if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
                return Err(Failure::retryable(GatewayError::bad_upstream(
                    &provider.name,
                    "the body is not valid JSON",
                )));
            }
            (bytes.clone(), openai::extract_usage(&bytes))
        }
    };
    let m = Meta {
        deployment: Some(dep.clone()),
        passthrough: provider.dialect() == Dialect::OpenAi,
        attempts: slot.attempt,
        ..meta.clone()
    };
    if let (Some(c), Some(k)) = (&state.cache, cache_key) {
        c.keep(k, &out, &dep, m.passthrough, pii_header.clone());
    }
    m.emit(&state.usage, 200, usage, None, None);
    drop(slot);
    Ok(ok(Some(&dep), out))
}

const X_ATTEMPTS: header::HeaderName = header::HeaderName::from_static("x-switchyard-attempts");

/// A 200 with the deployment's route headers.
fn ok(dep: Option<&Deployment>, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(d) = dep {
        for (n, v) in d.route_headers() {
            h.insert(n.clone(), v.clone());
        }
    }
    resp
}
