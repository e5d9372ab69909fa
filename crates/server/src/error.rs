//! Gateway errors, rendered in the dialect of the API the client called.
//!
//! Status policy (documented in the README):
//! - client mistakes → 400 / 404 / 413 with the field named;
//! - bad gateway key → 401;
//! - upstream 429 → 429 with `retry-after` (and `retry-after-ms`) passed through;
//! - upstream 400/404/413/422 (and content-policy refusals) → the same
//!   status, upstream message carried;
//! - upstream 401/403 (the *gateway's* provider key was refused) and 402 →
//!   502 with a generic message (the provider's text is logged, never sent:
//!   it can hold a masked key tail or account details);
//! - upstream 5xx, 529, other statuses, malformed upstream bodies, connect
//!   failures → 502; a 429's and a 5xx's own text is withheld as well;
//! - upstream timeouts (ours or its 408/504) → 504.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchyard_core::dialect::{anthropic, openai, Dialect};
use switchyard_core::ir::{ApiError, ErrorKind};

/// An error on its way to a client.
#[derive(Debug)]
pub struct GatewayError {
    pub status: StatusCode,
    /// Boxed: errors travel in `Result`s on the hot path; keep those small.
    pub error: Box<ApiError>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl GatewayError {
    pub fn new(status: u16, error: ApiError) -> Self {
        GatewayError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            error: Box::new(error),
            headers: Vec::new(),
        }
    }

    /// A client-side problem with the request.
    pub fn client(error: ApiError) -> Self {
        let status = error.kind.status();
        Self::new(status, error)
    }

    pub fn bad_request(param: &str, message: impl Into<String>) -> Self {
        Self::client(ApiError::invalid_param(param, message))
    }

    pub fn model_not_found(model: &str) -> Self {
        let mut e = ApiError::new(
            ErrorKind::NotFound,
            format!("The model `{model}` does not exist or is not configured on this gateway. GET /v1/models lists the available models."),
        )
        .with_code("model_not_found");
        e.param = Some("model".into());
        Self::new(404, e)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            401,
            ApiError::new(ErrorKind::Authentication, message).with_code("invalid_api_key"),
        )
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(
            400,
            ApiError::invalid(message).with_code("unsupported_for_model"),
        )
    }

    pub fn timeout(provider: &str, what: &str) -> Self {
        Self::new(
            504,
            ApiError::new(
                ErrorKind::Timeout,
                format!("upstream provider `{provider}` timed out ({what})"),
            )
            .with_code("upstream_timeout"),
        )
    }

    pub fn unreachable(provider: &str, detail: &str) -> Self {
        Self::new(
            502,
            ApiError::new(
                ErrorKind::BadGateway,
                format!("could not reach upstream provider `{provider}`: {detail}"),
            )
            .with_code("upstream_unreachable"),
        )
    }

    pub fn bad_upstream(provider: &str, detail: &str) -> Self {
        Self::new(
            502,
            ApiError::new(
                ErrorKind::BadGateway,
                format!("upstream provider `{provider}` sent an invalid response: {detail}"),
            )
            .with_code("upstream_invalid_response"),
        )
    }

    /// Map an upstream error response. Only messages about the caller's own
    /// request are carried to the caller: 400/404/413/422 (and content-policy
    /// refusals). Every other upstream text (a refused key's message with its
    /// masked tail, a 402's account and balance, a 429's organisation id and
    /// limits, a 5xx's internals) is logged (`switchyard::upstream`: warn for
    /// credentials, billing and unexpected statuses, debug for 429/5xx) and
    /// replaced by a generic message naming the provider and the status.
    pub fn upstream(
        provider: &str,
        status: u16,
        mut err: ApiError,
        upstream_headers: &HeaderMap,
    ) -> Self {
        let credentials = crate::attempt::refused_credentials(status, &err);
        let carried = !credentials
            && (matches!(status, 400 | 404 | 413 | 422)
                || (status == 403 && crate::attempt::is_content_policy(&err)));
        let mut out = if carried {
            err.message = format!(
                "upstream provider `{provider}` returned {status}: {}",
                err.message
            );
            Self::new(status, err)
        } else {
            let quiet = matches!(status, 408 | 429 | 500..=599);
            if quiet {
                tracing::debug!(target: "switchyard::upstream", provider, status, upstream_message = %err.message, "upstream error (message withheld from the caller)");
            } else {
                tracing::warn!(target: "switchyard::upstream", provider, status, upstream_message = %err.message, "upstream error (message withheld from the caller)");
            }
            err.param = None;
            let (out_status, message) = if credentials {
                err.kind = ErrorKind::BadGateway;
                err.code = Some("upstream_credentials_refused".into());
                err.provider_type = None;
                (502, format!("upstream provider `{provider}` refused the gateway's credentials ({status}); the gateway's operator must check its API key for this provider"))
            } else {
                match status {
                    429 => {
                        err.kind = ErrorKind::RateLimit;
                        (429, format!("upstream provider `{provider}` is rate limiting the gateway (429); retry later"))
                    }
                    402 => {
                        err.kind = ErrorKind::BadGateway;
                        err.code = Some("upstream_billing".into());
                        err.provider_type = None;
                        (502, format!("upstream provider `{provider}` refused the gateway's account (402, payment required); the gateway's operator must check it"))
                    }
                    408 | 504 => {
                        err.kind = ErrorKind::Timeout;
                        (
                            504,
                            format!("upstream provider `{provider}` timed out ({status})"),
                        )
                    }
                    _ => {
                        if !matches!(err.kind, ErrorKind::Overloaded) {
                            err.kind = ErrorKind::BadGateway;
                        }
                        let what = if status >= 500 {
                            " (a server error)"
                        } else {
                            ""
                        };
                        (
                            502,
                            format!("upstream provider `{provider}` returned {status}{what}"),
                        )
                    }
                }
            };
            err.message = message;
            Self::new(out_status, err)
        };
        for name in ["retry-after", "retry-after-ms"] {
            if let Some(v) = upstream_headers.get(name) {
                out.headers.push((HeaderName::from_static(name), v.clone()));
            }
        }
        out
    }

    /// Render in the client's dialect.
    pub fn render(self, dialect: Dialect) -> Response {
        let body = encode(dialect, &self.error);
        let mut resp = (
            self.status,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        let h = resp.headers_mut();
        for (k, v) in self.headers {
            h.insert(k, v);
        }
        if dialect == Dialect::Anthropic {
            // Anthropic's SDKs honour this to decide whether to retry.
            let retry =
                matches!(self.status.as_u16(), 408 | 409 | 429) || self.status.is_server_error();
            h.insert(
                "x-should-retry",
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
        resp.extensions_mut()
            .insert(ErrorLog(self.error.message.clone()));
        resp
    }
}

/// The error message, left on the response for the access log.
#[derive(Debug, Clone)]
pub struct ErrorLog(pub String);

/// Encode an error body in a client dialect.
pub fn encode(dialect: Dialect, e: &ApiError) -> Vec<u8> {
    match dialect {
        Dialect::Anthropic => anthropic::encode_error(e),
        Dialect::OpenAi | Dialect::Gemini => openai::encode_error(e),
    }
}

impl From<ApiError> for GatewayError {
    fn from(e: ApiError) -> Self {
        GatewayError::client(e)
    }
}
