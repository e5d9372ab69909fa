//! `/admin/tenants` handlers (thin: parse, call [`super::ops`], render).

use super::error::AdminError;
use super::input::Fields;
use super::ops::{self, NewTenant, TenantPatch};
use super::{list as list_of, one, Req};
use axum::http::StatusCode;
use axum::response::Response;

const FIELDS: &[&str] = &["name", "status", "plan", "allowed_models", "metadata"];

pub(crate) async fn create(r: Req) -> Result<Response, AdminError> {
    let f = Fields::parse(&r.body, FIELDS)?;
    let n = NewTenant {
        name: f.required_string("name")?,
        status: f.status("status")?,
        plan: f.string("plan")?,
        allowed_models: f.strings("allowed_models")?,
        metadata: f.json("metadata"),
    };
    let t = ops::create_tenant(&r.ctx(), n).await?;
    Ok(one(StatusCode::CREATED, &t))
}

pub(crate) async fn list(r: Req) -> Result<Response, AdminError> {
    Ok(list_of(&ops::list_tenants(&r.ctx()).await?))
}

pub(crate) async fn get(r: Req) -> Result<Response, AdminError> {
    Ok(one(
        StatusCode::OK,
        &ops::get_tenant(&r.ctx(), &r.id).await?,
    ))
}

pub(crate) async fn update(r: Req) -> Result<Response, AdminError> {
    let f = Fields::parse(&r.body, FIELDS)?;
    let p = TenantPatch {
        name: f.string("name")?,
        status: f.status("status")?,
        plan: f.string("plan")?,
        allowed_models: f.strings("allowed_models")?,
        metadata: f.json("metadata"),
    };
    Ok(one(
        StatusCode::OK,
        &ops::update_tenant(&r.ctx(), &r.id, p).await?,
    ))
}
