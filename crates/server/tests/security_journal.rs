//! Issue 18 §5: a usage row survives `kill -9`.
//!
//! The real binary serves 200 requests, 20 at a time, half of them slow
//! streams, against a mock provider, and is killed with SIGKILL part-way.
//! After a restart on the same data directory and database: every request
//! whose answer the client received has exactly one exact usage row, every
//! request that reached the upstream has a row (those cut off flagged
//! `estimated`, error class `interrupted`), and the tenant's budget counts
//! every row, the interrupted ones included. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::db::TestDb;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_mock::{Fault, Flavor, MockOptions, MockServer};
use switchyard_server::store::{Store, UsageFilter};

const MASTER: &str = "sk-master-journal";

struct Gateway {
    child: Child,
    base: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the binary and wait for its banner (printed once governance,
/// journal replay included, has started).
fn spawn(config: &std::path::Path, dir: &std::path::Path, n: u32) -> Gateway {
    let stderr = std::fs::File::create(dir.join(format!("gateway-{n}.stderr"))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OAI", "up-key")
        .env("MASTER", MASTER)
        .env("SWITCHYARD_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(base) = line.trim().strip_prefix("listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(base.to_owned());
                }
            }
        }
    });
    let base = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(b) => b,
        Err(_) => {
            let _ = child.kill();
            let err = std::fs::read_to_string(dir.join(format!("gateway-{n}.stderr")))
                .unwrap_or_default();
            panic!("the gateway did not start:\n{err}");
        }
    };
    Gateway { child, base }
}

async fn admin(
    http: &reqwest::Client,
    base: &str,
    m: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut rb = http
        .request(m.parse().unwrap(), format!("{base}{path}"))
        .bearer_auth(MASTER);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let s = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(s.is_success(), "{m} {path}: {s} {v}");
    v
}

#[derive(Debug)]
enum Outcome {
    /// The client has the whole answer.
    Answered { id: String },
    /// Headers (and the request id) came, the rest did not.
    Cut { id: String },
    /// Nothing came back.
    Failed,
}

async fn one(http: reqwest::Client, base: String, key: String, i: usize) -> Outcome {
    let stream = i.is_multiple_of(2);
    let body = json!({
        "model": "gpt",
        "stream": stream,
        "messages": [{"role": "user", "content": format!("request {i}: say something")}],
    });
    let resp = match http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return Outcome::Failed,
    };
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let status = resp.status().as_u16();
    match resp.bytes().await {
        Ok(b) if status == 200 => {
            let complete = if stream {
                String::from_utf8_lossy(&b)
                    .trim_end()
                    .ends_with("data: [DONE]")
            } else {
                serde_json::from_slice::<Value>(&b).is_ok()
            };
            if complete {
                Outcome::Answered { id }
            } else {
                Outcome::Cut { id }
            }
        }
        Ok(b) => panic!(
            "request {i}: status {status}: {}",
            String::from_utf8_lossy(&b)
        ),
        Err(_) => Outcome::Cut { id },
    }
}

