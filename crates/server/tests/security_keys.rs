//! Issue 18 §1 (keys never exceed the authority that created them; policies
//! have an owner), §4 (admin changes are audited durably) and §7 (database
//! text never reaches API errors), probed as a hostile tenant would, over
//! real sockets, on SQLite and PostgreSQL (see tests/admin.rs for the
//! database harness; PostgreSQL tests print SKIPPED without a server).
#![allow(clippy::unwrap_used)]

mod common;

use common::db::TestDb as Db;
use common::{gov_rig, GovRig, KEY, MASTER};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use switchyard_mock::Flavor;

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
    a_child_key_is_bound_by_its_creator,
    a_child_key_cannot_escape_its_creators_budget,
    a_key_cannot_widen_itself,
    a_disabled_key_is_not_re_enabled_by_a_lesser_key,
    a_developer_cannot_mint_a_wider_role,
    rotation_keeps_every_limit_and_budget,
    what_the_operator_set_only_the_operator_changes,
    database_text_never_reaches_callers,
    admin_changes_are_audited_even_under_an_audit_flood,
    a_change_is_not_made_without_its_audit_row,
    a_key_never_acts_on_a_broader_key,
    keys_still_manage_what_they_may,
);

async fn start(db: &Db) -> GovRig {
    let yaml = format!(
        r#"
server:
  api_keys: ["${{GW_KEY}}"]
providers:
  oai: {{ kind: openai, base_url: "{{oai}}", api_key: "${{K}}" }}
models:
  gpt: {{ deployments: [{{ provider: oai, model: gpt-4o }}] }}
  cheap: {{ deployments: [{{ provider: oai, model: gpt-4o-mini }}] }}
governance:
  database_url: "{}"
  data_dir: "{}"
  master_key: "${{MASTER}}"
  refresh_interval: 50ms
"#,
        db.url,
        db.dir.display()
    );
    gov_rig(&[("oai", Flavor::OpenAi)], &yaml, &db.url, &db.dir).await
}

/// One admin call: status and JSON body.
async fn call(g: &GovRig, key: &str, m: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", g.base);
    let mut rb = match m {
        "get" => g.http.get(url),
        "post" => g.http.post(url),
        "put" => g.http.put(url),
        "patch" => g.http.patch(url),
        "delete" => g.http.delete(url),
        other => panic!("method {other}"),
    };
    rb = rb.bearer_auth(key);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert!(status < 500, "{m} {path}: {status} {v}");
    (status, v)
}

async fn ok(g: &GovRig, key: &str, m: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = call(g, key, m, path, body).await;
    assert!((200..300).contains(&s), "{m} {path}: {s} {v}");
    v
}

