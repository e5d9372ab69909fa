//! Usage rows, reports, budget alerts and audit events.

use super::model::*;
use super::{
    clean, clean_cow, clean_opt, col, col_bool, json_text, parse_json, Arg, OpExt, Sql, Store,
    StoreError, UsagePool,
};
use sqlx::any::AnyRow;

const USAGE_COLS: &str = usage_cols!();
const USAGE_NCOLS: usize = 23;
/// Index of `ttft_ms` in [`USAGE_COLS`].
const TTFT_COL: usize = 16;
/// Rows per INSERT statement (23 parameters each); see [`CHUNK_SIZES`] for
/// the shorter rest of a batch. Not larger: a
/// prepared statement's program grows with its parameters, and every pooled
/// connection that runs it keeps its own copy for the life of the process.
/// Measured (idle gateway after a burst, VmRSS): 500-row statements held
/// ~2.7 MiB more than 100-row ones; the extra round trips per batch cost a
/// few microseconds each, and the writer still keeps up at 44k rows/s.
pub const USAGE_CHUNK: usize = 100;

const AUDIT_COLS: &str = "id, ts, actor, tenant_id, action, target, ip, outcome, details";
const AUDIT_CHUNK: usize = 500;

/// What a usage row counts as an error in reports.
const IS_ERROR: &str = "(status >= 400 OR error_class IS NOT NULL)";

/// The multi-row INSERT for `n` usage rows into SQLite (the file's writer
/// thread and in-memory databases; PostgreSQL has `pg_usage`), idempotent
/// by `request_id` (SQLite checks the key either way, so the clause costs
/// nothing there). `ttft_ms` is bound as -1 for none and stored as NULL
/// (`NULLIF`), so the statement never binds a NULL float and stays
/// cacheable (see the module doc of `store`).
fn usage_insert_sql(n: usize) -> String {
    let mut s = String::with_capacity(120 + n * USAGE_NCOLS * 6);
    s.push_str("INSERT INTO usage_log (");
    s.push_str(USAGE_COLS);
    s.push_str(") VALUES ");
    for i in 0..n {
        s.push_str(if i == 0 { "(" } else { ", (" });
        for j in 0..USAGE_NCOLS {
            if j > 0 {
                s.push_str(", ");
            }
            if j == TTFT_COL {
                s.push_str("NULLIF(?, -1.0)");
            } else {
                s.push('?');
            }
        }
        s.push(')');
    }
    s.push_str(" ON CONFLICT (request_id) DO NOTHING");
    s
}

/// The row counts of the INSERT statements, largest first. A batch is cut
/// into full chunks and a rest split by its binary digits (99 rows: 64 +
/// 32 + 2 + 1), so every statement the writer runs is one of these eight,
/// prepared once per connection and cached. Before, a rest was its own
/// statement, parsed and planned for one use: the usage writer flushes on a
/// timer below ~2,500 requests/s, so that was nearly every flush, and
/// SQLite's parser cost more per row than the insert (callgrind, governed
/// driver kind: ~11k instructions per request in `sqlite3Prepare`).
const CHUNK_SIZES: [usize; 8] = [USAGE_CHUNK, 64, 32, 16, 8, 4, 2, 1];

/// The next chunk of `rows` to insert: the largest statement size that fits.
pub(super) fn next_chunk(rows: usize) -> usize {
    CHUNK_SIZES
        .iter()
        .copied()
        .find(|&n| n <= rows)
        .unwrap_or(rows)
}

