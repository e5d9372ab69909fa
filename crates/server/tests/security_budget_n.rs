//! Issue 18 (governance review) §1: OpenAI `n` counts in the reservation.
//!
//! A request asking for `n` choices may produce `n` times its output cap,
//! so admission reserves prompt + n × max output tokens (budgets and TPM
//! limits alike), on pass-through and translated routes; `n` outside
//! 1..=128 (or not an integer) is a 400 naming `n`. Concurrent requests
//! can then never overspend a tokens budget. Embeddings (no `n`) are
//! unaffected. Runs on SQLite and on PostgreSQL.
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
    let gem = start_mock(Flavor::Gemini, "gem").await;
    let gem_url = gem.base_url();
    // Kept serving for the rest of the test process.
    std::mem::forget(gem);
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
  gem: {{ kind: gemini, base_url: "{gem_url}", api_key: "${{K}}" }}
models:
  demo-openai: {{ deployments: [ {{ provider: oai, model: gpt-4o-mini }} ] }}
  other: {{ deployments: [ {{ provider: oai, model: gpt-4o }} ] }}
  gemini: {{ deployments: [ {{ provider: gem, model: gemini-2.0-flash }} ] }}
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
    let cfg = switchyard_server::config::from_yaml(&yaml, "budget_n.yaml", &env)
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
        let now = store::now_ms();
        let t = Tenant {
            id: store::new_id("ten_"),
            name: store::new_id("acme-"),
            status: TenantStatus::Active,
            plan: None,
            allowed_models: Vec::new(),
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
            allowed_models: Vec::new(),
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
    json!({"model": model, "n": n, "max_tokens": 40,
           "messages": [{"role": "user", "content": "hello there"}]})
}

fn spent(rows: &[UsageRow]) -> u64 {
    rows.iter()
        .map(|r| (r.input_tokens + r.output_tokens) as u64)
        .sum()
}

/// The reviewer's scenario: key budget 300 tokens, 8 concurrent requests
/// with `n: 20, max_tokens: 40` (each returns 20 choices). Before the fix
/// each reserved ~prompt+40 and spent ~prompt+140: 435 > 300.
async fn concurrent_n_requests_never_overspend(db: TestDb) {
    let mut g = rig(db, "").await;
    let (_t, kid, key) = g.key().await;
    g.budget(&kid, None, Some(300), None).await;
    g.sync().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let http = g.http.clone();
        let url = format!("{}/v1/chat/completions", g.base);
        let key = key.clone();
        // Half ask for 20 choices, half for 2 (whose worst case fits).
        let n = if i % 2 == 0 { 20 } else { 2 };
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&n_body("demo-openai", json!(n)))
                .send()
                .await
                .unwrap();
            (n, r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (n, s, v) = t.await.unwrap();
        if n == 20 {
            assert_ne!(
                s, 200,
                "n=20 × 40 output tokens exceeds the 300-token budget: {v}"
            );
        }
        if s == 200 {
            ok += 1;
            assert_eq!(v["choices"].as_array().unwrap().len(), n);
        }
    }
    assert!(ok >= 1, "a request whose worst case fits is served");
    let rows = g.rows_after_shutdown(&kid).await;
    let total = spent(&rows);
    assert!(total <= 300, "spent {total} tokens of a 300-token budget");
}

/// Translated route (OpenAI ingress, Gemini upstream: `candidateCount`, at most 8):
/// the reservation is n × the cap too, refused before the upstream; a
/// small n that fits is served with n choices.
async fn translated_route_reserves_n_times(db: TestDb) {
    let g = rig(db, "").await;
    let (_t, kid, key) = g.key().await;
    g.budget(&kid, None, Some(300), None).await;
    g.sync().await;
    let (s, v) = g
        .post("/v1/chat/completions", &key, n_body("gemini", json!(8)))
        .await;
    assert_ne!(s, 200, "{v}");
    let (s, v) = g
        .post("/v1/chat/completions", &key, n_body("gemini", json!(2)))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"].as_array().unwrap().len(), 2, "{v}");
    // Anthropic has no `n`: n > 1 to a Claude deployment is a 400 naming it.
    let (s, v) = g
        .post("/v1/chat/completions", &key, n_body("claude", json!(2)))
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "n", "{v}");
}

/// `n` is validated (OpenAI: integer, 1..=128), in the OpenAI error shape.
async fn bad_n_is_a_400_naming_n(db: TestDb) {
    let g = rig(db, "").await;
    let (_t, _kid, key) = g.key().await;
    g.sync().await;
    for bad in [
        json!(0),
        json!(129),
        json!(-1),
        json!(1.5),
        json!("2"),
        json!([1]),
    ] {
        let (s, v) = g
            .post(
                "/v1/chat/completions",
                &key,
                n_body("demo-openai", bad.clone()),
            )
            .await;
        assert_eq!(s, 400, "n={bad}: {v}");
        assert_eq!(v["error"]["param"], "n", "n={bad}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    assert_eq!(g.upstream_hits(), 0);
    for good in [json!(null), json!(1), json!(3)] {
        let (s, v) = g
            .post(
                "/v1/chat/completions",
                &key,
                n_body("demo-openai", good.clone()),
            )
            .await;
        assert_eq!(s, 200, "n={good}: {v}");
    }
    // TPM limits reserve n × the cap too: prompt (~25) + 2 × 40 > 90 >= prompt + 40.
    let (s, v) = g
        .post(
            "/admin/rate-limits",
            MASTER,
            json!({"scope": "key", "scope_id": _kid, "tpm": 90}),
        )
        .await;
    assert!(s == 200 || s == 201, "{v}");
    g.sync().await;
    let (s, v) = g
        .post(
            "/v1/chat/completions",
            &key,
            n_body("demo-openai", json!(2)),
        )
        .await;
    assert_eq!(s, 429, "{v}");
    let (s, v) = g
        .post(
            "/v1/chat/completions",
            &key,
            n_body("demo-openai", json!(1)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

/// Embeddings have no `n`: the field is not read there.
async fn embeddings_unaffected(db: TestDb) {
    let g = rig(db, "").await;
    let (_t, _kid, key) = g.key().await;
    g.sync().await;
    let (s, v) = g
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "embed", "input": "hi"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
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
    concurrent_n_requests_never_overspend,
    translated_route_reserves_n_times,
    bad_n_is_a_400_naming_n,
    embeddings_unaffected,
);
