//! `guardrails.pii` end to end: what the provider receives, what the
//! client sees, over pass-through, translated and embeddings paths.
#![allow(clippy::unwrap_used)]

mod common;

use common::{chat, rig, Rig, KEY};
use serde_json::{json, Value};
use switchyard_mock::{expected_text, Flavor};

const CONFIG: &str = r#"
server: { api_keys: ["${GW_KEY}"] }
cache: {}
guardrails:
  pii:
    block: [secret]
    custom:
      - { name: employee_id, pattern: "EMP-[0-9]{6}" }
providers:
  o: { kind: openai, base_url: "{o}", api_key: "${K}" }
  a: { kind: anthropic, base_url: "{a}", api_key: "${K}" }
models:
  gpt: { deployments: [{ provider: o, model: gpt-4o }] }
  claude: { deployments: [{ provider: a, model: claude-sonnet-4-5 }] }
  embed: { deployments: [{ provider: o, model: text-embedding-3-small }] }
  onprem: { pii: false, deployments: [{ provider: o, model: local-llm }] }
  onprem-then-cloud: { pii: false, fallbacks: [claude], deployments: [{ provider: o, model: local-llm }] }
"#;

async fn gateway() -> Rig {
    rig(&[("o", Flavor::OpenAi), ("a", Flavor::Anthropic)], CONFIG).await
}

/// The last JSON body a mock received.
fn last_body(r: &Rig, mock: &str) -> Value {
    r.mocks[mock]
        .requests()
        .last()
        .and_then(|q| q.json.clone())
        .expect("the upstream was called")
}

const PROMPT: &str =
    "I am jane.doe@example.com, EMP-004211, card 4111 1111 1111 1111, phone +1 415 555 2671";
const MASKED: &str = "I am [EMAIL], [EMPLOYEE_ID], card [CREDIT_CARD], phone [PHONE]";

#[tokio::test]
async fn prompts_are_masked_before_any_provider_sees_them() {
    let r = gateway().await;
    // Pass-through (OpenAI → OpenAI).
    let resp = r.openai(chat("gpt", PROMPT)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-switchyard-pii"],
        "email=1, employee_id=1, credit_card=1, phone=1"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        expected_text("o", MASKED)
    );
    assert_eq!(last_body(&r, "o")["messages"][0]["content"], MASKED);

    // Translated (OpenAI client → Anthropic provider), system prompt too.
    let mut body = chat("claude", PROMPT);
    body["messages"].as_array_mut().unwrap().insert(
        0,
        json!({"role": "system", "content": "customer ssn 078-05-1120"}),
    );
    let resp = r.openai(body).await;
    assert_eq!(resp.status(), 200);
    let sent = last_body(&r, "a");
    assert_eq!(sent["messages"][0]["content"][0]["text"], MASKED, "{sent}");
    assert_eq!(sent["system"][0]["text"], "customer ssn [SSN]", "{sent}");

    // Anthropic client → Anthropic provider, content blocks.
    let resp = r
        .anthropic(json!({"model": "claude", "max_tokens": 50, "messages": [
            {"role": "user", "content": [{"type": "text", "text": PROMPT}]}
        ]}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        last_body(&r, "a")["messages"][0]["content"][0]["text"],
        MASKED
    );
}

#[tokio::test]
async fn a_cached_masked_answer_says_what_was_masked() {
    let r = gateway().await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let resp = r.openai(chat("gpt", PROMPT)).await;
        assert_eq!(resp.status(), 200);
        let h = |n: &str| resp.headers()[n].to_str().unwrap().to_owned();
        seen.push((h("x-switchyard-cache"), h("x-switchyard-pii")));
    }
    let pii = "email=1, employee_id=1, credit_card=1, phone=1".to_owned();
    assert_eq!(
        seen,
        [("miss".to_owned(), pii.clone()), ("hit".to_owned(), pii)]
    );
    assert_eq!(r.hits("o"), 1);
    assert_eq!(last_body(&r, "o")["messages"][0]["content"], MASKED);
}

