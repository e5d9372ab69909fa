#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use support::{client, json_events, start, KEY};
use switchyard_mock::{expected_text, expected_tool_result_text, Fault, Flavor};

async fn post(base: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .header("x-goog-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn hello() -> Value {
    json!({"systemInstruction": {"parts": [{"text": "be nice"}]},
           "contents": [{"role": "user", "parts": [{"text": "hello there my friend"}]}]})
}

const GEN: &str = "/models/gemini-2.5-flash:generateContent";
const STREAM: &str = "/models/gemini-2.5-flash:streamGenerateContent";

#[tokio::test]
async fn generate_and_stream() {
    let s = start(Flavor::Gemini).await;
    let base = s.base_url();
    assert!(base.ends_with("/v1beta"));
    let v: Value = post(&base, GEN, hello()).await.json().await.unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(
        c["content"]["parts"][0]["text"],
        expected_text("lbl", "hello there my friend")
    );
    assert_eq!(c["finishReason"], "STOP");
    let u = &v["usageMetadata"];
    assert_eq!(
        u["totalTokenCount"].as_u64().unwrap(),
        u["promptTokenCount"].as_u64().unwrap() + u["candidatesTokenCount"].as_u64().unwrap()
    );

    // ?key= works too; snake_case accepted; candidateCount and MAX_TOKENS.
    let body = json!({"contents": [{"parts": [{"text": "hello there my friend"}]}],
                      "generation_config": {"candidate_count": 2, "maxOutputTokens": 2}});
    let v: Value = client()
        .post(format!("{base}{GEN}?key={KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["candidates"].as_array().unwrap().len(), 2);
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");

    // SSE stream.
    let r = post(&base, &format!("{STREAM}?alt=sse"), hello()).await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    assert!(text.contains("\r\n\r\n"));
    let ev = json_events(&text);
    assert!(ev.len() >= 3);
    let joined: String = ev
        .iter()
        .map(|e| {
            e["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(joined, expected_text("lbl", "hello there my friend"));
    assert!(ev[0]["candidates"][0].get("finishReason").is_none());
    let last = ev.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(
        last["usageMetadata"]["candidatesTokenCount"]
            .as_u64()
            .unwrap()
            > 0
    );

    // JSON-array stream without alt=sse.
    let text = post(&base, STREAM, hello()).await.text().await.unwrap();
    let arr: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(arr.len(), ev.len());

    // JSON mode.
    let body = json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}}});
    let v: Value = post(&base, GEN, body).await.json().await.unwrap();
    let t = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(t).unwrap(), json!({"n": 1}));
}

#[tokio::test]
async fn function_calling() {
    let s = start(Flavor::Gemini).await;
    let base = s.base_url();
    let tools = json!([{"functionDeclarations": [
        {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {
            "city": {"type": "STRING"}}, "required": ["city"]}},
        {"name": "get_time", "parameters": {"type": "OBJECT", "properties": {
            "tz": {"type": "STRING"}}, "required": ["tz"]}}]}]);
    let body =
        json!({"contents": [{"role": "user", "parts": [{"text": "weather?"}]}], "tools": tools});
    let v: Value = post(&base, GEN, body).await.json().await.unwrap();
    let fc = &v["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(fc["name"], "get_weather");
    assert_eq!(fc["args"], json!({"city": "demo"}));

    let body =
        json!({"contents": [{"role": "user", "parts": [{"text": "parallel"}]}], "tools": tools});
    let v: Value = post(&base, GEN, body).await.json().await.unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let body = json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}], "tools": tools,
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}});
    let v: Value = post(&base, GEN, body).await.json().await.unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "get_time"
    );

    let body = json!({"tools": tools, "contents": [
        {"role": "user", "parts": [{"text": "weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "x"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}]}]});
    let v: Value = post(&base, GEN, body).await.json().await.unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        expected_tool_result_text("lbl", "get_weather", "sunny")
    );

    let body = json!({"contents": [{"role": "user", "parts": [{"text": "look"},
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}]});
    let v: Value = post(&base, GEN, body).await.json().await.unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "[lbl] You said: look (1 image)"
    );
}

#[tokio::test]
async fn strict_validation_and_auth() {
    let s = start(Flavor::Gemini).await;
    let base = s.base_url();
    let user = json!([{"role": "user", "parts": [{"text": "hi"}]}]);
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "contents is not specified"),
        (json!({"contents": []}), "contents is not specified"),
        (
            json!({"contents": user, "foo": 1}),
            "Invalid JSON payload received. Unknown name \"foo\": Cannot find field.",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{"text": "x", "bogus": 1}]}]}),
            "Unknown name \"bogus\" at 'contents[0].parts[0]'",
        ),
        (
            json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
            "Please use a valid role: user, model.",
        ),
        (
            json!({"contents": [{"role": "user", "parts": []}]}),
            "contents.parts must not be empty",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{}]}]}),
            "required oneof field 'data'",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{"text": "x", "inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}]}),
            "oneof field 'data' is already set",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]}),
            "Base64 decoding failed",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}),
            "function response turn comes immediately after a function call turn",
        ),
        (
            json!({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f"}}]}]}),
            "function call turn comes immediately after a user turn",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f"}}, {"functionCall": {"name": "g"}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}),
            "number of function response parts is equal",
        ),
        (
            json!({"contents": user, "tools": [{"functionDeclarations": [{"description": "d"}]}]}),
            "Name cannot be empty",
        ),
        (
            json!({"contents": user, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "additionalProperties": false}}]}]}),
            "Unknown name \"additionalProperties\"",
        ),
        (
            json!({"contents": user, "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}),
            "Invalid value at 'tool_config.function_calling_config.mode'",
        ),
        (
            json!({"contents": user, "generationConfig": {"temperature": 5}}),
            "generation_config.temperature",
        ),
        (
            json!({"contents": user, "generationConfig": {"candidateCount": 0}}),
            "generation_config.candidate_count",
        ),
        (
            json!({"contents": user, "generationConfig": {"responseMimeType": "text/html"}}),
            "allowed mimetypes",
        ),
    ];
    for (body, msg) in cases {
        let r = post(&base, GEN, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(msg),
            "{body}: {}",
            v["error"]["message"]
        );
    }
    let r = post(
        &base,
        "/models/missing-model:generateContent",
        json!({"contents": user}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "NOT_FOUND");
    assert_eq!(
        post(&base, "/models/x:frobnicate", json!({}))
            .await
            .status(),
        404
    );

    let url = format!("{base}{GEN}");
    let r = client().post(&url).json(&hello()).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
    let r = client()
        .post(format!("{url}?key=wrong"))
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
}

#[tokio::test]
async fn embeddings_models_and_faults() {
    let s = start(Flavor::Gemini).await;
    let base = s.base_url();
    let v: Value = post(
        &base,
        "/models/gemini-embedding-001:embedContent",
        json!({"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["embedding"]["values"].as_array().unwrap().len(), 4);
    let v: Value = post(&base, "/models/gemini-embedding-001:batchEmbedContents",
        json!({"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}},
                            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}}]}))
        .await.json().await.unwrap();
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(v["embeddings"][0]["values"].as_array().unwrap().len(), 8);
    let v: Value = post(
        &base,
        "/models/gemini-2.5-flash:countTokens",
        json!({"contents": hello()["contents"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(v["totalTokens"].as_u64().unwrap() > 0);
    let v: Value = client()
        .get(format!("{base}/models"))
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["models"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("models/"));

    s.push_fault(Fault::Overloaded);
    let r = post(&base, GEN, hello()).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "UNAVAILABLE");

    s.push_fault(Fault::RateLimited {
        retry_after_secs: 2,
    });
    let r = post(&base, GEN, hello()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(v["error"]["details"][0]["retryDelay"], "2s");

    s.push_fault(Fault::StreamError { after_chunks: 1 });
    let ev = json_events(
        &post(&base, &format!("{STREAM}?alt=sse"), hello())
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1]["error"]["status"], "UNAVAILABLE");

    s.push_fault(Fault::DropMidStream { after_chunks: 1 });
    assert!(post(&base, &format!("{STREAM}?alt=sse"), hello())
        .await
        .text()
        .await
        .is_err());

    s.push_fault(Fault::MalformedBody);
    let text = post(&base, GEN, hello()).await.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
}
