//! The admin operations as plain async functions over [`Store`], shared by
//! the HTTP admin API (`/admin/…`) and the CLI (`switchyard keys …`), so the
//! two cannot diverge: validation, permissions, plan templates and audit
//! events all live here.
//!
//! Every function takes a [`Ctx`]: the store, the plan templates, who is
//! acting ([`Actor`]) and where audit events go. Mutating operations write
//! one audit event each (`success`, `denied` or `error`), durably: the event
//! is committed (as `pending`) before the change is made, and its outcome
//! after (see `store::admin_audit`), so no change is acknowledged, or even
//! made, without its audit row.
//!
//! Permissions come from one table, [`super::perm::PERMISSIONS`]: the route
//! gate, the owner of budgets / rate limits / tenant policy, and the rules
//! for keys created by keys (never broader than their creator) and for
//! widening a key (never by itself or a key it created).

use super::error::AdminError;
use super::perm::{self, Act, Owner, Reach, Res, Who};
use crate::config::Plan;
use crate::governance::parse_span;
use crate::governance::{keys, period_bounds, Ledger, Principal};
use crate::store::{
    new_id, now_ms, ApiKey, AuditEvent, AuditLog, Bucket, Budget, BudgetAction, GroupBy, Millis,
    PolicyOwner, RateLimit, Role, Scope, Store, Tenant, TenantStatus, UsageFilter, UsageRow,
    UsageTotals, User,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;

/// Default alert thresholds of a budget.
pub const DEFAULT_THRESHOLDS: [f64; 3] = [0.5, 0.8, 0.95];
/// Default overlap of a rotated key, in seconds.
pub const DEFAULT_OVERLAP_SECS: i64 = 86_400;
/// Default / maximum rows for record and audit listings.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 10_000;

/// Who performs an operation.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The `switchyard` CLI working on the database directly: full access.
    Cli,
    /// An authenticated HTTP caller.
    Principal(Principal),
}

/// What a route needs (checked before the request body is even read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Create tenants: master key only.
    Root,
    /// Read / update tenants: admin.
    Tenant,
    /// Users: admin.
    Users,
    /// Keys: admin, developer (own keys).
    Keys,
    /// Budgets: admin, billing.
    Budgets,
    /// Rate limits: admin.
    RateLimits,
    /// Usage reports: admin, billing, viewer, developer (own).
    Usage,
    /// Audit log: admin, viewer.
    Audit,
}

impl Need {
    /// The tenant roles that pass (the master key always passes): those
    /// with any access to the resource in [`perm::PERMISSIONS`].
    pub fn roles(self) -> Vec<Role> {
        match self {
            Need::Root => [Role::Admin, Role::Billing, Role::Developer, Role::Viewer]
                .into_iter()
                .filter(|r| {
                    perm::reach(Who::Role(*r), Res::Tenant, Owner::Any, Act::Create) != Reach::No
                })
                .collect(),
            Need::Tenant => perm::roles_for(Res::Tenant),
            Need::Users => perm::roles_for(Res::User),
            Need::Keys => perm::roles_for(Res::Key),
            Need::Budgets => perm::roles_for(Res::Budget),
            Need::RateLimits => perm::roles_for(Res::RateLimit),
            Need::Usage => perm::roles_for(Res::Usage),
            Need::Audit => perm::roles_for(Res::Audit),
        }
    }
}

/// Where audit events go.
#[derive(Debug, Clone, Copy)]
pub enum AuditTo<'a> {
    /// The server's audit log (file + database, non-blocking).
    Log(&'a AuditLog),
    /// Straight into the database (the CLI).
    Store,
}

/// Everything an operation needs.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub plans: &'a BTreeMap<String, Plan>,
    pub actor: Actor,
    pub ip: Option<String>,
    pub audit: AuditTo<'a>,
    /// The model aliases, to validate downgrade targets (`None`: the CLI,
    /// which has no router; not checked).
    pub router: Option<&'a crate::routing::Router>,
    /// Live budget accounts (the server); the CLI has none.
    pub ledger: Option<&'a Ledger>,
}