#[tokio::test]
async fn clean_prompts_are_forwarded_byte_for_byte() {
    let r = gateway().await;
    let raw = r#"{"model":"gpt","messages":[{"role":"user","content":"what is 2+2? call at 10:30"}],"temperature":0.70}"#;
    let resp = r
        .http
        .post(format!("{}/v1/chat/completions", r.base))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-switchyard-pii").is_none());
    let sent = r.mocks["o"].requests().last().unwrap().body.clone();
    // Only `model` is rewritten on the pass-through path.
    assert_eq!(
        std::str::from_utf8(&sent).unwrap(),
        raw.replace(r#""model":"gpt""#, r#""model":"gpt-4o""#)
    );
}

#[tokio::test]
async fn blocked_entities_are_refused_in_the_callers_format_and_never_sent() {
    let r = gateway().await;
    let secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123";
    let resp = r
        .openai(chat("gpt", &format!("use key {secret} for a@b.io")))
        .await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(secret) && !text.contains("a@b.io"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "pii_detected");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secret (1)"),
        "{v}"
    );

    let resp = r
        .anthropic(json!({"model": "claude", "max_tokens": 5, "messages": [
            {"role": "user", "content": format!("key {secret}")}
        ]}))
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(r.hits("o") + r.hits("a"), 0, "nothing reached a provider");
}

#[tokio::test]
async fn exempt_aliases_skip_masking_unless_a_fallback_is_not_exempt() {
    let r = gateway().await;
    let resp = r.openai(chat("onprem", PROMPT)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(last_body(&r, "o")["messages"][0]["content"], PROMPT);
    // Its fallback goes to a cloud alias: the prompt is masked up front.
    let resp = r.openai(chat("onprem-then-cloud", PROMPT)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(last_body(&r, "o")["messages"][0]["content"], MASKED);
}

#[tokio::test]
async fn embedding_inputs_are_masked() {
    let r = gateway().await;
    let resp = r
        .http
        .post(format!("{}/v1/embeddings", r.base))
        .bearer_auth(KEY)
        .json(&json!({"model": "embed", "input": ["mail jane.doe@example.com", "plain"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-pii"], "email=1");
    assert_eq!(
        last_body(&r, "o")["input"],
        json!(["mail [EMAIL]", "plain"])
    );
}

#[tokio::test]
async fn findings_are_counted_in_metrics_without_values() {
    let r = gateway().await;
    r.openai(chat("gpt", PROMPT)).await;
    r.openai(chat("gpt", "key sk-abcdefghijklmnopqrstuvwxyz"))
        .await;
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
    for line in [
        r#"switchyard_pii_findings_total{entity="email",action="mask"} 1"#,
        r#"switchyard_pii_findings_total{entity="secret",action="block"} 1"#,
        r#"switchyard_pii_requests_total{outcome="masked"} 1"#,
        r#"switchyard_pii_requests_total{outcome="blocked"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("jane.doe"));
}

#[test]
fn config_problems_name_the_place_and_the_fix() {
    let check = |pii: &str| {
        let yaml = format!(
            "guardrails:\n  pii: {pii}\nproviders:\n  o: {{ kind: openai, base_url: \"http://x\", api_key: \"${{K}}\" }}\n"
        );
        let env = |k: &str| (k == "K").then(|| "k".to_owned());
        match switchyard_server::config::from_yaml(&yaml, "t.yaml", &env) {
            Ok(_) => String::new(),
            Err(p) => format!("{p:?}"),
        }
    };
    assert_eq!(check("{}"), "");
    let e = check("{ entities: [emial] }");
    assert!(
        e.contains("unknown PII entity `emial`") && e.contains("did you mean `email`"),
        "{e}"
    );
    let e = check("{ entities: [email], block: [secret] }");
    assert!(e.contains("never detected"), "{e}");
    let e = check("{ action: redact }");
    assert!(e.contains("unknown PII action `redact`"), "{e}");
    let e = check("{ custom: [{ name: x, pattern: \"(\" }] }");
    assert!(e.contains("invalid pattern"), "{e}");
    let e = check("{ custom: [{ name: x }] }");
    assert!(e.contains("needs `name` and `pattern`"), "{e}");
}
