-- The per-scope usage indexes hold only rows that have the scope: a request
-- made with a static gateway key has no tenant, user or key, and most keys
-- have no user. Each NULL entry cost the usage writer an index insert (and
-- the file its pages) and no query ever reads it: every lookup by scope is
-- `<column> = ?`, which implies `<column> IS NOT NULL`, so SQLite's and
-- PostgreSQL's planners both use these partial indexes for it.
--
-- New names, so a large PostgreSQL table can be prepared without blocking
-- its writers: build the three indexes beforehand with
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS usage_log_by_tenant
--     ON usage_log (tenant_id, ts) WHERE tenant_id IS NOT NULL;
-- (and the same for user and key); this migration then only drops the old
-- ones. Run as is, each CREATE INDEX holds off usage inserts while it
-- builds: running gateways' usage writers wait, and a wait of more than a
-- few seconds at full load fills their bounded usage channels (records
-- past that are dropped and counted in
-- switchyard_usage_records_dropped_total).
CREATE INDEX IF NOT EXISTS usage_log_by_tenant ON usage_log (tenant_id, ts) WHERE tenant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS usage_log_by_user ON usage_log (user_id, ts) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS usage_log_by_key ON usage_log (key_id, ts) WHERE key_id IS NOT NULL;
DROP INDEX IF EXISTS usage_log_tenant_ts;
DROP INDEX IF EXISTS usage_log_user_ts;
DROP INDEX IF EXISTS usage_log_key_ts;
