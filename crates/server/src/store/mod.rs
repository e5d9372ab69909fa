//! Governance storage: one code path and one set of migrations for embedded
//! SQLite (the default) and PostgreSQL.
//!
//! # Portability
//! Everything goes through sqlx's `AnyPool`, so each query is written once.
//! The rules that make that work (each checked by `tests/store.rs` on both
//! databases):
//! - Placeholders are `$1, $2, …`. PostgreSQL numbers them natively; sqlx's
//!   SQLite driver binds `$N` to argument `N` (SQLite itself treats `$N` as a
//!   named parameter), so a reused `$1` is the same value on both. Queries
//!   are still written with first appearances in ascending order. Bulk
//!   statements (multi-row inserts) use anonymous `?` on SQLite instead:
//!   binding thousands of named parameters is quadratic there (`Sql::bulk`).
//! - Column types: `TEXT`, `BIGINT`, `INTEGER`, `SMALLINT`,
//!   `DOUBLE PRECISION`. **No `BOOLEAN`**: sqlx's Any driver cannot map a
//!   SQLite column declared `BOOLEAN` (it fails on every row), so flags are
//!   `SMALLINT` 0/1, bound as `i16`.
//! - PostgreSQL's `SUM(bigint)` is `NUMERIC`, which Any cannot decode, so
//!   integer sums are wrapped in `CAST(… AS BIGINT)`; float sums are read as
//!   `Option<f64>` (both return `NULL` over no rows).
//! - Ids are text chosen by callers ([`new_id`]); no `SERIAL`/`AUTOINCREMENT`.
//!   Times are `BIGINT` Unix milliseconds; lists and JSON are `TEXT`.
//! - sqlx 0.8's Any driver sends a NULL `f64` to PostgreSQL typed `float4`,
//!   and a cached statement then rejects a non-NULL `f64` in that slot
//!   ("incorrect binary data format"). So statements that bind a NULL float
//!   are not cached (`bind_all`), and the hot usage insert never binds
//!   one: `ttft_ms` is sent as `-1` and stored through `NULLIF(…, -1.0)`.
//! - Upserts are `INSERT … ON CONFLICT (…) DO NOTHING / DO UPDATE SET x =
//!   excluded.x`; batched updates use `UPDATE … FROM (VALUES …)` whose
//!   columns are `column1, column2` on both.
//!
//! The migrations (`crates/server/migrations/NNNN_*.sql`) are embedded with
//! `sqlx::migrate!` and run by [`Store::connect`]; on PostgreSQL sqlx holds an
//! advisory lock while migrating, so replicas may start together.
//!
//! # Connections
//! - `sqlite://path/to/file.db` (or `sqlite:file.db`): parent directories and
//!   the file are created; WAL journal, `synchronous=NORMAL`,
//!   `busy_timeout` 5 s, foreign keys on; a pool of 4. `sqlite::memory:` is
//!   one database held by a single connection (Any re-parses the URL per
//!   connection, which would otherwise open a new empty database each time).
//! - `postgres://user@host:port/db` (TLS via rustls when the server offers
//!   it, `?sslmode=…` as usual): a pool of 12.
//!
//! # The change feed ([`Store::changes_since`])
//! Every write to a tenant, user, key, budget or rate limit runs in a
//! transaction whose **first statement advances the governance clock**, a
//! one-row table: `last = max(now_ms, last + 1)`. The row stays locked until
//! commit, so clock values are handed out in commit order, strictly
//! increasing, and the written row's `updated_at` (or a tombstone's
//! `deleted_at`) is that value. `changes_since(since)` first reads the clock
//! `W`, then returns the rows with `since < updated_at <= W` and answers
//! watermark `W`. Every value `<= W` belongs to a transaction that committed
//! before `W` was read, so it is visible; windows `(since, W]` partition the
//! clock, so each row version is returned exactly once, and a row changed
//! again meanwhile shows up (in its newest state) in a later window. Many
//! changes in one millisecond get distinct values (`last + 1`).
//! [`Store::touch_keys`] only sets `last_used_at` and does not advance the
//! clock, so key use never floods the feed.
//!
//! # Usage rows at scale
//! `usage_log` is append-only, keyed by `request_id` (inserts are idempotent;
//! on PostgreSQL a batch is one `UNNEST` statement, first sent without `ON
//! CONFLICT`, which costs the server a speculative insertion per row, and
//! rewritten with it only when a stored id comes back)
//! and indexed on `ts`, `(tenant_id, ts)`, `(user_id, ts)` and
//! `(key_id, ts)`; the last three are partial (`WHERE <column> IS NOT
//! NULL`, migration 0002), so a row without a tenant, user or key costs the
//! writer no entry there. [`Store::spend_since`] is one indexed range scan; reports
//! always carry a time range in practice and use the same indexes. Nothing
//! on the request path queries this table (budgets are counted in memory and
//! reseeded from `spend_since` at start).

