use serde_json::{json, Value};

use super::*;
use crate::dialect::{MaxTokensField, Quirks};
use crate::ir::{
    ApiError, ChatRequest, ChatResponse, Choice, ContentPart, EmbeddingInput, ErrorKind,
    FinishReason, ImageSource, Message, ResponseFormat, Role, StreamEvent, ThinkingConfig,
    ToolCall, ToolChoice, Usage,
};
use crate::sse::{SseDecoder, SseFrame};

const REQUEST_FULL: &str = include_str!("testdata/request_full.json");
const RESPONSE_TEXT: &str = include_str!("testdata/response_text.json");
const RESPONSE_TOOLS: &str = include_str!("testdata/response_tool_calls.json");
const STREAM_TOOLS: &str = include_str!("testdata/stream_tool_calls.sse");
const STREAM_TEXT: &str = include_str!("testdata/stream_text_usage.sse");
const STREAM_DEEPSEEK: &str = include_str!("testdata/stream_deepseek_reasoning.sse");
const ERROR_API_KEY: &str = include_str!("testdata/error_invalid_api_key.json");
const ERROR_MODEL: &str = include_str!("testdata/error_model_not_found.json");
const EMB_FLOAT: &str = include_str!("testdata/embeddings_float.json");
const EMB_B64: &str = include_str!("testdata/embeddings_base64.json");

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn frames(sse: &str) -> Vec<SseFrame> {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    d.feed(sse.as_bytes(), &mut out).unwrap();
    out
}

fn decode_stream(sse: &str) -> Vec<StreamEvent> {
    let mut dec = StreamDecoder::new();
    let mut events = Vec::new();
    for f in frames(sse) {
        dec.on_frame(&f, &mut events).unwrap();
    }
    assert!(dec.is_done());
    dec.finish(&mut events);
    events
}

/// Fold stream events into the non-streaming response they describe.
fn assemble(events: &[StreamEvent]) -> ChatResponse {
    let mut r = ChatResponse {
        id: String::new(),
        model: String::new(),
        created: 0,
        choices: Vec::new(),
        usage: None,
        system_fingerprint: None,
    };
    fn choice(r: &mut ChatResponse, i: u32) -> &mut Choice {
        if !r.choices.iter().any(|c| c.index == i) {
            r.choices.push(Choice {
                index: i,
                message: Message::new(Role::Assistant, Vec::new()),
                finish_reason: None,
                stop_sequence: None,
            });
        }
        r.choices.iter_mut().find(|c| c.index == i).unwrap()
    }
    fn push_text(m: &mut Message, t: &str, thinking: bool) {
        match (m.content.last_mut(), thinking) {
            (Some(ContentPart::Text(s)), false) => s.push_str(t),
            (Some(ContentPart::Thinking { text, .. }), true) => text.push_str(t),
            (_, false) => m.content.push(ContentPart::text(t)),
            (_, true) => m.content.push(ContentPart::Thinking {
                text: t.into(),
                signature: None,
            }),
        }
    }
    for ev in events {
        match ev {
            StreamEvent::Start {
                id,
                model,
                created,
                system_fingerprint,
            } => {
                r.id = id.clone();
                r.model = model.clone();
                r.created = *created;
                r.system_fingerprint = system_fingerprint.clone();
            }
            StreamEvent::TextDelta { choice: c, text } => {
                push_text(&mut choice(&mut r, *c).message, text, false)
            }
            StreamEvent::ThinkingDelta { choice: c, text } => {
                push_text(&mut choice(&mut r, *c).message, text, true)
            }
            StreamEvent::RefusalDelta { choice: c, text } => choice(&mut r, *c)
                .message
                .refusal
                .get_or_insert_with(String::new)
                .push_str(text),
            StreamEvent::ToolCallStart {
                choice: c,
                index,
                id,
                name,
            } => {
                let calls = &mut choice(&mut r, *c).message.tool_calls;
                assert_eq!(calls.len(), *index as usize);
                calls.push(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                });
            }
            StreamEvent::ToolCallDelta {
                choice: c,
                index,
                arguments,
            } => choice(&mut r, *c).message.tool_calls[*index as usize]
                .arguments
                .push_str(arguments),
            StreamEvent::Finish {
                choice: c,
                reason,
                stop_sequence,
            } => {
                let ch = choice(&mut r, *c);
                ch.finish_reason = Some(*reason);
                ch.stop_sequence = stop_sequence.clone();
            }
            StreamEvent::Usage(u) => r.usage = Some(*u),
            StreamEvent::Error(e) => panic!("unexpected error {e:?}"),
            StreamEvent::SignatureDelta { .. } | StreamEvent::RedactedThinking { .. } => {}
        }
    }
    r
}

