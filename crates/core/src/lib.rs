//! # switchyard-core
#![cfg_attr(test, allow(clippy::unwrap_used))]
//!
//! The embeddable heart of Switchyard: everything needed to talk to LLM
//! providers, with no server, database or Redis dependency.
//!
//! ## Layout
//! - [`ir`]: canonical request/response/stream types (not wire types).
//! - [`dialect`]: one module per wire format (OpenAI chat, Anthropic
//!   messages, Gemini), pure translation functions and stream state machines.
//! - [`sse`]: incremental Server-Sent Events decoding/encoding.
//! - [`json_scan`]: one top-level member of a JSON object without parsing
//!   the rest (the pass-through path's usage lookup).
//! - [`provider`]: the provider catalog (presets as data) and how to build
//!   an upstream HTTP request for a provider.
//! - [`resilience`]: reliability primitives (backoff, retry budget, circuit
//!   breaker, load-balancing strategies) used by the server's routing.
//! - [`pii`]: personal-data detection and masking of request bodies
//!   (built-in entities with checksums, custom patterns; mask or block).
//! - [`pricing`]: the bundled per-model price table (with sources and
//!   dates), name lookup, request cost, and worst-case token estimates for
//!   reservations.
//!
//! ## Invariants
//! - Only `dialect::*` knows any provider's JSON.
//! - Translation functions do no I/O and never panic on any input.

pub mod dialect;
pub mod ir;
pub mod json_scan;
pub mod pii;
pub mod pricing;
pub mod provider;
pub mod resilience;
pub mod sse;
