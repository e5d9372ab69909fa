//! The admin API, its OpenAPI document and the admin CLI, over real sockets,
//! on SQLite (a temp file) and PostgreSQL (`SWITCHYARD_TEST_DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`, a fresh schema per
//! test). Without a reachable PostgreSQL the `postgres::` tests print
//! SKIPPED and pass — except under `CI=true`, where they fail.
#![allow(clippy::unwrap_used)]

mod common;

use common::{gov_rig, GovRig, KEY, MASTER};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use switchyard_mock::Flavor;
use switchyard_server::admin::{Method, OPERATIONS};
use switchyard_server::store::new_id;

// ---------------------------------------------------------------- harness

/// Test databases (temp SQLite file, or a fresh PostgreSQL schema) come from
/// the shared harness.
use common::db::TestDb as Db;

/// Each test runs on both databases.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::Db::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::Db::pg(None).await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

on_both!(
    lifecycle,
    permission_matrix,
    tenant_isolation,
    bad_input,
    cli_keys_work_against_a_server,
);

const YAML: &str = r#"
server:
  api_keys: ["${GW_KEY}"]
providers:
  oai: { kind: openai, base_url: "{oai}", api_key: "${K}" }
models:
  gpt: { deployments: [{ provider: oai, model: gpt-4o }] }
  cheap: { deployments: [{ provider: oai, model: gpt-4o-mini }] }
"#;

async fn start(db: &Db) -> GovRig {
    gov_rig(&[("oai", Flavor::OpenAi)], YAML, &db.url, &db.dir).await
}

/// A tiny client for the admin API.
struct Api<'a> {
    g: &'a GovRig,
}

impl Api<'_> {
    async fn call(
        &self,
        key: Option<&str>,
        m: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.g.base);
        let mut rb = match m {
            "get" => self.g.http.get(url),
            "post" => self.g.http.post(url),
            "put" => self.g.http.put(url),
            "patch" => self.g.http.patch(url),
            "delete" => self.g.http.delete(url),
            other => panic!("method {other}"),
        };
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert!(status < 500 || status == 503, "{m} {path}: {status} {v}");
        (status, v)
    }
    async fn master(&self, m: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(Some(MASTER), m, path, body).await;
        assert!((200..300).contains(&s), "{m} {path}: {s} {v}");
        v
    }
}

/// Poll until `f` holds (or panic after `secs`); returns the time taken.
async fn eventually<F, Fut>(secs: f64, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if f().await {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed().as_secs_f64() < secs,
            "timed out after {secs}s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn chat_status(g: &GovRig, key: &str) -> u16 {
    g.chat_with(key, "gpt").await.status().as_u16()
}

// ----------------------------------------------------- schema conformance

/// Check a JSON value against a (hand-written, simple) schema of the
/// document: objects have no undocumented fields and every required one;
/// types match.
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], v, at);
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "null" => v.is_null(),
            _ => false,
        });
        assert!(ok, "{at}: {v} is not {types:?}");
    }
    if let (Some(e), false) = (schema.get("enum").and_then(Value::as_array), v.is_null()) {
        assert!(e.contains(v), "{at}: {v} not in {e:?}");
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        v.as_object(),
    ) {
        for (k, x) in obj {
            let p = props
                .get(k)
                .unwrap_or_else(|| panic!("{at}: undocumented field `{k}` in {v}"));
            conforms(doc, p, x, &format!("{at}.{k}"));
        }
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            assert!(obj.contains_key(r), "{at}: missing required `{r}` in {v}");
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            conforms(doc, items, x, &format!("{at}[{i}]"));
        }
    }
}

fn check(doc: &Value, name: &str, v: &Value) {
    conforms(
        doc,
        &json!({"$ref": format!("#/components/schemas/{name}")}),
        v,
        name,
    );
}

fn check_list(doc: &Value, name: &str, v: &Value) {
    for x in v["data"].as_array().unwrap() {
        check(doc, name, x);
    }
}

