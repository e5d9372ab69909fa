#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use support::{client, json_events, sse, start, KEY};
use switchyard_mock::{expected_text, expected_tool_result_text, Fault, Flavor};

async fn post(base: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn hello() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "hello there my friend"}]})
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city", "unit"]}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}
    ])
}

#[tokio::test]
async fn chat_success_shape_and_recording() {
    let s = start(Flavor::OpenAi).await;
    let base = s.base_url();
    assert!(base.ends_with("/v1"));
    let r = post(&base, "/chat/completions", hello()).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    assert!(r.headers().contains_key("openai-processing-ms"));
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["system_fingerprint"].is_string());
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    let c = &v["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    assert_eq!(
        c["message"]["content"],
        expected_text("lbl", "hello there my friend")
    );
    assert_eq!(c["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );

    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(
        reqs[0].header("Authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(reqs[0].json.as_ref().unwrap()["model"], "gpt-4o-mini");
    s.clear_requests();
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn chat_options_n_stop_max_tokens_json_images() {
    let s = start(Flavor::OpenAi).await;
    let base = s.base_url();
    let mut b = hello();
    b["n"] = json!(2);
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert_eq!(v["choices"][1]["index"], 1);

    let mut b = hello();
    b["stop"] = json!(["my"]);
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "[lbl] You said: hello there "
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let mut b = hello();
    b["max_completion_tokens"] = json!(2);
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "[lbl] Yo");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);

    let mut b = hello();
    b["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}}});
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        json!({"a": 1, "b": "demo"})
    );

    let b = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "[lbl] You said: look (1 image)"
    );
}

#[tokio::test]
async fn chat_streaming_sequence() {
    let s = start(Flavor::OpenAi).await;
    let mut b = hello();
    b["stream"] = json!(true);
    b["stream_options"] = json!({"include_usage": true});
    let r = post(&s.base_url(), "/chat/completions", b).await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"));
    let ev = json_events(&text);
    assert_eq!(ev[0]["object"], "chat.completion.chunk");
    assert_eq!(ev[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = ev
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, expected_text("lbl", "hello there my friend"));
    assert!(ev.len() >= 5, "several content chunks");
    let fin = &ev[ev.len() - 2];
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert!(fin["usage"].is_null());
    let last = ev.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // Without include_usage: no usage key at all.
    let mut b = hello();
    b["stream"] = json!(true);
    let text = post(&s.base_url(), "/chat/completions", b)
        .await
        .text()
        .await
        .unwrap();
    let ev = json_events(&text);
    assert!(ev.iter().all(|e| e.get("usage").is_none()));
    assert_eq!(ev.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn tool_calls_and_results() {
    let s = start(Flavor::OpenAi).await;
    let base = s.base_url();
    let b = json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}], "tools": tools()});
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert!(c["message"]["content"].is_null());
    let tc = &c["message"]["tool_calls"][0];
    assert!(tc["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(tc["type"], "function");
    assert_eq!(tc["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(tc["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "demo", "unit": "c"}));

    // Forced tool, parallel.
    let b = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools(),
                   "tool_choice": {"type": "function", "function": {"name": "get_time"}}});
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );
    let b = json!({"model": "m", "messages": [{"role": "user", "content": "do it in parallel"}], "tools": tools()});
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let b = json!({"model": "m", "messages": [{"role": "user", "content": "parallel"}], "tools": tools(),
                   "parallel_tool_calls": false});
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let b = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools(), "tool_choice": "none"});
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    assert!(v["choices"][0]["message"]["content"].is_string());

    // Tool result.
    let b = json!({"model": "m", "tools": tools(), "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]});
    let v: Value = post(&base, "/chat/completions", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        expected_tool_result_text("lbl", "get_weather", "sunny")
    );

    // Streaming tool call deltas.
    let b = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "weather"}], "tools": tools()});
    let text = post(&base, "/chat/completions", b)
        .await
        .text()
        .await
        .unwrap();
    let ev = json_events(&text);
    let deltas: Vec<&Value> = ev
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    assert!(deltas[0]["id"].is_string());
    assert!(
        deltas.len() >= 3,
        "header + at least two argument fragments"
    );
    let args: String = deltas
        .iter()
        .filter_map(|d| d["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "demo", "unit": "c"})
    );
    assert_eq!(
        ev.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn strict_validation() {
    let s = start(Flavor::OpenAi).await;
    let base = s.base_url();
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(Value, &str, Option<&str>)> = vec![
        (
            json!({"messages": user}),
            "Missing required parameter: 'model'",
            Some("model"),
        ),
        (
            json!({"model": "m"}),
            "Missing required parameter: 'messages'",
            Some("messages"),
        ),
        (
            json!({"model": "m", "messages": []}),
            "empty array",
            Some("messages"),
        ),
        (
            json!({"model": 5, "messages": user}),
            "Invalid type for 'model'",
            Some("model"),
        ),
        (
            json!({"model": "m", "messages": user, "foo": 1}),
            "Unrecognized request argument supplied: foo",
            None,
        ),
        (
            json!({"model": "m", "messages": [{"role": "bot", "content": "x"}]}),
            "Invalid value: 'bot'",
            Some("messages[0].role"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x", "extra": 1}]}),
            "Additional properties are not allowed",
            Some("messages[0].extra"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "video", "x": 1}]}]}),
            "Invalid value: 'video'",
            Some("messages[0].content[0].type"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            "Missing required parameter: 'messages[0].content[0].text'",
            None,
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
            "image_url.url",
            None,
        ),
        (
            json!({"model": "m", "messages": user, "temperature": 3}),
            "Expected a value <= 2, but got 3",
            Some("temperature"),
        ),
        (
            json!({"model": "m", "messages": user, "temperature": "hot"}),
            "expected a decimal",
            Some("temperature"),
        ),
        (
            json!({"model": "m", "messages": user, "n": 0}),
            "Expected a value >= 1",
            Some("n"),
        ),
        (
            json!({"model": "m", "messages": user, "max_tokens": 5, "max_completion_tokens": 5}),
            "at the same time is not supported",
            Some("max_tokens"),
        ),
        (
            json!({"model": "m", "messages": user, "stream_options": {"include_usage": true}}),
            "only allowed when 'stream' is enabled",
            Some("stream_options"),
        ),
        (
            json!({"model": "m", "messages": user, "tools": [{"type": "function", "function": {}}]}),
            "Missing required parameter: 'tools[0].function.name'",
            None,
        ),
        (
            json!({"model": "m", "messages": user, "tools": [{"type": "retrieval"}]}),
            "Invalid value: 'retrieval'",
            Some("tools[0].type"),
        ),
        (
            json!({"model": "m", "messages": user, "tool_choice": "auto"}),
            "only allowed when 'tools' are specified",
            Some("tool_choice"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "user", "content": "y"}]}),
            "did not have response messages: call_a",
            Some("messages.[2].role"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "call_zz", "content": "r"}]}),
            "must be a response to a preceeding message with 'tool_calls'",
            Some("messages.[1].role"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}]}]}),
            "expected a string, but got an object",
            None,
        ),
    ];
    for (body, msg, param) in cases {
        let r = post(&base, "/chat/completions", body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        let e = &v["error"];
        assert_eq!(e["type"], "invalid_request_error", "{body}");
        assert!(
            e["message"].as_str().unwrap().contains(msg),
            "{body}: {}",
            e["message"]
        );
        assert!(e.get("code").is_some() && e.get("param").is_some());
        if let Some(p) = param {
            assert_eq!(e["param"], p, "{body}");
        }
    }
    // Invalid JSON.
    let r = client()
        .post(format!("{base}/chat/completions"))
        .bearer_auth(KEY)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Model not found, unknown route.
    let r = post(
        &base,
        "/chat/completions",
        json!({"model": "missing-x", "messages": user}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    let r = post(&base, "/nope", json!({})).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid URL"));
}

#[tokio::test]
async fn auth_failures() {
    let s = start(Flavor::OpenAi).await;
    let url = format!("{}/chat/completions", s.base_url());
    let r = client().post(&url).json(&hello()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("didn't provide an API key"));
    let r = client()
        .post(&url)
        .bearer_auth("sk-wrong-key-99999")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert!(!v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sk-wrong-key-99999"));
}

#[tokio::test]
async fn embeddings_and_models() {
    let s = start(Flavor::OpenAi).await;
    let base = s.base_url();
    let v: Value = post(
        &base,
        "/embeddings",
        json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
    let floats: Vec<f32> = v["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(floats, switchyard_mock::embedding_vector("a", 8));

    let v: Value = post(
        &base,
        "/embeddings",
        json!({"model": "e", "input": "a", "encoding_format": "base64", "dimensions": 4}),
    )
    .await
    .json()
    .await
    .unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = raw
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, switchyard_mock::embedding_vector("a", 4));

    let r = post(&base, "/embeddings", json!({"model": "e", "input": ""})).await;
    assert_eq!(r.status(), 400);
    let r = post(
        &base,
        "/embeddings",
        json!({"model": "e", "input": "x", "encoding_format": "hex"}),
    )
    .await;
    assert_eq!(r.status(), 400);

    let v: Value = client()
        .get(format!("{base}/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["object"], "model");
}

#[tokio::test]
async fn faults() {
    let s = start(Flavor::OpenAi).await;
    let base = s.base_url();

    s.push_fault(Fault::Status(500));
    let r = post(&base, "/chat/completions", hello()).await;
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "server_error");
    // Queue is consumed: next request is fine.
    assert_eq!(
        post(&base, "/chat/completions", hello()).await.status(),
        200
    );

    s.push_fault(Fault::RateLimited {
        retry_after_secs: 7,
    });
    let r = post(&base, "/chat/completions", hello()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(r.headers()["retry-after-ms"], "7000");
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    s.push_fault(Fault::Overloaded);
    assert_eq!(
        post(&base, "/chat/completions", hello()).await.status(),
        503
    );

    s.push_fault(Fault::Hang);
    let r = client()
        .post(format!("{base}/chat/completions"))
        .bearer_auth(KEY)
        .json(&hello())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());

    s.push_fault(Fault::SlowFirstByte(Duration::from_millis(200)));
    let t = Instant::now();
    assert_eq!(
        post(&base, "/chat/completions", hello()).await.status(),
        200
    );
    assert!(t.elapsed() >= Duration::from_millis(200));

    let mut sb = hello();
    sb["stream"] = json!(true);

    s.push_fault(Fault::DropMidStream { after_chunks: 2 });
    let r = post(&base, "/chat/completions", sb.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.is_err(), "connection must abort");

    s.push_fault(Fault::DropMidStream { after_chunks: 2 });
    let r = post(&base, "/chat/completions", hello()).await;
    assert!(r.text().await.is_err(), "non-streaming body must abort");

    s.push_fault(Fault::StreamError { after_chunks: 2 });
    let text = post(&base, "/chat/completions", sb.clone())
        .await
        .text()
        .await
        .unwrap();
    let ev = sse(&text);
    assert_eq!(ev.len(), 3);
    let last: Value = serde_json::from_str(&ev[2].1).unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(!text.contains("[DONE]"));

    s.push_fault(Fault::MalformedBody);
    let text = post(&base, "/chat/completions", hello())
        .await
        .text()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
    s.push_fault(Fault::MalformedBody);
    let text = post(&base, "/chat/completions", sb.clone())
        .await
        .text()
        .await
        .unwrap();
    assert!(sse(&text)
        .iter()
        .any(|(_, d)| d != "[DONE]" && serde_json::from_str::<Value>(d).is_err()));

    s.push_fault(Fault::ChunkDelay(Duration::from_millis(30)));
    let t = Instant::now();
    let text = post(&base, "/chat/completions", sb.clone())
        .await
        .text()
        .await
        .unwrap();
    let n = sse(&text).len() as u32;
    assert!(t.elapsed() >= Duration::from_millis(30) * (n - 1));

    s.set_sticky_fault(Some(Fault::Status(502)));
    assert_eq!(
        post(&base, "/chat/completions", hello()).await.status(),
        502
    );
    assert_eq!(
        post(&base, "/chat/completions", hello()).await.status(),
        502
    );
    s.set_sticky_fault(None);
    assert_eq!(
        post(&base, "/chat/completions", hello()).await.status(),
        200
    );
    s.shutdown().await;
}
