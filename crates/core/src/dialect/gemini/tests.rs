use serde_json::{json, Value};

use super::request::json_schema;
use super::*;
use crate::dialect::Quirks;
use crate::ir::{
    ChatRequest, ContentPart, EmbeddingInput, EmbeddingsRequest, ErrorKind, FinishReason,
    ImageSource, Message, ResponseFormat, Role, StreamEvent, ThinkingConfig, Tool, ToolCall,
    ToolChoice, Usage,
};
use crate::sse::{SseDecoder, SseFrame};

const GENERATE_TEXT: &str = include_str!("testdata/generate_text.json");
const GENERATE_TOOLS: &str = include_str!("testdata/generate_tool_calls.json");
const GENERATE_BLOCKED: &str = include_str!("testdata/generate_blocked.json");
const GENERATE_TWO: &str = include_str!("testdata/generate_two_candidates.json");
const STREAM_TOOLS: &str = include_str!("testdata/stream_tool_calls.sse");
const STREAM_ERROR: &str = include_str!("testdata/stream_error.sse");
const ERROR_INVALID: &str = include_str!("testdata/error_invalid_argument.json");
const ERROR_API_KEY: &str = include_str!("testdata/error_api_key.json");
const ERROR_RATE: &str = include_str!("testdata/error_rate_limit.json");
const EMBED_RESPONSE: &str = include_str!("testdata/batch_embed_response.json");
const REQUEST_CONVERSATION: &str = include_str!("testdata/request_conversation.json");

const SIG: &str = "CpYCAdHtim9+Zx/abw==";
const SIG_URL: &str = "CpYCAdHtim9-Zx_abw";

fn frames(sse: &str) -> Vec<SseFrame> {
    let mut dec = SseDecoder::new();
    let mut out = Vec::new();
    dec.feed(sse.as_bytes(), &mut out).unwrap();
    out
}

fn run_stream(sse: &str) -> Vec<StreamEvent> {
    let mut dec = StreamDecoder::new("fallback-model");
    let mut out = Vec::new();
    for f in frames(sse) {
        dec.on_frame(&f, &mut out).unwrap();
    }
    dec.finish(&mut out);
    out
}

fn text_msg(role: Role, text: &str) -> Message {
    Message::new(role, vec![ContentPart::text(text)])
}

// ------------------------------------------------------------------ paths

#[test]
fn paths() {
    assert_eq!(
        chat_path("gemini-2.5-flash", false),
        "/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        chat_path("models/gemini-2.5-flash", true),
        "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        chat_path("tunedModels/my-tune", false),
        "/tunedModels/my-tune:generateContent"
    );
    assert_eq!(
        embeddings_path("gemini-embedding-001"),
        "/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(
        embeddings_path("models/text-embedding-004"),
        "/models/text-embedding-004:batchEmbedContents"
    );
}

// -------------------------------------------------------------------- ids

#[test]
fn call_ids_carry_signatures() {
    let id = join_call_id("call_abc", Some(SIG));
    assert_eq!(id, format!("call_abc__ts_{SIG_URL}"));
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    assert_eq!(split_call_id(&id), ("call_abc", Some(SIG.to_owned())));
    assert_eq!(split_call_id("call_plain"), ("call_plain", None));
    assert_eq!(split_call_id("toolu_01A"), ("toolu_01A", None));
    // Not base64 after the separator: the id is taken verbatim.
    assert_eq!(split_call_id("a__ts_!!"), ("a__ts_!!", None));
    assert_eq!(join_call_id("x", Some("not base64!")), "x");

    let mut ids = CallIds::new();
    let a = ids.id_for(None, None);
    let b = ids.id_for(None, None);
    assert_ne!(a, b);
    assert!(a.starts_with("call_"));
    assert_eq!(ids.id_for(Some("fc-1"), None), "fc-1");
    // Two responses never mint the same id.
    assert_ne!(
        CallIds::new().id_for(None, None),
        CallIds::new().id_for(None, None)
    );
}

// --------------------------------------------------------------- requests