/// The INSERT text for `n` rows (one of [`CHUNK_SIZES`]), built once; any
/// other `n` is built for its one use.
pub(super) fn chunk_sql(n: usize) -> std::borrow::Cow<'static, str> {
    static CELLS: [std::sync::OnceLock<String>; CHUNK_SIZES.len()] =
        [const { std::sync::OnceLock::new() }; CHUNK_SIZES.len()];
    match CHUNK_SIZES.iter().position(|&c| c == n) {
        Some(i) => CELLS[i].get_or_init(|| usage_insert_sql(n)).as_str().into(),
        None => usage_insert_sql(n).into(),
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Bind text borrowed from the row (no copy on our side: the row outlives
/// the statement); only text with a NUL is copied.
fn bind_text<'q>(q: AnyQuery<'q>, s: &'q str) -> AnyQuery<'q> {
    match clean_cow(s) {
        std::borrow::Cow::Borrowed(b) => q.bind(b),
        std::borrow::Cow::Owned(o) => q.bind(o),
    }
}

fn bind_opt_text<'q>(q: AnyQuery<'q>, s: &'q Option<String>) -> AnyQuery<'q> {
    match s {
        Some(s) => bind_text(q, s),
        None => q.bind(None::<&str>),
    }
}

/// Bind one row's 23 values, in [`USAGE_COLS`] order.
fn bind_usage_row<'q>(q: AnyQuery<'q>, r: &'q UsageRow) -> AnyQuery<'q> {
    let q = bind_text(q, &r.request_id).bind(r.ts);
    let q = bind_opt_text(q, &r.tenant_id);
    let q = bind_opt_text(q, &r.user_id);
    let q = bind_opt_text(q, &r.key_id);
    let q = bind_text(q, &r.alias);
    let q = bind_text(q, &r.provider);
    let q = bind_text(q, &r.deployment);
    let q = bind_text(q, &r.upstream_model);
    let q = bind_text(q, &r.ingress)
        .bind(r.input_tokens)
        .bind(r.output_tokens)
        .bind(r.cached_input_tokens)
        .bind(finite(r.cost))
        .bind(i16::from(r.estimated))
        .bind(finite(r.latency_ms))
        // Never a NULL float (see `usage_insert_sql`): -1 stands for none.
        .bind(
            r.ttft_ms
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or(-1.0),
        )
        .bind(r.status);
    let q = bind_opt_text(q, &r.error_class);
    q.bind(i16::from(r.cache_hit))
        .bind(r.attempts)
        .bind(i16::from(r.stream))
        .bind(i16::from(r.unpriced))
}

/// NaN / infinities would be stored differently (or refused) by the two
/// databases; they never make sense here.
pub(super) fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

fn usage_from(r: &AnyRow) -> Result<UsageRow, StoreError> {
    Ok(UsageRow {
        request_id: col(r, "request_id")?,
        ts: col(r, "ts")?,
        tenant_id: col(r, "tenant_id")?,
        user_id: col(r, "user_id")?,
        key_id: col(r, "key_id")?,
        alias: col(r, "alias")?,
        provider: col(r, "provider")?,
        deployment: col(r, "deployment")?,
        upstream_model: col(r, "upstream_model")?,
        ingress: col(r, "ingress")?,
        input_tokens: col(r, "input_tokens")?,
        output_tokens: col(r, "output_tokens")?,
        cached_input_tokens: col(r, "cached_input_tokens")?,
        cost: col(r, "cost")?,
        estimated: col_bool(r, "estimated")?,
        latency_ms: col(r, "latency_ms")?,
        ttft_ms: col(r, "ttft_ms")?,
        status: col(r, "status")?,
        error_class: col(r, "error_class")?,
        cache_hit: col_bool(r, "cache_hit")?,
        attempts: col(r, "attempts")?,
        stream: col_bool(r, "stream")?,
        unpriced: col_bool(r, "unpriced")?,
    })
}

fn audit_from(r: &AnyRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: col(r, "id")?,
        ts: col(r, "ts")?,
        actor: col(r, "actor")?,
        tenant_id: col(r, "tenant_id")?,
        action: col(r, "action")?,
        target: col(r, "target")?,
        ip: col(r, "ip")?,
        outcome: col(r, "outcome")?,
        details: parse_json(&col::<String>(r, "details")?, "audit details")?,
    })
}

/// `WHERE …` for a filter (always present: `1 = 1` when empty). `from` is
/// inclusive, `to` exclusive.
fn push_filter(q: &mut Sql, f: &UsageFilter) {
    q.push(" WHERE 1 = 1");
    if let Some(v) = f.from {
        q.push(" AND ts >= ").bind(Arg::I64(v));
    }
    if let Some(v) = f.to {
        q.push(" AND ts < ").bind(Arg::I64(v));
    }
    for (column, v) in [
        ("tenant_id", &f.tenant_id),
        ("user_id", &f.user_id),
        ("key_id", &f.key_id),
        ("alias", &f.alias),
        ("provider", &f.provider),
    ] {
        if let Some(v) = v {
            q.push(" AND ")
                .push(column)
                .push(" = ")
                .bind(Arg::Text(v.clone()));
        }
    }
}

