//! `/admin/rate-limits` handlers.

use super::error::AdminError;
use super::input::Fields;
use super::ops::{self, RateLimitInput};
use super::{list as list_of, one, Req};
use axum::http::StatusCode;
use axum::response::Response;

pub(crate) async fn create(r: Req) -> Result<Response, AdminError> {
    let f = Fields::parse(&r.body, &["scope", "scope_id", "model", "rpm", "tpm"])?;
    let i = RateLimitInput {
        scope: f.scope("scope")?,
        scope_id: f.string("scope_id")?,
        model: f.string("model")?,
        rpm: f.int("rpm")?,
        tpm: f.int("tpm")?,
    };
    Ok(one(
        StatusCode::CREATED,
        &ops::create_rate_limit(&r.ctx(), i).await?,
    ))
}

pub(crate) async fn list(r: Req) -> Result<Response, AdminError> {
    Ok(list_of(&ops::list_rate_limits(&r.ctx()).await?))
}

pub(crate) async fn delete(r: Req) -> Result<Response, AdminError> {
    Ok(one(
        StatusCode::OK,
        &ops::delete_rate_limit(&r.ctx(), &r.id).await?,
    ))
}