fn encode_stream(events: &[StreamEvent], include_usage: bool) -> String {
    let mut enc = StreamEncoder::new(include_usage);
    let mut out = Vec::new();
    for ev in events {
        enc.on_event(ev, &mut out);
    }
    enc.finish(&mut out);
    String::from_utf8(out).unwrap()
}

fn err_param(body: Value) -> (String, Option<String>) {
    let e = decode_request(body.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest, "{e:?}");
    (e.message, e.param)
}

fn minimal(messages: Value) -> Value {
    json!({"model": "gpt-4o", "messages": messages})
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

#[test]
fn decodes_full_request_fixture() {
    let r = decode_request(REQUEST_FULL.as_bytes()).unwrap();
    assert_eq!(r.model, "gpt-4o");
    assert_eq!(r.messages.len(), 7);
    assert_eq!(r.messages[0].role, Role::System);
    assert_eq!(r.messages[1].role, Role::Developer);
    assert_eq!(r.messages[1].text(), "Answer briefly.");
    let user = &r.messages[2];
    assert_eq!(user.name.as_deref(), Some("alice"));
    assert_eq!(
        user.content[1],
        ContentPart::Image {
            source: ImageSource::Url("https://example.com/paris.jpg".into()),
            detail: Some("low".into())
        }
    );
    assert_eq!(
        user.content[2],
        ContentPart::Image {
            source: ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            },
            detail: None
        }
    );
    let asst = &r.messages[3];
    assert!(asst.content.is_empty());
    assert_eq!(
        asst.tool_calls,
        vec![ToolCall {
            id: "call_abc123".into(),
            name: "get_weather".into(),
            arguments: "{\"city\":\"Paris\"}".into()
        }]
    );
    assert_eq!(r.messages[4].role, Role::Tool);
    assert_eq!(r.messages[4].tool_call_id.as_deref(), Some("call_abc123"));
    assert_eq!(r.tools.len(), 1);
    assert_eq!(r.tools[0].strict, Some(true));
    assert_eq!(r.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
    assert_eq!(r.parallel_tool_calls, Some(false));
    assert!(matches!(
        r.response_format,
        Some(ResponseFormat::JsonSchema { ref name, strict: Some(true), .. }) if name == "answer"
    ));
    // max_completion_tokens wins over the deprecated max_tokens.
    assert_eq!(r.max_tokens, Some(256));
    assert_eq!(r.stop, vec!["\n\n".to_owned(), "END".to_owned()]);
    assert_eq!(r.seed, Some(42));
    assert_eq!(r.n, Some(1));
    assert_eq!(r.frequency_penalty, Some(-0.1));
    assert_eq!(r.user.as_deref(), Some("user-1234"));
    assert_eq!(r.reasoning_effort.as_deref(), Some("low"));
    assert!(r.stream && r.include_usage);
}

#[test]
fn request_round_trip_is_faithful() {
    let r = decode_request(REQUEST_FULL.as_bytes()).unwrap();
    let body = encode_request(&r, "gpt-4o-2024-08-06", &Quirks::default()).unwrap();
    let mut again = decode_request(&body).unwrap();
    assert_eq!(again.model, "gpt-4o-2024-08-06");
    again.model = r.model.clone();
    assert_eq!(again, r);
    let v = json_of(&body);
    assert_eq!(v["max_completion_tokens"], 256);
    assert!(v.get("max_tokens").is_none());
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
    assert_eq!(v["messages"][3]["content"], Value::Null);
    assert_eq!(v["messages"][4]["content"], "{\"temp_c\":18}");
    assert_eq!(v["messages"][0]["content"], "You are a helpful assistant.");
    assert!(v.get("logit_bias").is_none() && v.get("store").is_none());
}

#[test]
fn encode_request_applies_quirks() {
    let mut r = decode_request(REQUEST_FULL.as_bytes()).unwrap();
    r.include_usage = false;
    r.messages[3].content.insert(
        0,
        ContentPart::Thinking {
            text: "hmm".into(),
            signature: Some("sig".into()),
        },
    );
    r.thinking = Some(ThinkingConfig { budget_tokens: 100 });
    r.top_k = Some(5);
    let q = Quirks {
        max_tokens_field: MaxTokensField::MaxTokens,
        stream_options: false,
        n: false,
        seed: false,
        parallel_tool_calls: false,
        json_schema: false,
        developer_role: false,
        user: false,
        penalties: false,
        default_max_tokens: 1,
    };
    let v = json_of(&encode_request(&r, "m", &q).unwrap());
    assert_eq!(v["max_tokens"], 256);
    for absent in [
        "max_completion_tokens",
        "stream_options",
        "n",
        "seed",
        "parallel_tool_calls",
        "user",
        "presence_penalty",
        "frequency_penalty",
        "top_k",
        "thinking",
    ] {
        assert!(v.get(absent).is_none(), "{absent} should be dropped");
    }
    assert_eq!(v["stream"], true);
    assert_eq!(v["messages"][1]["role"], "system");
    assert_eq!(v["response_format"], json!({"type": "json_object"}));
    // Thinking in the assistant history is not sent.
    assert_eq!(v["messages"][3]["content"], Value::Null);
    assert!(v["messages"][3].get("reasoning_content").is_none());

    // The usage chunk is always requested when the provider supports it.
    let v = json_of(&encode_request(&r, "m", &Quirks::default()).unwrap());
    assert_eq!(v["stream_options"], json!({"include_usage": true}));

    r.n = Some(3);
    let e = encode_request(&r, "m", &q).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("n"));
}

