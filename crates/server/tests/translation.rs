//! End-to-end over real sockets: both client APIs × all three provider
//! dialects, non-streaming and streaming, tools, images, JSON output,
//! embeddings and models.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assemble_anthropic, assemble_openai, frames, Gateway};
use serde_json::{json, Value};
use switchyard_mock::{
    expected_text, expected_text_with_images, expected_tool_result_text, synthesize_from_schema,
};

const ALIASES: [&str; 3] = ["gpt", "claude", "gem"];

/// How a plain-text tool result reaches each provider: Gemini's
/// `functionResponse.response` must be an object, so text is wrapped as
/// `{"output": …}` (the key Google's API reference recommends).
fn tool_content(alias: &str, text: &str) -> String {
    if alias == "gem" {
        json!({ "output": text }).to_string()
    } else {
        text.to_owned()
    }
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city", "unit"]}}},
        {"type": "function", "function": {"name": "get_time", "description": "Local time",
          "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}
    ])
}

#[tokio::test]
async fn openai_clients_reach_every_provider() {
    let gw = common::start().await;
    for alias in ALIASES {
        let resp = gw.openai(json!({"model": alias, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}], "temperature": 0.5, "top_p": 0.9, "max_tokens": 200, "user": "u-1", "seed": 7})).await;
        assert_eq!(resp.status(), 200, "{alias}");
        let h = resp.headers().clone();
        assert!(h.get("x-request-id").is_some());
        assert_eq!(h["x-switchyard-attempts"], "1");
        assert_eq!(
            h["x-switchyard-path"],
            if alias == "gpt" {
                "passthrough"
            } else {
                "translated"
            },
            "{alias}"
        );
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            expected_text(Gateway::label(alias), "Hello there"),
            "{alias}: {v}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let u = &v["usage"];
        assert!(
            u["prompt_tokens"].as_u64().unwrap() > 0
                && u["completion_tokens"].as_u64().unwrap() > 0,
            "{alias}: {v}"
        );
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
        );
    }
    // The upstream got its own model name and credentials.
    let r = gw.openai.requests().pop().unwrap();
    assert_eq!(r.json.clone().unwrap()["model"], "gpt-4o");
    assert_eq!(r.header("authorization"), Some("Bearer up-oai"));
    let r = gw.anthropic.requests().pop().unwrap();
    let body = r.json.clone().unwrap();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert!(body["system"].to_string().contains("Be brief."), "{body}");
    assert_eq!(r.header("x-api-key"), Some("up-ant"));
    assert!(r.header("anthropic-version").is_some());
    let r = gw.gemini.requests().pop().unwrap();
    assert!(
        r.path.ends_with("/models/gemini-2.5-flash:generateContent"),
        "{}",
        r.path
    );
    assert_eq!(r.header("x-goog-api-key"), Some("up-gem"));
}

#[tokio::test]
async fn anthropic_clients_reach_every_provider() {
    let gw = common::start().await;
    for alias in ALIASES {
        let resp = gw
            .anthropic(json!({"model": alias, "max_tokens": 300, "system": [{"type": "text", "text": "You are terse."}], "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi Claude"}]}]}))
            .await;
        assert_eq!(resp.status(), 200, "{alias}");
        assert_eq!(
            resp.headers()["x-switchyard-path"],
            if alias == "claude" {
                "passthrough"
            } else {
                "translated"
            }
        );
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["type"], "message", "{v}");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["content"][0]["type"], "text");
        assert_eq!(
            v["content"][0]["text"],
            expected_text(Gateway::label(alias), "Hi Claude"),
            "{alias}: {v}"
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(
            v["usage"]["input_tokens"].as_u64().unwrap() > 0
                && v["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{v}"
        );
    }
    // System prompt hoisting into OpenAI's system message.
    let body = gw.openai.requests().pop().unwrap().json.unwrap();
    assert_eq!(body["messages"][0]["role"], "system", "{body}");
}

