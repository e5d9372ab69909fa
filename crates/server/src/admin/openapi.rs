//! The OpenAPI 3.1 document served at `GET /openapi.json`.
//!
//! Paths come from [`super::OPERATIONS`] — the same table the router is
//! built from — so every admin route is documented and nothing
//! undocumented is routed. Schemas are written here by hand; the tests
//! check every admin response against them (no undocumented field, every
//! required field present).

use super::{Operation, Reply, OPERATIONS};
use serde_json::{json, Map, Value};

fn s(t: &str) -> Value {
    json!({ "type": t })
}
fn opt(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}
fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}
fn enum_of(v: &[&str]) -> Value {
    json!({ "type": "string", "enum": v })
}
fn object(props: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false })
}

const ROLES: &[&str] = &["admin", "developer", "viewer", "billing"];
const STATUSES: &[&str] = &["active", "suspended", "trial", "expired"];
const SCOPES: &[&str] = &["tenant", "user", "key"];

/// The component schemas.
pub fn schemas() -> Map<String, Value> {
    let ms = || json!({ "type": "integer", "description": "Unix milliseconds" });
    let opt_ms = || json!({ "type": ["integer", "null"], "description": "Unix milliseconds" });
    let time_in =
        || json!({ "type": ["integer", "string"], "description": "Unix milliseconds or RFC 3339" });
    let key_props = json!({
        "id": s("string"), "prefix": s("string"), "name": opt("string"),
        "tenant_id": s("string"), "user_id": opt("string"), "role": enum_of(ROLES),
        "allowed_models": strings(), "metadata": s("object"),
        "expires_at": opt_ms(), "enabled": s("boolean"), "revoked_at": opt_ms(),
        "rotated_to": opt("string"), "created_at": ms(), "updated_at": ms(),
        "last_used_at": opt_ms(),
        "state": enum_of(&["active", "revoked", "disabled", "expired", "rotating"]),
        "parent_key_id": {"type": ["string", "null"], "description": "The key that created this one (null: the master key or the CLI); its restrictions, rate limits and budgets bind this key too"},
        "disabled_by": {"type": ["string", "null"], "description": "Who disabled the key: operator, admin, or a key id; re-enabling needs that authority"},
    });
    let key_required = [
        "id",
        "prefix",
        "name",
        "tenant_id",
        "user_id",
        "role",
        "allowed_models",
        "metadata",
        "expires_at",
        "enabled",
        "revoked_at",
        "rotated_to",
        "created_at",
        "updated_at",
        "last_used_at",
        "state",
        "parent_key_id",
        "disabled_by",
    ];
    let mut secret_props = key_props.clone();
    if let Some(o) = secret_props.as_object_mut() {
        o.insert("key".into(), json!({"type": "string", "description": "The plaintext key. Shown once; only its hash is stored."}));
        o.insert("warning".into(), s("string"));
    }
    let mut secret_required = key_required.to_vec();
    secret_required.extend(["key", "warning"]);
    let budget_props = json!({
        "id": s("string"), "scope": enum_of(SCOPES), "scope_id": s("string"),
        "period": {"type": "string", "description": "monthly, daily, or {N}s / {N}h / {N}d"},
        "max_cost": {"type": ["number", "null"], "description": "USD"},
        "max_tokens": opt("integer"),
        "alert_thresholds": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
        "action": enum_of(&["block", "downgrade"]), "downgrade_alias": opt("string"),
        "created_at": ms(), "updated_at": ms(),
        "owner": {"type": "string", "enum": ["operator", "tenant"], "description": "Who set it: a tenant may read but not change what the operator (master key) set"},
    });
    let totals = json!({
        "key": {"type": "string", "description": "The group value, or `all`"},
        "bucket_start": opt_ms(), "requests": s("integer"), "errors": s("integer"),
        "input_tokens": s("integer"), "output_tokens": s("integer"),
        "cached_input_tokens": s("integer"), "cost": s("number"),
        "unpriced": {"type": "integer", "description": "Requests whose model had no price of its own"},
    });
    let record = json!({
        "request_id": s("string"), "ts": ms(), "tenant_id": opt("string"),
        "user_id": opt("string"), "key_id": opt("string"), "alias": s("string"),
        "provider": s("string"), "deployment": s("string"), "upstream_model": s("string"),
        "ingress": s("string"), "input_tokens": s("integer"), "output_tokens": s("integer"),
        "cached_input_tokens": s("integer"), "cost": s("number"), "estimated": s("boolean"),
        "latency_ms": s("number"), "ttft_ms": opt("number"), "status": s("integer"),
        "error_class": opt("string"), "cache_hit": s("boolean"), "attempts": s("integer"),
        "stream": s("boolean"), "unpriced": s("boolean"),
    });
    let all = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let req = |v: &Value| {
        let names = all(v);
        object(
            v.clone(),
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put(
        "Tenant",
        req(&json!({
            "id": s("string"), "name": s("string"), "status": enum_of(STATUSES), "plan": opt("string"),
            "allowed_models": strings(), "metadata": s("object"), "created_at": ms(), "updated_at": ms(),
        })),
    );
    put(
        "TenantCreate",
        object(
            json!({
                "name": s("string"), "status": enum_of(STATUSES),
                "plan": {"type": "string", "description": "Plan template (basic, professional, enterprise, or configured): creates the tenant's rate limit and monthly budget."},
                "allowed_models": strings(), "metadata": s("object"),
            }),
            &["name"],
        ),
    );
    put(
        "TenantUpdate",
        object(
            json!({
                "name": s("string"), "status": enum_of(STATUSES), "plan": s("string"),
                "allowed_models": strings(), "metadata": s("object"),
            }),
            &[],
        ),
    );
    put(
        "User",
        req(&json!({
            "id": s("string"), "tenant_id": s("string"), "email": s("string"), "name": opt("string"),
            "role": enum_of(ROLES), "disabled": s("boolean"), "created_at": ms(), "updated_at": ms(),
        })),
    );
    put(
        "UserCreate",
        object(
            json!({
                "tenant_id": {"type": "string", "description": "Required with the master key; defaults to the caller's tenant."},
                "email": s("string"), "name": s("string"), "role": enum_of(ROLES), "disabled": s("boolean"),
            }),
            &["email"],
        ),
    );
    put(
        "UserUpdate",
        object(
            json!({
                "name": s("string"), "role": enum_of(ROLES), "disabled": s("boolean"),
            }),
            &[],
        ),
    );
    put("Key", object(key_props, &key_required));
    put(
        "KeyWithSecret",
        object(secret_props, &secret_required.to_vec()),
    );
    put(
        "KeyCreate",
        object(
            json!({
                "tenant_id": s("string"), "user_id": s("string"), "name": s("string"),
                "role": enum_of(ROLES), "allowed_models": strings(),
                "expires_at": time_in(), "expires_in": {"type": "integer", "description": "Seconds from now"},
                "metadata": s("object"),
            }),
            &[],
        ),
    );
    put(
        "KeyUpdate",
        object(
            json!({
                "name": s("string"), "enabled": s("boolean"), "allowed_models": strings(),
                "expires_at": {"type": ["integer", "string", "null"], "description": "Unix ms or RFC 3339; null clears"},
                "metadata": s("object"),
                "parent_key_id": {"type": "null", "description": "Master key / CLI only: detach the key from the key that created it (its restrictions, limits and budgets stop binding it; it survives that key's revocation)"},
            }),
            &[],
        ),
    );
    put(
        "KeyRotate",
        object(
            json!({
                "overlap_seconds": {"type": "integer", "default": 86400, "description": "How long the old key keeps working"},
            }),
            &[],
        ),
    );
    put("Budget", req(&budget_props));
    let mut input_props = budget_props.clone();
    if let Some(o) = input_props.as_object_mut() {
        for k in ["id", "created_at", "updated_at", "owner"] {
            o.remove(k);
        }
    }
    put("BudgetInput", object(input_props, &["scope", "scope_id"]));
    put(
        "BudgetStatus",
        req(&json!({
            "budget": {"$ref": "#/components/schemas/Budget"},
            "spent_cost": s("number"), "spent_tokens": s("integer"), "reserved_cost": s("number"),
            "remaining_cost": opt("number"), "remaining_tokens": opt("integer"),
            "used_fraction": opt("number"), "period_start": ms(), "period_end": ms(),
            "source": enum_of(&["live", "database"]),
        })),
    );
    put(
        "RateLimit",
        req(&json!({
            "id": s("string"), "scope": enum_of(SCOPES), "scope_id": s("string"),
            "model": opt("string"), "rpm": opt("integer"), "tpm": opt("integer"),
            "created_at": ms(), "updated_at": ms(),
            "owner": {"type": "string", "enum": ["operator", "tenant"], "description": "Who set it: a tenant may read but not change what the operator (master key) set"},
        })),
    );
    put(
        "RateLimitInput",
        object(
            json!({
                "scope": enum_of(SCOPES), "scope_id": s("string"), "model": s("string"),
                "rpm": s("integer"), "tpm": s("integer"),
            }),
            &["scope", "scope_id"],
        ),
    );
    put("UsageTotals", req(&totals));
    put("UsageRecord", req(&record));
    put(
        "AuditEvent",
        req(&json!({
            "id": s("string"), "ts": ms(), "actor": s("string"), "tenant_id": opt("string"),
            "action": s("string"), "target": opt("string"), "ip": opt("string"),
            "outcome": enum_of(&["success", "denied", "error"]), "details": {},
        })),
    );
    put(
        "Error",
        json!({
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "properties": {
                "message": s("string"), "type": s("string"), "param": opt("string"), "code": opt("string"),
            }}},
        }),
    );
    m
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn list_of(name: &str) -> Value {
    json!({
        "type": "object", "required": ["data"],
        "properties": { "data": { "type": "array", "items": schema_ref(name) } },
    })
}

fn error_response(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": schema_ref("Error") } } })
}

/// OpenAPI links from a create operation (`POST /admin/x`) to the
/// operations on the record it returns (`/admin/x/{id}…`), so a stateful
/// client (schemathesis) can chain them with a real id.
fn links_from(op: &Operation) -> Map<String, Value> {
    let mut links = Map::new();
    if !matches!(op.method, super::Method::Post) || op.path.contains("{id}") {
        return links;
    }
    let prefix = format!("{}/{{id}}", op.path);
    for to in OPERATIONS {
        if to.path.starts_with(&prefix) {
            links.insert(
                to.operation_id.to_owned(),
                json!({"operationId": to.operation_id, "parameters": {"id": "$response.body#/id"}}),
            );
        }
    }
    links
}

fn operation(op: &Operation) -> Value {
    let roles: Vec<&str> = op.need.roles().iter().map(|r| r.as_str()).collect();
    let who = if roles.is_empty() {
        "master key only".to_owned()
    } else {
        format!("master key, or roles: {}", roles.join(", "))
    };
    let mut params: Vec<Value> = Vec::new();
    if op.path.contains("{id}") {
        params.push(json!({"name": "id", "in": "path", "required": true, "schema": s("string")}));
    }
    for (name, ty, desc) in op.query {
        params.push(json!({"name": name, "in": "query", "required": false, "description": desc, "schema": s(ty)}));
    }
    let content = match op.reply {
        Reply::One(n) => json!({ "application/json": { "schema": schema_ref(n) } }),
        Reply::List(n) => json!({ "application/json": { "schema": list_of(n) } }),
        Reply::ListOrCsv(n) => json!({
            "application/json": { "schema": list_of(n) },
            "text/csv": { "schema": { "type": "string", "description": "With a header row (format=csv)" } },
        }),
    };
    let mut responses = Map::new();
    let mut success = json!({ "description": "Success", "content": content });
    let links = links_from(op);
    if !links.is_empty() {
        success["links"] = Value::Object(links);
    }
    responses.insert(op.status.to_string(), success);
    responses.insert(
        "400".into(),
        error_response("Invalid input (`param` names the field)"),
    );
    responses.insert("401".into(), error_response("Missing or invalid API key"));
    responses.insert(
        "403".into(),
        error_response("The caller's role may not do this (`permission_denied`)"),
    );
    if op.path.contains("{id}") {
        responses.insert(
            "404".into(),
            error_response("No such record (or not in the caller's tenant)"),
        );
    }
    if op.body.is_some() {
        responses.insert(
            "409".into(),
            error_response("Conflict (duplicate name, email, or state)"),
        );
    }
    responses.insert(
        "503".into(),
        error_response("Governance is disabled or the database is unavailable"),
    );
    let mut o = json!({
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
        "description": format!("Allowed: {who}."),
        "x-switchyard-roles": roles,
        "parameters": params,
        "responses": responses,
        "security": [{"bearer": []}, {"apiKey": []}],
    });
    if let Some(b) = op.body {
        o["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema_ref(b) } },
        });
    }
    if let Some(a) = op.action {
        o["x-switchyard-audit-action"] = json!(a);
    }
    o
}