#[test]
fn tool_choice_needs_tools_upstream() {
    let mut r = ChatRequest {
        model: "x".into(),
        messages: vec![Message::new(Role::User, vec![ContentPart::text("hi")])],
        tool_choice: Some(ToolChoice::Auto),
        parallel_tool_calls: Some(true),
        ..ChatRequest::default()
    };
    let v = json_of(&encode_request(&r, "m", &Quirks::default()).unwrap());
    assert!(v.get("tool_choice").is_none() && v.get("parallel_tool_calls").is_none());
    assert!(v.get("stream").is_none());
    assert_eq!(v["messages"][0], json!({"role": "user", "content": "hi"}));
    r.tool_choice = Some(ToolChoice::Required);
    r.tools = decode_request(REQUEST_FULL.as_bytes()).unwrap().tools;
    let v = json_of(&encode_request(&r, "m", &Quirks::default()).unwrap());
    assert_eq!(v["tool_choice"], "required");
}

#[test]
fn legacy_functions_and_reasoning_content() {
    let body = json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "reasoning_content": "think",
             "function_call": {"name": "get_weather", "arguments": "{}"}},
            {"role": "function", "name": "get_weather", "content": "sunny"},
            {"role": "assistant", "content": [{"type": "text", "text": "no"}, {"type": "refusal", "refusal": "I can't."}]}
        ],
        "functions": [{"name": "get_weather", "parameters": {"type": "object"}}],
        "function_call": "auto",
        "stop": "END"
    });
    let r = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(r.tools[0].name, "get_weather");
    assert_eq!(r.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(r.stop, vec!["END".to_owned()]);
    let a = &r.messages[1];
    assert_eq!(
        a.content,
        vec![ContentPart::Thinking {
            text: "think".into(),
            signature: None
        }]
    );
    assert_eq!(a.tool_calls[0].id, "get_weather");
    assert_eq!(r.messages[2].role, Role::Tool);
    assert_eq!(r.messages[2].tool_call_id.as_deref(), Some("get_weather"));
    assert_eq!(r.messages[3].refusal.as_deref(), Some("I can't."));
}

