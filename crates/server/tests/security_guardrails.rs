//! Issue 18 §3: guardrails see every byte they let through. A body the
//! gateway cannot read in full (a lone surrogate escape, nesting deeper
//! than serde_json's limit, bytes that are not UTF-8) is refused with a 400
//! in the caller's error shape and never reaches an upstream: on chat,
//! messages and embeddings, pass-through and translated, streamed or not,
//! with `guardrails.pii` applying or not.
#![allow(clippy::unwrap_used)]

mod common;

use common::{rig, Rig, KEY};
use serde_json::Value;
use switchyard_mock::Flavor;

const CONFIG: &str = r#"
server: { api_keys: ["${GW_KEY}"] }
cache: {}
guardrails:
  pii:
    block: [secret]
providers:
  o: { kind: openai, base_url: "{o}", api_key: "${K}" }
  a: { kind: anthropic, base_url: "{a}", api_key: "${K}" }
  g: { kind: gemini, base_url: "{g}", api_key: "${K}" }
models:
  gpt: { deployments: [{ provider: o, model: gpt-4o }] }
  claude: { deployments: [{ provider: a, model: claude-sonnet-4-5 }] }
  embed: { deployments: [{ provider: o, model: text-embedding-3-small }] }
  gembed: { deployments: [{ provider: g, model: text-embedding-004 }] }
  onprem: { pii: false, deployments: [{ provider: o, model: local-llm }] }
  onprem-embed: { pii: false, deployments: [{ provider: o, model: local-embed }] }
"#;

async fn gateway() -> Rig {
    rig(
        &[
            ("o", Flavor::OpenAi),
            ("a", Flavor::Anthropic),
            ("g", Flavor::Gemini),
        ],
        CONFIG,
    )
    .await
}

/// Phone numbers, a Chinese resident ID, an email, card numbers and an
/// OpenAI project key: what the guardrail exists to stop.
const PII: &str = "call +1 415 555 2671 or 13800138000, id 11010519491231002X, \
mail jane.doe@example.com, cards 4111 1111 1111 1111 and 5500 0000 0000 0004, \
key sk-proj-abcdefghijklmnopqrstuvwxyz012345";

/// Every request the mocks received so far.
fn upstream_calls(r: &Rig) -> usize {
    r.mocks.values().map(|m| m.requests().len()).sum()
}

/// The parser-rejected variants: (name, a JSON fragment to embed as the
/// value of a member, a word the error must contain).
fn poisons() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    vec![
        ("lone surrogate", br#""x\ud800y""#.to_vec(), "surrogate"),
        (
            "lone trailing surrogate",
            br#""\udc00""#.to_vec(),
            "surrogate",
        ),
        ("nesting", deep.into_bytes(), "nest"),
        ("invalid utf-8", b"\"caf\xc3(\xff\"".to_vec(), "UTF-8"),
    ]
}

/// A raw body: `head` (the route's fields, ending in a member list) with
/// the personal data in the prompt and the poison in a second member that
/// the gateway's peek does not read.
fn body(template: &str, poison: &[u8]) -> Vec<u8> {
    let (a, b) = template.split_once("POISON").unwrap();
    let mut out = a.replace("TEXT", PII).into_bytes();
    out.extend_from_slice(poison);
    out.extend_from_slice(b.replace("TEXT", PII).as_bytes());
    out
}

enum Route {
    Chat,
    Messages,
    Embeddings,
}

