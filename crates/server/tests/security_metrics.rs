//! Issue 18 §4: `/metrics` label values come from the config, never from
//! what a caller sends, and `/metrics` is not open to anyone who reaches
//! the gateway port: it asks for a key (the metrics key, else a gateway
//! key), or lives on its own listener (`server.metrics_listen`).
#![allow(clippy::unwrap_used)]

mod common;

use common::{chat, rig, rig_with_keys, KEY};
use futures::StreamExt;
use switchyard_mock::Flavor;

const OAI: Flavor = Flavor::OpenAi;

const YAML: &str = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability: { retries: 0 }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}" }
models:
  m: { deployments: [ { provider: a, model: gpt-4o } ] }
"#;

async fn scrape(http: &reqwest::Client, url: &str, key: Option<&str>) -> (u16, String) {
    let mut req = http.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// 3,000 requests to made-up `provider/model` names (and unknown names)
/// leave `/metrics` the size it was: they are all `alias="(direct)"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_model_names_do_not_grow_metrics() {
    let r = rig(&[("a", OAI)], YAML).await;
    let url = format!("{}/metrics", r.base);
    assert_eq!(r.openai(chat("m", "configured")).await.status(), 200);
    assert_eq!(r.openai(chat("a/gpt-4o", "direct")).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, before) = scrape(&r.http, &url, Some(KEY)).await;
    assert_eq!(s, 200, "{before}");
    assert!(before.contains(r#"switchyard_requests_total{alias="m",provider="a""#));

    let statuses = futures::stream::iter(0..3000)
        .map(|i| {
            let r = &r;
            async move {
                let model = match i % 3 {
                    0 => format!("a/made-up-{i}"),
                    1 => format!("a/missing-{i}"), // the mock answers 404
                    _ => format!("no-such-model-{i}"),
                };
                r.openai(chat(&model, "x")).await.status().as_u16()
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<u16>>()
        .await;
    assert!(statuses.iter().all(|s| *s < 500), "no 5xx");
    assert!(statuses.contains(&200));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, after) = scrape(&r.http, &url, Some(KEY)).await;
    assert_eq!(s, 200);
    eprintln!(
        "/metrics: {} bytes before, {} bytes after 3,000 made-up names",
        before.len(),
        after.len()
    );
    assert!(!after.contains("made-up"), "caller text in a label");
    assert!(!after.contains("missing-"), "caller text in a label");
    assert!(!after.contains("no-such-model"), "caller text in a label");
    // New status classes may add a few series; nothing per name.
    assert!(
        after.len() < before.len() + 8 * 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    // Direct routes are counted, under one label.
    assert!(
        before.contains(r#"switchyard_requests_total{alias="(direct)",provider="a""#),
        "{before}"
    );
}

/// Shipped default: on the gateway port, `/metrics` asks for a gateway key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_needs_a_gateway_key_by_default() {
    let r = rig(&[("a", OAI)], YAML).await;
    let url = format!("{}/metrics", r.base);
    let (s, body) = scrape(&r.http, &url, None).await;
    assert_eq!(s, 401, "{body}");
    assert!(!body.contains("switchyard_"), "{body}");
    assert_eq!(scrape(&r.http, &url, Some("sk-wrong")).await.0, 401);
    let (s, body) = scrape(&r.http, &url, Some(KEY)).await;
    assert_eq!(s, 200);
    assert!(body.ends_with("# EOF\n"), "{body}");
}

/// An open gateway (no keys at all) serves `/metrics` openly too: there is
/// no key to ask for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_gateway_serves_metrics_without_a_key() {
    let yaml = YAML.replace(
        r#"server: { api_keys: ["${GW_KEY}"] }"#,
        "server: { allow_unauthenticated: true }",
    );
    let r = rig(&[("a", OAI)], &yaml).await;
    let (s, body) = scrape(&r.http, &format!("{}/metrics", r.base), None).await;
    assert_eq!(s, 200, "{body}");
}

/// `server.metrics_key`: only that key opens `/metrics` (a gateway key,
/// which callers hold, does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_key_is_the_only_key_for_metrics() {
    let yaml = YAML.replace(
        r#"server: { api_keys: ["${GW_KEY}"] }"#,
        r#"server: { api_keys: ["${GW_KEY}"], metrics_key: "${MK}" }"#,
    );
    let r = rig_with_keys(&[("a", OAI)], &yaml, &[("MK", "sk-scrape-only")]).await;
    let url = format!("{}/metrics", r.base);
    assert_eq!(scrape(&r.http, &url, None).await.0, 401);
    assert_eq!(scrape(&r.http, &url, Some(KEY)).await.0, 401);
    let (s, body) = scrape(&r.http, &url, Some("sk-scrape-only")).await;
    assert_eq!(s, 200, "{body}");
    // The metrics key is not a gateway key.
    let resp = common::post_openai(&r.http, &r.base, "sk-scrape-only", &chat("m", "x")).await;
    assert_eq!(resp.status(), 401);
}

/// An inline metrics key is refused like any other secret.
#[test]
fn an_inline_metrics_key_is_refused() {
    let yaml = r#"
server: { metrics_key: "sk-inline", metrics_listen: "not an address" }
providers:
  a: { kind: openai, api_key: "${K}" }
models:
  m: { deployments: [ { provider: a, model: gpt-4o } ] }
"#;
    let env = |k: &str| (k == "K").then(|| "k".to_owned());
    let problems = switchyard_server::config::from_yaml(yaml, "m.yaml", &env).unwrap_err();
    let text = format!("{problems:?}");
    assert!(text.contains("server.metrics_key"), "{text}");
    assert!(text.contains("server.metrics_listen"), "{text}");
}

/// `server.metrics_listen`: `/metrics` moves to its own address (no key
/// there unless `metrics_key`), and the gateway port answers it 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_moves_metrics_to_its_own_port() {
    let mock = switchyard_mock::MockServer::start(switchyard_mock::MockOptions {
        flavor: OAI,
        api_key: None,
        label: "a".into(),
    })
    .await
    .unwrap();
    // A free port for the metrics listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        r#"
server: {{ api_keys: ["${{GW_KEY}}"], metrics_listen: "127.0.0.1:{port}" }}
governance: {{ enabled: false }}
providers:
  a: {{ kind: openai, base_url: "{}", api_key: "${{K}}" }}
models:
  m: {{ deployments: [ {{ provider: a, model: gpt-4o }} ] }}
"#,
        mock.base_url()
    );
    let env = |k: &str| match k {
        "GW_KEY" => Some(KEY.to_owned()),
        "K" => Some("k".to_owned()),
        _ => None,
    };
    let cfg = switchyard_server::config::from_yaml(&yaml, "m.yaml", &env)
        .unwrap_or_else(|p| panic!("{p:#?}"));
    let running = switchyard_server::build(cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        running
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    let http = reqwest::Client::new();
    assert_eq!(
        common::post_openai(&http, &base, KEY, &chat("m", "x"))
            .await
            .status(),
        200
    );
    let (s, _) = scrape(&http, &format!("{base}/metrics"), Some(KEY)).await;
    assert_eq!(s, 404, "not on the gateway port");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut body = String::new();
    for _ in 0..50 {
        let (s, b) = scrape(&http, &url, None).await;
        assert_eq!(s, 200, "{b}");
        body = b;
        if body.contains(r#"alias="m""#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        body.contains(r#"switchyard_requests_total{alias="m",provider="a""#),
        "{body}"
    );
    let _ = tx.send(());
    task.await.unwrap();
}
