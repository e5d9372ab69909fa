//! `/admin/budgets` handlers.

use super::error::AdminError;
use super::input::Fields;
use super::ops::{self, BudgetInput};
use super::{json_response, list as list_of, one, Req};
use axum::http::StatusCode;
use axum::response::Response;

fn input(r: &Req) -> Result<BudgetInput, AdminError> {
    let f = Fields::parse(
        &r.body,
        &[
            "scope",
            "scope_id",
            "period",
            "max_cost",
            "max_tokens",
            "alert_thresholds",
            "action",
            "downgrade_alias",
        ],
    )?;
    Ok(BudgetInput {
        scope: f.scope("scope")?,
        scope_id: f.string("scope_id")?,
        period: f.string("period")?,
        max_cost: f.float("max_cost")?,
        max_tokens: f.int("max_tokens")?,
        alert_thresholds: f.floats("alert_thresholds")?,
        action: f.action("action")?,
        downgrade_alias: f.string("downgrade_alias")?,
    })
}

pub(crate) async fn create(r: Req) -> Result<Response, AdminError> {
    let i = input(&r)?;
    Ok(one(
        StatusCode::CREATED,
        &ops::create_budget(&r.ctx(), i).await?,
    ))
}

pub(crate) async fn list(r: Req) -> Result<Response, AdminError> {
    Ok(list_of(&ops::list_budgets(&r.ctx()).await?))
}

pub(crate) async fn get(r: Req) -> Result<Response, AdminError> {
    Ok(one(
        StatusCode::OK,
        &ops::get_budget(&r.ctx(), &r.id).await?,
    ))
}

pub(crate) async fn put(r: Req) -> Result<Response, AdminError> {
    let i = input(&r)?;
    Ok(one(
        StatusCode::OK,
        &ops::put_budget(&r.ctx(), &r.id, i).await?,
    ))
}

pub(crate) async fn delete(r: Req) -> Result<Response, AdminError> {
    Ok(one(
        StatusCode::OK,
        &ops::delete_budget(&r.ctx(), &r.id).await?,
    ))
}

pub(crate) async fn status(r: Req) -> Result<Response, AdminError> {
    Ok(json_response(
        StatusCode::OK,
        &ops::budget_status(&r.ctx(), &r.id).await?,
    ))
}