async fn send(r: &Rig, route: &Route, body: Vec<u8>) -> reqwest::Response {
    let path = match route {
        Route::Chat => "/v1/chat/completions",
        Route::Messages => "/v1/messages",
        Route::Embeddings => "/v1/embeddings",
    };
    r.http
        .post(format!("{}{path}", r.base))
        .header("authorization", format!("Bearer {KEY}"))
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Each template × each poison: 400 in the route's error shape, naming
/// the problem, no `x-switchyard-pii`, and nothing reached any upstream.
async fn refused(r: &Rig, route: Route, templates: &[&str]) {
    for t in templates {
        for (name, poison, word) in poisons() {
            let before = upstream_calls(r);
            let resp = send(r, &route, body(t, &poison)).await;
            let status = resp.status().as_u16();
            assert!(resp.headers().get("x-switchyard-pii").is_none());
            let v: Value = resp.json().await.unwrap();
            let case = format!("{name} in {t}: {v}");
            assert_eq!(status, 400, "{case}");
            let (kind, message) = match route {
                Route::Messages => {
                    assert_eq!(v["type"], "error", "{case}");
                    (&v["error"]["type"], &v["error"]["message"])
                }
                _ => (&v["error"]["type"], &v["error"]["message"]),
            };
            assert_eq!(kind, "invalid_request_error", "{case}");
            let message = message.as_str().unwrap();
            assert!(message.contains(word), "{case}");
            assert!(!message.contains("jane"), "{case}");
            assert_eq!(upstream_calls(r), before, "{case}: reached an upstream");
        }
    }
}

#[tokio::test]
async fn chat_bodies_the_gateway_cannot_read_never_leave() {
    let r = gateway().await;
    refused(
        &r,
        Route::Chat,
        &[
            // Pass-through, guarded; the poison in an unknown member…
            r#"{"model":"gpt","messages":[{"role":"user","content":"TEXT"}],"metadata":{"n":POISON}}"#,
            // …in the prompt itself, streamed…
            r#"{"model":"gpt","stream":true,"messages":[{"role":"user","content":"TEXT"},{"role":"user","content":POISON}]}"#,
            // …translated (OpenAI client → Anthropic provider)…
            r#"{"model":"claude","messages":[{"role":"user","content":"TEXT"}],"user":POISON}"#,
            r#"{"model":"claude","stream":true,"messages":[{"role":"user","content":"TEXT"}],"x":POISON}"#,
            // …and pass-through with no guardrail applying.
            r#"{"model":"onprem","messages":[{"role":"user","content":"TEXT"}],"x":POISON}"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn messages_bodies_the_gateway_cannot_read_never_leave() {
    let r = gateway().await;
    refused(
        &r,
        Route::Messages,
        &[
            r#"{"model":"claude","max_tokens":20,"messages":[{"role":"user","content":"TEXT"}],"metadata":{"n":POISON}}"#,
            r#"{"model":"claude","max_tokens":20,"stream":true,"system":"TEXT","messages":[{"role":"user","content":[{"type":"text","text":POISON}]}]}"#,
            // Translated (Anthropic client → OpenAI provider).
            r#"{"model":"gpt","max_tokens":20,"messages":[{"role":"user","content":"TEXT"}],"x":POISON}"#,
            r#"{"model":"onprem","max_tokens":20,"messages":[{"role":"user","content":"TEXT"}],"x":POISON}"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn embeddings_bodies_the_gateway_cannot_read_never_leave() {
    let r = gateway().await;
    refused(
        &r,
        Route::Embeddings,
        &[
            r#"{"model":"embed","input":["TEXT",POISON]}"#,
            r#"{"model":"embed","input":"TEXT","x":POISON}"#,
            // Translated (OpenAI client → Gemini provider).
            r#"{"model":"gembed","input":"TEXT","x":POISON}"#,
            r#"{"model":"onprem-embed","input":"TEXT","x":POISON}"#,
        ],
    )
    .await;
}

/// What JSON allows still passes: surrogate pairs, escaped backslashes
/// before a `u`, nesting within the limit, non-ASCII text; and personal
/// data written with escapes is still masked.
#[tokio::test]
async fn readable_bodies_still_pass_and_escaped_pii_is_masked() {
    let r = gateway().await;
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let ok = format!(
        r#"{{"model":"gpt","messages":[{{"role":"user","content":"smile \ud83d\ude00 \\ud800 café"}}],"metadata":{{"n":{deep}}}}}"#
    );
    let resp = send(&r, &Route::Chat, ok.into_bytes()).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let sent = r.mocks["o"]
        .requests()
        .last()
        .unwrap()
        .json
        .clone()
        .unwrap();
    assert_eq!(
        sent["messages"][0]["content"],
        "smile \u{1f600} \\ud800 café"
    );

    let escaped = r#"{"model":"gpt","messages":[{"role":"user","content":"mail jane.doe\u0040example.com"}]}"#;
    let resp = send(&r, &Route::Chat, escaped.as_bytes().to_vec()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-pii"], "email=1");
    let sent = r.mocks["o"]
        .requests()
        .last()
        .unwrap()
        .json
        .clone()
        .unwrap();
    assert_eq!(sent["messages"][0]["content"], "mail [EMAIL]");
}

/// One request, raw.
async fn post(r: &Rig, route: &Route, body: &str) -> (u16, Option<String>, Value) {
    let resp = send(r, route, body.as_bytes().to_vec()).await;
    let status = resp.status().as_u16();
    let pii = resp
        .headers()
        .get("x-switchyard-pii")
        .map(|h| h.to_str().unwrap().to_owned());
    (status, pii, resp.json().await.unwrap())
}

const KEY_TEXT: &str = "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0";

/// A member named twice: serde keeps the last, so the scan read "hi" and
/// the original bytes (secret included) went out. Now a 400 naming the
/// member, in the route's shape, and nothing reaches an upstream.
#[tokio::test]
async fn duplicate_members_never_leave() {
    let r = gateway().await;
    let cases: &[(Route, &str, &str)] = &[
        (
            Route::Chat,
            r#"{"model":"gpt","messages":[{"role":"user","content":"KEY","content":"hi"}]}"#,
            "content",
        ),
        (
            Route::Chat,
            r#"{"model":"gpt","messages":[{"role":"user","content":"KEY"}],"messages":[{"role":"user","content":"hi"}]}"#,
            "messages",
        ),
        (
            Route::Chat,
            r#"{"model":"claude","stream":true,"messages":[{"role":"user","content":"KEY","content":"hi"}]}"#,
            "content",
        ),
        (
            Route::Messages,
            r#"{"model":"claude","max_tokens":20,"system":"KEY","system":"hi","messages":[{"role":"user","content":"hi"}]}"#,
            "system",
        ),
        (
            Route::Messages,
            r#"{"model":"claude","max_tokens":20,"messages":[{"role":"user","content":[{"type":"text","text":"KEY","text":"hi"}]}]}"#,
            "text",
        ),
        (
            Route::Messages,
            r#"{"model":"gpt","max_tokens":20,"messages":[{"role":"user","content":"KEY","content":"hi"}]}"#,
            "content",
        ),
        (
            Route::Embeddings,
            r#"{"model":"embed","input":"KEY","input":"hi"}"#,
            "input",
        ),
        (
            Route::Embeddings,
            r#"{"model":"gembed","input":["KEY"],"input":["hi"]}"#,
            "input",
        ),
    ];
    for (route, t, member) in cases {
        let before = upstream_calls(&r);
        let (status, pii, v) = post(&r, route, &t.replace("KEY", KEY_TEXT)).await;
        let case = format!("{t}: {v}");
        assert_eq!(status, 400, "{case}");
        assert!(pii.is_none(), "{case}");
        if let Route::Messages = route {
            assert_eq!(v["type"], "error", "{case}");
        }
        assert_eq!(v["error"]["type"], "invalid_request_error", "{case}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("duplicate member `{member}`")),
            "{case}"
        );
        assert!(!message.contains("sk-proj"), "{case}");
        assert_eq!(upstream_calls(&r), before, "{case}: reached an upstream");
    }
}

/// Issue 18 §3: every string value is scanned, not only the prompt. A
/// secret in a tool description, a prediction, a parameter default, `stop`,
/// `user`, `metadata` or an Anthropic text document is refused under
/// `block: [secret]`; an email there is masked.
#[tokio::test]
async fn text_outside_the_prompt_is_scanned() {
    let r = gateway().await;
    let cases: &[(Route, &str)] = &[
        (
            Route::Chat,
            r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","description":"X","parameters":{"type":"object"}}}]}"#,
        ),
        (
            Route::Chat,
            r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","default":"X"}}}}}]}"#,
        ),
        (
            Route::Chat,
            r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"prediction":{"type":"content","content":"X"}}"#,
        ),
        (
            Route::Chat,
            r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"stop":["X"],"user":"X","metadata":{"k":"X"}}"#,
        ),
        (
            Route::Chat,
            r#"{"model":"claude","messages":[{"role":"user","name":"X","content":"hi"}]}"#,
        ),
        (
            Route::Messages,
            r#"{"model":"claude","max_tokens":20,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"X"}},{"type":"text","text":"summarise"}]}]}"#,
        ),
        (
            Route::Messages,
            r#"{"model":"claude","max_tokens":20,"tools":[{"name":"f","description":"X","input_schema":{"type":"object"}}],"metadata":{"user_id":"X"},"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            Route::Embeddings,
            r#"{"model":"embed","input":"hi","user":"X"}"#,
        ),
    ];
    for (route, t) in cases {
        let before = upstream_calls(&r);
        let (status, pii, v) = post(&r, route, &t.replace('X', &format!("key {KEY_TEXT}"))).await;
        let case = format!("secret in {t}: {v}");
        assert_eq!(status, 400, "{case}");
        assert!(pii.is_none(), "{case}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("secret"),
            "{case}"
        );
        assert_eq!(upstream_calls(&r), before, "{case}: reached an upstream");

        let (status, pii, v) = post(&r, route, &t.replace('X', "mail jane.doe@example.com")).await;
        let case = format!("email in {t}: {v}");
        assert_eq!(status, 200, "{case}");
        assert!(pii.unwrap().starts_with("email="), "{case}");
        let sent = r
            .mocks
            .values()
            .flat_map(|m| m.requests())
            .map(|q| q.body.clone())
            .collect::<Vec<_>>();
        assert_eq!(upstream_calls(&r), before + 1, "{case}");
        for b in sent {
            assert!(
                !String::from_utf8_lossy(&b).contains("jane.doe"),
                "{case}: forwarded unmasked"
            );
        }
    }
}