#[tokio::test]
async fn openai_streams_from_every_provider() {
    let gw = common::start().await;
    for alias in ALIASES {
        for include_usage in [true, false] {
            let mut req = json!({"model": alias, "stream": true, "messages": [{"role": "user", "content": "Stream me a reply please"}]});
            if include_usage {
                req["stream_options"] = json!({"include_usage": true});
            }
            let resp = gw.openai(req).await;
            assert_eq!(resp.status(), 200);
            assert!(resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream"));
            let f = frames(resp).await;
            assert_eq!(f.last().unwrap().data, "[DONE]", "{alias}");
            let (text, tools, finish, usage) = assemble_openai(&f);
            assert_eq!(
                text,
                expected_text(Gateway::label(alias), "Stream me a reply please"),
                "{alias}"
            );
            assert!(tools.is_empty());
            assert_eq!(finish.as_deref(), Some("stop"));
            if include_usage {
                let u = usage.unwrap_or_else(|| panic!("{alias}: no usage chunk"));
                assert!(u["prompt_tokens"].as_u64().unwrap() > 0);
                // The usage chunk is the last before [DONE] and has no choices.
                let last: Value = serde_json::from_str(&f[f.len() - 2].data).unwrap();
                assert_eq!(last["choices"], json!([]), "{alias}");
            } else {
                assert!(
                    usage.is_none(),
                    "{alias}: usage chunk leaked to a client that did not ask"
                );
            }
            // One id and one created across the stream.
            let ps = common::payloads(&f);
            assert!(
                ps.windows(2)
                    .all(|w| w[0]["id"] == w[1]["id"] && w[0]["created"] == w[1]["created"]),
                "{alias}"
            );
        }
    }
    // The gateway always asks upstream for usage (accounting needs it).
    let body = gw.openai.requests().pop().unwrap().json.unwrap();
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn anthropic_streams_from_every_provider() {
    let gw = common::start().await;
    for alias in ALIASES {
        let resp = gw.anthropic(json!({"model": alias, "max_tokens": 300, "stream": true, "messages": [{"role": "user", "content": "Stream it"}]})).await;
        assert_eq!(resp.status(), 200);
        let f = frames(resp).await;
        let (names, text, tools, stop, usage) = assemble_anthropic(&f);
        let names: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| *n != "ping")
            .collect();
        assert_eq!(names.first(), Some(&"message_start"), "{alias}: {names:?}");
        assert_eq!(
            &names[names.len() - 2..],
            &["message_delta", "message_stop"],
            "{alias}: {names:?}"
        );
        assert_eq!(
            text,
            expected_text(Gateway::label(alias), "Stream it"),
            "{alias}"
        );
        assert!(tools.is_empty());
        assert_eq!(stop.as_deref(), Some("end_turn"));
        assert!(
            usage["output_tokens"].as_u64().unwrap() > 0,
            "{alias}: {usage}"
        );
        assert!(
            usage["input_tokens"].as_u64().unwrap() > 0,
            "{alias}: {usage}"
        );
    }
}

#[tokio::test]
async fn tool_calls_round_trip_through_openai_api() {
    let gw = common::start().await;
    for alias in ALIASES {
        // 1. The model calls a tool.
        let req = json!({"model": alias, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": weather_tools(), "tool_choice": "auto"});
        let v: Value = gw.openai(req.clone()).await.json().await.unwrap();
        let msg = &v["choices"][0]["message"];
        assert_eq!(
            v["choices"][0]["finish_reason"], "tool_calls",
            "{alias}: {v}"
        );
        let tc = &msg["tool_calls"][0];
        assert_eq!(tc["type"], "function");
        assert_eq!(tc["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(tc["function"]["arguments"].as_str().unwrap()).unwrap();
        let schema = &weather_tools()[0]["function"]["parameters"];
        assert_eq!(args, synthesize_from_schema(schema, false), "{alias}");
        let id = tc["id"].as_str().unwrap().to_owned();
        assert!(!id.is_empty());

        // 2. Streaming gives the same call, arguments in fragments.
        let mut sreq = req.clone();
        sreq["stream"] = json!(true);
        let f = frames(gw.openai(sreq).await).await;
        let (text, tools, finish, _) = assemble_openai(&f);
        assert_eq!(finish.as_deref(), Some("tool_calls"), "{alias}");
        assert!(text.is_empty(), "{alias}: {text}");
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].1, "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(&tools[0].2).unwrap(),
            args,
            "{alias}"
        );

        // 3. The tool result turn.
        let follow = json!({"model": alias, "tools": weather_tools(), "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": "get_weather", "arguments": tc["function"]["arguments"]}}]},
            {"role": "tool", "tool_call_id": id, "content": "sunny, 21C"}
        ]});
        let resp = gw.openai(follow).await;
        assert_eq!(resp.status(), 200, "{alias}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            expected_tool_result_text(
                Gateway::label(alias),
                "get_weather",
                &tool_content(alias, "sunny, 21C")
            ),
            "{alias}: {v}"
        );
    }
}