async fn usage_survives_kill_9(db: &TestDb) {
    let mock = MockServer::start(MockOptions {
        flavor: Flavor::OpenAi,
        api_key: Some("up-key".into()),
        label: "oai".into(),
    })
    .await
    .unwrap();
    // Streams are slow (about a second each), so some are in flight when
    // the process dies; non-streamed answers are immediate.
    mock.set_sticky_fault(Some(Fault::ChunkDelay(Duration::from_millis(60))));
    let config = db.dir.join("journal.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
providers:
  oai: {{ kind: openai, base_url: "{}", api_key: "${{OAI}}" }}
models:
  gpt: {{ deployments: [{{ provider: oai, model: gpt-4o }}] }}
governance:
  database_url: "{}"
  data_dir: "{}"
  master_key: "${{MASTER}}"
  journal_fsync_interval: 200ms
  journal: {}
"#,
            mock.base_url(),
            db.url,
            db.dir.display(),
            // `false` shows what the test catches without the journal.
            std::env::var("SWITCHYARD_TEST_JOURNAL").unwrap_or_else(|_| "true".into()),
        ),
    )
    .unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let gw = spawn(&config, &db.dir, 1);
    let t = admin(
        &http,
        &gw.base,
        "POST",
        "/admin/tenants",
        Some(json!({"name": "journal-co", "plan": "professional"})),
    )
    .await;
    let tid = t["id"].as_str().unwrap().to_owned();
    let k = admin(
        &http,
        &gw.base,
        "POST",
        "/admin/keys",
        Some(json!({"tenant_id": tid, "name": "load"})),
    )
    .await;
    let key = k["key"].as_str().unwrap().to_owned();
    let buds = admin(&http, &gw.base, "GET", "/admin/budgets", None).await;
    let bid = buds["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["scope_id"] == tid.as_str())
        .expect("the plan's budget")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The key must be known to the gateway's in-memory view.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(&key)
            .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "warm up"}]}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "key never accepted: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 200 requests, 20 at a time; SIGKILL once 60 have been answered.
    let answered = Arc::new(AtomicUsize::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(20));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let permit = sem.clone().acquire_owned().await.unwrap();
        if answered.load(Ordering::SeqCst) >= 60 {
            drop(permit);
            break;
        }
        let (http, base, key, answered) =
            (http.clone(), gw.base.clone(), key.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let o = one(http, base, key, i).await;
            if matches!(o, Outcome::Answered { .. }) {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            drop(permit);
            o
        }));
    }
    let mut gw = gw;
    // `Child::kill` is SIGKILL on Unix.
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    drop(gw);
    let answered_ids: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Answered { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let cut_ids: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Cut { id } if !id.is_empty() => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let sent = outcomes.len() + 1; // + the warm-up
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed))
        .count();
    let reached = mock
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/chat/completions"))
        .count();
    assert!(answered_ids.len() >= 60, "{outcomes:?}");
    assert!(
        !cut_ids.is_empty(),
        "some streams must be in flight at the kill: {outcomes:?}"
    );

    eprintln!(
        "sent {sent}, answered {}, cut {}, failed {failed}, reached the upstream {reached}",
        answered_ids.len(),
        cut_ids.len()
    );
    // Restart: the journal is replayed before the gateway listens.
    let gw = spawn(&config, &db.dir, 2);
    let store = Store::connect(&db.url).await.unwrap();
    let rows = store
        .usage_rows(&UsageFilter::default(), 100_000)
        .await
        .unwrap();
    let by_id: HashMap<&str, &switchyard_server::store::UsageRow> =
        rows.iter().map(|r| (r.request_id.as_str(), r)).collect();
    assert_eq!(by_id.len(), rows.len(), "one row per request");
    for id in &answered_ids {
        let r = by_id
            .get(id)
            .unwrap_or_else(|| panic!("answered request {id} has no usage row"));
        assert!(
            !r.estimated && r.status == 200 && r.cost > 0.0,
            "answered request {id}: {r:?}"
        );
    }
    for id in &cut_ids {
        let r = by_id
            .get(id)
            .unwrap_or_else(|| panic!("in-flight request {id} has no usage row"));
        if r.estimated {
            assert_eq!(r.error_class.as_deref(), Some("interrupted"), "{r:?}");
            assert!(r.cost > 0.0 && r.input_tokens > 0, "{r:?}");
        }
    }
    eprintln!(
        "rows {}, estimated {}",
        rows.len(),
        rows.iter().filter(|r| r.estimated).count()
    );
    let interrupted: Vec<_> = rows
        .iter()
        .filter(|r| r.error_class.as_deref() == Some("interrupted"))
        .collect();
    assert!(
        !interrupted.is_empty(),
        "the requests cut off at the kill are billed as estimated rows"
    );
    assert!(interrupted.iter().all(|r| r.estimated && r.status == 499));
    // Every request that reached the upstream has a row (a request may be
    // journaled and killed just before its bytes left: at most all sent).
    assert!(
        rows.len() >= reached && rows.len() <= sent,
        "rows {} reached the upstream {reached} sent {sent} failed {failed}",
        rows.len()
    );
    let ids: HashSet<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids.len(), rows.len());

    // The budget counts every row, the interrupted ones included.
    let spent: f64 = rows
        .iter()
        .filter(|r| r.tenant_id.as_deref() == Some(tid.as_str()))
        .map(|r| r.cost)
        .sum();
    let st = admin(
        &http,
        &gw.base,
        "GET",
        &format!("/admin/budgets/{bid}/status"),
        None,
    )
    .await;
    let live = st["spent_cost"].as_f64().unwrap();
    assert!(
        (live - spent).abs() <= 1e-9 * spent.max(1.0),
        "budget {live} vs rows {spent}: {st}"
    );
    let billed_interrupted: f64 = interrupted.iter().map(|r| r.cost).sum();
    assert!(billed_interrupted > 0.0);

    // Exactly once: a second restart replays nothing twice.
    drop(gw);
    let gw = spawn(&config, &db.dir, 3);
    let again = store
        .usage_rows(&UsageFilter::default(), 100_000)
        .await
        .unwrap();
    assert_eq!(again.len(), rows.len());
    let st = admin(
        &http,
        &gw.base,
        "GET",
        &format!("/admin/budgets/{bid}/status"),
        None,
    )
    .await;
    let live2 = st["spent_cost"].as_f64().unwrap();
    assert!(
        (live2 - spent).abs() <= 1e-9 * spent.max(1.0),
        "{live2} vs {spent}"
    );
    // A request, then SIGTERM: the drained gateway leaves no journal behind.
    let r = http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "last"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut gw = gw;
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(gw.child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let left: Vec<_> = std::fs::read_dir(db.dir.join("journal"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "journal left after a clean stop: {left:?}");
    let after = store
        .usage_rows(&UsageFilter::default(), 100_000)
        .await
        .unwrap();
    assert_eq!(after.len(), rows.len() + 1);
    drop(gw);
    store.close().await;
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_survives_kill_9_sqlite() {
    let db = TestDb::sqlite();
    usage_survives_kill_9(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_survives_kill_9_postgres() {
    let Some(db) = TestDb::pg(None).await else {
        return;
    };
    usage_survives_kill_9(&db).await;
}

fn row(id: &str, tenant: &str, cost: f64) -> switchyard_server::store::UsageRow {
    switchyard_server::store::UsageRow {
        request_id: id.to_owned(),
        ts: switchyard_server::store::now_ms(),
        tenant_id: Some(tenant.to_owned()),
        user_id: None,
        key_id: None,
        alias: "gpt".into(),
        provider: "oai".into(),
        deployment: "oai/gpt-4o".into(),
        upstream_model: "gpt-4o".into(),
        ingress: "openai".into(),
        input_tokens: 100,
        output_tokens: 10,
        cached_input_tokens: 0,
        cost,
        estimated: false,
        latency_ms: 1.0,
        ttft_ms: None,
        status: 200,
        error_class: None,
        cache_hit: false,
        attempts: 1,
        stream: false,
        unpriced: false,
    }
}

/// The same hole one level down: rows a previous process spooled during a
/// database outage are stored before budgets are loaded, so they count.
async fn spooled_rows_count_toward_budgets_after_a_restart(db: &TestDb) {
    let yaml = "providers:\n  oai: { kind: openai, base_url: \"{oai}\", api_key: \"${K}\" }\nmodels:\n  gpt: { deployments: [{ provider: oai, model: gpt-4o }] }\n";
    let g = common::gov_rig(&[("oai", Flavor::OpenAi)], yaml, &db.url, &db.dir).await;
    let http = reqwest::Client::new();
    let master = |m: &str, path: String, body: Option<Value>| {
        let mut rb = http
            .request(m.parse().unwrap(), format!("{}{path}", g.base))
            .bearer_auth(common::MASTER);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send()
    };
    let t: Value = master(
        "POST",
        "/admin/tenants".into(),
        Some(json!({"name": "spool-co", "plan": "professional"})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let tid = t["id"].as_str().unwrap().to_owned();
    let buds: Value = master("GET", "/admin/budgets".into(), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bid = buds["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["scope_id"] == tid.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    g.shutdown().await;
    // What a process that died during an outage left behind.
    let lines: String = [row("sp-1", &tid, 1.25), row("sp-2", &tid, 0.5)]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(db.dir.join("usage-spool.jsonl"), lines).unwrap();
    let g = common::gov_rig(&[("oai", Flavor::OpenAi)], yaml, &db.url, &db.dir).await;
    let http = reqwest::Client::new();
    let st: Value = http
        .get(format!("{}/admin/budgets/{bid}/status", g.base))
        .bearer_auth(common::MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["source"], "live", "{st}");
    let spent = st["spent_cost"].as_f64().unwrap();
    assert!(
        (spent - 1.75).abs() < 1e-9,
        "spooled rows not charged: {st}"
    );
    assert!(!db.dir.join("usage-spool.jsonl").exists());
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_rows_count_toward_budgets_after_a_restart_sqlite() {
    spooled_rows_count_toward_budgets_after_a_restart(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_rows_count_toward_budgets_after_a_restart_postgres() {
    let Some(db) = TestDb::pg(None).await else {
        return;
    };
    spooled_rows_count_toward_budgets_after_a_restart(&db).await;
}

/// The batch writer counts the channel's rows it made durable (the journal
/// removes segments by that count): inserted, or spooled while the
/// database is down.
async fn writer_acks_durable_rows(db: &TestDb) {
    use switchyard_server::store::{journal::Durable, run_usage_writer_acked, WriterConfig};
    let store = Store::connect(&db.url).await.unwrap();
    let durable = Arc::new(Durable::default());
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let cfg = WriterConfig {
        batch_size: 10,
        flush_interval: Duration::from_millis(20),
        spool_path: db.dir.join("ack-spool.jsonl"),
        replay_interval: Duration::from_millis(50),
    };
    let w = tokio::spawn(run_usage_writer_acked(
        store.clone(),
        rx,
        cfg,
        durable.clone(),
    ));
    for i in 0..25 {
        tx.send(row(&format!("ack-{i}"), "t", 0.1)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while durable.rows.load(Ordering::SeqCst) < 25 {
        assert!(Instant::now() < deadline, "{durable:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(tx);
    let stats = w.await.unwrap();
    assert_eq!(stats.written, 25);
    assert_eq!(durable.rows.load(Ordering::SeqCst), 25);
    assert!(!durable.lost.load(Ordering::SeqCst));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_acks_durable_rows_sqlite() {
    writer_acks_durable_rows(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_acks_durable_rows_postgres() {
    let Some(db) = TestDb::pg(None).await else {
        return;
    };
    writer_acks_durable_rows(&db).await;
}
