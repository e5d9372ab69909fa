//! Fault injection against the mock providers over real sockets: failover,
//! retries, retry-after, breakers, budgets, fallbacks, key rotation,
//! concurrency limits, health checks.
#![allow(clippy::unwrap_used)]

mod common;

use common::{chat, frames, rig, rig_with_keys};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use switchyard_mock::{expected_text, Fault, Flavor};

const OAI: Flavor = Flavor::OpenAi;

fn two_openai(extra_alias: &str, reliability: &str) -> String {
    format!(
        r#"
server: {{ api_keys: ["${{GW_KEY}}"] }}
reliability: {reliability}
providers:
  a: {{ kind: openai, base_url: "{{a}}", api_key: "${{K}}" }}
  b: {{ kind: openai, base_url: "{{b}}", api_key: "${{K}}" }}
models:
  m:
    {extra_alias}
    deployments:
      - {{ provider: a, model: gpt-4o }}
      - {{ provider: b, model: gpt-4o }}
"#
    )
}

#[tokio::test]
async fn one_failing_deployment_of_two_costs_no_request() {
    let r = rig(&[("a", OAI), ("b", OAI)], &two_openai("", "{}")).await;
    r.mock("a").set_sticky_fault(Some(Fault::Status(500)));
    let mut ok = 0;
    for i in 0..60 {
        let stream = i % 2 == 0;
        let mut body = chat("m", "hello");
        body["stream"] = json!(stream);
        let resp = r.openai(body).await;
        if resp.status() == 200 {
            if stream {
                let (text, _, _, _) = common::assemble_openai(&frames(resp).await);
                assert_eq!(text, expected_text("b", "hello"));
            }
            ok += 1;
        }
    }
    assert_eq!(ok, 60, "every request succeeds");
    // The breaker opened: `a` stopped getting traffic after a handful of failures.
    assert!(r.hits("a") <= 6, "a was hit {} times", r.hits("a"));
    assert!(r.hits("b") >= 60);
}

#[tokio::test]
async fn retry_waits_as_retry_after_says() {
    let r = rig(
        &[("a", OAI)],
        &two_openai("", "{}")
            .replace("      - { provider: b, model: gpt-4o }\n", "")
            .replace(
                "  b: { kind: openai, base_url: \"{b}\", api_key: \"${K}\" }\n",
                "",
            ),
    )
    .await;
    r.mock("a").push_fault(Fault::RateLimited {
        retry_after_secs: 1,
    });
    let t = Instant::now();
    let resp = r.openai(chat("m", "patience")).await;
    let waited = t.elapsed();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-attempts"], "2");
    assert!(
        waited >= Duration::from_millis(1000),
        "retried after {waited:?}, before retry-after"
    );
    assert!(waited < Duration::from_millis(2500), "{waited:?}");
    // A retry-after longer than `max_retry_after` is not waited out: the client gets the 429.
    r.mock("a").push_fault(Fault::RateLimited {
        retry_after_secs: 60,
    });
    let t = Instant::now();
    let resp = r.openai(chat("m", "x")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "60");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn failure_before_first_byte_fails_over_even_for_streams() {
    let r = rig(
        &[("a", OAI), ("b", OAI)],
        &two_openai("strategy: priority", "{}"),
    )
    .await;
    for fault in [
        Fault::DropMidStream { after_chunks: 0 },
        Fault::Status(503),
        Fault::Overloaded,
    ] {
        r.mock("a").push_fault(fault.clone());
        let resp = r.openai(json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "go"}]})).await;
        assert_eq!(resp.status(), 200, "{fault:?}");
        assert_eq!(resp.headers()["x-switchyard-provider"], "b", "{fault:?}");
        assert_eq!(resp.headers()["x-switchyard-attempts"], "2", "{fault:?}");
        let (text, _, _, _) = common::assemble_openai(&frames(resp).await);
        assert_eq!(text, expected_text("b", "go"), "{fault:?}");
    }
}

