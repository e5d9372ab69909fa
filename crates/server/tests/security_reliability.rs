//! Issue 18 §6 and §7: reliability defaults never make things worse, and an
//! upstream's own error text (a refused key's masked tail, account details)
//! never reaches a caller. Against the mock providers' fault injection, with
//! the shipped reliability defaults unless a test says otherwise.
#![allow(clippy::unwrap_used)]

mod common;

use common::{chat, frames, rig, rig_with_keys, Rig, KEY};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use switchyard_core::resilience::BreakerState;
use switchyard_mock::{expected_text, Fault, Flavor};

const OAI: Flavor = Flavor::OpenAi;

/// One provider of this kind; alias `m` (chat) and, for OpenAI, `e`
/// (embeddings), each with one deployment.
fn one(kind: &str) -> String {
    let (model, embed) = if kind == "openai" {
        (
            "gpt-4o",
            "\n  e: { deployments: [ { provider: a, model: text-embedding-3-small } ] }",
        )
    } else {
        ("claude-sonnet-4-5", "")
    };
    format!(
        r#"
server: {{ api_keys: ["${{GW_KEY}}"] }}
providers:
  a: {{ kind: {kind}, base_url: "{{a}}", api_key: "${{K}}" }}
models:
  m: {{ deployments: [ {{ provider: a, model: {model} }} ] }}{embed}
"#
    )
}

fn breaker(r: &Rig, alias: &str, i: usize) -> BreakerState {
    r.state.router.alias(alias).unwrap().deployments[i]
        .breaker
        .state()
}

fn attempts(resp: &reqwest::Response) -> String {
    resp.headers()["x-switchyard-attempts"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn embed(r: &Rig, model: &str) -> reqwest::Response {
    r.http
        .post(format!("{}/v1/embeddings", r.base))
        .bearer_auth(KEY)
        .json(&json!({"model": model, "input": "hello"}))
        .send()
        .await
        .unwrap()
}

/// A single-deployment alias whose upstream failed often enough to open the
/// breaker answers the very next request once the upstream is back (routed
/// anyway: every deployment is ejected), instead of 503 for the cooldown.
#[tokio::test]
async fn a_single_deployment_alias_recovers_as_soon_as_its_upstream_does() {
    for (fault, flavor) in [
        (Fault::Status(503), OAI),
        (Fault::Status(500), OAI),
        (Fault::Overloaded, Flavor::Anthropic),
    ] {
        let kind = if flavor == OAI { "openai" } else { "anthropic" };
        let r = rig(&[("a", flavor)], &one(kind)).await;
        r.mock("a").set_sticky_fault(Some(fault.clone()));
        let mut n = 0;
        while breaker(&r, "m", 0) != BreakerState::Open {
            let resp = r.openai(chat("m", "x")).await;
            assert_eq!(resp.status(), 502, "{fault:?}");
            n += 1;
            assert!(n < 10, "{fault:?}: the breaker never opened");
        }
        assert!(r.hits("a") >= 5, "{fault:?}");
        // While open, the gateway stays in a load balancer's rotation.
        let ready = r
            .http
            .get(format!("{}/ready", r.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "{fault:?}");
        let v: Value = ready.json().await.unwrap();
        assert_eq!(v["unavailable"][0], "m", "{v}");

        // The upstream recovers: the next request succeeds, at once.
        r.mock("a").set_sticky_fault(None);
        let t = Instant::now();
        let resp = r.openai(chat("m", "back")).await;
        assert_eq!(resp.status(), 200, "{fault:?}");
        assert_eq!(attempts(&resp), "1");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            expected_text("a", "back")
        );
        // … and the breaker closes again through its probes.
        let resp = r
            .openai(json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "s"}]}))
            .await;
        assert_eq!(resp.status(), 200);
        let (text, _, _, _) = common::assemble_openai(&frames(resp).await);
        assert_eq!(text, expected_text("a", "s"));
        assert_eq!(breaker(&r, "m", 0), BreakerState::Closed, "{fault:?}");
    }
}