#[tokio::test]
async fn parallel_and_forced_tool_calls() {
    let gw = common::start().await;
    for alias in ALIASES {
        let v: Value = gw
            .openai(json!({"model": alias, "messages": [{"role": "user", "content": "Do both in parallel"}], "tools": weather_tools()}))
            .await
            .json()
            .await
            .unwrap();
        let calls = v["choices"][0]["message"]["tool_calls"]
            .as_array()
            .unwrap_or_else(|| panic!("{alias}: {v}"));
        let names: Vec<&str> = calls
            .iter()
            .map(|c| c["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["get_weather", "get_time"], "{alias}");
        let ids: std::collections::HashSet<&str> =
            calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 2, "distinct ids");

        // Streamed parallel calls keep their indexes.
        let f = frames(gw.openai(json!({"model": alias, "stream": true, "messages": [{"role": "user", "content": "Do both in parallel"}], "tools": weather_tools()})).await).await;
        let (_, tools, _, _) = assemble_openai(&f);
        assert_eq!(
            tools.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(),
            ["get_weather", "get_time"],
            "{alias}"
        );

        // tool_choice naming a function forces it.
        let v: Value = gw
            .openai(json!({"model": alias, "messages": [{"role": "user", "content": "hi"}], "tools": weather_tools(), "tool_choice": {"type": "function", "function": {"name": "get_time"}}}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_time",
            "{alias}: {v}"
        );

        // tool_choice none: plain text.
        let v: Value = gw.openai(json!({"model": alias, "messages": [{"role": "user", "content": "hi"}], "tools": weather_tools(), "tool_choice": "none"})).await.json().await.unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            expected_text(Gateway::label(alias), "hi"),
            "{alias}: {v}"
        );
    }
}

#[tokio::test]
async fn tool_use_round_trip_through_anthropic_api() {
    let gw = common::start().await;
    let tools = json!([{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    for alias in ALIASES {
        let v: Value = gw
            .anthropic(json!({"model": alias, "max_tokens": 200, "tools": tools, "messages": [{"role": "user", "content": "Weather in Oslo?"}]}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["stop_reason"], "tool_use", "{alias}: {v}");
        let blocks = v["content"].as_array().unwrap();
        assert!(
            blocks
                .iter()
                .all(|b| b["type"] != "text" || !b["text"].as_str().unwrap().is_empty()),
            "no empty text block: {v}"
        );
        let tu = blocks.iter().find(|b| b["type"] == "tool_use").unwrap();
        assert_eq!(tu["name"], "get_weather");
        assert_eq!(tu["input"], json!({"city": "demo"}));
        let id = tu["id"].as_str().unwrap();

        // Streaming: a tool_use block with input_json_delta fragments, stop_reason tool_use.
        let f = frames(gw.anthropic(json!({"model": alias, "max_tokens": 200, "stream": true, "tools": tools, "messages": [{"role": "user", "content": "Weather in Oslo?"}]})).await).await;
        let (_, text, tus, stop, _) = assemble_anthropic(&f);
        assert_eq!(stop.as_deref(), Some("tool_use"), "{alias}");
        assert!(text.is_empty(), "{alias}: {text}");
        assert_eq!(tus.len(), 1);
        assert_eq!(
            serde_json::from_str::<Value>(&tus[0].2).unwrap(),
            json!({"city": "demo"}),
            "{alias}"
        );

        // The tool_result turn.
        let v: Value = gw
            .anthropic(json!({"model": alias, "max_tokens": 200, "tools": tools, "messages": [
                {"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": [tu]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "snow"}]}
            ]}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            v["content"][0]["text"],
            expected_tool_result_text(
                Gateway::label(alias),
                "get_weather",
                &tool_content(alias, "snow")
            ),
            "{alias}: {v}"
        );
    }
}

const PNG_1PX: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

#[tokio::test]
async fn images_reach_every_provider() {
    let gw = common::start().await;
    for alias in ALIASES {
        let content = json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_1PX}")}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
        ]);
        let resp = gw
            .openai(json!({"model": alias, "messages": [{"role": "user", "content": content}]}))
            .await;
        assert_eq!(resp.status(), 200, "{alias}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            expected_text_with_images(Gateway::label(alias), "What is this?", 2),
            "{alias}: {v}"
        );

        let resp = gw
            .anthropic(json!({"model": alias, "max_tokens": 100, "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}},
                {"type": "text", "text": "Describe"}
            ]}]}))
            .await;
        assert_eq!(resp.status(), 200, "{alias}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["content"][0]["text"],
            expected_text_with_images(Gateway::label(alias), "Describe", 1),
            "{alias}: {v}"
        );
    }
    // Gemini got inline data for the data: URL.
    let body = gw.gemini.requests()[0].json.clone().unwrap();
    let parts = body["contents"][0]["parts"].to_string();
    assert!(
        parts.contains("inlineData") || parts.contains("inline_data"),
        "{parts}"
    );
}