#[test]
fn malformed_requests_name_the_field() {
    let e = decode_request(b"{\"model\": ").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(
        e.message.contains("could not parse the JSON body"),
        "{}",
        e.message
    );
    assert!(decode_request(b"[1]")
        .unwrap_err()
        .message
        .contains("JSON object"));

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": []}), "messages"),
        (json!({"model": 5, "messages": []}), "model"),
        (minimal(json!([{"content": "x"}])), "messages[0].role"),
        (
            minimal(json!([{"role": "wizard", "content": "x"}])),
            "messages[0].role",
        ),
        (minimal(json!(["hi"])), "messages[0]"),
        (
            minimal(
                json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "user", "content": 7}]),
            ),
            "messages[2].content",
        ),
        (minimal(json!([{"role": "user"}])), "messages[0].content"),
        (
            minimal(
                json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]),
            ),
            "messages[0].content[0]",
        ),
        (
            minimal(
                json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]),
            ),
            "messages[0].content[0]",
        ),
        (
            minimal(json!([{"role": "user", "content": [{"type": "text"}]}])),
            "messages[0].content[0]",
        ),
        (
            minimal(
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xx"}}]}]),
            ),
            "messages[0].content[0].image_url.url",
        ),
        (
            minimal(
                json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]),
            ),
            "messages[0].content[0].type",
        ),
        (
            minimal(json!([{"role": "tool", "content": "x"}])),
            "messages[0].tool_call_id",
        ),
        (
            minimal(
                json!([{"role": "assistant", "tool_calls": [{"id": "a", "type": "function"}]}]),
            ),
            "messages[0].tool_calls[0]",
        ),
        (
            minimal(json!([{"role": "assistant", "content": "x", "audio": {"id": "a"}}])),
            "messages[0].audio",
        ),
    ];
    for (body, param) in cases {
        let (message, got) = err_param(body.clone());
        assert_eq!(got.as_deref(), Some(param), "{body}: {message}");
        assert!(message.contains(param), "{message} should name {param}");
    }
    let audio = json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]);
    assert!(err_param(minimal(audio)).0.contains("input_audio"));

    let with = |k: &str, v: Value| {
        let mut b = minimal(json!([{"role": "user", "content": "x"}]));
        b[k] = v;
        b
    };
    for (k, v, param) in [
        ("temperature", json!("hot"), "temperature"),
        ("max_tokens", json!(-1), "max_tokens"),
        ("max_completion_tokens", json!(1.5), "max_completion_tokens"),
        ("n", json!(0), "n"),
        ("stop", json!([1]), "stop[0]"),
        ("stream", json!("yes"), "stream"),
        (
            "stream_options",
            json!({"include_usage": 1}),
            "stream_options.include_usage",
        ),
        ("tools", json!([{"type": "function"}]), "tools[0]"),
        (
            "tools",
            json!([{"type": "custom", "custom": {"name": "x"}}]),
            "tools[0]",
        ),
        ("tool_choice", json!("sometimes"), "tool_choice"),
        (
            "tool_choice",
            json!({"type": "function", "function": {}}),
            "tool_choice.function.name",
        ),
        (
            "response_format",
            json!({"type": "yaml"}),
            "response_format",
        ),
        ("seed", json!(1.5), "seed"),
    ] {
        let (message, got) = err_param(with(k, v));
        assert_eq!(got.as_deref(), Some(param), "{k}: {message}");
    }
    // Nulls and unknown fields are fine.
    let mut ok = with("temperature", Value::Null);
    ok["logit_bias"] = json!({"1": 2});
    ok["prediction"] = json!({"type": "content", "content": "x"});
    assert!(decode_request(ok.to_string().as_bytes()).is_ok());
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

#[test]
fn decodes_response_fixtures() {
    let r = decode_response(RESPONSE_TEXT.as_bytes()).unwrap();
    assert_eq!(r.id, "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT");
    assert_eq!(r.created, 1741569952);
    assert_eq!(r.system_fingerprint.as_deref(), Some("fp_fc9f1d7035"));
    assert_eq!(
        r.choices[0].message.text(),
        "Hello! How can I assist you today?"
    );
    assert_eq!(r.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 19,
            output_tokens: 10,
            ..Usage::default()
        })
    );

    let r = decode_response(RESPONSE_TOOLS.as_bytes()).unwrap();
    let c = &r.choices[0];
    assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(c.message.tool_calls.len(), 2);
    assert_eq!(c.message.tool_calls[1].arguments, "{\"city\":\"Rome\"}");
    assert_eq!(r.usage.unwrap().cached_input_tokens, 64);
}

#[test]
fn response_round_trip_is_faithful() {
    for fixture in [RESPONSE_TEXT, RESPONSE_TOOLS] {
        let r = decode_response(fixture.as_bytes()).unwrap();
        let body = encode_response(&r);
        assert_eq!(decode_response(&body).unwrap(), r);
        // Byte-level: everything but service_tier survives.
        let mut want = json_of(fixture.as_bytes());
        want.as_object_mut().unwrap().remove("service_tier");
        let got = json_of(&body);
        assert_eq!(got["choices"], want["choices"]);
        assert_eq!(
            got["usage"]["prompt_tokens_details"]["cached_tokens"],
            want["usage"]["prompt_tokens_details"]["cached_tokens"]
        );
        assert_eq!(got["object"], "chat.completion");
        assert_eq!(got["system_fingerprint"], want["system_fingerprint"]);
    }
}

#[test]
fn encode_response_shapes() {
    let mut msg = Message::new(
        Role::Assistant,
        vec![
            ContentPart::Thinking {
                text: "why".into(),
                signature: Some("sig".into()),
            },
            ContentPart::text("ok"),
        ],
    );
    msg.refusal = None;
    let resp = ChatResponse {
        id: "x".into(),
        model: "m".into(),
        created: 1,
        choices: vec![Choice {
            index: 0,
            message: msg,
            finish_reason: None,
            stop_sequence: None,
        }],
        usage: Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            cached_input_tokens: 2,
            cache_creation_input_tokens: 3,
            reasoning_tokens: 1,
        }),
        system_fingerprint: None,
    };
    let v = json_of(&encode_response(&resp));
    assert_eq!(
        v,
        json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "refusal": null,
                "reasoning_content": "why", "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": 2},
                "completion_tokens_details": {"reasoning_tokens": 1}}
        })
    );
}