/// The same with an outage long enough for the breaker to stay open: while
/// the upstream is down every request still reaches it (bounded by the
/// retry budget), so the alias is down exactly as long as its upstream.
#[tokio::test]
async fn an_open_breaker_on_the_only_deployment_does_not_refuse_requests() {
    let yaml = one("openai").replace(
        "providers:",
        "reliability: { retries: 0, breaker: { consecutive_failures: 2, cooldown: 60s } }\nproviders:",
    );
    let r = rig(&[("a", OAI)], &yaml).await;
    r.mock("a").set_sticky_fault(Some(Fault::Status(500)));
    for _ in 0..2 {
        assert_eq!(r.openai(chat("m", "x")).await.status(), 502);
    }
    assert_eq!(breaker(&r, "m", 0), BreakerState::Open);
    for _ in 0..3 {
        let resp = r.openai(chat("m", "x")).await;
        // The upstream's answer, not the gateway's 503.
        assert_eq!(resp.status(), 502);
    }
    assert_eq!(r.hits("a"), 5);
    r.mock("a").push_fault(Fault::Status(500));
    r.mock("a").set_sticky_fault(None);
    assert_eq!(r.openai(chat("m", "x")).await.status(), 502);
    assert_eq!(r.openai(chat("m", "x")).await.status(), 200);
    // Embeddings walk the same plan.
    assert_eq!(breaker(&r, "e", 0), BreakerState::Closed);
    r.mock("a").set_sticky_fault(Some(Fault::Status(500)));
    for _ in 0..2 {
        assert_eq!(embed(&r, "e").await.status(), 502);
    }
    assert_eq!(breaker(&r, "e", 0), BreakerState::Open);
    r.mock("a").set_sticky_fault(None);
    assert_eq!(embed(&r, "e").await.status(), 200);
}

/// 429s are back-pressure: honoured (the deployment cools down for its
/// `retry-after`), never counted by the breaker; once the upstream lets
/// requests through again, the next one succeeds.
#[tokio::test]
async fn rate_limits_never_open_the_breaker() {
    let r = rig(&[("a", OAI)], &one("openai")).await;
    r.mock("a").set_sticky_fault(Some(Fault::RateLimited {
        retry_after_secs: 1,
    }));
    for _ in 0..2 {
        let resp = r.openai(chat("m", "x")).await;
        assert_eq!(resp.status(), 429);
        assert!(resp.headers().contains_key("retry-after"));
    }
    assert!(r.hits("a") >= 5, "{}", r.hits("a"));
    assert_eq!(breaker(&r, "m", 0), BreakerState::Closed);
    r.mock("a").set_sticky_fault(None);
    let t = Instant::now();
    let resp = r.openai(chat("m", "x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(attempts(&resp), "1");
    // At most the retry-after was waited out, never a breaker cooldown.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(breaker(&r, "m", 0), BreakerState::Closed);
}

/// A deployment that answered 429 with a long `retry-after` is skipped while
/// it cools down (its sibling serves); when it is the only one, the caller
/// gets the 429 with the time left, without another upstream call.
#[tokio::test]
async fn a_rate_limited_deployment_cools_down_for_its_retry_after() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}" }
  b: { kind: openai, base_url: "{b}", api_key: "${K}" }
models:
  m:
    strategy: priority
    deployments: [ { provider: a, model: gpt-4o }, { provider: b, model: gpt-4o } ]
  solo: { deployments: [ { provider: b, model: gpt-4o } ] }
"#;
    let r = rig(&[("a", OAI), ("b", OAI)], yaml).await;
    r.mock("a").push_fault(Fault::RateLimited {
        retry_after_secs: 60,
    });
    let resp = r.openai(chat("m", "x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "b");
    assert_eq!(attempts(&resp), "2");
    for _ in 0..5 {
        let resp = r.openai(chat("m", "x")).await;
        assert_eq!(resp.headers()["x-switchyard-provider"], "b");
        assert_eq!(attempts(&resp), "1");
    }
    assert_eq!(r.hits("a"), 1, "a is cooling down");
    assert_eq!(breaker(&r, "m", 0), BreakerState::Closed);

    r.mock("b").push_fault(Fault::RateLimited {
        retry_after_secs: 30,
    });
    let resp = r.openai(chat("solo", "x")).await;
    assert_eq!(resp.status(), 429);
    let hits = r.hits("b");
    let t = Instant::now();
    let resp = r.openai(chat("solo", "x")).await;
    assert_eq!(resp.status(), 429);
    assert!(t.elapsed() < Duration::from_secs(3));
    let left: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((28..=30).contains(&left), "{left}");
    assert_eq!(r.hits("b"), hits, "no upstream call while cooling down");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_rate_limited", "{v}");
}

/// Upstream client errors are answered at once: one attempt, no failover,
/// no breaker count — on every path (pass-through and translated chat,
/// streams, embeddings).
#[tokio::test]
async fn upstream_client_errors_are_one_attempt_and_spare_the_breaker() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability: { breaker: { consecutive_failures: 2 } }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}" }
  b: { kind: openai, base_url: "{b}", api_key: "${K}" }
models:
  m:
    strategy: priority
    deployments: [ { provider: a, model: gpt-4o }, { provider: b, model: gpt-4o } ]
  e:
    strategy: priority
    deployments: [ { provider: a, model: text-embedding-3-small }, { provider: b, model: text-embedding-3-small } ]
"#;
    let r = rig(&[("a", OAI), ("b", OAI)], yaml).await;
    for status in [404u16, 400, 413, 422] {
        for path in ["chat", "stream", "translated", "embeddings"] {
            r.mock("a").push_fault(Fault::Status(status));
            let before = r.hits("a");
            let resp = match path {
                "chat" => r.openai(chat("m", "x")).await,
                "stream" => {
                    r.openai(json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
                        .await
                }
                "translated" => {
                    r.anthropic(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
                        .await
                }
                _ => embed(&r, "e").await,
            };
            assert_eq!(resp.status().as_u16(), status, "{status} {path}");
            assert_eq!(attempts(&resp), "1", "{status} {path}");
            assert_eq!(r.hits("a"), before + 1, "{status} {path}");
            assert_eq!(r.hits("b"), 0, "{status} {path}: not retried elsewhere");
        }
        assert_eq!(breaker(&r, "m", 0), BreakerState::Closed, "{status}");
        assert_eq!(breaker(&r, "e", 0), BreakerState::Closed, "{status}");
    }
    // The upstream's own message about the request is carried.
    r.mock("a").push_fault(Fault::Status(404));
    let v: Value = r.openai(chat("m", "x")).await.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{v}"
    );
}

/// A multi-deployment alias still fails over away from an open breaker and
/// sends its failing deployment no traffic while the breaker is open.
#[tokio::test]
async fn a_multi_deployment_alias_still_avoids_an_open_breaker() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}" }
  b: { kind: openai, base_url: "{b}", api_key: "${K}" }
