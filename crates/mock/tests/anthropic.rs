#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{client, sse, start, KEY};
use switchyard_mock::{expected_text, expected_tool_result_text, Fault, Flavor};

async fn post(base: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn hello() -> Value {
    json!({"model": "claude-x", "max_tokens": 100, "system": "be nice",
           "messages": [{"role": "user", "content": "hello there my friend"}]})
}

fn tools() -> Value {
    json!([
        {"name": "get_weather", "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "get_time", "input_schema": {"type": "object",
            "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}
    ])
}

#[tokio::test]
async fn message_success_shape() {
    let s = start(Flavor::Anthropic).await;
    assert!(!s.base_url().ends_with("/v1"));
    let r = post(&s.base_url(), "/v1/messages", hello()).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(
        v["content"][0]["text"],
        expected_text("lbl", "hello there my friend")
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);

    let mut b = hello();
    b["stop_sequences"] = json!(["my"]);
    let v: Value = post(&s.base_url(), "/v1/messages", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "my");
    let mut b = hello();
    b["max_tokens"] = json!(2);
    let v: Value = post(&s.base_url(), "/v1/messages", b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["content"][0]["text"], "[lbl] Yo");

    let v: Value = post(
        &s.base_url(),
        "/v1/messages/count_tokens",
        json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0);
    let v: Value = client()
        .get(format!("{}/v1/models", s.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["type"], "model");
}

#[tokio::test]
async fn streaming_sequence_and_tools() {
    let s = start(Flavor::Anthropic).await;
    let mut b = hello();
    b["stream"] = json!(true);
    let r = post(&s.base_url(), "/v1/messages", b).await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let ev = sse(&r.text().await.unwrap());
    let names: Vec<&str> = ev.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    for (e, d) in &ev {
        let v: Value = serde_json::from_str(d).unwrap();
        assert_eq!(
            v["type"],
            e.as_deref().unwrap(),
            "event name matches data type"
        );
    }
    let text: String = ev
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["delta"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, expected_text("lbl", "hello there my friend"));
    let md: Value = serde_json::from_str(&ev[ev.len() - 2].1).unwrap();
    assert_eq!(md["delta"]["stop_reason"], "end_turn");

    // Tool use (non-streaming, then streaming with input_json_delta).
    let b = json!({"model": "c", "max_tokens": 50, "tools": tools(),
                   "messages": [{"role": "user", "content": "weather?"}]});
    let v: Value = post(&s.base_url(), "/v1/messages", b.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert!(v["content"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("toolu_"));
    assert_eq!(v["content"][0]["input"], json!({"city": "demo"}));
    let mut sb = b.clone();
    sb["stream"] = json!(true);
    let ev = sse(&post(&s.base_url(), "/v1/messages", sb)
        .await
        .text()
        .await
        .unwrap());
    let frags: Vec<String> = ev
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            let v: Value = serde_json::from_str(d).unwrap();
            assert_eq!(v["delta"]["type"], "input_json_delta");
            v["delta"]["partial_json"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(frags.len() >= 2);
    assert_eq!(
        serde_json::from_str::<Value>(&frags.concat()).unwrap(),
        json!({"city": "demo"})
    );

    let mut pb = b.clone();
    pb["messages"][0]["content"] = json!("in parallel please");
    let v: Value = post(&s.base_url(), "/v1/messages", pb.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"].as_array().unwrap().len(), 2);
    pb["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
    let v: Value = post(&s.base_url(), "/v1/messages", pb)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"].as_array().unwrap().len(), 1);

    let mut fb = b.clone();
    fb["tool_choice"] = json!({"type": "tool", "name": "get_time"});
    let v: Value = post(&s.base_url(), "/v1/messages", fb)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["name"], "get_time");

    let rb = json!({"model": "c", "max_tokens": 50, "tools": tools(), "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}]});
    let v: Value = post(&s.base_url(), "/v1/messages", rb)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["content"][0]["text"],
        expected_tool_result_text("lbl", "get_weather", "sunny")
    );

    let ib = json!({"model": "c", "max_tokens": 50, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "text", "text": "what"}]}]});
    let v: Value = post(&s.base_url(), "/v1/messages", ib)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "[lbl] You said: what (1 image)");

    let jb = json!({"model": "c", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}],
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object",
            "properties": {"ok": {"type": "boolean"}}}}}});
    let v: Value = post(&s.base_url(), "/v1/messages", jb)
        .await
        .json()
        .await
        .unwrap();
    let t = v["content"][0]["text"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(t).unwrap(),
        json!({"ok": true})
    );
}

