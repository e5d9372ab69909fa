//! `/admin/keys` handlers. The plaintext key appears only in the responses
//! of create and rotate; no response carries the hash.

use super::error::AdminError;
use super::input::Fields;
use super::ops::{self, key_view, CreatedKey, KeyFilter, KeyPatch, NewKey};
use super::{json_response, Req};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

fn with_secret(c: &CreatedKey) -> Value {
    let mut v = key_view(&c.record);
    if let Some(o) = v.as_object_mut() {
        o.insert("key".into(), json!(c.key));
        o.insert(
            "warning".into(),
            json!("Store this key now: it is shown only once and cannot be recovered."),
        );
    }
    v
}

pub(crate) async fn create(r: Req) -> Result<Response, AdminError> {
    let f = Fields::parse(
        &r.body,
        &[
            "tenant_id",
            "user_id",
            "name",
            "role",
            "allowed_models",
            "expires_at",
            "expires_in",
            "metadata",
        ],
    )?;
    let n = NewKey {
        tenant_id: f.string("tenant_id")?,
        user_id: f.string("user_id")?,
        name: f.string("name")?,
        role: f.role("role")?,
        allowed_models: f.strings("allowed_models")?,
        expires_at: f.time("expires_at")?,
        expires_in: f.int("expires_in")?,
        metadata: f.json("metadata"),
    };
    let c = ops::create_key(&r.ctx(), n).await?;
    Ok(json_response(StatusCode::CREATED, &with_secret(&c)))
}

pub(crate) async fn list(r: Req) -> Result<Response, AdminError> {
    let f = KeyFilter {
        tenant_id: r.query.string("tenant_id"),
        user_id: r.query.string("user_id"),
    };
    let keys = ops::list_keys(&r.ctx(), f).await?;
    let data: Vec<Value> = keys.iter().map(key_view).collect();
    Ok(json_response(StatusCode::OK, &json!({ "data": data })))
}

pub(crate) async fn get(r: Req) -> Result<Response, AdminError> {
    let k = ops::get_key(&r.ctx(), &r.id).await?;
    Ok(json_response(StatusCode::OK, &key_view(&k)))
}

pub(crate) async fn update(r: Req) -> Result<Response, AdminError> {
    let f = Fields::parse(
        &r.body,
        &[
            "name",
            "enabled",
            "allowed_models",
            "expires_at",
            "metadata",
            "parent_key_id",
        ],
    )?;
    let detach = match f.json("parent_key_id") {
        None if f.has("parent_key_id") => true,
        None => false,
        Some(_) => {
            return Err(AdminError::invalid(
                "parent_key_id",
                "`parent_key_id` can only be set to null (detach the key from its creator)",
            ))
        }
    };
    let p = KeyPatch {
        name: f.string("name")?,
        enabled: f.boolean("enabled")?,
        allowed_models: f.strings("allowed_models")?,
        expires_at: f.nullable_time("expires_at")?,
        metadata: f.json("metadata"),
        detach,
    };
    let k = ops::update_key(&r.ctx(), &r.id, p).await?;
    Ok(json_response(StatusCode::OK, &key_view(&k)))
}

pub(crate) async fn revoke(r: Req) -> Result<Response, AdminError> {
    Fields::parse(&r.body, &[])?;
    let k = ops::revoke_key(&r.ctx(), &r.id).await?;
    Ok(json_response(StatusCode::OK, &key_view(&k)))
}

pub(crate) async fn rotate(r: Req) -> Result<Response, AdminError> {
    let f = Fields::parse(&r.body, &["overlap_seconds"])?;
    let overlap = f.int("overlap_seconds")?;
    let c = ops::rotate_key(&r.ctx(), &r.id, overlap).await?;
    Ok(json_response(StatusCode::CREATED, &with_secret(&c)))
}
