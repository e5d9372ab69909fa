use super::*;
use crate::dialect::Quirks;
use crate::ir::{
    ChatRequest, ChatResponse, Choice, ContentPart, ErrorKind, FinishReason, ImageSource, Message,
    ResponseFormat, Role, StreamEvent, ThinkingConfig, Tool, ToolCall, ToolChoice, Usage,
};
use crate::sse::{SseDecoder, SseFrame};
use serde_json::{json, Value};

const REQUEST_FULL: &str = include_str!("testdata/request_full.json");
const RESPONSE_TOOL_USE: &str = include_str!("testdata/response_tool_use.json");
const STREAM_TOOL_USE: &str = include_str!("testdata/stream_tool_use.sse");
const STREAM_TEXT: &str = include_str!("testdata/stream_text.sse");
const STREAM_ERROR: &str = include_str!("testdata/stream_error.sse");
const ERROR_OVERLOADED: &str = include_str!("testdata/error_overloaded.json");

fn frames(text: &str) -> Vec<SseFrame> {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    d.feed(text.as_bytes(), &mut out).unwrap();
    out
}

fn decode_stream(text: &str) -> Vec<StreamEvent> {
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for f in frames(text) {
        dec.on_frame(&f, &mut out).unwrap();
    }
    dec.finish(&mut out);
    normalize_events(out)
}

fn normalize_events(mut evs: Vec<StreamEvent>) -> Vec<StreamEvent> {
    for e in &mut evs {
        if let StreamEvent::Start { created, .. } = e {
            *created = 0;
        }
    }
    evs
}

/// Fold events into a response, as a client accumulator would.
fn assemble(events: &[StreamEvent]) -> ChatResponse {
    let mut resp = ChatResponse {
        id: String::new(),
        model: String::new(),
        created: 0,
        choices: vec![Choice {
            index: 0,
            message: Message::new(Role::Assistant, Vec::new()),
            finish_reason: None,
            stop_sequence: None,
        }],
        usage: None,
        system_fingerprint: None,
    };
    for ev in events {
        let c = &mut resp.choices[0];
        let parts = &mut c.message.content;
        match ev {
            StreamEvent::Start { id, model, .. } => {
                resp.id = id.clone();
                resp.model = model.clone();
            }
            StreamEvent::TextDelta { text, .. } => match parts.last_mut() {
                Some(ContentPart::Text(t)) => t.push_str(text),
                _ => parts.push(ContentPart::Text(text.clone())),
            },
            StreamEvent::ThinkingDelta { text, .. } => match parts.last_mut() {
                Some(ContentPart::Thinking { text: t, .. }) => t.push_str(text),
                _ => parts.push(ContentPart::Thinking {
                    text: text.clone(),
                    signature: None,
                }),
            },
            StreamEvent::SignatureDelta { signature, .. } => {
                if let Some(ContentPart::Thinking { signature: s, .. }) = parts.last_mut() {
                    s.get_or_insert_with(String::new).push_str(signature);
                }
            }
            StreamEvent::RedactedThinking { data, .. } => {
                parts.push(ContentPart::RedactedThinking(data.clone()))
            }
            StreamEvent::ToolCallStart { id, name, .. } => c.message.tool_calls.push(ToolCall {
                id: id.clone(),
                name: name.clone(),
                arguments: String::new(),
            }),
            StreamEvent::ToolCallDelta {
                index, arguments, ..
            } => c.message.tool_calls[*index as usize]
                .arguments
                .push_str(arguments),
            StreamEvent::Finish {
                reason,
                stop_sequence,
                ..
            } => {
                c.finish_reason = Some(*reason);
                c.stop_sequence = stop_sequence.clone();
            }
            StreamEvent::Usage(u) => resp.usage = Some(*u),
            StreamEvent::RefusalDelta { .. } | StreamEvent::Error(_) => {}
        }
    }
    resp
}

fn decoded_response(body: &[u8]) -> ChatResponse {
    let mut r = decode_response(body).unwrap();
    r.created = 0;
    r
}