#[tokio::test]
async fn strict_validation_and_auth() {
    let s = start(Flavor::Anthropic).await;
    let base = s.base_url();
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"max_tokens": 5, "messages": user}),
            "model: Field required",
        ),
        (
            json!({"model": "c", "messages": user}),
            "max_tokens: Field required",
        ),
        (
            json!({"model": "c", "max_tokens": 5}),
            "messages: Field required",
        ),
        (
            json!({"model": "c", "max_tokens": "5", "messages": user}),
            "max_tokens: Input should be a valid integer",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": user, "foo": 1}),
            "foo: Extra inputs are not permitted",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": user, "temperature": 1.5}),
            "temperature: Input should be less than or equal to 1",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": ""}]}),
            "non-empty content",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x", "name": "bob"}]}),
            "messages.0.name: Extra inputs are not permitted",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
            "Input tag 'video'",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            "messages.0.content.0.text.text: Field required",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "AAAA"}}]}]}),
            "media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]}]}),
            "data: Field required",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": user, "tools": [{"name": "t"}]}),
            "tools.0.custom.input_schema: Field required",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": user, "tools": [{"name": "t", "input_schema": {"type": "string"}}]}),
            "input_schema.type: Input should be 'object'",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_a", "name": "t", "input": {}}]},
            {"role": "user", "content": "y"}]}),
            "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_a",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_a", "name": "t", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_b", "content": "r"},
                                         {"type": "tool_result", "tool_use_id": "toolu_a", "content": "r"}]}]}),
            "unexpected `tool_use_id` found in `tool_result` blocks: toolu_b",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "tool_use", "id": "x", "name": "t", "input": {}}]}]}),
            "only allowed in `assistant` messages",
        ),
        (
            json!({"model": "c", "max_tokens": 5, "messages": user, "tool_choice": {"type": "any"}}),
            "tool_choice",
        ),
    ];
    for (body, msg) in cases {
        let r = post(&base, "/v1/messages", body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let hdr = r.headers()["request-id"].to_str().unwrap().to_string();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["request_id"], hdr);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(msg),
            "{body}: {}",
            v["error"]["message"]
        );
    }
    let r = post(
        &base,
        "/v1/messages",
        json!({"model": "missing-c", "max_tokens": 5, "messages": user}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "not_found_error");
    assert_eq!(post(&base, "/v1/nope", json!({})).await.status(), 404);

    let url = format!("{base}/v1/messages");
    let r = client()
        .post(&url)
        .header("anthropic-version", "2023-06-01")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    let r = client()
        .post(&url)
        .header("x-api-key", "wrong")
        .header("anthropic-version", "2023-06-01")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .post(&url)
        .header("x-api-key", KEY)
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));
    let r = client()
        .post(&url)
        .bearer_auth(KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "Bearer auth is not the Anthropic scheme");
}

#[tokio::test]
async fn faults() {
    let s = start(Flavor::Anthropic).await;
    let base = s.base_url();
    s.push_fault(Fault::Overloaded);
    let r = post(&base, "/v1/messages", hello()).await;
    assert_eq!(r.status(), 529);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");

    s.push_fault(Fault::RateLimited {
        retry_after_secs: 3,
    });
    let r = post(&base, "/v1/messages", hello()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    assert!(r
        .headers()
        .contains_key("anthropic-ratelimit-requests-reset"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");

    s.push_fault(Fault::Status(500));
    let v: Value = post(&base, "/v1/messages", hello())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["error"]["type"], "api_error");

    let mut sb = hello();
    sb["stream"] = json!(true);
    s.push_fault(Fault::StreamError { after_chunks: 3 });
    let ev = sse(&post(&base, "/v1/messages", sb.clone())
        .await
        .text()
        .await
        .unwrap());
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[3].0.as_deref(), Some("error"));
    let e: Value = serde_json::from_str(&ev[3].1).unwrap();
    assert_eq!(e["error"]["type"], "overloaded_error");

    s.push_fault(Fault::DropMidStream { after_chunks: 3 });
    let r = post(&base, "/v1/messages", sb.clone()).await;
    assert!(r.text().await.is_err());

    s.push_fault(Fault::MalformedBody);
    let text = post(&base, "/v1/messages", hello())
        .await
        .text()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());

    s.push_fault(Fault::Hang);
    let r = client()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&hello())
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(s.requests().len(), 7);
}
