//! Canonical streaming events.
//!
//! A provider's stream decoder turns upstream frames into these; a client
//! dialect's stream encoder turns them into the client's wire format. Both
//! are synchronous state machines with no I/O, so they are tested on
//! recorded transcripts.

use super::{ApiError, FinishReason, Usage};

/// One canonical stream event.
///
/// Order guarantees a decoder must give: `Start` first (exactly once);
/// for each tool call, `ToolCallStart` before any `ToolCallDelta` with the
/// same `(choice, index)`; `Finish` once per choice; `Usage` may come any
/// number of times and is *cumulative* (the last one wins); `Error` ends the
/// stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Start {
        id: String,
        model: String,
        /// Unix seconds.
        created: u64,
        system_fingerprint: Option<String>,
    },
    TextDelta {
        choice: u32,
        text: String,
    },
    RefusalDelta {
        choice: u32,
        text: String,
    },
    ThinkingDelta {
        choice: u32,
        text: String,
    },
    /// Anthropic's thinking signature for the current thinking block.
    SignatureDelta {
        choice: u32,
        signature: String,
    },
    RedactedThinking {
        choice: u32,
        data: String,
    },
    /// A new tool call. `index` counts tool calls within the choice from 0.
    ToolCallStart {
        choice: u32,
        index: u32,
        id: String,
        name: String,
    },
    /// A fragment of the JSON arguments text of tool call `index`.
    ToolCallDelta {
        choice: u32,
        index: u32,
        arguments: String,
    },
    Finish {
        choice: u32,
        reason: FinishReason,
        stop_sequence: Option<String>,
    },
    /// Cumulative usage so far.
    Usage(Usage),
    /// The upstream reported an error mid-stream; nothing follows.
    Error(ApiError),
}