/// Tool-call arguments are compact JSON text; compare them as JSON values.
fn parse_args(r: &ChatResponse) -> Vec<Value> {
    r.choices[0]
        .message
        .tool_calls
        .iter()
        .map(|t| serde_json::from_str(&t.arguments).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------
// decode_request

#[test]
fn decodes_full_request_fixture() {
    let req = decode_request(REQUEST_FULL.as_bytes()).unwrap();
    assert_eq!(req.model, "claude-sonnet-4-5");
    assert_eq!(req.max_tokens, Some(2048));
    assert!(req.stream && req.include_usage);
    assert_eq!(req.temperature, Some(0.5));
    assert_eq!(req.top_p, Some(0.9));
    assert_eq!(req.top_k, Some(40));
    assert_eq!(req.stop, vec!["\n\nHuman:".to_owned()]);
    assert_eq!(req.user.as_deref(), Some("user-123"));
    assert_eq!(req.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(
        req.thinking,
        Some(ThinkingConfig {
            budget_tokens: 1024
        })
    );
    assert_eq!(req.reasoning_effort.as_deref(), Some("high"));
    assert!(matches!(
        &req.response_format,
        Some(ResponseFormat::JsonSchema { name, schema, .. })
            if name == "output" && schema["required"] == json!(["answer"])
    ));
    assert_eq!(req.tools.len(), 2);
    assert_eq!(req.tools[0].name, "get_weather");
    assert_eq!(req.tools[0].description.as_deref(), Some("Get the weather"));
    assert_eq!(req.tools[1].strict, Some(true));

    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        vec![
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Tool,
            Role::User
        ]
    );
    let m = &req.messages;
    assert_eq!(
        m[0].content,
        vec![
            ContentPart::text("You are a weather bot."),
            ContentPart::text("Be brief.")
        ]
    );
    assert_eq!(
        m[1].content[1],
        ContentPart::Image {
            source: ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            },
            detail: None
        }
    );
    assert_eq!(
        m[1].content[2],
        ContentPart::Image {
            source: ImageSource::Url("https://example.com/map.jpg".into()),
            detail: None
        }
    );
    assert_eq!(
        m[2].content,
        vec![
            ContentPart::Thinking {
                text: "The user wants weather.".into(),
                signature: Some("EqQBCgIYAhIM".into())
            },
            ContentPart::RedactedThinking("EmwKAhgBEgy3va3pzix".into()),
            ContentPart::text("Let me check."),
        ]
    );
    assert_eq!(
        m[2].tool_calls,
        vec![
            ToolCall {
                id: "toolu_01A".into(),
                name: "get_weather".into(),
                // Key order kept, compacted.
                arguments: r#"{"location":"Paris","unit":"celsius"}"#.into()
            },
            ToolCall {
                id: "toolu_01B".into(),
                name: "get_time".into(),
                arguments: "{}".into()
            }
        ]
    );
    assert_eq!(m[3].tool_call_id.as_deref(), Some("toolu_01A"));
    assert_eq!(m[3].content, vec![ContentPart::text("15 degrees")]);
    assert!(!m[3].is_error);
    assert_eq!(m[4].tool_call_id.as_deref(), Some("toolu_01B"));
    assert!(m[4].is_error);
    assert_eq!(m[4].content, vec![ContentPart::text("clock unavailable")]);
    assert_eq!(m[5].content, vec![ContentPart::text("Thanks!")]);
}

#[test]
fn tool_result_only_turn_has_no_trailing_user_message() {
    let body = json!({"model":"m","max_tokens":5,"messages":[
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1"}]}
    ]});
    let req = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(req.messages.len(), 1);
    assert_eq!(req.messages[0].role, Role::Tool);
    assert!(req.messages[0].content.is_empty());
}

#[test]
fn string_content_and_string_system() {
    let body = json!({"model":"m","max_tokens":0,"system":"sys","messages":[
        {"role":"user","content":"hi"}], "thinking": {"type":"disabled"}, "metadata": {"user_id": null}});
    let req = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(req.max_tokens, Some(0));
    assert_eq!(
        req.messages[0],
        Message::new(Role::System, vec![ContentPart::text("sys")])
    );
    assert_eq!(
        req.messages[1],
        Message::new(Role::User, vec![ContentPart::text("hi")])
    );
    assert!(!req.stream && !req.include_usage);
    assert_eq!(req.thinking, None);
    assert_eq!(req.user, None);
}

fn bad_request(body: Value) -> ApiError {
    let e = decode_request(body.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    e
}

#[test]
fn malformed_requests_name_the_field() {
    let msgs = json!([{"role":"user","content":"hi"}]);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"model":"m","messages":msgs}), "max_tokens"),
        (json!({"max_tokens":1,"messages":msgs}), "model"),
        (json!({"model":"m","max_tokens":1}), "messages"),
        (
            json!({"model":"m","max_tokens":"10","messages":msgs}),
            "max_tokens",
        ),
        (
            json!({"model":"m","max_tokens":-1,"messages":msgs}),
            "max_tokens",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":{}}),
            "messages",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"bot","content":"x"}]}),
            "messages.0.role",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"user"}]}),
            "messages.0.content",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":5}]}),
            "messages.0.content",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"image"}]}]}),
            "messages.1.content.0.source",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"x"}}]}]}),
            "messages.0.content.0.source.media_type",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}),
            "messages.0.content.0.source.type",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}),
            "messages.0.content.0.type",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"text":"no type"}]}]}),
            "messages.0.content.0.type",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]}),
            "messages.0.content.0.type",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"b","input":[1]}]}]}),
            "messages.0.content.0.input",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"document"}]}]}]}),
            "messages.0.content.0.content.0.type",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":msgs,"tools":[{"type":"web_search_20250305","name":"web_search"}]}),
            "tools.0.type",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":msgs,"tools":[{"name":"x"}]}),
            "tools.0.input_schema",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":msgs,"tool_choice":{"type":"tool"}}),
            "tool_choice.name",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":msgs,"tool_choice":{"type":"maybe"}}),
            "tool_choice.type",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":msgs,"thinking":{"type":"enabled"}}),
            "thinking.budget_tokens",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":msgs,"system":[{"type":"image"}]}),
            "system.0.type",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":msgs,"stop_sequences":["a",1]}),
            "stop_sequences.1",
        ),
        (
            json!({"model":"m","max_tokens":1,"messages":msgs,"temperature":"hot"}),
            "temperature",
        ),
    ];
    for (body, param) in cases {
        let e = bad_request(body.clone());
        assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        assert!(e.message.contains(param), "{}", e.message);
    }
}