fn conversation() -> ChatRequest {
    let mut assistant = Message::new(
        Role::Assistant,
        vec![
            ContentPart::Thinking {
                text: "Need the weather.".into(),
                signature: Some("c2lnLXRoaW5r".into()),
            },
            ContentPart::Thinking {
                text: "unsigned, dropped".into(),
                signature: None,
            },
            ContentPart::RedactedThinking("opaque".into()),
            ContentPart::text("Checking."),
        ],
    );
    assistant.tool_calls = vec![
        ToolCall {
            id: format!("call_abc__ts_{SIG_URL}"),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        },
        ToolCall {
            id: "call_def".into(),
            name: "get_time".into(),
            arguments: "not json".into(),
        },
    ];
    let mut tool1 = text_msg(Role::Tool, r#"{"temp": 21}"#);
    tool1.tool_call_id = Some(format!("call_abc__ts_{SIG_URL}"));
    let mut tool2 = text_msg(Role::Tool, "14:00");
    tool2.tool_call_id = Some("call_def".into());
    let mut user = Message::new(
        Role::User,
        vec![
            ContentPart::text("What is in this image, and what's the weather in Paris?"),
            ContentPart::Image {
                source: ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBORw0KGgo=".into(),
                },
                detail: Some("high".into()),
            },
            ContentPart::Image {
                source: ImageSource::Url("https://example.com/cat.JPG?size=large".into()),
                detail: None,
            },
        ],
    );
    user.name = Some("alice".into());
    ChatRequest {
        model: "my-alias".into(),
        messages: vec![
            text_msg(Role::System, "You are terse."),
            user,
            text_msg(Role::Developer, "Answer in French."),
            assistant,
            tool1,
            tool2,
            text_msg(Role::Assistant, "A cat. It is 21°C at 14:00."),
            text_msg(Role::User, "Thanks"),
        ],
        tools: vec![
            Tool {
                name: "get_weather".into(),
                description: Some("Current weather for a city".into()),
                parameters: json!({
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                    },
                    "required": ["city"],
                    "additionalProperties": false
                }),
                strict: Some(true),
            },
            Tool {
                name: "get_time".into(),
                description: None,
                parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
                strict: None,
            },
        ],
        tool_choice: Some(ToolChoice::Tool("get_weather".into())),
        parallel_tool_calls: Some(true),
        max_tokens: Some(256),
        temperature: Some(0.5),
        top_p: Some(0.9),
        stop: vec!["END".into()],
        seed: Some(42),
        n: Some(1),
        user: Some("user-1".into()),
        response_format: Some(ResponseFormat::JsonSchema {
            name: "answer".into(),
            description: None,
            schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"]
            }),
            strict: Some(true),
        }),
        reasoning_effort: Some("low".into()),
        stream: true,
        ..ChatRequest::default()
    }
}

