//! The permission model as one table: who (the master key or a tenant role)
//! may do what to which resource, depending on who owns the record.
//!
//! [`PERMISSIONS`] is the table the admin operations enforce ([`reach`]):
//! the route gate ([`super::ops::Need::roles`]), the role order used when a
//! key creates a key ([`role_at_most`]: a key may only create keys whose
//! role reads and does nothing it cannot), the owner checks on budgets, rate
//! limits and tenant policy, and the widening rules for keys. The README's
//! table is rendered from it ([`markdown`]) and a test compares the two.

use crate::store::Role;

/// How far a permission reaches. Ordered: a later variant allows at least
/// what an earlier one does (used to compare roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// Not allowed.
    No,
    /// The caller's own records only (keys: the calling key itself and the
    /// keys it created, directly or not — not every key of its user; usage:
    /// its own).
    Own,
    /// Only keys the caller (or a key it created) created, and never
    /// wider than the caller itself.
    Created,
    /// Only narrowing what is there (a subset of the model list).
    Narrow,
    /// Anything within the caller's tenant.
    Tenant,
    /// Everything, in every tenant.
    All,
}

impl Reach {
    pub fn cell(self) -> &'static str {
        match self {
            Reach::No => "—",
            Reach::Own => "own",
            Reach::Created => "created",
            Reach::Narrow => "narrow",
            Reach::Tenant => "tenant",
            Reach::All => "all",
        }
    }
}

/// What a permission is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Res {
    /// A tenant record (create; read; name and metadata).
    Tenant,
    /// A tenant's status and plan.
    TenantPlan,
    /// A tenant's model allow-list.
    TenantModels,
    User,
    /// A key: create, read, and changes that only narrow it (name,
    /// metadata, disable, fewer models, earlier expiry, revoke, rotate).
    Key,
    /// Changes that widen a key: re-enable, more models, later or no expiry.
    KeyWiden,
    Budget,
    RateLimit,
    Usage,
    Audit,
    /// Calling models (`/v1/…`).
    Models,
}

impl Res {
    pub fn label(self) -> &'static str {
        match self {
            Res::Tenant => "tenant",
            Res::TenantPlan => "tenant status, plan",
            Res::TenantModels => "tenant allowed_models",
            Res::User => "user",
            Res::Key => "key",
            Res::KeyWiden => "key: widen (enable, models, expiry)",
            Res::Budget => "budget",
            Res::RateLimit => "rate limit",
            Res::Usage => "usage",
            Res::Audit => "audit log",
            Res::Models => "models",
        }
    }
}

/// Whose record it is, as far as the permission depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Does not depend on the owner.
    Any,
    /// Set by the operator: the master key, the CLI or a plan template.
    Operator,
    /// Set by the tenant's admin or billing key.
    Tenant,
    /// The calling key itself or a key it descends from (its creators), or
    /// a budget / rate limit on one of those keys.
    Lineage,
    /// Any other key.
    Others,
    /// A key the calling key was created by (directly or not) or rotated
    /// to: never within a key's reach, whatever its role.
    Creators,
}

impl Owner {
    pub fn label(self) -> &'static str {
        match self {
            Owner::Any => "any",
            Owner::Operator => "operator",
            Owner::Tenant => "tenant",
            Owner::Lineage => "caller's own key or its creators",
            Owner::Others => "other keys",
            Owner::Creators => "keys the caller was created by",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Create,
    Read,
    Update,
    Delete,
    Call,
    /// Revoke a key.
    Revoke,
    /// Rotate a key: a new plaintext with the key's rights.
    Rotate,
}

impl Act {
    pub fn label(self) -> &'static str {
        match self {
            Act::Create => "create",
            Act::Read => "read",
            Act::Update => "update",
            Act::Delete => "delete",
            Act::Call => "call",
            Act::Revoke => "revoke",
            Act::Rotate => "rotate",
        }
    }
}

/// Who is acting: the columns of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Master,
    Role(Role),
}

/// The column order: master, admin, billing, developer, viewer.
pub const COLUMNS: [Who; 5] = [
    Who::Master,
    Who::Role(Role::Admin),
    Who::Role(Role::Billing),
    Who::Role(Role::Developer),
    Who::Role(Role::Viewer),
];

fn col(w: Who) -> usize {
    match w {
        Who::Master => 0,
        Who::Role(Role::Admin) => 1,
        Who::Role(Role::Billing) => 2,
        Who::Role(Role::Developer) => 3,
        Who::Role(Role::Viewer) => 4,
    }
}

