//! Issue 18 §2: budgets cannot be bypassed with a model name.
//!
//! A cost (USD) budget fails closed: a request it applies to whose price is
//! unknown (a `provider/model` name missing from the table, an env-mode
//! prefix route, a fallback or downgrade alias with an unpriced deployment)
//! is refused with 403 `model_price_unknown` in the caller's error shape,
//! before anything reaches the upstream — unless the operator priced it
//! (deployment `price:`, `providers.NAME.default_price`) or chose
//! `governance.unpriced: allow`. Fine-tuned `ft:BASE:…` names are priced
//! from their base. Tokens-only budgets keep working for any model, and
//! usage rows of models without a price of their own say `unpriced`.
//! Storage-related tests run on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

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
  dp: {{ kind: openai, base_url: "{oai}", api_key: "${{K}}", default_price: {{ input: 1000, output: 1000 }} }}
  ant: {{ kind: anthropic, base_url: "{ant}", api_key: "${{K}}" }}
models:
  m: {{ deployments: [ {{ provider: oai, model: gpt-4o, price: {{ input: 1000, output: 1000 }} }} ] }}
  cheap: {{ deployments: [ {{ provider: oai, model: gpt-4o-mini }} ] }}
  mystery: {{ deployments: [ {{ provider: oai, model: acme-mystery-1 }} ] }}
  guarded: {{ deployments: [ {{ provider: oai, model: gpt-4o-mini }} ], fallbacks: [mystery] }}
  cw: {{ deployments: [ {{ provider: oai, model: gpt-4o-mini }} ], context_window_fallback: mystery }}
  mguard: {{ deployments: [ {{ provider: oai, model: gpt-4o, price: {{ input: 1000, output: 1000 }} }} ], fallbacks: [mystery] }}
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
    let cfg = switchyard_server::config::from_yaml(&yaml, "pricing.yaml", &env)
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
        self.post("/v1/chat/completions", key, chat_body(model, false))
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

fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 16,
           "messages": [{"role": "user", "content": "hello there"}]})
}

/// The refusal names the model and says how to price it, in OpenAI's shape.
fn assert_openai_unpriced(status: u16, v: &Value, model: &str) {
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "model_price_unknown", "{v}");
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("`{model}`")), "{msg}");
    for hint in ["price:", "default_price", "governance.unpriced: allow"] {
        assert!(msg.contains(hint), "no `{hint}` in: {msg}");
    }
}

// ------------------------------------------------------------------ tests

/// The observed attack: a $0.001 key budget refuses an expensive request,
/// and 40 concurrent requests to names missing from the price table (chat,
/// streams, the Anthropic route, embeddings, fine-tune names) must all be
/// refused too, with nothing reaching an upstream.
async fn unpriced_names_cannot_bypass_a_cost_budget(db: TestDb) {
    let mut g = rig(db, "").await;
    let (_, kid, key) = g.key().await;
    g.budget(&kid, Some(0.001), None, None).await;
    g.sync().await;
    let (s, v) = g.chat(&key, "m").await;
    assert_eq!(s, 429, "the expensive alias is refused: {v}");
    assert_eq!(v["error"]["code"], "budget_exceeded");

    // (route, model, stream, expected: Some(unpriced model) or None = budget).
    let cases: &[(&str, &str, bool, Option<&str>)] = &[
        (
            "/v1/chat/completions",
            "oai/totally-unpriced-model",
            false,
            Some("totally-unpriced-model"),
        ),
        (
            "/v1/chat/completions",
            "oai/totally-unpriced-model",
            true,
            Some("totally-unpriced-model"),
        ),
        (
            "/v1/chat/completions",
            "oai/gpt-99-turbo-2099-01-01",
            false,
            Some("gpt-99-turbo-2099-01-01"),
        ),
        (
            "/v1/chat/completions",
            "oai/ft:acme-secret-base:acme::abc",
            false,
            Some("ft:acme-secret-base:acme::abc"),
        ),
        // Priced from its base (gpt-4o): refused by the budget itself.
        (
            "/v1/chat/completions",
            "oai/ft:gpt-4o-2024-08-06:acme::abc123",
            false,
            None,
        ),
        (
            "/v1/chat/completions",
            "ant/claude-opus-9",
            false,
            Some("claude-opus-9"),
        ),
        (
            "/v1/messages",
            "ant/claude-opus-9",
            false,
            Some("claude-opus-9"),
        ),
        (
            "/v1/messages",
            "ant/claude-opus-9",
            true,
            Some("claude-opus-9"),
        ),
        (
            "/v1/messages",
            "oai/totally-unpriced-model",
            false,
            Some("totally-unpriced-model"),
        ),
        (
            "/v1/embeddings",
            "oai/text-embedding-made-up",
            false,
            Some("text-embedding-made-up"),
        ),
    ];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (path, model, stream, expect) = cases[i % cases.len()];
        let body = if path == "/v1/embeddings" {
            json!({"model": model, "input": "hello"})
        } else if expect.is_none() {
            // No `max_tokens`: the reservation covers the model's maximum
            // output at gpt-4o's rate, more than the budget.
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        } else {
            chat_body(model, stream)
        };
        let (base, http, key) = (g.base.clone(), g.http.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut req = http.post(format!("{base}{path}")).json(&body);
            req = if path == "/v1/messages" {
                req.header("x-api-key", &key)
                    .header("anthropic-version", "2023-06-01")
            } else {
                req.bearer_auth(&key)
            };
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (path, model, expect, s, v)
        }));
    }
    for t in tasks {
        let (path, model, expect, s, v) = t.await.unwrap();
        match (path, expect) {
            ("/v1/messages", Some(m)) => {
                // Anthropic's error shape on the Anthropic route.
                assert_eq!(s, 403, "{model}: {v}");
                assert_eq!(v["type"], "error", "{v}");
                assert_eq!(v["error"]["type"], "permission_error", "{v}");
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains(&format!("`{m}`")), "{msg}");
                assert!(msg.contains("default_price"), "{msg}");
            }
            (_, Some(m)) => assert_openai_unpriced(s, &v, m),
            (_, None) => {
                assert_eq!(s, 429, "{model}: {v}");
                assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
            }
        }
    }
    assert_eq!(
        g.upstream_hits(),
        0,
        "a refused request reached an upstream"
    );
    let rows = g.rows_after_shutdown(&kid).await;
    // Refused at admission: nothing served, nothing billed.
    assert!(
        rows.iter().all(|r| r.status >= 400 && r.cost == 0.0),
        "{rows:?}"
    );
}