#[test]
fn encodes_conversation() {
    let body = encode_request(&conversation(), &Quirks::default()).unwrap();
    let got: Value = serde_json::from_slice(&body).unwrap();
    let want: Value = serde_json::from_str(REQUEST_CONVERSATION).unwrap();
    assert_eq!(
        got,
        want,
        "got:\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
}

#[test]
fn minimal_request_has_no_optional_sections() {
    let req = ChatRequest {
        messages: vec![text_msg(Role::User, "hi")],
        ..ChatRequest::default()
    };
    let got: Value =
        serde_json::from_slice(&encode_request(&req, &Quirks::default()).unwrap()).unwrap();
    assert_eq!(
        got,
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    );
}

#[test]
fn tool_choice_modes_and_quirks() {
    let mut req = conversation();
    let mode = |req: &ChatRequest| -> Value {
        let v: Value =
            serde_json::from_slice(&encode_request(req, &Quirks::default()).unwrap()).unwrap();
        v["toolConfig"].clone()
    };
    req.tool_choice = Some(ToolChoice::Auto);
    assert_eq!(
        mode(&req),
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );
    req.tool_choice = Some(ToolChoice::None);
    assert_eq!(
        mode(&req),
        json!({"functionCallingConfig": {"mode": "NONE"}})
    );
    req.tool_choice = Some(ToolChoice::Required);
    assert_eq!(
        mode(&req),
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    req.tool_choice = None;
    assert_eq!(mode(&req), Value::Null);

    let q = Quirks {
        n: false,
        seed: false,
        json_schema: false,
        penalties: false,
        ..Quirks::default()
    };
    req.presence_penalty = Some(0.1);
    let v: Value = serde_json::from_slice(&encode_request(&req, &q).unwrap()).unwrap();
    let gc = &v["generationConfig"];
    assert!(gc.get("candidateCount").is_none());
    assert!(gc.get("seed").is_none());
    assert!(gc.get("presencePenalty").is_none());
    assert!(gc.get("responseJsonSchema").is_none());
    assert_eq!(gc["responseMimeType"], "application/json");
}

#[test]
fn thinking_mapping() {
    let tc = |req: &ChatRequest| -> Value {
        let v: Value =
            serde_json::from_slice(&encode_request(req, &Quirks::default()).unwrap()).unwrap();
        v["generationConfig"]["thinkingConfig"].clone()
    };
    let mut req = ChatRequest {
        messages: vec![text_msg(Role::User, "hi")],
        ..ChatRequest::default()
    };
    for (effort, budget) in [
        ("minimal", 512),
        ("low", 1024),
        ("medium", 8192),
        ("high", 24576),
        ("xhigh", -1),
    ] {
        req.reasoning_effort = Some(effort.into());
        assert_eq!(
            tc(&req),
            json!({"includeThoughts": true, "thinkingBudget": budget}),
            "{effort}"
        );
    }
    req.reasoning_effort = Some("none".into());
    assert_eq!(tc(&req), json!({"thinkingBudget": 0}));
    // An explicit budget wins over the effort.
    req.thinking = Some(ThinkingConfig {
        budget_tokens: 3000,
    });
    assert_eq!(
        tc(&req),
        json!({"includeThoughts": true, "thinkingBudget": 3000})
    );
    req.response_format = Some(ResponseFormat::JsonObject);
    let v: Value =
        serde_json::from_slice(&encode_request(&req, &Quirks::default()).unwrap()).unwrap();
    assert_eq!(
        v["generationConfig"]["responseMimeType"],
        "application/json"
    );
}

#[test]
fn unsigned_tool_calls_get_the_bypass_signature() {
    let mut assistant = Message::new(Role::Assistant, vec![]);
    assistant.tool_calls = vec![
        ToolCall {
            id: "toolu_1".into(),
            name: "a".into(),
            arguments: "{}".into(),
        },
        ToolCall {
            id: "toolu_2".into(),
            name: "b".into(),
            arguments: "[1]".into(),
        },
    ];
    let mut tool = text_msg(Role::Tool, "[1, 2]");
    tool.tool_call_id = Some("toolu_1".into());
    let mut err = text_msg(Role::Tool, "boom");
    err.tool_call_id = Some("toolu_2".into());
    err.is_error = true;
    let req = ChatRequest {
        messages: vec![text_msg(Role::User, "go"), assistant, tool, err],
        ..ChatRequest::default()
    };
    let v: Value =
        serde_json::from_slice(&encode_request(&req, &Quirks::default()).unwrap()).unwrap();
    assert_eq!(
        v["contents"][1]["parts"],
        json!([
            {"functionCall": {"id": "toolu_1", "name": "a", "args": {}}, "thoughtSignature": "skip_thought_signature_validator"},
            {"functionCall": {"id": "toolu_2", "name": "b", "args": {}}}
        ])
    );
    assert_eq!(
        v["contents"][2]["parts"],
        json!([
            {"functionResponse": {"id": "toolu_1", "name": "a", "response": {"output": [1, 2]}}},
            {"functionResponse": {"id": "toolu_2", "name": "b", "response": {"error": "boom"}}}
        ])
    );
}

#[test]
fn unknown_tool_call_id_is_rejected() {
    let mut tool = text_msg(Role::Tool, "x");
    tool.tool_call_id = Some("call_nope".into());
    let req = ChatRequest {
        messages: vec![text_msg(Role::User, "go"), tool],
        ..ChatRequest::default()
    };
    let err = encode_request(&req, &Quirks::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert!(err.message.contains("call_nope"), "{}", err.message);
    assert_eq!(err.param.as_deref(), Some("messages[1].tool_call_id"));

    let mut tool = text_msg(Role::Tool, "x");
    tool.tool_call_id = None;
    let req = ChatRequest {
        messages: vec![tool],
        ..ChatRequest::default()
    };
    assert_eq!(
        encode_request(&req, &Quirks::default()).unwrap_err().kind,
        ErrorKind::InvalidRequest
    );
}

#[test]
fn schema_conversion() {
    assert_eq!(
        json_schema(&json!({"$schema": "x", "properties": {"a": {"type": "string"}}})),
        json!({"type": "object", "properties": {"a": {"type": "string"}}})
    );
    assert_eq!(json_schema(&Value::Null), json!({"type": "object"}));
    // Combinators and refs are not given a `type`.
    assert_eq!(
        json_schema(&json!({"anyOf": [{"type": "string"}, {"type": "null"}]})),
        json!({"anyOf": [{"type": "string"}, {"type": "null"}]})
    );
    // Everything else (nested `$defs`, `additionalProperties`, `const`) is kept.
    let rich = json!({
        "type": "object",
        "$defs": {"P": {"type": "object", "properties": {"x": {"const": 1}}, "additionalProperties": false}},
        "properties": {"p": {"$ref": "#/$defs/P"}}
    });
    assert_eq!(json_schema(&rich), rich);

    use super::request::parameters_schema;
    assert_eq!(parameters_schema(&json!({})), None);
    assert_eq!(parameters_schema(&Value::Null), None);
    assert_eq!(
        parameters_schema(
            &json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false})
        ),
        None
    );
    assert_eq!(
        parameters_schema(&json!({"type": "object", "properties": {}, "minProperties": 1})),
        Some(json!({"type": "object", "properties": {}, "minProperties": 1}))
    );
}

// -------------------------------------------------------------- responses

#[test]
fn decodes_text_fixture() {
    let r = decode_response(GENERATE_TEXT.as_bytes(), "fallback").unwrap();
    assert_eq!(r.id, "mN2aaL2gB5fNz7IPp8ug6Ak");
    assert_eq!(r.model, "gemini-2.5-flash");
    assert!(r.created > 1_600_000_000);
    assert_eq!(r.choices.len(), 1);
    let c = &r.choices[0];
    assert_eq!(c.index, 0);
    assert_eq!(c.message.role, Role::Assistant);
    assert_eq!(
        c.message.content,
        vec![ContentPart::text("Hello! How can I help you today?")]
    );
    assert_eq!(c.finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 12,
            output_tokens: 9,
            ..Usage::default()
        })
    );
}

