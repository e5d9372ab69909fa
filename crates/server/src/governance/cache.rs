//! The in-memory snapshot of governance data that the hot path reads:
//! keys by hash, tenants, users, budgets and rate limits by scope. Built from
//! the store's change feed and refreshed in the background; request handling
//! never waits on the database.

use super::keys;
use crate::store::{ApiKey, Budget, Changes, RateLimit, Scope, Tenant, User};
use crate::FastMap;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub keys_by_hash: FastMap<[u8; 32], Arc<ApiKey>>,
    pub keys: FastMap<String, Arc<ApiKey>>,
    pub tenants: FastMap<String, Arc<Tenant>>,
    pub users: FastMap<String, Arc<User>>,
    pub budgets: FastMap<String, Arc<Budget>>,
    pub rate_limits: FastMap<String, Arc<RateLimit>>,
    /// Budget ids per scope.
    pub budgets_by_scope: ByScope<Vec<String>>,
    /// Rate limits per scope, each with its limiter's key.
    pub limits_by_scope: ByScope<Vec<Limit>>,
}

/// A rate limit and the key of its limiter state
/// (`scope:scope_id:model`, `*` for all models), made once per snapshot
/// rather than per request.
#[derive(Debug, Clone)]
pub struct Limit {
    pub rule: Arc<RateLimit>,
    pub key: Arc<str>,
}

/// Values per (scope, scope id), looked up with a borrowed id.
#[derive(Debug, Clone)]
pub struct ByScope<V>([FastMap<String, V>; 3]);

impl<V> Default for ByScope<V> {
    fn default() -> Self {
        ByScope(Default::default())
    }
}

impl<V: Default> ByScope<V> {
    pub fn get(&self, scope: Scope, id: &str) -> Option<&V> {
        self.0[scope as usize].get(id)
    }

    fn slot(&mut self, scope: Scope, id: &str) -> &mut V {
        self.0[scope as usize].entry(id.to_owned()).or_default()
    }

    fn clear(&mut self) {
        self.0.iter_mut().for_each(HashMap::clear);
    }
}

impl Snapshot {
    /// Apply a change batch. Returns the budgets that were added or changed
    /// and the ids of budgets removed (the ledger follows them).
    pub fn apply(&mut self, c: Changes) -> (Vec<Arc<Budget>>, Vec<String>) {
        for t in c.tenants {
            self.tenants.insert(t.id.clone(), Arc::new(t));
        }
        for u in c.users {
            self.users.insert(u.id.clone(), Arc::new(u));
        }
        for k in c.keys {
            if let Some(old) = self.keys.get(&k.id) {
                if let Some(h) = keys::parse_hex(&old.hash) {
                    self.keys_by_hash.remove(&h);
                }
            }
            let k = Arc::new(k);
            if let Some(h) = keys::parse_hex(&k.hash) {
                self.keys_by_hash.insert(h, k.clone());
            }
            self.keys.insert(k.id.clone(), k);
        }
        let mut changed = Vec::new();
        for b in c.budgets {
            let b = Arc::new(b);
            self.budgets.insert(b.id.clone(), b.clone());
            changed.push(b);
        }
        for id in &c.deleted_budgets {
            self.budgets.remove(id);
        }
        for r in c.rate_limits {
            self.rate_limits.insert(r.id.clone(), Arc::new(r));
        }
        for id in &c.deleted_rate_limits {
            self.rate_limits.remove(id);
        }
        self.reindex();
        (changed, c.deleted_budgets)
    }

    fn reindex(&mut self) {
        self.budgets_by_scope.clear();
        for b in self.budgets.values() {
            self.budgets_by_scope
                .slot(b.scope, &b.scope_id)
                .push(b.id.clone());
        }
        self.limits_by_scope.clear();
        for r in self.rate_limits.values() {
            let key = format!(
                "{}:{}:{}",
                r.scope.as_str(),
                r.scope_id,
                r.model.as_deref().unwrap_or("*")
            );
            self.limits_by_scope.slot(r.scope, &r.scope_id).push(Limit {
                rule: r.clone(),
                key: Arc::from(key),
            });
        }
    }
}