/// The usage table's columns, in the order every usage INSERT binds them.
macro_rules! usage_cols {
    () => {
        "request_id, ts, tenant_id, user_id, key_id, alias, provider, deployment, \
         upstream_model, ingress, input_tokens, output_tokens, cached_input_tokens, cost, \
         estimated, latency_ms, ttft_ms, status, error_class, cache_hit, attempts, stream, \
         unpriced"
    };
}

mod admin_audit;
mod audit;
mod governance;
pub mod journal;
pub mod model;
mod pg_usage;
mod sqlite_usage;
mod usage;
mod writer;

pub use admin_audit::PENDING as AUDIT_PENDING;
pub use audit::{AuditLog, SecurityKey, SecurityLimits};
pub use governance::Changes;
pub use model::*;
pub use usage::USAGE_CHUNK;
pub(crate) use writer::append_lines as writer_append_lines;
pub use writer::{
    replay_spool, run_usage_writer, run_usage_writer_acked, WriterConfig, WriterStats,
};

use rand::Rng;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A database error; `op` names the store operation that failed.
    #[error("database error in {op}: {source}")]
    Db {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// An error of the SQLite usage writer's own connection (see
    /// `sqlite_usage`); `op` names the store operation, as for `Db`.
    #[error("database error in {op}: {source}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(source: sqlx::Error) -> Self {
        StoreError::Db {
            op: "database",
            source,
        }
    }
}

/// Attach the operation name to a sqlx error.
pub(crate) trait OpExt<T> {
    fn op(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> OpExt<T> for Result<T, sqlx::Error> {
    fn op(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Db { op, source })
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    /// From a connection URL's scheme.
    pub fn from_url(url: &str) -> Option<DbKind> {
        if url.starts_with("sqlite:") {
            Some(DbKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(DbKind::Postgres)
        } else {
            None
        }
    }
}

/// The governance store: a connection pool plus the queries.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// PostgreSQL: the usage writer's own connection (a native pool of
    /// one, for `pg_usage`'s array-bound INSERT): its prepared statements
    /// stay warm from one batch to the next, instead of each batch landing
    /// on whichever connection of `pool` is next in line and preparing them
    /// again. SQLite: the same pool as `pool` (a file's
    /// usage inserts go through `sqlite_usage`, which likewise keeps one
    /// connection with its statement and page cache warm; an in-memory
    /// database exists only on its one connection).
    usage: UsagePool,
    /// Usage inserts into an SQLite file bypass sqlx (see `sqlite_usage`);
    /// none for PostgreSQL and in-memory SQLite.
    sqlite_usage: Option<Arc<sqlite_usage::SqliteUsage>>,
    kind: DbKind,
}

/// The usage writer's pool: PostgreSQL's is native (its INSERT binds
/// arrays, which sqlx's Any driver cannot; see `pg_usage`).
#[derive(Clone, Debug)]
enum UsagePool {
    Any(AnyPool),
    Pg(sqlx::PgPool),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Milliseconds of SQLite's busy timeout.
const SQLITE_BUSY_MS: u64 = 5_000;

impl Store {
    /// Connect, create the SQLite file if needed, and run the migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let kind = DbKind::from_url(url).ok_or_else(|| {
            StoreError::Invalid(format!(
                "unsupported database URL {:?}: expected sqlite://… or postgres://…",
                redact(url)
            ))
        })?;
        let (pool, usage, file) = match kind {
            DbKind::Sqlite => {
                let (pool, file) = connect_sqlite(url).await?;
                (pool.clone(), UsagePool::Any(pool), file)
            }
            DbKind::Postgres => {
                let pg = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(0)
                        .acquire_timeout(Duration::from_secs(5))
                        .idle_timeout(Duration::from_secs(300))
                };
                let pool = pg(12).connect(url).await.op("connect")?;
                let usage = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(0)
                    .acquire_timeout(Duration::from_secs(5))
                    .idle_timeout(Duration::from_secs(300))
                    .connect_lazy(url)
                    .op("connect")?;
                (pool, UsagePool::Pg(usage), None)
            }
        };
        MIGRATOR.run(&pool).await?;
        let sqlite_usage = file.map(|path| {
            Arc::new(sqlite_usage::SqliteUsage::new(
                path,
                Duration::from_millis(SQLITE_BUSY_MS),
                &SQLITE_PRAGMAS,
            ))
        });
        Ok(Store {
            pool,
            usage,
            sqlite_usage,
            kind,
        })
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// The underlying pool, for diagnostics and tests.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// One round trip.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .op("ping")?;
        Ok(())
    }

    /// Close the pools (waits for checked-out connections). Later calls fail.
    pub async fn close(&self) {
        if let Some(u) = &self.sqlite_usage {
            u.close().await;
        }
        match &self.usage {
            UsagePool::Any(p) => p.close().await,
            UsagePool::Pg(p) => p.close().await,
        }
        self.pool.close().await;
    }
}

