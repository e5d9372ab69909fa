//! Durable audit of admin changes (issue 18 §4: "an admin change is not
//! acknowledged until its audit event is durable").
//!
//! Every mutating admin operation (HTTP and CLI, `admin::ops`) first writes
//! its event with outcome `pending` and waits for the commit; only then does
//! it make the change, and afterwards it rewrites the same row with the
//! outcome (`success`, `denied`, `error`) and details. If the first write
//! fails, the operation is refused before anything changes; so no change is
//! ever made without a row in `audit_log` that names it. A `pending` row
//! left behind means the process stopped (or the database went away) between
//! the change and its outcome: the change may or may not have happened.
//!
//! This bypasses the non-blocking [`super::AuditLog`] queue (which can drop
//! under a flood of security events); the event still goes to the audit
//! file through that queue afterwards (its database insert is then a no-op:
//! `ON CONFLICT (id) DO NOTHING`).

use super::model::AuditEvent;
use super::{clean_opt, json_text, Arg, OpExt, Store, StoreError};

/// The outcome of an event not yet finished.
pub const PENDING: &str = "pending";

impl Store {
    /// Write `ev` (outcome [`PENDING`]) and wait for the commit.
    pub async fn begin_admin_audit(&self, ev: &AuditEvent) -> Result<(), StoreError> {
        let mut ev = ev.clone();
        ev.outcome = PENDING.into();
        self.insert_audit(std::slice::from_ref(&ev)).await
    }

    /// Set the outcome of an event written by [`Store::begin_admin_audit`]
    /// (and its tenant, target and details, known only now).
    pub async fn finish_admin_audit(&self, ev: &AuditEvent) -> Result<(), StoreError> {
        let op = "finish_admin_audit";
        let args = [
            Arg::Text(ev.outcome.clone()),
            Arg::OptText(clean_opt(&ev.tenant_id)),
            Arg::OptText(clean_opt(&ev.target)),
            Arg::Text(json_text(&ev.details)?),
            Arg::Text(ev.id.clone()),
        ];
        let q = sqlx::query(
            "UPDATE audit_log SET outcome = $1, tenant_id = $2, target = $3, details = $4 \
             WHERE id = $5",
        );
        let n = super::bind_all(q, &args)
            .execute(&self.pool)
            .await
            .op(op)?
            .rows_affected();
        if n == 0 {
            // The pending row is gone (it cannot be: nothing deletes audit
            // rows); write the event afresh rather than lose it.
            self.insert_audit(std::slice::from_ref(ev)).await?;
        }
        Ok(())
    }
}
