//! The store: runs, approvals, artifacts and the hash-chained audit log, on SQLite
//! (embedded default, one WAL file) or PostgreSQL (several instances sharing a queue).
//!
//! The database is the source of truth. A run changes state only through
//! [`Store::transition`] (or the store functions built on it: claims, decisions,
//! expiry, cancellation, lease recovery), and every change writes its audit entry in
//! the same transaction.
//!
//! # How one body of SQL serves two backends
//! There is no `Any` driver here: [`Store`] holds one concrete pool, and the
//! `write_tx!`/`read_conn!` macros below expand the same code once per backend. The
//! transaction-level helpers are small `pub(super)` traits (`RunsTx`, `AuditTx`, …)
//! implemented for both `SqliteConnection` and `PgConnection` by one macro each, so
//! every query is written once, with `$n` placeholders, which SQLite accepts too.
//!
//! # Serialising writers
//! Every transaction that appends to the audit log runs under one write lock:
//! `BEGIN IMMEDIATE` on SQLite, `pg_advisory_xact_lock(WRITE_LOCK)` as the first
//! statement on PostgreSQL. So the chain's `seq`/`prev_hash` never fork, and the
//! read-check-update of a transition or a claim's concurrency count cannot race.
//!
//! # Layout
//! - `model.rs`: the public row types and their decoding.
//! - `runs.rs`: create, transition, cancel, expiry, lease recovery, queries.
//! - `group.rs`: group commit of new runs on SQLite, on a thread and
//!   connection (`rusqlite`) of its own.
//! - `gate.rs`: whose turn it is at SQLite's writer, and how durably it commits.
//! - `writer.rs`: SQLite's two sqlx writer connections (synced, written).
//! - `direct.rs`: what the threads that own a `rusqlite` connection share:
//!   opening it, binding `$n`, appending to the chain, the thread itself.
//! - `background.rs`: the background writer thread (claims and finishes of
//!   background callers, the checkpointer's fold).
//! - `checkpoint.rs`: folding the WAL into the database while the service runs.
//! - `claim.rs`: handing a queued run to a worker, leases, progress.
//! - `approvals.rs`: one decision per approver, quorum.
//! - `audit.rs`: appending to and verifying the chain.
//! - `misc.rs`: artifacts, worker heartbeats, inbound event dedupe.
//! - `posts.rs`: what the chat notifier has shown for each run.
//! - [`testing`]: fresh databases for tests.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, migrate::Migrator};

use crate::types::{PersonId, RunId, RunState};

/// Runs `$body` inside one writing transaction, with `$c` bound to the backend's
/// connection (`&mut SqliteConnection` or `&mut PgConnection`). `$body` evaluates to
/// `Result<T, StoreError>`; an `Err` (or `?`) rolls back, `Ok` commits.
macro_rules! write_tx {
    ($store:expr, |$c:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite(pool) => {
                // IMMEDIATE takes the write lock up front: a deferred transaction that
                // reads first and writes later fails with SQLITE_BUSY instead of waiting.
                // Writers take turns at the gate, so this process's writers queue in
                // order instead of sleeping in SQLite's busy handler; someone waiting
                // for an answer goes ahead of background work (see `gate`).
                let turn = $store.gate.turn().await;
                let mut conn = $store.sqlite_write_conn(&turn, pool).await?;
                let out = async {
                    let mut tx =
                        ::sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
                    let $c: &mut ::sqlx::SqliteConnection = &mut *tx;
                    let out = $body?;
                    tx.commit().await?;
                    Ok::<_, $crate::store::StoreError>(out)
                }
                .await;
                if let Err(e) = &out {
                    conn.forget_if_broken(e);
                }
                out
            }
            $crate::store::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                ::sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind($crate::store::WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                let $c: &mut ::sqlx::PgConnection = &mut *tx;
                let out = $body?;
                tx.commit().await?;
                Ok::<_, $crate::store::StoreError>(out)
            }
        }
    };
}

/// Runs `$body` on one pooled connection without a transaction (reads and
/// single-statement writes), with `$c` bound as in `write_tx!`.
macro_rules! read_conn {
    ($store:expr, |$c:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let $c: &mut ::sqlx::SqliteConnection = &mut *conn;
                $body
            }
            $crate::store::Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let $c: &mut ::sqlx::PgConnection = &mut *conn;
                $body
            }
        }
    };
}

/// Like `read_conn!`, for a single statement that writes: on SQLite it goes
/// through a writer connection in its turn (see `write_tx!`).
macro_rules! write_conn {
    ($store:expr, |$c:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite(pool) => {
                let turn = $store.gate.turn().await;
                let mut conn = $store.sqlite_write_conn(&turn, pool).await?;
                let $c: &mut ::sqlx::SqliteConnection = &mut *conn;
                $body
            }
            $crate::store::Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let $c: &mut ::sqlx::PgConnection = &mut *conn;
                $body
            }
        }
    };
}