#[test]
fn non_json_bodies_are_400() {
    for body in [&b"{"[..], b"", b"[]", b"null", b"\xff\xfe", b"\"x\""] {
        let e = decode_request(body).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
    }
}

// ---------------------------------------------------------------------------
// encode_request

fn encoded(req: &ChatRequest) -> Value {
    serde_json::from_slice(&encode_request(req, "claude-up", &Quirks::default()).unwrap()).unwrap()
}

#[test]
fn request_round_trip() {
    let req = decode_request(REQUEST_FULL.as_bytes()).unwrap();
    let body = encode_request(&req, "claude-sonnet-4-5", &Quirks::default()).unwrap();
    let again = decode_request(&body).unwrap();
    assert_eq!(again, req);
    let v: Value = serde_json::from_slice(&body).unwrap();
    // Tool results lead the merged user turn.
    assert_eq!(v["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(v["messages"][2]["content"][1]["is_error"], true);
    assert_eq!(v["messages"][2]["content"][2]["type"], "text");
    assert_eq!(v["output_config"]["format"]["type"], "json_schema");
    assert_eq!(
        v["tool_choice"],
        json!({"type":"auto","disable_parallel_tool_use":true})
    );
}

fn msg(role: Role, text: &str) -> Message {
    Message::new(role, vec![ContentPart::text(text)])
}

#[test]
fn encodes_openai_shaped_ir() {
    let tool_msg = |id: &str, text: &str| {
        let mut m = msg(Role::Tool, text);
        m.tool_call_id = Some(id.into());
        m
    };
    let mut assistant = Message::new(
        Role::Assistant,
        vec![
            ContentPart::Thinking {
                text: "unsigned".into(),
                signature: None,
            },
            ContentPart::text(""),
        ],
    );
    assistant.tool_calls = vec![
        ToolCall {
            id: "c1".into(),
            name: "f".into(),
            arguments: r#"{"b": 1, "a": [2]}"#.into(),
        },
        ToolCall {
            id: "c2".into(),
            name: "g".into(),
            arguments: "not json".into(),
        },
        ToolCall {
            id: "c3".into(),
            name: "h".into(),
            arguments: "".into(),
        },
    ];
    let req = ChatRequest {
        model: "alias".into(),
        messages: vec![
            msg(Role::System, "sys1"),
            msg(Role::User, "q1"),
            msg(Role::User, "q2"),
            assistant,
            tool_msg("c1", "r1"),
            tool_msg("c2", "r2"),
            tool_msg("c3", ""),
            msg(Role::Developer, "dev"),
            Message::new(
                Role::User,
                vec![ContentPart::Image {
                    source: ImageSource::from_url("data:image/png;base64,AAAA").unwrap(),
                    detail: Some("high".into()),
                }],
            ),
        ],
        tools: vec![Tool {
            name: "f".into(),
            description: None,
            parameters: json!({"type":"object"}),
            strict: None,
        }],
        parallel_tool_calls: Some(false),
        temperature: Some(1.7),
        stop: vec!["END".into(), "  ".into()],
        seed: Some(7),
        presence_penalty: Some(0.5),
        user: Some("u1".into()),
        response_format: Some(ResponseFormat::JsonObject),
        reasoning_effort: Some("minimal".into()),
        stream: true,
        ..ChatRequest::default()
    };
    let v = encoded(&req);
    assert_eq!(v["model"], "claude-up");
    assert_eq!(v["max_tokens"], 4096);
    assert_eq!(v["temperature"], 1.0);
    assert_eq!(v["stream"], true);
    assert_eq!(v["stop_sequences"], json!(["END"]));
    assert_eq!(v["metadata"], json!({"user_id":"u1"}));
    assert_eq!(
        v["tool_choice"],
        json!({"type":"auto","disable_parallel_tool_use":true})
    );
    assert!(v.get("seed").is_none() && v.get("presence_penalty").is_none());
    assert!(v.get("output_config").is_none());
    let system: Vec<&str> = v["system"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    assert_eq!(system, vec!["sys1", "dev", encode::JSON_OBJECT_INSTRUCTION]);
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        msgs[0],
        json!({"role":"user","content":[{"type":"text","text":"q1"},{"type":"text","text":"q2"}]})
    );
    assert_eq!(msgs[1]["role"], "assistant");
    let blocks = msgs[1]["content"].as_array().unwrap();
    assert_eq!(
        blocks.len(),
        3,
        "unsigned thinking and empty text dropped: {blocks:?}"
    );
    assert_eq!(blocks[1]["input"], json!({}));
    assert_eq!(blocks[2]["input"], json!({}));
    // Key order of the model's arguments is preserved.
    let raw = String::from_utf8(encode_request(&req, "x", &Quirks::default()).unwrap()).unwrap();
    assert!(raw.contains(r#""input":{"b": 1, "a": [2]}"#), "{raw}");
    assert_eq!(msgs[2]["role"], "user");
    let user = msgs[2]["content"].as_array().unwrap();
    assert_eq!(user.len(), 4);
    assert_eq!(
        user[0],
        json!({"type":"tool_result","tool_use_id":"c1","content":[{"type":"text","text":"r1"}]})
    );
    assert_eq!(user[2], json!({"type":"tool_result","tool_use_id":"c3"}));
    assert_eq!(
        user[3],
        json!({"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}})
    );
}

#[test]
fn encode_request_options() {
    let base = ChatRequest {
        messages: vec![msg(Role::User, "hi")],
        ..ChatRequest::default()
    };
    let mut r = base.clone();
    r.n = Some(2);
    let e = encode_request(&r, "m", &Quirks::default()).unwrap_err();
    assert_eq!(
        (e.kind, e.param.as_deref()),
        (ErrorKind::InvalidRequest, Some("n"))
    );

    let mut r = base.clone();
    r.thinking = Some(ThinkingConfig {
        budget_tokens: 8000,
    });
    r.tool_choice = Some(ToolChoice::Required);
    r.reasoning_effort = Some("low".into());
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "n".into(),
        description: None,
        schema: json!({"type":"object"}),
        strict: Some(true),
    });
    let v = encoded(&r);
    assert_eq!(v["max_tokens"], 8000 + 4096);
    assert_eq!(
        v["thinking"],
        json!({"type":"enabled","budget_tokens":8000})
    );
    assert!(v.get("tool_choice").is_none(), "no tools → no tool_choice");
    assert_eq!(
        v["output_config"],
        json!({"effort":"low","format":{"type":"json_schema","schema":{"type":"object"}}})
    );
    assert!(v.get("stream").is_none());

    let mut r = base;
    r.tools = vec![Tool {
        name: "t".into(),
        description: Some("d".into()),
        parameters: json!({}),
        strict: None,
    }];
    for (choice, want) in [
        (ToolChoice::None, json!({"type":"none"})),
        (ToolChoice::Required, json!({"type":"any"})),
        (
            ToolChoice::Tool("t".into()),
            json!({"type":"tool","name":"t"}),
        ),
    ] {
        r.tool_choice = Some(choice);
        assert_eq!(encoded(&r)["tool_choice"], want);
    }
    let q = Quirks {
        default_max_tokens: 100,
        ..Quirks::default()
    };
    let v: Value = serde_json::from_slice(&encode_request(&r, "m", &q).unwrap()).unwrap();
    assert_eq!(v["max_tokens"], 100);
}

// ---------------------------------------------------------------------------
// responses

#[test]
fn decodes_response_fixture() {
    let r = decoded_response(RESPONSE_TOOL_USE.as_bytes());
    assert_eq!(r.id, "msg_01Aq9w938a90dw8q");
    assert_eq!(r.model, "claude-sonnet-4-5-20250929");
    let c = &r.choices[0];
    assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        c.message.content,
        vec![
            ContentPart::Thinking {
                text: "I should look up the weather.".into(),
                signature: Some("EqQBCgIYAhIM1gbcDa9GJwZA".into())
            },
            ContentPart::text("I'll check the current weather in Paris for you."),
        ]
    );
    assert_eq!(
        c.message.tool_calls[0].arguments,
        r#"{"location":"Paris","unit":"celsius"}"#
    );
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 2477,
            output_tokens: 65,
            cached_input_tokens: 2000,
            cache_creation_input_tokens: 100,
            reasoning_tokens: 0
        })
    );
    assert_eq!(extract_usage(RESPONSE_TOOL_USE.as_bytes()), r.usage);
}