#[tokio::test]
async fn hang_gives_504_within_the_bound() {
    let yaml = two_openai("strategy: priority", "{ retries: 0 }").replace(
        "api_key: \"${K}\" }",
        "api_key: \"${K}\", timeouts: { first_byte: 300ms } }",
    );
    let r = rig(&[("a", OAI), ("b", OAI)], &yaml).await;
    r.mock("a").set_sticky_fault(Some(Fault::Hang));
    r.mock("b").set_sticky_fault(Some(Fault::Hang));
    let t = Instant::now();
    let resp = r.openai(chat("m", "x")).await;
    assert_eq!(resp.status(), 504);
    // Two deployments, one attempt each, 300 ms each.
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn breaker_opens_then_recovers_through_half_open() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability:
  retries: 0
  breaker: { consecutive_failures: 3, cooldown: 300ms }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}" }
  b: { kind: openai, base_url: "{b}", api_key: "${K}" }
models:
  m:
    strategy: priority
    deployments: [ { provider: a, model: gpt-4o }, { provider: b, model: gpt-4o } ]
"#;
    let r = rig(&[("a", OAI), ("b", OAI)], yaml).await;
    r.mock("a").set_sticky_fault(Some(Fault::Status(500)));
    for _ in 0..3 {
        let resp = r.openai(chat("m", "x")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-switchyard-attempts"], "2");
    }
    assert_eq!(r.hits("a"), 3);
    // Open: skipped at zero cost, upstream untouched, /ready names it.
    for _ in 0..5 {
        let resp = r.openai(chat("m", "x")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-switchyard-provider"], "b");
        assert_eq!(resp.headers()["x-switchyard-attempts"], "1");
    }
    assert_eq!(r.hits("a"), 3, "no traffic while open");
    let ready = r
        .http
        .get(format!("{}/ready", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // Half-open after the cooldown: a failed probe re-opens…
    tokio::time::sleep(Duration::from_millis(350)).await;
    let resp = r.openai(chat("m", "x")).await;
    assert_eq!(resp.headers()["x-switchyard-attempts"], "2");
    assert_eq!(r.hits("a"), 4);
    let resp = r.openai(chat("m", "x")).await;
    assert_eq!(resp.headers()["x-switchyard-attempts"], "1");
    assert_eq!(r.hits("a"), 4);
    // …a successful probe closes.
    r.mock("a").set_sticky_fault(None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    for _ in 0..6 {
        let resp = r.openai(chat("m", "x")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-switchyard-provider"], "a");
    }
}

#[tokio::test]
async fn retry_budget_caps_upstream_load_in_a_full_outage() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability:
  retries: 3
  backoff: { base: 1ms, max: 2ms }
  retry_budget: { ratio: 0.2, min_per_second: 0, window: 10s }
  breaker: { consecutive_failures: 100000, min_requests: 100000 }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}" }
models:
  m: { deployments: [ { provider: a, model: gpt-4o } ] }
"#;
    let r = rig(&[("a", OAI)], yaml).await;
    r.mock("a").set_sticky_fault(Some(Fault::Status(503)));
    let n = 100;
    for _ in 0..n {
        assert_eq!(r.openai(chat("m", "x")).await.status(), 502);
    }
    let attempts = r.hits("a");
    // Without a budget: 4 × 100 = 400 upstream attempts. With it: ≈ 100 + 20%.
    assert!(attempts >= n, "{attempts}");
    assert!(
        attempts <= n + n / 5 + 2,
        "retry budget exceeded: {attempts} upstream attempts for {n} requests"
    );
}

#[tokio::test]
async fn fallback_chain_crosses_providers_and_formats() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
providers:
  o: { kind: openai, base_url: "{o}", api_key: "${K}" }
  an: { kind: anthropic, base_url: "{an}", api_key: "${K}" }
  g: { kind: gemini, base_url: "{g}", api_key: "${K}" }
models:
  smart:
    fallbacks: [claude, gem]
    deployments: [ { provider: o, model: gpt-4o } ]
  claude: { deployments: [ { provider: an, model: claude-sonnet-4-5 } ] }
  gem: { deployments: [ { provider: g, model: gemini-2.5-flash } ] }
"#;
    let r = rig(
        &[("o", OAI), ("an", Flavor::Anthropic), ("g", Flavor::Gemini)],
        yaml,
    )
    .await;
    r.mock("o").set_sticky_fault(Some(Fault::Status(500)));
    let resp = r.openai(chat("smart", "hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "an");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        expected_text("an", "hi")
    );

    r.mock("an").set_sticky_fault(Some(Fault::Overloaded));
    let resp = r.anthropic(json!({"model": "smart", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "g");
    let (_, text, _, stop, _) = common::assemble_anthropic(&frames(resp).await);
    assert_eq!(text, expected_text("g", "hi"));
    assert_eq!(stop.as_deref(), Some("end_turn"));

    // Everything down: the last upstream error, with the attempt count.
    r.mock("g").set_sticky_fault(Some(Fault::Status(500)));
    let resp = r.openai(chat("smart", "hi")).await;
    assert_eq!(resp.status(), 502);
    let attempts: u32 = resp.headers()["x-switchyard-attempts"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(attempts >= 3, "{attempts}");
}

#[tokio::test]
async fn context_window_and_content_policy_fallbacks() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
providers:
  o: { kind: openai, base_url: "{o}", api_key: "${K}" }
  big: { kind: gemini, base_url: "{big}", api_key: "${K}" }
models:
  small:
    context_window_fallback: large
    deployments: [ { provider: o, model: gpt-4o-mini } ]
  large: { deployments: [ { provider: big, model: gemini-2.5-pro } ] }
  plain: { deployments: [ { provider: o, model: gpt-4o-mini } ] }
"#;
    let r = rig(&[("o", OAI), ("big", Flavor::Gemini)], yaml).await;
    r.mock("o").push_fault(Fault::ContextLengthExceeded);
    let resp = r.openai(chat("small", "a very long prompt")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "big");
    // Without a configured fallback the 400 reaches the client unchanged, not retried.
    r.mock("o").push_fault(Fault::ContextLengthExceeded);
    let hits = r.hits("o");
    let resp = r.openai(chat("plain", "a very long prompt")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(r.hits("o"), hits + 1);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length"),
        "{v}"
    );
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let r = rig(&[("a", OAI), ("b", OAI)], &two_openai("", "{}")).await;
    let resp = r
        .openai(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 9}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(r.hits("a") + r.hits("b"), 1);
}

#[tokio::test]
async fn refused_keys_leave_the_rotation() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
providers:
  a: { kind: openai, base_url: "{a}", api_keys: ["${BAD}", "${GOOD}"] }
models:
  m: { deployments: [ { provider: a, model: gpt-4o } ] }
"#;
    let r = rig_with_keys(
        &[("a", OAI)],
        yaml,
        &[
            ("REQUIRE_a", "good-key"),
            ("BAD", "bad-key"),
            ("GOOD", "good-key"),
        ],
    )
    .await;
    for _ in 0..10 {
        assert_eq!(r.openai(chat("m", "x")).await.status(), 200);
    }
    let bad = r
        .mock("a")
        .requests()
        .iter()
        .filter(|q| q.header("authorization") == Some("Bearer bad-key"))
        .count();
    assert!(bad <= 1, "the refused key was used {bad} times");
    assert_eq!(
        r.state
            .router
            .providers()
            .next()
            .unwrap()
            .keys_in_rotation(),
        1
    );
}

#[tokio::test]
async fn concurrency_limit_queues_then_refuses() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability: { retries: 0 }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}" }
models:
  m: { deployments: [ { provider: a, model: gpt-4o, max_concurrency: 1, queue_size: 1, queue_timeout: 2s } ] }
"#;
    let r = std::sync::Arc::new(rig(&[("a", OAI)], yaml).await);
    r.mock("a")
        .set_sticky_fault(Some(Fault::SlowFirstByte(Duration::from_millis(400))));
    let spawn = |r: std::sync::Arc<common::Rig>| {
        tokio::spawn(async move { r.openai(chat("m", "x")).await.status().as_u16() })
    };
    let first = spawn(r.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued = spawn(r.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    // In flight 1 + queued 1: the third is refused at once with a clear 429.
    let t = Instant::now();
    let resp = r.openai(chat("m", "x")).await;
    assert_eq!(resp.status(), 429);
    assert!(t.elapsed() < Duration::from_millis(200));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "concurrency_limit", "{v}");
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(
        queued.await.unwrap(),
        200,
        "the queued request was served once a slot freed"
    );
}

#[tokio::test]
async fn active_health_checks_take_a_provider_out_and_back() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}", health_check: { interval: 50ms, timeout: 40ms, unhealthy_after: 2, healthy_after: 2 } }
  b: { kind: openai, base_url: "{b}", api_key: "${K}" }
models:
  m:
    strategy: priority
    deployments: [ { provider: a, model: gpt-4o }, { provider: b, model: gpt-4o } ]
"#;
    let r = rig(&[("a", OAI), ("b", OAI)], yaml).await;
    assert_eq!(
        r.openai(chat("m", "x")).await.headers()["x-switchyard-provider"],
        "a"
    );
    r.mock("a").set_sticky_fault(Some(Fault::Status(503)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = r.hits("a");
    let resp = r.openai(chat("m", "x")).await;
    assert_eq!(resp.headers()["x-switchyard-provider"], "b");
    assert_eq!(
        resp.headers()["x-switchyard-attempts"],
        "1",
        "the unhealthy provider is skipped, not tried"
    );
    assert_eq!(r.hits("a"), before);
    r.mock("a").set_sticky_fault(None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        r.openai(chat("m", "x")).await.headers()["x-switchyard-provider"],
        "a"
    );
}

#[tokio::test]
async fn strategies_spread_or_order_traffic() {
    for (strategy, check) in [("round_robin", 0u8), ("priority", 1), ("weighted", 2)] {
        let r = rig(
            &[("a", OAI), ("b", OAI)],
            &two_openai(&format!("strategy: {strategy}"), "{}"),
        )
        .await;
        for _ in 0..20 {
            assert_eq!(r.openai(chat("m", "x")).await.status(), 200);
        }
        let (a, b) = (r.hits("a"), r.hits("b"));
        match check {
            0 => assert_eq!((a, b), (10, 10), "{strategy}"),
            1 => assert_eq!((a, b), (20, 0), "{strategy}"),
            _ => assert!(a > 0 && b > 0, "{strategy}: {a}/{b}"),
        }
    }
}

#[tokio::test]
async fn metrics_expose_requests_tokens_and_breaker_state() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability:
  retries: 0
  breaker: { consecutive_failures: 2, cooldown: 60s }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}" }
models:
  m: { deployments: [ { provider: a, model: gpt-4o } ] }
"#;
    let r = rig(&[("a", OAI)], yaml).await;
    assert_eq!(r.openai(chat("m", "count me")).await.status(), 200);
    r.mock("a").set_sticky_fault(Some(Fault::Status(500)));
    for _ in 0..2 {
        assert_eq!(r.openai(chat("m", "x")).await.status(), 502);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = r
        .http
        .get(format!("{}/metrics", r.base))
        .bearer_auth(common::KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for needle in [
        r#"switchyard_requests_total{alias="m",provider="a",ingress="openai",status="2xx"} 1"#,
        r#"switchyard_requests_total{alias="m",provider="a",ingress="openai",status="5xx"} 2"#,
        r#"switchyard_tokens_total{alias="m",provider="a",kind="input"}"#,
        r#"switchyard_request_duration_seconds_count{alias="m",provider="a"} 3"#,
        r#"switchyard_breaker_state{deployment="m#0",provider="a"} 2"#,
        r#"switchyard_provider_healthy{provider="a"} 1"#,
        "# EOF",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

/// A provider's redirect is not followed (it would carry the gateway's key
/// to wherever the provider points): the caller gets a 502 naming it, and
/// the redirect's target is never called.
#[tokio::test]
async fn an_upstream_redirect_is_not_followed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let t = target.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let location = t.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}/chat/completions\r\ncontent-length: 0\r\n\r\n"
                );
                let _ = s.write_all(head.as_bytes()).await;
            });
        }
    });
    let gw = rig(
        &[("real", Flavor::OpenAi)],
        &format!(
            "server: {{ api_keys: [\"${{GW_KEY}}\"] }}\nproviders:\n  redir: {{ kind: openai, base_url: \"http://127.0.0.1:{port}/v1\", api_key: \"${{K}}\" }}\n  real: {{ kind: openai, base_url: \"{{real}}\", api_key: \"${{K}}\" }}\nmodels:\n  m:\n    deployments: [{{ provider: redir, model: gpt-4o-mini }}]\nreliability: {{ retries: 0 }}\n"
        ),
    )
    .await;
    *target.lock().unwrap() = gw.mock("real").base_url();
    let r = gw.openai(chat("m", "hi")).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("307"), "{v}");
    assert_eq!(gw.hits("real"), 0, "the redirect target must not be called");
}
