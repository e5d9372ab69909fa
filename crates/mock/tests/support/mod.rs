#![allow(clippy::unwrap_used, dead_code)]

use serde_json::Value;
use switchyard_mock::{Flavor, MockOptions, MockServer};

pub const KEY: &str = "sk-test-key-123456";

pub async fn start(flavor: Flavor) -> MockServer {
    MockServer::start(MockOptions {
        flavor,
        api_key: Some(KEY.to_string()),
        label: "lbl".to_string(),
    })
    .await
    .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Parse an SSE body into (event name, data) pairs.
pub fn sse(text: &str) -> Vec<(Option<String>, String)> {
    let norm = text.replace("\r\n", "\n");
    norm.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, data)
        })
        .collect()
}

pub fn json_events(text: &str) -> Vec<Value> {
    sse(text)
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(&d).unwrap())
        .collect()
}
