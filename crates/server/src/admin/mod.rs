//! The admin REST API under `/admin`: tenants, users, keys, budgets, rate
//! limits, usage and audit.
//!
//! # One table
//! [`OPERATIONS`] lists every admin route once: method, path, the
//! permission it needs, its query parameters, request and response schemas,
//! and its handler. The axum router ([`router`]) and the OpenAPI document
//! ([`openapi::document`]) are both built from it, so a route cannot exist
//! without being documented (or the other way round), and undocumented
//! query parameters are refused with a 400.
//!
//! # Request flow
//! Auth middleware (`http.rs`: 401 without a valid key) → [`dispatch`]:
//! 503 when governance is disabled → permission gate (403, audited for
//! mutating routes) → query validation → body read (size limit) → handler →
//! [`ops`], where validation, tenant confinement, the database writes and
//! the audit event happen. The CLI calls the same [`ops`] functions.
//!
//! # Permissions
//! One table, [`perm::PERMISSIONS`] (rendered into the README): the master
//! key may do everything; `admin` everything within its own tenant except
//! creating tenants, changing its tenant's status or plan, widening its
//! model list, or changing budgets / rate limits the operator set;
//! `billing` the tenant's own budgets and usage (read); `viewer` usage and
//! audit (read); `developer` its own keys and its own usage. A key created
//! by a key is never broader than its creator (role, models, expiry, and the
//! creator's per-key limits and budgets bind it), and no key widens itself
//! or a key it descends from. Static config keys have no admin access.
//! Records of other tenants answer 404, as if they did not exist.

mod audit;
mod budgets;
pub mod cli;
pub mod error;
pub mod input;
mod keys;
pub mod openapi;
pub mod ops;
pub mod perm;
mod rate_limits;
mod tenants;
pub mod usage;
mod users;

use crate::governance::{Governance, Principal};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use bytes::Bytes;
use error::AdminError;
use futures::future::BoxFuture;
use input::Query;
use ops::{Actor, AuditTo, Ctx, Need};
use std::sync::Arc;

/// HTTP methods used by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
            Method::Patch => MethodFilter::PATCH,
            Method::Delete => MethodFilter::DELETE,
        }
    }
}