fn tools_usage() -> Usage {
    Usage {
        input_tokens: 125,
        output_tokens: 135,
        cached_input_tokens: 64,
        cache_creation_input_tokens: 0,
        reasoning_tokens: 95,
    }
}

#[test]
fn decodes_tool_call_fixture() {
    let r = decode_response(GENERATE_TOOLS.as_bytes(), "fallback").unwrap();
    let c = &r.choices[0];
    assert_eq!(
        c.message.content,
        vec![
            ContentPart::Thinking {
                text: "**Planning the lookup**\nThe user wants weather for two cities.".into(),
                signature: None
            },
            ContentPart::text("Let me check both cities."),
        ]
    );
    assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
    let calls = &c.message.tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].name, "get_weather");
    let args: Value = serde_json::from_str(&calls[0].arguments).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));
    assert_eq!(split_call_id(&calls[0].id).1.as_deref(), Some(SIG));
    assert_eq!(split_call_id(&calls[1].id).1, None);
    assert_ne!(split_call_id(&calls[0].id).0, calls[1].id);
    assert_eq!(r.usage, Some(tools_usage()));
}

#[test]
fn decoded_tool_calls_round_trip_into_the_next_request() {
    let r = decode_response(GENERATE_TOOLS.as_bytes(), "m").unwrap();
    let mut msgs = vec![
        text_msg(Role::User, "weather?"),
        r.choices[0].message.clone(),
    ];
    for tc in &r.choices[0].message.tool_calls {
        let mut t = text_msg(Role::Tool, "sunny");
        t.tool_call_id = Some(tc.id.clone());
        msgs.push(t);
    }
    let req = ChatRequest {
        messages: msgs,
        ..ChatRequest::default()
    };
    let v: Value =
        serde_json::from_slice(&encode_request(&req, &Quirks::default()).unwrap()).unwrap();
    let model_parts = v["contents"][1]["parts"].as_array().unwrap();
    // Unsigned thought text is not replayed; text + 2 calls are.
    assert_eq!(model_parts.len(), 3);
    assert_eq!(model_parts[1]["thoughtSignature"], SIG);
    assert!(model_parts[2].get("thoughtSignature").is_none());
    let responses = v["contents"][2]["parts"].as_array().unwrap();
    assert_eq!(responses.len(), 2);
    assert_eq!(
        responses[0]["functionResponse"]["id"],
        model_parts[1]["functionCall"]["id"]
    );
    assert_eq!(responses[0]["functionResponse"]["name"], "get_weather");
    assert_eq!(
        responses[1]["functionResponse"]["response"],
        json!({"output": "sunny"})
    );
}