models:
  m:
    strategy: priority
    deployments: [ { provider: a, model: gpt-4o }, { provider: b, model: gpt-4o } ]
"#;
    let r = rig(&[("a", OAI), ("b", OAI)], yaml).await;
    r.mock("a").set_sticky_fault(Some(Fault::Status(503)));
    for _ in 0..5 {
        let resp = r.openai(chat("m", "x")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-switchyard-provider"], "b");
    }
    assert_eq!(breaker(&r, "m", 0), BreakerState::Open);
    let hits = r.hits("a");
    for _ in 0..10 {
        let resp = r.openai(chat("m", "x")).await;
        assert_eq!(resp.headers()["x-switchyard-provider"], "b");
        assert_eq!(attempts(&resp), "1");
    }
    assert_eq!(r.hits("a"), hits, "no traffic to the open breaker");
}

// ------------------------------------------------------------- §7: upstream text

/// Everything logged while this test binary runs (a global subscriber: the
/// gateway's tasks may run on any thread).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Capture(w.clone()))
            .try_init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(needle: &str) -> bool {
    String::from_utf8_lossy(&logs().lock().unwrap()).contains(needle)
}

/// The provider's 401 text, with the masked tail of the gateway's provider
/// key, is logged for the operator and never sent to a caller, on any route
/// or ingress format; neither are a 403's, a 429's or a 5xx's own texts.
#[tokio::test]
async fn upstream_credential_and_account_text_never_reaches_the_caller() {
    logs();
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability: { retries: 0 }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${PK}" }
  g: { kind: gemini, base_url: "{g}", api_key: "${PK}" }
models:
  m: { deployments: [ { provider: a, model: gpt-4o } ] }
  e: { deployments: [ { provider: a, model: text-embedding-3-small } ] }
  gm: { deployments: [ { provider: g, model: gemini-2.5-flash } ] }
"#;
    let r = rig_with_keys(
        &[("a", OAI), ("g", Flavor::Gemini)],
        yaml,
        &[
            ("REQUIRE_a", "the-right-key"),
            ("REQUIRE_g", "the-right-key"),
            ("PK", "sk-proj-secretvalue7Qz9"),
        ],
    )
    .await;
    let check = |what: &str, status: u16, v: &Value, raw: &str| {
        let text = v.to_string();
        assert_eq!(status, 502, "{what}: {v}");
        for leak in ["7Qz9", "Incorrect API key", "sk-pro", "API key not valid"] {
            assert!(!text.contains(leak), "{what} leaked `{leak}`: {v}");
        }
        assert!(text.contains("credentials"), "{what}: {v}");
        assert!(logged(raw), "{what}: the upstream text was not logged");
    };
    let resp = r.openai(chat("m", "x")).await;
    let s = resp.status().as_u16();
    check("chat", s, &resp.json().await.unwrap(), "7Qz9");
    let resp = r
        .openai(
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    let s = resp.status().as_u16();
    check("stream", s, &resp.json().await.unwrap(), "7Qz9");
    let resp = r
        .anthropic(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    let s = resp.status().as_u16();
    check("anthropic", s, &resp.json().await.unwrap(), "7Qz9");
    let resp = embed(&r, "e").await;
    let s = resp.status().as_u16();
    check("embeddings", s, &resp.json().await.unwrap(), "7Qz9");
    // Gemini refuses a bad key with 400 INVALID_ARGUMENT: still the gateway's
    // credentials, not the caller's request.
    let resp = r.openai(chat("gm", "x")).await;
    let s = resp.status().as_u16();
    check(
        "gemini",
        s,
        &resp.json().await.unwrap(),
        "API key not valid",
    );

    // Other statuses whose text is the provider's business, not the caller's.
    let r = rig(
        &[("a", OAI)],
        &one("openai").replace("providers:", "reliability: { retries: 0 }\nproviders:"),
    )
    .await;
    for (fault, status, secret) in [
        (Fault::Status(403), 502, "not allowed to sample"),
        (Fault::Status(402), 502, "Mock fault status 402"),
        (
            Fault::RateLimited {
                retry_after_secs: 0,
            },
            429,
            "mock organization",
        ),
        (Fault::Status(500), 502, "Sorry about that"),
        (Fault::Status(503), 502, "engine is currently overloaded"),
    ] {
        r.mock("a").push_fault(fault.clone());
        let resp = r.openai(chat("m", "x")).await;
        assert_eq!(resp.status().as_u16(), status, "{fault:?}");
        let v: Value = resp.json().await.unwrap();
        let text = v.to_string();
        assert!(!text.contains(secret), "{fault:?} leaked: {v}");
        assert!(text.contains("upstream provider `a`"), "{fault:?}: {v}");
    }
    assert!(logged("not allowed to sample"));
}

/// An error event that opens a stream (before the client saw a byte) is
/// classified like the status it stands for: an `overloaded_error` fails
/// over and counts against the breaker; its text is not the caller's.
#[tokio::test]
async fn an_error_event_before_the_first_byte_fails_over() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability: { retries: 0 }
providers:
  a: { kind: anthropic, base_url: "{a}", api_key: "${K}" }
  b: { kind: anthropic, base_url: "{b}", api_key: "${K}" }
models:
  m:
    strategy: priority
    deployments: [ { provider: a, model: claude-sonnet-4-5 }, { provider: b, model: claude-sonnet-4-5 } ]
  solo: { deployments: [ { provider: a, model: claude-sonnet-4-5 } ] }
"#;
    let r = rig(&[("a", Flavor::Anthropic), ("b", Flavor::Anthropic)], yaml).await;
    let body = |m: &str| json!({"model": m, "max_tokens": 20, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    r.mock("a")
        .push_fault(Fault::StreamError { after_chunks: 0 });
    let resp = r.anthropic(body("m")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "b");
    assert_eq!(attempts(&resp), "2");
    let (_, text, _, _, _) = common::assemble_anthropic(&frames(resp).await);
    assert_eq!(text, expected_text("b", "hi"));
    r.mock("a")
        .push_fault(Fault::StreamError { after_chunks: 0 });
    let resp = r.anthropic(body("solo")).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream provider `a` returned 529"),
        "{v}"
    );
}

/// The same on the translated path: an error event that comes before
/// anything was sent to the client fails over instead of ending a 200.
#[tokio::test]
async fn a_translated_error_event_before_the_first_byte_fails_over() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
reliability: { retries: 0 }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}" }
  b: { kind: openai, base_url: "{b}", api_key: "${K}" }
models:
  m:
    strategy: priority
    deployments: [ { provider: a, model: gpt-4o }, { provider: b, model: gpt-4o } ]
"#;
    let r = rig(&[("a", OAI), ("b", OAI)], yaml).await;
    r.mock("a")
        .push_fault(Fault::StreamError { after_chunks: 0 });
    let resp = r
        .anthropic(json!({"model": "m", "max_tokens": 20, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "b");
    assert_eq!(attempts(&resp), "2");
    let (_, text, _, _, _) = common::assemble_anthropic(&frames(resp).await);
    assert_eq!(text, expected_text("b", "hi"));
}

/// Active health checks do not take a rate-limiting provider out either: a
/// 429 to the probe is a provider that is up.
#[tokio::test]
async fn a_rate_limited_health_probe_is_not_ill_health() {
    let yaml = r#"
server: { api_keys: ["${GW_KEY}"] }
providers:
  a: { kind: openai, base_url: "{a}", api_key: "${K}", health_check: { interval: 100ms, timeout: 90ms, unhealthy_after: 3, healthy_after: 1 } }
models:
  m: { deployments: [ { provider: a, model: gpt-4o } ] }
"#;
    let r = rig(&[("a", OAI)], yaml).await;
    r.mock("a").set_sticky_fault(Some(Fault::RateLimited {
        retry_after_secs: 0,
    }));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let probes = r
        .mock("a")
        .requests()
        .iter()
        .filter(|q| q.method == "GET")
        .count();
    assert!(probes >= 3, "{probes}");
    let p = r.state.router.providers().next().unwrap();
    assert!(p.is_healthy());
    r.mock("a").set_sticky_fault(Some(Fault::Status(503)));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!p.is_healthy(), "a 503 still counts");
}
