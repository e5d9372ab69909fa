//! Issue 18 §7: a model name never reaches another upstream sub-path or
//! method. Where the name goes into the URL (Gemini `models/{model}:…`,
//! Azure `deployments/{name}/…`), direct routes (`provider/model`) with a
//! name that provider cannot take are refused with a 400 in the caller's
//! shape naming the model, before any upstream call; configured models are
//! refused by the config loader (and so by `switchyard check`); and the
//! mock Gemini server refuses such paths too.
#![allow(clippy::unwrap_used)]

mod common;

use common::{rig, Rig, KEY};
use serde_json::{json, Value};
use switchyard_mock::Flavor;

const CONFIG: &str = r#"
server: { api_keys: ["${GW_KEY}"] }
providers:
  gem: { kind: gemini, base_url: "{gem}", api_key: "${K}" }
  az: { kind: azure, base_url: "{az}", api_key: "${K}" }
  oai: { kind: openai, base_url: "{oai}", api_key: "${K}" }
models:
  flash: { deployments: [{ provider: gem, model: gemini-2.5-flash }] }
"#;

async fn gateway() -> Rig {
    rig(
        &[
            ("gem", Flavor::Gemini),
            ("az", Flavor::OpenAi),
            ("oai", Flavor::OpenAi),
        ],
        CONFIG,
    )
    .await
}

fn upstream_calls(r: &Rig) -> usize {
    r.mocks.values().map(|m| m.requests().len()).sum()
}

const BAD: &[&str] = &[
    "gem/models/a/b/c",
    "gem/a/b",
    "gem/gemini-2.5-flash:streamGenerateContent:generateContent",
    "gem/x:generateContent",
    "gem/models/..",
    "az/d/chat",
    "az/d:x",
    "az/models/gpt-4o",
];

#[tokio::test]
async fn direct_names_that_leave_their_url_segment_are_refused() {
    let r = gateway().await;
    for model in BAD {
        for route in ["chat", "messages", "embeddings"] {
            let before = upstream_calls(&r);
            let (path, body) = match route {
                "chat" => (
                    "/v1/chat/completions",
                    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
                ),
                "messages" => (
                    "/v1/messages",
                    json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
                ),
                _ => ("/v1/embeddings", json!({"model": model, "input": "hi"})),
            };
            let resp = r
                .http
                .post(format!("{}{path}", r.base))
                .bearer_auth(KEY)
                .header("anthropic-version", "2023-06-01")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap();
            let case = format!("{model} on {route}: {v}");
            assert_eq!(status, 400, "{case}");
            if route == "messages" {
                assert_eq!(v["type"], "error", "{case}");
            }
            assert_eq!(v["error"]["type"], "invalid_request_error", "{case}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(&format!("`{model}`")), "{case}");
            assert_eq!(upstream_calls(&r), before, "{case}: reached an upstream");
        }
    }
}

#[tokio::test]
async fn plain_names_still_route() {
    let r = gateway().await;
    for model in [
        "gem/gemini-2.5-flash",
        "gem/models/gemini-2.5-flash",
        "oai/ft:gpt-4o-2024-08-06:acme::abc123",
        "oai/openai/gpt-4o",
    ] {
        let resp = r
            .openai(json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .await;
        assert_eq!(
            resp.status(),
            200,
            "{model}: {}",
            resp.text().await.unwrap()
        );
    }
    let last = r.mocks["gem"].requests().last().unwrap().path.clone();
    assert_eq!(last, "/v1beta/models/gemini-2.5-flash:generateContent");
    // An unknown provider prefix stays a 404.
    let resp = r
        .openai(json!({"model": "nope/x", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 404);
}

fn config_with(provider: &str, kind: &str, model: &str) -> String {
    format!(
        "providers:\n  {provider}: {{ kind: {kind}, base_url: \"http://127.0.0.1:9\", api_key: \"${{K}}\" }}\nmodels:\n  m:\n    deployments:\n      - {{ provider: {provider}, model: \"{model}\" }}\n"
    )
}

#[test]
fn configured_models_are_checked_per_dialect() {
    let lookup = |k: &str| (k == "K").then(|| "k".to_owned());
    for (p, kind, model) in [
        ("g", "gemini", "models/a/b/c"),
        ("g", "gemini", "gemini-2.5-flash:streamGenerateContent"),
        ("g", "gemini", "a b"),
        ("z", "azure", "dep/x"),
        ("z", "azure", "dep?api-version=1"),
    ] {
        let text = config_with(p, kind, model);
        let problems = switchyard_server::config::from_yaml(&text, "c.yaml", &lookup)
            .err()
            .unwrap_or_else(|| panic!("{model} accepted for {kind}"));
        let all = format!("{problems:?}");
        assert!(all.contains("models.m.deployments[0].model"), "{all}");
        assert!(all.contains("not a valid model name"), "{all}");
    }
    for (p, kind, model) in [
        ("g", "gemini", "models/gemini-2.5-flash"),
        ("z", "azure", "my-gpt4o"),
        ("o", "openai", "ft:gpt-4o-2024-08-06:acme::abc123"),
    ] {
        let text = config_with(p, kind, model);
        assert!(
            switchyard_server::config::from_yaml(&text, "c.yaml", &lookup).is_ok(),
            "{kind} {model}"
        );
    }
}

#[test]
fn switchyard_check_refuses_a_gemini_model_with_a_path() {
    let dir = std::env::temp_dir().join(format!("switchyard-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("c.yaml");
    std::fs::write(&f, config_with("g", "gemini", "models/a/b/c")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .env_clear()
        .env("K", "k")
        .arg("check")
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("models.m.deployments[0].model") && err.contains("`models/a/b/c`"),
        "{err}"
    );
}

/// The mock is as strict as the real API: a model that is not one plain
/// path segment is an unknown resource.
#[tokio::test]
async fn the_mock_gemini_server_refuses_other_sub_paths() {
    let r = gateway().await;
    let base = r.mocks["gem"].base_url();
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    for path in [
        "models/a/b/c:generateContent",
        "models/gemini-2.5-flash:streamGenerateContent:generateContent",
        "models/a%2Fb:generateContent",
        "models/a%20b:generateContent",
        "models/..:generateContent",
    ] {
        let resp = r
            .http
            .post(format!("{base}/{path}"))
            .header("x-goog-api-key", "k")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    let ok = r
        .http
        .post(format!("{base}/models/gemini-2.5-flash:generateContent"))
        .header("x-goog-api-key", "k")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
