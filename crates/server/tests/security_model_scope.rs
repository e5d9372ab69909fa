//! Issue 18 (governance review) §2–3: model scopes follow deployments.
//!
//! A rate limit scoped to a model alias also applies to a request that
//! reaches one of that alias's deployments by another name (a
//! `provider/model` route); a key limited to some aliases cannot reach
//! another model by `provider/model`; `/v1/models` (both list formats)
//! shows only what the caller may call. Runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use common::db::TestDb;
use serde_json::{json, Value};
use std::time::Duration;
use switchyard_mock::{Flavor, MockOptions, MockServer};
use switchyard_server::governance::keys;
use switchyard_server::store::{
    self, ApiKey, Budget, BudgetAction, Role, Scope, Store, Tenant, TenantStatus, UsageFilter,
    UsageRow,
};
use tokio::sync::oneshot;

const MASTER: &str = "sk-master-test";

struct Rig {
    base: String,
    oai: MockServer,
    ant: MockServer,
    store: Store,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _db: TestDb,
}

/// A governed gateway over an OpenAI mock (`oai`, and `dp`: the same mock
/// with a `default_price`) and an Anthropic mock (`ant`). `governance`
/// is extra YAML under `governance:` (e.g. `unpriced: allow`).
async fn rig(db: TestDb, governance: &str) -> Rig {
    let oai = start_mock(Flavor::OpenAi, "oai").await;
    let ant = start_mock(Flavor::Anthropic, "ant").await;
    let yaml = format!(
        r#"
server:
  workers: 2
governance:
  database_url: "{db_url}"
  data_dir: "{dir}"
  master_key: "${{MASTER}}"
  refresh_interval: 100ms
  {governance}
providers:
  oai: {{ kind: openai, base_url: "{oai}", api_key: "${{K}}" }}
  ant: {{ kind: anthropic, base_url: "{ant}", api_key: "${{K}}" }}
models:
  demo-openai: {{ deployments: [ {{ provider: oai, model: gpt-4o-mini }} ] }}
  other: {{ deployments: [ {{ provider: oai, model: gpt-4o }} ] }}
  claude: {{ deployments: [ {{ provider: ant, model: claude-3-5-haiku-20241022 }} ] }}
  embed: {{ deployments: [ {{ provider: oai, model: text-embedding-3-small }} ] }}
"#,
        db_url = db.url,
        dir = db.dir.display(),
        oai = oai.base_url(),
        ant = ant.base_url(),
    );
    let env = |k: &str| match k {
        "MASTER" => Some(MASTER.to_owned()),
        "K" => Some("k".to_owned()),
        _ => None,
    };
    let cfg = switchyard_server::config::from_yaml(&yaml, "model_scope.yaml", &env)
        .unwrap_or_else(|p| panic!("{p:#?}"));
    serve(cfg, db, oai, ant).await
}

async fn start_mock(flavor: Flavor, label: &str) -> MockServer {
    MockServer::start(MockOptions {
        flavor,
        api_key: None,
        label: label.into(),
    })
    .await
    .unwrap()
}