#[test]
fn decodes_blocked_prompt() {
    let r = decode_response(GENERATE_BLOCKED.as_bytes(), "fallback").unwrap();
    assert_eq!(r.choices.len(), 1);
    assert_eq!(
        r.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
    assert_eq!(r.choices[0].message.text(), "");
    assert_eq!(r.usage.unwrap().input_tokens, 8);
}

#[test]
fn decodes_multiple_candidates() {
    let r = decode_response(GENERATE_TWO.as_bytes(), "fallback").unwrap();
    assert_eq!(r.model, "gemini-2.0-flash");
    assert!(r.id.starts_with("gemini-"));
    let summary: Vec<_> = r
        .choices
        .iter()
        .map(|c| (c.index, c.message.text(), c.finish_reason))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "Once upon a time".to_owned(), Some(FinishReason::Length)),
            (1, "In a land".to_owned(), Some(FinishReason::ContentFilter)),
        ]
    );
}

#[test]
fn finish_reason_table() {
    use super::response::map_finish;
    assert_eq!(map_finish("STOP", false), FinishReason::Stop);
    assert_eq!(map_finish("STOP", true), FinishReason::ToolCalls);
    assert_eq!(map_finish("MAX_TOKENS", true), FinishReason::Length);
    for r in [
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
    ] {
        assert_eq!(map_finish(r, false), FinishReason::ContentFilter, "{r}");
    }
    for r in [
        "MALFORMED_FUNCTION_CALL",
        "OTHER",
        "UNEXPECTED_TOOL_CALL",
        "SOMETHING_NEW",
    ] {
        assert_eq!(map_finish(r, false), FinishReason::Stop, "{r}");
    }
}

#[test]
fn decode_response_rejects_garbage_and_surfaces_errors() {
    let e = decode_response(b"<html>", "m").unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadGateway);
    let e = decode_response(ERROR_RATE.as_bytes(), "m").unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimit);
    // An empty object is a valid (if useless) response.
    let r = decode_response(b"{}", "m").unwrap();
    assert!(r.choices.is_empty());
    assert_eq!(r.model, "m");
}

#[test]
fn extracts_usage() {
    assert_eq!(
        extract_usage(GENERATE_TOOLS.as_bytes()),
        Some(tools_usage())
    );
    let arr = format!("[{GENERATE_TEXT}, {GENERATE_TOOLS}, {{\"candidates\": []}}]");
    assert_eq!(extract_usage(arr.as_bytes()), Some(tools_usage()));
    assert_eq!(extract_usage(b"{\"candidates\": []}"), None);
    assert_eq!(extract_usage(b"nope"), None);
}

// ---------------------------------------------------------------- streams