/// Set on every SQLite connection (after `busy_timeout`).
const SQLITE_PRAGMAS: [&str; 4] = [
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = NORMAL",
    // 256 KiB of page cache per connection (SQLite's default is 2 MiB):
    // inserts touch only the right edge of each index, reads of older pages
    // come from the OS page cache, and the gateway's idle memory is part of
    // its budget.
    "PRAGMA cache_size = -256",
    // Statement journals (a multi-row INSERT that may need to undo part of
    // itself) in memory: on disk each was a temp file created and unlinked
    // per usage batch.
    "PRAGMA temp_store = MEMORY",
];

/// The pool, and the file the usage writer opens itself (none for an
/// in-memory database, where usage goes through the one connection like
/// everything else).
async fn connect_sqlite(url: &str) -> Result<(AnyPool, Option<PathBuf>), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let memory =
        path == ":memory:" || path.is_empty() || query.is_some_and(|q| q.contains("mode=memory"));
    let mut full = url.to_string();
    if !memory {
        // sqlx percent-decodes the path (`%20`, `%23` for `#`, `%3F` for
        // `?`): create the directory it will open.
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        if let Some(parent) = Path::new(decoded.as_ref()).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Invalid(format!(
                        "cannot create the directory {} for the SQLite database: {e}",
                        parent.display()
                    ))
                })?;
            }
        }
        if !query.is_some_and(|q| q.contains("mode=")) {
            full.push(if query.is_some() { '&' } else { '?' });
            full.push_str("mode=rwc");
        }
        // WAL is a property of the file: set it once, before the pool opens
        // several connections (changing it needs an exclusive lock).
        let opts = sqlx::any::AnyConnectOptions::from_str(&full).op("connect")?;
        let mut conn = sqlx::ConnectOptions::connect(&opts).await.op("connect")?;
        sqlx::query(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_MS}"))
            .execute(&mut conn)
            .await
            .op("connect")?;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await
            .op("connect")?;
        sqlx::Connection::close(conn).await.op("connect")?;
    }
    let opts = || {
        AnyPoolOptions::new()
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::query(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_MS}"))
                        .execute(&mut *conn)
                        .await?;
                    for pragma in SQLITE_PRAGMAS {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .acquire_timeout(Duration::from_secs(10))
    };
    if memory {
        let pool = opts()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect(&full)
            .await
            .op("connect")?;
        return Ok((pool, None));
    }
    let pool = opts()
        .max_connections(4)
        .connect(&full)
        .await
        .op("connect")?;
    // The file as SQLite resolved it (sqlx's URL rules: percent-decoding,
    // relative paths), so the usage connection opens the same one.
    let file: String = sqlx::query("PRAGMA database_list")
        .fetch_all(&pool)
        .await
        .op("connect")?
        .iter()
        .find(|r| sqlx::Row::try_get::<String, _>(*r, 1).is_ok_and(|n| n == "main"))
        .and_then(|r| sqlx::Row::try_get::<String, _>(r, 2).ok())
        .unwrap_or_default();
    let file = (!file.is_empty()).then(|| PathBuf::from(file));
    Ok((pool, file))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A new id: `prefix` + 20 random base62 characters (≈119 bits).
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let mut s = String::with_capacity(prefix.len() + 20);
    s.push_str(prefix);
    for _ in 0..20 {
        s.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    }
    s
}

/// A bind value for dynamically built queries.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    I64(i64),
    OptI64(Option<i64>),
    I16(i16),
    OptF64(Option<f64>),
}