#[test]
fn stop_reason_mapping() {
    for (wire, want, seq) in [
        ("end_turn", FinishReason::Stop, None),
        ("stop_sequence", FinishReason::Stop, Some("##")),
        ("max_tokens", FinishReason::Length, None),
        ("tool_use", FinishReason::ToolCalls, None),
        ("refusal", FinishReason::ContentFilter, None),
        ("pause_turn", FinishReason::Stop, None),
        ("model_context_window_exceeded", FinishReason::Length, None),
        ("brand_new_reason", FinishReason::Stop, None),
    ] {
        let body = json!({"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],
            "stop_reason":wire,"stop_sequence":seq,"usage":{"input_tokens":1,"output_tokens":2}});
        let r = decode_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.choices[0].finish_reason, Some(want), "{wire}");
        assert_eq!(r.choices[0].stop_sequence.as_deref(), seq);
    }
}

#[test]
fn response_round_trip() {
    let r = decoded_response(RESPONSE_TOOL_USE.as_bytes());
    let body = encode_response(&r);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(
        v["usage"],
        json!({"input_tokens":377,"output_tokens":65,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000})
    );
    assert_eq!(decoded_response(&body), r);
}

#[test]
fn encode_response_finish_mapping() {
    let mut r = decoded_response(RESPONSE_TOOL_USE.as_bytes());
    r.id = "chatcmpl-123".into();
    r.choices[0].message.tool_calls.clear();
    for (reason, seq, want) in [
        (FinishReason::Stop, None, "end_turn"),
        (FinishReason::Stop, Some("STOP"), "stop_sequence"),
        (FinishReason::Length, Some("ignored"), "max_tokens"),
        (FinishReason::ContentFilter, None, "refusal"),
        (FinishReason::ToolCalls, None, "tool_use"),
    ] {
        r.choices[0].finish_reason = Some(reason);
        r.choices[0].stop_sequence = seq.map(str::to_owned);
        let v: Value = serde_json::from_slice(&encode_response(&r)).unwrap();
        assert_eq!(v["stop_reason"], want);
        assert_eq!(v["id"], "chatcmpl-123");
        let want_seq = if want == "stop_sequence" {
            json!("STOP")
        } else {
            Value::Null
        };
        assert_eq!(v["stop_sequence"], want_seq);
    }
}