#[test]
fn lenient_response_decoding() {
    let body = json!({
        "id": "r", "created": 1.0, "model": "m", "extra": {"x": 1},
        "choices": [{"index": 0, "finish_reason": "function_call", "stop_reason": "END",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                "reasoning": "r1", "tool_calls": null,
                "function_call": {"name": "f", "arguments": {"a": 1}}}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": null, "prompt_cache_hit_tokens": 2}
    });
    let r = decode_response(body.to_string().as_bytes()).unwrap();
    let c = &r.choices[0];
    assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(c.stop_sequence.as_deref(), Some("END"));
    assert_eq!(c.message.text(), "ab");
    assert_eq!(c.message.tool_calls[0].arguments, "{\"a\":1}");
    assert_eq!(r.usage.unwrap().cached_input_tokens, 2);
    let e = decode_response(ERROR_MODEL.as_bytes()).unwrap_err();
    assert_eq!(e.code.as_deref(), Some("model_not_found"));
    assert_eq!(
        decode_response(b"<html>").unwrap_err().kind,
        ErrorKind::BadGateway
    );
}

// ---------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------

#[test]
fn stream_tool_calls_assemble_to_the_non_streaming_response() {
    let events = decode_stream(STREAM_TOOLS);
    assert_eq!(
        events[0],
        StreamEvent::Start {
            id: "chatcmpl-T00l".into(),
            model: "gpt-4o-2024-08-06".into(),
            created: 1741570002,
            system_fingerprint: Some("fp_f9f4fb6dbf".into()),
        }
    );
    assert!(events.contains(&StreamEvent::ToolCallStart {
        choice: 0,
        index: 1,
        id: "call_def".into(),
        name: "get_weather".into()
    }));
    // Start before delta for each call.
    let start = events
        .iter()
        .position(|e| matches!(e, StreamEvent::ToolCallStart { index: 0, .. }))
        .unwrap();
    let delta = events
        .iter()
        .position(|e| matches!(e, StreamEvent::ToolCallDelta { index: 0, .. }))
        .unwrap();
    assert!(start < delta);
    assert_eq!(
        assemble(&events),
        decode_response(RESPONSE_TOOLS.as_bytes()).unwrap()
    );
}

#[test]
fn stream_text_with_usage_chunk() {
    let events = decode_stream(STREAM_TEXT);
    let r = assemble(&events);
    assert_eq!(r.choices[0].message.text(), "Hello world");
    assert_eq!(r.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Usage(Usage {
            input_tokens: 9,
            output_tokens: 2,
            ..Usage::default()
        }))
    );
}

#[test]
fn stream_deepseek_reasoning() {
    let events = decode_stream(STREAM_DEEPSEEK);
    let r = assemble(&events);
    assert_eq!(
        r.choices[0].message.content,
        vec![
            ContentPart::Thinking {
                text: "Simple addition.".into(),
                signature: None
            },
            ContentPart::text("2 + 2 = 4")
        ]
    );
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 112,
            output_tokens: 40,
            cached_input_tokens: 64,
            cache_creation_input_tokens: 0,
            reasoning_tokens: 30
        })
    );
}

#[test]
fn encoder_output_redecodes_to_the_same_events() {
    for fixture in [STREAM_TOOLS, STREAM_TEXT, STREAM_DEEPSEEK] {
        let events = decode_stream(fixture);
        for include_usage in [true, false] {
            let sse = encode_stream(&events, include_usage);
            let again = decode_stream(&sse);
            let want: Vec<_> = events
                .iter()
                .filter(|e| include_usage || !matches!(e, StreamEvent::Usage(_)))
                .cloned()
                .collect();
            assert_eq!(again, want, "include_usage={include_usage}");
        }
    }
}