impl Ctx<'_> {
    fn principal(&self) -> Option<&Principal> {
        match &self.actor {
            Actor::Cli => None,
            Actor::Principal(p) => Some(p),
        }
    }

    /// The CLI or the master key.
    pub fn is_root(&self) -> bool {
        match &self.actor {
            Actor::Cli => true,
            Actor::Principal(p) => p.master,
        }
    }

    /// The caller's tenant (`None` for root and static keys).
    fn tenant(&self) -> Option<&str> {
        self.principal().and_then(|p| p.tenant_id.as_deref())
    }

    fn role(&self) -> Option<Role> {
        self.principal().map(|p| p.role)
    }

    /// The caller as a column of the permission table.
    fn who(&self) -> Who {
        if self.is_root() {
            Who::Master
        } else {
            Who::Role(self.role().unwrap_or(Role::Viewer))
        }
    }

    /// The caller's virtual key (`None`: the master key, the CLI, static keys).
    fn caller_key(&self) -> Option<&str> {
        if self.is_root() {
            return None;
        }
        self.principal().and_then(|p| p.key_id.as_deref())
    }

    /// Who owns what the caller creates.
    fn owner(&self) -> PolicyOwner {
        if self.is_root() {
            PolicyOwner::Operator
        } else {
            PolicyOwner::Tenant
        }
    }

    /// Refuse unless the table allows `act` on `res` owned by `owner`.
    fn allow(&self, res: Res, owner: Owner, act: Act, why: &str) -> Result<Reach, AdminError> {
        match perm::reach(self.who(), res, owner, act) {
            Reach::No => Err(AdminError::denied(why.to_owned())),
            r => Ok(r),
        }
    }

    /// Actor name for audit events.
    pub fn actor_name(&self) -> String {
        match &self.actor {
            Actor::Cli => "cli".into(),
            Actor::Principal(p) => p.actor(),
        }
    }

    /// May the caller use a route that needs `need`?
    pub fn require(&self, need: Need) -> Result<(), AdminError> {
        if self.is_root() {
            return Ok(());
        }
        let Some(p) = self.principal() else {
            return Err(AdminError::denied("no admin access"));
        };
        if p.tenant_id.is_none() {
            return Err(AdminError::denied(
                "static gateway keys have no admin access; use the master key or a virtual key with an admin role",
            ));
        }
        if need == Need::Root {
            return Err(AdminError::denied("only the master key may create tenants"));
        }
        if need.roles().contains(&p.role) {
            Ok(())
        } else {
            Err(AdminError::denied(format!(
                "the role `{}` may not use this route (allowed: {})",
                p.role.as_str(),
                need.roles()
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Is `tenant_id` visible to the caller? Unseen records are reported as
    /// missing (`404`), so other tenants' ids cannot be probed.
    fn sees_tenant(&self, tenant_id: &str) -> bool {
        self.is_root() || self.tenant() == Some(tenant_id)
    }

    pub(crate) fn event(
        &self,
        action: &str,
        tenant_id: Option<String>,
        target: Option<String>,
        outcome: &str,
        details: Value,
    ) -> AuditEvent {
        AuditEvent {
            id: new_id("aud_"),
            ts: now_ms(),
            actor: self.actor_name(),
            tenant_id: tenant_id.or_else(|| self.tenant().map(str::to_owned)),
            action: action.to_owned(),
            target,
            ip: self.ip.clone(),
            outcome: outcome.to_owned(),
            details,
        }
    }

    /// Record an audit event (not waited for on the server: denied
    /// requests refused before their body is read).
    pub async fn audit_event(
        &self,
        action: &str,
        tenant_id: Option<String>,
        target: Option<String>,
        outcome: &str,
        details: Value,
    ) {
        let ev = self.event(action, tenant_id, target, outcome, details);
        match self.audit {
            AuditTo::Log(l) => l.record(ev),
            AuditTo::Store => {
                if let Err(e) = self.store.insert_audit(&[ev]).await {
                    tracing::warn!(error = %e, "cannot write the audit event");
                }
            }
        }
    }

    /// Run a mutating operation and audit its outcome, durably: the event
    /// is committed (outcome `pending`) before `f` runs, so nothing changes
    /// unless the audit row exists (a database that cannot take it refuses
    /// the operation with 503), then rewritten with the outcome. `target`
    /// names the record for failures; success reports its own.
    async fn audited<T, F>(&self, action: &str, target: Option<&str>, f: F) -> Result<T, AdminError>
    where
        F: Future<Output = Result<(T, Done), AdminError>>,
    {
        let mut ev = self.event(
            action,
            None,
            target.map(str::to_owned),
            crate::store::AUDIT_PENDING,
            json!({}),
        );
        if let Err(e) = self.store.begin_admin_audit(&ev).await {
            tracing::warn!(error = %e, action, "cannot write the audit event; operation refused");
            return Err(AdminError::audit_unavailable());
        }
        let res = f.await;
        match &res {
            Ok((_, done)) => {
                if done.tenant_id.is_some() {
                    ev.tenant_id = done.tenant_id.clone();
                }
                ev.target = done.target.clone().or(ev.target);
                ev.outcome = "success".into();
                ev.details = done.details.clone();
            }
            Err(e) => {
                ev.outcome = if e.status == 403 { "denied" } else { "error" }.into();
                ev.details = json!({"status": e.status, "message": e.message});
            }
        }
        if let Err(e) = self.store.finish_admin_audit(&ev).await {
            // The change (if any) is made and its `pending` row names it;
            // the outcome is in the log and the audit file.
            tracing::warn!(error = %e, action, id = %ev.id, "cannot record the audit outcome; the event stays `pending`");
        }
        if let AuditTo::Log(l) = self.audit {
            // For the audit file; its database insert is a no-op (same id).
            l.record(ev);
        }
        res.map(|(v, _)| v)
    }
}

/// What a successful mutation reports to the audit log.
struct Done {
    tenant_id: Option<String>,
    target: Option<String>,
    details: Value,
}

fn done(tenant_id: &str, target: &str, details: Value) -> Done {
    Done {
        tenant_id: Some(tenant_id.to_owned()),
        target: Some(target.to_owned()),
        details,
    }
}

// ------------------------------------------------------------------ tenants

/// `POST /admin/tenants`.
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    pub name: String,
    pub status: Option<TenantStatus>,
    pub plan: Option<String>,
    pub allowed_models: Option<Vec<String>>,
    pub metadata: Option<Value>,
}

/// `PATCH /admin/tenants/{id}`.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub status: Option<TenantStatus>,
    pub plan: Option<String>,
    pub allowed_models: Option<Vec<String>>,
    pub metadata: Option<Value>,
}

fn check_name(field: &str, v: &str) -> Result<String, AdminError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(AdminError::invalid(
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    if v.len() > 256 || v.contains('\0') {
        return Err(AdminError::invalid(
            field,
            format!("`{field}` must be at most 256 characters, without NUL"),
        ));
    }
    Ok(v.to_owned())
}

fn plan_of<'p>(ctx: &'p Ctx<'_>, name: &str) -> Result<&'p Plan, AdminError> {
    ctx.plans.get(name).ok_or_else(|| {
        AdminError::invalid(
            "plan",
            format!(
                "unknown plan `{name}` (known: {})",
                ctx.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// Ids of the rows a plan template owns for a tenant (stable, so changing
/// the plan replaces them).
pub fn plan_rate_limit_id(tenant_id: &str) -> String {
    format!("rl_plan_{tenant_id}")
}
pub fn plan_budget_id(tenant_id: &str) -> String {
    format!("bud_plan_{tenant_id}")
}

/// Write (or remove) the rate limit and monthly budget of `plan`.
async fn apply_plan(store: &Store, tenant: &Tenant, plan: &Plan) -> Result<(), AdminError> {
    let now = now_ms();
    let rl_id = plan_rate_limit_id(&tenant.id);
    if plan.rpm.is_some() || plan.tpm.is_some() {
        store
            .upsert_rate_limit(&RateLimit {
                id: rl_id,
                scope: Scope::Tenant,
                scope_id: tenant.id.clone(),
                model: None,
                rpm: plan.rpm,
                tpm: plan.tpm,
                created_at: now,
                updated_at: now,
                owner: PolicyOwner::Operator,
            })
            .await?;
    } else {
        store.delete_rate_limit(&rl_id).await?;
    }
    let b_id = plan_budget_id(&tenant.id);
    if plan.monthly_cost.is_some() || plan.monthly_tokens.is_some() {
        store
            .upsert_budget(&Budget {
                id: b_id,
                scope: Scope::Tenant,
                scope_id: tenant.id.clone(),
                period: "monthly".into(),
                max_cost: plan.monthly_cost,
                max_tokens: plan.monthly_tokens,
                alert_thresholds: DEFAULT_THRESHOLDS.to_vec(),
                action: BudgetAction::Block,
                downgrade_alias: None,
                created_at: now,
                updated_at: now,
                owner: PolicyOwner::Operator,
            })
            .await?;
    } else {
        store.delete_budget(&b_id).await?;
    }
    Ok(())
}

pub async fn create_tenant(ctx: &Ctx<'_>, n: NewTenant) -> Result<Tenant, AdminError> {
    ctx.audited("tenant.create", None, async {
        ctx.require(Need::Root)?;
        let name = check_name("name", &n.name)?;
        let plan = match &n.plan {
            Some(p) => Some((p.clone(), plan_of(ctx, p)?.clone())),
            None => None,
        };
        let allowed = match (&n.allowed_models, &plan) {
            (Some(m), _) => check_models(m)?,
            (None, Some((_, p))) => p.models.clone(),
            (None, None) => Vec::new(),
        };
        let now = now_ms();
        let t = Tenant {
            id: new_id("ten_"),
            name,
            status: n.status.unwrap_or(TenantStatus::Active),
            plan: plan.as_ref().map(|(n, _)| n.clone()),
            allowed_models: allowed,
            metadata: check_metadata(n.metadata)?,
            created_at: now,
            updated_at: now,
        };
        ctx.store.create_tenant(&t).await?;
        if let Some((_, p)) = &plan {
            apply_plan(ctx.store, &t, p).await?;
        }
        let t = ctx
            .store
            .get_tenant(&t.id)
            .await?
            .ok_or_else(|| AdminError::not_found("tenant", &t.id))?;
        let d = json!({"name": t.name, "status": t.status, "plan": t.plan});
        Ok((t.clone(), done(&t.id, &t.id, d)))
    })
    .await
}

pub async fn list_tenants(ctx: &Ctx<'_>) -> Result<Vec<Tenant>, AdminError> {
    ctx.require(Need::Tenant)?;
    let all = ctx.store.list_tenants().await?;
    Ok(all.into_iter().filter(|t| ctx.sees_tenant(&t.id)).collect())
}

pub async fn get_tenant(ctx: &Ctx<'_>, id: &str) -> Result<Tenant, AdminError> {
    ctx.require(Need::Tenant)?;
    visible_tenant(ctx, id).await
}

async fn visible_tenant(ctx: &Ctx<'_>, id: &str) -> Result<Tenant, AdminError> {
    match ctx.store.get_tenant(id).await? {
        Some(t) if ctx.sees_tenant(&t.id) => Ok(t),
        _ => Err(AdminError::not_found("tenant", id)),
    }
}

pub async fn update_tenant(ctx: &Ctx<'_>, id: &str, p: TenantPatch) -> Result<Tenant, AdminError> {
    ctx.audited("tenant.update", Some(id), async {
        ctx.require(Need::Tenant)?;
        let mut t = visible_tenant(ctx, id).await?;
        let before = t.clone();
        if !ctx.is_root() && perm::reach(ctx.who(), Res::TenantPlan, Owner::Operator, Act::Update) == Reach::No {
            if p.status.is_some_and(|s| s != t.status) {
                return Err(AdminError::denied(
                    "only the master key may change a tenant's status",
                ));
            }
            if p.plan.as_ref().is_some_and(|x| Some(x) != t.plan.as_ref()) {
                return Err(AdminError::denied(
                    "only the master key may change a tenant's plan",
                ));
            }
        }
        if let Some(n) = &p.name {
            t.name = check_name("name", n)?;
        }
        if let Some(s) = p.status {
            t.status = s;
        }
        let mut new_plan = None;
        if let Some(pl) = &p.plan {
            if Some(pl) != t.plan.as_ref() {
                new_plan = Some(plan_of(ctx, pl)?.clone());
                t.plan = Some(pl.clone());
            }
        }
        if let Some(m) = &p.allowed_models {
            let m = check_models(m)?;
            if !ctx.is_root() && m != t.allowed_models {
                // The tenant's model list is the operator's: a tenant admin
                // may only narrow it.
                let reach = ctx.allow(
                    Res::TenantModels,
                    Owner::Operator,
                    Act::Update,
                    "only the master key may change a tenant's allowed models",
                )?;
                if reach == Reach::Narrow && !models_narrower(&m, &t.allowed_models) {
                    return Err(AdminError::denied_param(
                        "allowed_models",
                        format!(
                            "a tenant admin may only narrow the tenant's allowed models ({}); widening or clearing them is the operator's (master key)",
                            if t.allowed_models.is_empty() { "all".to_owned() } else { t.allowed_models.join(", ") }
                        ),
                    ));
                }
            }
            t.allowed_models = m;
        } else if let Some(pl) = &new_plan {
            if !pl.models.is_empty() {
                t.allowed_models = pl.models.clone();
            }
        }
        if p.metadata.is_some() {
            t.metadata = check_metadata(p.metadata)?;
        }
        ctx.store.update_tenant(&t).await?;
        if let Some(pl) = &new_plan {
            apply_plan(ctx.store, &t, pl).await?;
        }
        let t = visible_tenant(ctx, id).await?;
        let d = json!({
            "status": {"from": before.status, "to": t.status},
            "plan": {"from": before.plan, "to": t.plan},
            "name": t.name,
        });
        Ok((t.clone(), done(&t.id, &t.id, d)))
    })
    .await
}

// ------------------------------------------------------------------- users

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub tenant_id: Option<String>,
    pub email: String,
    pub name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// The tenant a create request targets: the caller's own unless root.
fn target_tenant(ctx: &Ctx<'_>, given: Option<&str>) -> Result<String, AdminError> {
    match (given, ctx.tenant()) {
        (Some(t), _) if ctx.is_root() => Ok(t.to_owned()),
        (None, _) if ctx.is_root() => Err(AdminError::invalid(
            "tenant_id",
            "`tenant_id` is required with the master key",
        )),
        (Some(t), Some(own)) if t != own => Err(AdminError::denied(
            "you may only manage records in your own tenant",
        )),
        (_, Some(own)) => Ok(own.to_owned()),
        (_, None) => Err(AdminError::denied("no tenant")),
    }
}

async fn existing_tenant(ctx: &Ctx<'_>, id: &str) -> Result<Tenant, AdminError> {
    ctx.store
        .get_tenant(id)
        .await?
        .ok_or_else(|| AdminError::invalid("tenant_id", format!("tenant `{id}` does not exist")))
}

fn check_email(e: &str) -> Result<String, AdminError> {
    let e = e.trim();
    let ok = e.len() <= 320
        && !e.contains('\0')
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty());
    if ok {
        Ok(e.to_owned())
    } else {
        Err(AdminError::invalid(
            "email",
            format!("`{e}` is not an email address"),
        ))
    }
}

pub async fn create_user(ctx: &Ctx<'_>, n: NewUser) -> Result<User, AdminError> {
    ctx.audited("user.create", None, async {
        ctx.require(Need::Users)?;
        let tenant = target_tenant(ctx, n.tenant_id.as_deref())?;
        existing_tenant(ctx, &tenant).await?;
        let name = n
            .name
            .as_deref()
            .map(|s| check_name("name", s))
            .transpose()?;
        let now = now_ms();
        let u = User {
            id: new_id("usr_"),
            tenant_id: tenant,
            email: check_email(&n.email)?,
            name,
            role: n.role.unwrap_or(Role::Developer),
            disabled: n.disabled.unwrap_or(false),
            created_at: now,
            updated_at: now,
        };
        ctx.store.create_user(&u).await?;
        let u = visible_user(ctx, &u.id).await?;
        let d = json!({"email": u.email, "role": u.role});
        Ok((u.clone(), done(&u.tenant_id, &u.id, d)))
    })
    .await
}

pub async fn list_users(ctx: &Ctx<'_>, tenant_id: Option<&str>) -> Result<Vec<User>, AdminError> {
    ctx.require(Need::Users)?;
    let scope = if ctx.is_root() {
        tenant_id.map(str::to_owned)
    } else {
        match (tenant_id, ctx.tenant()) {
            (Some(t), Some(own)) if t != own => return Ok(Vec::new()),
            (_, own) => own.map(str::to_owned),
        }
    };
    Ok(ctx.store.list_users(scope.as_deref()).await?)
}

pub async fn get_user(ctx: &Ctx<'_>, id: &str) -> Result<User, AdminError> {
    ctx.require(Need::Users)?;
    visible_user(ctx, id).await
}

async fn visible_user(ctx: &Ctx<'_>, id: &str) -> Result<User, AdminError> {
    match ctx.store.get_user(id).await? {
        Some(u) if ctx.sees_tenant(&u.tenant_id) => Ok(u),
        _ => Err(AdminError::not_found("user", id)),
    }
}

pub async fn update_user(ctx: &Ctx<'_>, id: &str, p: UserPatch) -> Result<User, AdminError> {
    ctx.audited("user.update", Some(id), async {
        ctx.require(Need::Users)?;
        let mut u = visible_user(ctx, id).await?;
        let before = u.clone();
        if let Some(n) = &p.name {
            u.name = Some(check_name("name", n)?);
        }
        if let Some(r) = p.role {
            u.role = r;
        }
        if let Some(d) = p.disabled {
            u.disabled = d;
        }
        ctx.store.update_user(&u).await?;
        let u = visible_user(ctx, id).await?;
        let d = json!({
            "role": {"from": before.role, "to": u.role},
            "disabled": {"from": before.disabled, "to": u.disabled},
        });
        Ok((u.clone(), done(&u.tenant_id, &u.id, d)))
    })
    .await
}

// -------------------------------------------------------------------- keys

#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub role: Option<Role>,
    pub allowed_models: Option<Vec<String>>,
    /// Unix ms.
    pub expires_at: Option<Millis>,
    /// Seconds from now.
    pub expires_in: Option<i64>,
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub allowed_models: Option<Vec<String>>,
    /// `Some(None)` clears the expiry.
    pub expires_at: Option<Option<Millis>>,
    pub metadata: Option<Value>,
    /// Detach the key from the key that created it (operator only).
    pub detach: bool,
}

#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
}

/// A key as shown to callers: the record without its hash.
pub fn key_view(k: &ApiKey) -> Value {
    let mut v = serde_json::to_value(k).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("hash");
        o.insert("state".into(), json!(key_state(k, now_ms())));
    }
    v
}

/// `active`, `revoked`, `disabled`, `expired` or `rotating` (rotated,
/// still inside its overlap).
pub fn key_state(k: &ApiKey, now: Millis) -> &'static str {
    if k.revoked_at.is_some() {
        "revoked"
    } else if !k.enabled {
        "disabled"
    } else if k.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else if k.rotated_to.is_some() {
        "rotating"
    } else {
        "active"
    }
}

/// A new key and its plaintext (shown once).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: String,
    pub record: ApiKey,
}

/// Role order for "no higher than", from the permission table: `r` may do
/// (and read) nothing that `cap` may not. Admin is above every role; no
/// other two roles are ordered (a viewer reads the tenant's audit log and
/// usage, which a developer cannot).
pub fn role_at_most(r: Role, cap: Role) -> bool {
    perm::role_at_most(r, cap)
}

/// Longest creator / rotation chain followed.
const MAX_CHAIN: usize = 64;

/// The keys whose restrictions, per-key rate limits and budgets bind key
/// `id`: the key itself first, then (breadth first) the key it was rotated
/// to and the key that created it, and theirs. Missing keys are skipped.
pub async fn key_chain(store: &Store, id: &str) -> Result<Vec<ApiKey>, AdminError> {
    let mut out: Vec<ApiKey> = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = std::collections::VecDeque::from([id.to_owned()]);
    while let Some(k) = queue.pop_front() {
        if out.len() >= MAX_CHAIN || !seen.insert(k.clone()) {
            continue;
        }
        let Some(key) = store.get_key(&k).await? else {
            continue;
        };
        if let Some(n) = &key.rotated_to {
            queue.push_back(n.clone());
        }
        if let Some(p) = &key.parent_key_id {
            queue.push_back(p.clone());
        }
        out.push(key);
    }
    Ok(out)
}

/// What a set of keys allows together: the intersection of their model
/// lists (`None`: no list restricts; `Some([])`: nothing is left) and the
/// earliest expiry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    pub models: Option<Vec<String>>,
    pub expires_at: Option<Millis>,
}

pub fn bounds<'a>(keys: impl IntoIterator<Item = &'a ApiKey>) -> Bounds {
    let mut b = Bounds::default();
    for k in keys {
        if !k.allowed_models.is_empty() && !k.allowed_models.iter().any(|m| m == "*") {
            b.models = Some(match b.models.take() {
                None => k.allowed_models.clone(),
                Some(m) => m
                    .into_iter()
                    .filter(|x| k.allowed_models.contains(x))
                    .collect(),
            });
        }
        if let Some(e) = k.expires_at {
            b.expires_at = Some(b.expires_at.map_or(e, |x| x.min(e)));
        }
    }
    b
}