#[tokio::test]
async fn json_output_formats() {
    let gw = common::start().await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"], "additionalProperties": false});
    for alias in ALIASES {
        let v: Value = gw
            .openai(json!({"model": alias, "messages": [{"role": "user", "content": "Give me a person"}], "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}}}))
            .await
            .json()
            .await
            .unwrap();
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_else(|| panic!("{alias}: {v}"));
        let parsed: Value = serde_json::from_str(content)
            .unwrap_or_else(|e| panic!("{alias}: not JSON: {content}: {e}"));
        assert_eq!(parsed, json!({"name": "demo", "age": 1}), "{alias}");
    }
    // json_object on OpenAI and Gemini (Anthropic has no schema-less JSON mode:
    // the gateway instructs the model instead, so the mock replies in text).
    for alias in ["gpt", "gem"] {
        let v: Value = gw
            .openai(json!({"model": alias, "messages": [{"role": "user", "content": "json please"}], "response_format": {"type": "json_object"}}))
            .await
            .json()
            .await
            .unwrap();
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            serde_json::from_str::<Value>(content).unwrap().is_object(),
            "{alias}: {content}"
        );
    }
}

#[tokio::test]
async fn stop_and_max_tokens_map_finish_reasons() {
    let gw = common::start().await;
    for alias in ALIASES {
        let v: Value = gw.openai(json!({"model": alias, "messages": [{"role": "user", "content": "one two three four five six seven eight nine ten"}], "max_completion_tokens": 3})).await.json().await.unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "length", "{alias}: {v}");
        let v: Value = gw.openai(json!({"model": alias, "messages": [{"role": "user", "content": "alpha STOP beta"}], "stop": ["STOP"]})).await.json().await.unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{alias}: {v}");
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            !text.contains("STOP") && !text.contains("beta"),
            "{alias}: {text}"
        );

        let v: Value = gw.anthropic(json!({"model": alias, "max_tokens": 3, "messages": [{"role": "user", "content": "one two three four five six seven eight nine ten"}]})).await.json().await.unwrap();
        assert_eq!(v["stop_reason"], "max_tokens", "{alias}: {v}");
    }
    // Anthropic reports which stop sequence matched.
    let v: Value = gw.anthropic(json!({"model": "claude", "max_tokens": 100, "stop_sequences": ["STOP"], "messages": [{"role": "user", "content": "alpha STOP beta"}]})).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "STOP");
}

#[tokio::test]
async fn n_choices_where_supported() {
    let gw = common::start().await;
    for alias in ["gpt", "gem"] {
        let v: Value = gw.openai(json!({"model": alias, "n": 2, "messages": [{"role": "user", "content": "two please"}]})).await.json().await.unwrap();
        let choices = v["choices"]
            .as_array()
            .unwrap_or_else(|| panic!("{alias}: {v}"));
        assert_eq!(choices.len(), 2, "{alias}: {v}");
        assert_eq!(choices[1]["index"], 1);
    }
    // Anthropic has no `n`: a clear 400, not a silent single answer.
    let resp = gw.openai(json!({"model": "claude", "n": 2, "messages": [{"role": "user", "content": "two please"}]})).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "n", "{v}");
}

#[tokio::test]
async fn embeddings_and_models() {
    let gw = common::start().await;
    for alias in ["embed", "gem-embed"] {
        let resp = gw
            .http
            .post(format!("{}/v1/embeddings", gw.base))
            .bearer_auth(common::KEY)
            .json(&json!({"model": alias, "input": ["hello", "world"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{alias}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"].as_array().unwrap().len(), 2, "{alias}: {v}");
        assert_eq!(v["data"][1]["index"], 1);
        assert!(v["data"][0]["embedding"].as_array().unwrap().len() >= 8);
        assert!(
            v["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
            "{alias}: {v}"
        );
        // base64, as the OpenAI SDKs request by default.
        let v: Value = gw
            .http
            .post(format!("{}/v1/embeddings", gw.base))
            .bearer_auth(common::KEY)
            .json(&json!({"model": alias, "input": "hello", "encoding_format": "base64"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let b64 = v["data"][0]["embedding"]
            .as_str()
            .unwrap_or_else(|| panic!("{alias}: {v}"));
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(bytes.len() % 4, 0);
    }
    // Anthropic has no embeddings.
    let resp = gw
        .http
        .post(format!("{}/v1/embeddings", gw.base))
        .bearer_auth(common::KEY)
        .json(&json!({"model": "claude", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let v: Value = gw
        .http
        .get(format!("{}/v1/models", gw.base))
        .bearer_auth(common::KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for a in ["gpt", "claude", "gem", "embed"] {
        assert!(ids.contains(&a), "{ids:?}");
    }
    assert_eq!(v["data"][0]["object"], "model");
    let v: Value = gw
        .http
        .get(format!("{}/v1/models", gw.base))
        .header("x-api-key", common::KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["type"], "model", "{v}");
    assert_eq!(v["has_more"], false);
}

#[tokio::test]
async fn direct_provider_model_routing() {
    let gw = common::start().await;
    let v: Value = gw.openai(json!({"model": "ant/claude-haiku-4-5", "messages": [{"role": "user", "content": "direct"}]})).await.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        expected_text("ant", "direct"),
        "{v}"
    );
    assert_eq!(
        gw.anthropic.requests().pop().unwrap().json.unwrap()["model"],
        "claude-haiku-4-5"
    );
}