/// What a successful response carries (for the OpenAPI document).
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// One record of the named schema.
    One(&'static str),
    /// `{"data": [records of the named schema]}`.
    List(&'static str),
    /// `{"data": [...]}` as JSON, or CSV with `format=csv`.
    ListOrCsv(&'static str),
}

/// A documented query parameter: name, JSON type, description.
pub type Param = (&'static str, &'static str, &'static str);

pub(crate) type Handler = fn(Req) -> BoxFuture<'static, Result<Response, AdminError>>;

/// One admin route.
pub struct Operation {
    pub method: Method,
    /// With `{id}` for the path parameter.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub need: Need,
    /// The audit action of a mutating route.
    pub action: Option<&'static str>,
    pub query: &'static [Param],
    /// Request body schema name.
    pub body: Option<&'static str>,
    pub status: u16,
    pub reply: Reply,
    pub(crate) handler: Handler,
}

const USAGE_FILTERS: &[Param] = &[
    (
        "from",
        "string",
        "Start (inclusive): RFC 3339 or Unix milliseconds.",
    ),
    (
        "to",
        "string",
        "End (exclusive): RFC 3339 or Unix milliseconds.",
    ),
    ("tenant_id", "string", "Only this tenant."),
    ("user_id", "string", "Only this user."),
    ("key_id", "string", "Only this key."),
    ("model", "string", "Only this model alias."),
    ("provider", "string", "Only this provider."),
];

/// Every admin route. The router and the OpenAPI document are built from this.
pub static OPERATIONS: &[Operation] = &[
    // tenants
    Operation {
        method: Method::Post,
        path: "/admin/tenants",
        operation_id: "createTenant",
        tag: "tenants",
        summary: "Create a tenant; a plan template creates its rate limit and monthly budget.",
        need: Need::Root,
        action: Some("tenant.create"),
        query: &[],
        body: Some("TenantCreate"),
        status: 201,
        reply: Reply::One("Tenant"),
        handler: |r| Box::pin(tenants::create(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/tenants",
        operation_id: "listTenants",
        tag: "tenants",
        summary: "List tenants (a tenant admin sees its own).",
        need: Need::Tenant,
        action: None,
        query: &[],
        body: None,
        status: 200,
        reply: Reply::List("Tenant"),
        handler: |r| Box::pin(tenants::list(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/tenants/{id}",
        operation_id: "getTenant",
        tag: "tenants",
        summary: "Get a tenant.",
        need: Need::Tenant,
        action: None,
        query: &[],
        body: None,
        status: 200,
        reply: Reply::One("Tenant"),
        handler: |r| Box::pin(tenants::get(r)),
    },
    Operation {
        method: Method::Patch,
        path: "/admin/tenants/{id}",
        operation_id: "updateTenant",
        tag: "tenants",
        summary: "Update a tenant (status and plan: master key only). Takes effect within the refresh interval.",
        need: Need::Tenant,
        action: Some("tenant.update"),
        query: &[],
        body: Some("TenantUpdate"),
        status: 200,
        reply: Reply::One("Tenant"),
        handler: |r| Box::pin(tenants::update(r)),
    },
    // users
    Operation {
        method: Method::Post,
        path: "/admin/users",
        operation_id: "createUser",
        tag: "users",
        summary: "Create a user in a tenant.",
        need: Need::Users,
        action: Some("user.create"),
        query: &[],
        body: Some("UserCreate"),
        status: 201,
        reply: Reply::One("User"),
        handler: |r| Box::pin(users::create(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/users",
        operation_id: "listUsers",
        tag: "users",
        summary: "List users.",
        need: Need::Users,
        action: None,
        query: &[("tenant_id", "string", "Only this tenant.")],
        body: None,
        status: 200,
        reply: Reply::List("User"),
        handler: |r| Box::pin(users::list(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/users/{id}",
        operation_id: "getUser",
        tag: "users",
        summary: "Get a user.",
        need: Need::Users,
        action: None,
        query: &[],
        body: None,
        status: 200,
        reply: Reply::One("User"),
        handler: |r| Box::pin(users::get(r)),
    },
    Operation {
        method: Method::Patch,
        path: "/admin/users/{id}",
        operation_id: "updateUser",
        tag: "users",
        summary: "Update a user's role, name or disabled flag.",
        need: Need::Users,
        action: Some("user.update"),
        query: &[],
        body: Some("UserUpdate"),
        status: 200,
        reply: Reply::One("User"),
        handler: |r| Box::pin(users::update(r)),
    },
    // keys
    Operation {
        method: Method::Post,
        path: "/admin/keys",
        operation_id: "createKey",
        tag: "keys",
        summary: "Create a virtual key. The plaintext `key` is in this response only.",
        need: Need::Keys,
        action: Some("key.create"),
        query: &[],
        body: Some("KeyCreate"),
        status: 201,
        reply: Reply::One("KeyWithSecret"),
        handler: |r| Box::pin(keys::create(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/keys",
        operation_id: "listKeys",
        tag: "keys",
        summary: "List keys (developers: their own).",
        need: Need::Keys,
        action: None,
        query: &[
            ("tenant_id", "string", "Only this tenant."),
            ("user_id", "string", "Only this user's keys."),
        ],
        body: None,
        status: 200,
        reply: Reply::List("Key"),
        handler: |r| Box::pin(keys::list(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/keys/{id}",
        operation_id: "getKey",
        tag: "keys",
        summary: "Get a key (never its secret or hash).",
        need: Need::Keys,
        action: None,
        query: &[],
        body: None,
        status: 200,
        reply: Reply::One("Key"),
        handler: |r| Box::pin(keys::get(r)),
    },
    Operation {
        method: Method::Patch,
        path: "/admin/keys/{id}",
        operation_id: "updateKey",
        tag: "keys",
        summary: "Update a key's name, enabled flag, allowed models, expiry or metadata.",
        need: Need::Keys,
        action: Some("key.update"),
        query: &[],
        body: Some("KeyUpdate"),
        status: 200,
        reply: Reply::One("Key"),
        handler: |r| Box::pin(keys::update(r)),
    },
    Operation {
        method: Method::Post,
        path: "/admin/keys/{id}/revoke",
        operation_id: "revokeKey",
        tag: "keys",
        summary: "Revoke a key (refused within the refresh interval).",
        need: Need::Keys,
        action: Some("key.revoke"),
        query: &[],
        body: None,
        status: 200,
        reply: Reply::One("Key"),
        handler: |r| Box::pin(keys::revoke(r)),
    },
    Operation {
        method: Method::Post,
        path: "/admin/keys/{id}/rotate",
        operation_id: "rotateKey",
        tag: "keys",
        summary: "Rotate a key: the new key works at once, the old one until now + overlap_seconds.",
        need: Need::Keys,
        action: Some("key.rotate"),
        query: &[],
        body: Some("KeyRotate"),
        status: 201,
        reply: Reply::One("KeyWithSecret"),
        handler: |r| Box::pin(keys::rotate(r)),
    },
    // budgets
    Operation {
        method: Method::Post,
        path: "/admin/budgets",
        operation_id: "createBudget",
        tag: "budgets",
        summary: "Create a budget for a tenant, user or key.",
        need: Need::Budgets,
        action: Some("budget.create"),
        query: &[],
        body: Some("BudgetInput"),
        status: 201,
        reply: Reply::One("Budget"),
        handler: |r| Box::pin(budgets::create(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/budgets",
        operation_id: "listBudgets",
        tag: "budgets",
        summary: "List budgets.",
        need: Need::Budgets,
        action: None,
        query: &[],
        body: None,
        status: 200,
        reply: Reply::List("Budget"),
        handler: |r| Box::pin(budgets::list(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/budgets/{id}",
        operation_id: "getBudget",
        tag: "budgets",
        summary: "Get a budget.",
        need: Need::Budgets,
        action: None,
        query: &[],
        body: None,
        status: 200,
        reply: Reply::One("Budget"),
        handler: |r| Box::pin(budgets::get(r)),
    },
    Operation {
        method: Method::Put,
        path: "/admin/budgets/{id}",
        operation_id: "replaceBudget",
        tag: "budgets",
        summary: "Replace a budget.",
        need: Need::Budgets,
        action: Some("budget.update"),
        query: &[],
        body: Some("BudgetInput"),
        status: 200,
        reply: Reply::One("Budget"),
        handler: |r| Box::pin(budgets::put(r)),
    },
    Operation {
        method: Method::Delete,
        path: "/admin/budgets/{id}",
        operation_id: "deleteBudget",
        tag: "budgets",
        summary: "Delete a budget.",
        need: Need::Budgets,
        action: Some("budget.delete"),
        query: &[],
        body: None,
        status: 200,
        reply: Reply::One("Budget"),
        handler: |r| Box::pin(budgets::delete(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/budgets/{id}/status",
        operation_id: "getBudgetStatus",
        tag: "budgets",
        summary: "A budget's spend, reservations and current period.",
        need: Need::Budgets,
        action: None,
        query: &[],
        body: None,
        status: 200,
        reply: Reply::One("BudgetStatus"),
        handler: |r| Box::pin(budgets::status(r)),
    },
    // rate limits
    Operation {
        method: Method::Post,
        path: "/admin/rate-limits",
        operation_id: "createRateLimit",
        tag: "rate-limits",
        summary: "Create a requests/tokens-per-minute limit for a tenant, user or key (optionally one model).",
        need: Need::RateLimits,
        action: Some("rate_limit.create"),
        query: &[],
        body: Some("RateLimitInput"),
        status: 201,
        reply: Reply::One("RateLimit"),
        handler: |r| Box::pin(rate_limits::create(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/rate-limits",
        operation_id: "listRateLimits",
        tag: "rate-limits",
        summary: "List rate limits.",
        need: Need::RateLimits,
        action: None,
        query: &[],
        body: None,
        status: 200,
        reply: Reply::List("RateLimit"),
        handler: |r| Box::pin(rate_limits::list(r)),
    },
    Operation {
        method: Method::Delete,
        path: "/admin/rate-limits/{id}",
        operation_id: "deleteRateLimit",
        tag: "rate-limits",
        summary: "Delete a rate limit.",
        need: Need::RateLimits,
        action: Some("rate_limit.delete"),
        query: &[],
        body: None,
        status: 200,
        reply: Reply::One("RateLimit"),
        handler: |r| Box::pin(rate_limits::delete(r)),
    },
    // usage
    Operation {
        method: Method::Get,
        path: "/admin/usage",
        operation_id: "getUsage",
        tag: "usage",
        summary: "Usage totals per group, or a time series with `bucket`. Non-master callers are confined to their tenant (developers to their own usage).",
        need: Need::Usage,
        action: None,
        query: &[
            USAGE_FILTERS[0],
            USAGE_FILTERS[1],
            USAGE_FILTERS[2],
            USAGE_FILTERS[3],
            USAGE_FILTERS[4],
            USAGE_FILTERS[5],
            USAGE_FILTERS[6],
            ("group_by", "string", "tenant, user, key, model or provider."),
            ("bucket", "string", "hour or day: a time series."),
            ("format", "string", "json (default) or csv."),
        ],
        body: None,
        status: 200,
        reply: Reply::ListOrCsv("UsageTotals"),
        handler: |r| Box::pin(usage::report(r)),
    },
    Operation {
        method: Method::Get,
        path: "/admin/usage/records",
        operation_id: "listUsageRecords",
        tag: "usage",
        summary: "Individual usage records, newest first.",
        need: Need::Usage,
        action: None,
        query: &[
            USAGE_FILTERS[0],
            USAGE_FILTERS[1],
            USAGE_FILTERS[2],
            USAGE_FILTERS[3],
            USAGE_FILTERS[4],
            USAGE_FILTERS[5],
            USAGE_FILTERS[6],
            ("limit", "integer", "At most this many (default 100, max 10000)."),
            ("format", "string", "json (default) or csv."),
        ],
        body: None,
        status: 200,
        reply: Reply::ListOrCsv("UsageRecord"),
        handler: |r| Box::pin(usage::records(r)),
    },
    // audit
    Operation {
        method: Method::Get,
        path: "/admin/audit",
        operation_id: "listAudit",
        tag: "audit",
        summary: "Audit events, newest first.",
        need: Need::Audit,
        action: None,
        query: &[
            ("tenant_id", "string", "Only this tenant."),
            ("since", "string", "From (inclusive): RFC 3339 or Unix milliseconds."),
            ("limit", "integer", "At most this many (default 100, max 10000)."),
        ],
        body: None,
        status: 200,
        reply: Reply::List("AuditEvent"),
        handler: |r| Box::pin(audit::list(r)),
    },
];

/// The admin routes (full `/admin/…` paths), to be merged behind the auth
/// layer.
pub fn router() -> Router<Arc<AppState>> {
    let mut r = Router::new();
    for op in OPERATIONS {
        r = r.route(
            op.path,
            on(
                op.method.filter(),
                move |State(st): State<Arc<AppState>>, req: Request| dispatch(op, st, req),
            ),
        );
    }
    r
}

/// One admin request, parsed.
pub(crate) struct Req {
    pub state: Arc<AppState>,
    pub gov: Arc<Governance>,
    pub actor: Actor,
    pub ip: Option<String>,
    /// The `{id}` path parameter ("" when the route has none).
    pub id: String,
    pub query: Query,
    pub body: Bytes,
}

impl Req {
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            store: &self.gov.store,
            plans: &self.gov.cfg.plans,
            actor: self.actor.clone(),
            ip: self.ip.clone(),
            audit: AuditTo::Log(&self.gov.audit),
            router: Some(&self.state.router),
            ledger: Some(&self.gov.ledger),
        }
    }
}

async fn dispatch(op: &'static Operation, state: Arc<AppState>, req: Request) -> Response {
    // Database work runs on governance's runtime, not on the I/O worker
    // that accepted the request (see `Governance::rt`).
    let rt = state.governance.as_ref().map(|g| g.rt.clone());
    let result = match rt {
        Some(rt) => match rt.spawn(run(op, state, req)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "admin operation task failed");
                Err(AdminError::interrupted())
            }
        },
        None => run(op, state, req).await,
    };
    match result {
        Ok(r) => r,
        Err(e) => e.render(),
    }
}

async fn run(
    op: &'static Operation,
    state: Arc<AppState>,
    req: Request,
) -> Result<Response, AdminError> {
    let Some(gov) = state.governance.clone() else {
        return Err(AdminError::disabled());
    };
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return Err(AdminError::unauthenticated());
    };
    let ip = crate::http::client_ip(&req);
    let (mut parts, body) = req.into_parts();
    let id = if op.path.contains("{id}") {
        id_param(&mut parts).await?
    } else {
        String::new()
    };
    let mut r = Req {
        state,
        gov,
        actor: Actor::Principal(principal),
        ip,
        id,
        query: Query::default(),
        body: Bytes::new(),
    };
    {
        let ctx = r.ctx();
        if let Err(e) = ctx.require(op.need) {
            if let Some(action) = op.action {
                // A valid key can repeat a refused call at line rate: a
                // security event, aggregated per actor, action and target
                // like refused keys, so it cannot flood the audit queue.
                let target = (!r.id.is_empty()).then(|| r.id.clone());
                let ev = ctx.event(
                    action,
                    None,
                    target.clone(),
                    "denied",
                    serde_json::json!({"message": e.message}),
                );
                let key = crate::store::SecurityKey {
                    action,
                    reason: "forbidden",
                    ip: r.ip.as_deref().and_then(|i| i.parse().ok()),
                    actor: std::borrow::Cow::Owned(ev.actor.clone()),
                    tenant_id: ev.tenant_id.clone(),
                    target,
                };
                r.gov.audit.security(key, || ev);
            }
            return Err(e);
        }
    }
    r.query = parse_query(&parts.uri, op.query)?;
    let limit = r.state.max_body_size;
    r.body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| AdminError::too_large(limit))?;
    (op.handler)(r).await
}

/// The `{id}` path parameter, if the route has one.
async fn id_param(parts: &mut axum::http::request::Parts) -> Result<String, AdminError> {
    use axum::extract::{FromRequestParts, Path};
    type Params = Path<std::collections::HashMap<String, String>>;
    match <Params as FromRequestParts<()>>::from_request_parts(parts, &()).await {
        Ok(Path(m)) => Ok(m.get("id").cloned().unwrap_or_default()),
        Err(e) => Err(AdminError::invalid(
            "id",
            format!("bad path parameter: {e}"),
        )),
    }
}

fn parse_query(uri: &axum::http::Uri, allowed: &[Param]) -> Result<Query, AdminError> {
    let q: axum::extract::Query<Vec<(String, String)>> = axum::extract::Query::try_from_uri(uri)
        .map_err(|e| AdminError::invalid("query", format!("the query string is malformed: {e}")))?;
    if let Some((k, _)) = q.0.iter().find(|(k, _)| !allowed.iter().any(|p| p.0 == k)) {
        let names: Vec<&str> = allowed.iter().map(|p| p.0).collect();
        return Err(AdminError::invalid(
            k,
            if names.is_empty() {
                format!("unknown query parameter `{k}` (this route takes none)")
            } else {
                format!(
                    "unknown query parameter `{k}` (expected one of: {})",
                    names.join(", ")
                )
            },
        ));
    }
    Ok(Query { pairs: q.0 })
}

// ------------------------------------------------------------ responses

pub(crate) fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

pub(crate) fn one<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    json_response(status, &serde_json::to_value(v).unwrap_or_default())
}

pub(crate) fn list<T: serde::Serialize>(items: &[T]) -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "data": items }))
}

pub(crate) fn csv_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /openapi.json` (no auth).
pub async fn openapi_json() -> Response {
    json_response(StatusCode::OK, &openapi::document())
}