/// The grouping expression; rows lacking the attribute group under `""`.
/// `Model` groups by the alias the client asked for.
fn group_expr(g: Option<GroupBy>) -> &'static str {
    match g {
        None => "'all'",
        Some(GroupBy::Tenant) => "COALESCE(tenant_id, '')",
        Some(GroupBy::User) => "COALESCE(user_id, '')",
        Some(GroupBy::Key) => "COALESCE(key_id, '')",
        Some(GroupBy::Model) => "alias",
        Some(GroupBy::Provider) => "provider",
    }
}

fn bucket_ms(b: Bucket) -> i64 {
    match b {
        Bucket::Hour => 3_600_000,
        Bucket::Day => 86_400_000,
    }
}

fn aggregates() -> String {
    format!(
        "COUNT(*) AS requests, \
         CAST(SUM(CASE WHEN {IS_ERROR} THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
         CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
         CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
         CAST(SUM(cached_input_tokens) AS BIGINT) AS cached_input_tokens, \
         SUM(cost) AS cost, \
         CAST(SUM(CASE WHEN unpriced <> 0 THEN 1 ELSE 0 END) AS BIGINT) AS unpriced"
    )
}

fn totals_from(r: &AnyRow, bucket: bool) -> Result<UsageTotals, StoreError> {
    Ok(UsageTotals {
        key: col(r, "grp")?,
        bucket_start: if bucket {
            Some(col(r, "bucket")?)
        } else {
            None
        },
        requests: col(r, "requests")?,
        errors: col::<Option<i64>>(r, "errors")?.unwrap_or(0),
        input_tokens: col::<Option<i64>>(r, "input_tokens")?.unwrap_or(0),
        output_tokens: col::<Option<i64>>(r, "output_tokens")?.unwrap_or(0),
        cached_input_tokens: col::<Option<i64>>(r, "cached_input_tokens")?.unwrap_or(0),
        cost: col::<Option<f64>>(r, "cost")?.unwrap_or(0.0),
        unpriced: col::<Option<i64>>(r, "unpriced")?.unwrap_or(0),
    })
}

impl Store {
    /// Can the usage table be reached at all? (A probe for the writer: a
    /// failure here means "database down", not "bad rows".)
    pub(crate) async fn usage_table_ok(&self) -> bool {
        let probe = "SELECT request_id FROM usage_log WHERE 1 = 0";
        match &self.usage {
            UsagePool::Any(p) => sqlx::query(probe).fetch_optional(p).await.is_ok(),
            UsagePool::Pg(p) => sqlx::query(probe).fetch_optional(p).await.is_ok(),
        }
    }

