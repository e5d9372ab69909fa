//! IR → `GenerateContentRequest`.
//!
//! # Schema conversion
//! Tool parameters go to `parametersJsonSchema` and structured-output
//! schemas to `responseJsonSchema`; both accept JSON Schema as a plain JSON
//! value, so the schema is forwarded nearly verbatim by [`json_schema`]:
//! the root `$schema` (a meta keyword Gemini has no use for) is removed,
//! and a root without `type` is declared an object. Unsupported keywords
//! are left for Gemini to ignore or reject; rewriting schemas into the
//! OpenAPI-subset `parameters` field would silently lose constraints.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerateContentRequest, GenerationConfig, Part, ThinkingConfig, Tool,
    ToolConfig,
};
use super::{split_call_id, SKIP_SIGNATURE};
use crate::dialect::Quirks;
use crate::ir::{
    ApiError, ChatRequest, ContentPart, ImageSource, Message, ResponseFormat, Role, ToolChoice,
};

/// Encode a chat request as a Gemini `generateContent` /
/// `streamGenerateContent` body. The model goes in the URL ([`super::chat_path`]).
pub fn encode_request(req: &ChatRequest, q: &Quirks) -> Result<Vec<u8>, ApiError> {
    let mut system_parts: Vec<Part> = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    // Tool-call id (as the client holds it, and without its signature) → name.
    let mut call_names: HashMap<&str, &str> = HashMap::new();

    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                system_parts.extend(m.content.iter().filter_map(|p| match p {
                    ContentPart::Text(t) if !t.is_empty() => Some(text_part(t)),
                    _ => None,
                }));
            }
            Role::User => push_turn(&mut contents, "user", user_parts(m)),
            Role::Assistant => {
                for tc in &m.tool_calls {
                    call_names.insert(tc.id.as_str(), tc.name.as_str());
                    call_names.insert(split_call_id(&tc.id).0, tc.name.as_str());
                }
                push_turn(&mut contents, "model", model_parts(m));
            }
            Role::Tool => {
                let part = function_response_part(m, i, &call_names)?;
                push_turn(&mut contents, "user", vec![part]);
            }
        }
    }

    let system_instruction = (!system_parts.is_empty()).then_some(Content {
        role: None,
        parts: Some(system_parts),
    });

    let tools = if req.tools.is_empty() {
        Vec::new()
    } else {
        vec![Tool {
            function_declarations: req
                .tools
                .iter()
                .map(|t| FunctionDeclaration {
                    name: t.name.clone(),
                    description: t.description.clone().filter(|d| !d.is_empty()),
                    parameters_json_schema: parameters_schema(&t.parameters),
                })
                .collect(),
        }]
    };

    let tool_config = match (&req.tool_choice, tools.is_empty()) {
        (_, true) | (None, _) => None,
        (Some(choice), false) => Some(ToolConfig {
            function_calling_config: match choice {
                ToolChoice::Auto => FunctionCallingConfig {
                    mode: "AUTO",
                    allowed_function_names: Vec::new(),
                },
                ToolChoice::None => FunctionCallingConfig {
                    mode: "NONE",
                    allowed_function_names: Vec::new(),
                },
                ToolChoice::Required => FunctionCallingConfig {
                    mode: "ANY",
                    allowed_function_names: Vec::new(),
                },
                ToolChoice::Tool(name) => FunctionCallingConfig {
                    mode: "ANY",
                    allowed_function_names: vec![name.clone()],
                },
            },
        }),
    };

    let gc = generation_config(req, q);
    let body = GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config: (gc != GenerationConfig::default()).then_some(gc),
    };
    serde_json::to_vec(&body)
        .map_err(|e| ApiError::invalid(format!("cannot encode Gemini request: {e}")))
}

fn text_part(t: &str) -> Part {
    Part {
        text: Some(t.to_owned()),
        ..Part::default()
    }
}

