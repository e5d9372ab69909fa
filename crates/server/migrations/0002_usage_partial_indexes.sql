-- The per-scope usage indexes hold only rows that have the scope: a request
-- made with a static gateway key has no tenant, user or key, and most keys
-- have no user. Each NULL entry cost the usage writer an index insert (and
-- the file its pages) and no query ever reads it: every lookup by scope is
-- `<column> = ?`, which implies `<column> IS NOT NULL`, so SQLite's and
-- PostgreSQL's planners both use these partial indexes for it.
DROP INDEX IF EXISTS usage_log_tenant_ts;
DROP INDEX IF EXISTS usage_log_user_ts;
DROP INDEX IF EXISTS usage_log_key_ts;
CREATE INDEX IF NOT EXISTS usage_log_tenant_ts ON usage_log (tenant_id, ts) WHERE tenant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS usage_log_user_ts ON usage_log (user_id, ts) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS usage_log_key_ts ON usage_log (key_id, ts) WHERE key_id IS NOT NULL;
