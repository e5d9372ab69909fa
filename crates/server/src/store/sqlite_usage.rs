//! Usage inserts into an SQLite file, through rusqlite on a connection of
//! their own. Every other query, and usage on PostgreSQL or an in-memory
//! SQLite database, goes through sqlx as the rest of the store does.
//!
//! Why a second path for one statement: at saturation the usage writer is
//! the gateway's largest single consumer after the I/O workers (about 15%
//! of its CPU in the bench's c=32 profile), and about a quarter of that was
//! sqlx's plumbing rather than SQLite's own work (callgrind, governed
//! driver: ~29k instructions a row across sqlx's thread and the runtime's,
//! ~22k here). Through sqlx's `Any` driver each
//! of a row's 23 values is boxed into `AnyArguments`, converted to SQLite
//! arguments, copied again to become `'static` for sqlx's connection
//! thread, sent there over a channel, bound with a copy, and unbound with
//! `sqlite3_clear_bindings` on reset. Here a batch is one `BEGIN
//! IMMEDIATE`, the same cached multi-row INSERTs with the values bound
//! straight from the rows, and one COMMIT, on a thread of its own
//! (`usage-writer`, so profiles name it) that owns the connection.
//!
//! The statements, their idempotence (`ON CONFLICT (request_id) DO NOTHING`)
//! and the value rules (NULs replaced, non-finite floats stored as 0, a
//! negative or non-finite `ttft_ms` as NULL) are the sqlx path's; the store
//! tests run the same assertions against both (SQLite file, PostgreSQL).

use super::model::UsageRow;
use super::usage::{chunk_sql, finite, next_chunk};
use super::{clean_cow, StoreError};
use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// The usage writer of one SQLite file: a thread (`usage-writer`)
/// owning the connection, started on the first insert.
#[derive(Debug)]
pub(super) struct SqliteUsage {
    opener: Opener,
    lane: Mutex<Lane>,
}

#[derive(Debug, Clone)]
struct Opener {
    path: PathBuf,
    busy_timeout: Duration,
    pragmas: &'static [&'static str],
}

#[derive(Debug)]
enum Lane {
    Unstarted,
    Running(mpsc::Sender<Job>),
    Closed,
}

enum Job {
    Insert(Arc<[UsageRow]>, oneshot::Sender<Result<(), StoreError>>),
    Close(oneshot::Sender<()>),
}

const OP: &str = "insert_usage";

impl SqliteUsage {
    /// `path` is the file sqlx opened (`PRAGMA database_list`), after the
    /// migrations ran; `pragmas` are the store's per-connection settings.
    pub(super) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        pragmas: &'static [&'static str],
    ) -> SqliteUsage {
        SqliteUsage {
            opener: Opener {
                path,
                busy_timeout,
                pragmas,
            },
            lane: Mutex::new(Lane::Unstarted),
        }
    }

    /// Insert `rows` in one transaction (see the module doc).
    pub(super) async fn insert(&self, rows: Arc<[UsageRow]>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let sent = self
            .lane()
            .and_then(|tx| tx.send(Job::Insert(rows, reply)).map_err(|_| thread_gone()));
        if let Err(e) = sent {
            // A thread that died is started again by the next insert.
            self.restart_if_gone();
            return Err(e);
        }
        match answer.await {
            Ok(r) => r,
            Err(_) => {
                self.restart_if_gone();
                Err(thread_gone())
            }
        }
    }

    /// Close the connection (after any batch in progress); later inserts
    /// fail as a closed pool's do.
    pub(super) async fn close(&self) {
        let lane = {
            let mut g = self.lane.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *g, Lane::Closed)
        };
        if let Lane::Running(tx) = lane {
            let (reply, done) = oneshot::channel();
            if tx.send(Job::Close(reply)).is_ok() {
                let _ = done.await;
            }
        }
    }

    /// The running thread's queue, starting the thread if need be.
    fn lane(&self) -> Result<mpsc::Sender<Job>, StoreError> {
        let mut g = self.lane.lock().unwrap_or_else(PoisonError::into_inner);
        match &*g {
            Lane::Running(tx) => Ok(tx.clone()),
            Lane::Closed => Err(StoreError::Db {
                op: OP,
                source: sqlx::Error::PoolClosed,
            }),
            Lane::Unstarted => {
                let (tx, rx) = mpsc::channel();
                let opener = self.opener.clone();
                std::thread::Builder::new()
                    .name("usage-writer".into())
                    .spawn(move || serve(&opener, &rx))
                    .map_err(|e| StoreError::Db {
                        op: OP,
                        source: sqlx::Error::Io(e),
                    })?;
                *g = Lane::Running(tx.clone());
                Ok(tx)
            }
        }
    }

    fn restart_if_gone(&self) {
        let mut g = self.lane.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*g, Lane::Running(_)) {
            *g = Lane::Unstarted;
        }
    }
}

/// The writer thread ended without answering (it panicked): a database
/// failure, not the caller's (the batch is spooled and replayed).
fn thread_gone() -> StoreError {
    StoreError::Db {
        op: OP,
        source: sqlx::Error::WorkerCrashed,
    }
}

/// The thread: one batch at a time, until closed or every sender is gone.
/// The connection is opened by the first batch, and kept (a failed batch
/// is rolled back; the connection stays usable).
fn serve(opener: &Opener, rx: &mpsc::Receiver<Job>) {
    let mut conn: Option<Connection> = None;
    while let Ok(job) = rx.recv() {
        match job {
            Job::Insert(rows, reply) => {
                let r = match conn.as_mut() {
                    Some(c) => write(c, &rows),
                    None => opener.open().and_then(|c| write(conn.insert(c), &rows)),
                };
                let _ = reply.send(r.map_err(|source| StoreError::Sqlite { op: OP, source }));
            }
            Job::Close(reply) => {
                drop(conn.take());
                let _ = reply.send(());
                return;
            }
        }
    }
}

impl Opener {
    fn open(&self) -> rusqlite::Result<Connection> {
        // Read-write, never create: the file exists (sqlx made it and ran
        // the migrations). No SQLite mutex: only this thread uses it.
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
        let mut st = tx.prepare_cached(&chunk_sql(chunk.len()))?;
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
            bind(&i64::from(r.unpriced))?;
        }
        st.raw_execute()?;
    }
    tx.commit()
}