/// Append parts as a turn, merging into the previous turn when it has the
/// same role (Gemini expects alternating turns). Empty turns are skipped.
fn push_turn(contents: &mut Vec<Content>, role: &str, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut() {
        if last.role.as_deref() == Some(role) {
            last.parts.get_or_insert_with(Vec::new).extend(parts);
            return;
        }
    }
    contents.push(Content {
        role: Some(role.to_owned()),
        parts: Some(parts),
    });
}

fn image_part(source: &ImageSource) -> Part {
    match source {
        ImageSource::Base64 { media_type, data } => Part {
            inline_data: Some(Blob {
                mime_type: media_type.clone(),
                data: data.clone(),
            }),
            ..Part::default()
        },
        ImageSource::Url(url) => Part {
            file_data: Some(FileData {
                mime_type: guess_image_mime(url).map(str::to_owned),
                file_uri: url.clone(),
            }),
            ..Part::default()
        },
    }
}

/// MIME type from a URL's file extension (`fileData.mimeType` is optional,
/// so unknown extensions send none). Limitation: the Gemini Developer API
/// only fetches some URIs itself (Files API URIs, YouTube, and public
/// HTTP(S) URLs on recent models); anything else is rejected upstream. The
/// gateway does not download images to inline them.
fn guess_image_mime(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

fn user_parts(m: &Message) -> Vec<Part> {
    m.content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text(t) if !t.is_empty() => Some(text_part(t)),
            ContentPart::Image { source, .. } => Some(image_part(source)),
            _ => None,
        })
        .collect()
}

fn model_parts(m: &Message) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    let mut has_text = false;
    for p in &m.content {
        match p {
            ContentPart::Text(t) if !t.is_empty() => {
                has_text = true;
                parts.push(text_part(t));
            }
            // Unsigned thought text carries nothing Gemini can use.
            ContentPart::Thinking {
                text,
                signature: Some(sig),
            } if !sig.is_empty() => parts.push(Part {
                text: Some(text.clone()),
                thought: Some(true),
                thought_signature: Some(sig.clone()),
                ..Part::default()
            }),
            ContentPart::Image { source, .. } => parts.push(image_part(source)),
            _ => {}
        }
    }
    if !has_text {
        if let Some(r) = m.refusal.as_deref().filter(|r| !r.is_empty()) {
            parts.push(text_part(r));
        }
    }
    let first_call = parts.len();
    let mut any_signature = false;
    for tc in &m.tool_calls {
        let (id, signature) = split_call_id(&tc.id);
        any_signature |= signature.is_some();
        let args = match serde_json::from_str::<Value>(&tc.arguments) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::Object(Map::new()),
        };
        parts.push(Part {
            function_call: Some(FunctionCall {
                id: (!id.is_empty()).then(|| id.to_owned()),
                name: tc.name.clone(),
                args: Some(args),
            }),
            thought_signature: signature,
            ..Part::default()
        });
    }
    if !any_signature {
        if let Some(p) = parts.get_mut(first_call) {
            p.thought_signature = Some(SKIP_SIGNATURE.to_owned());
        }
    }
    parts
}

fn function_response_part(
    m: &Message,
    index: usize,
    call_names: &HashMap<&str, &str>,
) -> Result<Part, ApiError> {
    let param = format!("messages[{index}].tool_call_id");
    let Some(call_id) = m.tool_call_id.as_deref() else {
        return Err(ApiError::invalid_param(
            &param,
            format!("messages[{index}]: a tool message needs a tool_call_id"),
        ));
    };
    let (id, _) = split_call_id(call_id);
    let Some(name) = call_names
        .get(call_id)
        .or_else(|| call_names.get(id))
        .copied()
    else {
        return Err(ApiError::invalid_param(
            &param,
            format!(
                "messages[{index}]: tool_call_id '{call_id}' does not match any earlier \
                 assistant tool call (Gemini needs the function name for a tool result)"
            ),
        ));
    };
    Ok(Part {
        function_response: Some(FunctionResponse {
            id: (!id.is_empty()).then(|| id.to_owned()),
            name: name.to_owned(),
            response: tool_response_object(&m.text(), m.is_error),
        }),
        ..Part::default()
    })
}

