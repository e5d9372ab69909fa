//! The HTTP front door: routes, and the middleware stack in one ordered list.
//!
//! Order (outermost first): catch-panic → request id → gateway-key auth →
//! handler. Body limits are applied in the handlers so that a too-large body
//! gets a 413 in the caller's own error format.

use crate::error::GatewayError;
use crate::front::{Hot, HOT_ROUTES};
use crate::governance::Principal;
use crate::pipeline::RequestCtx;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use std::sync::Arc;
use switchyard_core::dialect::Dialect;
use switchyard_core::ir::{ApiError, ErrorKind};
use tokio::time::Instant;

/// Build the application router.
pub fn app(state: Arc<AppState>) -> Router {
    // The hot routes: `front.rs` serves them without this router; they are
    // here for their other methods' 405s and for programs that serve the
    // router themselves.
    let mut api = Router::new();
    for (path, hot) in HOT_ROUTES {
        api = api.route(
            path,
            post(move |State(state): State<Arc<AppState>>, req: Request| {
                hot_route(state, hot, req)
            }),
        );
    }
    let api = api
        .route("/v1/models", get(list_models))
        .route("/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model))
        .merge(crate::admin::router())
        .layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(crate::admin::openapi_json))
        .merge(api)
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn(request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
}

/// The dialect a path's errors are rendered in.
pub(crate) fn dialect_for(path: &str) -> Dialect {
    if path.starts_with("/v1/messages") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

/// The request id (always the gateway's own) and when the request arrived.
#[derive(Debug, Clone)]
pub struct RequestId(pub String, pub Instant);

async fn request_id(mut req: Request, next: Next) -> Response {
    let mut ids = RequestIds::new(req.headers());
    // One extension for both facts (each insert is an allocation). The
    // response header was made from the id already.
    req.extensions_mut()
        .insert(RequestId(std::mem::take(&mut ids.id), Instant::now()));
    let resp = next.run(req).await;
    ids.stamp(resp)
}

/// A request's id (always the gateway's own) and the caller's own id, to
/// echo. Made once per request, first thing, on every route; `id` is for
/// the request's context to take, the headers are kept for [`Self::stamp`].
pub(crate) struct RequestIds {
    pub id: String,
    header: Option<HeaderValue>,
    client: Option<HeaderValue>,
}

impl RequestIds {
    pub(crate) fn new(h: &HeaderMap) -> RequestIds {
        // The id is always the gateway's own: it keys the usage table, so a
        // caller must not be able to choose (or repeat) it. A sane caller id
        // is echoed back as `x-client-request-id`.
        //
        // UUIDv7 (time-ordered): the usage table's primary key then grows at
        // its end instead of at random places, which keeps the batch inserts
        // cheap.
        crate::trim::activity();
        let id = new_request_id();
        let client = h
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
            .and_then(|s| HeaderValue::from_str(s).ok());
        let header = HeaderValue::from_str(&id).ok();
        RequestIds { id, header, client }
    }

    /// Put `x-request-id` (and `x-client-request-id`) on the response.
    pub(crate) fn stamp(self, mut resp: Response) -> Response {
        if let Some(v) = self.header {
            resp.headers_mut().insert(X_REQUEST_ID, v);
        }
        if let Some(c) = self.client {
            resp.headers_mut()
                .insert(HeaderName::from_static("x-client-request-id"), c);
        }
        resp
    }
}

/// Built at compile time (a `&str` name is parsed on every use).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `req_` + 32 lowercase hex digits of a UUIDv7, without a `format!`.
fn new_request_id() -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    let hex = uuid::Uuid::now_v7().simple().encode_lower(&mut buf);
    let mut id = String::with_capacity(4 + hex.len());
    id.push_str("req_");
    id.push_str(hex);
    id
}

/// The gateway key from `Authorization: Bearer`, `x-api-key` or `api-key`.
/// An empty credential (`Authorization: Bearer ` and nothing after it) is
/// no credential: the next header is looked at.
pub fn presented_key(h: &HeaderMap) -> Option<&str> {
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        // The scheme is case-insensitive (RFC 9110 §11.1); a bare value is
        // taken as the key itself.
        let key = match v.get(..6) {
            Some(scheme) if scheme.eq_ignore_ascii_case("bearer") => {
                let rest = &v[6..];
                if rest.is_empty() || rest.starts_with([' ', '\t']) {
                    rest.trim()
                } else {
                    v
                }
            }
            _ => v,
        };
        if !key.is_empty() {
            return Some(key);
        }
    }
    ["x-api-key", "api-key"].iter().find_map(|n| {
        h.get(*n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    })
}

async fn auth(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let ip = peer_ip(&req);
    match authenticate(&state, req.headers(), req.uri().path(), ip) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(err) => {
            // Answered before the body is read.
            let d = dialect_for(req.uri().path());
            let (parts, body) = req.into_parts();
            crate::limits::discard(body, &parts.headers);
            err.render(d)
        }
    }
}