#[test]
fn encoder_matches_openai_chunk_shapes() {
    let events = decode_stream(STREAM_TOOLS);
    let sse = encode_stream(&events, true);
    let chunks: Vec<Value> = frames(&sse)
        .iter()
        .filter(|f| f.data != "[DONE]")
        .map(|f| serde_json::from_str(&f.data).unwrap())
        .collect();
    // Same chunk count and the same JSON as OpenAI's transcript, but for the
    // fields the IR does not carry (service_tier).
    let mut want: Vec<Value> = frames(STREAM_TOOLS)
        .iter()
        .filter(|f| f.data != "[DONE]")
        .map(|f| serde_json::from_str(&f.data).unwrap())
        .collect();
    for w in &mut want {
        w.as_object_mut().unwrap().remove("service_tier");
    }
    // OpenAI's usage details carry audio/prediction counters we do not know.
    let last = want.last_mut().unwrap();
    last["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 64});
    last["usage"]["completion_tokens_details"] = json!({"reasoning_tokens": 0});
    assert_eq!(chunks, want);
    assert!(sse.ends_with("data: [DONE]\n\n"));
}

#[test]
fn encoder_without_usage_omits_the_field() {
    let sse = encode_stream(&decode_stream(STREAM_TEXT), false);
    assert!(!sse.contains("usage"));
    assert!(sse.starts_with("data: {\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n"));
}

#[test]
fn encoder_handles_multiple_choices_interleaved() {
    let start = StreamEvent::Start {
        id: "c".into(),
        model: "m".into(),
        created: 5,
        system_fingerprint: None,
    };
    let events = vec![
        start,
        StreamEvent::TextDelta {
            choice: 1,
            text: "b".into(),
        },
        StreamEvent::TextDelta {
            choice: 0,
            text: "a".into(),
        },
        StreamEvent::RefusalDelta {
            choice: 1,
            text: "no".into(),
        },
        StreamEvent::SignatureDelta {
            choice: 0,
            signature: "s".into(),
        },
        StreamEvent::Finish {
            choice: 1,
            reason: FinishReason::ContentFilter,
            stop_sequence: None,
        },
        StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::Length,
            stop_sequence: None,
        },
        StreamEvent::Usage(Usage {
            input_tokens: 1,
            output_tokens: 2,
            ..Usage::default()
        }),
    ];
    let again = decode_stream(&encode_stream(&events, true));
    let want: Vec<_> = events
        .into_iter()
        .filter(|e| !matches!(e, StreamEvent::SignatureDelta { .. }))
        .collect();
    assert_eq!(again, want);
}