/// The `functionResponse.response` object for a tool's output text: a JSON
/// object is used as is, anything else wrapped as `{"output": …}` (JSON
/// values parsed, other text as a string); errors as `{"error": …}`.
fn tool_response_object(text: &str, is_error: bool) -> Map<String, Value> {
    let parsed = serde_json::from_str::<Value>(text).ok();
    match parsed {
        Some(Value::Object(obj)) if !is_error => obj,
        parsed => {
            let value = parsed.unwrap_or_else(|| Value::String(text.to_owned()));
            let key = if is_error { "error" } else { "output" };
            let mut obj = Map::new();
            obj.insert(key.to_owned(), value);
            obj
        }
    }
}

/// `parametersJsonSchema` for a tool, or `None` for a function that takes
/// no parameters.
pub(super) fn parameters_schema(schema: &Value) -> Option<Value> {
    let schema = json_schema(schema);
    let obj = schema.as_object()?;
    let no_props = obj
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    let trivial = obj.iter().all(|(k, v)| match k.as_str() {
        "type" => v == "object",
        "properties" => v.as_object().is_some_and(Map::is_empty),
        "required" => v.as_array().is_some_and(Vec::is_empty),
        "additionalProperties" => true,
        _ => false,
    });
    if no_props && trivial {
        None
    } else {
        Some(schema)
    }
}

/// Prepare a JSON Schema for Gemini's `*JsonSchema` fields (see the
/// module docs): drop the root `$schema`, default the root `type` to
/// `object`, and turn a non-object schema into an empty object schema.
pub(super) fn json_schema(schema: &Value) -> Value {
    let mut obj = match schema {
        Value::Object(obj) => obj.clone(),
        _ => Map::new(),
    };
    obj.remove("$schema");
    let has_combinator = ["anyOf", "oneOf", "allOf", "$ref"]
        .iter()
        .any(|k| obj.contains_key(*k));
    if !obj.contains_key("type") && !has_combinator {
        obj.insert("type".to_owned(), Value::String("object".to_owned()));
    }
    Value::Object(obj)
}

fn generation_config(req: &ChatRequest, q: &Quirks) -> GenerationConfig {
    let (response_mime_type, response_json_schema) = match &req.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema { schema, .. }) => (
            Some("application/json"),
            q.json_schema.then(|| json_schema(schema)),
        ),
    };
    GenerationConfig {
        stop_sequences: req.stop.clone(),
        candidate_count: req.n.filter(|_| q.n),
        max_output_tokens: req.max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        // `seed` is int32 upstream; wider seeds wrap (still deterministic).
        seed: req.seed.filter(|_| q.seed).map(|s| s as i32),
        presence_penalty: req.presence_penalty.filter(|_| q.penalties),
        frequency_penalty: req.frequency_penalty.filter(|_| q.penalties),
        response_mime_type,
        response_json_schema,
        thinking_config: thinking_config(req),
    }
}

/// `thinkingConfig` from `thinking` (exact budget) or `reasoning_effort`.
fn thinking_config(req: &ChatRequest) -> Option<ThinkingConfig> {
    if let Some(t) = req.thinking {
        return Some(ThinkingConfig {
            include_thoughts: Some(true),
            thinking_budget: Some(i64::from(t.budget_tokens)),
        });
    }
    let effort = req.reasoning_effort.as_deref()?;
    let budget = match effort.to_ascii_lowercase().as_str() {
        "none" => {
            return Some(ThinkingConfig {
                include_thoughts: None,
                thinking_budget: Some(0),
            })
        }
        "minimal" => 512,
        "low" => 1024,
        "medium" => 8192,
        "high" => 24576,
        _ => -1,
    };
    Some(ThinkingConfig {
        include_thoughts: Some(true),
        thinking_budget: Some(budget),
    })
}