/// The request bodies of the proxy routes: the providers' own formats, as
/// far as a schema-based generator needs them (the fields the gateway
/// reads, with their types and ranges; other fields are allowed and passed
/// on or refused by the dialect's decoder).
pub fn proxy_schemas() -> Map<String, Value> {
    let model = || json!({"type": "string", "minLength": 1, "examples": ["demo-openai", "demo-anthropic", "demo-gemini", "demo"]});
    let text_part = json!({"type": "object", "required": ["type", "text"], "properties": {"type": {"const": "text"}, "text": s("string")}});
    let image_part = json!({"type": "object", "required": ["type", "image_url"], "properties": {
        "type": {"const": "image_url"},
        "image_url": {"type": "object", "required": ["url"], "properties": {"url": s("string"), "detail": enum_of(&["auto", "low", "high"])}},
    }});
    let function = json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}, "description": s("string"), "parameters": s("object"), "strict": s("boolean"),
    }});
    let tool_call = json!({"type": "object", "required": ["id", "type", "function"], "properties": {
        "id": s("string"), "type": {"const": "function"},
        "function": {"type": "object", "required": ["name", "arguments"], "properties": {"name": s("string"), "arguments": s("string")}},
    }});
    let oai_content = json!({"anyOf": [s("string"), {"type": "array", "items": {"anyOf": [text_part, image_part]}}]});
    let oai_message = json!({"oneOf": [
        {"type": "object", "required": ["role", "content"], "properties": {"role": enum_of(&["system", "developer", "user"]), "content": oai_content, "name": s("string")}},
        {"type": "object", "required": ["role"], "properties": {"role": {"const": "assistant"}, "content": {"anyOf": [oai_content, {"type": "null"}]}, "tool_calls": {"type": "array", "items": tool_call}, "refusal": opt("string")}},
        {"type": "object", "required": ["role", "content", "tool_call_id"], "properties": {"role": {"const": "tool"}, "content": oai_content, "tool_call_id": s("string")}},
    ]});
    let stop = json!({"anyOf": [s("string"), {"type": "array", "items": s("string"), "maxItems": 4}, {"type": "null"}]});
    let chat = json!({
        "type": "object", "required": ["model", "messages"],
        "properties": {
            "model": model(),
            "messages": {"type": "array", "minItems": 1, "items": oai_message},
            "max_tokens": {"type": ["integer", "null"], "minimum": 1},
            "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
            "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
            "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 128},
            "stream": opt("boolean"),
            "stream_options": {"type": ["object", "null"], "properties": {"include_usage": s("boolean")}},
            "stop": stop,
            "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
            "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
            "seed": opt("integer"),
            "user": s("string"),
            "tools": {"type": "array", "items": {"type": "object", "required": ["type", "function"], "properties": {"type": {"const": "function"}, "function": function}}},
            "tool_choice": {"anyOf": [enum_of(&["none", "auto", "required"]), {"type": "object", "required": ["type", "function"], "properties": {"type": {"const": "function"}, "function": {"type": "object", "required": ["name"], "properties": {"name": s("string")}}}}]},
            "parallel_tool_calls": s("boolean"),
            "response_format": {"type": "object", "required": ["type"], "properties": {"type": enum_of(&["text", "json_object", "json_schema"]), "json_schema": s("object")}},
            "reasoning_effort": enum_of(&["minimal", "low", "medium", "high"]),
            "metadata": {"type": "object", "additionalProperties": s("string")},
        },
    });
    let block = json!({"anyOf": [
        text_part,
        {"type": "object", "required": ["type", "source"], "properties": {"type": {"const": "image"}, "source": {"type": "object", "required": ["type"], "properties": {
            "type": enum_of(&["base64", "url"]), "media_type": enum_of(&["image/png", "image/jpeg", "image/gif", "image/webp"]), "data": s("string"), "url": s("string"),
        }}}},
        {"type": "object", "required": ["type", "id", "name", "input"], "properties": {"type": {"const": "tool_use"}, "id": s("string"), "name": s("string"), "input": s("object")}},
        {"type": "object", "required": ["type", "tool_use_id"], "properties": {"type": {"const": "tool_result"}, "tool_use_id": s("string"), "content": {"anyOf": [s("string"), {"type": "array", "items": text_part}]}, "is_error": s("boolean")}},
    ]});
    let messages = json!({
        "type": "object", "required": ["model", "messages", "max_tokens"],
        "properties": {
            "model": model(),
            "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role", "content"], "properties": {
                "role": enum_of(&["user", "assistant"]),
                "content": {"anyOf": [s("string"), {"type": "array", "items": block}]},
            }}},
            "max_tokens": {"type": "integer", "minimum": 1},
            "system": {"anyOf": [s("string"), {"type": "array", "items": text_part}]},
            "stream": s("boolean"),
            "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "top_k": {"type": "integer", "minimum": 0},
            "stop_sequences": strings(),
            "metadata": {"type": "object", "properties": {"user_id": s("string")}},
            "tools": {"type": "array", "items": {"type": "object", "required": ["name", "input_schema"], "properties": {
                "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}, "description": s("string"), "input_schema": s("object"),
            }}},
            "tool_choice": {"type": "object", "required": ["type"], "properties": {"type": enum_of(&["auto", "any", "tool", "none"]), "name": s("string")}},
            "thinking": {"type": "object", "required": ["type"], "properties": {"type": enum_of(&["enabled", "disabled"]), "budget_tokens": {"type": "integer", "minimum": 1024}}},
        },
    });
    let embeddings = json!({
        "type": "object", "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "examples": ["demo-embed"]},
            "input": {"anyOf": [
                s("string"), {"type": "array", "minItems": 1, "items": s("string")},
                {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
                {"type": "array", "minItems": 1, "items": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}},
            ]},
            "encoding_format": enum_of(&["float", "base64"]),
            "dimensions": {"type": "integer", "minimum": 1},
            "user": s("string"),
        },
    });
    let mut m = Map::new();
    m.insert("ChatCompletionRequest".into(), chat);
    m.insert("MessagesRequest".into(), messages);
    m.insert("EmbeddingsRequest".into(), embeddings);
    m
}