mod approvals;
mod audit;
mod background;
mod checkpoint;
mod claim;
mod direct;
mod gate;
mod group;
mod misc;
mod model;
mod posts;
mod runs;
pub mod schedules;
pub mod testing;
pub mod web;
mod writer;

pub use gate::foreground;
pub use model::{
    Approval, Artifact, AuditEntry, ChainCheck, DecisionInput, DecisionOutcome, NewRun, Run,
    RunFilter, RunPatch,
};
pub use posts::ChatPost;

/// The PostgreSQL advisory lock key that serialises every writing transaction which
/// appends to the audit log (and with it, claims). Any constant works as long as
/// every ExecGov process sharing the database uses the same one.
pub(crate) const WRITE_LOCK: i64 = 0x4578_6563_476f_7601; // "ExecGov\x01"

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a SQLite writer waits for the file's write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(15);
/// The size the WAL file is cut back to when SQLite starts it over after a
/// checkpoint (`journal_size_limit`). Without it the file keeps the size of
/// its largest burst for good. Large enough that a busy service (about 36 MB
/// of WAL between two checkpoints at 500 runs/s) does not cut and regrow it
/// every cycle.
pub(crate) const SQLITE_WAL_LIMIT_BYTES: u64 = 64 << 20;

/// Everything the store can fail with. `Db` and `Migrate` wrap sqlx; the others are
/// answers the caller is expected to show to a person.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The lifecycle diagram has no such arrow (a second start, approving a rejected run).
    #[error("run {run} is {from} and cannot become {to}")]
    InvalidTransition {
        run: RunId,
        from: RunState,
        to: RunState,
    },
    #[error("run {0} does not exist")]
    NotFound(RunId),
    /// Each approver decides once per run.
    #[error("{approver} has already decided on run {run}")]
    AlreadyDecided { run: RunId, approver: PersonId },
    /// Any other database failure; see [`StoreError::is_transient`].
    #[error("database: {0}")]
    Db(sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A database failure on the SQLite connection that records new runs
    /// (see `group`), which is not one of sqlx's.
    #[error("database: {0}")]
    Recorder(#[from] rusqlite::Error),
    /// A stored value that this code did not write (bad JSON, unknown state).
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

/// Like `#[from]`, except that a stored value which fails to decode is `Corrupt`.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Decode(e) => StoreError::Corrupt(e.to_string()),
            sqlx::Error::ColumnDecode { index, source } => {
                StoreError::Corrupt(format!("column {index}: {source}"))
            }
            e => StoreError::Db(e),
        }
    }
}

impl StoreError {
    /// True when a unique constraint refused the write (a second run with the same
    /// `schedule_key`, an artifact name used twice).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.is_unique_violation(),
            StoreError::Recorder(e) => e.sqlite_error().is_some_and(|e| {
                matches!(
                    e.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                )
            }),
            _ => false,
        }
    }

    /// True for failures worth retrying after a pause: the database was unreachable,
    /// busy, or the pool had no free connection. Everything else is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => true,
            StoreError::Db(sqlx::Error::Database(e)) => {
                let code = e.code().unwrap_or_default();
                if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // SQLITE_BUSY / SQLITE_LOCKED and their extended codes.
                    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
                } else {
                    // Serialization failure, deadlock, lock timeout, too many
                    // connections, administrator shutdown.
                    matches!(
                        code.as_ref(),
                        "40001" | "40P01" | "55P03" | "53300" | "57P01"
                    )
                }
            }
            StoreError::Recorder(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}