/// Who is calling: the gateway key presented (virtual key, configured key,
/// or none where the gateway is open), checked against `ip` for keys with
/// an allowlist. A refused key is audited.
pub(crate) fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<Principal, GatewayError> {
    match presented_key(headers) {
        None if state.open => Ok(Principal::static_key()),
        None => Err(GatewayError::unauthorized(
            "Missing gateway API key. Send it as `Authorization: Bearer <key>`, `x-api-key: <key>` or `api-key: <key>`.",
        )),
        Some(k) => {
            // One digest for both lookups (virtual keys, configured keys).
            let digest = crate::state::digest(k);
            match state.governance.as_ref().and_then(|g| g.authenticate(&digest, ip)) {
                Some(r) => r,
                None if state.key_digest_ok(&digest) => Ok(Principal::static_key()),
                None => {
                    if let Some(g) = &state.governance {
                        // Aggregated per source (a flood is one map update
                        // per request); the address is formatted only for
                        // the first event of its bucket.
                        let key = crate::store::SecurityKey {
                            action: "auth.failure",
                            reason: "invalid_api_key",
                            ip,
                            actor: std::borrow::Cow::Borrowed("anonymous"),
                            tenant_id: None,
                            target: None,
                        };
                        g.audit.security(key, || crate::store::AuditEvent {
                            id: crate::store::new_id("aud_"),
                            ts: crate::store::now_ms(),
                            actor: "anonymous".into(),
                            tenant_id: None,
                            action: "auth.failure".into(),
                            target: None,
                            ip: ip.map(|i| i.to_string()),
                            outcome: "denied".into(),
                            details: serde_json::json!({"reason": "invalid_api_key", "path": path}),
                        });
                    }
                    Err(GatewayError::unauthorized("Invalid API key."))
                }
            }
        }
    }
}

