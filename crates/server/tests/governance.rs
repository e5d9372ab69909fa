//! Governance through the HTTP API with real virtual keys, on SQLite and on
//! PostgreSQL: auth failures, roles, model allow-lists, rate limits, exact
//! budgets under concurrency, downgrade, usage rows with cost, graceful
//! shutdown without loss, and spool-and-replay while the database is down.
#![allow(clippy::unwrap_used)]

mod common;

use common::db::{Proxy, TestDb};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use switchyard_mock::{Flavor, MockOptions, MockServer};
use switchyard_server::governance::keys;
use switchyard_server::store::{
    self, ApiKey, Budget, BudgetAction, RateLimit, Role, Scope, Store, Tenant, TenantStatus,
    UsageFilter, User,
};
use tokio::sync::oneshot;

const MASTER: &str = "sk-master-test";

struct GovRig {
    base: String,
    mock: MockServer,
    store: Store,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _db: TestDb,
}

async fn gov_rig(db: TestDb) -> GovRig {
    gov_rig_with(db, "").await
}

/// [`gov_rig`] with `extra` top-level YAML appended (e.g. `cache: {}`).
async fn gov_rig_with(db: TestDb, extra: &str) -> GovRig {
    let mock = MockServer::start(MockOptions {
        flavor: Flavor::OpenAi,
        api_key: None,
        label: "a".into(),
    })
    .await
    .unwrap();
    // Three I/O workers whatever the machine: connections, requests and
    // usage rows cross threads in every test here.
    let yaml = format!(
        r#"
server:
  workers: 3
governance:
  database_url: "{db_url}"
  data_dir: "{dir}"
  master_key: "${{MASTER}}"
  refresh_interval: 100ms
providers:
  a: {{ kind: openai, base_url: "{mock}", api_key: "${{K}}" }}
models:
  m: {{ deployments: [ {{ provider: a, model: gpt-4o, price: {{ input: 1000, output: 1000 }} }} ] }}
  cheap: {{ deployments: [ {{ provider: a, model: gpt-4o-mini, price: {{ input: 1, output: 1 }} }} ] }}
  other: {{ deployments: [ {{ provider: a, model: gpt-4.1 }} ] }}
{extra}
"#,
        db_url = db.url,
        dir = db.dir.display(),
        mock = mock.base_url()
    );
    let env = |k: &str| match k {
        "MASTER" => Some(MASTER.to_owned()),
        "K" => Some("k".to_owned()),
        _ => None,
    };
    let cfg = switchyard_server::config::from_yaml(&yaml, "gov.yaml", &env)
        .unwrap_or_else(|p| panic!("{p:#?}"));
    let running = switchyard_server::build(cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        running
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    let store = Store::connect(&db.url).await.unwrap();
    GovRig {
        base,
        mock,
        store,
        http: reqwest::Client::new(),
        stop: Some(tx),
        task: Some(task),
        _db: db,
    }
}

impl GovRig {
    async fn tenant(&self, status: TenantStatus, allowed: &[&str]) -> String {
        let now = store::now_ms();
        let t = Tenant {
            id: store::new_id("ten_"),
            name: store::new_id("acme-"),
            status,
            plan: None,
            allowed_models: allowed.iter().map(|s| s.to_string()).collect(),
            metadata: json!({}),
            created_at: now,
            updated_at: now,
        };
        self.store.create_tenant(&t).await.unwrap();
        t.id
    }

    async fn user(&self, tenant: &str, role: Role, disabled: bool) -> String {
        let now = store::now_ms();
        let u = User {
            id: store::new_id("usr_"),
            tenant_id: tenant.into(),
            email: format!("{}@x.test", store::new_id("")),
            name: None,
            role,
            disabled,
            created_at: now,
            updated_at: now,
        };
        self.store.create_user(&u).await.unwrap();
        u.id
    }

    async fn key(
        &self,
        tenant: &str,
        user: Option<&str>,
        role: Role,
        edit: impl FnOnce(&mut ApiKey),
    ) -> (String, String) {
        let plain = keys::generate();
        let now = store::now_ms();
        let mut k = ApiKey {
            id: store::new_id("key_"),
            hash: keys::hash_hex(&plain),
            prefix: keys::display_prefix(&plain),
            name: None,
            tenant_id: tenant.into(),
            user_id: user.map(str::to_owned),
            role,
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
        edit(&mut k);
        self.store.create_key(&k).await.unwrap();
        (k.id, plain)
    }

    /// Let the gateway's refresh loop pick up what the test wrote.
    async fn sync(&self) {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    async fn chat(&self, key: &str, model: &str) -> reqwest::Response {
        let body = json!({"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hello there"}]});
        common::post_openai(&self.http, &self.base, key, &body).await
    }

    async fn messages(&self, key: &str, model: &str) -> reqwest::Response {
        let body = json!({"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]});
        common::post_anthropic(&self.http, &self.base, key, &body).await
    }

    /// Stop the server gracefully and wait for every writer to drain.
    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    async fn usage(&self, f: UsageFilter) -> Vec<store::UsageRow> {
        self.store.usage_rows(&f, 100_000).await.unwrap()
    }
}

async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn auth_failures_have_the_right_status_and_body(db: TestDb) {
    let g = gov_rig(db).await;
    let t = g.tenant(TenantStatus::Active, &[]).await;
    let u = g.user(&t, Role::Developer, false).await;
    let (_, good) = g.key(&t, Some(&u), Role::Developer, |_| {}).await;
    let (rev_id, revoked) = g.key(&t, Some(&u), Role::Developer, |_| {}).await;
    let (_, expired) = g
        .key(&t, None, Role::Developer, |k| {
            k.expires_at = Some(store::now_ms() - 1)
        })
        .await;
    let (_, disabled) = g
        .key(&t, None, Role::Developer, |k| k.enabled = false)
        .await;
    let (_, limited) = g
        .key(&t, None, Role::Developer, |k| {
            k.allowed_models = vec!["cheap".into()]
        })
        .await;
    let (_, viewer) = g.key(&t, None, Role::Viewer, |_| {}).await;
    let bad_user = g.user(&t, Role::Developer, true).await;
    let (_, of_disabled_user) = g.key(&t, Some(&bad_user), Role::Developer, |_| {}).await;
    let suspended = g.tenant(TenantStatus::Suspended, &[]).await;
    let (_, of_suspended) = g.key(&suspended, None, Role::Developer, |_| {}).await;
    g.sync().await;

    assert_eq!(g.chat(&good, "m").await.status(), 200);
    assert_eq!(
        g.chat(MASTER, "m").await.status(),
        200,
        "the master key can call models"
    );
    // Missing key.
    let r = g
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    let (s, v) = status_and_body(r).await;
    assert_eq!(
        (s, v["error"]["type"].as_str(), v["error"]["code"].as_str()),
        (401, Some("invalid_request_error"), Some("invalid_api_key"))
    );
    for (key, status, code) in [
        ("sk-sy-doesnotexist", 401, "invalid_api_key"),
        (expired.as_str(), 401, "key_expired"),
        (disabled.as_str(), 401, "key_disabled"),
        (of_disabled_user.as_str(), 403, "user_disabled"),
        (of_suspended.as_str(), 403, "tenant_inactive"),
        (viewer.as_str(), 403, "permission_denied"),
    ] {
        let (s, v) = status_and_body(g.chat(key, "m").await).await;
        assert_eq!(s, status, "{code}: {v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        // Same failure on the Anthropic API, in Anthropic's shape.
        let (s, v) = status_and_body(g.messages(key, "m").await).await;
        assert_eq!(s, status, "{code}: {v}");
        assert_eq!(v["type"], "error", "{v}");
    }
    let (s, v) = status_and_body(g.chat(&limited, "m").await).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("model_not_allowed")),
        "{v}"
    );
    assert_eq!(g.chat(&limited, "cheap").await.status(), 200);

    // Revocation takes effect within the refresh interval.
    assert_eq!(g.chat(&revoked, "m").await.status(), 200);
    let mut k = g.store.get_key(&rev_id).await.unwrap().unwrap();
    k.revoked_at = Some(store::now_ms());
    k.updated_at = store::now_ms();
    g.store.update_key(&k).await.unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let s = g.chat(&revoked, "m").await.status();
        if s == 401 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "revocation took more than 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Security events are audited.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let audit = g.store.list_audit(None, None, 1000).await.unwrap();
    assert!(
        audit.iter().filter(|e| e.action == "auth.failure").count() >= 6,
        "{audit:?}"
    );
}

async fn rate_limits_hold_and_say_so(db: TestDb) {
    let g = gov_rig(db).await;
    let t = g.tenant(TenantStatus::Active, &[]).await;
    let (kid, key) = g.key(&t, None, Role::Developer, |_| {}).await;
    let now = store::now_ms();
    g.store
        .upsert_rate_limit(&RateLimit {
            id: store::new_id("rl_"),
            scope: Scope::Key,
            scope_id: kid.clone(),
            model: None,
            rpm: Some(5),
            tpm: None,
            created_at: now,
            updated_at: now,
            owner: Default::default(),
        })
        .await
        .unwrap();
    let (other_id, other) = g.key(&t, None, Role::Developer, |_| {}).await;
    g.store
        .upsert_rate_limit(&RateLimit {
            id: store::new_id("rl_"),
            scope: Scope::Key,
            scope_id: other_id,
            model: Some("m".into()),
            rpm: None,
            tpm: Some(100),
            created_at: now,
            updated_at: now,
            owner: Default::default(),
        })
        .await
        .unwrap();
    g.sync().await;
    for i in 0..5 {
        let r = g.chat(&key, "m").await;
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["x-ratelimit-limit-requests"], "5");
        assert_eq!(
            r.headers()["x-ratelimit-remaining-requests"],
            (4 - i).to_string().as_str()
        );
    }
    let r = g.chat(&key, "m").await;
    assert_eq!(r.status(), 429);
    let ra: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=13).contains(&ra), "{ra}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    // TPM: each request reserves prompt estimate + max_tokens (20); 100/min allows a few.
    let mut ok = 0;
    for _ in 0..10 {
        if g.chat(&other, "m").await.status() == 200 {
            ok += 1;
        }
    }
    assert!(
        (1..10).contains(&ok),
        "{ok} requests passed a 100 TPM limit"
    );
    // The model filter: the TPM limit is on `m` only.
    assert_eq!(g.chat(&other, "cheap").await.status(), 200);
}

