//! Governance records as stored. Times are Unix milliseconds (`i64`); ids
//! are text (`ten_…`, `usr_…`, `key_…`, `bud_…`, `rl_…`); JSON-ish fields
//! are stored as JSON text. These are plain data: the in-memory governance
//! state (`crate::governance`) is built from them.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
    Trial,
    Expired,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Trial => "trial",
            TenantStatus::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => TenantStatus::Active,
            "suspended" => TenantStatus::Suspended,
            "trial" => TenantStatus::Trial,
            "expired" => TenantStatus::Expired,
            _ => return None,
        })
    }
    /// May members of the tenant call models?
    pub fn can_call(self) -> bool {
        matches!(self, TenantStatus::Active | TenantStatus::Trial)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub status: TenantStatus,
    /// Plan template name (`basic`, `professional`, `enterprise`, or custom).
    pub plan: Option<String>,
    /// Models the tenant may use (empty = all).
    pub allowed_models: Vec<String>,
    pub metadata: serde_json::Value,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything within their tenant (the bootstrap admin: everything).
    Admin,
    /// Call models, manage their own keys, view their usage.
    Developer,
    /// View usage and logs.
    Viewer,
    /// Manage budgets and view usage and costs.
    Billing,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
            Role::Billing => "billing",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admin" => Role::Admin,
            "developer" => Role::Developer,
            "viewer" => Role::Viewer,
            "billing" => Role::Billing,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A virtual API key. Only `hash` (SHA-256 hex of the full key) is stored;
/// `prefix` is the first characters, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub hash: String,
    pub prefix: String,
    pub name: Option<String>,
    pub tenant_id: String,
    /// The owner; `None` for a tenant-level service key.
    pub user_id: Option<String>,
    /// The key's role (a key never exceeds its owner's role).
    pub role: Role,
    /// Models this key may call (empty = whatever the tenant allows).
    pub allowed_models: Vec<String>,
    pub metadata: serde_json::Value,
    pub expires_at: Option<Millis>,
    pub enabled: bool,
    pub revoked_at: Option<Millis>,
    /// Set on the old key when rotated: it keeps working until `expires_at`.
    pub rotated_to: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub last_used_at: Option<Millis>,
    /// The key that created this one (`None`: the master key or the CLI).
    /// Its restrictions, per-key rate limits and budgets bind this key too.
    #[serde(default)]
    pub parent_key_id: Option<String>,
    /// Who disabled the key (`operator`, `admin`, or a key id); re-enabling
    /// needs at least that authority. `None` while enabled.
    #[serde(default)]
    pub disabled_by: Option<String>,
}

/// What a budget or limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Tenant,
    User,
    Key,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::User => "user",
            Scope::Key => "key",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "tenant" => Scope::Tenant,
            "user" => Scope::User,
            "key" => Scope::Key,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetAction {
    /// Refuse further requests (HTTP 429, `budget_exceeded`).
    Block,
    /// Route to `downgrade_alias` instead.
    Downgrade,
}

/// A spending / token budget over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub id: String,
    pub scope: Scope,
    pub scope_id: String,
    /// `monthly` (calendar month, UTC), `daily`, or `{N}s` / `{N}h` / `{N}d` rolling-fixed windows anchored at `created_at`.
    pub period: String,
    /// USD.
    pub max_cost: Option<f64>,
    pub max_tokens: Option<i64>,
    /// Fractions, e.g. [0.5, 0.8, 0.95]; each fires once per period.
    pub alert_thresholds: Vec<f64>,
    pub action: BudgetAction,
    pub downgrade_alias: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Who set it: only the owner (or the operator) may change it.
    #[serde(default)]
    pub owner: PolicyOwner,
}

/// Requests / tokens per minute for a scope, optionally for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub id: String,
    pub scope: Scope,
    pub scope_id: String,
    /// `None` = all models.
    pub model: Option<String>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Who set it: only the owner (or the operator) may change it.
    #[serde(default)]
    pub owner: PolicyOwner,
}

/// Who owns a policy record (budget, rate limit): the operator (master key,
/// CLI, plan templates) or the tenant (its admin / billing keys). The tenant
/// may read what the operator set, but only the operator may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PolicyOwner {
    Operator,
    #[default]
    Tenant,
}

impl PolicyOwner {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyOwner::Operator => "operator",
            PolicyOwner::Tenant => "tenant",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "operator" => Some(PolicyOwner::Operator),
            "tenant" => Some(PolicyOwner::Tenant),
            _ => None,
        }
    }
}

/// One request's accounting row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    pub request_id: String,
    pub ts: Millis,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub key_id: Option<String>,
    pub alias: String,
    pub provider: String,
    pub deployment: String,
    pub upstream_model: String,
    pub ingress: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    /// USD.
    pub cost: f64,
    /// Usage was estimated (the provider reported none).
    pub estimated: bool,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub status: i32,
    pub error_class: Option<String>,
    pub cache_hit: bool,
    pub attempts: i32,
    pub stream: bool,
    /// The model had no price of its own (no deployment `price:`, not in
    /// the bundled table): `cost` is the provider's `default_price`
    /// estimate, or 0. Absent in spool files written before the column.
    #[serde(default)]
    pub unpriced: bool,
}

/// One admin action or security event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub ts: Millis,
    /// Key id or `master`, or `anonymous`.
    pub actor: String,
    pub tenant_id: Option<String>,
    /// e.g. `key.create`, `tenant.suspend`, `auth.failure`.
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    /// `success`, `denied`, `error`.
    pub outcome: String,
    pub details: serde_json::Value,
}

/// Which usage rows a query covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageFilter {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub key_id: Option<String>,
    pub alias: Option<String>,
    pub provider: Option<String>,
}

/// Grouping for usage reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Tenant,
    User,
    Key,
    Model,
    Provider,
}

/// Time-series bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Hour,
    Day,
}

/// Aggregated usage for a group (or a time bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// The group value (tenant id, model…) or `"all"`.
    pub key: String,
    /// Bucket start, for time series.
    pub bucket_start: Option<Millis>,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cost: f64,
    /// Requests whose model had no price of its own (rows flagged
    /// `unpriced`: their cost is a `default_price` estimate, or 0).
    #[serde(default)]
    pub unpriced: i64,
}