/// The peer address (set by the server's connect-info).
pub fn peer_ip(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The peer address as text (audit events).
pub fn client_ip(req: &Request) -> Option<String> {
    peer_ip(req).map(|i| i.to_string())
}

fn ctx(req: &mut Request) -> RequestCtx {
    let (request_id, started) = req
        .extensions_mut()
        .remove::<RequestId>()
        .map_or_else(|| (String::new(), Instant::now()), |r| (r.0, r.1));
    RequestCtx {
        request_id,
        started,
        principal: req.extensions_mut().remove::<Principal>(),
        cache: crate::cache::Directive::from_headers(req.headers()),
    }
}

/// `application/json`, `…+json` or `text/plain` (any case), without allocating.
fn json_like(ct: &str) -> bool {
    let starts = |p: &str| {
        ct.len() >= p.len() && ct.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    starts("application/json")
        || starts("text/plain")
        || ct
            .as_bytes()
            .windows(5)
            .any(|w| w.eq_ignore_ascii_case(b"+json"))
}

/// Read the body within the configured limit, or a 413 in the caller's format.
async fn body(
    state: &AppState,
    mut req: Request,
    d: Dialect,
) -> Result<(RequestCtx, Bytes), Response> {
    let c = ctx(&mut req);
    let (parts, b) = req.into_parts();
    let bytes = read_json_body(state, &parts.headers, b, d).await?;
    Ok((c, bytes))
}

/// A JSON request body read whole within `server.max_body_size`: a 415 for
/// a content type that is not JSON, a 413 past the limit, both in the
/// caller's error format.
pub(crate) async fn read_json_body<B>(
    state: &AppState,
    headers: &HeaderMap,
    body: B,
    d: Dialect,
) -> Result<Bytes, Response>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        if !json_like(ct) {
            let ct = ct.to_ascii_lowercase();
            return Err(GatewayError::new(
                415,
                ApiError::invalid(format!(
                    "unsupported content-type `{ct}`; send application/json"
                )),
            )
            .render(d));
        }
    }
    if body.size_hint().lower() > state.max_body_size as u64 {
        return Err(too_large(state, d));
    }
    match collect_body(body, state.max_body_size).await {
        Ok(b) => Ok(b),
        Err(e) if e.is::<crate::limits::BodyTimeout>() => {
            let mut r = GatewayError::new(408, ApiError::invalid(e.to_string())).render(d);
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
        // A body that could not be read (malformed chunked encoding, the
        // upload cut off) is not a body that was too large.
        Err(e) if !e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::new(
            400,
            ApiError::invalid(format!("could not read the request body: {e}")),
        )
        .render(d)),
        Err(_) => Err(too_large(state, d)),
    }
}