// ---------------------------------------------------------------------------
// streams

#[test]
fn stream_assembles_to_the_non_stream_message() {
    let events = decode_stream(STREAM_TOOL_USE);
    assert!(matches!(events[0], StreamEvent::Start { .. }));
    let assembled = assemble(&events);
    let expected = decoded_response(RESPONSE_TOOL_USE.as_bytes());
    assert_eq!(parse_args(&assembled), parse_args(&expected));
    let mut a = assembled;
    a.choices[0].message.tool_calls[0].arguments.clear();
    let mut e = expected;
    e.choices[0].message.tool_calls[0].arguments.clear();
    assert_eq!(a, e);
}

#[test]
fn stream_text_with_stop_sequence_and_unknown_events() {
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for f in frames(STREAM_TEXT) {
        dec.on_frame(&f, &mut out).unwrap();
    }
    assert!(dec.is_done());
    dec.finish(&mut out);
    let out = normalize_events(out);
    assert_eq!(
        out,
        vec![
            StreamEvent::Start {
                id: "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY".into(),
                model: "claude-opus-4-5".into(),
                created: 0,
                system_fingerprint: None
            },
            StreamEvent::Usage(Usage {
                input_tokens: 25,
                output_tokens: 1,
                ..Usage::default()
            }),
            StreamEvent::TextDelta {
                choice: 0,
                text: "Hello".into()
            },
            StreamEvent::TextDelta {
                choice: 0,
                text: "!".into()
            },
            StreamEvent::Finish {
                choice: 0,
                reason: FinishReason::Stop,
                stop_sequence: Some("\n\nHuman:".into())
            },
            StreamEvent::Usage(Usage {
                input_tokens: 25,
                output_tokens: 15,
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn stream_error_event() {
    let events = decode_stream(STREAM_ERROR);
    let Some(StreamEvent::Error(e)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(e.kind, ErrorKind::Overloaded);
    assert_eq!(e.provider_type.as_deref(), Some("overloaded_error"));
    assert_eq!(e.message, "Overloaded");
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Error(_)))
            .count(),
        1
    );
}

#[test]
fn truncated_stream_reports_an_error() {
    let cut = STREAM_TEXT.find("event: message_delta").unwrap();
    let events = decode_stream(&STREAM_TEXT[..cut]);
    assert!(
        matches!(events.last(), Some(StreamEvent::Error(e)) if e.kind == ErrorKind::BadGateway)
    );
    // Missing only message_stop is fine.
    let cut = STREAM_TEXT.find("event: message_stop").unwrap();
    let events = decode_stream(&STREAM_TEXT[..cut]);
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::Error(_))));
}

