//! Streaming: `chat.completion.chunk` SSE frames ⇄ `StreamEvent`s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{encode_stream_error, error_from_value};
use super::wire::{
    finish_from_wire, finish_to_wire, lenient_u32, lenient_u64, stop_sequence, ArgumentsIn,
    UsageIn, UsageOut,
};
use crate::ir::{ApiError, ErrorKind, StreamEvent, Usage};
use crate::sse::{write_event, write_json_event, SseFrame};

// ---------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct ChunkIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    created: u64,
    #[serde(default)]
    system_fingerprint: Option<String>,
    #[serde(default)]
    choices: Option<Vec<ChunkChoiceIn>>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoiceIn {
    #[serde(default, deserialize_with = "lenient_u32")]
    index: u32,
    #[serde(default)]
    delta: Option<DeltaIn>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    stop_reason: Option<Value>,
}

#[derive(Deserialize)]
struct DeltaIn {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    /// vLLM / OpenRouter name for `reasoning_content`.
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDeltaIn>>,
}

#[derive(Deserialize)]
struct ToolCallDeltaIn {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDeltaIn>,
}

#[derive(Deserialize)]
struct FunctionDeltaIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<ArgumentsIn>,
}

/// One started tool call: the upstream's index and id, and ours.
struct ToolSlot {
    upstream_index: Option<u32>,
    id: String,
    index: u32,
}

#[derive(Default)]
struct ChoiceState {
    tools: Vec<ToolSlot>,
    /// Our index of the call that received the last fragment.
    last_tool: Option<u32>,
    finished: bool,
}

impl ChoiceState {
    /// Our index for a fragment, or `None` if it starts a new call.
    fn resolve(&self, d: &ToolCallDeltaIn) -> Option<u32> {
        let slot = match d.index {
            Some(i) => self
                .tools
                .iter()
                .rev()
                .find(|s| s.upstream_index == Some(i)),
            None if d.id.is_some() => None,
            None => return self.last_tool,
        }?;
        // A new id at a known index is a new call (some compatibles reuse 0).
        match d.id.as_deref() {
            Some(id) if !id.is_empty() && id != slot.id => None,
            _ => Some(slot.index),
        }
    }
}

/// Turns upstream `chat.completion.chunk` frames into `StreamEvent`s.
///
/// Emits `Start` from the first chunk; text, `reasoning_content` (or
/// `reasoning`) and refusal deltas; `ToolCallStart` on a call's first
/// fragment, then `ToolCallDelta`s (upstream indices are renumbered from 0
/// per choice, so gaps or reused indices are harmless); one `Finish` per
/// choice; `Usage` whenever a chunk carries it; `Error` for an
/// `{"error": …}` chunk. Empty frames are ignored; a frame that is not
/// JSON is an `Err` (502).
#[derive(Default)]
pub struct StreamDecoder {
    started: bool,
    done: bool,
    errored: bool,
    choices: BTreeMap<u32, ChoiceState>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once `data: [DONE]` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn on_frame(&mut self, f: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        let data = f.data.trim();
        if data.is_empty() || self.errored {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: ChunkIn = serde_json::from_str(data).map_err(|e| {
            ApiError::new(
                ErrorKind::BadGateway,
                format!("upstream sent an invalid stream chunk: {e}"),
            )
        })?;
        if let Some(err) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            self.errored = true;
            out.push(StreamEvent::Error(error_from_value(None, err)));
            return Ok(());
        }
        if f.event.as_deref() == Some("error") {
            self.errored = true;
            out.push(StreamEvent::Error(ApiError::new(
                ErrorKind::Api,
                format!("upstream sent an error event: {data}"),
            )));
            return Ok(());
        }
        self.on_chunk(chunk, out);
        Ok(())
    }

