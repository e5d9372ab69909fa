//! Usage inserts into an SQLite file, through rusqlite on a connection of
//! their own. Every other query, and usage on PostgreSQL or an in-memory
//! SQLite database, goes through sqlx as the rest of the store does.
//!
//! Why a second path for one statement: at saturation the usage writer is
//! the gateway's largest single consumer after the I/O workers (about 15%
//! of its CPU in the bench's c=32 profile), and most of that was sqlx's
//! plumbing rather than SQLite's own work. Through sqlx's `Any` driver each
//! of a row's 22 values is boxed into `AnyArguments`, converted to SQLite
//! arguments, copied again to become `'static` for sqlx's connection
//! thread, sent there over a channel, bound with a copy, and unbound with
//! `sqlite3_clear_bindings` on reset. Here a batch is one `BEGIN
//! IMMEDIATE`, the same cached multi-row INSERTs with the values bound
//! straight from the rows, and one COMMIT, on a blocking thread.
//!
//! The statements, their idempotence (`ON CONFLICT (request_id) DO NOTHING`)
//! and the value rules (NULs replaced, non-finite floats stored as 0, a
//! negative or non-finite `ttft_ms` as NULL) are the sqlx path's; the store
//! tests run the same assertions against both (SQLite file, PostgreSQL).

use super::model::UsageRow;
use super::usage::{chunk_sql, finite, next_chunk};
use super::{clean_cow, DbKind, StoreError};
use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The usage connection of one SQLite file; opened on first use.
#[derive(Debug)]
pub(super) struct SqliteUsage {
    path: PathBuf,
    busy_timeout: Duration,
    pragmas: &'static [&'static str],
    conn: Mutex<Conn>,
}

#[derive(Debug)]
enum Conn {
    Unopened,
    Open(Connection),
    Closed,
}

impl SqliteUsage {
    /// `path` is the file sqlx opened (`PRAGMA database_list`), after the
    /// migrations ran; `pragmas` are the store's per-connection settings.
    pub(super) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        pragmas: &'static [&'static str],
    ) -> SqliteUsage {
        SqliteUsage {
            path,
            busy_timeout,
            pragmas,
            conn: Mutex::new(Conn::Unopened),
        }
    }

    /// Insert `rows` in one transaction (see the module doc).
    pub(super) async fn insert(self: &Arc<Self>, rows: Arc<[UsageRow]>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.insert_blocking(&rows))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Invalid(format!(
                    "the usage insert task failed: {e}"
                )))
            })
    }

    /// Close the connection; later inserts fail as a closed pool's do.
    pub(super) async fn close(self: &Arc<Self>) {
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut g = me.conn.lock().unwrap_or_else(PoisonError::into_inner);
            *g = Conn::Closed;
        })
        .await;
    }

    fn insert_blocking(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        let op = "insert_usage";
        let mut g = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*g, Conn::Unopened) {
            *g = Conn::Open(
                self.open()
                    .map_err(|source| StoreError::Sqlite { op, source })?,
            );
        }
        let Conn::Open(conn) = &mut *g else {
            return Err(StoreError::Db {
                op,
                source: sqlx::Error::PoolClosed,
            });
        };
        write(conn, rows).map_err(|source| StoreError::Sqlite { op, source })
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Read-write, never create: the file exists (sqlx made it and ran
        // the migrations). No SQLite mutex: the connection is only used
        // under `self.conn`'s lock, by one thread at a time.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.busy_timeout)?;
        for pragma in self.pragmas {
            conn.execute_batch(pragma)?;
        }
        Ok(conn)
    }
}

/// One transaction; on any error it is rolled back (the `Transaction` is
/// dropped uncommitted) and the batch is the caller's to spool.
///
/// The statements are the sqlx path's multi-row INSERTs, cut the same way
/// (`next_chunk`): one statement's rows share its open cursors, so each
/// index insert continues from where the previous row's left off. A cached
/// single-row INSERT stepped per row cost more in all (27k instructions a
/// row against 24k under callgrind), as every row opened its cursors and
/// searched each index from the root.
fn write(conn: &mut Connection, rows: &[UsageRow]) -> rusqlite::Result<()> {
    // IMMEDIATE: take the write lock up front, so a concurrent writer makes
    // this wait (busy timeout) instead of failing a read-to-write upgrade.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut rest = rows;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(next_chunk(rest.len()));
        rest = tail;
        let mut st = tx.prepare_cached(&chunk_sql(DbKind::Sqlite, chunk.len()))?;
        let mut i = 0;
        let mut bind = |v: &dyn ToSql| -> rusqlite::Result<()> {
            i += 1;
            st.raw_bind_parameter(i, v)
        };
        for r in chunk {
            bind(&clean_cow(&r.request_id))?;
            bind(&r.ts)?;
            bind(&r.tenant_id.as_deref().map(clean_cow))?;
            bind(&r.user_id.as_deref().map(clean_cow))?;
            bind(&r.key_id.as_deref().map(clean_cow))?;
            bind(&clean_cow(&r.alias))?;
            bind(&clean_cow(&r.provider))?;
            bind(&clean_cow(&r.deployment))?;
            bind(&clean_cow(&r.upstream_model))?;
            bind(&clean_cow(&r.ingress))?;
            bind(&r.input_tokens)?;
            bind(&r.output_tokens)?;
            bind(&r.cached_input_tokens)?;
            bind(&finite(r.cost))?;
            bind(&i64::from(r.estimated))?;
            bind(&finite(r.latency_ms))?;
            // -1 stands for none (`NULLIF` in the statement), as on the
            // sqlx path.
            bind(
                &r.ttft_ms
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .unwrap_or(-1.0),
            )?;
            bind(&r.status)?;
            bind(&r.error_class.as_deref().map(clean_cow))?;
            bind(&i64::from(r.cache_hit))?;
            bind(&r.attempts)?;
            bind(&i64::from(r.stream))?;
        }
        st.raw_execute()?;
    }
    tx.commit()
}
