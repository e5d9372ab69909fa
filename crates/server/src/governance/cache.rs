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
    /// For keys created by a key or rotated: the other keys that bind them.
    /// Keys with neither (most) have no entry.
    pub lineage: FastMap<String, Arc<Lineage>>,
}

/// The other keys whose restrictions bind a key: the key it was rotated to
/// and the key that created it, and theirs (breadth first, at most
/// [`MAX_LINEAGE`]). Their per-key rate limits and budgets apply to the
/// key's requests too; their model lists narrow its own; a revoked,
/// disabled or expired one (not itself rotated) stops it.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    pub ids: Arc<[String]>,
    /// The intersection of their non-empty model lists (`None`: none
    /// restricts).
    pub models: Option<Vec<String>>,
}

/// Longest lineage followed (a guard against cycles and abuse).
pub const MAX_LINEAGE: usize = 64;

/// A rate limit and the key of its limiter state (`rl:` + the rule id, so
/// a rule moved to a rotated key keeps its state), made once per snapshot
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
            let key = format!("rl:{}", r.id);
            self.limits_by_scope.slot(r.scope, &r.scope_id).push(Limit {
                rule: r.clone(),
                key: Arc::from(key),
            });
        }
        self.lineage.clear();
        for k in self.keys.values() {
            if k.parent_key_id.is_none() && k.rotated_to.is_none() {
                continue;
            }
            let mut ids: Vec<String> = Vec::new();
            let mut models: Option<Vec<String>> = None;
            let mut queue: std::collections::VecDeque<&str> = std::collections::VecDeque::new();
            queue.extend(k.rotated_to.as_deref());
            queue.extend(k.parent_key_id.as_deref());
            while let Some(id) = queue.pop_front() {
                if ids.len() >= MAX_LINEAGE || id == k.id || ids.iter().any(|x| x == id) {
                    continue;
                }
                ids.push(id.to_owned());
                let Some(a) = self.keys.get(id) else { continue };
                if !a.allowed_models.is_empty() && !a.allowed_models.iter().any(|m| m == "*") {
                    models = Some(match models.take() {
                        None => a.allowed_models.clone(),
                        Some(m) => m
                            .into_iter()
                            .filter(|x| a.allowed_models.contains(x))
                            .collect(),
                    });
                }
                queue.extend(a.rotated_to.as_deref());
                queue.extend(a.parent_key_id.as_deref());
            }
            self.lineage.insert(
                k.id.clone(),
                Arc::new(Lineage {
                    ids: Arc::from(ids),
                    models,
                }),
            );
        }
    }

    /// Every key bound by the rules of key `id` (itself and the keys whose
    /// lineage holds it): the usage that counts against its key budgets.
    pub fn bound_keys(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_owned()];
        for (k, l) in &self.lineage {
            if l.ids.iter().any(|x| x == id) {
                out.push(k.clone());
            }
        }
        out
    }
}