#[test]
fn stream_errors() {
    // Upstream error chunk → Error event; nothing after it.
    let sse = "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n\
               data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n\
               data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n";
    let mut dec = StreamDecoder::new();
    let mut events = Vec::new();
    for f in frames(sse) {
        dec.on_frame(&f, &mut events).unwrap();
    }
    dec.finish(&mut events);
    let Some(StreamEvent::Error(e)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(e.kind, ErrorKind::Api);
    assert_eq!(e.provider_type.as_deref(), Some("server_error"));
    assert_eq!(events.len(), 3);

    // Encoder: error event, then no [DONE].
    let out = encode_stream(&events, true);
    assert!(!out.contains("[DONE]"));
    let last = frames(&out).pop().unwrap();
    let v: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(
        v,
        json!({"error": {"message": "The server had an error while processing your request.",
            "type": "server_error", "param": null, "code": null}})
    );

    // Not JSON → Err 502.
    let bad = SseFrame {
        event: None,
        data: "{oops".into(),
    };
    assert_eq!(
        StreamDecoder::new()
            .on_frame(&bad, &mut Vec::new())
            .unwrap_err()
            .kind,
        ErrorKind::BadGateway
    );
    // Keep-alive / empty frames are ignored.
    let mut dec = StreamDecoder::new();
    let mut events = Vec::new();
    dec.on_frame(
        &SseFrame {
            event: None,
            data: " ".into(),
        },
        &mut events,
    )
    .unwrap();
    assert!(events.is_empty());
    // Truncated stream → Error at finish.
    for f in frames(STREAM_TEXT).into_iter().take(2) {
        dec.on_frame(&f, &mut events).unwrap();
    }
    dec.finish(&mut events);
    assert!(
        matches!(events.last(), Some(StreamEvent::Error(e)) if e.kind == ErrorKind::BadGateway)
    );
}

#[test]
fn tool_call_index_quirks() {
    // No `index` at all (some compatibles), and a reused index 0 with a new id.
    let chunk = |delta: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "x", "model": "m", "created": 1, "choices": [{"index": 0, "delta": delta}]})
        )
    };
    let sse = [
        chunk(json!({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{\"x\":"}}]})),
        chunk(json!({"tool_calls": [{"function": {"arguments": "1}"}}]})),
        chunk(json!({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{}"}}]})),
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n".into(),
    ]
    .concat();
    let r = assemble(&decode_stream(&sse));
    let calls = &r.choices[0].message.tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].arguments.as_str()),
        ("a", "{\"x\":1}")
    );
    assert_eq!(
        (calls[1].name.as_str(), calls[1].arguments.as_str()),
        ("g", "{}")
    );
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn decode_error_keeps_upstream_fields() {
    let e = decode_error(401, ERROR_API_KEY.as_bytes());
    assert_eq!(e.kind, ErrorKind::Authentication);
    assert!(e.message.starts_with("Incorrect API key provided"));
    assert_eq!(e.provider_type.as_deref(), Some("invalid_request_error"));
    assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
    assert_eq!(e.param, None);

    let e = decode_error(
        429,
        br#"{"error":{"message":"slow down","type":"tokens","param":"x","code":429}}"#,
    );
    assert_eq!(e.kind, ErrorKind::RateLimit);
    assert_eq!(
        (e.param.as_deref(), e.code.as_deref()),
        (Some("x"), Some("429"))
    );

    // Gemini's OpenAI endpoint wraps the error in a list; vLLM uses `message`/`detail`.
    let e = decode_error(
        400,
        br#"[{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}]"#,
    );
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::InvalidRequest, "bad")
    );
    assert_eq!(
        decode_error(404, br#"{"detail":"Not Found"}"#).message,
        "Not Found"
    );
    assert_eq!(decode_error(500, br#"{"error":"boom"}"#).message, "boom");

    let html = format!("<html>{}</html>", "x".repeat(2000));
    let e = decode_error(503, html.as_bytes());
    assert_eq!(e.kind, ErrorKind::Overloaded);
    assert!(e.message.contains("503") && e.message.contains("<html>xxx"));
    assert!(e.message.len() < 600, "{}", e.message.len());
    assert!(decode_error(502, b"").message.contains("empty body"));
}

#[test]
fn encode_error_uses_openai_types() {
    let e = ApiError::invalid_param("messages[0].role", "bad role").with_code("invalid_value");
    assert_eq!(
        json_of(&encode_error(&e)),
        json!({"error": {"message": "bad role", "type": "invalid_request_error",
            "param": "messages[0].role", "code": "invalid_value"}})
    );
    let mut e = ApiError::new(ErrorKind::Overloaded, "busy");
    e.provider_type = Some("overloaded_error".into()); // Anthropic's: not passed through
    assert_eq!(json_of(&encode_error(&e))["error"]["type"], "server_error");
    e.provider_type = Some("insufficient_quota".into());
    assert_eq!(
        json_of(&encode_error(&e))["error"]["type"],
        "insufficient_quota"
    );
    let rt = decode_error(401, ERROR_API_KEY.as_bytes());
    assert_eq!(
        json_of(&encode_error(&rt)),
        json_of(ERROR_API_KEY.as_bytes())
    );
    let mut out = Vec::new();
    encode_stream_error(&rt, &mut out);
    assert!(out.starts_with(b"data: {\"error\":") && out.ends_with(b"}\n\n"));
}

// ---------------------------------------------------------------------------
// Embeddings and usage fast path
// ---------------------------------------------------------------------------

#[test]
fn embeddings_requests() {
    let r = decode_embeddings_request(
        br#"{"model":"e","input":"hi","encoding_format":"base64","dimensions":8}"#,
    )
    .unwrap();
    assert!(r.single);
    assert_eq!(r.input, vec![EmbeddingInput::Text("hi".into())]);
    assert_eq!(
        json_of(&encode_embeddings_request(&r, "up")),
        json!({"model": "up", "input": "hi", "dimensions": 8})
    );

    let r = decode_embeddings_request(br#"{"model":"e","input":[1,2,3]}"#).unwrap();
    assert!(r.single);
    assert_eq!(
        json_of(&encode_embeddings_request(&r, "up"))["input"],
        json!([1, 2, 3])
    );

    let r = decode_embeddings_request(br#"{"model":"e","input":[[1],[2,3]],"user":"u"}"#).unwrap();
    assert!(!r.single);
    assert_eq!(
        json_of(&encode_embeddings_request(&r, "up"))["input"],
        json!([[1], [2, 3]])
    );

    let r = decode_embeddings_request(br#"{"model":"e","input":["a"]}"#).unwrap();
    assert!(!r.single);
    assert_eq!(
        json_of(&encode_embeddings_request(&r, "up"))["input"],
        json!(["a"])
    );

    for (body, param) in [
        (r#"{"model":"e"}"#, "input"),
        (r#"{"model":"e","input":[]}"#, "input"),
        (r#"{"model":"e","input":[1,"a"]}"#, "input[1]"),
        (r#"{"model":"e","input":["a",{}]}"#, "input[1]"),
        (
            r#"{"model":"e","input":"a","encoding_format":"int8"}"#,
            "encoding_format",
        ),
        (r#"{"input":"a"}"#, "model"),
    ] {
        let e = decode_embeddings_request(body.as_bytes()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(param), "{body}");
    }
}

#[test]
fn embeddings_responses() {
    let r = decode_embeddings_response(EMB_FLOAT.as_bytes()).unwrap();
    assert_eq!(r.data[0], vec![0.0023064255, -0.009327292, 0.015797347]);
    assert_eq!(r.data[1], vec![0.5, -1.25, 3.0]);
    assert_eq!(r.usage.input_tokens, 8);
    let b = decode_embeddings_response(EMB_B64.as_bytes()).unwrap();
    assert_eq!(b.data, vec![vec![0.5, -1.25, 3.0]]);

    let v = json_of(&encode_embeddings_response(&b, true));
    assert_eq!(v["data"][0]["embedding"], "AAAAPwAAoL8AAEBA");
    assert_eq!(v["object"], "list");
    assert_eq!(v["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
    for base64 in [true, false] {
        let again = decode_embeddings_response(&encode_embeddings_response(&r, base64)).unwrap();
        assert_eq!(again, r);
    }
    let bad = br#"{"data":[{"index":0,"embedding":"AAA"}]}"#;
    assert_eq!(
        decode_embeddings_response(bad).unwrap_err().kind,
        ErrorKind::BadGateway
    );
}

#[test]
fn extract_usage_fast_path() {
    let u = extract_usage(RESPONSE_TOOLS.as_bytes()).unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (82, 51, 64)
    );
    let chunks = frames(STREAM_TEXT);
    assert_eq!(extract_usage(chunks[1].data.as_bytes()), None);
    assert_eq!(
        extract_usage(chunks[4].data.as_bytes())
            .unwrap()
            .total_tokens(),
        11
    );
    assert_eq!(extract_usage(b"[DONE]"), None);
}

// ---------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------

fn prefixes(s: &str) -> impl Iterator<Item = &[u8]> {
    let b = s.as_bytes();
    (0..=b.len()).map(move |i| &b[..i])
}

#[test]
fn no_panic_on_truncated_or_garbage_input() {
    let all = [
        REQUEST_FULL,
        RESPONSE_TEXT,
        RESPONSE_TOOLS,
        STREAM_TOOLS,
        STREAM_TEXT,
        STREAM_DEEPSEEK,
        ERROR_API_KEY,
        EMB_FLOAT,
        EMB_B64,
    ];
    for fixture in all {
        for p in prefixes(fixture) {
            let _ = decode_request(p);
            let _ = decode_response(p);
            let _ = decode_error(500, p);
            let _ = decode_embeddings_request(p);
            let _ = decode_embeddings_response(p);
            let _ = extract_usage(p);
        }
    }
    // Streams cut at every byte, and every frame mangled.
    for fixture in [STREAM_TOOLS, STREAM_TEXT, STREAM_DEEPSEEK] {
        for p in prefixes(fixture) {
            let mut sse = SseDecoder::new();
            let mut fs = Vec::new();
            let _ = sse.feed(p, &mut fs);
            let mut dec = StreamDecoder::new();
            let mut events = Vec::new();
            for f in &fs {
                let _ = dec.on_frame(f, &mut events);
                let cut = SseFrame {
                    event: None,
                    data: f.data[..f.data.len() / 2].to_owned(),
                };
                let _ = StreamDecoder::new().on_frame(&cut, &mut Vec::new());
            }
            dec.finish(&mut events);
            let _ = encode_stream(&events, true);
        }
    }
    let weird = [
        &b"null"[..],
        b"{}",
        b"[]",
        b"\"x\"",
        b"{\"messages\":null}",
        b"{\"model\":\"m\",\"messages\":[{}]}",
        b"{\"choices\":[{\"message\":null,\"index\":-1}]}",
        b"{\"choices\":[{\"delta\":{\"tool_calls\":[{}]},\"index\":4294967295}]}",
        b"{\"data\":[]}",
        b"\xff\xfe",
    ];
    for w in weird {
        let _ = decode_request(w);
        let _ = decode_response(w);
        let _ = decode_error(400, w);
        let _ = decode_embeddings_request(w);
        let _ = decode_embeddings_response(w);
        let mut events = Vec::new();
        let f = SseFrame {
            event: None,
            data: String::from_utf8_lossy(w).into_owned(),
        };
        let _ = StreamDecoder::new().on_frame(&f, &mut events);
    }
}
