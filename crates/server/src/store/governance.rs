//! Tenants, users, keys, budgets, rate limits and the change feed.

use super::model::*;
use super::{
    classify, col, col_bool, flag, json_text, now_ms, parse_json, Arg, OpExt, Sql, Store,
    StoreError,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use std::collections::HashMap;

const TENANT_COLS: &str =
    "id, name, status, plan, allowed_models, metadata, created_at, updated_at";
const USER_COLS: &str = "id, tenant_id, email, name, role, disabled, created_at, updated_at";
const KEY_COLS: &str =
    "id, hash, prefix, name, tenant_id, user_id, role, allowed_models, metadata, \
     expires_at, enabled, revoked_at, rotated_to, created_at, updated_at, last_used_at, \
     parent_key_id, disabled_by";
const BUDGET_COLS: &str = "id, scope, scope_id, period, max_cost, max_tokens, alert_thresholds, \
     action, downgrade_alias, created_at, updated_at, owner";
const RATE_COLS: &str = "id, scope, scope_id, model, rpm, tpm, created_at, updated_at, owner";

/// Pairs per `touch_keys` statement.
const TOUCH_CHUNK: usize = 200;

/// Everything that changed after a watermark; see [`Store::changes_since`].
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub tenants: Vec<Tenant>,
    pub users: Vec<User>,
    pub keys: Vec<ApiKey>,
    pub budgets: Vec<Budget>,
    pub rate_limits: Vec<RateLimit>,
    pub deleted_budgets: Vec<String>,
    pub deleted_rate_limits: Vec<String>,
    /// Pass this as `since` next time.
    pub watermark: Millis,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
            && self.users.is_empty()
            && self.keys.is_empty()
            && self.budgets.is_empty()
            && self.rate_limits.is_empty()
            && self.deleted_budgets.is_empty()
            && self.deleted_rate_limits.is_empty()
    }
}

/// Advance the governance clock: the first statement of every governance
/// write transaction (it locks the clock row until commit). Returns the new
/// value, `max(now, last + 1)`, which becomes the row's `updated_at`.
async fn tick(tx: &mut Transaction<'_, Any>, op: &'static str) -> Result<Millis, StoreError> {
    let row = sqlx::query(
        "UPDATE gov_clock SET last = CASE WHEN last + 1 > $1 THEN last + 1 ELSE $1 END \
         WHERE id = 1 RETURNING last",
    )
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await
    .op(op)?;
    col(&row, "last")
}

fn bad(what: &str, v: &str) -> StoreError {
    StoreError::Invalid(format!("stored {what} {v:?} is not recognised"))
}