async fn openapi(g: &GovRig) -> Value {
    let r = g
        .http
        .get(format!("{}/openapi.json", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

// ------------------------------------------------------------- lifecycle

async fn lifecycle(db: &Db) {
    let g = start(db).await;
    let api = Api { g: &g };
    let doc = openapi(&g).await;

    // Tenant with a plan: its rate limit and monthly budget rows exist.
    let t = api
        .master(
            "post",
            "/admin/tenants",
            Some(json!({"name": "acme", "plan": "professional", "metadata": {"team": "x"}})),
        )
        .await;
    check(&doc, "Tenant", &t);
    let tid = t["id"].as_str().unwrap().to_owned();
    assert_eq!(t["plan"], "professional");
    assert_eq!(t["status"], "active");
    let rls = api.master("get", "/admin/rate-limits", None).await;
    check_list(&doc, "RateLimit", &rls);
    let rl = rls["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scope_id"] == tid.as_str())
        .unwrap();
    assert_eq!(
        (rl["rpm"].as_i64(), rl["tpm"].as_i64()),
        (Some(600), Some(1_000_000))
    );
    let buds = api.master("get", "/admin/budgets", None).await;
    check_list(&doc, "Budget", &buds);
    let bud = buds["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["scope_id"] == tid.as_str())
        .unwrap()
        .clone();
    assert_eq!(bud["period"], "monthly");
    assert_eq!(bud["max_cost"], 2000.0);
    let bid = bud["id"].as_str().unwrap().to_owned();
    check(
        &doc,
        "Tenant",
        &api.master("get", &format!("/admin/tenants/{tid}"), None)
            .await,
    );
    check_list(
        &doc,
        "Tenant",
        &api.master("get", "/admin/tenants", None).await,
    );

    // User, then key.
    let u = api
        .master("post", "/admin/users", Some(json!({"tenant_id": tid, "email": "dev@acme.test", "role": "developer", "name": "Dev"})))
        .await;
    check(&doc, "User", &u);
    let uid = u["id"].as_str().unwrap().to_owned();
    check_list(
        &doc,
        "User",
        &api.master("get", &format!("/admin/users?tenant_id={tid}"), None)
            .await,
    );
    let k = api
        .master("post", "/admin/keys", Some(json!({"tenant_id": tid, "user_id": uid, "name": "ci", "expires_in": 3600, "metadata": {"env": "test"}})))
        .await;
    check(&doc, "KeyWithSecret", &k);
    let key = k["key"].as_str().unwrap().to_owned();
    let kid = k["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-sy-"), "{k}");
    assert!(k.get("hash").is_none());
    assert_eq!(k["role"], "developer");
    let listed = api
        .master("get", &format!("/admin/keys?tenant_id={tid}"), None)
        .await;
    check_list(&doc, "Key", &listed);
    assert!(!listed.to_string().contains(&key), "listing leaks the key");
    assert!(listed["data"][0].get("hash").is_none());
    check(
        &doc,
        "Key",
        &api.master("get", &format!("/admin/keys/{kid}"), None).await,
    );

    // The key works within the refresh interval.
    eventually(3.0, "new key works", || async {
        chat_status(&g, &key).await == 200
    })
    .await;
    assert_eq!(chat_status(&g, &key).await, 200);

    // Usage shows up: JSON totals, grouped, series, CSV, records.
    let q = format!(
        "/admin/usage?tenant_id={tid}&from=2020-01-01T00:00:00Z&to={}",
        i64::MAX / 2
    );
    eventually(5.0, "usage rows written", || async {
        api.master("get", &q, None).await["data"][0]["requests"].as_i64() == Some(2)
    })
    .await;
    let totals = api.master("get", &q, None).await;
    check_list(&doc, "UsageTotals", &totals);
    assert!(
        totals["data"][0]["input_tokens"].as_i64().unwrap() > 0,
        "{totals}"
    );
    assert!(
        totals["data"][0]["cost"].as_f64().unwrap() > 0.0,
        "{totals}"
    );
    let by_model = api
        .master(
            "get",
            &format!("/admin/usage?tenant_id={tid}&group_by=model"),
            None,
        )
        .await;
    assert_eq!(by_model["data"][0]["key"], "gpt", "{by_model}");
    let by_key = api
        .master(
            "get",
            &format!("/admin/usage?group_by=key&key_id={kid}"),
            None,
        )
        .await;
    assert_eq!(by_key["data"][0]["key"], kid.as_str());
    let series = api
        .master(
            "get",
            &format!("/admin/usage?tenant_id={tid}&bucket=hour&group_by=provider"),
            None,
        )
        .await;
    check_list(&doc, "UsageTotals", &series);
    assert!(
        series["data"][0]["bucket_start"].as_i64().is_some(),
        "{series}"
    );
    let r = g
        .http
        .get(format!(
            "{}/admin/usage?tenant_id={tid}&group_by=model&format=csv",
            g.base
        ))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "model,requests,errors,input_tokens,output_tokens,cached_input_tokens,cost,unpriced"
    );
    assert!(lines[1].starts_with("gpt,2,0,"), "{csv}");
    let recs = api
        .master(
            "get",
            &format!("/admin/usage/records?key_id={kid}&limit=1"),
            None,
        )
        .await;
    check_list(&doc, "UsageRecord", &recs);
    assert_eq!(recs["data"].as_array().unwrap().len(), 1);
    assert_eq!(recs["data"][0]["user_id"], uid.as_str());
    let r = g
        .http
        .get(format!(
            "{}/admin/usage/records?tenant_id={tid}&format=csv",
            g.base
        ))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("request_id,time,tenant_id,"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // Budget status from the live ledger.
    let st = api
        .master("get", &format!("/admin/budgets/{bid}/status"), None)
        .await;
    check(&doc, "BudgetStatus", &st);
    assert!(st["spent_cost"].as_f64().unwrap() > 0.0, "{st}");

    // Suspend the tenant: refused within the refresh interval; reactivate.
    let t2 = api
        .master(
            "patch",
            &format!("/admin/tenants/{tid}"),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(t2["status"], "suspended");
    eventually(2.0, "suspended tenant refused", || async {
        chat_status(&g, &key).await == 403
    })
    .await;
    api.master(
        "patch",
        &format!("/admin/tenants/{tid}"),
        Some(json!({"status": "active"})),
    )
    .await;
    eventually(2.0, "reactivated tenant served", || async {
        chat_status(&g, &key).await == 200
    })
    .await;

    // Revoke: 401 within about a second.
    let rv = api
        .master("post", &format!("/admin/keys/{kid}/revoke"), None)
        .await;
    check(&doc, "Key", &rv);
    assert_eq!(rv["state"], "revoked");
    let took = eventually(2.0, "revoked key refused", || async {
        chat_status(&g, &key).await == 401
    })
    .await;
    assert!(
        took <= Duration::from_millis(1_200),
        "revocation took {took:?}"
    );
    let r = g.chat_with(&key, "gpt").await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "key_revoked", "{body}");

    // Rotate with overlap: both work, then only the new one.
    let k2 = api
        .master(
            "post",
            "/admin/keys",
            Some(json!({"tenant_id": tid, "user_id": uid})),
        )
        .await;
    let (old, old_id) = (
        k2["key"].as_str().unwrap().to_owned(),
        k2["id"].as_str().unwrap().to_owned(),
    );
    eventually(3.0, "second key works", || async {
        chat_status(&g, &old).await == 200
    })
    .await;
    let rot = api
        .master(
            "post",
            &format!("/admin/keys/{old_id}/rotate"),
            Some(json!({"overlap_seconds": 2})),
        )
        .await;
    check(&doc, "KeyWithSecret", &rot);
    let new = rot["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let old_rec = api
        .master("get", &format!("/admin/keys/{old_id}"), None)
        .await;
    assert_eq!(old_rec["rotated_to"], rot["id"]);
    assert_eq!(old_rec["state"], "rotating");
    eventually(3.0, "rotated key works", || async {
        chat_status(&g, &new).await == 200
    })
    .await;
    assert_eq!(
        chat_status(&g, &old).await,
        200,
        "old key works during the overlap"
    );
    eventually(5.0, "old key expires after the overlap", || async {
        chat_status(&g, &old).await == 401
    })
    .await;
    assert_eq!(chat_status(&g, &new).await, 200);
    // Rotating the expired old key again is a conflict.
    let (s, v) = api
        .call(
            Some(MASTER),
            "post",
            &format!("/admin/keys/{old_id}/rotate"),
            None,
        )
        .await;
    assert_eq!(s, 409, "{v}");

    // Patch a key: disable, then re-enable.
    let nid = rot["id"].as_str().unwrap().to_owned();
    let p = api
        .master(
            "patch",
            &format!("/admin/keys/{nid}"),
            Some(json!({"enabled": false, "name": "renamed"})),
        )
        .await;
    assert_eq!(
        (p["enabled"].as_bool(), p["name"].as_str()),
        (Some(false), Some("renamed"))
    );
    eventually(2.0, "disabled key refused", || async {
        chat_status(&g, &new).await == 401
    })
    .await;
    api.master(
        "patch",
        &format!("/admin/keys/{nid}"),
        Some(json!({"enabled": true})),
    )
    .await;
    eventually(2.0, "re-enabled key works", || async {
        chat_status(&g, &new).await == 200
    })
    .await;

    // Budgets: create, replace, status, delete; rate limits: create, delete.
    let b = api
        .master("post", "/admin/budgets", Some(json!({"scope": "key", "scope_id": nid, "period": "7d", "max_tokens": 100000, "action": "downgrade", "downgrade_alias": "cheap"})))
        .await;
    check(&doc, "Budget", &b);
    let b_id = b["id"].as_str().unwrap();
    assert_eq!(b["alert_thresholds"], json!([0.5, 0.8, 0.95]));
    let b2 = api
        .master(
            "put",
            &format!("/admin/budgets/{b_id}"),
            Some(json!({"scope": "key", "scope_id": nid, "period": "daily", "max_cost": 1.5})),
        )
        .await;
    assert_eq!(
        (
            b2["period"].as_str(),
            b2["max_cost"].as_f64(),
            b2["action"].as_str()
        ),
        (Some("daily"), Some(1.5), Some("block"))
    );
    check(
        &doc,
        "BudgetStatus",
        &api.master("get", &format!("/admin/budgets/{b_id}/status"), None)
            .await,
    );
    api.master("delete", &format!("/admin/budgets/{b_id}"), None)
        .await;
    let (s, _) = api
        .call(Some(MASTER), "get", &format!("/admin/budgets/{b_id}"), None)
        .await;
    assert_eq!(s, 404);
    let rl = api
        .master(
            "post",
            "/admin/rate-limits",
            Some(json!({"scope": "user", "scope_id": uid, "model": "gpt", "rpm": 1})),
        )
        .await;
    check(&doc, "RateLimit", &rl);
    let rl_id = rl["id"].as_str().unwrap();
    eventually(3.0, "user rpm limit applies", || async {
        chat_status(&g, &new).await == 429
    })
    .await;
    api.master("delete", &format!("/admin/rate-limits/{rl_id}"), None)
        .await;
    let (s, _) = api
        .call(
            Some(MASTER),
            "delete",
            &format!("/admin/rate-limits/{rl_id}"),
            None,
        )
        .await;
    assert_eq!(s, 404);

    // Users: patch.
    let u2 = api
        .master(
            "patch",
            &format!("/admin/users/{uid}"),
            Some(json!({"role": "viewer", "name": "Viewer now"})),
        )
        .await;
    assert_eq!(u2["role"], "viewer");

    // The audit log has it all, with actor, ip and outcome.
    let audit = eventually_audit(
        &api,
        &tid,
        &[
            "tenant.create",
            "user.create",
            "key.create",
            "key.revoke",
            "key.rotate",
            "key.update",
            "tenant.update",
            "budget.create",
            "budget.update",
            "budget.delete",
            "rate_limit.create",
            "rate_limit.delete",
            "user.update",
        ],
    )
    .await;
    check_list(&doc, "AuditEvent", &audit);
    let ev = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "key.revoke")
        .unwrap();
    assert_eq!(
        (
            ev["actor"].as_str(),
            ev["target"].as_str(),
            ev["outcome"].as_str(),
            ev["ip"].as_str()
        ),
        (
            Some("master"),
            Some(kid.as_str()),
            Some("success"),
            Some("127.0.0.1")
        )
    );
    assert!(
        !audit.to_string().contains(&key),
        "the audit log must not hold plaintext keys"
    );

    g.shutdown().await;
}

async fn eventually_audit(api: &Api<'_>, tid: &str, actions: &[&str]) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = api
            .master(
                "get",
                &format!("/admin/audit?tenant_id={tid}&since=0&limit=1000"),
                None,
            )
            .await;
        let have: BTreeSet<&str> = last["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        if actions.iter().all(|a| have.contains(a)) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("audit events missing: wanted {actions:?}, got {last}");
}

// ------------------------------------------------------ permission matrix

struct Tenant {
    id: String,
    /// role → (user id, key)
    users: Vec<(&'static str, String, String)>,
}

/// A tenant with one user + key per role.
async fn tenant_with_roles(api: &Api<'_>, name: &str) -> Tenant {
    let t = api
        .master("post", "/admin/tenants", Some(json!({"name": name})))
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    let mut users = Vec::new();
    for role in ["admin", "developer", "viewer", "billing"] {
        let u = api
            .master(
                "post",
                "/admin/users",
                Some(
                    json!({"tenant_id": id, "email": format!("{role}@{name}.test"), "role": role}),
                ),
            )
            .await;
        let uid = u["id"].as_str().unwrap().to_owned();
        let k = api
            .master(
                "post",
                "/admin/keys",
                Some(json!({"tenant_id": id, "user_id": uid})),
            )
            .await;
        assert_eq!(k["role"], role);
        users.push((role, uid, k["key"].as_str().unwrap().to_owned()));
    }
    Tenant { id, users }
}

impl Tenant {
    fn user(&self, role: &str) -> &str {
        &self.users.iter().find(|u| u.0 == role).unwrap().1
    }
    fn key(&self, role: &str) -> &str {
        &self.users.iter().find(|u| u.0 == role).unwrap().2
    }
}

/// Wait until every key of the tenant is live in the gateway.
async fn keys_live(g: &GovRig, keys: &[&str]) {
    for k in keys {
        eventually(3.0, "key live", || async {
            let r = g
                .http
                .get(format!("{}/v1/models", g.base))
                .bearer_auth(k)
                .send()
                .await
                .unwrap();
            r.status() == 200
        })
        .await;
    }
}

async fn permission_matrix(db: &Db) {
    let g = start(db).await;
    let api = Api { g: &g };
    let t = tenant_with_roles(&api, "matrix").await;
    let all: Vec<&str> = t.users.iter().map(|u| u.2.as_str()).collect();
    keys_live(&g, &all).await;
    let callers: [(&str, Option<&str>); 7] = [
        ("master", Some(MASTER)),
        ("admin", Some(t.key("admin"))),
        ("developer", Some(t.key("developer"))),
        ("viewer", Some(t.key("viewer"))),
        ("billing", Some(t.key("billing"))),
        ("static", Some(KEY)),
        ("none", None),
    ];
    let mut n = 0;
    let mut table = String::new();
    for op in OPERATIONS {
        let allowed: Vec<&str> = op.need.roles().iter().map(|r| r.as_str()).collect();
        for (who, key) in callers {
            let (path, body) = fixture(&api, &t, op.operation_id, who).await;
            let m = op.method.as_str();
            let (status, v) = api.call(key, m, &path, body).await;
            let want = match who {
                "master" => op.status,
                "none" => 401,
                "static" => 403,
                r if allowed.contains(&r) => op.status,
                _ => 403,
            };
            assert_eq!(status, want, "{} as {who}: {v}", op.operation_id);
            if status == 403 {
                assert_eq!(v["error"]["code"], "permission_denied", "{v}");
            }
            table.push_str(&format!("{:<20} {who:<10} {status}\n", op.operation_id));
            n += 1;
        }
    }
    assert_eq!(n, OPERATIONS.len() * 7);
    // Denied mutating calls are audited.
    let audit = api
        .master(
            "get",
            &format!("/admin/audit?tenant_id={}&limit=1000", t.id),
            None,
        )
        .await;
    let denied = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .count();
    assert!(denied > 0, "{audit}");
    eprintln!("{table}");
    g.shutdown().await;
}

/// A path (ids filled with fresh records where the call consumes them) and
/// a valid body for `op` called by `who`.
async fn fixture(api: &Api<'_>, t: &Tenant, op: &str, who: &str) -> (String, Option<Value>) {
    let tid = &t.id;
    let uniq = new_id("").to_lowercase();
    // A key the caller may touch: developers their own.
    let owner = if who == "developer" {
        t.user("developer")
    } else {
        t.user("admin")
    };
    // A record made by the master key; its id.
    let create = |path: &'static str, body: Value| async move {
        api.master("post", path, Some(body)).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A budget / rate limit the caller's tenant owns (made by its admin key;
    // what the operator sets, tenants may only read): its id.
    let tenant_owned = |path: &'static str, body: Value| async move {
        let by = if who == "master" {
            MASTER
        } else {
            t.key("admin")
        };
        let (s, v) = api.call(Some(by), "post", path, Some(body)).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    };
    let key_role = if who == "developer" {
        "developer"
    } else {
        "viewer"
    };
    // A developer's own keys are itself and the keys it created, so its
    // fixture key is made by its own key; the others' by the master key.
    let fresh_key = || async move {
        if who == "developer" {
            let (s, v) = api
                .call(
                    Some(t.key("developer")),
                    "post",
                    "/admin/keys",
                    Some(json!({"role": key_role})),
                )
                .await;
            assert_eq!(s, 201, "{v}");
            v["id"].as_str().unwrap().to_owned()
        } else {
            create(
                "/admin/keys",
                json!({"tenant_id": tid, "user_id": owner, "role": key_role}),
            )
            .await
        }
    };
    let fresh_budget = || {
        tenant_owned(
            "/admin/budgets",
            json!({"scope": "tenant", "scope_id": tid, "max_cost": 100.0}),
        )
    };
    let fresh_limit = || {
        tenant_owned(
            "/admin/rate-limits",
            json!({"scope": "tenant", "scope_id": tid, "rpm": 100000}),
        )
    };
    let budget_body = json!({"scope": "tenant", "scope_id": tid, "max_cost": 100.0});
    match op {
        "createTenant" => (
            "/admin/tenants".into(),
            Some(json!({"name": format!("t-{uniq}"), "plan": "professional"})),
        ),
        "listTenants" => ("/admin/tenants".into(), None),
        "getTenant" => (format!("/admin/tenants/{tid}"), None),
        "updateTenant" => (
            format!("/admin/tenants/{tid}"),
            Some(json!({"metadata": {"n": uniq}})),
        ),
        "createUser" => (
            "/admin/users".into(),
            Some(json!({"tenant_id": tid, "email": format!("{uniq}@x.test")})),
        ),
        "listUsers" => ("/admin/users".into(), None),
        "getUser" => (format!("/admin/users/{}", t.user("viewer")), None),
        "updateUser" => (
            format!("/admin/users/{}", t.user("viewer")),
            Some(json!({"name": uniq})),
        ),
        "createKey" => {
            // A developer may only create developer keys (a viewer key
            // would read what the developer cannot).
            let body = if who == "developer" {
                json!({"name": uniq, "role": "developer"})
            } else {
                json!({"tenant_id": tid, "user_id": owner, "role": "viewer"})
            };
            ("/admin/keys".into(), Some(body))
        }
        "listKeys" => ("/admin/keys".into(), None),
        "getKey" => (format!("/admin/keys/{}", fresh_key().await), None),
        "updateKey" => (
            format!("/admin/keys/{}", fresh_key().await),
            Some(json!({"name": uniq})),
        ),
        "revokeKey" => (format!("/admin/keys/{}/revoke", fresh_key().await), None),
        "rotateKey" => (
            format!("/admin/keys/{}/rotate", fresh_key().await),
            Some(json!({"overlap_seconds": 0})),
        ),
        "createBudget" => ("/admin/budgets".into(), Some(budget_body)),
        "listBudgets" => ("/admin/budgets".into(), None),
        "getBudget" => (format!("/admin/budgets/{}", fresh_budget().await), None),
        "replaceBudget" => (
            format!("/admin/budgets/{}", fresh_budget().await),
            Some(budget_body),
        ),
        "deleteBudget" => (format!("/admin/budgets/{}", fresh_budget().await), None),
        "getBudgetStatus" => (
            format!("/admin/budgets/{}/status", fresh_budget().await),
            None,
        ),
        "createRateLimit" => (
            "/admin/rate-limits".into(),
            Some(json!({"scope": "tenant", "scope_id": tid, "tpm": 10000000})),
        ),
        "listRateLimits" => ("/admin/rate-limits".into(), None),
        "deleteRateLimit" => (format!("/admin/rate-limits/{}", fresh_limit().await), None),
        "getUsage" => ("/admin/usage?group_by=model".into(), None),
        "listUsageRecords" => ("/admin/usage/records?limit=5".into(), None),
        "listAudit" => ("/admin/audit?limit=5".into(), None),
        other => panic!("no fixture for {other}: add one"),
    }
}

// ------------------------------------------------------- tenant isolation

async fn tenant_isolation(db: &Db) {
    let g = start(db).await;
    let api = Api { g: &g };
    let a = tenant_with_roles(&api, "alpha").await;
    let b = tenant_with_roles(&api, "beta").await;
    let keys: Vec<&str> = [&a, &b]
        .iter()
        .flat_map(|t| t.users.iter().map(|u| u.2.as_str()))
        .collect();
    keys_live(&g, &keys).await;
    // Usage in both tenants: A twice, B once.
    for k in [a.key("developer"), a.key("admin"), b.key("developer")] {
        assert_eq!(chat_status(&g, k).await, 200);
    }
    eventually(5.0, "usage written", || async {
        api.master("get", "/admin/usage", None).await["data"][0]["requests"].as_i64() == Some(3)
    })
    .await;
    let adm = Some(a.key("admin"));
    let b_user = b.user("developer");
    let b_key_id = api
        .master("get", &format!("/admin/keys?user_id={b_user}"), None)
        .await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_id = b.id.as_str();

    // Reads: other tenant's records are invisible.
    let (s, v) = api.call(adm, "get", "/admin/tenants", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["id"], a.id.as_str());
    for path in [
        format!("/admin/tenants/{b_id}"),
        format!("/admin/users/{b_user}"),
        format!("/admin/keys/{b_key_id}"),
    ] {
        let (s, v) = api.call(adm, "get", &path, None).await;
        assert_eq!(s, 404, "{path}: {v}");
    }
    let (_, v) = api
        .call(adm, "get", &format!("/admin/users?tenant_id={b_id}"), None)
        .await;
    assert_eq!(v["data"], json!([]));
    let (_, v) = api.call(adm, "get", "/admin/users", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 4);
    assert!(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["tenant_id"] == a.id.as_str()));
    let (_, v) = api.call(adm, "get", "/admin/keys", None).await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["tenant_id"] == a.id.as_str()),
        "{v}"
    );
    let (_, v) = api
        .call(adm, "get", &format!("/admin/keys?tenant_id={b_id}"), None)
        .await;
    assert_eq!(v["data"], json!([]));

    // Usage: confined to A (2 requests), a foreign filter refused.
    let (s, v) = api.call(adm, "get", "/admin/usage", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"][0]["requests"], 2, "{v}");
    let (_, v) = api
        .call(adm, "get", "/admin/usage?group_by=tenant", None)
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    let (s, v) = api
        .call(adm, "get", &format!("/admin/usage?tenant_id={b_id}"), None)
        .await;
    assert_eq!(
        (s, v["error"]["param"].as_str()),
        (403, Some("tenant_id")),
        "{v}"
    );
    let (_, v) = api
        .call(adm, "get", &format!("/admin/usage?user_id={b_user}"), None)
        .await;
    assert_eq!(v["data"][0]["requests"], 0, "{v}");
    let (_, v) = api.call(adm, "get", "/admin/usage/records", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    // A developer sees only their own usage; a viewer the tenant's.
    let (_, v) = api
        .call(Some(a.key("developer")), "get", "/admin/usage", None)
        .await;
    assert_eq!(v["data"][0]["requests"], 1, "{v}");
    let (s, _) = api
        .call(
            Some(a.key("developer")),
            "get",
            &format!("/admin/usage?user_id={}", a.user("admin")),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (_, v) = api
        .call(Some(a.key("viewer")), "get", "/admin/usage", None)
        .await;
    assert_eq!(v["data"][0]["requests"], 2, "{v}");
    // Audit: own tenant only.
    let (s, _) = api
        .call(adm, "get", &format!("/admin/audit?tenant_id={b_id}"), None)
        .await;
    assert_eq!(s, 403);
    let (_, v) = api.call(adm, "get", "/admin/audit?limit=1000", None).await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant_id"] == a.id.as_str()),
        "{v}"
    );

    // Writes: other tenant's records cannot be touched or created.
    let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
        (
            "patch",
            format!("/admin/tenants/{b_id}"),
            Some(json!({"name": "pwned"})),
            404,
        ),
        (
            "patch",
            format!("/admin/users/{b_user}"),
            Some(json!({"role": "viewer"})),
            404,
        ),
        (
            "patch",
            format!("/admin/keys/{b_key_id}"),
            Some(json!({"enabled": false})),
            404,
        ),
        ("post", format!("/admin/keys/{b_key_id}/revoke"), None, 404),
        ("post", format!("/admin/keys/{b_key_id}/rotate"), None, 404),
        (
            "post",
            "/admin/users".into(),
            Some(json!({"tenant_id": b_id, "email": "x@y.z"})),
            403,
        ),
        (
            "post",
            "/admin/keys".into(),
            Some(json!({"tenant_id": b_id})),
            403,
        ),
        (
            "post",
            "/admin/keys".into(),
            Some(json!({"user_id": b_user})),
            400,
        ),
        (
            "post",
            "/admin/budgets".into(),
            Some(json!({"scope": "tenant", "scope_id": b_id, "max_cost": 1})),
            403,
        ),
        (
            "post",
            "/admin/budgets".into(),
            Some(json!({"scope": "user", "scope_id": b_user, "max_cost": 1})),
            403,
        ),
        (
            "post",
            "/admin/rate-limits".into(),
            Some(json!({"scope": "key", "scope_id": b_key_id, "rpm": 1})),
            403,
        ),
        (
            "post",
            "/admin/tenants".into(),
            Some(json!({"name": "mine"})),
            403,
        ),
        // An admin may not change its own tenant's status or plan.
        (
            "patch",
            format!("/admin/tenants/{}", a.id),
            Some(json!({"status": "suspended"})),
            403,
        ),
        (
            "patch",
            format!("/admin/tenants/{}", a.id),
            Some(json!({"plan": "enterprise"})),
            403,
        ),
    ];
    for (m, path, body, want) in cases {
        let (s, v) = api.call(adm, m, &path, body.clone()).await;
        assert_eq!(s, want, "{m} {path} {body:?}: {v}");
    }
    // B's budgets and limits are not listed for A.
    let bb = api
        .master(
            "post",
            "/admin/budgets",
            Some(json!({"scope": "tenant", "scope_id": b_id, "max_cost": 5})),
        )
        .await;
    let (_, v) = api.call(adm, "get", "/admin/budgets", None).await;
    assert!(!v.to_string().contains(bb["id"].as_str().unwrap()));
    let (s, _) = api
        .call(
            Some(a.key("billing")),
            "get",
            &format!("/admin/budgets/{}", bb["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 404);
    // Developers: only their own keys, roles no higher than their own.
    let dev = Some(a.key("developer"));
    let (_, v) = api.call(dev, "get", "/admin/keys", None).await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["user_id"] == a.user("developer")),
        "{v}"
    );
    let admin_key_id = api
        .master(
            "get",
            &format!("/admin/keys?user_id={}", a.user("admin")),
            None,
        )
        .await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = api
        .call(
            dev,
            "post",
            &format!("/admin/keys/{admin_key_id}/revoke"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call(dev, "post", "/admin/keys", Some(json!({"role": "admin"})))
        .await;
    assert_eq!(s, 403);
    let (s, _) = api
        .call(dev, "post", "/admin/keys", Some(json!({"role": "billing"})))
        .await;
    assert_eq!(s, 403);
    let (s, _) = api
        .call(
            dev,
            "post",
            "/admin/keys",
            Some(json!({"user_id": a.user("admin")})),
        )
        .await;
    assert_eq!(s, 403);
    // B is untouched.
    assert_eq!(chat_status(&g, b.key("developer")).await, 200);
    g.shutdown().await;
}

// ------------------------------------------------------------- bad input

async fn bad_input(db: &Db) {
    let g = start(db).await;
    let api = Api { g: &g };
    let t = api
        .master("post", "/admin/tenants", Some(json!({"name": "inputs"})))
        .await;
    let tid = t["id"].as_str().unwrap();
    let u = api
        .master(
            "post",
            "/admin/users",
            Some(json!({"tenant_id": tid, "email": "a@b.c"})),
        )
        .await;
    let uid = u["id"].as_str().unwrap();
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        ("post", "/admin/tenants".into(), json!({}), 400, "name"),
        (
            "post",
            "/admin/tenants".into(),
            json!({"name": "x", "plan": "gold"}),
            400,
            "plan",
        ),
        (
            "post",
            "/admin/tenants".into(),
            json!({"name": "x", "status": "zombie"}),
            400,
            "status",
        ),
        (
            "post",
            "/admin/tenants".into(),
            json!({"name": "x", "colour": "red"}),
            400,
            "colour",
        ),
        (
            "post",
            "/admin/tenants".into(),
            json!({"name": 5}),
            400,
            "name",
        ),
        (
            "post",
            "/admin/tenants".into(),
            json!({"name": "x", "metadata": [1]}),
            400,
            "metadata",
        ),
        (
            "post",
            "/admin/tenants".into(),
            json!({"name": "x", "allowed_models": ["a", 1]}),
            400,
            "allowed_models[1]",
        ),
        ("post", "/admin/tenants".into(), json!([1, 2]), 400, "body"),
        (
            "post",
            "/admin/tenants".into(),
            json!({"name": "inputs"}),
            409,
            "",
        ),
        (
            "post",
            "/admin/users".into(),
            json!({"tenant_id": tid, "email": "a@b.c"}),
            409,
            "",
        ),
        (
            "post",
            "/admin/users".into(),
            json!({"tenant_id": tid, "email": "nope"}),
            400,
            "email",
        ),
        (
            "post",
            "/admin/users".into(),
            json!({"email": "q@b.c"}),
            400,
            "tenant_id",
        ),
        (
            "post",
            "/admin/users".into(),
            json!({"tenant_id": "ten_missing", "email": "q@b.c"}),
            400,
            "tenant_id",
        ),
        (
            "post",
            "/admin/users".into(),
            json!({"tenant_id": tid, "email": "r@b.c", "role": "god"}),
            400,
            "role",
        ),
        (
            "post",
            "/admin/keys".into(),
            json!({"tenant_id": tid, "expires_in": -5}),
            400,
            "expires_in",
        ),
        (
            "post",
            "/admin/keys".into(),
            json!({"tenant_id": tid, "expires_at": "2001-01-01T00:00:00Z"}),
            400,
            "expires_at",
        ),
        (
            "post",
            "/admin/keys".into(),
            json!({"tenant_id": tid, "expires_at": "soon"}),
            400,
            "expires_at",
        ),
        (
            "post",
            "/admin/keys".into(),
            json!({"tenant_id": tid, "user_id": "usr_missing"}),
            400,
            "user_id",
        ),
        (
            "post",
            "/admin/keys".into(),
            json!({"tenant_id": tid, "user_id": uid, "role": "admin"}),
            400,
            "role",
        ),
        (
            "post",
            "/admin/budgets".into(),
            json!({"scope": "tenant", "scope_id": tid}),
            400,
            "max_cost",
        ),
        (
            "post",
            "/admin/budgets".into(),
            json!({"scope": "team", "scope_id": tid, "max_cost": 1}),
            400,
            "scope",
        ),
        (
            "post",
            "/admin/budgets".into(),
            json!({"scope": "user", "scope_id": "usr_missing", "max_cost": 1}),
            400,
            "scope_id",
        ),
        (
            "post",
            "/admin/budgets".into(),
            json!({"scope": "tenant", "scope_id": tid, "max_cost": 1, "alert_thresholds": [0.5, 1.5]}),
            400,
            "alert_thresholds[1]",
        ),
        (
            "post",
            "/admin/budgets".into(),
            json!({"scope": "tenant", "scope_id": tid, "max_cost": 1, "alert_thresholds": [0]}),
            400,
            "alert_thresholds[0]",
        ),
        (
            "post",
            "/admin/budgets".into(),
            json!({"scope": "tenant", "scope_id": tid, "max_cost": 1, "period": "weekly"}),
            400,
            "period",
        ),
        (
            "post",
            "/admin/budgets".into(),
            json!({"scope": "tenant", "scope_id": tid, "max_cost": 1, "action": "downgrade"}),
            400,
            "downgrade_alias",
        ),
        (
            "post",
            "/admin/budgets".into(),
            json!({"scope": "tenant", "scope_id": tid, "max_cost": 1, "action": "downgrade", "downgrade_alias": "nope"}),
            400,
            "downgrade_alias",
        ),
        (
            "post",
            "/admin/budgets".into(),
            json!({"scope": "tenant", "scope_id": tid, "max_cost": -1}),
            400,
            "max_cost",
        ),
        (
            "post",
            "/admin/rate-limits".into(),
            json!({"scope": "tenant", "scope_id": tid}),
            400,
            "rpm",
        ),
        (
            "post",
            "/admin/rate-limits".into(),
            json!({"scope": "tenant", "scope_id": tid, "rpm": 0}),
            400,
            "rpm",
        ),
        (
            "post",
            "/admin/keys/key_missing/rotate".into(),
            json!({"overlap_seconds": -1}),
            400,
            "overlap_seconds",
        ),
        (
            "post",
            "/admin/keys/key_missing/rotate".into(),
            json!({}),
            404,
            "",
        ),
        (
            "patch",
            "/admin/users/usr_missing".into(),
            json!({"role": "viewer"}),
            404,
            "",
        ),
        (
            "patch",
            "/admin/tenants/ten_missing".into(),
            json!({"name": "x"}),
            404,
            "",
        ),
        (
            "put",
            "/admin/budgets/bud_missing".into(),
            json!({"scope": "tenant", "scope_id": tid, "max_cost": 1}),
            404,
            "",
        ),
        (
            "delete",
            "/admin/budgets/bud_missing".into(),
            Value::Null,
            404,
            "",
        ),
        (
            "get",
            "/admin/budgets/bud_missing/status".into(),
            Value::Null,
            404,
            "",
        ),
        (
            "get",
            "/admin/usage?from=yesterday".into(),
            Value::Null,
            400,
            "from",
        ),
        (
            "get",
            "/admin/usage?group_by=colour".into(),
            Value::Null,
            400,
            "group_by",
        ),
        (
            "get",
            "/admin/usage?bucket=week".into(),
            Value::Null,
            400,
            "bucket",
        ),
        (
            "get",
            "/admin/usage?format=xml".into(),
            Value::Null,
            400,
            "format",
        ),
        (
            "get",
            "/admin/usage?tennant_id=x".into(),
            Value::Null,
            400,
            "tennant_id",
        ),
        (
            "get",
            "/admin/usage?from=2030-01-01&to=2020-01-01".into(),
            Value::Null,
            400,
            "from",
        ),
        (
            "get",
            "/admin/usage/records?limit=0".into(),
            Value::Null,
            400,
            "limit",
        ),
        (
            "get",
            "/admin/usage/records?limit=x".into(),
            Value::Null,
            400,
            "limit",
        ),
        (
            "get",
            "/admin/audit?since=-".into(),
            Value::Null,
            400,
            "since",
        ),
    ];
    for (m, path, body, want, param) in cases {
        let body = (!body.is_null()).then_some(body);
        let (s, v) = api.call(Some(MASTER), m, &path, body.clone()).await;
        assert_eq!(s, want, "{m} {path} {body:?}: {v}");
        if !param.is_empty() {
            assert_eq!(v["error"]["param"], param, "{m} {path}: {v}");
        }
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    // Junk bodies never cause a 5xx (the `call` helper asserts that).
    for junk in [
        "",
        "{",
        "null",
        "\"x\"",
        "{\"name\": null}",
        "\u{0}",
        "{\"name\":\"a\\u0000b\"}",
    ] {
        for path in [
            "/admin/tenants",
            "/admin/users",
            "/admin/keys",
            "/admin/budgets",
            "/admin/rate-limits",
        ] {
            let r = g
                .http
                .post(format!("{}{path}", g.base))
                .bearer_auth(MASTER)
                .header("content-type", "application/json")
                .body(junk.to_owned())
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_client_error(),
                "{path} {junk:?}: {}",
                r.status()
            );
        }
    }
    // A downgrade budget to a configured alias is fine; times as RFC 3339 and ms.
    api.master("post", "/admin/budgets", Some(json!({"scope": "tenant", "scope_id": tid, "max_cost": 1, "action": "downgrade", "downgrade_alias": "cheap"}))).await;
    api.master(
        "get",
        "/admin/usage?from=1700000000000&to=2100-01-01T00:00:00%2B01:00",
        None,
    )
    .await;
    g.shutdown().await;
}

// -------------------------------------------------------------- CLI

fn cli(db: &Db, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .arg("--database-url")
        .arg(&db.url)
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(db: &Db, args: &[&str]) -> String {
    let (ok, out, err) = cli(db, args);
    assert!(ok, "switchyard {args:?} failed:\n{out}\n{err}");
    out
}

fn id_in(out: &str, prefix: &str) -> String {
    out.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| w.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} id in {out}"))
        .to_owned()
}

fn secret_in(out: &str) -> String {
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with("sk-sy-"))
        .unwrap_or_else(|| panic!("no key printed in {out}"))
        .to_owned()
}

async fn cli_keys_work_against_a_server(db: &Db) {
    // Set up with the CLI before any server exists (creates the database).
    let out = cli_ok(
        db,
        &["tenants", "create", "cli-co", "--plan", "professional"],
    );
    let tid = id_in(&out, "ten_");
    let out = cli_ok(
        db,
        &[
            "users",
            "create",
            "--tenant",
            &tid,
            "--email",
            "ops@cli.test",
            "--role",
            "admin",
        ],
    );
    let uid = id_in(&out, "usr_");
    let (ok, out, err) = cli(
        db,
        &[
            "keys",
            "create",
            "--tenant",
            &tid,
            "--user",
            &uid,
            "--name",
            "deploy",
            "--models",
            "gpt,cheap",
            "--expires-in",
            "30d",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(err.contains("only time"), "warning on stderr: {err}");
    let key = secret_in(&out);
    let kid = id_in(&out, "key_");
    let list = cli_ok(db, &["tenants", "list"]);
    assert!(
        list.contains("cli-co") && list.contains("professional"),
        "{list}"
    );
    let list = cli_ok(db, &["users", "list", "--tenant", &tid]);
    assert!(list.contains("ops@cli.test"), "{list}");
    let list = cli_ok(db, &["keys", "list", "--tenant", &tid]);
    assert!(list.contains(&kid) && !list.contains(&key), "{list}");
    let (ok, _, err) = cli(db, &["tenants", "create", "cli-co"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = cli(db, &["keys", "create", "--tenant", &tid, "--role", "root"]);
    assert!(!ok && err.contains("role"), "{err}");

    // A server on the same database accepts the key, and the CLI's
    // changes reach it within the refresh interval.
    let g = start(db).await;
    eventually(3.0, "CLI key works", || async {
        chat_status(&g, &key).await == 200
    })
    .await;
    let (s, v) = Api { g: &g }
        .call(Some(&key), "get", "/admin/users", None)
        .await;
    assert_eq!(
        (s, v["data"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{v}"
    );

    // Usage through the CLI (table, csv, json).
    eventually(5.0, "usage via CLI", || async {
        cli_ok(db, &["usage", "--tenant", &tid, "--format", "json"]).contains("\"requests\": 1")
    })
    .await;
    let csv = cli_ok(
        db,
        &[
            "usage",
            "--tenant",
            &tid,
            "--group-by",
            "model",
            "--format",
            "csv",
        ],
    );
    assert!(
        csv.starts_with("model,requests,") && csv.contains("\ngpt,1,"),
        "{csv}"
    );
    let table = cli_ok(
        db,
        &[
            "usage",
            "--group-by",
            "key",
            "--from",
            "2020-01-01T00:00:00Z",
        ],
    );
    assert!(table.contains(&kid), "{table}");
    let series = cli_ok(db, &["usage", "--bucket", "day", "--format", "csv"]);
    assert!(series.starts_with("bucket_start,group,"), "{series}");

    // The model allow-list from --models applies.
    let r = g
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .bearer_auth(&key)
        .json(&common::chat("gpt-4o", "x"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // Rotate via CLI: the new key works at once (after refresh), the old one during the overlap.
    let out = cli_ok(db, &["keys", "rotate", &kid, "--overlap", "1h"]);
    let new = secret_in(&out);
    eventually(3.0, "rotated CLI key works", || async {
        chat_status(&g, &new).await == 200
    })
    .await;
    assert_eq!(chat_status(&g, &key).await, 200);
    // Revoke via CLI: the running server refuses it within about a second.
    let new_id = id_in(&out, "key_");
    assert_ne!(new_id, kid);
    cli_ok(db, &["keys", "revoke", &new_id]);
    let took = eventually(3.0, "CLI revocation reaches the server", || async {
        chat_status(&g, &new).await == 401
    })
    .await;
    assert!(took <= Duration::from_millis(1_500), "{took:?}");
    // Suspend via CLI.
    cli_ok(db, &["tenants", "update", &tid, "--status", "suspended"]);
    eventually(3.0, "CLI suspension reaches the server", || async {
        chat_status(&g, &key).await == 403
    })
    .await;

    // The CLI's actions are audited with actor `cli`.
    let audit = Api { g: &g }
        .master(
            "get",
            &format!("/admin/audit?tenant_id={tid}&limit=100"),
            None,
        )
        .await;
    let cli_actions: BTreeSet<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "cli")
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "tenant.create",
        "user.create",
        "key.create",
        "key.rotate",
        "key.revoke",
        "tenant.update",
    ] {
        assert!(cli_actions.contains(a), "{a} missing: {cli_actions:?}");
    }
    g.shutdown().await;
}

// ------------------------------------------------------- OpenAPI / router

/// The document's admin operations are exactly the router's: every
/// documented (method, path) is served, no other method is, and the
/// document parses as OpenAPI 3.1 with resolvable references.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_the_router() {
    let db = Db::sqlite();
    let g = start(&db).await;
    let doc = openapi(&g).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string());
    // Served without auth, as JSON.
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.starts_with("/admin"))
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let table: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|o| (o.method.as_str().to_owned(), o.path.to_owned()))
        .collect();
    assert_eq!(documented, table);
    assert_eq!(table.len(), OPERATIONS.len(), "duplicate operations");
    // Every $ref resolves; operation ids are unique.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    let ids: BTreeSet<&str> = OPERATIONS.iter().map(|o| o.operation_id).collect();
    assert_eq!(ids.len(), OPERATIONS.len());
    // The router serves each documented operation (a route-level 404 would
    // say "no route"; a missing method would be 405), and nothing else on
    // those paths.
    let api = Api { g: &g };
    let all = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
    ];
    let paths: BTreeSet<&str> = OPERATIONS.iter().map(|o| o.path).collect();
    for path in paths {
        let concrete = path.replace("{id}", "zz_missing");
        for m in all {
            let documented = documented.contains(&(m.as_str().to_owned(), path.to_owned()));
            let (s, v) = api.call(Some(MASTER), m.as_str(), &concrete, None).await;
            if documented {
                assert!(
                    s != 405 && !v.to_string().contains("no route"),
                    "{m:?} {path}: {s} {v}"
                );
            } else {
                assert_eq!(
                    s, 405,
                    "{m:?} {path} is not documented but answered {s} {v}"
                );
            }
        }
    }
    let (s, v) = api
        .call(Some(MASTER), "get", "/admin/nothing-here", None)
        .await;
    assert_eq!(s, 404, "{v}");
    // Unauthenticated admin calls are 401; the document itself needs no key.
    let (s, _) = api.call(None, "get", "/admin/tenants", None).await;
    assert_eq!(s, 401);
    assert!(doc["paths"]["/v1/chat/completions"]["post"].is_object());
    g.shutdown().await;
}

/// With governance disabled the admin API says so (503), after auth.
#[tokio::test]
async fn admin_is_unavailable_without_governance() {
    let g = common::rig(&[("oai", Flavor::OpenAi)], YAML).await;
    let r = g
        .http
        .get(format!("{}/admin/tenants", g.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "governance_disabled", "{v}");
    let r = g
        .http
        .get(format!("{}/admin/tenants", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = g
        .http
        .get(format!("{}/openapi.json", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