/// One row: resource, owner, action, and the reach of each column.
#[derive(Debug, Clone, Copy)]
pub struct Perm {
    pub res: Res,
    pub owner: Owner,
    pub act: Act,
    /// master, admin, billing, developer, viewer.
    pub reach: [Reach; 5],
}

use Reach::{All, Created, Narrow, No, Own, Tenant as Ten};

const fn p(res: Res, owner: Owner, act: Act, reach: [Reach; 5]) -> Perm {
    Perm {
        res,
        owner,
        act,
        reach,
    }
}

/// The permission model. Columns: master, admin, billing, developer, viewer.
pub static PERMISSIONS: &[Perm] = &[
    p(Res::Tenant, Owner::Any, Act::Create, [All, No, No, No, No]),
    p(Res::Tenant, Owner::Any, Act::Read, [All, Ten, No, No, No]),
    p(
        Res::Tenant,
        Owner::Tenant,
        Act::Update,
        [All, Ten, No, No, No],
    ),
    p(
        Res::TenantPlan,
        Owner::Operator,
        Act::Update,
        [All, No, No, No, No],
    ),
    p(
        Res::TenantModels,
        Owner::Operator,
        Act::Update,
        [All, Narrow, No, No, No],
    ),
    p(Res::User, Owner::Any, Act::Create, [All, Ten, No, No, No]),
    p(Res::User, Owner::Any, Act::Read, [All, Ten, No, No, No]),
    p(Res::User, Owner::Any, Act::Update, [All, Ten, No, No, No]),
    p(Res::Key, Owner::Any, Act::Create, [All, Ten, No, Own, No]),
    p(Res::Key, Owner::Any, Act::Read, [All, Ten, No, Own, No]),
    p(Res::Key, Owner::Any, Act::Update, [All, Ten, No, Own, No]),
    p(Res::Key, Owner::Any, Act::Revoke, [All, Ten, No, Own, No]),
    p(Res::Key, Owner::Any, Act::Rotate, [All, Ten, No, Own, No]),
    p(Res::Key, Owner::Creators, Act::Read, [All, No, No, No, No]),
    p(
        Res::Key,
        Owner::Creators,
        Act::Update,
        [All, No, No, No, No],
    ),
    p(
        Res::Key,
        Owner::Creators,
        Act::Revoke,
        [All, No, No, No, No],
    ),
    p(
        Res::Key,
        Owner::Creators,
        Act::Rotate,
        [All, No, No, No, No],
    ),
    p(
        Res::KeyWiden,
        Owner::Others,
        Act::Update,
        [All, Ten, No, Created, No],
    ),
    p(
        Res::KeyWiden,
        Owner::Lineage,
        Act::Update,
        [All, No, No, No, No],
    ),
    p(Res::Budget, Owner::Any, Act::Read, [All, Ten, Ten, No, No]),
    p(
        Res::Budget,
        Owner::Tenant,
        Act::Create,
        [All, Ten, Ten, No, No],
    ),
    p(
        Res::Budget,
        Owner::Tenant,
        Act::Update,
        [All, Ten, Ten, No, No],
    ),
    p(
        Res::Budget,
        Owner::Tenant,
        Act::Delete,
        [All, Ten, Ten, No, No],
    ),
    p(
        Res::Budget,
        Owner::Operator,
        Act::Create,
        [All, No, No, No, No],
    ),
    p(
        Res::Budget,
        Owner::Operator,
        Act::Update,
        [All, No, No, No, No],
    ),
    p(
        Res::Budget,
        Owner::Operator,
        Act::Delete,
        [All, No, No, No, No],
    ),
    p(
        Res::Budget,
        Owner::Lineage,
        Act::Update,
        [All, No, No, No, No],
    ),
    p(
        Res::Budget,
        Owner::Lineage,
        Act::Delete,
        [All, No, No, No, No],
    ),
    p(
        Res::RateLimit,
        Owner::Any,
        Act::Read,
        [All, Ten, No, No, No],
    ),
    p(
        Res::RateLimit,
        Owner::Tenant,
        Act::Create,
        [All, Ten, No, No, No],
    ),
    p(
        Res::RateLimit,
        Owner::Tenant,
        Act::Delete,
        [All, Ten, No, No, No],
    ),
    p(
        Res::RateLimit,
        Owner::Operator,
        Act::Create,
        [All, No, No, No, No],
    ),
    p(
        Res::RateLimit,
        Owner::Operator,
        Act::Delete,
        [All, No, No, No, No],
    ),
    p(
        Res::RateLimit,
        Owner::Lineage,
        Act::Delete,
        [All, No, No, No, No],
    ),
    p(Res::Usage, Owner::Any, Act::Read, [All, Ten, Ten, Own, Ten]),
    p(Res::Audit, Owner::Any, Act::Read, [All, Ten, No, No, Ten]),
    p(Res::Models, Owner::Any, Act::Call, [All, Ten, No, Ten, No]),
];