async fn concurrent_requests_never_overspend_a_budget(db: TestDb) {
    let g = Arc::new(gov_rig(db).await);
    let t = g.tenant(TenantStatus::Active, &[]).await;
    let (_, key) = g.key(&t, None, Role::Developer, |_| {}).await;
    let now = store::now_ms();
    // $0.001 per token; a request costs ≈ 8 input + 8 output tokens ≈ $0.016; worst case ≈ $0.05.
    let budget = 0.25;
    g.store
        .upsert_budget(&Budget {
            id: store::new_id("bud_"),
            scope: Scope::Tenant,
            scope_id: t.clone(),
            period: "monthly".into(),
            max_cost: Some(budget),
            max_tokens: None,
            alert_thresholds: vec![0.5, 0.8, 0.95],
            action: BudgetAction::Block,
            downgrade_alias: None,
            created_at: now,
            updated_at: now,
            owner: Default::default(),
        })
        .await
        .unwrap();
    g.sync().await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let g = g.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let r = g.chat(&key, "m").await;
            let s = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (s, v)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s {
            200 => ok += 1,
            429 => {
                assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
    // Settlements free what the worst case over-reserved: sequential
    // requests keep being admitted until the real spend nears the budget.
    for _ in 0..64 {
        let r = g.chat(&key, "m").await;
        match r.status().as_u16() {
            200 => ok += 1,
            429 => break,
            s => panic!("unexpected {s}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rows = g
        .usage(UsageFilter {
            tenant_id: Some(t.clone()),
            ..Default::default()
        })
        .await;
    let spent: f64 = rows.iter().map(|r| r.cost).sum();
    assert!(
        spent <= budget + 1e-9,
        "recorded cost {spent} exceeds the budget {budget}"
    );
    // Within one worst-case reservation (≈ $0.06 here) of the limit.
    assert!(spent > budget - 0.07, "the budget was under-used: {spent}");
    assert_eq!(rows.iter().filter(|r| r.status == 200).count(), ok);
    // Alerts fired once each.
    let audit = g.store.list_audit(None, None, 1000).await.unwrap();
    let alerts: Vec<f64> = audit
        .iter()
        .filter(|e| e.action == "budget.alert")
        .filter_map(|e| e.details["threshold"].as_f64())
        .collect();
    assert!(alerts.contains(&0.5), "{alerts:?}");
    let mut dedup = alerts.clone();
    dedup.sort_by(f64::total_cmp);
    dedup.dedup();
    assert_eq!(
        dedup.len(),
        alerts.len(),
        "an alert fired twice: {alerts:?}"
    );
}

async fn exhausted_budget_downgrades(db: TestDb) {
    let g = gov_rig(db).await;
    let t = g.tenant(TenantStatus::Active, &[]).await;
    let (kid, key) = g.key(&t, None, Role::Developer, |_| {}).await;
    let now = store::now_ms();
    g.store
        .upsert_budget(&Budget {
            id: store::new_id("bud_"),
            scope: Scope::Key,
            scope_id: kid,
            period: "daily".into(),
            max_cost: Some(0.000_001),
            max_tokens: None,
            alert_thresholds: vec![],
            action: BudgetAction::Downgrade,
            downgrade_alias: Some("cheap".into()),
            created_at: now,
            updated_at: now,
            owner: Default::default(),
        })
        .await
        .unwrap();
    g.sync().await;
    let r = g.chat(&key, "m").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-switchyard-upstream-model"],
        "gpt-4o-mini",
        "served by the downgrade alias"
    );
}

async fn usage_rows_carry_who_what_and_cost(db: TestDb) {
    let g = gov_rig(db).await;
    let t = g.tenant(TenantStatus::Active, &[]).await;
    let u = g.user(&t, Role::Developer, false).await;
    let (kid, key) = g.key(&t, Some(&u), Role::Developer, |_| {}).await;
    g.sync().await;
    let r = g.chat(&key, "m").await;
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    let stream = g
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .bearer_auth(&key)
        .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap();
    let _ = stream.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rows = g
        .usage(UsageFilter {
            key_id: Some(kid.clone()),
            ..Default::default()
        })
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = rows.iter().find(|r| r.request_id == rid).unwrap();
    assert_eq!(row.tenant_id.as_deref(), Some(t.as_str()));
    assert_eq!(row.user_id.as_deref(), Some(u.as_str()));
    assert_eq!(
        row.input_tokens as u64,
        v["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        row.output_tokens as u64,
        v["usage"]["completion_tokens"].as_u64().unwrap()
    );
    let expected = (row.input_tokens + row.output_tokens) as f64 * 1000.0 / 1e6;
    assert!(
        (row.cost - expected).abs() < 1e-9,
        "{} vs {expected}",
        row.cost
    );
    assert!(!row.estimated);
    let streamed = rows.iter().find(|r| r.stream).unwrap();
    assert!(
        streamed.cost > 0.0 && streamed.output_tokens > 0,
        "streamed spend is never $0: {streamed:?}"
    );
}

async fn cached_answers_stay_within_a_tenant_and_cost_nothing(db: TestDb) {
    let g = gov_rig_with(db, "cache: { ttl: 10m }").await;
    let t1 = g.tenant(TenantStatus::Active, &[]).await;
    let t2 = g.tenant(TenantStatus::Active, &[]).await;
    let (_, k1a) = g.key(&t1, None, Role::Developer, |_| {}).await;
    let (k1b_id, k1b) = g.key(&t1, None, Role::Developer, |_| {}).await;
    let (_, k2) = g.key(&t2, None, Role::Developer, |_| {}).await;
    g.sync().await;
    let mut seen = Vec::new();
    for key in [&k1a, &k1b, &k2] {
        let r = g.chat(key, "m").await;
        assert_eq!(r.status(), 200);
        seen.push(
            r.headers()["x-switchyard-cache"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The second key of tenant 1 shares its answer; tenant 2 does not.
    assert_eq!(seen, ["miss", "hit", "miss"]);
    let upstream = g
        .mock
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(upstream, 2);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rows = g
        .usage(UsageFilter {
            key_id: Some(k1b_id),
            ..Default::default()
        })
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let hit = &rows[0];
    assert!(hit.cache_hit, "{hit:?}");
    assert_eq!(hit.provider, "cache");
    assert_eq!(hit.tenant_id.as_deref(), Some(t1.as_str()));
    assert_eq!((hit.cost, hit.input_tokens, hit.output_tokens), (0.0, 0, 0));
    assert_eq!(hit.status, 200);
}

async fn pii_refusals_are_audited_without_the_values(db: TestDb) {
    let g = gov_rig_with(db, "guardrails: { pii: { block: [secret] } }").await;
    let t = g.tenant(TenantStatus::Active, &[]).await;
    let (kid, key) = g.key(&t, None, Role::Developer, |_| {}).await;
    g.sync().await;
    let secret = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz";
    let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("my key is {secret}")}]});
    let r = common::post_openai(&g.http, &g.base, &key, &body).await;
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (status, v) = status_and_body(r).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("pii_detected")),
        "{v}"
    );
    let mut found = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let events = g.store.list_audit(Some(&t), None, 50).await.unwrap();
        found = events.into_iter().find(|e| e.action == "pii.blocked");
        if found.is_some() {
            break;
        }
    }
    let e = found.expect("a pii.blocked audit event");
    assert_eq!(e.actor, kid);
    assert_eq!(e.outcome, "denied");
    assert_eq!(e.target.as_deref(), Some("m"));
    assert_eq!(e.details["request_id"], rid.as_str());
    assert_eq!(e.details["entities"], json!({"secret": 1}));
    assert!(!serde_json::to_string(&e.details).unwrap().contains(secret));
    assert_eq!(g.mock.requests().len(), 0, "nothing was forwarded");
    // The refusal is a usage row too (its reservation released, nothing billed).
    let mut row = None;
    for _ in 0..50 {
        let rows = g
            .usage(UsageFilter {
                key_id: Some(kid.clone()),
                ..Default::default()
            })
            .await;
        row = rows.into_iter().find(|r| r.request_id == rid);
        if row.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = row.expect("a usage row for the refused request");
    assert_eq!(row.status, 400);
    assert_eq!((row.cost, row.input_tokens, row.output_tokens), (0.0, 0, 0));
    assert_eq!(row.error_class.as_deref(), Some("invalid_request"));
}

async fn graceful_shutdown_loses_no_usage_record(db: TestDb) {
    let mut g = gov_rig(db).await;
    let t = g.tenant(TenantStatus::Active, &[]).await;
    let (kid, key) = g.key(&t, None, Role::Developer, |_| {}).await;
    g.sync().await;
    // Slow upstream: requests are in flight when the shutdown starts.
    g.mock
        .set_sticky_fault(Some(switchyard_mock::Fault::SlowFirstByte(
            Duration::from_millis(300),
        )));
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let http = g.http.clone();
        let url = format!("{}/v1/chat/completions", g.base);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    g.shutdown().await;
    let mut ok = 0;
    for t in tasks {
        if let Ok(Ok(200)) = t.await {
            ok += 1;
        }
    }
    assert!(
        ok >= 30,
        "in-flight requests finish during a graceful shutdown ({ok}/40)"
    );
    let rows = g
        .usage(UsageFilter {
            key_id: Some(kid),
            ..Default::default()
        })
        .await;
    assert_eq!(
        rows.iter().filter(|r| r.status == 200).count(),
        ok,
        "every served request has its usage row"
    );
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
    auth_failures_have_the_right_status_and_body,
    rate_limits_hold_and_say_so,
    concurrent_requests_never_overspend_a_budget,
    exhausted_budget_downgrades,
    usage_rows_carry_who_what_and_cost,
    cached_answers_stay_within_a_tenant_and_cost_nothing,
    pii_refusals_are_audited_without_the_values,
    graceful_shutdown_loses_no_usage_record,
);

/// The database goes away under a running gateway: requests keep being
/// served (the hot path never waits on it), usage spools to disk, and once
/// the database is back every row lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_spools_then_replays_every_row() {
    let proxy = Proxy::start(common::db::pg_target()).await;
    let Some(db) = TestDb::pg(Some(proxy.addr)).await else {
        return;
    };
    let mut g = gov_rig(db).await;
    let t = g.tenant(TenantStatus::Active, &[]).await;
    let (kid, key) = g.key(&t, None, Role::Developer, |_| {}).await;
    g.sync().await;
    proxy.set_up(false);
    let mut ok = 0;
    for _ in 0..25 {
        if g.chat(&key, "m").await.status() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 25, "requests are served while the database is down");
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.set_up(true);
    // Replay runs every 5 s.
    let mut rows = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rows = g
            .usage(UsageFilter {
                key_id: Some(kid.clone()),
                ..Default::default()
            })
            .await;
        if rows.len() >= 25 {
            break;
        }
    }
    assert_eq!(rows.len(), 25, "every row replayed exactly once");
    for _ in 0..5 {
        assert_eq!(g.chat(&key, "m").await.status(), 200);
    }
    g.shutdown().await;
    let rows = g
        .usage(UsageFilter {
            key_id: Some(kid),
            ..Default::default()
        })
        .await;
    assert_eq!(rows.len(), 30);
}
