//! Streaming state machines: Anthropic SSE → `StreamEvent`s (decoder) and
//! `StreamEvent`s → Anthropic SSE (encoder).

use std::collections::HashMap;

use serde::Serialize;

use super::decode::{finish_from_wire, now_secs};
use super::encode::{stop_reason, EmptyObject, OutUsage};
use super::wire::{BlockDelta, RawUsage, StartBlock, TextDeltaEvent, WireEvent};
use super::{kind_from_type, truncate};
use crate::ir::{ApiError, ErrorKind, FinishReason, StreamEvent, Usage};
use crate::sse::{write_event, SseFrame};

/// What an upstream content block (by Anthropic `index`) is.
#[derive(Debug)]
enum UpBlock {
    Text,
    Thinking,
    Tool {
        /// IR tool-call index (counts tool calls only).
        index: u32,
        /// `input` given in `content_block_start` when non-empty; emitted at
        /// `content_block_stop` if no `input_json_delta` arrived.
        initial: Option<String>,
        /// Any non-empty argument text emitted so far.
        seen_args: bool,
    },
    /// A block the IR cannot carry (server tools, …).
    Other,
}

/// Anthropic SSE frames → canonical events.
///
/// Emits `Start` on `message_start`, cumulative `Usage` after
/// `message_start` and each `message_delta`, one `Finish` (from the first
/// `message_delta` with a `stop_reason`, else at `message_stop`). A tool
/// call whose input streamed no text gets `"{}"` as its arguments, matching
/// the non-streaming decoder. `ping` and unknown events are ignored;
/// `error` becomes `StreamEvent::Error`.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    id: String,
    model: String,
    blocks: HashMap<u32, UpBlock>,
    next_tool: u32,
    usage: RawUsage,
    finished: bool,
    done: bool,
    errored: bool,
}

