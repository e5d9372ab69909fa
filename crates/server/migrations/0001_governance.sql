-- Governance schema. Runs unchanged on SQLite and PostgreSQL (see
-- crates/server/src/store/mod.rs for the portability rules: no BOOLEAN,
-- flags are SMALLINT 0/1; times are BIGINT Unix milliseconds; JSON is TEXT).

-- The governance clock: one row, advanced first thing by every governance
-- write so updated_at values are unique and in commit order.
CREATE TABLE IF NOT EXISTS gov_clock (
    id BIGINT PRIMARY KEY,
    last BIGINT NOT NULL
);
INSERT INTO gov_clock (id, last) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    plan TEXT,
    allowed_models TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tenants_updated_at ON tenants (updated_at);

CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    email TEXT NOT NULL,
    name TEXT,
    role TEXT NOT NULL,
    disabled SMALLINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, email)
);
CREATE INDEX IF NOT EXISTS users_updated_at ON users (updated_at);

CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT REFERENCES users (id),
    role TEXT NOT NULL,
    allowed_models TEXT NOT NULL,
    metadata TEXT NOT NULL,
    expires_at BIGINT,
    enabled SMALLINT NOT NULL,
    revoked_at BIGINT,
    rotated_to TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX IF NOT EXISTS api_keys_updated_at ON api_keys (updated_at);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id);

CREATE TABLE IF NOT EXISTS budgets (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    period TEXT NOT NULL,
    max_cost DOUBLE PRECISION,
    max_tokens BIGINT,
    alert_thresholds TEXT NOT NULL,
    action TEXT NOT NULL,
    downgrade_alias TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS budgets_scope ON budgets (scope, scope_id);
CREATE INDEX IF NOT EXISTS budgets_updated_at ON budgets (updated_at);

CREATE TABLE IF NOT EXISTS rate_limits (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    model TEXT,
    rpm BIGINT,
    tpm BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limits_scope ON rate_limits (scope, scope_id);
CREATE INDEX IF NOT EXISTS rate_limits_updated_at ON rate_limits (updated_at);

-- Deleted budgets / rate limits, so caches learn about deletions.
-- kind: 'budget' | 'rate_limit'; deleted_at is a governance clock value.
CREATE TABLE IF NOT EXISTS tombstones (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    deleted_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS tombstones_deleted_at ON tombstones (deleted_at);

-- One row per request. Append-only; request_id makes inserts idempotent.
CREATE TABLE IF NOT EXISTS usage_log (
    request_id TEXT PRIMARY KEY,
    ts BIGINT NOT NULL,
    tenant_id TEXT,
    user_id TEXT,
    key_id TEXT,
    alias TEXT NOT NULL,
    provider TEXT NOT NULL,
    deployment TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    ingress TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    estimated SMALLINT NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    ttft_ms DOUBLE PRECISION,
    status INTEGER NOT NULL,
    error_class TEXT,
    cache_hit SMALLINT NOT NULL,
    attempts INTEGER NOT NULL,
    stream SMALLINT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_log_ts ON usage_log (ts);
CREATE INDEX IF NOT EXISTS usage_log_tenant_ts ON usage_log (tenant_id, ts);
CREATE INDEX IF NOT EXISTS usage_log_user_ts ON usage_log (user_id, ts);
CREATE INDEX IF NOT EXISTS usage_log_key_ts ON usage_log (key_id, ts);

-- Budget alerts fired: each (budget, period, threshold) once.
-- threshold_ppm = round(threshold * 1e6), an exact key for the fraction.
CREATE TABLE IF NOT EXISTS budget_alerts (
    budget_id TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    threshold_ppm BIGINT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (budget_id, period_start, threshold_ppm)
);

CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT PRIMARY KEY,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    tenant_id TEXT,
    action TEXT NOT NULL,
    target TEXT,
    ip TEXT,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts);
CREATE INDEX IF NOT EXISTS audit_log_tenant_ts ON audit_log (tenant_id, ts);
