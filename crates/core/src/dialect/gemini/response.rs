//! `GenerateContentResponse` → IR.

use super::wire::{Candidate, GenerateContentResponse, Part, UsageMetadata};
use super::{now_secs, CallIds};
use crate::ir::{
    ApiError, ChatResponse, Choice, ContentPart, ErrorKind, FinishReason, ImageSource, Message,
    Role, ToolCall, Usage,
};

/// Decode a non-streaming `generateContent` response body.
pub fn decode_response(body: &[u8], fallback_model: &str) -> Result<ChatResponse, ApiError> {
    let resp: GenerateContentResponse = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::BadGateway,
            format!("invalid Gemini response body: {e}"),
        )
    })?;
    if let Some(err) = resp.error {
        return Err(super::error::from_status(None, err));
    }
    let mut ids = CallIds::new();
    let candidates = resp.candidates.unwrap_or_default();
    let mut choices: Vec<Choice> = candidates
        .into_iter()
        .enumerate()
        .map(|(pos, c)| decode_candidate(c, pos, &mut ids))
        .collect();
    if choices.is_empty() {
        if let Some(_reason) = resp.prompt_feedback.and_then(|f| f.block_reason) {
            choices.push(Choice {
                index: 0,
                message: Message::new(Role::Assistant, vec![ContentPart::Text(String::new())]),
                finish_reason: Some(FinishReason::ContentFilter),
                stop_sequence: None,
            });
        }
    }
    Ok(ChatResponse {
        id: resp
            .response_id
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("gemini-{}", super::nonce())),
        model: resp
            .model_version
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| fallback_model.to_owned()),
        created: now_secs(),
        choices,
        usage: resp.usage_metadata.as_ref().map(usage_from),
        system_fingerprint: None,
    })
}

fn decode_candidate(c: Candidate, pos: usize, ids: &mut CallIds) -> Choice {
    let index = c.index.unwrap_or(u32::try_from(pos).unwrap_or(u32::MAX));
    let mut content: Vec<ContentPart> = Vec::new();
    let mut tool_calls: Vec<ToolCall> = Vec::new();
    for part in c.content.and_then(|c| c.parts).unwrap_or_default() {
        match classify(part, ids) {
            Piece::Text(t) => push_text(&mut content, t),
            Piece::Thought { text, signature } => push_thought(&mut content, text, signature),
            Piece::Image(source) => content.push(ContentPart::Image {
                source,
                detail: None,
            }),
            Piece::Call(tc) => tool_calls.push(tc),
            Piece::Nothing => {}
        }
    }
    let finish_reason = c
        .finish_reason
        .as_deref()
        .map(|r| map_finish(r, !tool_calls.is_empty()));
    let mut message = Message::new(Role::Assistant, content);
    message.tool_calls = tool_calls;
    Choice {
        index,
        message,
        finish_reason,
        stop_sequence: None,
    }
}

/// What one Gemini part means in the IR.
pub(super) enum Piece {
    Text(String),
    Thought {
        text: String,
        signature: Option<String>,
    },
    Image(ImageSource),
    Call(ToolCall),
    /// Parts the IR has no place for (executable code, empty parts, …).
    Nothing,
}

pub(super) fn classify(part: Part, ids: &mut CallIds) -> Piece {
    if let Some(fc) = part.function_call {
        let args = match fc.args {
            Some(v @ serde_json::Value::Object(_)) => v.to_string(),
            _ => "{}".to_owned(),
        };
        return Piece::Call(ToolCall {
            id: ids.id_for(fc.id.as_deref(), part.thought_signature.as_deref()),
            name: fc.name,
            arguments: args,
        });
    }
    if part.thought == Some(true) {
        let text = part.text.unwrap_or_default();
        let signature = part.thought_signature.filter(|s| !s.is_empty());
        if text.is_empty() && signature.is_none() {
            return Piece::Nothing;
        }
        return Piece::Thought { text, signature };
    }
    if let Some(text) = part.text {
        // A signature on a plain text part is dropped (see module docs).
        return if text.is_empty() {
            Piece::Nothing
        } else {
            Piece::Text(text)
        };
    }
    if let Some(blob) = part.inline_data {
        return Piece::Image(ImageSource::Base64 {
            media_type: blob.mime_type,
            data: blob.data,
        });
    }
    Piece::Nothing
}

fn push_text(content: &mut Vec<ContentPart>, t: String) {
    if let Some(ContentPart::Text(prev)) = content.last_mut() {
        prev.push_str(&t);
    } else {
        content.push(ContentPart::Text(t));
    }
}

/// Thought parts accumulate until one carries a signature, which closes
/// the block (Gemini sends the signature on the last part of a thought).
fn push_thought(content: &mut Vec<ContentPart>, text: String, signature: Option<String>) {
    if let Some(ContentPart::Thinking {
        text: prev,
        signature: prev_sig @ None,
    }) = content.last_mut()
    {
        prev.push_str(&text);
        *prev_sig = signature;
    } else {
        content.push(ContentPart::Thinking { text, signature });
    }
}

/// Gemini `FinishReason` → IR (see the module docs for the table).
pub(super) fn map_finish(reason: &str, has_tool_calls: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        _ if has_tool_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

pub(super) fn usage_from(u: &UsageMetadata) -> Usage {
    let thoughts = u.thoughts_token_count.unwrap_or(0);
    Usage {
        input_tokens: u.prompt_token_count.unwrap_or(0)
            + u.tool_use_prompt_token_count.unwrap_or(0),
        output_tokens: u.candidates_token_count.unwrap_or(0) + thoughts,
        cached_input_tokens: u.cached_content_token_count.unwrap_or(0),
        cache_creation_input_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

/// Usage from a Gemini response body: a `GenerateContentResponse` object,
/// or a JSON array of them (`streamGenerateContent` without `alt=sse`), in
/// which case the last chunk carrying `usageMetadata` wins.
pub fn extract_usage(body_json: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct UsageOnly {
        #[serde(default)]
        usage_metadata: Option<UsageMetadata>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Body {
        One(UsageOnly),
        Many(Vec<UsageOnly>),
    }
    let meta = match serde_json::from_slice::<Body>(body_json).ok()? {
        Body::One(r) => r.usage_metadata,
        Body::Many(rs) => rs.into_iter().rev().find_map(|r| r.usage_metadata),
    }?;
    Some(usage_from(&meta))
}
