-- Issue 18 §1: keys can never exceed the authority that created them, and
-- policies have an owner. Runs unchanged on SQLite and PostgreSQL.

-- The key that created this key (NULL: created by the master key, the CLI,
-- or before this migration). The creator's restrictions, per-key rate
-- limits and budgets bind every descendant.
ALTER TABLE api_keys ADD COLUMN parent_key_id TEXT;
-- Who set enabled = 0: 'operator' (master key / CLI), 'admin' (a tenant
-- admin), or the id of the key that did. Re-enabling needs at least that
-- authority.
ALTER TABLE api_keys ADD COLUMN disabled_by TEXT;
CREATE INDEX IF NOT EXISTS api_keys_parent ON api_keys (parent_key_id);

-- Who owns a budget / rate limit: 'operator' (the master key, the CLI, plan
-- templates) or 'tenant' (a tenant's admin or billing key). A tenant may
-- read what the operator set but not change or delete it. Rows from before
-- this migration: plan rows are the operator's, the rest the tenant's.
ALTER TABLE budgets ADD COLUMN owner TEXT NOT NULL DEFAULT 'tenant';
ALTER TABLE rate_limits ADD COLUMN owner TEXT NOT NULL DEFAULT 'tenant';
UPDATE budgets SET owner = 'operator' WHERE id LIKE 'bud_plan_%';
UPDATE rate_limits SET owner = 'operator' WHERE id LIKE 'rl_plan_%';
