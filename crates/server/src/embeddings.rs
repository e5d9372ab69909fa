//! `/v1/embeddings`: OpenAI-format in, any provider with an embeddings API
//! behind (OpenAI-compatible as pass-through, Gemini translated).

use crate::error::GatewayError;
use crate::peek;
use crate::pipeline::RequestCtx;
use crate::state::AppState;
use crate::usage::UsageRecord;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;
use std::time::SystemTime;
use switchyard_core::dialect::{gemini, openai, Dialect};

pub async fn embeddings(state: Arc<AppState>, body: Bytes, ctx: RequestCtx) -> Response {
    match inner(&state, &body, &ctx).await {
        Ok(r) => r,
        Err(e) => e.render(Dialect::OpenAi),
    }
}

async fn inner(state: &AppState, body: &Bytes, ctx: &RequestCtx) -> Result<Response, GatewayError> {
    let p = peek::peek(body)?;
    let route = state
        .router
        .resolve(&p.model)
        .ok_or_else(|| GatewayError::model_not_found(&p.model))?;
    let dep = route
        .pick()
        .ok_or_else(|| GatewayError::model_not_found(&p.model))?
        .clone();
    let provider = &dep.provider;
    let Some(url) = provider.embeddings_url(&dep.model) else {
        return Err(GatewayError::unsupported(format!(
            "model `{}` is served by `{}` ({}), which has no embeddings API; route embeddings to an alias backed by an embeddings-capable provider",
            p.model, provider.name, provider.preset.display_name
        )));
    };
    let req = openai::decode_embeddings_request(body)?;
    let want_base64 = req.encoding_format.as_deref() == Some("base64");
    let upstream_body = match provider.dialect() {
        Dialect::OpenAi => p.rewrite(body, &dep.model, false),
        Dialect::Gemini => gemini::encode_embeddings_request(&req, &dep.model)?,
        Dialect::Anthropic => {
            return Err(GatewayError::unsupported("Anthropic has no embeddings API"))
        }
    };
    let client = state
        .clients
        .get(&provider.name)
        .ok_or_else(|| GatewayError::unreachable(&provider.name, "no HTTP client"))?;
    let mut rb = client
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(upstream_body);
    for (k, v) in provider.request_headers() {
        rb = rb.header(k, v);
    }
    let within = provider.timeouts.first_byte.min(provider.timeouts.total);
    let fut = async {
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    };
    let record = |status: u16, usage, error: Option<String>| UsageRecord {
        request_id: ctx.request_id.clone(),
        time: SystemTime::now(),
        alias: route.alias.name.clone(),
        provider: provider.name.clone(),
        deployment: dep.id.clone(),
        upstream_model: dep.model.clone(),
        ingress: "openai-embeddings",
        stream: false,
        passthrough: provider.dialect() == Dialect::OpenAi,
        usage,
        status,
        latency: ctx.started.elapsed(),
        ttft: None,
        error,
    };
    let (status, headers, bytes) = match tokio::time::timeout(within, fut).await {
        Err(_) => {
            let e = GatewayError::timeout(&provider.name, "embeddings request");
            state
                .usage
                .record(record(504, None, Some(e.error.message.clone())));
            return Err(e);
        }
        Ok(Err(e)) => {
            let e = GatewayError::unreachable(&provider.name, &e.to_string());
            state
                .usage
                .record(record(502, None, Some(e.error.message.clone())));
            return Err(e);
        }
        Ok(Ok(x)) => x,
    };
    if !(200..300).contains(&status) {
        let err = crate::codec::decode_error(provider.dialect(), status, &bytes);
        let e = GatewayError::upstream(&provider.name, status, err, &headers);
        state.usage.record(record(
            e.status.as_u16(),
            None,
            Some(e.error.message.clone()),
        ));
        return Err(e);
    }
    let (out, usage) = match provider.dialect() {
        Dialect::Gemini => {
            let mut r = gemini::decode_embeddings_response(&bytes, &dep.model)
                .map_err(|e| GatewayError::bad_upstream(&provider.name, &e.message))?;
            if r.usage.input_tokens == 0 {
                // Gemini reports no usage for embeddings: estimate (flagged in docs).
                r.usage = gemini::estimate_embeddings_usage(&req);
            }
            (
                Bytes::from(openai::encode_embeddings_response(&r, want_base64)),
                Some(r.usage),
            )
        }
        _ => (bytes.clone(), openai::extract_usage(&bytes)),
    };
    state.usage.record(record(200, usage, None));
    let _: &HeaderMap = &headers;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-switchyard-provider", provider.name.as_str())
        .header("x-switchyard-deployment", dep.id.as_str())
        .header("x-switchyard-attempts", "1")
        .body(Body::from(out))
        .map_err(|e| GatewayError::bad_upstream(&provider.name, &e.to_string()))
}