/// A body as one buffer, within `limit`, holding it once: a body that came
/// in one piece (most) is that piece, uncopied; one in several is copied
/// piece by piece into a buffer sized from its declared length, each piece
/// freed as it is copied (collecting the pieces and then joining them held
/// every byte twice).
async fn collect_body<B>(
    body: B,
    limit: usize,
) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(limit);
    let mut body = std::pin::pin!(http_body_util::Limited::new(body, limit));
    let mut first: Option<Bytes> = None;
    let mut joined: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        match (&mut joined, first.take()) {
            (Some(j), _) => j.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(f)) => {
                let mut j =
                    bytes::BytesMut::with_capacity(declared.max(f.len() + data.len()).min(limit));
                j.extend_from_slice(&f);
                drop(f);
                j.extend_from_slice(&data);
                joined = Some(j);
            }
        }
    }
    Ok(match joined {
        Some(j) => j.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// The 413 for a body past `server.max_body_size`, in the caller's format.
pub(crate) fn too_large(state: &AppState, d: Dialect) -> Response {
    GatewayError::new(
        413,
        ApiError::new(
            ErrorKind::RequestTooLarge,
            format!(
                "request body exceeds the gateway limit of {} bytes",
                state.max_body_size
            ),
        ),
    )
    .render(d)
}

/// The 503 for a request whose body would take the bytes buffered across
/// all requests past `server.max_buffered`.
pub(crate) fn overloaded(state: &AppState, d: Dialect) -> Response {
    let mut r = GatewayError::new(
        503,
        ApiError::new(
            ErrorKind::Overloaded,
            format!(
                "the gateway is holding its limit of {} bytes of request bodies (server.max_buffered); retry shortly",
                state.front.max_buffered
            ),
        ),
    )
    .render(d);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// A hot route behind the router's middleware (request id, auth).
async fn hot_route(state: Arc<AppState>, hot: Hot, req: Request) -> Response {
    match body(&state, req, hot.dialect()).await {
        Ok((c, b)) => hot.run(state, b, c).await,
        Err(r) => r,
    }
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

/// `GET /v1/models`: the configured aliases, in OpenAI's list format, or in
/// Anthropic's when the caller sends `anthropic-version`.
///
/// Only the aliases the caller may call are listed (its key's and tenant's
/// `allowed_models`); the master key and open keys see every alias.
async fn list_models(
    State(state): State<Arc<AppState>>,
    principal: Option<axum::Extension<Principal>>,
    headers: HeaderMap,
) -> Response {
    let visible: Vec<&Arc<crate::routing::Alias>> = state
        .router
        .aliases()
        .iter()
        .filter(|a| {
            principal
                .as_ref()
                .is_none_or(|p| p.may_call_models() && p.may_use(&a.name))
        })
        .collect();
    let aliases = &visible[..];
    if headers.contains_key("anthropic-version") {
        let data: Vec<serde_json::Value> = aliases
            .iter()
            .map(|a| serde_json::json!({"type": "model", "id": a.name, "display_name": a.description.clone().unwrap_or_else(|| a.name.clone()), "created_at": "1970-01-01T00:00:00Z"}))
            .collect();
        let first = aliases.first().map(|a| a.name.clone());
        let last = aliases.last().map(|a| a.name.clone());
        return json(
            StatusCode::OK,
            &serde_json::json!({"data": data, "has_more": false, "first_id": first, "last_id": last}),
        );
    }
    let data: Vec<serde_json::Value> = aliases.iter().map(|a| model_object(a)).collect();
    json(
        StatusCode::OK,
        &serde_json::json!({"object": "list", "data": data}),
    )
}

fn model_object(a: &crate::routing::Alias) -> serde_json::Value {
    let owner = a
        .deployments
        .first()
        .map(|d| d.provider.name.clone())
        .unwrap_or_default();
    serde_json::json!({"id": a.name, "object": "model", "created": 0, "owned_by": owner})
}

async fn get_model(
    State(state): State<Arc<AppState>>,
    principal: Option<axum::Extension<Principal>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let may = |name: &str| {
        principal
            .as_ref()
            .is_none_or(|p| p.may_call_models() && p.may_use(name))
    };
    match state
        .router
        .aliases()
        .iter()
        .find(|a| a.name == id && may(&a.name))
    {
        Some(a) => json(StatusCode::OK, &model_object(a)),
        None => GatewayError::model_not_found(&id).render(Dialect::OpenAi),
    }
}

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// Ready when at least one deployment of at least one alias can serve
/// (breaker not open, provider not marked unhealthy).
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        // Shutting down: a load balancer should stop sending here.
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "draining", "reason": "shutting down"}),
        );
    }
    let aliases = state.router.aliases();
    let down: Vec<&str> = aliases
        .iter()
        .filter(|a| !a.is_available())
        .map(|a| a.name.as_str())
        .collect();
    if aliases.is_empty() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "unready", "reason": "no model alias is configured", "unavailable": down}),
        );
    }
    // Every deployment ejected (breakers open, providers unhealthy) is not a
    // reason to leave a load balancer's rotation: requests are still routed
    // to them (panic mode, `attempt::run`), so the gateway is never less
    // available than its upstreams.
    if down.len() == aliases.len() {
        return json(
            StatusCode::OK,
            &serde_json::json!({"status": "degraded", "reason": "every deployment of every alias is ejected; requests are routed to them anyway", "aliases": aliases.len(), "unavailable": down}),
        );
    }
    json(
        StatusCode::OK,
        &serde_json::json!({"status": "ready", "aliases": aliases.len(), "unavailable": down}),
    )
}

async fn not_found(req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let msg = format!("no route for {} {path}", req.method());
    let (parts, body) = req.into_parts();
    crate::limits::discard(body, &parts.headers);
    GatewayError::new(404, ApiError::new(ErrorKind::NotFound, msg)).render(dialect_for(&path))
}

pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    GatewayError::new(500, ApiError::new(ErrorKind::Api, "internal error")).render(Dialect::OpenAi)
}