#[test]
fn malformed_frame_is_an_error_not_a_panic() {
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    let f = SseFrame {
        event: Some("content_block_delta".into()),
        data: "{nope".into(),
    };
    assert_eq!(
        dec.on_frame(&f, &mut out).unwrap_err().kind,
        ErrorKind::BadGateway
    );
}

fn encode_events(events: &[StreamEvent]) -> String {
    let mut enc = StreamEncoder::new();
    let mut out = Vec::new();
    for e in events {
        enc.on_event(e, &mut out);
    }
    enc.finish(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn encoder_output_redecodes_to_the_same_events() {
    for transcript in [STREAM_TOOL_USE, STREAM_TEXT] {
        let events = decode_stream(transcript);
        let sse = encode_events(&events);
        assert_eq!(decode_stream(&sse), events, "{sse}");
        // And the frame sequence matches the original transcript, except
        // for pings, unknown events and empty `input_json_delta` fragments.
        let names = |t: &str| -> Vec<String> {
            frames(t)
                .into_iter()
                .filter(|f| !f.data.contains(r#""partial_json":"""#))
                .filter_map(|f| f.event)
                .filter(|e| e != "ping" && e != "some_future_event")
                .collect()
        };
        assert_eq!(names(&sse), names(transcript));
    }
}

#[test]
fn encoder_message_start_and_delta_shapes() {
    let sse = encode_events(&decode_stream(STREAM_TOOL_USE));
    let fs = frames(&sse);
    let start: Value = serde_json::from_str(&fs[0].data).unwrap();
    assert_eq!(
        start,
        json!({"type":"message_start","message":{"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant",
            "content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,
            "usage":{"input_tokens":377,"output_tokens":1,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000}}})
    );
    let tool_start: Value = serde_json::from_str(&fs[10].data).unwrap();
    assert_eq!(
        tool_start,
        json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use",
            "id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","input":{}}})
    );
    let delta: Value = serde_json::from_str(&fs[fs.len() - 2].data).unwrap();
    assert_eq!(
        delta["delta"],
        json!({"stop_reason":"tool_use","stop_sequence":null})
    );
    assert_eq!(delta["usage"]["output_tokens"], 65);
}

#[test]
fn encoder_tool_only_reply_from_openai_style_events() {
    let events = vec![
        StreamEvent::Start {
            id: "chatcmpl-1".into(),
            model: "gpt".into(),
            created: 1,
            system_fingerprint: None,
        },
        StreamEvent::TextDelta {
            choice: 0,
            text: String::new(),
        },
        StreamEvent::ToolCallStart {
            choice: 0,
            index: 0,
            id: "call_1".into(),
            name: "f".into(),
        },
        StreamEvent::ToolCallDelta {
            choice: 0,
            index: 0,
            arguments: "{\"a\":".into(),
        },
        StreamEvent::ToolCallStart {
            choice: 0,
            index: 1,
            id: "call_2".into(),
            name: "g".into(),
        },
        StreamEvent::ToolCallDelta {
            choice: 0,
            index: 1,
            arguments: "{}".into(),
        },
        StreamEvent::ToolCallDelta {
            choice: 0,
            index: 0,
            arguments: "1}".into(),
        },
        StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::Stop,
            stop_sequence: None,
        },
        StreamEvent::Usage(Usage {
            input_tokens: 50,
            output_tokens: 9,
            cached_input_tokens: 20,
            ..Usage::default()
        }),
    ];
    let sse = encode_events(&events);
    assert!(!sse.contains(r#""type":"text""#), "{sse}");
    let fs = frames(&sse);
    let start: Value = serde_json::from_str(&fs[0].data).unwrap();
    assert_eq!(start["message"]["usage"]["input_tokens"], 0);
    let delta: Value = serde_json::from_str(&fs[fs.len() - 2].data).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"],
        json!({"input_tokens":30,"output_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":20})
    );
    let back = assemble(&decode_stream(&sse));
    assert_eq!(back.choices[0].message.tool_calls[0].arguments, "{\"a\":1}");
    assert_eq!(back.choices[0].message.tool_calls[1].arguments, "{}");
    assert_eq!(back.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(back.usage.map(|u| u.input_tokens), Some(50));
}

#[test]
fn encoder_error_closes_the_block_and_stops() {
    let events = decode_stream(STREAM_ERROR);
    let sse = encode_events(&events);
    let names: Vec<String> = frames(&sse).into_iter().filter_map(|f| f.event).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "error"
        ]
    );
    let last: Value = serde_json::from_str(&frames(&sse).last().unwrap().data).unwrap();
    assert_eq!(
        last,
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})
    );
}

