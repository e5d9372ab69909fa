//! The response cache end to end: hits skip the provider, callers steer it
//! with `Cache-Control`, streams and failures are never cached, hits are
//! recorded at zero cost.
#![allow(clippy::unwrap_used)]

mod common;

use common::{chat, rig, Rig, KEY};
use serde_json::{json, Value};
use std::time::Duration;
use switchyard_mock::{Fault, Flavor};

const CONFIG: &str = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability: { retries: 0 }
cache: { ttl: 1s, max_size: 1MiB }
providers:
  o: { kind: openai, base_url: "{o}", api_key: "${K}" }
  a: { kind: anthropic, base_url: "{a}", api_key: "${K}" }
models:
  gpt: { deployments: [{ provider: o, model: gpt-4o }] }
  claude: { deployments: [{ provider: a, model: claude-sonnet-4-5 }] }
  fresh: { cache: false, deployments: [{ provider: o, model: gpt-4o }] }
  embed: { deployments: [{ provider: o, model: text-embedding-3-small }] }
"#;

async fn gateway() -> Rig {
    rig(&[("o", Flavor::OpenAi), ("a", Flavor::Anthropic)], CONFIG).await
}

async fn send(
    r: &Rig,
    body: &Value,
    cache_control: Option<&str>,
) -> (u16, String, Option<String>, Value) {
    let mut req = r
        .http
        .post(format!("{}/v1/chat/completions", r.base))
        .bearer_auth(KEY)
        .json(body);
    if let Some(c) = cache_control {
        req = req.header("cache-control", c);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-switchyard-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let age = resp
        .headers()
        .get("age")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cache, age, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn identical_requests_are_answered_from_the_cache() {
    let r = gateway().await;
    let body = chat("gpt", "hello cache");
    let (s1, c1, age1, v1) = send(&r, &body, None).await;
    assert_eq!((s1, c1.as_str(), age1), (200, "miss", None));
    let (s2, c2, age2, v2) = send(&r, &body, None).await;
    assert_eq!((s2, c2.as_str(), age2.as_deref()), (200, "hit", Some("0")));
    assert_eq!(v1, v2, "the same answer, byte for byte");
    assert_eq!(r.hits("o"), 1, "the provider was called once");
    // Any difference in the request is another entry.
    let (_, c3, _, _) = send(&r, &chat("gpt", "hello cache!"), None).await;
    assert_eq!(c3, "miss");
    // Translated answers are cached in the caller's format too.
    let (_, _, _, a1) = send(&r, &chat("claude", "hi"), None).await;
    let (_, c4, _, a2) = send(&r, &chat("claude", "hi"), None).await;
    assert_eq!((c4.as_str(), &a1), ("hit", &a2));
    assert_eq!(a2["object"], "chat.completion");
    assert_eq!(r.hits("a"), 1);
    // After the TTL the entry is gone.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, c5, _, _) = send(&r, &body, None).await;
    assert_eq!(c5, "miss");
    assert_eq!(r.hits("o"), 3);
}

#[tokio::test]
async fn cache_control_refreshes_or_bypasses() {
    let r = gateway().await;
    let body = chat("gpt", "steer");
    send(&r, &body, None).await;
    let (_, c, _, _) = send(&r, &body, Some("no-cache")).await;
    assert_eq!(c, "refresh");
    let (_, c, _, _) = send(&r, &body, Some("no-store")).await;
    assert_eq!(c, "bypass");
    assert_eq!(r.hits("o"), 3, "neither was answered from the cache");
    let (_, c, _, _) = send(&r, &body, None).await;
    assert_eq!(c, "hit");
    // An exempt alias never uses it.
    for _ in 0..2 {
        let (_, c, _, _) = send(&r, &chat("fresh", "steer"), None).await;
        assert_eq!(c, "bypass");
    }
    assert_eq!(r.hits("o"), 5);
}

#[tokio::test]
async fn streams_and_failures_are_not_cached() {
    let r = gateway().await;
    let mut body = chat("gpt", "stream me");
    body["stream"] = json!(true);
    for _ in 0..2 {
        let resp = common::post_openai(&r.http, &r.base, KEY, &body).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("x-switchyard-cache").is_none());
        resp.bytes().await.unwrap();
    }
    assert_eq!(r.hits("o"), 2);
    r.mocks["o"].push_fault(Fault::Status(500));
    let body = chat("gpt", "fail once");
    let (s, _, _, _) = send(&r, &body, None).await;
    assert_eq!(s, 502, "an upstream 500 is a 502");
    let (s, c, _, _) = send(&r, &body, None).await;
    assert_eq!((s, c.as_str()), (200, "miss"), "the failure was not kept");
}

#[tokio::test]
async fn hits_are_recorded_as_cache_hits_at_no_cost() {
    let r = gateway().await;
    let body = chat("gpt", "account for me");
    send(&r, &body, None).await;
    send(&r, &body, None).await;
    let mut records = Vec::new();
    for _ in 0..200 {
        records = r.state.usage.totals().recent();
        if records.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(records.len(), 2, "{records:?}");
    let (miss, hit) = (&records[0], &records[1]);
    assert!(!miss.cache_hit && miss.provider == "o" && miss.usage.unwrap().output_tokens > 0);
    assert!(hit.cache_hit, "{hit:?}");
    assert_eq!(hit.provider, "cache");
    assert_eq!(hit.status, 200);
    assert_eq!(hit.cost, 0.0);
    assert_eq!(hit.usage.unwrap().total_tokens(), 0, "nothing billed");
    assert!(hit.to_row().cache_hit);
    // And in the metrics.
    let text = r
        .http
        .get(format!("{}/metrics", r.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"switchyard_cache_lookups_total{result="hit"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"provider="cache""#), "{text}");
}

#[tokio::test]
async fn embeddings_are_cached() {
    let r = gateway().await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let resp = r
            .http
            .post(format!("{}/v1/embeddings", r.base))
            .bearer_auth(KEY)
            .json(&json!({"model": "embed", "input": "vectors please"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        seen.push((
            resp.headers()["x-switchyard-cache"]
                .to_str()
                .unwrap()
                .to_owned(),
            resp.json::<Value>().await.unwrap(),
        ));
    }
    assert_eq!(seen[0].0, "miss");
    assert_eq!(seen[1].0, "hit");
    assert_eq!(seen[0].1, seen[1].1);
    assert_eq!(r.hits("o"), 1);
}