/// `ft:BASE:…` is billed at BASE's price, not 0, and its rows are not
/// flagged; a dated snapshot of a priced model is priced too.
async fn fine_tuned_names_are_priced_from_their_base(db: TestDb) {
    let mut g = rig(db, "").await;
    let (_, kid, key) = g.key().await;
    g.budget(&kid, Some(100.0), None, None).await;
    g.sync().await;
    for model in [
        "oai/ft:gpt-4o-2024-08-06:acme::abc123",
        "oai/gpt-4o-mini-2024-07-18",
    ] {
        let (s, v) = g.chat(&key, model).await;
        assert_eq!(s, 200, "{model}: {v}");
    }
    let rows = g.rows_after_shutdown(&kid).await;
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let (inp, out) = if r.upstream_model.starts_with("ft:") {
            (2.5, 10.0) // gpt-4o
        } else {
            (0.15, 0.6) // gpt-4o-mini
        };
        let want = (r.input_tokens as f64 * inp + r.output_tokens as f64 * out) / 1e6;
        assert!(r.cost > 0.0 && (r.cost - want).abs() < 1e-12, "{r:?}");
        assert!(!r.unpriced, "{r:?}");
    }
}

/// `providers.NAME.default_price` prices that provider's unknown models:
/// admitted within the budget, refused beyond it, rows costed and flagged.
async fn default_price_prices_unknown_models_and_flags_rows(db: TestDb) {
    let mut g = rig(db, "").await;
    let (_, kid, key) = g.key().await;
    g.budget(&kid, Some(100.0), None, None).await;
    let (_, small_kid, small) = g.key().await;
    g.budget(&small_kid, Some(0.001), None, None).await;
    g.sync().await;
    let (s, v) = g.chat(&key, "dp/totally-unpriced-model").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = g.chat(&small, "dp/totally-unpriced-model").await;
    assert_eq!((s, &v["error"]["code"]), (429, &json!("budget_exceeded")));
    let rows = g.rows_after_shutdown(&kid).await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    let want = (r.input_tokens + r.output_tokens) as f64 * 1000.0 / 1e6;
    assert!(r.cost > 0.0 && (r.cost - want).abs() < 1e-12, "{r:?}");
    assert!(r.unpriced, "a default-priced row is flagged: {r:?}");
}

/// `governance.unpriced: allow`: admitted under a cost budget at cost 0,
/// rows flagged.
async fn unpriced_allow_admits_and_flags_rows(db: TestDb) {
    let mut g = rig(db, "unpriced: allow").await;
    let (_, kid, key) = g.key().await;
    g.budget(&kid, Some(0.001), None, None).await;
    g.sync().await;
    let (s, v) = g.chat(&key, "oai/totally-unpriced-model").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = g
        .post("/v1/messages", &key, chat_body("ant/claude-opus-9", false))
        .await;
    assert_eq!(s, 200, "{v}");
    // Priced models still answer to the budget, also when a fallback is
    // unpriced: the reservation is the priced deployments' worst case.
    for alias in ["m", "mguard"] {
        let (s, v) = g.chat(&key, alias).await;
        assert_eq!((s, &v["error"]["code"]), (429, &json!("budget_exceeded")));
    }
    let rows = g.rows_after_shutdown(&kid).await;
    let ok: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 2, "{rows:?}");
    assert!(ok.iter().all(|r| r.unpriced && r.cost == 0.0), "{ok:?}");
}

