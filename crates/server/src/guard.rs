//! `guardrails.pii` at request time: run the detector over a request body,
//! forward the masked body or refuse the request, and count what was found
//! (per entity and action, for metrics). Values are never logged: only
//! entity names and counts leave this module, as the `x-switchyard-pii`
//! response header and the metrics.

use crate::error::GatewayError;
use crate::pipeline::RequestCtx;
use crate::routing::Alias;
use crate::state::AppState;
use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use switchyard_core::ir::{ApiError, ErrorKind};
use switchyard_core::pii::{Action, BodyKind, Detector, Findings, Outcome};

/// Names the entities (and counts) masked in a request.
pub const X_PII: HeaderName = HeaderName::from_static("x-switchyard-pii");

/// The detector and its counters.
#[derive(Debug)]
pub struct PiiGuard {
    detector: Arc<Detector>,
    /// Per rule, in the detector's order: `(name, masked, blocked)`.
    found: Vec<(String, AtomicU64, AtomicU64)>,
    pub requests_masked: AtomicU64,
    pub requests_blocked: AtomicU64,
}

/// What the request goes on with.
#[derive(Debug, Default)]
pub struct Checked {
    /// The masked body; `None` when the original goes on unchanged.
    pub body: Option<Bytes>,
    /// `x-switchyard-pii` value when something was masked.
    pub header: Option<HeaderValue>,
}

/// Must `guardrails.pii` run for requests to `alias`? Unless it and every
/// alias it may be diverted to are exempt (`pii: false`).
pub fn applies(state: &AppState, alias: &Alias) -> bool {
    alias.pii || state.router.fallback_aliases(alias).any(|a| a.pii)
}

/// Run `guardrails.pii` (when configured and applicable to `alias`) over a
/// request body of `ctx`'s caller. A refusal is also an audit event
/// (`pii.blocked`: who, which alias, which entity types and how many —
/// never the values).
pub fn screen(
    state: &AppState,
    ctx: &RequestCtx,
    alias: &Alias,
    kind: BodyKind,
    body: &[u8],
) -> Result<Checked, GatewayError> {
    let Some(guard) = state.pii.as_ref().filter(|_| applies(state, alias)) else {
        return Ok(Checked::default());
    };
    guard.check(kind, body).map_err(|(err, findings)| {
        if let Some(gov) = &state.governance {
            let p = ctx.principal.as_ref();
            let actor: std::borrow::Cow<'static, str> = match p {
                Some(p) if p.master => "master".into(),
                Some(p) => p
                    .key_id
                    .clone()
                    .map_or("static-key".into(), std::borrow::Cow::Owned),
                None => "anonymous".into(),
            };
            // Aggregated per caller and alias: a caller repeating refused
            // requests cannot write a row per request.
            let key = crate::store::SecurityKey {
                action: "pii.blocked",
                reason: "pii_detected",
                ip: None,
                actor: actor.clone(),
                tenant_id: p.and_then(|p| p.tenant_id.clone()),
                target: Some(alias.name.clone()),
            };
            gov.audit.security(key, || crate::store::AuditEvent {
                id: crate::store::new_id("aud_"),
                ts: crate::store::now_ms(),
                actor: actor.into_owned(),
                tenant_id: p.and_then(|p| p.tenant_id.clone()),
                action: "pii.blocked".into(),
                target: Some(alias.name.clone()),
                ip: None,
                outcome: "denied".into(),
                details: serde_json::json!({
                    "request_id": ctx.request_id,
                    "entities": findings
                        .counts
                        .iter()
                        .map(|(n, c, _)| (n.to_string(), *c))
                        .collect::<std::collections::BTreeMap<_, _>>(),
                }),
            });
        }
        err
    })
}

impl PiiGuard {
    pub fn new(detector: Arc<Detector>) -> PiiGuard {
        let found = detector
            .rule_names()
            .map(|n| (n.to_owned(), AtomicU64::new(0), AtomicU64::new(0)))
            .collect();
        PiiGuard {
            detector,
            found,
            requests_masked: AtomicU64::new(0),
            requests_blocked: AtomicU64::new(0),
        }
    }

    /// Check `body`: masked bytes, nothing to change, or the refusal (with
    /// what was found, for the audit event).
    fn check(&self, kind: BodyKind, body: &[u8]) -> Result<Checked, (GatewayError, Findings)> {
        match self.detector.apply(kind, body) {
            Outcome::Clean => Ok(Checked::default()),
            Outcome::Masked { body, findings } => {
                self.count(&findings);
                self.requests_masked.fetch_add(1, Ordering::Relaxed);
                Ok(Checked {
                    body: Some(Bytes::from(body)),
                    header: HeaderValue::from_str(&findings.summary()).ok(),
                })
            }
            Outcome::Unreadable { reason } => {
                // Nothing the guardrail did not read goes on (the hot
                // routes' `peek` refuses such bodies first; this holds for
                // any other caller). Not a finding: no counter moves.
                let err = GatewayError::new(
                    400,
                    ApiError::new(
                        ErrorKind::InvalidRequest,
                        format!(
                            "the request body cannot be read in full ({reason}), so it cannot be checked for personal data; send valid UTF-8 JSON, each member once"
                        ),
                    ),
                );
                Err((err, Findings::default()))
            }
            Outcome::Blocked { findings } => {
                self.count(&findings);
                self.requests_blocked.fetch_add(1, Ordering::Relaxed);
                let list = findings
                    .blocking()
                    .map(|(n, c)| format!("{n} ({c})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                tracing::info!(entities = %findings.summary(), "request refused: personal data");
                let err = GatewayError::new(
                    400,
                    ApiError::new(
                        ErrorKind::InvalidRequest,
                        format!(
                            "the request contains data this gateway does not forward: {list}; remove it and retry"
                        ),
                    )
                    .with_code("pii_detected"),
                );
                Err((err, findings))
            }
        }
    }

    fn count(&self, f: &Findings) {
        for (name, n, action) in &f.counts {
            if let Some((_, masked, blocked)) = self.found.iter().find(|(r, _, _)| r == &**name) {
                let c = if *action == Action::Block {
                    blocked
                } else {
                    masked
                };
                c.fetch_add(u64::from(*n), Ordering::Relaxed);
            }
        }
    }

    /// `(entity, action, count)` for every non-zero counter.
    pub fn findings(&self) -> Vec<(&str, &'static str, u64)> {
        let mut out = Vec::new();
        for (name, masked, blocked) in &self.found {
            for (action, c) in [("mask", masked), ("block", blocked)] {
                let v = c.load(Ordering::Relaxed);
                if v > 0 {
                    out.push((name.as_str(), action, v));
                }
            }
        }
        out
    }
}