#[test]
fn stream_assembles_to_the_non_stream_response() {
    let events = run_stream(STREAM_TOOLS);
    let whole = decode_response(GENERATE_TOOLS.as_bytes(), "x").unwrap();
    let want = &whole.choices[0];

    assert!(matches!(&events[0], StreamEvent::Start { id, model, .. }
        if id == "resp-tools-1" && model == "gemini-2.5-pro"));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Start { .. }))
            .count(),
        1
    );

    let (mut thinking, mut text) = (String::new(), String::new());
    let mut calls: Vec<(u32, String, String, String)> = Vec::new();
    let mut finishes = Vec::new();
    let mut usage = None;
    for e in &events[1..] {
        match e {
            StreamEvent::ThinkingDelta { choice: 0, text: t } => thinking.push_str(t),
            StreamEvent::TextDelta { choice: 0, text: t } => text.push_str(t),
            StreamEvent::ToolCallStart {
                choice: 0,
                index,
                id,
                name,
            } => {
                assert_eq!(*index as usize, calls.len());
                calls.push((*index, id.clone(), name.clone(), String::new()));
            }
            StreamEvent::ToolCallDelta {
                choice: 0,
                index,
                arguments,
            } => {
                calls[*index as usize].3.push_str(arguments);
            }
            StreamEvent::Finish { choice, reason, .. } => finishes.push((*choice, *reason)),
            StreamEvent::Usage(u) => usage = Some(*u),
            other => panic!("unexpected event {other:?}"),
        }
    }
    let want_thinking: String = want
        .message
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Thinking { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(thinking, want_thinking);
    assert_eq!(text, want.message.text());
    assert_eq!(calls.len(), want.message.tool_calls.len());
    for ((_, id, name, args), w) in calls.iter().zip(&want.message.tool_calls) {
        assert_eq!(name, &w.name);
        let a: Value = serde_json::from_str(args).unwrap();
        let b: Value = serde_json::from_str(&w.arguments).unwrap();
        assert_eq!(a, b);
        assert_eq!(split_call_id(id).1, split_call_id(&w.id).1);
    }
    assert_eq!(finishes, vec![(0, want.finish_reason.unwrap())]);
    assert_eq!(usage, whole.usage);
}

#[test]
fn stream_usage_precedes_the_chunk_content() {
    // Gemini reports promptTokenCount from the first chunk on; the usage
    // must come before that chunk's content so an Anthropic client's
    // `message_start` (opened on the first content) carries input tokens.
    let sse = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}], \"role\": \"model\"}}], \"usageMetadata\": {\"promptTokenCount\": 7, \"totalTokenCount\": 7}}\n\n\
               data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}], \"role\": \"model\"}, \"finishReason\": \"STOP\"}], \"usageMetadata\": {\"promptTokenCount\": 7, \"candidatesTokenCount\": 2, \"totalTokenCount\": 9}}\n\n";
    let events = run_stream(sse);
    let StreamEvent::Usage(first) = &events[1] else {
        panic!("usage should follow Start directly: {events:?}")
    };
    assert_eq!((first.input_tokens, first.output_tokens), (7, 0));
    assert!(matches!(&events[2], StreamEvent::TextDelta { text, .. } if text == "Hel"));
    let StreamEvent::Usage(last) = &events[3] else {
        panic!("{events:?}")
    };
    assert_eq!((last.input_tokens, last.output_tokens), (7, 2));
    assert!(matches!(&events[4], StreamEvent::TextDelta { text, .. } if text == "lo"));
    assert!(matches!(&events[5], StreamEvent::Finish { .. }));
}

#[test]
fn stream_error_frame_ends_the_stream() {
    let mut with_more = STREAM_ERROR.to_owned();
    with_more.push_str(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"ignored\"}]}}]}\n\n",
    );
    let events = run_stream(&with_more);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(&events[0], StreamEvent::Start { id, .. } if id == "resp-err"));
    assert_eq!(
        events[1],
        StreamEvent::TextDelta {
            choice: 0,
            text: "Partial".into()
        }
    );
    let StreamEvent::Error(e) = &events[2] else {
        panic!("{events:?}")
    };
    assert_eq!(e.kind, ErrorKind::Overloaded);
    assert!(e.message.contains("overloaded") && e.message.contains("UNAVAILABLE"));
}

