//! Test harness: a real gateway on 127.0.0.1:0 in front of real mock
//! providers (each on its own port), configured through the YAML path.
#![allow(dead_code, clippy::unwrap_used, clippy::type_complexity)]

pub mod db;

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use switchyard_core::sse::{SseDecoder, SseFrame};
use switchyard_mock::{Flavor, MockOptions, MockServer};
use switchyard_server::state::AppState;
use switchyard_server::usage::UsageSink;
use tokio::sync::oneshot;

pub const KEY: &str = "sk-gw-test";

pub struct Gateway {
    pub base: String,
    pub openai: MockServer,
    pub anthropic: MockServer,
    pub gemini: MockServer,
    pub state: Arc<AppState>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Aliases: `gpt` → openai mock, `claude` → anthropic mock, `gem` → gemini
/// mock, `embed` → openai embeddings, `gem-embed` → gemini embeddings.
/// `extra` is appended to the providers' YAML (e.g. timeouts).
pub async fn start() -> Gateway {
    start_with("").await
}

pub async fn start_with(provider_extra: &str) -> Gateway {
    let openai = MockServer::start(MockOptions {
        flavor: Flavor::OpenAi,
        api_key: Some("up-oai".into()),
        label: "oai".into(),
    })
    .await
    .unwrap();
    let anthropic = MockServer::start(MockOptions {
        flavor: Flavor::Anthropic,
        api_key: Some("up-ant".into()),
        label: "ant".into(),
    })
    .await
    .unwrap();
    let gemini = MockServer::start(MockOptions {
        flavor: Flavor::Gemini,
        api_key: Some("up-gem".into()),
        label: "gem".into(),
    })
    .await
    .unwrap();
    let extra = if provider_extra.is_empty() {
        String::new()
    } else {
        format!(", {provider_extra}")
    };
    let yaml = format!(
        r#"
server:
  api_keys: ["${{GW_KEY}}"]
  max_body_size: 1MiB
reliability:
  retries: 0          # error-mapping tests see each upstream answer as is
governance: {{ enabled: false }}
providers:
  oai: {{ kind: openai, base_url: "{}", api_key: "${{OAI}}"{extra} }}
  ant: {{ kind: anthropic, base_url: "{}", api_key: "${{ANT}}"{extra} }}
  gemx: {{ kind: gemini, base_url: "{}", api_key: "${{GEM}}"{extra} }}
models:
  gpt: {{ deployments: [{{ provider: oai, model: gpt-4o }}] }}
  claude: {{ deployments: [{{ provider: ant, model: claude-sonnet-4-5 }}] }}
  gem: {{ deployments: [{{ provider: gemx, model: gemini-2.5-flash }}] }}
  embed: {{ deployments: [{{ provider: oai, model: text-embedding-3-small }}] }}
  gem-embed: {{ deployments: [{{ provider: gemx, model: gemini-embedding-001 }}] }}
"#,
        openai.base_url(),
        anthropic.base_url(),
        gemini.base_url()
    );
    let env: HashMap<&str, &str> = [
        ("GW_KEY", KEY),
        ("OAI", "up-oai"),
        ("ANT", "up-ant"),
        ("GEM", "up-gem"),
    ]
    .into_iter()
    .collect();
    let lookup = move |k: &str| env.get(k).map(|v| v.to_string());
    let cfg = switchyard_server::config::from_yaml(&yaml, "test.yaml", &lookup)
        .unwrap_or_else(|p| panic!("{p:?}"));
    let (usage, writer) = UsageSink::new();
    tokio::spawn(writer);
    let state = AppState::new(cfg, usage).unwrap();
    state
        .usage
        .totals()
        .keep_recent(switchyard_server::usage::RECENT);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let st = state.clone();
    let task = tokio::spawn(async move {
        switchyard_server::serve(listener, st, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Gateway {
        base,
        openai,
        anthropic,
        gemini,
        state,
        http: reqwest::Client::new(),
        stop: Some(tx),
        task: Some(task),
    }
}

impl Gateway {
    pub fn mock(&self, alias: &str) -> &MockServer {
        match alias {
            "gpt" | "embed" => &self.openai,
            "claude" => &self.anthropic,
            _ => &self.gemini,
        }
    }

    /// The reply label of the mock behind an alias.
    pub fn label(alias: &str) -> &'static str {
        match alias {
            "gpt" | "embed" => "oai",
            "claude" => "ant",
            _ => "gem",
        }
    }

    pub async fn openai(&self, body: Value) -> reqwest::Response {
        post_openai(&self.http, &self.base, KEY, &body).await
    }

    pub async fn anthropic(&self, body: Value) -> reqwest::Response {
        post_anthropic(&self.http, &self.base, KEY, &body).await
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Read a whole SSE response into frames.
pub async fn frames(resp: reqwest::Response) -> Vec<SseFrame> {
    let bytes = resp.bytes().await.unwrap();
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    d.feed(&bytes, &mut out).unwrap();
    out
}

/// JSON payloads of SSE frames, skipping `[DONE]`.
pub fn payloads(frames: &[SseFrame]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f.data != "[DONE]")
        .map(|f| {
            serde_json::from_str(&f.data).unwrap_or_else(|e| panic!("bad frame {:?}: {e}", f.data))
        })
        .collect()
}

/// Assemble an OpenAI chunk stream: (content, tool calls [(id, name, args)], finish_reason, usage).
pub fn assemble_openai(
    frames: &[SseFrame],
) -> (
    String,
    Vec<(String, String, String)>,
    Option<String>,
    Option<Value>,
) {
    let mut text = String::new();
    let mut tools: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    let mut usage = None;
    for p in payloads(frames) {
        assert_eq!(p["object"], "chat.completion.chunk", "{p}");
        if let Some(u) = p.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        for c in p["choices"].as_array().unwrap() {
            let d = &c["delta"];
            if let Some(t) = d["content"].as_str() {
                text.push_str(t);
            }
            if let Some(tcs) = d["tool_calls"].as_array() {
                for tc in tcs {
                    let i = tc["index"].as_u64().unwrap() as usize;
                    if tools.len() <= i {
                        tools.resize(i + 1, Default::default());
                    }
                    if let Some(id) = tc["id"].as_str() {
                        tools[i].0 = id.to_owned();
                    }
                    if let Some(n) = tc["function"]["name"].as_str() {
                        tools[i].1 = n.to_owned();
                    }
                    if let Some(a) = tc["function"]["arguments"].as_str() {
                        tools[i].2.push_str(a);
                    }
                }
            }
            if let Some(f) = c["finish_reason"].as_str() {
                finish = Some(f.to_owned());
            }
        }
    }
    (text, tools, finish, usage)
}

/// Assemble an Anthropic event stream into (event names, text, tool uses [(id, name, input json)], stop_reason, final usage).
pub fn assemble_anthropic(
    frames: &[SseFrame],
) -> (
    Vec<String>,
    String,
    Vec<(String, String, String)>,
    Option<String>,
    Value,
) {
    let mut names = Vec::new();
    let mut text = String::new();
    let mut tools: Vec<(String, String, String)> = Vec::new();
    let mut stop = None;
    let mut usage = Value::Null;
    let mut kinds: HashMap<u64, String> = HashMap::new();
    for f in frames {
        let ev = f.event.clone().unwrap_or_default();
        let p: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(p["type"], ev, "event name matches payload type");
        names.push(ev.clone());
        match ev.as_str() {
            "message_start" => usage = p["message"]["usage"].clone(),
            "content_block_start" => {
                let b = &p["content_block"];
                kinds.insert(
                    p["index"].as_u64().unwrap(),
                    b["type"].as_str().unwrap().to_owned(),
                );
                if b["type"] == "tool_use" {
                    tools.push((
                        b["id"].as_str().unwrap().into(),
                        b["name"].as_str().unwrap().into(),
                        String::new(),
                    ));
                }
            }
            "content_block_delta" => {
                let d = &p["delta"];
                match d["type"].as_str().unwrap() {
                    "text_delta" => text.push_str(d["text"].as_str().unwrap()),
                    "input_json_delta" => tools
                        .last_mut()
                        .unwrap()
                        .2
                        .push_str(d["partial_json"].as_str().unwrap()),
                    _ => {}
                }
            }
            "message_delta" => {
                stop = p["delta"]["stop_reason"].as_str().map(str::to_owned);
                for (k, v) in p["usage"].as_object().unwrap() {
                    usage[k] = v.clone();
                }
            }
            _ => {}
        }
    }
    (names, text, tools, stop, usage)
}

impl Gateway {
    /// Wait until at least `n` usage records were written; return them.
    pub async fn usage_records(&self, n: usize) -> Vec<switchyard_server::usage::UsageRecord> {
        for _ in 0..200 {
            let r = self.state.usage.totals().recent();
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} usage records, got {}",
            self.state.usage.totals().recent().len()
        );
    }
}

/// A gateway over named mock providers with a caller-written YAML config.
/// In the YAML, `{name}` is replaced by that mock's base URL; every provider
/// key is `${K}` (the mocks accept any key unless told otherwise).
pub struct Rig {
    pub base: String,
    pub mocks: HashMap<String, MockServer>,
    pub state: Arc<AppState>,
    pub http: reqwest::Client,
    _health: switchyard_server::health::HealthTasks,
    stop: Option<oneshot::Sender<()>>,
}

pub async fn rig(mocks: &[(&str, Flavor)], yaml: &str) -> Rig {
    rig_with_keys(mocks, yaml, &[]).await
}

/// Like [`rig`], with mocks that demand a specific upstream key, and extra env vars.
pub async fn rig_with_keys(mocks: &[(&str, Flavor)], yaml: &str, env: &[(&str, &str)]) -> Rig {
    let mut servers = HashMap::new();
    let mut text = yaml.to_owned();
    if !text.contains("governance:") {
        text.push_str("\ngovernance: { enabled: false }\n");
    }
    for (name, flavor) in mocks {
        let required = env
            .iter()
            .find(|(k, _)| *k == format!("REQUIRE_{name}"))
            .map(|(_, v)| v.to_string());
        let m = MockServer::start(MockOptions {
            flavor: *flavor,
            api_key: required,
            label: (*name).to_owned(),
        })
        .await
        .unwrap();
        text = text.replace(&format!("{{{name}}}"), &m.base_url());
        servers.insert((*name).to_owned(), m);
    }
    let mut vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.insert("K".into(), "k".into());
    vars.insert("GW_KEY".into(), KEY.into());
    let lookup = move |k: &str| vars.get(k).cloned();
    let cfg = switchyard_server::config::from_yaml(&text, "rig.yaml", &lookup)
        .unwrap_or_else(|p| panic!("{text}\n{p:#?}"));
    let (usage, writer) = UsageSink::new();
    tokio::spawn(writer);
    let state = AppState::new(cfg, usage).unwrap();
    state
        .usage
        .totals()
        .keep_recent(switchyard_server::usage::RECENT);
    let health = switchyard_server::health::spawn(&state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let st = state.clone();
    tokio::spawn(async move {
        let _ = switchyard_server::serve(listener, st, async {
            let _ = rx.await;
        })
        .await;
    });
    Rig {
        base,
        mocks: servers,
        state,
        http: reqwest::Client::new(),
        _health: health,
        stop: Some(tx),
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Rig {
    pub fn mock(&self, name: &str) -> &MockServer {
        &self.mocks[name]
    }

    /// POST chat requests to the mock that answered them.
    pub fn hits(&self, name: &str) -> usize {
        self.mocks[name]
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    }

    pub async fn openai(&self, body: Value) -> reqwest::Response {
        post_openai(&self.http, &self.base, KEY, &body).await
    }

    pub async fn anthropic(&self, body: Value) -> reqwest::Response {
        post_anthropic(&self.http, &self.base, KEY, &body).await
    }
}

pub fn chat(model: &str, text: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// POST an OpenAI chat request with a gateway key.
pub async fn post_openai(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// POST an Anthropic messages request with a gateway key (as `x-api-key`).
pub async fn post_anthropic(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(format!("{base}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

// ------------------------------------------------------------ governance rig

/// The master key of [`gov_rig`] gateways.
pub const MASTER: &str = "sk-master-test";

/// A gateway with governance enabled (database, caches, usage writer,
/// audit log) in front of named mock providers. Like [`rig`], `{name}` in
/// the YAML is replaced by that mock's base URL and provider keys are `${K}`;
/// the static gateway key is [`KEY`] and the master key [`MASTER`].
pub struct GovRig {
    pub base: String,
    pub mocks: HashMap<String, MockServer>,
    /// `None` after [`GovRig::shutdown`] began (the state holds the usage
    /// sender, which must be dropped for the writer to drain).
    state: Option<Arc<AppState>>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub async fn gov_rig(
    mocks: &[(&str, Flavor)],
    yaml: &str,
    database_url: &str,
    data_dir: &std::path::Path,
) -> GovRig {
    let mut servers = HashMap::new();
    let mut text = yaml.to_owned();
    if !text.contains("governance:") {
        text.push_str(&format!(
            "\ngovernance:\n  database_url: \"{database_url}\"\n  data_dir: \"{}\"\n  master_key: \"${{MASTER}}\"\n",
            data_dir.display()
        ));
    }
    for (name, flavor) in mocks {
        let m = MockServer::start(MockOptions {
            flavor: *flavor,
            api_key: None,
            label: (*name).to_owned(),
        })
        .await
        .unwrap();
        text = text.replace(&format!("{{{name}}}"), &m.base_url());
        servers.insert((*name).to_owned(), m);
    }
    let vars: HashMap<String, String> = [("K", "k"), ("GW_KEY", KEY), ("MASTER", MASTER)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let lookup = move |k: &str| vars.get(k).cloned();
    let cfg = switchyard_server::config::from_yaml(&text, "gov.yaml", &lookup)
        .unwrap_or_else(|p| panic!("{text}\n{p:#?}"));
    let running = switchyard_server::build(cfg).await.unwrap();
    let state = running.state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = running
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    GovRig {
        base,
        mocks: servers,
        state: Some(state),
        http: reqwest::Client::new(),
        stop: Some(tx),
        task: Some(task),
    }
}

impl GovRig {
    pub fn state(&self) -> &Arc<AppState> {
        self.state.as_ref().unwrap()
    }

    /// Stop serving and drain (usage and audit flushed).
    pub async fn shutdown(mut self) {
        self.state = None;
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// A chat completion with `key`.
    pub async fn chat_with(&self, key: &str, model: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(key)
            .json(&chat(model, "hello"))
            .send()
            .await
            .unwrap()
    }
}

impl Drop for GovRig {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