#[test]
fn encoder_length_and_empty_stream() {
    let sse = encode_events(&[StreamEvent::Finish {
        choice: 0,
        reason: FinishReason::Length,
        stop_sequence: None,
    }]);
    let names: Vec<String> = frames(&sse).into_iter().filter_map(|f| f.event).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
    assert!(sse.contains(r#""stop_reason":"max_tokens""#));
}

#[test]
fn stream_usage_fast_path_matches_decoder() {
    let mut acc = Usage::default();
    let mut changes = 0;
    for f in frames(STREAM_TOOL_USE) {
        if extract_stream_usage(&f, &mut acc) {
            changes += 1;
        }
    }
    assert_eq!(changes, 2);
    assert_eq!(
        Some(acc),
        decoded_response(RESPONSE_TOOL_USE.as_bytes()).usage
    );

    // message_delta without input fields keeps what message_start said.
    let mut acc = Usage::default();
    for f in frames(STREAM_TEXT) {
        extract_stream_usage(&f, &mut acc);
    }
    assert_eq!(
        acc,
        Usage {
            input_tokens: 25,
            output_tokens: 15,
            ..Usage::default()
        }
    );
    // Frames without an event name are parsed by their `type`.
    let mut acc = Usage::default();
    let f = SseFrame {
        event: None,
        data: r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":3}}"#.into(),
    };
    assert!(extract_stream_usage(&f, &mut acc));
    assert!(!extract_stream_usage(&f, &mut acc));
    assert_eq!(acc.output_tokens, 3);
}

// ---------------------------------------------------------------------------
// errors

#[test]
fn decode_error_keeps_upstream_type_and_message() {
    let e = decode_error(529, ERROR_OVERLOADED.as_bytes());
    assert_eq!(e.kind, ErrorKind::Overloaded);
    assert_eq!(e.message, "Overloaded");
    assert_eq!(e.provider_type.as_deref(), Some("overloaded_error"));

    let e = decode_error(400, br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#);
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::InvalidRequest, "max_tokens: Field required")
    );

    let html = format!("<html>{}</html>", "é".repeat(2000));
    let e = decode_error(502, html.as_bytes());
    assert_eq!(e.kind, ErrorKind::Api);
    assert!(e.message.contains("502") && e.message.contains("<html>"));
    assert!(e.message.len() < 600, "{}", e.message.len());
    assert!(decode_error(504, b"").message.contains("504"));
    assert_eq!(decode_error(504, b"").kind, ErrorKind::Timeout);
}

#[test]
fn encode_error_types() {
    for (kind, ty) in [
        (ErrorKind::InvalidRequest, "invalid_request_error"),
        (ErrorKind::Authentication, "authentication_error"),
        (ErrorKind::PermissionDenied, "permission_error"),
        (ErrorKind::NotFound, "not_found_error"),
        (ErrorKind::RequestTooLarge, "request_too_large"),
        (ErrorKind::RateLimit, "rate_limit_error"),
        (ErrorKind::Api, "api_error"),
        (ErrorKind::Overloaded, "overloaded_error"),
        (ErrorKind::BadGateway, "api_error"),
        (ErrorKind::Timeout, "timeout_error"),
    ] {
        let err = ApiError::new(kind, "boom");
        let v: Value = serde_json::from_slice(&encode_error(&err)).unwrap();
        assert_eq!(
            v,
            json!({"type":"error","error":{"type":ty,"message":"boom"}})
        );
        // And back, through the status the server would answer with.
        let back = decode_error(kind.status(), &encode_error(&err));
        assert_eq!(back.provider_type.as_deref(), Some(ty));
        if kind != ErrorKind::BadGateway {
            assert_eq!(back.kind, kind);
        }
        let mut sse = Vec::new();
        encode_stream_error(&err, &mut sse);
        let mut dec = StreamDecoder::new();
        let mut out = Vec::new();
        for f in frames(std::str::from_utf8(&sse).unwrap()) {
            assert_eq!(f.event.as_deref(), Some("error"));
            dec.on_frame(&f, &mut out).unwrap();
        }
        let [StreamEvent::Error(e)] = out.as_slice() else {
            panic!("{out:?}")
        };
        if kind != ErrorKind::BadGateway {
            assert_eq!(e.kind, kind);
        }
    }
}

// ---------------------------------------------------------------------------
// robustness

#[test]
fn no_panics_on_prefixes_and_garbage() {
    for fixture in [REQUEST_FULL, RESPONSE_TOOL_USE, ERROR_OVERLOADED] {
        let bytes = fixture.as_bytes();
        for end in 0..bytes.len() {
            let b = &bytes[..end];
            let _ = decode_request(b);
            let _ = decode_response(b);
            let _ = decode_error(500, b);
            let _ = extract_usage(b);
        }
    }
    for transcript in [STREAM_TOOL_USE, STREAM_TEXT, STREAM_ERROR] {
        for f in frames(transcript) {
            for end in (0..=f.data.len()).filter(|i| f.data.is_char_boundary(*i)) {
                let cut = SseFrame {
                    event: f.event.clone(),
                    data: f.data[..end].to_owned(),
                };
                let mut dec = StreamDecoder::new();
                let mut out = Vec::new();
                let _ = dec.on_frame(&cut, &mut out);
                dec.finish(&mut out);
                let mut acc = Usage::default();
                let _ = extract_stream_usage(&cut, &mut acc);
                let _ = encode_events(&out);
            }
        }
        // Whole transcripts cut at every byte.
        for end in (0..transcript.len()).filter(|i| transcript.is_char_boundary(*i)) {
            let mut dec = StreamDecoder::new();
            let mut out = Vec::new();
            for f in frames(&transcript[..end]) {
                let _ = dec.on_frame(&f, &mut out);
            }
            dec.finish(&mut out);
            let _ = encode_events(&out);
        }
    }
    // Wrong-typed values everywhere.
    for body in [
        json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[null, 1, "x", []]}]}),
        json!({"model":"m","max_tokens":1e30,"messages":[]}),
        json!({"model":{"a":1},"max_tokens":1,"messages":[]}),
        json!({"id":1,"content":"x"}),
        json!({"content":[{"type":"tool_use"}]}),
    ] {
        let _ = decode_request(body.to_string().as_bytes());
        let _ = decode_response(body.to_string().as_bytes());
    }
}