/// The database behind a [`Store`]: exactly one of the two backends.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle to the database. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// SQLite only: the connections every write goes through, one at a time in
    /// turns of `gate`, so writers in this process wait in turn rather than in
    /// SQLite's sleeping busy handler (which turns contention into 5–100 ms
    /// stalls). `None` for an in-memory database, whose single pool connection
    /// already serialises everything.
    pub(crate) sqlite_writers: Option<std::sync::Arc<writer::SqliteWriters>>,
    /// Orders this process's SQLite writers: those in [`foreground`] first.
    pub(crate) gate: std::sync::Arc<gate::WriterGate>,
    /// SQLite file only: records new runs in group commits, on a thread of
    /// its own (see `group`).
    recorder: Option<group::Recorder>,
    /// SQLite file only: claims and a run's finish, on a thread of their own
    /// (see `direct`).
    background: Option<background::BackgroundWriter>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database and brings its schema up to date.
    ///
    /// `sqlite://PATH` (relative to the working directory; `sqlite:///abs/path` for an
    /// absolute one) creates the file and its parent folders if missing, and sets WAL,
    /// a busy timeout and foreign keys on every connection; commits that someone
    /// is waiting for are synced to disk before they return, background ones are
    /// not (see `gate`).
    /// `postgres://…` or `postgresql://…` connects as libpq URLs do (a
    /// `?options=-c%20search_path%3DNAME` parameter picks a schema).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url).await
        } else {
            Err(StoreError::Db(sqlx::Error::Configuration(
                format!("database url must start with sqlite: or postgres://, got `{url}`").into(),
            )))
        }
    }

    async fn connect_sqlite(url: &str) -> Result<Store, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true)
            // No checkpoint inside a commit: one there copies thousands of pages
            // and syncs the file while every writer waits (10–50 ms stalls under
            // load). `checkpoint_in_background` does it on a reader connection.
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", SQLITE_WAL_LIMIT_BYTES.to_string());
        if !in_memory {
            create_parent_dir(options.get_filename())?;
        }
        let pool = SqlitePoolOptions::new()
            // An in-memory database lives as long as its connections: keep one.
            .max_connections(if in_memory { 1 } else { 8 })
            // A local file cannot hang up: a ping before each use is a wasted
            // hop to the connection's thread.
            .test_before_acquire(false)
            .min_connections(if in_memory { 1 } else { 0 })
            .connect_with(options.clone())
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        let sqlite_writers = if in_memory {
            None
        } else {
            Some(std::sync::Arc::new(
                writer::SqliteWriters::open(&options).await?,
            ))
        };
        let checkpointer = pool.clone();
        let mut store = Store {
            pool: Pool::Sqlite(pool),
            sqlite_writers,
            gate: Default::default(),
            recorder: None,
            background: None,
        };
        if !in_memory {
            store.background = Some(background::BackgroundWriter::start(
                options.get_filename(),
                store.gate.clone(),
            )?);
            store.recorder = Some(group::Recorder::start(
                options.get_filename(),
                store.gate.clone(),
            )?);
            tokio::spawn(checkpoint::checkpoint_in_background(
                checkpointer,
                store.background.clone(),
            ));
        }
        Ok(store)
    }

    async fn connect_postgres(url: &str) -> Result<Store, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Store {
            pool: Pool::Postgres(pool),
            sqlite_writers: None,
            gate: Default::default(),
            recorder: None,
            background: None,
        })
    }

    /// The SQLite writer connection for `turn`'s durability, or `pool`'s one
    /// connection for an in-memory database.
    pub(crate) async fn sqlite_write_conn<'a>(
        &'a self,
        turn: &gate::Turn<'_>,
        pool: &SqlitePool,
    ) -> Result<writer::WriteConn<'a>, StoreError> {
        match &self.sqlite_writers {
            Some(writers) => writers.lock(turn).await,
            None => writer::WriteConn::pooled(pool).await,
        }
    }

    /// The thread that writes claims and finishes, when this is a SQLite file
    /// and the caller is background work (a foreground caller's write must be
    /// synced, and goes ahead through the gate's foreground queue).
    fn background_writer(&self) -> Option<&background::BackgroundWriter> {
        self.background.as_ref().filter(|_| !gate::in_foreground())
    }

    /// `"sqlite"` or `"postgres"`, for logs, `/healthz` and tests.
    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Executes raw SQL (several statements allowed), bypassing every rule of the
    /// store. For tests and tools only: tests use it to tamper with the audit log.
    pub async fn exec_raw(&self, sql: &str) -> Result<(), StoreError> {
        let sql = AssertSqlSafe(sql.to_string());
        match &self.pool {
            Pool::Sqlite(pool) => match &self.sqlite_writers {
                Some(writers) => {
                    let mut conn = writers.lock_synced().await?;
                    sqlx::raw_sql(sql).execute(&mut *conn).await?;
                }
                None => {
                    sqlx::raw_sql(sql).execute(pool).await?;
                }
            },
            Pool::Postgres(pool) => {
                sqlx::raw_sql(sql).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => {
                if let Some(recorder) = &self.recorder {
                    recorder.close().await;
                }
                if let Some(background) = &self.background {
                    background.close().await;
                }
                if let Some(writers) = &self.sqlite_writers {
                    writers.close().await;
                }
                pool.close().await
            }
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

fn create_parent_dir(file: &Path) -> Result<(), StoreError> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Db(sqlx::Error::Configuration(
                format!("cannot create database folder {}: {e}", parent.display()).into(),
            ))
        })?;
    }
    Ok(())
}

/// Serialises a JSON value for a TEXT column.
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}