fn upstream(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::BadGateway, msg)
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once `message_stop` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn ensure_started(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: self.id.clone(),
                model: self.model.clone(),
                created: now_secs(),
                system_fingerprint: None,
            });
        }
    }

    /// Decode one frame. A frame whose JSON cannot be parsed is an error
    /// (the caller should end the stream with it).
    pub fn on_frame(&mut self, f: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        if self.done || self.errored {
            return Ok(());
        }
        let data = f.data.trim();
        if data.is_empty() || f.event.as_deref() == Some("ping") {
            return Ok(());
        }
        // Fast path for text deltas (most events); anything else, or a
        // shape it does not read, goes through `WireEvent`.
        let fast = if memchr::memmem::find(data.as_bytes(), b"\"text_delta\"").is_some() {
            serde_json::from_str::<TextDeltaEvent<'_>>(data)
                .ok()
                .and_then(TextDeltaEvent::text)
        } else {
            None
        };
        let ev: WireEvent = match fast {
            Some((index, text)) => WireEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta { text },
            },
            None => serde_json::from_str(data).map_err(|e| {
                upstream(format!(
                    "malformed upstream stream event ({e}): {}",
                    truncate(data, 200)
                ))
            })?,
        };
        match ev {
            WireEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.ensure_started(out);
                if let Some(u) = message.usage {
                    self.usage.apply(&u);
                    out.push(StreamEvent::Usage(self.usage.to_ir()));
                }
            }
            WireEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                self.ensure_started(out);
                self.block_start(index, content_block, out);
            }
            WireEvent::ContentBlockDelta { index, delta } => {
                self.ensure_started(out);
                self.block_delta(index, delta, out);
            }
            WireEvent::ContentBlockStop { index } => self.block_stop(index, out),
            WireEvent::MessageDelta { delta, usage } => {
                self.ensure_started(out);
                if let Some(reason) = delta.stop_reason.as_deref() {
                    if !self.finished {
                        self.finished = true;
                        let reason = finish_from_wire(reason);
                        out.push(StreamEvent::Finish {
                            choice: 0,
                            reason,
                            stop_sequence: delta
                                .stop_sequence
                                .filter(|_| reason == FinishReason::Stop),
                        });
                    }
                }
                if let Some(u) = usage {
                    self.usage.apply(&u);
                    out.push(StreamEvent::Usage(self.usage.to_ir()));
                }
            }
            WireEvent::MessageStop => {
                self.ensure_started(out);
                self.finish_choice(out);
                self.done = true;
            }
            WireEvent::Error { error } => {
                let mut e = ApiError::new(
                    error.ty.as_deref().map_or(ErrorKind::Api, kind_from_type),
                    error
                        .message
                        .unwrap_or_else(|| "upstream stream error".to_owned()),
                );
                e.provider_type = error.ty;
                out.push(StreamEvent::Error(e));
                self.errored = true;
            }
            WireEvent::Ping | WireEvent::Unknown => {}
        }
        Ok(())
    }

    fn finish_choice(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.finished {
            self.finished = true;
            out.push(StreamEvent::Finish {
                choice: 0,
                reason: if self.next_tool > 0 {
                    FinishReason::ToolCalls
                } else {
                    FinishReason::Stop
                },
                stop_sequence: None,
            });
        }
    }

    fn block_start(&mut self, index: u32, block: StartBlock, out: &mut Vec<StreamEvent>) {
        let kind = match block {
            StartBlock::Text { text } => {
                if !text.is_empty() {
                    out.push(StreamEvent::TextDelta { choice: 0, text });
                }
                UpBlock::Text
            }
            StartBlock::Thinking {
                thinking,
                signature,
            } => {
                if !thinking.is_empty() {
                    out.push(StreamEvent::ThinkingDelta {
                        choice: 0,
                        text: thinking,
                    });
                }
                if let Some(signature) = signature.filter(|s| !s.is_empty()) {
                    out.push(StreamEvent::SignatureDelta {
                        choice: 0,
                        signature,
                    });
                }
                UpBlock::Thinking
            }
            StartBlock::RedactedThinking { data } => {
                out.push(StreamEvent::RedactedThinking { choice: 0, data });
                UpBlock::Other
            }
            StartBlock::ToolUse { id, name, input } => {
                let ir_index = self.next_tool;
                self.next_tool += 1;
                out.push(StreamEvent::ToolCallStart {
                    choice: 0,
                    index: ir_index,
                    id,
                    name,
                });
                let initial = input
                    .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
                    .map(|v| v.to_string());
                UpBlock::Tool {
                    index: ir_index,
                    initial,
                    seen_args: false,
                }
            }
            StartBlock::Unknown => UpBlock::Other,
        };
        self.blocks.insert(index, kind);
    }

    fn block_delta(&mut self, index: u32, delta: BlockDelta, out: &mut Vec<StreamEvent>) {
        match delta {
            BlockDelta::TextDelta { text } => {
                if !text.is_empty() && !matches!(self.blocks.get(&index), Some(UpBlock::Other)) {
                    out.push(StreamEvent::TextDelta { choice: 0, text });
                }
            }
            BlockDelta::ThinkingDelta { thinking } => {
                if !thinking.is_empty() {
                    out.push(StreamEvent::ThinkingDelta {
                        choice: 0,
                        text: thinking,
                    });
                }
            }
            BlockDelta::SignatureDelta { signature } => {
                if !signature.is_empty() {
                    out.push(StreamEvent::SignatureDelta {
                        choice: 0,
                        signature,
                    });
                }
            }
            BlockDelta::InputJsonDelta { partial_json } => {
                if let Some(UpBlock::Tool {
                    index, seen_args, ..
                }) = self.blocks.get_mut(&index)
                {
                    if !partial_json.is_empty() {
                        *seen_args = true;
                        out.push(StreamEvent::ToolCallDelta {
                            choice: 0,
                            index: *index,
                            arguments: partial_json,
                        });
                    }
                }
            }
            BlockDelta::Unknown => {}
        }
    }

    fn block_stop(&mut self, index: u32, out: &mut Vec<StreamEvent>) {
        if let Some(UpBlock::Tool {
            index,
            initial,
            seen_args,
        }) = self.blocks.get_mut(&index)
        {
            if !*seen_args {
                *seen_args = true;
                out.push(StreamEvent::ToolCallDelta {
                    choice: 0,
                    index: *index,
                    arguments: initial.take().unwrap_or_else(|| "{}".to_owned()),
                });
            }
        }
    }

    /// End of the upstream byte stream. If it ended before the message was
    /// finished (no `message_delta` stop reason, no `message_stop`) and no
    /// error was reported, an `Error` is emitted.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done || self.errored {
            return;
        }
        if self.finished {
            // message_delta arrived; only message_stop is missing.
            self.done = true;
            return;
        }
        self.errored = true;
        out.push(StreamEvent::Error(upstream(
            "upstream stream ended before the message was complete",
        )));
    }
}