/// How far `who` may do `act` on `res` owned by `owner`. A row for the exact
/// owner wins over one for [`Owner::Any`]; no row means [`Reach::No`].
pub fn reach(who: Who, res: Res, owner: Owner, act: Act) -> Reach {
    let c = col(who);
    let mut any = None;
    for r in PERMISSIONS {
        if r.res == res && r.act == act {
            if r.owner == owner {
                return r.reach[c];
            }
            if r.owner == Owner::Any {
                any = Some(r.reach[c]);
            }
        }
    }
    any.unwrap_or(No)
}

/// The roles with any access at all to `res` (the route gate; the master
/// key always passes).
pub fn roles_for(res: Res) -> Vec<Role> {
    COLUMNS[1..]
        .iter()
        .filter_map(|w| match w {
            Who::Role(r) => Some(*r),
            Who::Master => None,
        })
        .filter(|r| {
            PERMISSIONS
                .iter()
                .any(|p| p.res == res && p.reach[col(Who::Role(*r))] != No)
        })
        .collect()
}

/// Does `r` allow nothing that `cap` does not, in every row of the table?
/// (A key may only create keys with such a role; a key's role is never
/// above its owner's.)
pub fn role_at_most(r: Role, cap: Role) -> bool {
    let (a, b) = (col(Who::Role(r)), col(Who::Role(cap)));
    PERMISSIONS.iter().all(|p| p.reach[a] <= p.reach[b])
}

/// The table as Markdown (the README's permission table).
pub fn markdown() -> String {
    let mut s = String::from(
        "| Resource | Owner | Action | master | admin | billing | developer | viewer |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for p in PERMISSIONS {
        s.push_str(&format!(
            "| {} | {} | {} |",
            p.res.label(),
            p.owner.label(),
            p.act.label()
        ));
        for r in p.reach {
            s.push_str(&format!(" {} |", r.cell()));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_is_the_enforced_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let begin = "<!-- permissions:begin (generated by admin::perm::markdown; test: the_readme_table_is_the_enforced_table) -->\n";
        let end = "<!-- permissions:end -->";
        let from = readme
            .find(begin)
            .expect("README: permission table start marker")
            + begin.len();
        let to = readme[from..].find(end).expect("README: end marker") + from;
        let want = markdown();
        assert!(
            readme[from..to] == want,
            "README's permission table differs from admin::perm::PERMISSIONS; replace it with:\n{want}"
        );
    }

    #[test]
    fn role_order_comes_from_the_table() {
        use Role::*;
        for r in [Admin, Billing, Developer, Viewer] {
            assert!(role_at_most(r, r));
            assert!(role_at_most(r, Admin));
        }
        // A developer cannot mint a viewer (it would read the tenant's
        // audit log and everyone's usage) nor a billing key.
        assert!(!role_at_most(Viewer, Developer));
        assert!(!role_at_most(Billing, Developer));
        assert!(!role_at_most(Developer, Viewer));
        assert!(!role_at_most(Viewer, Billing));
        assert!(!role_at_most(Admin, Developer));
    }

    #[test]
    fn gate_roles_come_from_the_table() {
        use Role::*;
        assert_eq!(roles_for(Res::Key), [Admin, Developer]);
        assert_eq!(roles_for(Res::Budget), [Admin, Billing]);
        assert_eq!(roles_for(Res::RateLimit), [Admin]);
        assert_eq!(roles_for(Res::Usage), [Admin, Billing, Developer, Viewer]);
        assert_eq!(roles_for(Res::Audit), [Admin, Viewer]);
        assert_eq!(
            reach(Who::Role(Admin), Res::Budget, Owner::Operator, Act::Update),
            No
        );
        assert_eq!(
            reach(Who::Role(Admin), Res::Budget, Owner::Operator, Act::Read),
            Ten
        );
    }
}