/// A tokens-only budget works for any model, priced or not; its rows say
/// `unpriced` where the model has no price.
async fn tokens_only_budget_works_for_unpriced_models(db: TestDb) {
    let mut g = rig(db, "").await;
    let (_, kid, key) = g.key().await;
    g.budget(&kid, None, Some(1_000_000), None).await;
    let (_, tiny_kid, tiny) = g.key().await;
    g.budget(&tiny_kid, None, Some(10), None).await;
    g.sync().await;
    let (s, v) = g.chat(&key, "oai/totally-unpriced-model").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = g
        .post("/v1/messages", &key, chat_body("ant/claude-opus-9", true))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = g.chat(&key, "cheap").await;
    assert_eq!(s, 200, "{v}");
    // The tokens budget still binds.
    let (s, v) = g.chat(&tiny, "oai/totally-unpriced-model").await;
    assert_eq!((s, &v["error"]["code"]), (429, &json!("budget_exceeded")));
    let rows = g.rows_after_shutdown(&kid).await;
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r.status, 200);
        assert!(r.input_tokens > 0, "{r:?}");
        assert_eq!(r.unpriced, r.alias != "cheap", "{r:?}");
    }
    // Reports count them.
    let totals = g
        .store
        .usage_totals(
            &UsageFilter {
                key_id: Some(kid.clone()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(totals.len(), 1, "{totals:?}");
    assert_eq!((totals[0].requests, totals[0].unpriced), (3, 2));
}

/// Every deployment a request may reach must be priced: a fallback, a
/// context-window fallback, and a downgrade target with an unpriced
/// deployment fail closed too.
async fn fallbacks_and_downgrades_to_unpriced_models_fail_closed(db: TestDb) {
    let g = rig(db, "").await;
    let (_, kid, key) = g.key().await;
    g.budget(&kid, Some(5.0), None, None).await;
    let (_, dkid, dkey) = g.key().await;
    g.budget(&dkid, Some(0.000_001), None, Some("mystery"))
        .await;
    g.sync().await;
    let (s, v) = g.chat(&key, "cheap").await;
    assert_eq!(s, 200, "{v}");
    for alias in ["mystery", "guarded", "cw"] {
        let (s, v) = g.chat(&key, alias).await;
        assert_openai_unpriced(s, &v, "acme-mystery-1");
    }
    let (s, v) = g
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "embed", "input": "hi"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The downgrade alias is unpriced: refused rather than served by it.
    let (s, v) = g.chat(&dkey, "cheap").await;
    assert_openai_unpriced(s, &v, "acme-mystery-1");
    assert_eq!(g.upstream_hits(), 2, "only `cheap` and `embed` went out");
}

/// Env mode's prefix routes (`claude-…` → anthropic) are dynamic routes
/// like `provider/model`: unpriced ones fail closed under a cost budget.
async fn env_mode_prefix_routes_fail_closed(db: TestDb) {
    let oai = start_mock(Flavor::OpenAi, "oai").await;
    let ant = start_mock(Flavor::Anthropic, "ant").await;
    let ant_url = ant.base_url();
    let env = |k: &str| match k {
        "ANTHROPIC_API_KEY" => Some("k".to_owned()),
        "ANTHROPIC_BASE_URL" => Some(ant_url.clone()),
        "SWITCHYARD_MASTER_KEY" => Some(MASTER.to_owned()),
        _ => None,
    };
    let mut cfg = switchyard_server::config::from_env(&env).unwrap();
    let gc = cfg.governance.as_mut().unwrap();
    gc.database_url = db.url.clone();
    gc.data_dir = db.dir.clone();
    gc.audit_file = Some(db.dir.join("audit.jsonl"));
    gc.refresh_interval = Duration::from_millis(100);
    let g = serve(cfg, db, oai, ant).await;
    let (_, kid, key) = g.key().await;
    g.budget(&kid, Some(5.0), None, None).await;
    g.sync().await;
    let (s, v) = g
        .post("/v1/messages", &key, chat_body("claude-opus-9", false))
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`claude-opus-9`"));
    // A dated version of a priced model is priced.
    let (s, v) = g
        .post(
            "/v1/messages",
            &key,
            chat_body("claude-sonnet-4-5-20250929", false),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(g.upstream_hits(), 1);
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
    unpriced_names_cannot_bypass_a_cost_budget,
    fine_tuned_names_are_priced_from_their_base,
    default_price_prices_unknown_models_and_flags_rows,
    unpriced_allow_admits_and_flags_rows,
    tokens_only_budget_works_for_unpriced_models,
    fallbacks_and_downgrades_to_unpriced_models_fail_closed,
    env_mode_prefix_routes_fail_closed,
);

/// Without governance, unpriced models work as before (cost 0) and their
/// records say `unpriced`, so reports can show them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_governance_unpriced_models_work_and_are_flagged() {
    let r = common::rig(
        &[("oai", Flavor::OpenAi)],
        r#"
server: { api_keys: ["${GW_KEY}"] }
providers:
  oai: { kind: openai, base_url: "{oai}", api_key: "${K}" }
models:
  gpt: { deployments: [ { provider: oai, model: gpt-4o-mini } ] }
"#,
    )
    .await;
    for m in ["oai/totally-unpriced-model", "gpt"] {
        let resp = r.openai(common::chat(m, "hi")).await;
        assert_eq!(resp.status(), 200, "{m}");
    }
    let mut recs = Vec::new();
    for _ in 0..200 {
        recs = r.state.usage.totals().recent();
        if recs.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(recs.len(), 2);
    for rec in &recs {
        let unknown = rec.alias == "oai/totally-unpriced-model";
        assert_eq!(rec.unpriced, unknown, "{rec:?}");
        assert_eq!(rec.cost == 0.0, unknown, "{rec:?}");
    }
}

/// `governance.unpriced` and `default_price` are validated.
#[test]
fn bad_pricing_policy_config_is_refused() {
    let env = |k: &str| (k == "K").then(|| "k".to_owned());
    for (yaml, path) in [
        (
            "governance: { unpriced: maybe }\nproviders: { o: { kind: openai, api_key: \"${K}\" } }\n",
            "governance.unpriced",
        ),
        (
            "providers: { o: { kind: openai, api_key: \"${K}\", default_price: { input: 1 } } }\n",
            "providers.o.default_price",
        ),
        (
            "providers: { o: { kind: openai, api_key: \"${K}\", default_price: { input: -1, output: 1 } } }\n",
            "providers.o.default_price",
        ),
    ] {
        let e = switchyard_server::config::from_yaml(yaml, "x.yaml", &env).unwrap_err();
        assert!(format!("{e:?}").contains(path), "{path}: {e:?}");
    }
}

/// `switchyard check` names aliases whose deployments have no known price.
#[test]
fn check_warns_about_unpriced_aliases() {
    let env = |k: &str| (k == "K").then(|| "k".to_owned());
    let yaml = r#"
providers:
  o: { kind: openai, api_key: "${K}" }
  d: { kind: openai, api_key: "${K}", default_price: { input: 1, output: 2 } }
models:
  priced: { deployments: [ { provider: o, model: gpt-4o-2024-08-06 } ] }
  configured: { deployments: [ { provider: o, model: my-own, price: { input: 1, output: 1 } } ] }
  defaulted: { deployments: [ { provider: d, model: my-own } ] }
  tuned: { deployments: [ { provider: o, model: "ft:gpt-4o-mini-2024-07-18:acme::x" } ] }
  unknown: { deployments: [ { provider: o, model: gpt-4o }, { provider: o, model: acme-mystery } ] }
"#;
    let cfg = switchyard_server::config::from_yaml(yaml, "x.yaml", &env).unwrap();
    let w = switchyard_server::config::unpriced_warnings(&cfg);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("models.unknown:") && w[0].contains("`o:acme-mystery`"),
        "{w:?}"
    );
    assert!(
        w[0].contains("price:") && w[0].contains("default_price"),
        "{w:?}"
    );
}

/// The `switchyard check` command prints those warnings (and the example
/// config, all priced, has none).
#[test]
fn check_command_prints_unpriced_warnings() {
    let dir = common::db::temp_dir("pricing-cli");
    let f = dir.join("c.yaml");
    std::fs::write(
        &f,
        "providers:\n  o: { kind: openai, api_key: \"${K}\" }\nmodels:\n  mine: { deployments: [ { provider: o, model: acme-mystery } ] }\n  gpt: { deployments: [ { provider: o, model: gpt-4o } ] }\n",
    )
    .unwrap();
    let run = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .env_clear()
            .envs([
                ("K", "k"),
                ("SWITCHYARD_API_KEY", "gw"),
                ("OPENAI_API_KEY", "o"),
                ("ANTHROPIC_API_KEY", "a"),
                ("GEMINI_API_KEY", "g"),
            ])
            .arg("check")
            .arg(path)
            .output()
            .unwrap()
    };
    let out = run(&f);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(warnings[0].contains("models.mine") && warnings[0].contains("`o:acme-mystery`"));
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../switchyard.example.yaml");
    let out = run(std::path::Path::new(example));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("warning:"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}
