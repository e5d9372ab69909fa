//! Issue 18 §4: a flood of refused keys cannot write audit rows at line
//! rate, and cannot crowd out admin events. Repeated security events are
//! aggregated per source and interval: the first of a (source, reason) is a
//! row of its own, the rest one summary row per interval that says how many
//! and between when. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use common::db::TestDb;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_mock::{Flavor, MockOptions, MockServer};
use switchyard_server::store::{AuditEvent, Store};
use tokio::sync::oneshot;

const MASTER: &str = "sk-master-audit";
/// The summary interval the tests configure.
const INTERVAL: Duration = Duration::from_millis(300);

struct Rig {
    base: String,
    store: Store,
    dir: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _mock: MockServer,
    _db: TestDb,
}

async fn rig(db: TestDb, max_sources: usize, interval: Duration) -> Rig {
    rig_with(db, max_sources, interval, "").await
}

/// [`rig`] with `extra` top-level YAML appended.
async fn rig_with(db: TestDb, max_sources: usize, interval: Duration, extra: &str) -> Rig {
    let mock = MockServer::start(MockOptions {
        flavor: Flavor::OpenAi,
        api_key: None,
        label: "a".into(),
    })
    .await
    .unwrap();
    let yaml = format!(
        r#"
server:
  workers: 2
governance:
  database_url: "{db_url}"
  data_dir: "{dir}"
  master_key: "${{MASTER}}"
  refresh_interval: 100ms
  audit_summary_interval: {interval}ms
  audit_max_sources: {max_sources}
providers:
  a: {{ kind: openai, base_url: "{mock}", api_key: "${{K}}" }}
models:
  m: {{ deployments: [ {{ provider: a, model: gpt-4o }} ] }}
{extra}
"#,
        db_url = db.url,
        dir = db.dir.display(),
        mock = mock.base_url(),
        interval = interval.as_millis(),
    );
    let env = |k: &str| match k {
        "MASTER" => Some(MASTER.to_owned()),
        "K" => Some("k".to_owned()),
        _ => None,
    };
    let cfg = switchyard_server::config::from_yaml(&yaml, "audit.yaml", &env)
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
    Rig {
        base,
        store,
        dir: db.dir.clone(),
        stop: Some(tx),
        task: Some(task),
        _mock: mock,
        _db: db,
    }
}

impl Rig {
    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    async fn audit(&self) -> Vec<AuditEvent> {
        self.store.list_audit(None, None, 100_000).await.unwrap()
    }

    fn audit_file(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("audit.jsonl")).unwrap_or_default()
    }
}

/// A client whose connections leave from `ip` (any 127.0.0.0/8 address is
/// the loopback interface on Linux).
fn client_from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .build()
        .unwrap()
}

/// Requests with a garbage key until `until`; returns how many got 401.
async fn flood(http: reqwest::Client, base: String, until: Instant) -> u64 {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let mut n = 0;
    while Instant::now() < until {
        let r = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth("sk-garbage-key-0123456789")
            .json(&body)
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status(), 401);
            n += 1;
        }
    }
    n
}

/// The events one audit row stands for: its `count` when aggregated, else 1.
fn weight(e: &AuditEvent) -> u64 {
    if e.details["aggregated"] == json!(true) {
        e.details["count"].as_u64().unwrap()
    } else {
        1
    }
}