#[test]
fn stream_edge_cases() {
    // Not JSON → BadGateway.
    let mut dec = StreamDecoder::new("m");
    let mut out = Vec::new();
    let bad = SseFrame {
        event: None,
        data: "oops".into(),
    };
    assert_eq!(
        dec.on_frame(&bad, &mut out).unwrap_err().kind,
        ErrorKind::BadGateway
    );

    // Empty stream → Start + Error.
    let mut dec = StreamDecoder::new("m");
    let mut out = Vec::new();
    dec.finish(&mut out);
    assert!(matches!(&out[0], StreamEvent::Start { model, .. } if model == "m"));
    assert!(matches!(&out[1], StreamEvent::Error(e) if e.kind == ErrorKind::BadGateway));

    // Truncated stream (no finishReason) → Finish(Stop) at the end.
    let events = run_stream(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"hi\"}]}}]}\n\n",
    );
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::Stop,
            stop_sequence: None
        })
    );

    // Blocked prompt in a stream.
    let sse = format!("data: {}\n\n", GENERATE_BLOCKED.replace('\n', ""));
    let events = run_stream(&sse);
    assert!(events.contains(&StreamEvent::Finish {
        choice: 0,
        reason: FinishReason::ContentFilter,
        stop_sequence: None
    }));

    // Two candidates stream independently; thought signature → SignatureDelta.
    let sse = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}]}}, {\"index\": 1, \"content\": {\"parts\": [{\"text\": \"t\", \"thought\": true, \"thoughtSignature\": \"c2ln\"}]}}]}\n\n\
               data: {\"candidates\": [{\"index\": 1, \"content\": {\"parts\": [{\"functionCall\": {\"id\": \"fc1\", \"name\": \"f\"}}]}, \"finishReason\": \"STOP\"}, {\"index\": 0, \"finishReason\": \"MAX_TOKENS\"}]}\n\n";
    let events = run_stream(sse);
    assert_eq!(
        &events[1..],
        &[
            StreamEvent::TextDelta {
                choice: 0,
                text: "a".into()
            },
            StreamEvent::ThinkingDelta {
                choice: 1,
                text: "t".into()
            },
            StreamEvent::SignatureDelta {
                choice: 1,
                signature: "c2ln".into()
            },
            StreamEvent::ToolCallStart {
                choice: 1,
                index: 0,
                id: "fc1".into(),
                name: "f".into()
            },
            StreamEvent::ToolCallDelta {
                choice: 1,
                index: 0,
                arguments: "{}".into()
            },
            StreamEvent::Finish {
                choice: 1,
                reason: FinishReason::ToolCalls,
                stop_sequence: None
            },
            StreamEvent::Finish {
                choice: 0,
                reason: FinishReason::Length,
                stop_sequence: None
            },
        ]
    );
}

// ----------------------------------------------------------------- errors

#[test]
fn error_mapping() {
    let e = decode_error(400, ERROR_INVALID.as_bytes());
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("contents is not specified"));
    assert!(e.message.ends_with("(INVALID_ARGUMENT)"));
    assert_eq!(e.provider_type.as_deref(), Some("INVALID_ARGUMENT"));

    let e = decode_error(400, ERROR_API_KEY.as_bytes());
    assert_eq!(e.kind, ErrorKind::Authentication);
    assert_eq!(e.code.as_deref(), Some("API_KEY_INVALID"));

    let e = decode_error(429, ERROR_RATE.as_bytes());
    assert_eq!(e.kind, ErrorKind::RateLimit);

    for (status, kind) in [
        (403, ErrorKind::PermissionDenied),
        (404, ErrorKind::NotFound),
        (500, ErrorKind::Api),
        (503, ErrorKind::Overloaded),
        (504, ErrorKind::Timeout),
    ] {
        assert_eq!(decode_error(status, b"").kind, kind, "{status}");
    }

    // Array-wrapped error (non-SSE streaming endpoint).
    let wrapped = format!("[{ERROR_RATE}]");
    assert_eq!(
        decode_error(429, wrapped.as_bytes()).kind,
        ErrorKind::RateLimit
    );

    // Non-JSON bodies: truncated text.
    let html = format!("<html>{}</html>", "é".repeat(2000));
    let e = decode_error(502, html.as_bytes());
    assert_eq!(e.kind, ErrorKind::Api);
    assert!(e.message.starts_with("Gemini returned HTTP 502: <html>"));
    assert!(e.message.len() < 700);
    assert!(decode_error(500, b"").message.contains("empty body"));
}