    fn on_chunk(&mut self, chunk: ChunkIn, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id.unwrap_or_default(),
                model: chunk.model.unwrap_or_default(),
                created: chunk.created,
                system_fingerprint: chunk.system_fingerprint,
            });
        }
        for c in chunk.choices.unwrap_or_default() {
            self.on_choice(c, out);
        }
        if let Some(u) = &chunk.usage {
            out.push(StreamEvent::Usage(u.to_ir()));
        }
    }

    fn on_choice(&mut self, c: ChunkChoiceIn, out: &mut Vec<StreamEvent>) {
        let choice = c.index;
        let state = self.choices.entry(choice).or_default();
        if let Some(d) = c.delta {
            let push = |out: &mut Vec<StreamEvent>,
                        s: Option<String>,
                        f: fn(u32, String) -> StreamEvent| {
                if let Some(text) = s.filter(|t| !t.is_empty()) {
                    out.push(f(choice, text));
                }
            };
            push(out, d.reasoning_content.or(d.reasoning), |choice, text| {
                StreamEvent::ThinkingDelta { choice, text }
            });
            push(out, d.content, |choice, text| StreamEvent::TextDelta {
                choice,
                text,
            });
            push(out, d.refusal, |choice, text| StreamEvent::RefusalDelta {
                choice,
                text,
            });
            for t in d.tool_calls.unwrap_or_default() {
                on_tool_delta(choice, state, t, out);
            }
        }
        if let Some(reason) = c.finish_reason.as_deref() {
            if !state.finished {
                state.finished = true;
                out.push(StreamEvent::Finish {
                    choice,
                    reason: finish_from_wire(reason),
                    stop_sequence: stop_sequence(c.stop_reason.as_ref()),
                });
            }
        }
    }

    /// End of the upstream body. If the stream was cut short — never
    /// started, or a choice has no finish reason and no `[DONE]` came —
    /// an `Error` (502) is emitted so the client learns the response is
    /// incomplete. A stream that finished every choice but omitted
    /// `[DONE]` (some compatibles do) is accepted.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.errored || self.done {
            return;
        }
        let message = if !self.started {
            "upstream closed the stream before sending any chunk"
        } else if self.choices.is_empty() || self.choices.values().any(|c| !c.finished) {
            "upstream closed the stream before it finished"
        } else {
            return;
        };
        self.errored = true;
        out.push(StreamEvent::Error(ApiError::new(
            ErrorKind::BadGateway,
            message,
        )));
    }
}

fn on_tool_delta(
    choice: u32,
    state: &mut ChoiceState,
    t: ToolCallDeltaIn,
    out: &mut Vec<StreamEvent>,
) {
    let index = match state.resolve(&t) {
        Some(i) => i,
        None => {
            let index = u32::try_from(state.tools.len()).unwrap_or(u32::MAX);
            let id = t.id.clone().unwrap_or_default();
            let name = t
                .function
                .as_ref()
                .and_then(|f| f.name.clone())
                .unwrap_or_default();
            state.tools.push(ToolSlot {
                upstream_index: t.index,
                id: id.clone(),
                index,
            });
            out.push(StreamEvent::ToolCallStart {
                choice,
                index,
                id,
                name,
            });
            index
        }
    };
    state.last_tool = Some(index);
    let arguments = t
        .function
        .and_then(|f| f.arguments)
        .map(ArgumentsIn::into_text)
        .unwrap_or_default();
    if !arguments.is_empty() {
        out.push(StreamEvent::ToolCallDelta {
            choice,
            index,
            arguments,
        });
    }
}

// ---------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'a str>,
    choices: Vec<ChunkChoiceOut<'a>>,
    /// Absent unless the client asked for usage; then `null` on every
    /// chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

#[derive(Serialize)]
struct ChunkChoiceOut<'a> {
    index: u32,
    delta: DeltaOut<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    /// `Some(None)` writes the `"refusal": null` of OpenAI's role delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDeltaOut<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDeltaOut<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDeltaOut<'a>,
}

#[derive(Serialize)]
struct FunctionDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Default)]
struct Meta {
    id: String,
    model: String,
    created: u64,
    system_fingerprint: Option<String>,
}

/// Turns `StreamEvent`s into OpenAI-exact `chat.completion.chunk` SSE bytes.
///
/// Every chunk repeats the `Start` metadata. Each choice opens with
/// `delta: {"role": "assistant", "content": "", "refusal": null}` (choice 0 right at
/// `Start`, others on their first event); a tool call opens with
/// `{index, id, type, function: {name, arguments: ""}}`; a finish reason
/// comes with an empty delta. With `include_usage`, chunks carry
/// `"usage": null` and `finish` adds the `choices: []` usage chunk (when
/// usage is known) before `data: [DONE]`. Signatures and redacted thinking
/// have no OpenAI form and are dropped. An `Error` event is written with
/// [`encode_stream_error`](super::encode_stream_error) and ends the stream:
/// `finish` then writes nothing, not even `[DONE]`.
pub struct StreamEncoder {
    include_usage: bool,
    meta: Meta,
    /// Choices whose role chunk was sent.
    opened: Vec<u32>,
    usage: Option<Usage>,
    ended: bool,
}