// ---------------------------------------------------------------------------
// Encoder.

/// What the currently open client block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(u32),
}

#[derive(Serialize)]
struct StartMsgBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    ty: &'static str,
    role: &'static str,
    content: [(); 0],
    model: &'a str,
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: OutUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutEvent<'a> {
    MessageStart {
        message: StartMsgBody<'a>,
    },
    ContentBlockStart {
        index: u32,
        content_block: OutStartBlock<'a>,
    },
    ContentBlockDelta {
        index: u32,
        delta: OutDelta<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: OutMessageDelta<'a>,
        usage: OutUsage,
    },
    MessageStop,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutStartBlock<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum OutDelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
}

#[derive(Serialize)]
struct OutMessageDelta<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

impl OutEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            OutEvent::MessageStart { .. } => "message_start",
            OutEvent::ContentBlockStart { .. } => "content_block_start",
            OutEvent::ContentBlockDelta { .. } => "content_block_delta",
            OutEvent::ContentBlockStop { .. } => "content_block_stop",
            OutEvent::MessageDelta { .. } => "message_delta",
            OutEvent::MessageStop => "message_stop",
        }
    }
}

fn emit(out: &mut Vec<u8>, ev: &OutEvent<'_>) {
    if let Ok(json) = serde_json::to_string(ev) {
        write_event(out, Some(ev.name()), &json);
    }
}

/// Canonical events → Anthropic SSE bytes, shaped exactly like Anthropic's
/// own stream.
///
/// `message_start` is deferred to the first content (or the end) so that it
/// carries the input usage an Anthropic upstream reports right after its own
/// `message_start`. Each run of text / thinking / a tool call is one content
/// block (indexes count all blocks from 0); a block is closed when another
/// kind starts. Empty text never opens a block (no spurious empty text block
/// before tool calls). `message_delta` is held until [`finish`](Self::finish)
/// so it carries the final stop reason and cumulative usage (some upstreams
/// report usage after the finish reason). Only choice 0 is encoded.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    id: String,
    model: String,
    started: bool,
    open: Option<(u32, Open)>,
    next_block: u32,
    /// IR tool index → client block index.
    tool_blocks: HashMap<u32, u32>,
    called_tools: bool,
    finish: Option<(FinishReason, Option<String>)>,
    usage: Option<Usage>,
    ended: bool,
}