#[test]
fn encode_error_round_trips() {
    for kind in [
        ErrorKind::InvalidRequest,
        ErrorKind::Authentication,
        ErrorKind::PermissionDenied,
        ErrorKind::NotFound,
        ErrorKind::RequestTooLarge,
        ErrorKind::RateLimit,
        ErrorKind::Api,
        ErrorKind::Overloaded,
        ErrorKind::Timeout,
    ] {
        let err = crate::ir::ApiError::new(kind, "boom");
        let body = encode_error(&err);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], http_status(kind));
        let back = decode_error(http_status(kind), &body);
        assert_eq!(back.kind, kind, "{kind:?}");
        assert!(back.message.starts_with("boom ("));
    }
    assert_eq!(http_status(ErrorKind::Overloaded), 503);
    let err =
        crate::ir::ApiError::new(ErrorKind::InvalidRequest, "bad key").with_code("API_KEY_INVALID");
    let v: Value = serde_json::from_slice(&encode_error(&err)).unwrap();
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
    assert_eq!(
        decode_error(400, &encode_error(&err)).kind,
        ErrorKind::Authentication
    );
}

// ------------------------------------------------------------- embeddings

#[test]
fn embeddings() {
    let mut req = EmbeddingsRequest {
        model: "alias".into(),
        input: vec![
            EmbeddingInput::Text("hello".into()),
            EmbeddingInput::Text("world!!!".into()),
        ],
        single: false,
        dimensions: Some(3),
        encoding_format: None,
        user: Some("u".into()),
    };
    let v: Value =
        serde_json::from_slice(&encode_embeddings_request(&req, "gemini-embedding-001").unwrap())
            .unwrap();
    assert_eq!(
        v,
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 3},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "world!!!"}]}, "outputDimensionality": 3}
        ]})
    );
    assert_eq!(estimate_embeddings_usage(&req).input_tokens, 2 + 2);

    req.input.push(EmbeddingInput::Tokens(vec![1, 2]));
    let e = encode_embeddings_request(&req, "m").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert_eq!(e.param.as_deref(), Some("input"));
    req.input.clear();
    assert!(encode_embeddings_request(&req, "m").is_err());

    let r = decode_embeddings_response(EMBED_RESPONSE.as_bytes(), "gemini-embedding-001").unwrap();
    assert_eq!(r.model, "gemini-embedding-001");
    assert_eq!(r.data.len(), 2);
    assert_eq!(r.data[1], vec![-0.0014f32, 0.25, 0.001]);
    assert_eq!(r.usage, Usage::default());
    assert_eq!(
        decode_embeddings_response(b"{}", "m").unwrap_err().kind,
        ErrorKind::BadGateway
    );
}

// ------------------------------------------------------------- robustness

#[test]
fn no_panic_on_truncated_or_garbage_input() {
    let fixtures = [
        GENERATE_TEXT,
        GENERATE_TOOLS,
        GENERATE_BLOCKED,
        GENERATE_TWO,
        STREAM_TOOLS,
        STREAM_ERROR,
        ERROR_INVALID,
        ERROR_API_KEY,
        ERROR_RATE,
        EMBED_RESPONSE,
        REQUEST_CONVERSATION,
        "[{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"args\":[1]}},{\"text\":5}]}}]}]",
        "{\"candidates\":null,\"usageMetadata\":{\"promptTokenCount\":-1},\"error\":{\"code\":99999999999}}",
    ];
    for fx in fixtures {
        let bytes = fx.as_bytes();
        for end in 0..=bytes.len() {
            let prefix = &bytes[..end];
            let _ = decode_response(prefix, "m");
            let _ = extract_usage(prefix);
            let _ = decode_error(400, prefix);
            let _ = decode_embeddings_response(prefix, "m");
            let text = String::from_utf8_lossy(prefix);
            let mut dec = StreamDecoder::new("m");
            let mut out = Vec::new();
            let _ = dec.on_frame(
                &SseFrame {
                    event: None,
                    data: text.clone().into_owned(),
                },
                &mut out,
            );
            for f in frames(&text) {
                let _ = dec.on_frame(&f, &mut out);
            }
            dec.finish(&mut out);
        }
    }
}