/// Two seconds of garbage keys from four connections: a handful of rows
/// (one per interval at most, plus the first), whose counts add up to every
/// refused request; the one source is named; meanwhile 20 admin key
/// creations all answer and all are audited.
async fn bad_key_flood_is_aggregated_and_admin_events_survive(db: TestDb) {
    let mut r = rig(db, 256, INTERVAL).await;
    let admin = reqwest::Client::new();
    let t: Value = admin
        .post(format!("{}/admin/tenants", r.base))
        .bearer_auth(MASTER)
        .json(&json!({"name": "flooded"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = t["id"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let until = started + Duration::from_secs(2);
    let sent = Arc::new(AtomicU64::new(0));
    let mut floods = Vec::new();
    for _ in 0..4 {
        let (http, base, sent) = (reqwest::Client::new(), r.base.clone(), sent.clone());
        floods.push(tokio::spawn(async move {
            sent.fetch_add(flood(http, base, until).await, Ordering::Relaxed);
        }));
    }
    // Admin work during the flood.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut created = Vec::new();
    for i in 0..20 {
        let k: Value = admin
            .post(format!("{}/admin/keys", r.base))
            .bearer_auth(MASTER)
            .json(&json!({"tenant_id": tid, "name": format!("during-flood-{i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created.push(k["id"].as_str().unwrap_or_else(|| panic!("{k}")).to_owned());
    }
    for f in floods {
        f.await.unwrap();
    }
    let elapsed = started.elapsed();
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        sent >= 200,
        "the flood reached the gateway ({sent} requests)"
    );
    // Every summary is written within an interval of the last failure.
    tokio::time::sleep(INTERVAL * 3).await;

    let events = r.audit().await;
    let failures: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.action == "auth.failure")
        .collect();
    let intervals = (elapsed.as_millis() / INTERVAL.as_millis()) as usize + 4;
    eprintln!(
        "{sent} refused requests in {elapsed:?}: {} auth.failure rows",
        failures.len()
    );
    assert!(
        failures.len() <= 2 * intervals,
        "{} auth.failure rows for {sent} refused requests over {elapsed:?} (at most two per interval)",
        failures.len()
    );
    let total: u64 = failures.iter().map(|e| weight(e)).sum();
    assert_eq!(total, sent, "the rows account for every refused request");
    let summary = failures
        .iter()
        .find(|e| e.details["aggregated"] == json!(true))
        .expect("an aggregated row");
    assert_eq!(summary.ip.as_deref(), Some("127.0.0.1"), "{summary:?}");
    assert_eq!(summary.actor, "anonymous");
    assert_eq!(summary.outcome, "denied");
    assert_eq!(summary.details["reason"], "invalid_api_key");
    let (from, to) = (
        summary.details["from"].as_i64().unwrap(),
        summary.details["to"].as_i64().unwrap(),
    );
    assert!(from <= to && weight(summary) >= 2, "{summary:?}");

    // Every admin action of the flood is audited.
    for id in &created {
        assert!(
            events
                .iter()
                .any(|e| e.action == "key.create" && e.target.as_deref() == Some(id.as_str())),
            "key.create {id} is audited"
        );
    }

    // The file holds the same few rows: bounded bytes.
    let file = r.audit_file();
    let lines = file
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(
        lines <= 2 * intervals + created.len() + 5,
        "{lines} lines in the audit file"
    );
    assert!(
        file.len() < 64 * 1024,
        "{} bytes in the audit file",
        file.len()
    );
    r.shutdown().await;
}

/// Sources beyond `audit_max_sources` fold into one `(other)` bucket, and
/// nothing is lost at shutdown (the last summaries are flushed: the
/// interval here is longer than the test).
async fn distinct_sources_beyond_the_cap_fold_into_other(db: TestDb) {
    let mut r = rig(db, 2, Duration::from_secs(60)).await;
    let mut sent = 0;
    for last in 1..=6u8 {
        let ip = IpAddr::from([127, 0, 0, last]);
        let http = client_from(ip);
        let until = Instant::now() + Duration::from_millis(50);
        sent += flood(http, r.base.clone(), until).await;
    }
    assert!(sent >= 6);
    r.shutdown().await;
    let events = r.audit().await;
    let failures: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.action == "auth.failure")
        .collect();
    let total: u64 = failures.iter().map(|e| weight(e)).sum();
    assert_eq!(total, sent, "{failures:#?}");
    assert!(
        failures
            .iter()
            .any(|e| e.actor == "(other)" && e.ip.is_none() && weight(e) >= 1),
        "an (other) bucket: {failures:#?}"
    );
    // Only the cap's worth of sources is named; the rest is `(other)`.
    let named: std::collections::HashSet<&str> =
        failures.iter().filter_map(|e| e.ip.as_deref()).collect();
    assert_eq!(
        named,
        ["127.0.0.1", "127.0.0.2"].into_iter().collect(),
        "{failures:#?}"
    );
    assert!(failures.len() <= 2 * 2 + 1, "{failures:#?}");
}

/// Requests until `until` with `key` and `body`; returns how many were
/// answered `status`.
async fn repeat(r: &Rig, key: &str, body: &Value, status: u16, until: Instant) -> u64 {
    let http = reqwest::Client::new();
    let mut n = 0;
    while Instant::now() < until {
        let resp = common::post_openai(&http, &r.base, key, body).await;
        assert_eq!(resp.status(), status);
        n += 1;
    }
    n
}

/// The other security events a caller can repeat at will are aggregated
/// the same way: a revoked key's failures (per key) and PII refusals (per
/// key and alias).
async fn revoked_keys_and_pii_refusals_are_aggregated_too(db: TestDb) {
    let mut r = rig_with(
        db,
        256,
        INTERVAL,
        "guardrails: { pii: { block: [secret] } }",
    )
    .await;
    let admin = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Value| {
        let req = admin
            .request(method, format!("{}{path}", r.base))
            .bearer_auth(MASTER)
            .json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let t = call(
        reqwest::Method::POST,
        "/admin/tenants".into(),
        json!({"name": "pii"}),
    )
    .await;
    let tid = t["id"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for name in ["revoked", "leaky"] {
        let k = call(
            reqwest::Method::POST,
            "/admin/keys".into(),
            json!({"tenant_id": tid, "name": name}),
        )
        .await;
        keys.push((
            k["id"].as_str().unwrap().to_owned(),
            k["key"].as_str().unwrap().to_owned(),
        ));
    }
    let (revoked_id, revoked) = keys[0].clone();
    let (leaky_id, leaky) = keys[1].clone();
    call(
        reqwest::Method::POST,
        format!("/admin/keys/{revoked_id}/revoke"),
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let started = Instant::now();
    let until = started + Duration::from_millis(1200);
    let plain = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let secret = json!({"model": "m", "messages": [{"role": "user", "content": "my key is sk-ant-api03-abcdefghijklmnopqrstuvwxyz"}]});
    let (refused, blocked) = tokio::join!(
        repeat(&r, &revoked, &plain, 401, until),
        repeat(&r, &leaky, &secret, 400, until),
    );
    let elapsed = started.elapsed();
    assert!(refused >= 5 && blocked >= 5, "{refused} {blocked}");
    r.shutdown().await;

    let events = r.audit().await;
    let intervals = (elapsed.as_millis() / INTERVAL.as_millis()) as usize + 4;
    for (action, actor, sent, reason) in [
        ("auth.failure", &revoked_id, refused, "key_revoked"),
        ("pii.blocked", &leaky_id, blocked, "pii_detected"),
    ] {
        let rows: Vec<&AuditEvent> = events
            .iter()
            .filter(|e| e.action == action && &e.actor == actor)
            .collect();
        eprintln!("{action}: {sent} events, {} rows", rows.len());
        assert!(rows.len() <= 2 * intervals, "{action}: {rows:#?}");
        assert_eq!(
            rows.iter().map(|e| weight(e)).sum::<u64>(),
            sent,
            "{rows:#?}"
        );
        assert!(rows
            .iter()
            .all(|e| e.tenant_id.as_deref() == Some(tid.as_str())));
        let summary = rows
            .iter()
            .find(|e| e.details["aggregated"] == json!(true))
            .unwrap_or_else(|| panic!("{action}: an aggregated row in {rows:#?}"));
        assert_eq!(summary.details["reason"], reason);
    }
    // The PII rows never carry the value.
    assert!(!serde_json::to_string(&events)
        .unwrap()
        .contains("sk-ant-api03"));
}

/// A valid key repeating an admin call its role forbids (a developer key
/// reading the audit log) is a repeatable security event too: aggregated per
/// actor, action and target, every refusal accounted for, a bounded number
/// of rows.
async fn refused_admin_calls_are_aggregated(db: TestDb) {
    let mut r = rig(db, 256, INTERVAL).await;
    let admin = reqwest::Client::new();
    let t: Value = admin
        .post(format!("{}/admin/tenants", r.base))
        .bearer_auth(MASTER)
        .json(&json!({"name": "nosy"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tid = t["id"].as_str().unwrap().to_owned();
    let k: Value = admin
        .post(format!("{}/admin/keys", r.base))
        .bearer_auth(MASTER)
        .json(&json!({"tenant_id": tid, "name": "dev", "role": "developer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (kid, key) = (
        k["id"].as_str().unwrap().to_owned(),
        k["key"].as_str().unwrap().to_owned(),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_millis(1200) {
        let resp = admin
            .post(format!("{}/admin/tenants", r.base))
            .bearer_auth(&key)
            .json(&json!({"name": format!("mine-{sent}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        sent += 1;
    }
    let elapsed = started.elapsed();
    assert!(sent >= 20, "{sent}");
    r.shutdown().await;
    let events = r.audit().await;
    let rows: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.outcome == "denied" && e.actor.contains(&kid))
        .collect();
    let intervals = (elapsed.as_millis() / INTERVAL.as_millis()) as usize + 4;
    eprintln!("{sent} refused admin calls, {} rows", rows.len());
    assert!(rows.len() <= 2 * intervals, "{rows:#?}");
    assert_eq!(
        rows.iter().map(|e| weight(e)).sum::<u64>(),
        sent,
        "{rows:#?}"
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
    refused_admin_calls_are_aggregated,
    bad_key_flood_is_aggregated_and_admin_events_survive,
    distinct_sources_beyond_the_cap_fold_into_other,
    revoked_keys_and_pii_refusals_are_aggregated_too,
);