fn tenant_from(r: &AnyRow) -> Result<Tenant, StoreError> {
    let status: String = col(r, "status")?;
    Ok(Tenant {
        id: col(r, "id")?,
        name: col(r, "name")?,
        status: TenantStatus::parse(&status).ok_or_else(|| bad("tenant status", &status))?,
        plan: col(r, "plan")?,
        allowed_models: parse_json(&col::<String>(r, "allowed_models")?, "allowed_models")?,
        metadata: parse_json(&col::<String>(r, "metadata")?, "metadata")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

fn user_from(r: &AnyRow) -> Result<User, StoreError> {
    let role: String = col(r, "role")?;
    Ok(User {
        id: col(r, "id")?,
        tenant_id: col(r, "tenant_id")?,
        email: col(r, "email")?,
        name: col(r, "name")?,
        role: Role::parse(&role).ok_or_else(|| bad("role", &role))?,
        disabled: col_bool(r, "disabled")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

fn key_from(r: &AnyRow) -> Result<ApiKey, StoreError> {
    let role: String = col(r, "role")?;
    Ok(ApiKey {
        id: col(r, "id")?,
        hash: col(r, "hash")?,
        prefix: col(r, "prefix")?,
        name: col(r, "name")?,
        tenant_id: col(r, "tenant_id")?,
        user_id: col(r, "user_id")?,
        role: Role::parse(&role).ok_or_else(|| bad("role", &role))?,
        allowed_models: parse_json(&col::<String>(r, "allowed_models")?, "allowed_models")?,
        metadata: parse_json(&col::<String>(r, "metadata")?, "metadata")?,
        expires_at: col(r, "expires_at")?,
        enabled: col_bool(r, "enabled")?,
        revoked_at: col(r, "revoked_at")?,
        rotated_to: col(r, "rotated_to")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
        last_used_at: col(r, "last_used_at")?,
        parent_key_id: col(r, "parent_key_id")?,
        disabled_by: col(r, "disabled_by")?,
    })
}

fn owner_from(r: &AnyRow) -> Result<PolicyOwner, StoreError> {
    let s: String = col(r, "owner")?;
    PolicyOwner::parse(&s).ok_or_else(|| bad("owner", &s))
}

fn scope_from(r: &AnyRow) -> Result<Scope, StoreError> {
    let s: String = col(r, "scope")?;
    Scope::parse(&s).ok_or_else(|| bad("scope", &s))
}

fn budget_from(r: &AnyRow) -> Result<Budget, StoreError> {
    let action: String = col(r, "action")?;
    Ok(Budget {
        id: col(r, "id")?,
        scope: scope_from(r)?,
        scope_id: col(r, "scope_id")?,
        period: col(r, "period")?,
        max_cost: col(r, "max_cost")?,
        max_tokens: col(r, "max_tokens")?,
        alert_thresholds: parse_json(&col::<String>(r, "alert_thresholds")?, "alert_thresholds")?,
        action: match action.as_str() {
            "block" => BudgetAction::Block,
            "downgrade" => BudgetAction::Downgrade,
            _ => return Err(bad("budget action", &action)),
        },
        downgrade_alias: col(r, "downgrade_alias")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
        owner: owner_from(r)?,
    })
}

fn rate_from(r: &AnyRow) -> Result<RateLimit, StoreError> {
    Ok(RateLimit {
        id: col(r, "id")?,
        scope: scope_from(r)?,
        scope_id: col(r, "scope_id")?,
        model: col(r, "model")?,
        rpm: col(r, "rpm")?,
        tpm: col(r, "tpm")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
        owner: owner_from(r)?,
    })
}

fn action_str(a: BudgetAction) -> &'static str {
    match a {
        BudgetAction::Block => "block",
        BudgetAction::Downgrade => "downgrade",
    }
}

fn rows<T>(rs: &[AnyRow], f: fn(&AnyRow) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    rs.iter().map(f).collect()
}

/// Run `sql` (with `$1` = the clock value first, then `args`) as a
/// governance write; returns rows affected. Unique/foreign-key violations
/// become `Conflict`/`Invalid` naming `what`.
impl Store {
    async fn gov_write(
        &self,
        op: &'static str,
        what: &str,
        statements: &[(&str, Vec<Arg>)],
        require_row: bool,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.op(op)?;
        let v = tick(&mut tx, op).await?;
        let mut first_affected = 0;
        for (i, (sql, args)) in statements.iter().enumerate() {
            let mut all = Vec::with_capacity(args.len() + 1);
            all.push(Arg::I64(v));
            all.extend(args.iter().cloned());
            let res = super::bind_all(sqlx::query(sql), &all)
                .execute(&mut *tx)
                .await
                .map_err(|e| classify(e, op, what))?;
            if i == 0 {
                first_affected = res.rows_affected();
                if require_row && first_affected == 0 {
                    // Dropping the transaction rolls it back.
                    return Ok(0);
                }
            }
        }
        tx.commit().await.op(op)?;
        Ok(first_affected)
    }

    // ---- tenants ----

    /// Create a tenant. `Conflict` if the id or name exists. `updated_at` is
    /// assigned by the store (governance clock); `created_at` is kept.
    pub async fn create_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        let sql = "INSERT INTO tenants (updated_at, id, name, status, plan, allowed_models, \
                   metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let args = vec![
            Arg::Text(t.id.clone()),
            Arg::Text(t.name.clone()),
            Arg::Text(t.status.as_str().into()),
            Arg::OptText(t.plan.clone()),
            Arg::Text(json_text(&t.allowed_models)?),
            Arg::Text(json_text(&t.metadata)?),
            Arg::I64(t.created_at),
        ];
        let what = format!("a tenant named {:?}", t.name);
        self.gov_write("create_tenant", &what, &[(sql, args)], false)
            .await?;
        Ok(())
    }

    /// Update every field but `id` and `created_at`. `NotFound` if absent.
    pub async fn update_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        let sql = "UPDATE tenants SET updated_at = $1, name = $2, status = $3, plan = $4, \
                   allowed_models = $5, metadata = $6 WHERE id = $7";
        let args = vec![
            Arg::Text(t.name.clone()),
            Arg::Text(t.status.as_str().into()),
            Arg::OptText(t.plan.clone()),
            Arg::Text(json_text(&t.allowed_models)?),
            Arg::Text(json_text(&t.metadata)?),
            Arg::Text(t.id.clone()),
        ];
        let what = format!("a tenant named {:?}", t.name);
        let n = self
            .gov_write("update_tenant", &what, &[(sql, args)], true)
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("tenant {}", t.id)));
        }
        Ok(())
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .op("get_tenant")?;
        row.as_ref().map(tenant_from).transpose()
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants ORDER BY created_at, id");
        let rs = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .op("list_tenants")?;
        rows(&rs, tenant_from)
    }

    // ---- users ----

    /// Create a user. `Conflict` on a duplicate id or (tenant, email);
    /// `Invalid` if the tenant does not exist.
    pub async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        let sql = "INSERT INTO users (updated_at, id, tenant_id, email, name, role, disabled, \
                   created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let args = vec![
            Arg::Text(u.id.clone()),
            Arg::Text(u.tenant_id.clone()),
            Arg::Text(u.email.clone()),
            Arg::OptText(u.name.clone()),
            Arg::Text(u.role.as_str().into()),
            flag(u.disabled),
            Arg::I64(u.created_at),
        ];
        let what = format!("a user with the email {:?} in this tenant", u.email);
        self.gov_write("create_user", &what, &[(sql, args)], false)
            .await?;
        Ok(())
    }

    /// Update every field but `id` and `created_at`. `NotFound` if absent.
    pub async fn update_user(&self, u: &User) -> Result<(), StoreError> {
        let sql = "UPDATE users SET updated_at = $1, tenant_id = $2, email = $3, name = $4, \
                   role = $5, disabled = $6 WHERE id = $7";
        let args = vec![
            Arg::Text(u.tenant_id.clone()),
            Arg::Text(u.email.clone()),
            Arg::OptText(u.name.clone()),
            Arg::Text(u.role.as_str().into()),
            flag(u.disabled),
            Arg::Text(u.id.clone()),
        ];
        let what = format!("a user with the email {:?} in this tenant", u.email);
        let n = self
            .gov_write("update_user", &what, &[(sql, args)], true)
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {}", u.id)));
        }
        Ok(())
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .op("get_user")?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn list_users(&self, tenant_id: Option<&str>) -> Result<Vec<User>, StoreError> {
        let mut q = Sql::new(&format!("SELECT {USER_COLS} FROM users"));
        if let Some(t) = tenant_id {
            q.push(" WHERE tenant_id = ").bind(Arg::Text(t.into()));
        }
        q.push(" ORDER BY created_at, id");
        let rs = q.query().fetch_all(&self.pool).await.op("list_users")?;
        rows(&rs, user_from)
    }

    // ---- keys ----

    /// Create a key. `Conflict` on a duplicate id or hash; `Invalid` if the
    /// tenant or user does not exist.
    pub async fn create_key(&self, k: &ApiKey) -> Result<(), StoreError> {
        let sql = "INSERT INTO api_keys (updated_at, id, hash, prefix, name, tenant_id, user_id, \
                   role, allowed_models, metadata, expires_at, enabled, revoked_at, rotated_to, \
                   created_at, last_used_at, parent_key_id, disabled_by) VALUES ($1, $2, $3, $4, \
                   $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
        let args = vec![
            Arg::Text(k.id.clone()),
            Arg::Text(k.hash.clone()),
            Arg::Text(k.prefix.clone()),
            Arg::OptText(k.name.clone()),
            Arg::Text(k.tenant_id.clone()),
            Arg::OptText(k.user_id.clone()),
            Arg::Text(k.role.as_str().into()),
            Arg::Text(json_text(&k.allowed_models)?),
            Arg::Text(json_text(&k.metadata)?),
            Arg::OptI64(k.expires_at),
            flag(k.enabled),
            Arg::OptI64(k.revoked_at),
            Arg::OptText(k.rotated_to.clone()),
            Arg::I64(k.created_at),
            Arg::OptI64(k.last_used_at),
            Arg::OptText(k.parent_key_id.clone()),
            Arg::OptText(k.disabled_by.clone()),
        ];
        let what = format!("a key with the id {:?} (or the same secret)", k.id);
        self.gov_write("create_key", &what, &[(sql, args)], false)
            .await?;
        Ok(())
    }

    /// Update every field but `id`, `created_at` and `last_used_at` (owned by
    /// [`Store::touch_keys`]). `NotFound` if absent.
    pub async fn update_key(&self, k: &ApiKey) -> Result<(), StoreError> {
        let sql = "UPDATE api_keys SET updated_at = $1, hash = $2, prefix = $3, name = $4, \
                   tenant_id = $5, user_id = $6, role = $7, allowed_models = $8, metadata = $9, \
                   expires_at = $10, enabled = $11, revoked_at = $12, rotated_to = $13, \
                   parent_key_id = $14, disabled_by = $15 WHERE id = $16";
        let args = vec![
            Arg::Text(k.hash.clone()),
            Arg::Text(k.prefix.clone()),
            Arg::OptText(k.name.clone()),
            Arg::Text(k.tenant_id.clone()),
            Arg::OptText(k.user_id.clone()),
            Arg::Text(k.role.as_str().into()),
            Arg::Text(json_text(&k.allowed_models)?),
            Arg::Text(json_text(&k.metadata)?),
            Arg::OptI64(k.expires_at),
            flag(k.enabled),
            Arg::OptI64(k.revoked_at),
            Arg::OptText(k.rotated_to.clone()),
            Arg::OptText(k.parent_key_id.clone()),
            Arg::OptText(k.disabled_by.clone()),
            Arg::Text(k.id.clone()),
        ];
        let what = format!("a key with the same secret as {:?}", k.id);
        let n = self
            .gov_write("update_key", &what, &[(sql, args)], true)
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("key {}", k.id)));
        }
        Ok(())
    }

    pub async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .op("get_key")?;
        row.as_ref().map(key_from).transpose()
    }

    pub async fn get_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLS} FROM api_keys WHERE hash = $1");
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .op("get_key_by_hash")?;
        row.as_ref().map(key_from).transpose()
    }

    pub async fn list_keys(
        &self,
        tenant_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let mut q = Sql::new(&format!("SELECT {KEY_COLS} FROM api_keys WHERE 1 = 1"));
        if let Some(t) = tenant_id {
            q.push(" AND tenant_id = ").bind(Arg::Text(t.into()));
        }
        if let Some(u) = user_id {
            q.push(" AND user_id = ").bind(Arg::Text(u.into()));
        }
        q.push(" ORDER BY created_at, id");
        let rs = q.query().fetch_all(&self.pool).await.op("list_keys")?;
        rows(&rs, key_from)
    }

    /// Record key use: `last_used_at = max(last_used_at, ts)` for each pair,
    /// in one transaction of batched statements. Does not touch `updated_at`
    /// (so it does not appear in the change feed).
    pub async fn touch_keys(&self, used: &[(String, Millis)]) -> Result<(), StoreError> {
        let mut latest: HashMap<&str, Millis> = HashMap::new();
        for (id, ts) in used {
            let e = latest.entry(id.as_str()).or_insert(*ts);
            if *ts > *e {
                *e = *ts;
            }
        }
        if latest.is_empty() {
            return Ok(());
        }
        let mut pairs: Vec<(&str, Millis)> = latest.into_iter().collect();
        pairs.sort_unstable();
        let mut tx = self.pool.begin().await.op("touch_keys")?;
        for chunk in pairs.chunks(TOUCH_CHUNK) {
            let mut q = Sql::bulk(
                self.kind,
                "UPDATE api_keys SET last_used_at = v.column2 FROM (VALUES ",
            );
            for (i, (id, ts)) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.push("(")
                    .bind(Arg::Text((*id).to_string()))
                    .push(", ")
                    .bind(Arg::I64(*ts))
                    .push(")");
            }
            q.push(
                ") AS v WHERE api_keys.id = v.column1 AND \
                 (api_keys.last_used_at IS NULL OR api_keys.last_used_at < v.column2)",
            );
            q.query().execute(&mut *tx).await.op("touch_keys")?;
        }
        tx.commit().await.op("touch_keys")?;
        Ok(())
    }

    // ---- budgets ----

    /// Insert or replace a budget by id (`created_at` of an existing row is
    /// kept). Clears a tombstone for the id.
    pub async fn upsert_budget(&self, b: &Budget) -> Result<(), StoreError> {
        let sql = "INSERT INTO budgets (updated_at, id, scope, scope_id, period, max_cost, \
                   max_tokens, alert_thresholds, action, downgrade_alias, created_at, owner) VALUES \
                   ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO UPDATE SET \
                   updated_at = excluded.updated_at, scope = excluded.scope, \
                   scope_id = excluded.scope_id, period = excluded.period, \
                   max_cost = excluded.max_cost, max_tokens = excluded.max_tokens, \
                   alert_thresholds = excluded.alert_thresholds, action = excluded.action, \
                   downgrade_alias = excluded.downgrade_alias, owner = excluded.owner";
        let args = vec![
            Arg::Text(b.id.clone()),
            Arg::Text(b.scope.as_str().into()),
            Arg::Text(b.scope_id.clone()),
            Arg::Text(b.period.clone()),
            Arg::OptF64(b.max_cost),
            Arg::OptI64(b.max_tokens),
            Arg::Text(json_text(&b.alert_thresholds)?),
            Arg::Text(action_str(b.action).into()),
            Arg::OptText(b.downgrade_alias.clone()),
            Arg::I64(b.created_at),
            Arg::Text(b.owner.as_str().into()),
        ];
        let clear = "DELETE FROM tombstones WHERE deleted_at <= $1 AND kind = 'budget' AND id = $2";
        let what = format!("the budget {:?}", b.id);
        self.gov_write(
            "upsert_budget",
            &what,
            &[(sql, args), (clear, vec![Arg::Text(b.id.clone())])],
            false,
        )
        .await?;
        Ok(())
    }

    /// Delete a budget, leaving a tombstone. `false` if there was none.
    pub async fn delete_budget(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_with_tombstone("delete_budget", "budgets", "budget", id)
            .await
    }

    pub async fn list_budgets(
        &self,
        scope: Option<(Scope, &str)>,
    ) -> Result<Vec<Budget>, StoreError> {
        self.list_scoped("list_budgets", BUDGET_COLS, "budgets", scope, budget_from)
            .await
    }

    // ---- rate limits ----

    /// Insert or replace a rate limit by id. Clears a tombstone for the id.
    pub async fn upsert_rate_limit(&self, r: &RateLimit) -> Result<(), StoreError> {
        let sql = "INSERT INTO rate_limits (updated_at, id, scope, scope_id, model, rpm, tpm, \
                   created_at, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) \
                   DO UPDATE SET updated_at = excluded.updated_at, scope = excluded.scope, \
                   scope_id = excluded.scope_id, model = excluded.model, rpm = excluded.rpm, \
                   tpm = excluded.tpm, owner = excluded.owner";
        let args = vec![
            Arg::Text(r.id.clone()),
            Arg::Text(r.scope.as_str().into()),
            Arg::Text(r.scope_id.clone()),
            Arg::OptText(r.model.clone()),
            Arg::OptI64(r.rpm),
            Arg::OptI64(r.tpm),
            Arg::I64(r.created_at),
            Arg::Text(r.owner.as_str().into()),
        ];
        let clear =
            "DELETE FROM tombstones WHERE deleted_at <= $1 AND kind = 'rate_limit' AND id = $2";
        let what = format!("the rate limit {:?}", r.id);
        self.gov_write(
            "upsert_rate_limit",
            &what,
            &[(sql, args), (clear, vec![Arg::Text(r.id.clone())])],
            false,
        )
        .await?;
        Ok(())
    }

    /// Delete a rate limit, leaving a tombstone. `false` if there was none.
    pub async fn delete_rate_limit(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_with_tombstone("delete_rate_limit", "rate_limits", "rate_limit", id)
            .await
    }

    pub async fn list_rate_limits(
        &self,
        scope: Option<(Scope, &str)>,
    ) -> Result<Vec<RateLimit>, StoreError> {
        self.list_scoped(
            "list_rate_limits",
            RATE_COLS,
            "rate_limits",
            scope,
            rate_from,
        )
        .await
    }

    /// Rows of a scoped table (budgets, rate limits), optionally for one scope.
    async fn list_scoped<T>(
        &self,
        op: &'static str,
        cols: &str,
        table: &str,
        scope: Option<(Scope, &str)>,
        from: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut q = Sql::new(&format!("SELECT {cols} FROM {table}"));
        if let Some((s, id)) = scope {
            q.push(" WHERE scope = ")
                .bind(Arg::Text(s.as_str().into()))
                .push(" AND scope_id = ")
                .bind(Arg::Text(id.into()));
        }
        q.push(" ORDER BY created_at, id");
        let rs = q.query().fetch_all(&self.pool).await.op(op)?;
        rows(&rs, from)
    }

    async fn delete_with_tombstone(
        &self,
        op: &'static str,
        table: &str,
        kind: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        // `deleted_at <= $1` only keeps `$1` (the clock) first in the text.
        let del = format!("DELETE FROM {table} WHERE updated_at <= $1 AND id = $2");
        let tomb = format!(
            "INSERT INTO tombstones (deleted_at, kind, id) VALUES ($1, '{kind}', $2) \
             ON CONFLICT (kind, id) DO UPDATE SET deleted_at = excluded.deleted_at"
        );
        let n = self
            .gov_write(
                op,
                id,
                &[
                    (&del, vec![Arg::Text(id.into())]),
                    (&tomb, vec![Arg::Text(id.into())]),
                ],
                true,
            )
            .await?;
        Ok(n > 0)
    }

    /// Cost and tokens of the usage of any of `key_ids` since `since` (a key
    /// budget counts the keys it binds: see `governance::cache::Lineage`).
    pub async fn spend_since_keys(
        &self,
        key_ids: &[String],
        since: Millis,
    ) -> Result<(f64, i64), StoreError> {
        let (mut cost, mut tokens) = (0.0, 0i64);
        for chunk in key_ids.chunks(500) {
            let mut q = Sql::new(
                "SELECT SUM(cost) AS cost, CAST(SUM(input_tokens + output_tokens) AS BIGINT) \
                 AS tokens FROM usage_log WHERE ts >= ",
            );
            q.bind(Arg::I64(since)).push(" AND key_id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind(Arg::Text(id.clone()));
            }
            q.push(")");
            let row = q
                .query()
                .fetch_one(&self.pool)
                .await
                .op("spend_since_keys")?;
            cost += col::<Option<f64>>(&row, "cost")?.unwrap_or(0.0);
            tokens += col::<Option<i64>>(&row, "tokens")?.unwrap_or(0);
        }
        Ok((cost, tokens))
    }

    // ---- change feed ----

    /// Every tenant/user/key/budget/rate-limit row whose `updated_at` is in
    /// `(since, watermark]`, the budgets / rate limits deleted in that
    /// window, and the watermark to pass next time. Successive calls return
    /// each change exactly once (see the module doc for why nothing is
    /// skipped). Start with `since = 0` for a full load.
    pub async fn changes_since(&self, since: Millis) -> Result<Changes, StoreError> {
        let op = "changes_since";
        let row = sqlx::query("SELECT last FROM gov_clock WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .op(op)?;
        let w: Millis = col(&row, "last")?;
        let mut out = Changes {
            watermark: w.max(since),
            ..Changes::default()
        };
        if w <= since {
            return Ok(out);
        }
        let window = |cols: &str, table: &str| {
            format!(
                "SELECT {cols} FROM {table} WHERE updated_at > $1 AND updated_at <= $2 \
                 ORDER BY updated_at"
            )
        };
        let fetch = |sql: String| async move {
            sqlx::query(&sql)
                .bind(since)
                .bind(w)
                .fetch_all(&self.pool)
                .await
                .op(op)
        };
        out.tenants = rows(&fetch(window(TENANT_COLS, "tenants")).await?, tenant_from)?;
        out.users = rows(&fetch(window(USER_COLS, "users")).await?, user_from)?;
        out.keys = rows(&fetch(window(KEY_COLS, "api_keys")).await?, key_from)?;
        out.budgets = rows(&fetch(window(BUDGET_COLS, "budgets")).await?, budget_from)?;
        out.rate_limits = rows(&fetch(window(RATE_COLS, "rate_limits")).await?, rate_from)?;
        let tombs = fetch(
            "SELECT kind, id FROM tombstones WHERE deleted_at > $1 AND deleted_at <= $2 \
             ORDER BY deleted_at"
                .into(),
        )
        .await?;
        for r in &tombs {
            let kind: String = col(r, "kind")?;
            let id: String = col(r, "id")?;
            match kind.as_str() {
                "budget" => out.deleted_budgets.push(id),
                "rate_limit" => out.deleted_rate_limits.push(id),
                _ => {}
            }
        }
        Ok(out)
    }
}
