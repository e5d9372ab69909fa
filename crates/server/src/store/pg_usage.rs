//! Usage inserts into PostgreSQL: a whole batch in one statement,
//! `INSERT … SELECT … FROM UNNEST($1, …, $23)`, one array per column.
//!
//! sqlx's Any driver (the rest of the store) binds no arrays, so this path
//! has its own native pool of one connection (see `Store::usage`). Against
//! the multi-row `VALUES` statements the SQLite side uses, PostgreSQL no
//! longer sets up an expression per bound value on every execution (2,200
//! of them per 100-row statement), a batch is one round trip in its own
//! implicit transaction instead of `BEGIN`, one statement per chunk and
//! `COMMIT`, and the statement is the same whatever the batch's size.

use super::clean_cow;
use super::model::UsageRow;
use super::usage::finite;
use std::borrow::Cow;

/// What the INSERT does with a row whose `request_id` is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDuplicate {
    /// Fail the statement (a unique violation).
    Fail,
    /// `ON CONFLICT (request_id) DO NOTHING`: the first write wins.
    Skip,
}

/// `usage_cols!()` in table order; the casts name each array's type so the
/// one prepared statement fits every batch.
macro_rules! unnest_insert {
    () => {
        concat!(
            "INSERT INTO usage_log (",
            usage_cols!(),
            ") SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
             $11::int8[], $12::int8[], $13::int8[], $14::float8[], $15::int2[], $16::float8[], \
             $17::float8[], $18::int4[], $19::text[], $20::int2[], $21::int4[], $22::int2[], \
             $23::int2[])"
        )
    };
}
const INSERT: &str = unnest_insert!();
const INSERT_SKIP: &str = concat!(unnest_insert!(), " ON CONFLICT (request_id) DO NOTHING");

fn sql(dup: OnDuplicate) -> &'static str {
    match dup {
        OnDuplicate::Fail => INSERT,
        OnDuplicate::Skip => INSERT_SKIP,
    }
}

/// One text column of `rows` (NULs replaced, as everywhere in the store),
/// bound as it is: sqlx encodes `Cow<str>` arrays directly.
fn text<'a>(rows: &'a [UsageRow], f: impl Fn(&'a UsageRow) -> &'a str) -> Vec<Cow<'a, str>> {
    rows.iter().map(|r| clean_cow(f(r))).collect()
}

fn opt_text<'a>(
    rows: &'a [UsageRow],
    f: impl Fn(&'a UsageRow) -> &'a Option<String>,
) -> Vec<Option<Cow<'a, str>>> {
    rows.iter()
        .map(|r| f(r).as_deref().map(clean_cow))
        .collect()
}

fn col<T>(rows: &[UsageRow], f: impl Fn(&UsageRow) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// Insert `rows`, idempotent by `request_id`, in one statement (atomic:
/// all or none).
///
/// First without `ON CONFLICT`: the clause makes PostgreSQL insert every row
/// speculatively (probe the key, insert, then confirm), which measured
/// 35-70% more server CPU per row than a plain insert. A stored
/// `request_id` only comes back when a batch is written again (a spool
/// replayed after a commit whose answer was lost); then the batch, of which
/// nothing was stored, is written again with the clause.
pub(super) async fn insert_idempotent(pool: &sqlx::PgPool, rows: &[UsageRow]) -> sqlx::Result<()> {
    match insert(pool, rows, OnDuplicate::Fail).await {
        Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            insert(pool, rows, OnDuplicate::Skip).await
        }
        r => r,
    }
}

async fn insert(pool: &sqlx::PgPool, rows: &[UsageRow], dup: OnDuplicate) -> sqlx::Result<()> {
    sqlx::query(sql(dup))
        .bind(text(rows, |r| &r.request_id))
        .bind(col(rows, |r| r.ts))
        .bind(opt_text(rows, |r| &r.tenant_id))
        .bind(opt_text(rows, |r| &r.user_id))
        .bind(opt_text(rows, |r| &r.key_id))
        .bind(text(rows, |r| &r.alias))
        .bind(text(rows, |r| &r.provider))
        .bind(text(rows, |r| &r.deployment))
        .bind(text(rows, |r| &r.upstream_model))
        .bind(text(rows, |r| &r.ingress))
        .bind(col(rows, |r| r.input_tokens))
        .bind(col(rows, |r| r.output_tokens))
        .bind(col(rows, |r| r.cached_input_tokens))
        .bind(col(rows, |r| finite(r.cost)))
        .bind(col(rows, |r| i16::from(r.estimated)))
        .bind(col(rows, |r| finite(r.latency_ms)))
        .bind(col(rows, |r| {
            r.ttft_ms.filter(|v| v.is_finite() && *v >= 0.0)
        }))
        .bind(col(rows, |r| r.status))
        .bind(opt_text(rows, |r| &r.error_class))
        .bind(col(rows, |r| i16::from(r.cache_hit)))
        .bind(col(rows, |r| r.attempts))
        .bind(col(rows, |r| i16::from(r.stream)))
        .bind(col(rows, |r| i16::from(r.unpriced)))
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_statements_differ_only_in_the_conflict_clause() {
        assert_eq!(
            INSERT_SKIP.strip_suffix(" ON CONFLICT (request_id) DO NOTHING"),
            Some(INSERT)
        );
        // 23 columns, 23 arrays.
        assert_eq!(INSERT.matches("::").count(), 23);
        assert_eq!(sql(OnDuplicate::Fail), INSERT);
        assert!(INSERT.starts_with("INSERT INTO usage_log (request_id, ts, tenant_id,"));
    }
}
