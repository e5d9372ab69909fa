//! `/admin/users` handlers.

use super::error::AdminError;
use super::input::Fields;
use super::ops::{self, NewUser, UserPatch};
use super::{list as list_of, one, Req};
use axum::http::StatusCode;
use axum::response::Response;

pub(crate) async fn create(r: Req) -> Result<Response, AdminError> {
    let f = Fields::parse(&r.body, &["tenant_id", "email", "name", "role", "disabled"])?;
    let n = NewUser {
        tenant_id: f.string("tenant_id")?,
        email: f.required_string("email")?,
        name: f.string("name")?,
        role: f.role("role")?,
        disabled: f.boolean("disabled")?,
    };
    Ok(one(
        StatusCode::CREATED,
        &ops::create_user(&r.ctx(), n).await?,
    ))
}

pub(crate) async fn list(r: Req) -> Result<Response, AdminError> {
    let t = r.query.string("tenant_id");
    Ok(list_of(&ops::list_users(&r.ctx(), t.as_deref()).await?))
}

pub(crate) async fn get(r: Req) -> Result<Response, AdminError> {
    Ok(one(StatusCode::OK, &ops::get_user(&r.ctx(), &r.id).await?))
}

pub(crate) async fn update(r: Req) -> Result<Response, AdminError> {
    let f = Fields::parse(&r.body, &["name", "role", "disabled"])?;
    let p = UserPatch {
        name: f.string("name")?,
        role: f.role("role")?,
        disabled: f.boolean("disabled")?,
    };
    Ok(one(
        StatusCode::OK,
        &ops::update_user(&r.ctx(), &r.id, p).await?,
    ))
}
