//! `streamGenerateContent?alt=sse` → [`StreamEvent`]s.
//!
//! Every SSE `data:` is a complete `GenerateContentResponse` chunk holding
//! the *new* parts only; `usageMetadata` is cumulative.

use super::response::{classify, map_finish, usage_from, Piece};
use super::wire::GenerateContentResponse;
use super::{now_secs, CallIds};
use crate::ir::{ApiError, ErrorKind, FinishReason, StreamEvent, Usage};
use crate::sse::SseFrame;

#[derive(Debug, Default)]
struct ChoiceState {
    index: u32,
    /// Tool calls seen so far (the next call's `index`).
    tool_calls: u32,
    /// Any event was emitted for this choice.
    active: bool,
    finished: bool,
}

/// Streaming decoder for Gemini SSE frames.
///
/// Guarantees: `Start` exactly once and first (also before an `Error`
/// that arrives in the first frame); each `functionCall` part becomes a
/// `ToolCallStart` plus one `ToolCallDelta` with the whole arguments JSON;
/// `Finish` once per candidate (`ToolCalls` if it called a function);
/// `Usage` whenever a chunk carries changed `usageMetadata`, before that
/// chunk's content events; nothing after an `Error`.
#[derive(Debug)]
pub struct StreamDecoder {
    fallback_model: String,
    ids: CallIds,
    started: bool,
    done: bool,
    choices: Vec<ChoiceState>,
    last_usage: Option<Usage>,
}

impl StreamDecoder {
    pub fn new(fallback_model: &str) -> Self {
        StreamDecoder {
            fallback_model: fallback_model.to_owned(),
            ids: CallIds::new(),
            started: false,
            done: false,
            choices: Vec::new(),
            last_usage: None,
        }
    }

    /// Handle one SSE frame. A frame that is not JSON is an upstream
    /// protocol violation: `Err` with kind `BadGateway`.
    pub fn on_frame(&mut self, f: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        let data = f.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let chunk: GenerateContentResponse = serde_json::from_str(data).map_err(|e| {
            ApiError::new(
                ErrorKind::BadGateway,
                format!("invalid JSON in Gemini stream frame: {e}"),
            )
        })?;
        self.ensure_start(
            chunk.response_id.as_deref(),
            chunk.model_version.as_deref(),
            out,
        );
        if let Some(err) = chunk.error {
            out.push(StreamEvent::Error(super::error::from_status(None, err)));
            self.done = true;
            return Ok(());
        }

        // Usage first: `usageMetadata` is cumulative and already counts this
        // chunk, and Gemini reports `promptTokenCount` from the first chunk
        // on, so a client encoder that opens its message on the first
        // content (Anthropic's `message_start`) can carry the input tokens.
        if let Some(meta) = chunk.usage_metadata.as_ref() {
            let usage = usage_from(meta);
            if self.last_usage != Some(usage) {
                self.last_usage = Some(usage);
                out.push(StreamEvent::Usage(usage));
            }
        }

        let candidates = chunk.candidates.unwrap_or_default();
        let blocked = candidates.is_empty()
            && chunk
                .prompt_feedback
                .is_some_and(|f| f.block_reason.is_some());
        for (pos, cand) in candidates.into_iter().enumerate() {
            let index = cand.index.unwrap_or(u32::try_from(pos).unwrap_or(u32::MAX));
            let slot = self.slot(index);
            for part in cand.content.and_then(|c| c.parts).unwrap_or_default() {
                let piece = classify(part, &mut self.ids);
                let st = &mut self.choices[slot];
                if st.finished {
                    continue;
                }
                emit_piece(st, piece, out);
            }
            if let Some(reason) = cand.finish_reason.as_deref() {
                let st = &mut self.choices[slot];
                if !st.finished {
                    st.finished = true;
                    st.active = true;
                    out.push(StreamEvent::Finish {
                        choice: index,
                        reason: map_finish(reason, st.tool_calls > 0),
                        stop_sequence: None,
                    });
                }
            }
        }
        if blocked {
            let slot = self.slot(0);
            let st = &mut self.choices[slot];
            if !st.finished {
                st.finished = true;
                st.active = true;
                out.push(StreamEvent::Finish {
                    choice: 0,
                    reason: FinishReason::ContentFilter,
                    stop_sequence: None,
                });
            }
        }
        Ok(())
    }

    /// The upstream stream ended. Candidates that produced output but no
    /// `finishReason` get a `Finish`; a stream with no chunk at all yields
    /// an `Error` (kind `BadGateway`).
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        self.done = true;
        if !self.started {
            self.ensure_start(None, None, out);
            out.push(StreamEvent::Error(ApiError::new(
                ErrorKind::BadGateway,
                "Gemini stream ended without any response",
            )));
            return;
        }
        for st in &mut self.choices {
            if st.active && !st.finished {
                st.finished = true;
                out.push(StreamEvent::Finish {
                    choice: st.index,
                    reason: if st.tool_calls > 0 {
                        FinishReason::ToolCalls
                    } else {
                        FinishReason::Stop
                    },
                    stop_sequence: None,
                });
            }
        }
    }

    fn ensure_start(&mut self, id: Option<&str>, model: Option<&str>, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(StreamEvent::Start {
            id: id
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("gemini-{}", super::nonce())),
            model: model
                .filter(|s| !s.is_empty())
                .unwrap_or(&self.fallback_model)
                .to_owned(),
            created: now_secs(),
            system_fingerprint: None,
        });
    }

    fn slot(&mut self, index: u32) -> usize {
        if let Some(i) = self.choices.iter().position(|c| c.index == index) {
            return i;
        }
        self.choices.push(ChoiceState {
            index,
            ..ChoiceState::default()
        });
        self.choices.len() - 1
    }
}

fn emit_piece(st: &mut ChoiceState, piece: Piece, out: &mut Vec<StreamEvent>) {
    let choice = st.index;
    match piece {
        Piece::Text(text) => {
            st.active = true;
            out.push(StreamEvent::TextDelta { choice, text });
        }
        Piece::Thought { text, signature } => {
            st.active = true;
            if !text.is_empty() {
                out.push(StreamEvent::ThinkingDelta { choice, text });
            }
            if let Some(signature) = signature {
                out.push(StreamEvent::SignatureDelta { choice, signature });
            }
        }
        Piece::Call(tc) => {
            st.active = true;
            let index = st.tool_calls;
            st.tool_calls += 1;
            out.push(StreamEvent::ToolCallStart {
                choice,
                index,
                id: tc.id,
                name: tc.name,
            });
            out.push(StreamEvent::ToolCallDelta {
                choice,
                index,
                arguments: tc.arguments,
            });
        }
        // No stream event carries images; text-only streams are the norm.
        Piece::Image(_) | Piece::Nothing => {}
    }
}