    /// Insert usage rows in one transaction: into PostgreSQL one `UNNEST`
    /// statement (`pg_usage`), into an SQLite file multi-row INSERTs on
    /// `sqlite_usage`'s own connection, into in-memory SQLite the same
    /// through sqlx. Idempotent by `request_id`: a row already stored is
    /// left as it is, the batch's other rows are stored. Text NULs are
    /// replaced (PostgreSQL refuses them); non-finite floats are stored as 0
    /// and a negative or non-finite `ttft_ms` as none.
    pub async fn insert_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        match &self.sqlite_usage {
            Some(u) => u.insert(rows.into()).await,
            None => self.insert_usage_sqlx(rows).await,
        }
    }

    /// [`Store::insert_usage`] for rows the caller shares rather than lends
    /// (the SQLite file path hands them to its writer thread without
    /// copying them).
    pub async fn insert_usage_shared(
        &self,
        rows: std::sync::Arc<[UsageRow]>,
    ) -> Result<(), StoreError> {
        match &self.sqlite_usage {
            Some(u) => u.insert(rows).await,
            None => self.insert_usage_sqlx(&rows).await,
        }
    }

    async fn insert_usage_sqlx(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let op = "insert_usage";
        let pool = match &self.usage {
            UsagePool::Pg(p) => return super::pg_usage::insert_idempotent(p, rows).await.op(op),
            UsagePool::Any(p) => p,
        };
        // SQLite in memory: multi-row INSERTs in one transaction, dropped
        // uncommitted (rolled back) on error.
        let mut tx = pool.begin().await.op(op)?;
        let mut rest = rows;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(next_chunk(rest.len()));
            rest = tail;
            let sql = chunk_sql(chunk.len());
            let cached = matches!(sql, std::borrow::Cow::Borrowed(_));
            let mut q = sqlx::query(sql.as_ref());
            for r in chunk {
                q = bind_usage_row(q, r);
            }
            q.persistent(cached).execute(&mut *tx).await.op(op)?;
        }
        tx.commit().await.op(op)
    }

    /// Totals over the filtered rows, per group (sorted by key); with no
    /// group, one row keyed `"all"` (zeros when nothing matches).
    pub async fn usage_totals(
        &self,
        f: &UsageFilter,
        group: Option<GroupBy>,
    ) -> Result<Vec<UsageTotals>, StoreError> {
        let mut q = Sql::new(&format!(
            "SELECT {} AS grp, {} FROM usage_log",
            group_expr(group),
            aggregates()
        ));
        push_filter(&mut q, f);
        if group.is_some() {
            q.push(" GROUP BY grp ORDER BY grp");
        }
        let rs = q.query().fetch_all(&self.pool).await.op("usage_totals")?;
        rs.iter().map(|r| totals_from(r, false)).collect()
    }

    /// Totals per time bucket (UTC hours or days, `bucket_start` set) and
    /// group, sorted by bucket then key. Empty buckets are absent.
    pub async fn usage_series(
        &self,
        f: &UsageFilter,
        bucket: Bucket,
        group: Option<GroupBy>,
    ) -> Result<Vec<UsageTotals>, StoreError> {
        let w = bucket_ms(bucket);
        // `w` comes from the enum, never from input: safe to inline.
        let mut q = Sql::new(&format!(
            "SELECT (ts / {w}) * {w} AS bucket, {} AS grp, {} FROM usage_log",
            group_expr(group),
            aggregates()
        ));
        push_filter(&mut q, f);
        q.push(" GROUP BY bucket, grp ORDER BY bucket, grp");
        let rs = q.query().fetch_all(&self.pool).await.op("usage_series")?;
        rs.iter().map(|r| totals_from(r, true)).collect()
    }

    /// The filtered rows, newest first, at most `limit`.
    pub async fn usage_rows(
        &self,
        f: &UsageFilter,
        limit: i64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let mut q = Sql::new(&format!("SELECT {USAGE_COLS} FROM usage_log"));
        push_filter(&mut q, f);
        q.push(" ORDER BY ts DESC, request_id DESC LIMIT ")
            .bind(Arg::I64(limit.max(0)));
        let rs = q.query().fetch_all(&self.pool).await.op("usage_rows")?;
        rs.iter().map(usage_from).collect()
    }

    /// `(cost, input + output tokens)` of every row (successful or failed)
    /// of the scope with `ts >= since`: one range scan of the
    /// `(scope column, ts)` index.
    pub async fn spend_since(
        &self,
        scope: Scope,
        scope_id: &str,
        since: Millis,
    ) -> Result<(f64, i64), StoreError> {
        let column = match scope {
            Scope::Tenant => "tenant_id",
            Scope::User => "user_id",
            Scope::Key => "key_id",
        };
        let sql = format!(
            "SELECT SUM(cost) AS cost, CAST(SUM(input_tokens + output_tokens) AS BIGINT) AS tokens \
             FROM usage_log WHERE {column} = $1 AND ts >= $2"
        );
        let row = sqlx::query(&sql)
            .bind(scope_id)
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .op("spend_since")?;
        Ok((
            col::<Option<f64>>(&row, "cost")?.unwrap_or(0.0),
            col::<Option<i64>>(&row, "tokens")?.unwrap_or(0),
        ))
    }

    /// Record that `budget_id` crossed `threshold` in the period starting
    /// `period_start`. `true` the first time, `false` ever after.
    pub async fn record_alert(
        &self,
        budget_id: &str,
        period_start: Millis,
        threshold: f64,
        ts: Millis,
    ) -> Result<bool, StoreError> {
        if !threshold.is_finite() {
            return Err(StoreError::Invalid(format!("alert threshold {threshold}")));
        }
        let ppm = (threshold * 1e6).round() as i64;
        let res = sqlx::query(
            "INSERT INTO budget_alerts (budget_id, period_start, threshold_ppm, threshold, ts) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (budget_id, period_start, threshold_ppm) \
             DO NOTHING",
        )
        .bind(budget_id)
        .bind(period_start)
        .bind(ppm)
        .bind(threshold)
        .bind(ts)
        .execute(&self.pool)
        .await
        .op("record_alert")?;
        Ok(res.rows_affected() == 1)
    }

    /// Insert audit events (idempotent by id), one transaction.
    pub async fn insert_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let op = "insert_audit";
        let mut tx = self.pool.begin().await.op(op)?;
        for chunk in events.chunks(AUDIT_CHUNK) {
            let mut q = Sql::bulk(
                self.kind,
                &format!("INSERT INTO audit_log ({AUDIT_COLS}) VALUES "),
            );
            for (i, e) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" })
                    .bind(Arg::Text(clean(&e.id)))
                    .push(", ")
                    .bind(Arg::I64(e.ts))
                    .push(", ")
                    .bind(Arg::Text(clean(&e.actor)))
                    .push(", ")
                    .bind(Arg::OptText(clean_opt(&e.tenant_id)))
                    .push(", ")
                    .bind(Arg::Text(clean(&e.action)))
                    .push(", ")
                    .bind(Arg::OptText(clean_opt(&e.target)))
                    .push(", ")
                    .bind(Arg::OptText(clean_opt(&e.ip)))
                    .push(", ")
                    .bind(Arg::Text(clean(&e.outcome)))
                    .push(", ")
                    .bind(Arg::Text(json_text(&e.details)?))
                    .push(")");
            }
            q.push(" ON CONFLICT (id) DO NOTHING");
            q.query().persistent(false).execute(&mut *tx).await.op(op)?;
        }
        tx.commit().await.op(op)?;
        Ok(())
    }

    /// Audit events, newest first, optionally for one tenant and from
    /// `since` (inclusive), at most `limit`.
    pub async fn list_audit(
        &self,
        tenant_id: Option<&str>,
        since: Option<Millis>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut q = Sql::new(&format!("SELECT {AUDIT_COLS} FROM audit_log WHERE 1 = 1"));
        if let Some(t) = tenant_id {
            q.push(" AND tenant_id = ").bind(Arg::Text(t.into()));
        }
        if let Some(s) = since {
            q.push(" AND ts >= ").bind(Arg::I64(s));
        }
        q.push(" ORDER BY ts DESC, id DESC LIMIT ")
            .bind(Arg::I64(limit.max(0)));
        let rs = q.query().fetch_all(&self.pool).await.op("list_audit")?;
        rs.iter().map(audit_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every batch length is cut into cached statement sizes only, covering
    /// every row once, with at most one full-size statement per 100 rows
    /// and seven more for the rest.
    #[test]
    fn batches_are_cut_into_cached_statement_sizes() {
        for len in 0..=1_000usize {
            let (mut rest, mut statements) = (len, 0);
            while rest > 0 {
                let n = next_chunk(rest);
                assert!(CHUNK_SIZES.contains(&n), "{len}: chunk {n}");
                assert!(n <= rest);
                rest -= n;
                statements += 1;
            }
            assert!(statements <= len / USAGE_CHUNK + 7, "{len}: {statements}");
        }
        assert!(matches!(chunk_sql(64), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(chunk_sql(3), std::borrow::Cow::Owned(_)));
        let two = chunk_sql(2);
        assert_eq!(two.matches('?').count(), 2 * USAGE_NCOLS, "{two}");
        assert!(
            two.ends_with(") ON CONFLICT (request_id) DO NOTHING"),
            "{two}"
        );
    }
}
