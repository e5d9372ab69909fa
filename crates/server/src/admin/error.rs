//! Admin errors: a status, a machine-readable code, a message and the
//! offending field. Rendered as OpenAI-style error JSON by the HTTP layer
//! and as a one-line message by the CLI.

use crate::error::GatewayError;
use crate::store::StoreError;
use axum::response::Response;
use switchyard_core::dialect::Dialect;
use switchyard_core::ir::{ApiError, ErrorKind};

#[derive(Debug, Clone, PartialEq)]
pub struct AdminError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

impl AdminError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        AdminError {
            status,
            code,
            message: message.into(),
            param: None,
        }
    }

    /// 400, naming the field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        AdminError {
            param: Some(param.to_owned()),
            ..Self::new(400, "invalid_request", message)
        }
    }

    /// 403 `permission_denied`.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(403, "permission_denied", message)
    }

    pub fn denied_param(param: &str, message: impl Into<String>) -> Self {
        AdminError {
            param: Some(param.to_owned()),
            ..Self::denied(message)
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(401, "invalid_api_key", "Missing or invalid API key.")
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(404, "not_found", format!("{what} `{id}` not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    pub fn disabled() -> Self {
        Self::new(
            503,
            "governance_disabled",
            "Governance is disabled on this gateway, so there is no admin API. Enable it with a `governance:` section (database_url, master_key) in the config.",
        )
    }

    /// 503: the operation's task did not finish (shutdown, or a bug).
    pub fn interrupted() -> Self {
        Self::new(
            503,
            "unavailable",
            "the admin operation did not complete (the gateway may be shutting down); retry it",
        )
    }

    /// 503: the audit event of a change could not be written, so the change
    /// was not made.
    pub fn audit_unavailable() -> Self {
        Self::new(
            503,
            "audit_unavailable",
            "The change was not made: its audit event could not be recorded (the governance database is unavailable). Try again shortly.",
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "request_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    }

    /// Render as OpenAI-style error JSON.
    pub fn render(self) -> Response {
        let kind = match self.status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            503 => ErrorKind::Overloaded,
            _ => ErrorKind::InvalidRequest,
        };
        let mut e = ApiError::new(kind, self.message).with_code(self.code);
        e.param = self.param;
        GatewayError::new(self.status, e).render(Dialect::OpenAi)
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{} ({}: {})", self.message, self.code, p),
            None => write!(f, "{} ({})", self.message, self.code),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::new(404, "not_found", format!("{m} not found")),
            StoreError::Conflict(m) => Self::conflict(m),
            StoreError::Invalid(m) => Self::new(400, "invalid_request", m),
            other => {
                tracing::warn!(error = %other, "admin: database error");
                Self::new(
                    503,
                    "database_unavailable",
                    "The governance database is unavailable; try again shortly.",
                )
            }
        }
    }
}