/// The proxy routes, described briefly (their bodies are the providers'
/// own formats).
fn proxy_paths(paths: &mut Map<String, Value>) {
    let p = |id: &str, summary: &str, body: &str| {
        json!({
            "operationId": id, "tags": ["proxy"], "summary": summary,
            "security": [{"bearer": []}, {"apiKey": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": schema_ref(body)}}},
            "responses": {"200": {"description": "The provider's response, translated to the called format (JSON or SSE)"},
                          "400": error_response("Invalid request (the called API's own error shape)"),
                          "401": error_response("Missing, invalid, revoked or expired key"),
                          "404": error_response("No such model alias"),
                          "413": error_response("Body over the size limit"),
                          "429": error_response("Rate limit or budget exhausted"),
                          "502": error_response("The upstream failed"),
                          "503": error_response("No deployment can serve the alias now")},
        })
    };
    paths.insert("/v1/chat/completions".into(), json!({"post": p("chatCompletions", "OpenAI Chat Completions (streaming, tools, images) to any configured model alias.", "ChatCompletionRequest")}));
    let mut messages = p(
        "messages",
        "Anthropic Messages (streaming, tools, images, thinking) to any configured model alias.",
        "MessagesRequest",
    );
    messages["parameters"] = json!([{"name": "anthropic-version", "in": "header", "required": false, "schema": {"type": "string", "examples": ["2023-06-01"]}}]);
    paths.insert("/v1/messages".into(), json!({ "post": messages }));
    paths.insert(
        "/v1/embeddings".into(),
        json!({"post": p("embeddings", "OpenAI embeddings.", "EmbeddingsRequest")}),
    );
    paths.insert("/v1/models".into(), json!({"get": {
        "operationId": "listModels", "tags": ["proxy"], "summary": "The configured model aliases (OpenAI list; Anthropic list with `anthropic-version`).",
        "security": [{"bearer": []}, {"apiKey": []}],
        "responses": {"200": {"description": "Model list"}},
    }}));
    paths.insert("/health".into(), json!({"get": {"operationId": "health", "tags": ["proxy"], "summary": "Liveness.", "security": [], "responses": {"200": {"description": "ok"}}}}));
    paths.insert("/ready".into(), json!({"get": {"operationId": "ready", "tags": ["proxy"], "summary": "Readiness (a model alias is configured; `status: degraded` when every deployment is ejected).", "security": [], "responses": {"200": {"description": "ready or degraded"}, "503": {"description": "unready"}}}}));
    paths.insert("/openapi.json".into(), json!({"get": {"operationId": "openapi", "tags": ["meta"], "summary": "This document.", "security": [], "responses": {"200": {"description": "OpenAPI 3.1 document"}}}}));
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method.as_str()] = operation(op);
    }
    proxy_paths(&mut paths);
    let mut all_schemas = schemas();
    all_schemas.extend(proxy_schemas());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchyard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Switchyard LLM gateway. The proxy routes (/v1/…) speak the OpenAI and Anthropic APIs. The admin API (/admin/…) manages tenants, users, virtual keys, budgets, rate limits, usage and audit; it needs the master key or a virtual key whose role allows the operation (see each operation's description). Changes take effect within the governance refresh interval (default 500 ms). Errors are OpenAI-style: {\"error\": {\"message\", \"type\", \"param\", \"code\"}}.",
        },
        "tags": [
            {"name": "tenants"}, {"name": "users"}, {"name": "keys"}, {"name": "budgets"},
            {"name": "rate-limits"}, {"name": "usage"}, {"name": "audit"}, {"name": "proxy"}, {"name": "meta"},
        ],
        "paths": paths,
        "components": {
            "schemas": all_schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key> (virtual key, master key or static key)"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    })
}