/// SQL text plus its arguments, with `$N` placeholders numbered in order —
/// or, for bulk statements on SQLite ([`Sql::bulk`]), anonymous `?`.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
    /// Write `?` instead of `$N`.
    anonymous: bool,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
            anonymous: false,
        }
    }
    /// For statements with thousands of parameters. SQLite keeps named
    /// parameters (`$N`) in a list that every name lookup scans, so binding
    /// N of them is O(N²) (8,800 took seconds); anonymous `?` binds in order
    /// in O(1). `bind` only ever appends the next number, so `?` and `$N`
    /// mean the same here. PostgreSQL keeps `$N`.
    pub fn bulk(kind: DbKind, text: &str) -> Sql {
        let mut q = Sql::new(text);
        q.anonymous = kind == DbKind::Sqlite;
        q
    }
    /// Append raw SQL.
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    /// Append a placeholder bound to `a`.
    pub fn bind(&mut self, a: Arg) -> &mut Self {
        self.args.push(a);
        push_placeholder(&mut self.text, self.anonymous, self.args.len());
        self
    }
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        bind_all(sqlx::query(&self.text), &self.args)
    }
}

/// Append the placeholder of the `n`th (1-based) parameter: `?` when
/// `anonymous` (SQLite bulk statements, see [`Sql::bulk`]), else `$n`.
pub(crate) fn push_placeholder(text: &mut String, anonymous: bool, n: usize) {
    if anonymous {
        text.push('?');
    } else {
        use std::fmt::Write;
        let _ = write!(text, "${n}");
    }
}

pub(crate) fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    args: &[Arg],
) -> Query<'q, Any, AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s.clone()),
            Arg::OptText(s) => q.bind(s.clone()),
            Arg::I64(v) => q.bind(*v),
            Arg::OptI64(v) => q.bind(*v),
            Arg::I16(v) => q.bind(*v),
            Arg::OptF64(v) => q.bind(*v),
        };
    }
    // sqlx 0.8's Any → PostgreSQL conversion types a NULL `f64` as `float4`;
    // a statement cached with that type then rejects a real `f64` (22P03).
    // Statements binding a NULL float are therefore never cached.
    if args.iter().any(|a| matches!(a, Arg::OptF64(None))) {
        q = q.persistent(false);
    }
    q
}

/// Typed column access with the column named in errors.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    sqlx::Row::try_get(row, name).op("decode")
}

pub(crate) fn col_bool(row: &AnyRow, name: &str) -> Result<bool, StoreError> {
    Ok(col::<i64>(row, name)? != 0)
}

pub(crate) fn flag(b: bool) -> Arg {
    Arg::I16(i16::from(b))
}

pub(crate) fn json_text<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("cannot encode JSON: {e}")))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    s: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Invalid(format!("stored {what} is not valid JSON: {e}")))
}

/// Map unique / foreign-key violations to `Conflict` / `Invalid`.
pub(crate) fn classify(e: sqlx::Error, op: &'static str, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            // The database's own text (`UNIQUE constraint failed:
            // tenants.name`, constraint names) goes to the log, never to
            // callers: `what` is written for them.
            sqlx::error::ErrorKind::UniqueViolation => {
                tracing::debug!(op, error = %db.message(), "unique violation");
                return StoreError::Conflict(format!("{what} already exists"));
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                tracing::debug!(op, error = %db.message(), "foreign key violation");
                return StoreError::Invalid(format!(
                    "{what} refers to a record that does not exist"
                ));
            }
            _ => {}
        }
    }
    StoreError::Db { op, source: e }
}

/// PostgreSQL text cannot hold NUL; usage and audit text may come from
/// clients, so it is replaced rather than failing the whole batch.
pub(crate) fn clean(s: &str) -> String {
    clean_cow(s).into_owned()
}

/// [`clean`], borrowed when there is nothing to replace.
pub(crate) fn clean_cow(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

pub(crate) fn clean_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_length() {
        let a = new_id("key_");
        let b = new_id("key_");
        assert!(a.starts_with("key_"));
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut q = Sql::new("SELECT 1 WHERE a = ");
        q.bind(Arg::I64(1)).push(" AND b = ").bind(Arg::I64(2));
        assert_eq!(q.text, "SELECT 1 WHERE a = $1 AND b = $2");
        let mut q = Sql::bulk(DbKind::Sqlite, "VALUES ");
        q.bind(Arg::I64(1)).push(", ").bind(Arg::I64(2));
        assert_eq!(q.text, "VALUES ?, ?");
        let mut q = Sql::bulk(DbKind::Postgres, "VALUES ");
        q.bind(Arg::I64(1)).push(", ").bind(Arg::I64(2));
        assert_eq!(q.text, "VALUES $1, $2");
    }
}