async fn eventually<F, Fut>(secs: f64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !f().await {
        assert!(t0.elapsed().as_secs_f64() < secs, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn chat(g: &GovRig, key: &str, model: &str) -> (u16, Value) {
    let r = g.chat_with(key, model).await;
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Wait until `key` authenticates (the gateway refreshed).
async fn live(g: &GovRig, key: &str) {
    eventually(5.0, "key live", || async {
        g.http
            .get(format!("{}/v1/models", g.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
}

/// A tenant (with `body` extras) and one user per role; returns the tenant id.
async fn tenant(g: &GovRig, name: &str, extra: Value) -> String {
    let mut body = json!({ "name": name });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    ok(g, MASTER, "post", "/admin/tenants", Some(body)).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn user(g: &GovRig, t: &str, role: &str) -> String {
    ok(
        g,
        MASTER,
        "post",
        "/admin/users",
        Some(json!({"tenant_id": t, "email": format!("{role}-{}@x.test", switchyard_server::store::new_id("")), "role": role})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A key made by `by` (the master key needs `tenant_id`); (id, secret, record).
async fn key(g: &GovRig, by: &str, body: Value) -> (String, String, Value) {
    let v = ok(g, by, "post", "/admin/keys", Some(body)).await;
    (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
        v,
    )
}

// ---------------------------------------------------------------- §1

/// K1 (models [gpt], an expiry, 2 requests/min) creates K2 with no
/// restrictions asked: K2 gets K1's models and expiry, cannot ask for more,
/// and shares K1's rate limit.
async fn a_child_key_is_bound_by_its_creator(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "bound", json!({})).await;
    let dev = user(&g, &t, "developer").await;
    let (k1, s1, r1) = key(
        &g,
        MASTER,
        json!({"tenant_id": t, "user_id": dev, "allowed_models": ["gpt"], "expires_in": 3600}),
    )
    .await;
    ok(
        &g,
        MASTER,
        "post",
        "/admin/rate-limits",
        Some(json!({"scope": "key", "scope_id": k1, "rpm": 2})),
    )
    .await;
    live(&g, &s1).await;
    let (_, s2, r2) = key(&g, &s1, json!({"name": "child"})).await;
    assert_eq!(r2["allowed_models"], json!(["gpt"]), "{r2}");
    assert_eq!(r2["parent_key_id"], json!(k1));
    assert!(r2["expires_at"].as_i64().unwrap() <= r1["expires_at"].as_i64().unwrap());
    // Asking for more than the creator has is refused.
    for body in [
        json!({"allowed_models": ["gpt", "cheap"]}),
        json!({"expires_in": 86400 * 365}),
    ] {
        let (s, v) = call(&g, &s1, "post", "/admin/keys", Some(body.clone())).await;
        assert_eq!(s, 403, "{body}: {v}");
        assert_eq!(v["error"]["code"], "permission_denied");
    }
    live(&g, &s2).await;
    let (s, v) = chat(&g, &s2, "cheap").await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "model_not_allowed");
    // K1's 2 requests per minute hold for K1 and K2 together.
    assert_eq!(chat(&g, &s2, "gpt").await.0, 200);
    assert_eq!(chat(&g, &s1, "gpt").await.0, 200);
    let (s, v) = chat(&g, &s2, "gpt").await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    g.shutdown().await;
}

/// K1's per-key budget binds its child: K2's requests are refused once K1
/// cannot pay, and what K2 spends is charged to K1's budget.
async fn a_child_key_cannot_escape_its_creators_budget(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "budget", json!({})).await;
    let dev = user(&g, &t, "developer").await;
    let (k1, s1, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": dev})).await;
    let b = ok(
        &g,
        MASTER,
        "post",
        "/admin/budgets",
        Some(json!({"scope": "key", "scope_id": k1, "max_tokens": 1000000})),
    )
    .await;
    let bid = b["id"].as_str().unwrap().to_owned();
    live(&g, &s1).await;
    let (_, s2, _) = key(&g, &s1, json!({"name": "child"})).await;
    live(&g, &s2).await;
    assert_eq!(chat(&g, &s2, "gpt").await.0, 200);
    eventually(
        5.0,
        "child usage charged to the creator's budget",
        || async {
            let st = ok(
                &g,
                MASTER,
                "get",
                &format!("/admin/budgets/{bid}/status"),
                None,
            )
            .await;
            st["spent_tokens"].as_i64().unwrap_or(0) > 0
        },
    )
    .await;
    // Now a budget K1 cannot afford at all: K2 is refused too.
    ok(
        &g,
        MASTER,
        "put",
        &format!("/admin/budgets/{bid}"),
        Some(json!({"scope": "key", "scope_id": k1, "max_cost": 0.000001})),
    )
    .await;
    eventually(5.0, "child refused by the creator's budget", || async {
        let (s, v) = chat(&g, &s2, "gpt").await;
        s == 429 && v["error"]["code"] == "budget_exceeded"
    })
    .await;
    g.shutdown().await;
}

/// A key cannot lift its own restrictions, or the budgets and rate limits on
/// it — not even an admin key.
async fn a_key_cannot_widen_itself(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "widen", json!({})).await;
    let dev = user(&g, &t, "developer").await;
    let adm = user(&g, &t, "admin").await;
    let (k1, s1, _) = key(
        &g,
        MASTER,
        json!({"tenant_id": t, "user_id": dev, "allowed_models": ["gpt"], "expires_in": 3600}),
    )
    .await;
    let (ka, sa, _) = key(
        &g,
        MASTER,
        json!({"tenant_id": t, "user_id": adm, "allowed_models": ["gpt"], "expires_in": 3600}),
    )
    .await;
    live(&g, &sa).await;
    let bud = ok(
        &g,
        sa.as_str(),
        "post",
        "/admin/budgets",
        Some(json!({"scope": "key", "scope_id": ka, "max_cost": 1})),
    )
    .await;
    let rl = ok(
        &g,
        sa.as_str(),
        "post",
        "/admin/rate-limits",
        Some(json!({"scope": "key", "scope_id": ka, "rpm": 5})),
    )
    .await;
    live(&g, &s1).await;
    live(&g, &sa).await;
    for (secret, id) in [(&s1, &k1), (&sa, &ka)] {
        for body in [
            json!({"allowed_models": []}),
            json!({"allowed_models": ["gpt", "cheap"]}),
            json!({"expires_at": null}),
        ] {
            let (s, v) = call(
                &g,
                secret,
                "patch",
                &format!("/admin/keys/{id}"),
                Some(body.clone()),
            )
            .await;
            assert_eq!(s, 403, "{id} {body}: {v}");
        }
        // Narrowing is fine.
        ok(
            &g,
            secret,
            "patch",
            &format!("/admin/keys/{id}"),
            Some(json!({"name": "narrow", "allowed_models": ["gpt"]})),
        )
        .await;
    }
    let (s, v) = call(
        &g,
        &sa,
        "delete",
        &format!("/admin/budgets/{}", bud["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = call(
        &g,
        &sa,
        "put",
        &format!("/admin/budgets/{}", bud["id"].as_str().unwrap()),
        Some(json!({"scope": "key", "scope_id": ka, "max_cost": 1000})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = call(
        &g,
        &sa,
        "delete",
        &format!("/admin/rate-limits/{}", rl["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, 403, "{v}");
    // Another admin key may lift them (it has authority over this key).
    let (_, sb, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": adm})).await;
    live(&g, &sb).await;
    ok(
        &g,
        &sb,
        "patch",
        &format!("/admin/keys/{k1}"),
        Some(json!({"expires_at": null})),
    )
    .await;
    ok(
        &g,
        &sb,
        "delete",
        &format!("/admin/budgets/{}", bud["id"].as_str().unwrap()),
        None,
    )
    .await;
    g.shutdown().await;
}

/// After an admin disables K1, neither a key K1 created nor another of the
/// same developer's keys can turn it back on; the admin can.
async fn a_disabled_key_is_not_re_enabled_by_a_lesser_key(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "disabled", json!({})).await;
    let dev = user(&g, &t, "developer").await;
    let adm = user(&g, &t, "admin").await;
    let (k1, s1, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": dev})).await;
    let (_, s3, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": dev})).await;
    let (_, sa, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": adm})).await;
    live(&g, &s1).await;
    let (_, s2, _) = key(&g, &s1, json!({"name": "child"})).await;
    live(&g, &s2).await;
    live(&g, &s3).await;
    live(&g, &sa).await;
    let v = ok(
        &g,
        &sa,
        "patch",
        &format!("/admin/keys/{k1}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(v["disabled_by"], "admin");
    // The child dies with its creator.
    eventually(
        5.0,
        "child refused once its creator is disabled",
        || async { chat(&g, &s2, "gpt").await.0 == 401 },
    )
    .await;
    let (s, v) = call(
        &g,
        &s2,
        "patch",
        &format!("/admin/keys/{k1}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert!(s == 401 || s == 403, "{s} {v}");
    let (s, v) = call(
        &g,
        &s3,
        "patch",
        &format!("/admin/keys/{k1}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let k = ok(&g, MASTER, "get", &format!("/admin/keys/{k1}"), None).await;
    assert_eq!(k["enabled"], false);
    // Only the operator may detach K2 from K1 (it then works on its own).
    let k2 = ok(
        &g,
        MASTER,
        "get",
        &format!("/admin/keys?user_id={dev}"),
        None,
    )
    .await["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["parent_key_id"] == json!(k1))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = call(
        &g,
        &s3,
        "patch",
        &format!("/admin/keys/{k2}"),
        Some(json!({"parent_key_id": null})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let v = ok(
        &g,
        MASTER,
        "patch",
        &format!("/admin/keys/{k2}"),
        Some(json!({"parent_key_id": null})),
    )
    .await;
    assert_eq!(v["parent_key_id"], Value::Null);
    eventually(5.0, "detached child works again", || async {
        chat(&g, &s2, "gpt").await.0 == 200
    })
    .await;
    // The admin that disabled it can re-enable it.
    ok(
        &g,
        &sa,
        "patch",
        &format!("/admin/keys/{k1}"),
        Some(json!({"enabled": true})),
    )
    .await;
    // Disabled by the operator: not even the tenant admin re-enables it.
    let (k5, _, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": dev})).await;
    let v = ok(
        &g,
        MASTER,
        "patch",
        &format!("/admin/keys/{k5}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(v["disabled_by"], "operator");
    let (s, v) = call(
        &g,
        &sa,
        "patch",
        &format!("/admin/keys/{k5}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    g.shutdown().await;
}

/// A developer cannot mint a viewer (which would read the tenant's audit
/// log and everyone's usage, which the developer cannot), billing or admin
/// key; a developer key is fine.
async fn a_developer_cannot_mint_a_wider_role(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "roles", json!({})).await;
    let dev = user(&g, &t, "developer").await;
    let (_, s1, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": dev})).await;
    live(&g, &s1).await;
    assert_eq!(call(&g, &s1, "get", "/admin/audit", None).await.0, 403);
    for role in ["viewer", "billing", "admin"] {
        let (s, v) = call(&g, &s1, "post", "/admin/keys", Some(json!({"role": role}))).await;
        assert_eq!(s, 403, "{role}: {v}");
    }
    let (_, _, r) = key(&g, &s1, json!({"role": "developer"})).await;
    assert_eq!(r["role"], "developer");
    g.shutdown().await;
}

/// Rotation carries models, expiry, metadata, creator, per-key rate limits
/// (with their state) and budgets (with their spend) to the new key.
async fn rotation_keeps_every_limit_and_budget(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "rotate", json!({})).await;
    let dev = user(&g, &t, "developer").await;
    let (ka, sa, ra) = key(
        &g,
        MASTER,
        json!({"tenant_id": t, "user_id": dev, "allowed_models": ["gpt"], "expires_in": 7200, "metadata": {"team": "x"}}),
    )
    .await;
    let rl = ok(
        &g,
        MASTER,
        "post",
        "/admin/rate-limits",
        Some(json!({"scope": "key", "scope_id": ka, "rpm": 2})),
    )
    .await;
    let (kb, sb, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": dev})).await;
    let bud = ok(
        &g,
        MASTER,
        "post",
        "/admin/budgets",
        Some(json!({"scope": "key", "scope_id": kb, "max_cost": 0.000001})),
    )
    .await;
    live(&g, &sa).await;
    live(&g, &sb).await;
    assert_eq!(chat(&g, &sa, "gpt").await.0, 200);
    assert_eq!(chat(&g, &sa, "gpt").await.0, 200);
    // The developer rotates its own key: everything moves with it.
    let na = ok(
        &g,
        &sa,
        "post",
        &format!("/admin/keys/{ka}/rotate"),
        Some(json!({"overlap_seconds": 60})),
    )
    .await;
    for f in [
        "allowed_models",
        "expires_at",
        "metadata",
        "role",
        "user_id",
        "parent_key_id",
    ] {
        assert_eq!(na[f], ra[f], "{f}: {na}");
    }
    let na_id = na["id"].as_str().unwrap();
    let rls = ok(&g, MASTER, "get", "/admin/rate-limits", None).await;
    let moved = rls["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rl["id"])
        .unwrap();
    assert_eq!(moved["scope_id"], na_id);
    let na_secret = na["key"].as_str().unwrap();
    live(&g, na_secret).await;
    // The limit's state moved too: the new key is already at 2 of 2.
    let (s, v) = chat(&g, na_secret, "gpt").await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(chat(&g, &sa, "gpt").await.0, 429, "old key in overlap");
    let nb = ok(
        &g,
        &sb,
        "post",
        &format!("/admin/keys/{kb}/rotate"),
        Some(json!({"overlap_seconds": 60})),
    )
    .await;
    let b = ok(
        &g,
        MASTER,
        "get",
        &format!("/admin/budgets/{}", bud["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(b["scope_id"], nb["id"]);
    let nb_secret = nb["key"].as_str().unwrap();
    live(&g, nb_secret).await;
    let (s, v) = chat(&g, nb_secret, "gpt").await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (429, json!("budget_exceeded")),
        "{v}"
    );
    g.shutdown().await;
    // The CLI's `keys rotate` is the same operation: the budget moves on.
    let nb_id = nb["id"].as_str().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["keys", "rotate", nb_id, "--database-url", &db.url])
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = switchyard_server::store::Store::connect(&db.url)
        .await
        .unwrap();
    let k = store.get_key(nb_id).await.unwrap().unwrap();
    let next = k.rotated_to.expect("rotated");
    let b = store.list_budgets(None).await.unwrap();
    let b = b.iter().find(|x| x.id == bud["id"]).unwrap();
    assert_eq!(b.scope_id, next);
    let nk = store.get_key(&next).await.unwrap().unwrap();
    assert_eq!((nk.user_id, nk.role), (k.user_id, k.role));
    let audit = store.list_audit(None, None, 1000).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "key.rotate" && e.actor == "cli" && e.outcome == "success"),
        "{audit:?}"
    );
    store.close().await;
}

/// A tenant admin reads what the operator set (model list, plan budget and
/// rate limit) but cannot clear, raise or delete it; what it sets itself,
/// it manages.
async fn what_the_operator_set_only_the_operator_changes(db: &Db) {
    let g = start(db).await;
    let t = tenant(
        &g,
        "owned",
        json!({"plan": "basic", "allowed_models": ["gpt"]}),
    )
    .await;
    let adm = user(&g, &t, "admin").await;
    let bil = user(&g, &t, "billing").await;
    let (_, sa, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": adm})).await;
    let (_, sb, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": bil})).await;
    live(&g, &sa).await;
    for body in [
        json!({"allowed_models": []}),
        json!({"allowed_models": ["gpt", "cheap"]}),
    ] {
        let (s, v) = call(
            &g,
            &sa,
            "patch",
            &format!("/admin/tenants/{t}"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 403, "{body}: {v}");
    }
    let bud = format!("/admin/budgets/bud_plan_{t}");
    let rl = format!("/admin/rate-limits/rl_plan_{t}");
    assert_eq!(ok(&g, &sa, "get", &bud, None).await["owner"], "operator");
    // The billing key authenticates once the gateway refreshed (it may not
    // call models, so `live` does not apply).
    eventually(5.0, "billing key live", || async {
        call(&g, &sb, "get", "/admin/budgets", None).await.0 != 401
    })
    .await;
    for who in [&sa, &sb] {
        let (s, v) = call(
            &g,
            who,
            "put",
            &bud,
            Some(json!({"scope": "tenant", "scope_id": t, "max_cost": 1000000})),
        )
        .await;
        assert_eq!(s, 403, "{v}");
        let (s, v) = call(&g, who, "delete", &bud, None).await;
        assert_eq!(s, 403, "{v}");
    }
    let (s, v) = call(&g, &sa, "delete", &rl, None).await;
    assert_eq!(s, 403, "{v}");
    // The operator can.
    ok(
        &g,
        MASTER,
        "put",
        &bud,
        Some(json!({"scope": "tenant", "scope_id": t, "max_cost": 100})),
    )
    .await;
    // The tenant's own budget: its admin and billing manage it.
    let own = ok(
        &g,
        &sb,
        "post",
        "/admin/budgets",
        Some(json!({"scope": "tenant", "scope_id": t, "max_cost": 5})),
    )
    .await;
    assert_eq!(own["owner"], "tenant");
    let path = format!("/admin/budgets/{}", own["id"].as_str().unwrap());
    ok(
        &g,
        &sa,
        "put",
        &path,
        Some(json!({"scope": "tenant", "scope_id": t, "max_cost": 6})),
    )
    .await;
    ok(&g, &sb, "delete", &path, None).await;
    // Narrowing the operator's model list is allowed.
    ok(
        &g,
        &sa,
        "patch",
        &format!("/admin/tenants/{t}"),
        Some(json!({"allowed_models": ["gpt"]})),
    )
    .await;
    g.shutdown().await;
}

// ---------------------------------------------------------------- §7

fn leaks(v: &str) -> bool {
    let l = v.to_lowercase();
    [
        "unique constraint",
        "constraint failed",
        "duplicate key",
        "violates",
        "sqlstate",
        "tenants.name",
    ]
    .iter()
    .any(|x| l.contains(x))
}

async fn database_text_never_reaches_callers(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "dup", json!({})).await;
    let (s, v) = call(
        &g,
        MASTER,
        "post",
        "/admin/tenants",
        Some(json!({"name": "dup"})),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert!(!leaks(&v.to_string()), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("dup"),
        "{v}"
    );
    let body = json!({"tenant_id": t, "email": "a@x.test"});
    ok(&g, MASTER, "post", "/admin/users", Some(body.clone())).await;
    let (s, v) = call(&g, MASTER, "post", "/admin/users", Some(body)).await;
    assert_eq!(s, 409, "{v}");
    assert!(!leaks(&v.to_string()), "{v}");
    g.shutdown().await;
    // The CLI says the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["tenants", "create", "dup", "--database-url", &db.url])
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("already exists") && !leaks(&err), "{err}");
}

// ---------------------------------------------------------------- §4

/// While the (non-blocking) audit queue is flooded, every key.create by
/// the master key is in the audit table when its call returns.
async fn admin_changes_are_audited_even_under_an_audit_flood(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "flood", json!({})).await;
    let audit = g.state().governance.as_ref().unwrap().audit.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..2_000 {
                    audit.record(switchyard_server::store::AuditEvent {
                        id: switchyard_server::store::new_id("aud_"),
                        ts: switchyard_server::store::now_ms(),
                        actor: "anonymous".into(),
                        tenant_id: None,
                        action: "auth.failure".into(),
                        target: None,
                        ip: Some("203.0.113.9".into()),
                        outcome: "denied".into(),
                        details: json!({"reason": "invalid_key"}),
                    });
                }
                tokio::task::yield_now().await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (id, _, _) = key(&g, MASTER, json!({"tenant_id": t, "name": format!("k{i}")})).await;
        ids.push(id);
    }
    // Read the audit table as soon as the calls returned.
    let rows = ok(
        &g,
        MASTER,
        "get",
        &format!("/admin/audit?tenant_id={t}&limit=1000"),
        None,
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.await.unwrap();
    let audited: Vec<&str> = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "key.create" && e["outcome"] == "success")
        .filter_map(|e| e["target"].as_str())
        .collect();
    for id in &ids {
        assert!(
            audited.contains(&id.as_str()),
            "key.create of {id} not audited: {audited:?}"
        );
    }
    let _ = KEY;
    g.shutdown().await;
}

/// When the database will not take an admin change's audit row, the change
/// is refused (503) and not made.
async fn a_change_is_not_made_without_its_audit_row(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "before", json!({})).await;
    // The audit table refuses `tenant.create` rows.
    if db.is_pg() {
        let p = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&db.url)
            .await
            .unwrap();
        for sql in [
            "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW \
             WHEN (NEW.action = 'tenant.create') EXECUTE FUNCTION refuse_audit()",
        ] {
            sqlx::query(sql).execute(&p).await.unwrap();
        }
        p.close().await;
    } else {
        let c = rusqlite::Connection::open(db.dir.join("switchyard.db")).unwrap();
        c.execute_batch(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
             WHEN NEW.action = 'tenant.create' BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    }
    let r = g
        .http
        .post(format!("{}/admin/tenants", g.base))
        .bearer_auth(MASTER)
        .json(&json!({"name": "unaudited"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "audit_unavailable");
    let all = ok(&g, MASTER, "get", "/admin/tenants", None).await;
    assert!(
        !all.to_string().contains("unaudited"),
        "the change was made without its audit row: {all}"
    );
    // Other changes are still made, and audited.
    user(&g, &t, "developer").await;
    g.shutdown().await;
}

// ------------------------------------------------- authority over keys

/// Every key operation a caller can aim at key `id`; each must be refused.
async fn refused_everything(g: &GovRig, by: &str, id: &str) {
    refused_with(g, by, id, &[403]).await
}

async fn refused_with(g: &GovRig, by: &str, id: &str, codes: &[u16]) {
    let base = format!("/admin/keys/{id}");
    for (m, path, body) in [
        ("get", base.clone(), None),
        ("patch", base.clone(), Some(json!({"name": "pwned"}))),
        ("patch", base.clone(), Some(json!({"enabled": false}))),
        (
            "post",
            format!("{base}/rotate"),
            Some(json!({"overlap_seconds": 31536000})),
        ),
        ("post", format!("{base}/revoke"), None),
    ] {
        let (s, v) = call(g, by, m, &path, body.clone()).await;
        assert!(codes.contains(&s), "{id} {m} {path} {body:?}: {s} {v}");
        assert!(
            v.get("key").is_none(),
            "{m} {path}: a plaintext leaked: {v}"
        );
    }
}

/// Key `id` as the operator sees it is untouched: active, enabled, not
/// rotated, its name unchanged.
async fn untouched(g: &GovRig, id: &str) {
    let v = ok(g, MASTER, "get", &format!("/admin/keys/{id}"), None).await;
    assert!(v["revoked_at"].is_null(), "{v}");
    assert!(v["rotated_to"].is_null(), "{v}");
    assert_eq!(v["enabled"], json!(true), "{v}");
    assert!(v["disabled_by"].is_null(), "{v}");
    assert_ne!(v["name"], json!("pwned"), "{v}");
    assert!(v["expires_at"].is_null(), "{v}");
}

/// The reviewer's repro: a narrowed child of a developer key cannot read,
/// rename, disable, rotate (which would hand it an unrestricted plaintext)
/// or revoke its creator or a sibling key of the same user; a narrowed,
/// expiring admin key cannot do so to the admin key that created it, to
/// another admin key, or to a developer key broader than itself, nor put a
/// budget on its creator.
async fn a_key_never_acts_on_a_broader_key(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "authority", json!({})).await;
    let dev = user(&g, &t, "developer").await;
    let adm = user(&g, &t, "admin").await;
    let (ak0, sak0, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": adm})).await;
    let (ak1, _, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": adm})).await;
    let (d, sd, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": dev})).await;
    live(&g, &sak0).await;
    let (sib, _, _) = key(&g, &sak0, json!({"user_id": dev, "name": "sibling"})).await;
    live(&g, &sd).await;
    let (_, s3, k3) = key(&g, &sd, json!({"name": "k3", "allowed_models": ["gpt"]})).await;
    assert_eq!(k3["parent_key_id"], json!(d));
    live(&g, &s3).await;
    for target in [&d, &sib] {
        refused_everything(&g, &s3, target).await;
        untouched(&g, target).await;
    }
    // Nor does it list them.
    let listed = ok(&g, &s3, "get", "/admin/keys", None).await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&d.as_str()) && !ids.contains(&sib.as_str()),
        "{listed}"
    );
    // The narrowed admin key.
    let (_, sac, ac) = key(
        &g,
        &sak0,
        json!({"user_id": adm, "role": "admin", "allowed_models": ["gpt"], "expires_in": 3600}),
    )
    .await;
    assert_eq!(ac["role"], json!("admin"), "{ac}");
    live(&g, &sac).await;
    for target in [&ak0, &ak1, &d] {
        refused_everything(&g, &sac, target).await;
        untouched(&g, target).await;
    }
    let (s, v) = call(
        &g,
        &sac,
        "post",
        "/admin/budgets",
        Some(json!({"scope": "key", "scope_id": ak0, "max_cost": 0.000001})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    // A rotated key's successor, narrowed since, cannot rotate the old
    // (broader) key while it overlaps.
    let (e, se, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": dev})).await;
    live(&g, &se).await;
    let r = ok(
        &g,
        &se,
        "post",
        &format!("/admin/keys/{e}/rotate"),
        Some(json!({"overlap_seconds": 3600})),
    )
    .await;
    let (e2, se2) = (
        r["id"].as_str().unwrap().to_owned(),
        r["key"].as_str().unwrap().to_owned(),
    );
    live(&g, &se2).await;
    ok(
        &g,
        &se2,
        "patch",
        &format!("/admin/keys/{e2}"),
        Some(json!({"allowed_models": ["gpt"]})),
    )
    .await;
    let (s, v) = call(
        &g,
        &se2,
        "post",
        &format!("/admin/keys/{e}/rotate"),
        Some(json!({"overlap_seconds": 0})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    // The unrestricted keys still work for every model.
    for secret in [&sd, &sak0] {
        assert_eq!(chat(&g, secret, "cheap").await.0, 200);
    }
}

/// What stays allowed: a developer key rotates and revokes the keys it
/// created, a key rotates and revokes itself, an unrestricted admin key
/// manages a developer key of its tenant, the master key anything.
async fn keys_still_manage_what_they_may(db: &Db) {
    let g = start(db).await;
    let t = tenant(&g, "authority-ok", json!({})).await;
    let dev = user(&g, &t, "developer").await;
    let adm = user(&g, &t, "admin").await;
    let (ak0, sak0, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": adm})).await;
    let (d, sd, _) = key(&g, MASTER, json!({"tenant_id": t, "user_id": dev})).await;
    live(&g, &sd).await;
    let (k4, _, _) = key(&g, &sd, json!({"allowed_models": ["gpt"]})).await;
    ok(&g, &sd, "get", &format!("/admin/keys/{k4}"), None).await;
    ok(
        &g,
        &sd,
        "patch",
        &format!("/admin/keys/{k4}"),
        Some(json!({"name": "renamed"})),
    )
    .await;
    let r = ok(
        &g,
        &sd,
        "post",
        &format!("/admin/keys/{k4}/rotate"),
        Some(json!({"overlap_seconds": 0})),
    )
    .await;
    assert_eq!(r["allowed_models"], json!(["gpt"]), "{r}");
    let k4b = r["id"].as_str().unwrap().to_owned();
    ok(&g, &sd, "post", &format!("/admin/keys/{k4b}/revoke"), None).await;
    // A key on itself.
    let (k5, s5, _) = key(&g, &sd, json!({"allowed_models": ["gpt"]})).await;
    live(&g, &s5).await;
    let r = ok(
        &g,
        &s5,
        "post",
        &format!("/admin/keys/{k5}/rotate"),
        Some(json!({"overlap_seconds": 60})),
    )
    .await;
    assert_eq!(r["allowed_models"], json!(["gpt"]), "{r}");
    ok(&g, &s5, "post", &format!("/admin/keys/{k5}/revoke"), None).await;
    // An unrestricted admin key on a developer key of its tenant.
    live(&g, &sak0).await;
    ok(&g, &sak0, "get", &format!("/admin/keys/{d}"), None).await;
    let r = ok(
        &g,
        &sak0,
        "post",
        &format!("/admin/keys/{d}/rotate"),
        Some(json!({"overlap_seconds": 60})),
    )
    .await;
    assert!(r["key"].is_string(), "{r}");
    ok(
        &g,
        &sak0,
        "post",
        "/admin/budgets",
        Some(json!({"scope": "key", "scope_id": r["id"], "max_cost": 5})),
    )
    .await;
    // The master key on an admin key.
    let r = ok(
        &g,
        MASTER,
        "post",
        &format!("/admin/keys/{ak0}/rotate"),
        Some(json!({"overlap_seconds": 0})),
    )
    .await;
    assert!(r["key"].is_string(), "{r}");
}
