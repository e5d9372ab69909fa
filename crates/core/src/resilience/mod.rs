//! Reliability primitives for calling upstream providers: what to do when a
//! request fails, how often to try again, when to stop sending traffic to an
//! endpoint, and which endpoint to try first.
//!
//! | Primitive | For | Used by the server's routing pipeline to… |
//! |---|---|---|
//! | [`Backoff`] | delay between attempts (exponential, full jitter) | wait before a retry (unless the upstream said how long) |
//! | [`parse_retry_after`] | `retry-after-ms` / `retry-after` headers | honour an upstream's explicit wait (429/503) |
//! | [`RetryBudget`] | retries as a share of traffic | refuse retries that would multiply load during an outage |
//! | [`Breaker`] | passive health per deployment | skip deployments whose breaker is open, and probe them after a cooldown |
//! | [`EndpointStats`] | in-flight count and latency EWMA | feed the balancing strategies |
//! | [`order`] / [`Strategy`] | the order of deployments behind an alias | try deployments best first, falling through on failure |
//!
//! In the server, each request deposits into the budget once; each retry
//! (to the same or the next deployment) first withdraws from the budget,
//! then waits `parse_retry_after(..)` or `Backoff::delay(retry)`. Deployments
//! are tried in `order(strategy, ..)`, skipping those whose
//! `Breaker::is_available()` is false; each attempt holds a
//! [`BreakerPermit`] (resolved as success/failure by the upstream's answer,
//! or dropped when the outcome says nothing about the upstream) and an
//! [`InFlight`] guard.
//!
//! ## Concurrency and time
//! Every type is `Send + Sync` and meant to be shared (`Arc`) by all
//! request tasks. Nothing blocks or awaits: counters are atomics, sliding
//! windows are lock-free rings of time buckets, and the breaker's only
//! mutex guards state transitions, never across an `.await`. Time is
//! `tokio::time::Instant`, so tests can pause and advance it.

mod backoff;
mod balance;
mod breaker;
mod budget;
mod window;

pub use backoff::{parse_retry_after, Backoff};
pub use balance::{order, Candidate, EndpointStats, InFlight, Strategy};
pub use breaker::{Breaker, BreakerConfig, BreakerPermit, BreakerState};
pub use budget::RetryBudget;