impl StreamEncoder {
    pub fn new(include_usage: bool) -> Self {
        StreamEncoder {
            include_usage,
            meta: Meta::default(),
            opened: Vec::new(),
            usage: None,
            ended: false,
        }
    }

    pub fn on_event(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match ev {
            StreamEvent::Start {
                id,
                model,
                created,
                system_fingerprint,
            } => {
                self.meta = Meta {
                    id: id.clone(),
                    model: model.clone(),
                    created: *created,
                    system_fingerprint: system_fingerprint.clone(),
                };
                self.open(0, out);
            }
            StreamEvent::TextDelta { choice, text } => self.delta(
                *choice,
                out,
                DeltaOut {
                    content: Some(text),
                    ..DeltaOut::default()
                },
            ),
            StreamEvent::RefusalDelta { choice, text } => self.delta(
                *choice,
                out,
                DeltaOut {
                    refusal: Some(Some(text)),
                    ..DeltaOut::default()
                },
            ),
            StreamEvent::ThinkingDelta { choice, text } => self.delta(
                *choice,
                out,
                DeltaOut {
                    reasoning_content: Some(text),
                    ..DeltaOut::default()
                },
            ),
            StreamEvent::SignatureDelta { .. } | StreamEvent::RedactedThinking { .. } => {}
            StreamEvent::ToolCallStart {
                choice,
                index,
                id,
                name,
            } => self.tool_delta(
                *choice,
                out,
                ToolCallDeltaOut {
                    index: *index,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionDeltaOut {
                        name: Some(name),
                        arguments: "",
                    },
                },
            ),
            StreamEvent::ToolCallDelta {
                choice,
                index,
                arguments,
            } => self.tool_delta(
                *choice,
                out,
                ToolCallDeltaOut {
                    index: *index,
                    id: None,
                    kind: None,
                    function: FunctionDeltaOut {
                        name: None,
                        arguments,
                    },
                },
            ),
            StreamEvent::Finish { choice, reason, .. } => {
                self.open(*choice, out);
                self.write(
                    out,
                    *choice,
                    DeltaOut::default(),
                    Some(finish_to_wire(*reason)),
                );
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Error(e) => {
                self.ended = true;
                encode_stream_error(e, out);
            }
        }
    }

    /// Close the stream: the usage chunk (if asked for and known), then
    /// `data: [DONE]`. Writes nothing after an `Error` or a second time.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let (true, Some(u)) = (self.include_usage, self.usage) {
            let chunk = self.chunk(Vec::new(), Some(Some(UsageOut::from_ir(&u))));
            write_json_event(out, &chunk);
        }
        write_event(out, None, "[DONE]");
    }

    fn chunk<'a>(
        &'a self,
        choices: Vec<ChunkChoiceOut<'a>>,
        usage: Option<Option<UsageOut>>,
    ) -> ChunkOut<'a> {
        ChunkOut {
            id: &self.meta.id,
            object: "chat.completion.chunk",
            created: self.meta.created,
            model: &self.meta.model,
            system_fingerprint: self.meta.system_fingerprint.as_deref(),
            choices,
            usage,
        }
    }

    fn write(
        &self,
        out: &mut Vec<u8>,
        index: u32,
        delta: DeltaOut<'_>,
        finish: Option<&'static str>,
    ) {
        let choice = ChunkChoiceOut {
            index,
            delta,
            logprobs: None,
            finish_reason: finish,
        };
        let usage = self.include_usage.then_some(None);
        write_json_event(out, &self.chunk(vec![choice], usage));
    }

    /// Send the role chunk for `choice` if not yet sent.
    fn open(&mut self, choice: u32, out: &mut Vec<u8>) {
        if self.opened.contains(&choice) {
            return;
        }
        self.opened.push(choice);
        let delta = DeltaOut {
            role: Some("assistant"),
            content: Some(""),
            refusal: Some(None),
            ..DeltaOut::default()
        };
        self.write(out, choice, delta, None);
    }

    fn delta(&mut self, choice: u32, out: &mut Vec<u8>, delta: DeltaOut<'_>) {
        self.open(choice, out);
        self.write(out, choice, delta, None);
    }

    fn tool_delta(&mut self, choice: u32, out: &mut Vec<u8>, call: ToolCallDeltaOut<'_>) {
        self.delta(
            choice,
            out,
            DeltaOut {
                tool_calls: Some([call]),
                ..DeltaOut::default()
            },
        );
    }
}
