//! `/admin/audit` handler.

use super::error::AdminError;
use super::ops;
use super::{list as list_of, Req};
use axum::response::Response;

pub(crate) async fn list(r: Req) -> Result<Response, AdminError> {
    let tenant = r.query.string("tenant_id");
    let since = r.query.time("since")?;
    let limit = r.query.int("limit")?;
    Ok(list_of(
        &ops::list_audit(&r.ctx(), tenant, since, limit).await?,
    ))
}