async fn serve(
    cfg: switchyard_server::config::Config,
    db: TestDb,
    oai: MockServer,
    ant: MockServer,
) -> Rig {
    let running = switchyard_server::build(cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = running
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    let store = Store::connect(&db.url).await.unwrap();
    Rig {
        base,
        oai,
        ant,
        store,
        http: reqwest::Client::new(),
        stop: Some(tx),
        task: Some(task),
        _db: db,
    }
}

impl Rig {
    /// A tenant and a developer key in it; returns (tenant, key id, key).
    async fn key(&self) -> (String, String, String) {
        self.key_with(&[], &[]).await
    }

    /// A key limited to `models`, in a tenant limited to `tenant_models`.
    async fn key_with(&self, models: &[&str], tenant_models: &[&str]) -> (String, String, String) {
        let now = store::now_ms();
        let t = Tenant {
            id: store::new_id("ten_"),
            name: store::new_id("acme-"),
            status: TenantStatus::Active,
            plan: None,
            allowed_models: tenant_models.iter().map(|s| s.to_string()).collect(),
            metadata: json!({}),
            created_at: now,
            updated_at: now,
        };
        self.store.create_tenant(&t).await.unwrap();
        let plain = keys::generate();
        let k = ApiKey {
            id: store::new_id("key_"),
            hash: keys::hash_hex(&plain),
            prefix: keys::display_prefix(&plain),
            name: None,
            tenant_id: t.id.clone(),
            user_id: None,
            role: Role::Developer,
            allowed_models: models.iter().map(|s| s.to_string()).collect(),
            metadata: json!({}),
            expires_at: None,
            enabled: true,
            revoked_at: None,
            rotated_to: None,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            parent_key_id: None,
            disabled_by: None,
        };
        self.store.create_key(&k).await.unwrap();
        (t.id, k.id, plain)
    }

    /// A budget on the key.
    async fn budget(
        &self,
        key_id: &str,
        max_cost: Option<f64>,
        max_tokens: Option<i64>,
        downgrade_to: Option<&str>,
    ) {
        let now = store::now_ms();
        self.store
            .upsert_budget(&Budget {
                id: store::new_id("bud_"),
                scope: Scope::Key,
                scope_id: key_id.into(),
                period: "monthly".into(),
                max_cost,
                max_tokens,
                alert_thresholds: vec![],
                action: if downgrade_to.is_some() {
                    BudgetAction::Downgrade
                } else {
                    BudgetAction::Block
                },
                downgrade_alias: downgrade_to.map(str::to_owned),
                created_at: now,
                updated_at: now,
                owner: Default::default(),
            })
            .await
            .unwrap();
    }

    /// Let the gateway's refresh loop pick up what the test wrote.
    async fn sync(&self) {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        req = if path == "/v1/messages" {
            req.header("x-api-key", key)
                .header("anthropic-version", "2023-06-01")
        } else {
            req.bearer_auth(key)
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    async fn chat(&self, key: &str, model: &str) -> (u16, Value) {
        self.post("/v1/chat/completions", key, n_body(model, json!(null)))
            .await
    }

    /// POSTs that reached the upstream mocks.
    fn upstream_hits(&self) -> usize {
        [&self.oai, &self.ant]
            .iter()
            .map(|m| m.requests().iter().filter(|r| r.method == "POST").count())
            .sum()
    }

    /// Stop serving and drain the usage writer, then read the key's rows.
    async fn rows_after_shutdown(&mut self, key_id: &str) -> Vec<UsageRow> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        self.store
            .usage_rows(
                &UsageFilter {
                    key_id: Some(key_id.into()),
                    ..Default::default()
                },
                10_000,
            )
            .await
            .unwrap()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn n_body(model: &str, n: Value) -> Value {
    json!({"model": model, "n": n, "max_tokens": 16,
           "messages": [{"role": "user", "content": "hello there"}]})
}

impl Rig {
    async fn limit(&self, kid: &str, model: &str, rpm: u32) {
        let (s, v) = self
            .post(
                "/admin/rate-limits",
                MASTER,
                json!({"scope": "key", "scope_id": kid, "model": model, "rpm": rpm}),
            )
            .await;
        assert!(s == 200 || s == 201, "{v}");
    }
}

/// The reviewer's scenario: rpm 1 on `demo-openai`; `oai/gpt-4o-mini` is
/// the same deployment and shares the limit; another model does not.
async fn model_limit_covers_provider_model_routes(db: TestDb) {
    let g = rig(db, "").await;
    let (_t, kid, key) = g.key().await;
    g.limit(&kid, "demo-openai", 1).await;
    let (_t2, kid2, key2) = g.key().await;
    g.limit(&kid2, "demo-openai", 1).await;
    g.sync().await;
    let (s, v) = g.chat(&key, "demo-openai").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = g.chat(&key, "demo-openai").await;
    assert_eq!(s, 429, "{v}");
    for _ in 0..3 {
        let (s, v) = g.chat(&key, "oai/gpt-4o-mini").await;
        assert_eq!(s, 429, "same deployment by provider/model: {v}");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
    }
    // Another model is not limited by it.
    let (s, v) = g.chat(&key, "oai/gpt-4o").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = g.chat(&key, "other").await;
    assert_eq!(s, 200, "{v}");
    // The other way round: provider/model first, then the alias.
    let (s, v) = g.chat(&key2, "oai/gpt-4o-mini").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = g.chat(&key2, "demo-openai").await;
    assert_eq!(s, 429, "{v}");
    // Messages (Anthropic ingress) too.
    let (s, v) = g
        .post(
            "/v1/messages",
            &key2,
            json!({"model": "oai/gpt-4o-mini", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["type"], "error", "{v}");
}

/// A key limited to `demo-openai` cannot reach another model (nor any
/// model) by `provider/model`; a tenant's list narrows the same way.
async fn allowed_models_hold_for_provider_model_routes(db: TestDb) {
    let g = rig(db, "").await;
    let (_t, _kid, key) = g.key_with(&["demo-openai"], &[]).await;
    let (_t, _kid, tkey) = g.key_with(&[], &["demo-openai"]).await;
    g.sync().await;
    for k in [&key, &tkey] {
        let (s, v) = g.chat(k, "demo-openai").await;
        assert_eq!(s, 200, "{v}");
        for m in [
            "oai/gpt-4o",
            "other",
            "oai/text-embedding-3-small",
            "ant/claude-3-5-haiku-20241022",
        ] {
            let (s, v) = g.chat(k, m).await;
            assert_eq!(s, 403, "{m}: {v}");
        }
        let (s, v) = g
            .post(
                "/v1/embeddings",
                k,
                json!({"model": "oai/text-embedding-3-small", "input": "x"}),
            )
            .await;
        assert_eq!(s, 403, "{v}");
    }
}

impl Rig {
    async fn get(&self, path: &str, key: &str, anthropic: bool) -> (u16, Value) {
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key);
        if anthropic {
            req = req.header("anthropic-version", "2023-06-01");
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap())
    }
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `/v1/models` lists only what the caller may call, in both formats; a
/// model it may not call is a 404 on `/v1/models/{id}`.
async fn model_list_shows_only_callable_models(db: TestDb) {
    let g = rig(db, "").await;
    let (_t, _k, key) = g.key_with(&["demo-openai"], &[]).await;
    let (_t, _k, tkey) = g.key_with(&[], &["claude", "demo-openai"]).await;
    let (open_tenant, _k, open) = g.key().await;
    let (s, v) = g
        .post(
            "/admin/keys",
            MASTER,
            json!({"tenant_id": open_tenant, "name": "reader", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let viewer = v["key"].as_str().unwrap().to_owned();
    g.sync().await;
    // A role that may call no model is listed none.
    let (s, v) = g.get("/v1/models", &viewer, false).await;
    assert_eq!(s, 200, "{v}");
    assert!(ids(&v).is_empty(), "{v}");
    let (s, v) = g.get("/v1/models", &key, false).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), ["demo-openai"]);
    let (s, v) = g.get("/v1/models", &key, true).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), ["demo-openai"]);
    assert_eq!(v["first_id"], "demo-openai");
    assert_eq!(v["last_id"], "demo-openai");
    let (_, v) = g.get("/v1/models", &tkey, false).await;
    assert_eq!(ids(&v), ["claude", "demo-openai"]);
    let (_, v) = g.get("/v1/models", &tkey, true).await;
    assert_eq!(ids(&v), ["claude", "demo-openai"]);
    let (first, last) = (v["first_id"].clone(), v["last_id"].clone());
    assert!(
        first != last && ids(&v).iter().all(|i| *i == first || *i == last),
        "{v}"
    );
    let all = ["claude", "demo-openai", "embed", "other"];
    let (_, v) = g.get("/v1/models", &open, false).await;
    assert_eq!(ids(&v), all);
    let (_, v) = g.get("/v1/models", MASTER, false).await;
    assert_eq!(ids(&v), all);
    let (s, _) = g.get("/v1/models/demo-openai", &key, false).await;
    assert_eq!(s, 200);
    let (s, v) = g.get("/v1/models/other", &key, false).await;
    assert_eq!(s, 404, "{v}");
    let (s, _) = g.get("/v1/models/other", &open, false).await;
    assert_eq!(s, 200);
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = super::TestDb::pg(None).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

on_both!(
    model_limit_covers_provider_model_routes,
    allowed_models_hold_for_provider_model_routes,
    model_list_shows_only_callable_models,
);