impl StreamEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut usage = OutUsage::from_ir(&self.usage.unwrap_or_default());
        usage.output_tokens_details = None;
        let id = if self.id.is_empty() {
            "msg_gateway"
        } else {
            self.id.as_str()
        };
        emit(
            out,
            &OutEvent::MessageStart {
                message: StartMsgBody {
                    id,
                    ty: "message",
                    role: "assistant",
                    content: [],
                    model: &self.model,
                    stop_reason: None,
                    stop_sequence: None,
                    usage,
                },
            },
        );
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            emit(out, &OutEvent::ContentBlockStop { index });
        }
    }

    /// Make sure a block of `kind` is open, opening it with `start`.
    fn open_block(&mut self, kind: Open, out: &mut Vec<u8>, start: OutStartBlock<'_>) -> u32 {
        if let Some((index, k)) = self.open {
            if k == kind {
                return index;
            }
        }
        self.ensure_started(out);
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        emit(
            out,
            &OutEvent::ContentBlockStart {
                index,
                content_block: start,
            },
        );
        self.open = Some((index, kind));
        index
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        let index = self.open_block(Open::Text, out, OutStartBlock::Text { text: "" });
        emit(
            out,
            &OutEvent::ContentBlockDelta {
                index,
                delta: OutDelta::Text { text },
            },
        );
    }

    fn thinking_block(&mut self, out: &mut Vec<u8>) -> u32 {
        self.open_block(
            Open::Thinking,
            out,
            OutStartBlock::Thinking {
                thinking: "",
                signature: "",
            },
        )
    }

    pub fn on_event(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match ev {
            StreamEvent::Start { id, model, .. } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            StreamEvent::TextDelta { choice: 0, text }
            | StreamEvent::RefusalDelta { choice: 0, text } => self.text(text, out),
            StreamEvent::ThinkingDelta { choice: 0, text } => {
                if text.is_empty() {
                    return;
                }
                let index = self.thinking_block(out);
                emit(
                    out,
                    &OutEvent::ContentBlockDelta {
                        index,
                        delta: OutDelta::Thinking { thinking: text },
                    },
                );
            }
            StreamEvent::SignatureDelta {
                choice: 0,
                signature,
            } => {
                let index = self.thinking_block(out);
                emit(
                    out,
                    &OutEvent::ContentBlockDelta {
                        index,
                        delta: OutDelta::Signature { signature },
                    },
                );
            }
            StreamEvent::RedactedThinking { choice: 0, data } => {
                self.ensure_started(out);
                self.close(out);
                let index = self.next_block;
                self.next_block += 1;
                emit(
                    out,
                    &OutEvent::ContentBlockStart {
                        index,
                        content_block: OutStartBlock::RedactedThinking { data },
                    },
                );
                emit(out, &OutEvent::ContentBlockStop { index });
            }
            StreamEvent::ToolCallStart {
                choice: 0,
                index,
                id,
                name,
            } => {
                self.ensure_started(out);
                self.close(out);
                let block = self.next_block;
                self.next_block += 1;
                self.called_tools = true;
                self.tool_blocks.insert(*index, block);
                emit(
                    out,
                    &OutEvent::ContentBlockStart {
                        index: block,
                        content_block: OutStartBlock::ToolUse {
                            id,
                            name,
                            input: EmptyObject {},
                        },
                    },
                );
                self.open = Some((block, Open::Tool(*index)));
            }
            StreamEvent::ToolCallDelta {
                choice: 0,
                index,
                arguments,
            } => {
                // A delta for an already closed tool block (interleaved
                // upstream deltas) is still sent with its own index: the
                // SDKs accumulate by index.
                if let (Some(&block), false) = (self.tool_blocks.get(index), arguments.is_empty()) {
                    emit(
                        out,
                        &OutEvent::ContentBlockDelta {
                            index: block,
                            delta: OutDelta::InputJson {
                                partial_json: arguments,
                            },
                        },
                    );
                }
            }
            StreamEvent::Finish {
                choice: 0,
                reason,
                stop_sequence,
            } => {
                self.finish = Some((*reason, stop_sequence.clone()));
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Error(e) => {
                self.close(out);
                super::encode_stream_error(e, out);
                self.ended = true;
            }
            // Other choices: Anthropic has no `n`.
            _ => {}
        }
    }

    /// End of the event stream: close the open block, then `message_delta`
    /// (final stop reason, cumulative usage) and `message_stop`. Nothing is
    /// written after an `Error`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.ensure_started(out);
        self.close(out);
        let (reason, stop_sequence) = self.finish.take().unwrap_or((FinishReason::Stop, None));
        let stop_sequence = stop_sequence.filter(|_| reason == FinishReason::Stop);
        let stop_reason = stop_reason(reason, stop_sequence.as_deref(), self.called_tools);
        emit(
            out,
            &OutEvent::MessageDelta {
                delta: OutMessageDelta {
                    stop_reason,
                    stop_sequence: stop_sequence.as_deref(),
                },
                usage: OutUsage::from_ir(&self.usage.unwrap_or_default()),
            },
        );
        emit(out, &OutEvent::MessageStop);
    }
}