/// Is the model list `m` (empty = all) within `bound`?
fn models_within(m: &[String], bound: Option<&[String]>) -> bool {
    match bound {
        None => true,
        Some(b) => !m.is_empty() && m.iter().all(|x| b.contains(x)),
    }
}

/// Is the list `m` (empty = all) no wider than `before` (empty = all)?
fn models_narrower(m: &[String], before: &[String]) -> bool {
    before.is_empty() || before.iter().any(|x| x == "*") || models_within(m, Some(before))
}

/// Is the expiry `e` (`None` = never) no later than `bound`?
fn expiry_within(e: Option<Millis>, bound: Option<Millis>) -> bool {
    match bound {
        None => true,
        Some(b) => e.is_some_and(|e| e <= b),
    }
}

/// Who disabled a key, for `disabled_by`.
fn disabler(ctx: &Ctx<'_>) -> String {
    if ctx.is_root() {
        "operator".into()
    } else if ctx.role() == Some(Role::Admin) {
        "admin".into()
    } else {
        ctx.caller_key().unwrap_or("developer").to_owned()
    }
}

/// May the caller widen key `k` (re-enable it, give it more models or a
/// later expiry)? Never itself or a key it descends from (`Owner::Lineage`);
/// otherwise as far as the table reaches: admins in their tenant,
/// developers only keys they created. Re-enabling also needs the authority
/// of whoever disabled it.
async fn check_widen(ctx: &Ctx<'_>, k: &ApiKey, fields: &[&str]) -> Result<(), AdminError> {
    if ctx.is_root() {
        return Ok(());
    }
    let caller = ctx.caller_key();
    let mine = match caller {
        Some(c) => key_chain(ctx.store, c).await?,
        None => Vec::new(),
    };
    let lineage = mine.iter().any(|x| x.id == k.id);
    let owner = if lineage {
        Owner::Lineage
    } else {
        Owner::Others
    };
    let what = fields.join(", ");
    let reach = ctx.allow(
        Res::KeyWiden,
        owner,
        Act::Update,
        &if lineage {
            format!("a key cannot widen its own restrictions ({what}) or those of a key it was created by; only an admin of the tenant (with another key) or the operator can")
        } else {
            format!("you may not widen this key's restrictions ({what})")
        },
    )?;
    // Is the caller (strictly) above key `of` in its chain?
    let above = |chain: &[ApiKey]| caller.is_some_and(|c| chain.iter().skip(1).any(|x| x.id == c));
    if reach == Reach::Created && !above(&key_chain(ctx.store, &k.id).await?) {
        return Err(AdminError::denied(format!(
            "you may only widen ({what}) keys that you created"
        )));
    }
    if fields.contains(&"enabled") {
        match k.disabled_by.as_deref() {
            Some("operator") => {
                return Err(AdminError::denied(
                    "this key was disabled by the operator; only the master key may re-enable it",
                ))
            }
            Some("admin") if ctx.role() != Some(Role::Admin) => {
                return Err(AdminError::denied(
                    "this key was disabled by a tenant admin; only an admin may re-enable it",
                ))
            }
            Some(by)
                if by.starts_with("key_")
                    && ctx.role() != Some(Role::Admin)
                    && caller != Some(by) =>
            {
                let creator_of_disabler = above(&key_chain(ctx.store, by).await?);
                if !creator_of_disabler {
                    return Err(AdminError::denied(
                        "this key was disabled by another key; only that key, a key that created it, or an admin may re-enable it",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_models(m: &[String]) -> Result<Vec<String>, AdminError> {
    let mut out = Vec::with_capacity(m.len());
    for (i, s) in m.iter().enumerate() {
        let s = s.trim();
        if s.is_empty() || s.len() > 256 || s.contains('\0') {
            return Err(AdminError::invalid(
                &format!("allowed_models[{i}]"),
                "model names must be non-empty (at most 256 characters)",
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

fn check_metadata(m: Option<Value>) -> Result<Value, AdminError> {
    match m {
        None | Some(Value::Null) => Ok(json!({})),
        Some(v @ Value::Object(_)) => {
            if v.to_string().len() > 16 * 1024 {
                Err(AdminError::invalid(
                    "metadata",
                    "`metadata` is larger than 16 KiB",
                ))
            } else {
                Ok(v)
            }
        }
        Some(_) => Err(AdminError::invalid(
            "metadata",
            "`metadata` must be an object",
        )),
    }
}

/// May the caller manage this (existing) key? Admins: keys of their tenant;
/// developers: keys owned by their user.
async fn visible_key(ctx: &Ctx<'_>, id: &str) -> Result<ApiKey, AdminError> {
    let k = ctx.store.get_key(id).await?;
    let Some(k) = k else {
        return Err(AdminError::not_found("key", id));
    };
    if ctx.is_root() {
        return Ok(k);
    }
    if ctx.tenant() != Some(k.tenant_id.as_str()) {
        return Err(AdminError::not_found("key", id));
    }
    match ctx.role() {
        Some(Role::Admin) => Ok(k),
        Some(Role::Developer) => {
            let own = ctx.principal().and_then(|p| p.user_id.as_deref());
            if own.is_some() && k.user_id.as_deref() == own {
                Ok(k)
            } else {
                Err(AdminError::not_found("key", id))
            }
        }
        _ => Err(AdminError::denied("you may not manage keys")),
    }
}

/// The one rule for acting on an existing key `t` (read, patch, disable,
/// revoke, rotate, budgets and rate limits on it): a key never obtains,
/// controls or widens a key broader than itself. Allowed: the operator
/// (master key, CLI); the caller's own key (acting on itself cannot widen
/// it: rotating yields the same rights); a key the caller created,
/// directly or not (a descendant: never broader, see `create_key`). With
/// `tenant_wide` (an admin on keys; an admin or billing key on budgets),
/// also any other key of the tenant that is not broader than the caller,
/// provided the caller is itself unrestricted (no model list anywhere in its
/// chain) and expires no earlier than the target. Never a key the caller
/// descends from (its creators). Refusals are 403 with the reason.
async fn key_authority(ctx: &Ctx<'_>, t: &ApiKey, res: Res, act: Act) -> Result<(), AdminError> {
    if ctx.is_root() {
        return Ok(());
    }
    let Some(c) = ctx.caller_key() else {
        return Err(AdminError::denied(
            "only a virtual key or the operator may manage keys",
        ));
    };
    if t.id == c {
        return Ok(());
    }
    // Created by the caller: the caller is among the keys `t` descends
    // from (its creator, theirs, and the keys those were rotated to; not
    // the key `t` itself was rotated to, which may have been narrowed since).
    if let Some(p) = &t.parent_key_id {
        if key_chain(ctx.store, p).await?.iter().any(|k| k.id == c) {
            return Ok(());
        }
    }
    let theirs = key_chain(ctx.store, &t.id).await?;
    let mine = key_chain(ctx.store, c).await?;
    if mine.iter().any(|k| k.id == t.id) {
        ctx.allow(
            res,
            Owner::Creators,
            act,
            &format!("a key cannot {} a key it was created by (or rotated to); only an admin of the tenant (with another key) or the operator can", act.label()),
        )?;
        return Ok(());
    }
    // Keys: as far as the table reaches (`tenant` for admins); budgets and
    // rate limits: the route and owner checks already passed.
    let tenant_wide =
        res != Res::Key || perm::reach(ctx.who(), res, Owner::Others, act) >= Reach::Tenant;
    if !tenant_wide {
        return Err(AdminError::denied(
            "you may only manage your own key and the keys it created",
        ));
    }
    let me = bounds(&mine);
    let it = bounds(&theirs);
    if me.models.is_some() {
        return Err(AdminError::denied(
            "a key restricted to some models may only manage itself and the keys it created",
        ));
    }
    if !expiry_within(it.expires_at, me.expires_at) {
        return Err(AdminError::denied(
            "this key outlives yours; a key may only manage keys that expire no later than itself (or that it created)",
        ));
    }
    Ok(())
}

/// A key the caller may act on: visible to it ([`visible_key`]) and within
/// its authority ([`key_authority`]; admins tenant-wide).
async fn managed_key(ctx: &Ctx<'_>, id: &str, act: Act) -> Result<ApiKey, AdminError> {
    let k = visible_key(ctx, id).await?;
    key_authority(ctx, &k, Res::Key, act).await?;
    Ok(k)
}

pub async fn create_key(ctx: &Ctx<'_>, n: NewKey) -> Result<CreatedKey, AdminError> {
    ctx.audited("key.create", None, async {
        ctx.require(Need::Keys)?;
        let tenant = target_tenant(ctx, n.tenant_id.as_deref())?;
        existing_tenant(ctx, &tenant).await?;
        let mut user_id = n.user_id.clone();
        if ctx.role() == Some(Role::Developer) && !ctx.is_root() {
            let own = ctx
                .principal()
                .and_then(|p| p.user_id.clone())
                .ok_or_else(|| {
                    AdminError::denied("a developer key without a user cannot create keys")
                })?;
            match &user_id {
                Some(u) if *u != own => {
                    return Err(AdminError::denied(
                        "developers may only create keys for themselves",
                    ))
                }
                _ => user_id = Some(own),
            }
        }
        let owner = match &user_id {
            Some(u) => match ctx.store.get_user(u).await? {
                Some(x) if x.tenant_id == tenant => Some(x),
                _ => {
                    return Err(AdminError::invalid(
                        "user_id",
                        format!("user `{u}` does not exist in tenant `{tenant}`"),
                    ))
                }
            },
            None => None,
        };
        let role = n
            .role
            .or(owner.as_ref().map(|u| u.role))
            .unwrap_or(Role::Developer);
        if let Some(p) = ctx.principal().filter(|p| !p.master) {
            if !role_at_most(role, p.role) {
                return Err(AdminError::denied(format!(
                    "you cannot create a key with the role `{}` (above your own `{}`)",
                    role.as_str(),
                    p.role.as_str()
                )));
            }
        }
        if let Some(u) = &owner {
            if !role_at_most(role, u.role) {
                return Err(AdminError::invalid(
                    "role",
                    format!(
                        "a key cannot have a role (`{}`) above its owner's (`{}`)",
                        role.as_str(),
                        u.role.as_str()
                    ),
                ));
            }
        }
        let now = now_ms();
        let mut expires_at = expiry(now, n.expires_at, n.expires_in)?;
        let mut allowed_models = check_models(n.allowed_models.as_deref().unwrap_or(&[]))?;
        // A key created by a key is never broader than its creator: models
        // within the creator's (inherited when not given), expiry no later
        // (inherited when not given); the creator's per-key rate limits and
        // budgets bind it through `parent_key_id` (see governance).
        let parent = ctx.caller_key().map(str::to_owned);
        if let Some(pk) = &parent {
            let b = bounds(&key_chain(ctx.store, pk).await?);
            if let Some(bm) = &b.models {
                if allowed_models.is_empty() {
                    if bm.is_empty() {
                        return Err(AdminError::denied(
                            "your key may call no model, so it cannot create keys",
                        ));
                    }
                    allowed_models = bm.clone();
                } else if !models_within(&allowed_models, Some(bm)) {
                    return Err(AdminError::denied_param(
                        "allowed_models",
                        format!(
                            "a key cannot allow models its creator may not call (your key allows: {})",
                            bm.join(", ")
                        ),
                    ));
                }
            }
            if let Some(be) = b.expires_at {
                match expires_at {
                    None => expires_at = Some(be),
                    Some(e) if e > be => {
                        return Err(AdminError::denied_param(
                            "expires_at",
                            format!(
                                "a key cannot outlive its creator (your key expires at {})",
                                format_time(be)
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        let name = n.name.as_deref().map(|s| check_name("name", s)).transpose()?;
        let plaintext = keys::generate();
        let k = ApiKey {
            id: new_id("key_"),
            hash: keys::hash_hex(&plaintext),
            prefix: keys::display_prefix(&plaintext),
            name,
            tenant_id: tenant,
            user_id,
            role,
            allowed_models,
            metadata: check_metadata(n.metadata)?,
            expires_at,
            enabled: true,
            revoked_at: None,
            rotated_to: None,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            parent_key_id: parent,
            disabled_by: None,
        };
        ctx.store.create_key(&k).await?;
        let k = visible_key(ctx, &k.id).await?;
        let d = json!({"role": k.role, "user_id": k.user_id, "prefix": k.prefix, "expires_at": k.expires_at, "allowed_models": k.allowed_models, "parent_key_id": k.parent_key_id});
        Ok((
            CreatedKey {
                key: plaintext,
                record: k.clone(),
            },
            done(&k.tenant_id, &k.id, d),
        ))
    })
    .await
}

fn expiry(
    now: Millis,
    at: Option<Millis>,
    in_secs: Option<i64>,
) -> Result<Option<Millis>, AdminError> {
    match (at, in_secs) {
        (Some(_), Some(_)) => Err(AdminError::invalid(
            "expires_in",
            "give either `expires_at` or `expires_in`, not both",
        )),
        (Some(a), None) if a <= now => Err(AdminError::invalid(
            "expires_at",
            "`expires_at` is in the past",
        )),
        (Some(a), None) => Ok(Some(a)),
        (None, Some(s)) if s <= 0 || s > 100 * 365 * 86_400 => Err(AdminError::invalid(
            "expires_in",
            "`expires_in` must be a positive number of seconds (at most 100 years)",
        )),
        (None, Some(s)) => Ok(Some(now + s * 1000)),
        (None, None) => Ok(None),
    }
}

pub async fn list_keys(ctx: &Ctx<'_>, f: KeyFilter) -> Result<Vec<ApiKey>, AdminError> {
    ctx.require(Need::Keys)?;
    let (tenant, user) = if ctx.is_root() {
        (f.tenant_id, f.user_id)
    } else {
        let own = ctx.tenant().map(str::to_owned);
        if f.tenant_id.is_some() && f.tenant_id != own {
            return Ok(Vec::new());
        }
        if ctx.role() == Some(Role::Developer) {
            let me = ctx.principal().and_then(|p| p.user_id.clone());
            let Some(me) = me else {
                return Ok(Vec::new());
            };
            if f.user_id.as_ref().is_some_and(|u| *u != me) {
                return Ok(Vec::new());
            }
            (own, Some(me))
        } else {
            (own, f.user_id)
        }
    };
    let all = ctx
        .store
        .list_keys(tenant.as_deref(), user.as_deref())
        .await?;
    // Only the keys the caller may read (`key_authority`): an unrestricted
    // admin key skips the per-key walk.
    let unrestricted = ctx.is_root()
        || (ctx.role() == Some(Role::Admin)
            && match ctx.caller_key() {
                Some(c) => bounds(&key_chain(ctx.store, c).await?) == Bounds::default(),
                None => false,
            });
    if unrestricted {
        return Ok(all);
    }
    let mut out = Vec::with_capacity(all.len());
    for k in all {
        if key_authority(ctx, &k, Res::Key, Act::Read).await.is_ok() {
            out.push(k);
        }
    }
    Ok(out)
}

pub async fn get_key(ctx: &Ctx<'_>, id: &str) -> Result<ApiKey, AdminError> {
    ctx.require(Need::Keys)?;
    managed_key(ctx, id, Act::Read).await
}

pub async fn update_key(ctx: &Ctx<'_>, id: &str, p: KeyPatch) -> Result<ApiKey, AdminError> {
    ctx.audited("key.update", Some(id), async {
        ctx.require(Need::Keys)?;
        let mut k = managed_key(ctx, id, Act::Update).await?;
        let before = k.clone();
        if let Some(n) = &p.name {
            k.name = Some(check_name("name", n)?);
        }
        let mut widen: Vec<&str> = Vec::new();
        if let Some(e) = p.enabled {
            if e && !before.enabled {
                widen.push("enabled");
                k.disabled_by = None;
            } else if !e && before.enabled {
                k.disabled_by = Some(disabler(ctx));
            }
            k.enabled = e;
        }
        if let Some(m) = &p.allowed_models {
            k.allowed_models = check_models(m)?;
            if !models_narrower(&k.allowed_models, &before.allowed_models) {
                widen.push("allowed_models");
            }
        }
        if let Some(e) = p.expires_at {
            k.expires_at = e;
            if !expiry_within(e, before.expires_at) {
                widen.push("expires_at");
            }
        }
        if p.metadata.is_some() {
            k.metadata = check_metadata(p.metadata)?;
        }
        if p.detach && k.parent_key_id.is_some() {
            if !ctx.is_root() {
                return Err(AdminError::denied_param(
                    "parent_key_id",
                    "only the operator (master key or CLI) may detach a key from the key that created it",
                ));
            }
            k.parent_key_id = None;
        }
        if !widen.is_empty() {
            check_widen(ctx, &before, &widen).await?;
        }
        // Whoever changes it, a key stays within the keys that created it.
        if k.parent_key_id.is_some() && (p.allowed_models.is_some() || p.expires_at.is_some()) {
            let chain = key_chain(ctx.store, id).await?;
            let b = bounds(chain.iter().skip(1));
            if p.allowed_models.is_some() && !models_within(&k.allowed_models, b.models.as_deref())
            {
                return Err(AdminError::denied_param(
                    "allowed_models",
                    format!(
                        "a key cannot allow models the key that created it may not call ({})",
                        b.models.unwrap_or_default().join(", ")
                    ),
                ));
            }
            if p.expires_at.is_some() && !expiry_within(k.expires_at, b.expires_at) {
                return Err(AdminError::denied_param(
                    "expires_at",
                    "a key cannot outlive the key that created it",
                ));
            }
        }
        ctx.store.update_key(&k).await?;
        let k = visible_key(ctx, id).await?;
        let d = json!({
            "parent_key_id": {"from": before.parent_key_id, "to": k.parent_key_id},
            "enabled": {"from": before.enabled, "to": k.enabled},
            "expires_at": {"from": before.expires_at, "to": k.expires_at},
            "allowed_models": {"from": before.allowed_models, "to": k.allowed_models},
        });
        Ok((k.clone(), done(&k.tenant_id, &k.id, d)))
    })
    .await
}

pub async fn revoke_key(ctx: &Ctx<'_>, id: &str) -> Result<ApiKey, AdminError> {
    ctx.audited("key.revoke", Some(id), async {
        ctx.require(Need::Keys)?;
        let mut k = managed_key(ctx, id, Act::Revoke).await?;
        if k.revoked_at.is_none() {
            k.revoked_at = Some(now_ms());
            ctx.store.update_key(&k).await?;
        }
        let k = visible_key(ctx, id).await?;
        Ok((k.clone(), done(&k.tenant_id, &k.id, json!({}))))
    })
    .await
}

/// Rotate: a new key with the same owner, role and limits works at once;
/// the old one keeps working until `now + overlap` and points at the new
/// one (`rotated_to`).
pub async fn rotate_key(
    ctx: &Ctx<'_>,
    id: &str,
    overlap_secs: Option<i64>,
) -> Result<CreatedKey, AdminError> {
    ctx.audited("key.rotate", Some(id), async {
        ctx.require(Need::Keys)?;
        let overlap = overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
        if !(0..=365 * 86_400).contains(&overlap) {
            return Err(AdminError::invalid(
                "overlap_seconds",
                "`overlap_seconds` must be between 0 and 31536000",
            ));
        }
        let mut old = managed_key(ctx, id, Act::Rotate).await?;
        let now = now_ms();
        match key_state(&old, now) {
            "active" => {}
            state => {
                return Err(AdminError::conflict(format!(
                    "key `{id}` is {state}; only active keys can be rotated"
                )))
            }
        }
        let plaintext = keys::generate();
        let new = ApiKey {
            id: new_id("key_"),
            hash: keys::hash_hex(&plaintext),
            prefix: keys::display_prefix(&plaintext),
            revoked_at: None,
            rotated_to: None,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            ..old.clone()
        };
        // In this order no refresh of a gateway ever sees either key
        // unbound: the old key first points at the new id (the rules that
        // bind the new key bind it too, through `rotated_to`), then its
        // per-key rate limits and budgets move to the new id (same rule
        // ids, so a budget keeps what it spent this period and a limiter
        // its state), and only then does the new key exist.
        let until = now + overlap * 1000;
        old.expires_at = Some(old.expires_at.map_or(until, |e| e.min(until)));
        old.rotated_to = Some(new.id.clone());
        ctx.store.update_key(&old).await?;
        let mut moved = Vec::new();
        for mut r in ctx.store.list_rate_limits(Some((Scope::Key, &old.id))).await? {
            r.scope_id = new.id.clone();
            ctx.store.upsert_rate_limit(&r).await?;
            moved.push(r.id);
        }
        for mut b in ctx.store.list_budgets(Some((Scope::Key, &old.id))).await? {
            b.scope_id = new.id.clone();
            ctx.store.upsert_budget(&b).await?;
            moved.push(b.id);
        }
        ctx.store.create_key(&new).await?;
        let new = visible_key(ctx, &new.id).await?;
        let d = json!({"new_key": new.id, "old_expires_at": old.expires_at, "overlap_seconds": overlap, "moved": moved});
        Ok((
            CreatedKey {
                key: plaintext,
                record: new,
            },
            done(&old.tenant_id, &old.id, d),
        ))
    })
    .await
}

// ----------------------------------------------------------------- budgets

#[derive(Debug, Clone, Default)]
pub struct BudgetInput {
    pub scope: Option<Scope>,
    pub scope_id: Option<String>,
    pub period: Option<String>,
    pub max_cost: Option<f64>,
    pub max_tokens: Option<i64>,
    pub alert_thresholds: Option<Vec<f64>>,
    pub action: Option<BudgetAction>,
    pub downgrade_alias: Option<String>,
}

/// `monthly`, `daily`, `{N}s`, `{N}h`, `{N}d`.
pub fn valid_period(p: &str) -> bool {
    matches!(p, "monthly" | "daily") || parse_span(p).is_some()
}

/// The tenant a budget / rate-limit scope belongs to, if the scope exists.
async fn scope_tenant(
    store: &Store,
    scope: Scope,
    scope_id: &str,
) -> Result<Option<String>, AdminError> {
    Ok(match scope {
        Scope::Tenant => store.get_tenant(scope_id).await?.map(|t| t.id),
        Scope::User => store.get_user(scope_id).await?.map(|u| u.tenant_id),
        Scope::Key => store.get_key(scope_id).await?.map(|k| k.tenant_id),
    })
}

/// Validate a scope for a write: it must exist and be in the caller's tenant.
async fn writable_scope(ctx: &Ctx<'_>, scope: Scope, scope_id: &str) -> Result<String, AdminError> {
    match scope_tenant(ctx.store, scope, scope_id).await? {
        Some(t) if ctx.sees_tenant(&t) => {
            if scope == Scope::Key && !ctx.is_root() {
                if let Some(k) = ctx.store.get_key(scope_id).await? {
                    key_authority(ctx, &k, Res::Budget, Act::Create).await?;
                }
            }
            Ok(t)
        }
        Some(_) => Err(AdminError::denied(
            "you may only manage records in your own tenant",
        )),
        None => Err(AdminError::invalid(
            "scope_id",
            format!("{} `{scope_id}` does not exist", scope.as_str()),
        )),
    }
}

fn build_budget(
    ctx: &Ctx<'_>,
    id: String,
    created_at: Millis,
    i: BudgetInput,
) -> Result<Budget, AdminError> {
    let scope = i
        .scope
        .ok_or_else(|| AdminError::invalid("scope", "`scope` is required (tenant, user or key)"))?;
    let scope_id = i
        .scope_id
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| AdminError::invalid("scope_id", "`scope_id` is required"))?;
    let period = i.period.unwrap_or_else(|| "monthly".into());
    if !valid_period(&period) {
        return Err(AdminError::invalid(
            "period",
            format!("`{period}` is not a period: use monthly, daily, or {{N}}s / {{N}}h / {{N}}d"),
        ));
    }
    if let Some(c) = i.max_cost {
        if !c.is_finite() || c < 0.0 {
            return Err(AdminError::invalid(
                "max_cost",
                "`max_cost` must be a non-negative number",
            ));
        }
    }
    if i.max_tokens.is_some_and(|t| t < 0) {
        return Err(AdminError::invalid(
            "max_tokens",
            "`max_tokens` must not be negative",
        ));
    }
    if i.max_cost.is_none() && i.max_tokens.is_none() {
        return Err(AdminError::invalid(
            "max_cost",
            "give `max_cost` (USD) and/or `max_tokens`",
        ));
    }
    let thresholds = i
        .alert_thresholds
        .unwrap_or_else(|| DEFAULT_THRESHOLDS.to_vec());
    for (n, t) in thresholds.iter().enumerate() {
        if !(t.is_finite() && *t > 0.0 && *t <= 1.0) {
            return Err(AdminError::invalid(
                &format!("alert_thresholds[{n}]"),
                format!("threshold {t} is not in (0, 1]"),
            ));
        }
    }
    let action = i.action.unwrap_or(BudgetAction::Block);
    let downgrade_alias = match action {
        BudgetAction::Downgrade => {
            let a = i.downgrade_alias.filter(|a| !a.is_empty()).ok_or_else(|| {
                AdminError::invalid(
                    "downgrade_alias",
                    "`action: downgrade` needs `downgrade_alias`",
                )
            })?;
            if let Some(router) = ctx.router {
                if router.alias(&a).is_none() {
                    return Err(AdminError::invalid(
                        "downgrade_alias",
                        format!("`{a}` is not a configured model alias"),
                    ));
                }
            }
            Some(a)
        }
        BudgetAction::Block => None,
    };
    Ok(Budget {
        id,
        scope,
        scope_id,
        period,
        max_cost: i.max_cost,
        max_tokens: i.max_tokens,
        alert_thresholds: thresholds,
        action,
        downgrade_alias,
        created_at,
        updated_at: created_at,
        owner: ctx.owner(),
    })
}

fn owner_col(o: PolicyOwner) -> Owner {
    match o {
        PolicyOwner::Operator => Owner::Operator,
        PolicyOwner::Tenant => Owner::Tenant,
    }
}

/// May the caller change (`act`) a budget / rate limit owned by `owner` on
/// `scope`? What the operator set, only the operator changes; a rule on the
/// caller's own key or a key it descends from, only the operator (or an
/// admin using an unrelated key) removes or loosens.
async fn check_policy(
    ctx: &Ctx<'_>,
    res: Res,
    owner: PolicyOwner,
    scope: Scope,
    scope_id: &str,
    act: Act,
) -> Result<(), AdminError> {
    let what = res.label();
    ctx.allow(
        res,
        owner_col(owner),
        act,
        &format!(
            "this {what} was set by the {}; only the operator (master key) may {} it",
            owner.as_str(),
            act.label()
        ),
    )?;
    if scope == Scope::Key && !ctx.is_root() {
        if let Some(t) = ctx.store.get_key(scope_id).await? {
            key_authority(ctx, &t, res, act).await?;
        }
        if let Some(c) = ctx.caller_key() {
            if key_chain(ctx.store, c)
                .await?
                .iter()
                .any(|k| k.id == scope_id)
            {
                ctx.allow(
                    res,
                    Owner::Lineage,
                    act,
                    &format!(
                        "a key cannot {} a {what} that binds itself or a key it was created by",
                        act.label()
                    ),
                )?;
            }
        }
    }
    Ok(())
}

pub async fn create_budget(ctx: &Ctx<'_>, i: BudgetInput) -> Result<Budget, AdminError> {
    ctx.audited("budget.create", None, async {
        ctx.require(Need::Budgets)?;
        let b = build_budget(ctx, new_id("bud_"), now_ms(), i)?;
        let tenant = writable_scope(ctx, b.scope, &b.scope_id).await?;
        ctx.store.upsert_budget(&b).await?;
        let b = visible_budget(ctx, &b.id).await?;
        let d = json!({"scope": b.scope, "scope_id": b.scope_id, "max_cost": b.max_cost, "max_tokens": b.max_tokens, "period": b.period, "owner": b.owner});
        Ok((b.clone(), done(&tenant, &b.id, d)))
    })
    .await
}

async fn find_budget(store: &Store, id: &str) -> Result<Option<Budget>, AdminError> {
    Ok(store
        .list_budgets(None)
        .await?
        .into_iter()
        .find(|b| b.id == id))
}

async fn visible_budget(ctx: &Ctx<'_>, id: &str) -> Result<Budget, AdminError> {
    if let Some(b) = find_budget(ctx.store, id).await? {
        let t = scope_tenant(ctx.store, b.scope, &b.scope_id).await?;
        if ctx.is_root() || t.as_deref().is_some_and(|t| ctx.sees_tenant(t)) {
            return Ok(b);
        }
    }
    Err(AdminError::not_found("budget", id))
}

pub async fn list_budgets(ctx: &Ctx<'_>) -> Result<Vec<Budget>, AdminError> {
    ctx.require(Need::Budgets)?;
    let all = ctx.store.list_budgets(None).await?;
    if ctx.is_root() {
        return Ok(all);
    }
    let own = ctx.tenant().unwrap_or_default().to_owned();
    let (users, keys) = tenant_members(ctx.store, &own).await?;
    Ok(all
        .into_iter()
        .filter(|b| in_tenant(&own, &users, &keys, b.scope, &b.scope_id))
        .collect())
}

async fn tenant_members(
    store: &Store,
    tenant: &str,
) -> Result<(HashSet<String>, HashSet<String>), AdminError> {
    let users = store
        .list_users(Some(tenant))
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let keys = store
        .list_keys(Some(tenant), None)
        .await?
        .into_iter()
        .map(|k| k.id)
        .collect();
    Ok((users, keys))
}

fn in_tenant(
    tenant: &str,
    users: &HashSet<String>,
    keys: &HashSet<String>,
    scope: Scope,
    id: &str,
) -> bool {
    match scope {
        Scope::Tenant => id == tenant,
        Scope::User => users.contains(id),
        Scope::Key => keys.contains(id),
    }
}

pub async fn get_budget(ctx: &Ctx<'_>, id: &str) -> Result<Budget, AdminError> {
    ctx.require(Need::Budgets)?;
    visible_budget(ctx, id).await
}

pub async fn put_budget(ctx: &Ctx<'_>, id: &str, i: BudgetInput) -> Result<Budget, AdminError> {
    ctx.audited("budget.update", Some(id), async {
        ctx.require(Need::Budgets)?;
        let old = visible_budget(ctx, id).await?;
        check_policy(ctx, Res::Budget, old.owner, old.scope, &old.scope_id, Act::Update).await?;
        let mut b = build_budget(ctx, old.id.clone(), old.created_at, i)?;
        if !ctx.is_root() {
            b.owner = old.owner;
        }
        check_policy(ctx, Res::Budget, b.owner, b.scope, &b.scope_id, Act::Update).await?;
        let tenant = writable_scope(ctx, b.scope, &b.scope_id).await?;
        ctx.store.upsert_budget(&b).await?;
        let b = visible_budget(ctx, id).await?;
        let d = json!({"scope": b.scope, "scope_id": b.scope_id, "max_cost": b.max_cost, "max_tokens": b.max_tokens, "period": b.period});
        Ok((b.clone(), done(&tenant, &b.id, d)))
    })
    .await
}

pub async fn delete_budget(ctx: &Ctx<'_>, id: &str) -> Result<Budget, AdminError> {
    ctx.audited("budget.delete", Some(id), async {
        ctx.require(Need::Budgets)?;
        let b = visible_budget(ctx, id).await?;
        check_policy(ctx, Res::Budget, b.owner, b.scope, &b.scope_id, Act::Delete).await?;
        let tenant = scope_tenant(ctx.store, b.scope, &b.scope_id)
            .await?
            .unwrap_or_default();
        if !ctx.store.delete_budget(id).await? {
            return Err(AdminError::not_found("budget", id));
        }
        Ok((b.clone(), done(&tenant, &b.id, json!({}))))
    })
    .await
}

/// A budget's live state.
pub async fn budget_status(ctx: &Ctx<'_>, id: &str) -> Result<Value, AdminError> {
    ctx.require(Need::Budgets)?;
    let b = visible_budget(ctx, id).await?;
    let now = now_ms();
    let live = ctx.ledger.and_then(|l| l.status(id));
    let (spent_cost, spent_tokens, reserved_cost, start, end, source) = match live {
        Some((c, t, r, s, e)) => (c, t, r, s, e, "live"),
        None => {
            // Not loaded yet (created within the refresh interval) or no
            // server: count from the usage table.
            let (s, e) = period_bounds(&b, now);
            let (c, t) = ctx.store.spend_since(b.scope, &b.scope_id, s).await?;
            (c, t, 0.0, s, e, "database")
        }
    };
    let frac = |spent: f64, max: Option<f64>| max.filter(|m| *m > 0.0).map(|m| spent / m);
    Ok(json!({
        "budget": b,
        "spent_cost": spent_cost,
        "spent_tokens": spent_tokens,
        "reserved_cost": reserved_cost,
        "remaining_cost": b.max_cost.map(|m| (m - spent_cost - reserved_cost).max(0.0)),
        "remaining_tokens": b.max_tokens.map(|m| (m - spent_tokens).max(0)),
        "used_fraction": frac(spent_cost, b.max_cost)
            .into_iter()
            .chain(frac(spent_tokens as f64, b.max_tokens.map(|t| t as f64)))
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x)))),
        "period_start": start,
        "period_end": end,
        "source": source,
    }))
}

// ------------------------------------------------------------- rate limits

#[derive(Debug, Clone, Default)]
pub struct RateLimitInput {
    pub scope: Option<Scope>,
    pub scope_id: Option<String>,
    pub model: Option<String>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
}

pub async fn create_rate_limit(ctx: &Ctx<'_>, i: RateLimitInput) -> Result<RateLimit, AdminError> {
    ctx.audited("rate_limit.create", None, async {
        ctx.require(Need::RateLimits)?;
        let scope = i.scope.ok_or_else(|| {
            AdminError::invalid("scope", "`scope` is required (tenant, user or key)")
        })?;
        let scope_id = i
            .scope_id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| AdminError::invalid("scope_id", "`scope_id` is required"))?;
        for (f, v) in [("rpm", i.rpm), ("tpm", i.tpm)] {
            if v.is_some_and(|v| v <= 0) {
                return Err(AdminError::invalid(f, format!("`{f}` must be positive")));
            }
        }
        if i.rpm.is_none() && i.tpm.is_none() {
            return Err(AdminError::invalid("rpm", "give `rpm` and/or `tpm`"));
        }
        let model = match i.model {
            Some(m) if m.trim().is_empty() => {
                return Err(AdminError::invalid("model", "`model` must not be empty"))
            }
            m => m,
        };
        let tenant = writable_scope(ctx, scope, &scope_id).await?;
        let now = now_ms();
        let r = RateLimit {
            id: new_id("rl_"),
            scope,
            scope_id,
            model,
            rpm: i.rpm,
            tpm: i.tpm,
            created_at: now,
            updated_at: now,
            owner: ctx.owner(),
        };
        ctx.store.upsert_rate_limit(&r).await?;
        let r = visible_rate_limit(ctx, &r.id).await?;
        let d = json!({"scope": r.scope, "scope_id": r.scope_id, "model": r.model, "rpm": r.rpm, "tpm": r.tpm});
        Ok((r.clone(), done(&tenant, &r.id, d)))
    })
    .await
}

async fn visible_rate_limit(ctx: &Ctx<'_>, id: &str) -> Result<RateLimit, AdminError> {
    let found = ctx
        .store
        .list_rate_limits(None)
        .await?
        .into_iter()
        .find(|r| r.id == id);
    if let Some(r) = found {
        let t = scope_tenant(ctx.store, r.scope, &r.scope_id).await?;
        if ctx.is_root() || t.as_deref().is_some_and(|t| ctx.sees_tenant(t)) {
            return Ok(r);
        }
    }
    Err(AdminError::not_found("rate limit", id))
}

pub async fn list_rate_limits(ctx: &Ctx<'_>) -> Result<Vec<RateLimit>, AdminError> {
    ctx.require(Need::RateLimits)?;
    let all = ctx.store.list_rate_limits(None).await?;
    if ctx.is_root() {
        return Ok(all);
    }
    let own = ctx.tenant().unwrap_or_default().to_owned();
    let (users, keys) = tenant_members(ctx.store, &own).await?;
    Ok(all
        .into_iter()
        .filter(|r| in_tenant(&own, &users, &keys, r.scope, &r.scope_id))
        .collect())
}

pub async fn delete_rate_limit(ctx: &Ctx<'_>, id: &str) -> Result<RateLimit, AdminError> {
    ctx.audited("rate_limit.delete", Some(id), async {
        ctx.require(Need::RateLimits)?;
        let r = visible_rate_limit(ctx, id).await?;
        check_policy(
            ctx,
            Res::RateLimit,
            r.owner,
            r.scope,
            &r.scope_id,
            Act::Delete,
        )
        .await?;
        let tenant = scope_tenant(ctx.store, r.scope, &r.scope_id)
            .await?
            .unwrap_or_default();
        if !ctx.store.delete_rate_limit(id).await? {
            return Err(AdminError::not_found("rate limit", id));
        }
        Ok((r.clone(), done(&tenant, &r.id, json!({}))))
    })
    .await
}

// ------------------------------------------------------------------- usage

#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    pub filter: UsageFilter,
    pub group_by: Option<GroupBy>,
    pub bucket: Option<Bucket>,
}

/// Confine a filter to what the caller may read: non-root callers to their
/// tenant, developers to their own user (or key). An explicit filter for
/// someone else is refused.
fn confine(ctx: &Ctx<'_>, f: &mut UsageFilter) -> Result<(), AdminError> {
    if ctx.is_root() {
        return Ok(());
    }
    let Some(p) = ctx.principal() else {
        return Err(AdminError::denied("no access"));
    };
    let own = p.tenant_id.clone();
    if f.tenant_id.is_some() && f.tenant_id != own {
        return Err(AdminError::denied_param(
            "tenant_id",
            "you may only read your own tenant's usage",
        ));
    }
    f.tenant_id = own;
    if p.role == Role::Developer {
        match &p.user_id {
            Some(u) => {
                if f.user_id.as_ref().is_some_and(|x| x != u) {
                    return Err(AdminError::denied_param(
                        "user_id",
                        "developers may only read their own usage",
                    ));
                }
                f.user_id = Some(u.clone());
            }
            None => {
                if f.key_id.is_some() && f.key_id != p.key_id {
                    return Err(AdminError::denied_param(
                        "key_id",
                        "developers may only read their own usage",
                    ));
                }
                f.key_id = p.key_id.clone();
            }
        }
    }
    Ok(())
}

fn check_range(f: &UsageFilter) -> Result<(), AdminError> {
    if let (Some(a), Some(b)) = (f.from, f.to) {
        if a > b {
            return Err(AdminError::invalid("from", "`from` is after `to`"));
        }
    }
    Ok(())
}

/// Totals (per group), or a time series when `bucket` is set.
pub async fn usage_report(
    ctx: &Ctx<'_>,
    mut q: UsageQuery,
) -> Result<Vec<UsageTotals>, AdminError> {
    ctx.require(Need::Usage)?;
    confine(ctx, &mut q.filter)?;
    check_range(&q.filter)?;
    Ok(match q.bucket {
        Some(b) => ctx.store.usage_series(&q.filter, b, q.group_by).await?,
        None => ctx.store.usage_totals(&q.filter, q.group_by).await?,
    })
}

/// Individual usage records, newest first.
pub async fn usage_records(
    ctx: &Ctx<'_>,
    mut f: UsageFilter,
    limit: Option<i64>,
) -> Result<Vec<UsageRow>, AdminError> {
    ctx.require(Need::Usage)?;
    confine(ctx, &mut f)?;
    check_range(&f)?;
    let limit = check_limit(limit)?;
    Ok(ctx.store.usage_rows(&f, limit).await?)
}

fn check_limit(limit: Option<i64>) -> Result<i64, AdminError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        Some(_) => Err(AdminError::invalid(
            "limit",
            format!("`limit` must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

// ------------------------------------------------------------------- audit

pub async fn list_audit(
    ctx: &Ctx<'_>,
    tenant_id: Option<String>,
    since: Option<Millis>,
    limit: Option<i64>,
) -> Result<Vec<AuditEvent>, AdminError> {
    ctx.require(Need::Audit)?;
    let limit = check_limit(limit)?;
    let tenant = if ctx.is_root() {
        tenant_id
    } else {
        let own = ctx.tenant().map(str::to_owned);
        if tenant_id.is_some() && tenant_id != own {
            return Err(AdminError::denied_param(
                "tenant_id",
                "you may only read your own tenant's audit log",
            ));
        }
        own
    };
    Ok(ctx
        .store
        .list_audit(tenant.as_deref(), since, limit)
        .await?)
}

// ------------------------------------------------------------ time parsing

/// A time as RFC 3339 (`2025-01-31T12:00:00Z`, offsets allowed, or a bare
/// date `2025-01-31`) or Unix milliseconds.
pub fn parse_time(s: &str) -> Option<Millis> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if b.len() == 10 {
        return Some(days * 86_400_000);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        ms = frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_min = match &s[i..] {
        "Z" | "z" => 0,
        o if o.is_ascii()
            && o.len() == 6
            && (o.starts_with('+') || o.starts_with('-'))
            && &o[3..4] == ":" =>
        {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let v = oh * 60 + om;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix ms as RFC 3339 (UTC, milliseconds).
pub fn format_time(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let sub = ms.rem_euclid(1000) as u32;
    match u64::try_from(secs) {
        Ok(s) => humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::new(s, sub * 1_000_000),
        )
        .to_string(),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_both_ways() {
        assert_eq!(parse_time("0"), Some(0));
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00"),
            Some(1_700_000_000_500)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123456Z"),
            Some(1_700_000_000_123)
        );
        for bad in [
            "",
            "x",
            "2023-13-01",
            "2023-11-14T25:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20+1",
            "-5",
            "2023-11-14T22:13:20.Z",
            "2023-1Ω-14",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(format_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn role_order() {
        use Role::*;
        assert!(!role_at_most(Viewer, Developer));
        assert!(role_at_most(Developer, Developer));
        assert!(!role_at_most(Admin, Developer));
        assert!(!role_at_most(Billing, Developer));
        assert!(role_at_most(Billing, Admin));
    }

    fn key(models: &[&str], exp: Option<Millis>) -> ApiKey {
        ApiKey {
            id: "key_x".into(),
            hash: String::new(),
            prefix: String::new(),
            name: None,
            tenant_id: "t".into(),
            user_id: None,
            role: Role::Developer,
            allowed_models: models.iter().map(|s| s.to_string()).collect(),
            metadata: json!({}),
            expires_at: exp,
            enabled: true,
            revoked_at: None,
            rotated_to: None,
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
            parent_key_id: None,
            disabled_by: None,
        }
    }

    #[test]
    fn bounds_intersect_models_and_take_the_earliest_expiry() {
        let b = bounds(&[
            key(&["a", "b"], Some(5)),
            key(&[], None),
            key(&["b", "c"], Some(3)),
        ]);
        assert_eq!(b.models, Some(vec!["b".to_string()]));
        assert_eq!(b.expires_at, Some(3));
        assert_eq!(
            bounds(&[key(&[], None), key(&["*"], None)]),
            Bounds::default()
        );
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(models_within(&s(&["b"]), Some(&s(&["a", "b"]))));
        assert!(
            !models_within(&s(&[]), Some(&s(&["a"]))),
            "empty = all is wider"
        );
        assert!(models_within(&s(&[]), None));
        assert!(models_narrower(&s(&["a"]), &s(&[])));
        assert!(!models_narrower(&s(&[]), &s(&["a"])));
        assert!(expiry_within(Some(1), Some(2)));
        assert!(!expiry_within(None, Some(2)));
        assert!(!expiry_within(Some(3), Some(2)));
        assert!(expiry_within(None, None));
    }

    #[test]
    fn periods() {
        for p in ["monthly", "daily", "30s", "12h", "7d"] {
            assert!(valid_period(p), "{p}");
        }
        for p in ["", "weekly", "0d", "5m", "d", "-1d", "1.5h"] {
            assert!(!valid_period(p), "{p}");
        }
    }
}
