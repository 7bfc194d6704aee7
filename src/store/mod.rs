//! The store: runs, approvals, artifacts and the hash-chained audit log, on SQLite
//! (embedded default, one WAL file) or PostgreSQL (several instances sharing a queue).
//!
//! The database is the source of truth. Every change is one of the typed write
//! operations of [`Write`] (`ops.rs`), made through [`Store::write`] with the
//! [`Durability`] its caller needs, and every change of a run's state goes
//! through the one transition (`runs::move_run`), which refuses an arrow the
//! lifecycle lacks and queues its audit entry in the same transaction.
//!
//! # One write path per backend
//! - SQLite: one thread owns the only writing connection and commits what
//!   arrives together in one transaction (`writer.rs`); reads use connections
//!   of their own (`sqlite.rs`); a checkpointer folds the WAL (`checkpoint.rs`).
//! - PostgreSQL: each write is a plain transaction (`postgres.rs`); writers of
//!   different runs do not wait for each other.
//!
//! Queries are written once, with `$n` placeholders, against [`sql::Tx`] (writes)
//! or `Store::fetch_*` (reads); rows decode through [`sql::Column`].
//!
//! # Layout
//! - `columns.rs`: the `runs` table declared once: [`Run`], [`NewRun`], INSERT, UPDATE.
//! - `model.rs`: the other public row types.
//! - `sql.rs`: values, rows, the transaction type both backends implement.
//! - `ops.rs`: the closed set of writes and [`Durability`]; `answer.rs`: what a write answers.
//! - `runs.rs`: create, the transition, cancel, expiry, lapsed leases, run queries.
//! - `claim.rs`: handing a queued run to a worker, leases, progress.
//! - `approvals.rs`: one decision per approver, quorum.
//! - `audit.rs`: appending to the chain; `audit_key.rs`: how entries are hashed
//!   (plain or keyed); `audit_verify.rs`: verifying it, against signed checkpoints
//!   too; `audit_backing.rs`: the check before a run starts that its approvals
//!   are backed by verifying entries.
//! - `runners.rs`: runners: enrolment, credentials, revocation, the list.
//! - `reports.rs`: what a runner sends about its runs: leases, log chunks, files, finish.
//! - `second_factor.rs`: TOTP second factors for step-up approval (sealed).
//! - `retention.rs`: removing the payloads of old finished runs, in batches.
//! - `misc.rs`, `posts.rs`, `schedules.rs`, `web.rs`: the tables beside the runs.
//! - `sqlite.rs`, `writer.rs`, `checkpoint.rs`, `postgres.rs`: the backends.
//! - [`backup`]: a consistent copy of a live SQLite database (`execgov backup`).
//! - [`testing`]: fresh databases for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::types::{PersonId, RunId, RunState};

mod answer;
mod approvals;
mod audit;
mod audit_backing;
mod audit_export;
mod audit_key;
mod audit_verify;
pub mod backup;
mod break_glass;
mod checkpoint;
mod claim;
mod columns;
mod misc;
mod model;
mod ops;
mod postgres;
mod posts;
mod reports;
mod retention;
mod runners;
mod runs;
pub mod schedules;
mod second_factor;
pub(crate) mod sql;
mod sqlite;
pub mod testing;
pub mod web;
mod writer;

pub use audit::AuditEntry;
pub use audit_key::AuditKey;
pub use audit_verify::{Checkpoint, CheckpointProblem};
pub use columns::{NewRun, Run};
pub use model::{Approval, Artifact, ChainCheck, DecisionInput, DecisionOutcome, RunFilter};
pub use ops::{Durability, Write};
pub use posts::ChatPost;
pub use reports::{Finished, RunnerFinish};
pub use retention::{Cuts, Prune, SeenLog};
pub use runners::{Enrolment, RunnerIdentity, RunnerRecord};
pub use runs::{Edit, Note, Transition};
pub use second_factor::{FactorWrite, LOCK_MS, MAX_FAILURES, SecondFactor};

use columns::INSERT as INSERT_RUN;
use sql::{Row, Value};

/// Everything the store can fail with. `Db` wraps the drivers; the others are
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
    /// A PostgreSQL failure; see [`StoreError::is_transient`].
    #[error("database: {0}")]
    Db(sqlx::Error),
    /// A SQLite failure.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL or file cannot be used as given; the message says why.
    #[error("database: {0}")]
    Config(String),
    /// The store was closed (the service is shutting down).
    #[error("the store is closed")]
    Closed,
    /// A stored value that this code did not write (bad JSON, unknown state).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The write contradicts what is stored; the message says what and what to do.
    #[error("{0}")]
    Conflict(String),
    /// More than a cap allows (a run's log).
    #[error("{0}")]
    TooLarge(String),
    /// A runner reported on a run it does not hold.
    #[error("this runner does not hold run {0}")]
    NotHeld(RunId),
    /// A log chunk (or a finish) came before the bytes the server still lacks.
    #[error("the log continues at byte {expected}; send it from there")]
    LogGap { expected: u64 },
}

/// Like `#[from]`, except that a stored value which fails to decode is `Corrupt`.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Decode(e) => StoreError::Corrupt(e.to_string()),
            sqlx::Error::ColumnDecode { index, source } => {
                StoreError::Corrupt(format!("column {index}: {source}"))
            }
            sqlx::Error::PoolClosed => StoreError::Closed,
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
            StoreError::Sqlite(e) => e.sqlite_error().is_some_and(|e| {
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
            // Serialization failure, deadlock, lock timeout, too many
            // connections, administrator shutdown.
            StoreError::Db(sqlx::Error::Database(e)) => matches!(
                e.code().unwrap_or_default().as_ref(),
                "40001" | "40P01" | "55P03" | "53300" | "57P01"
            ),
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}

/// The database behind a [`Store`]: exactly one of the two backends.
enum Backend {
    Sqlite {
        writer: writer::Writer,
        readers: sqlite::Readers,
        checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    },
    Postgres(postgres::Postgres),
}

/// Handle to the database. Cheap to clone: clones share one backend.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    /// Commits per (write, durability), for `/metrics` and the tests that
    /// check what durability an operation was given.
    commits: Arc<Mutex<BTreeMap<(&'static str, Durability), u64>>>,
    /// The audit key every append hashes with (see `audit_key.rs`); `None` until
    /// [`Store::set_audit_key`]: plain SHA-256, refused once the chain is keyed.
    audit_key: audit_key::KeyCell,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database and brings its schema up to date. Any number of
    /// processes may open one fresh database at the same time.
    ///
    /// `sqlite://PATH` (relative to the working directory; `sqlite:///abs/path` for an
    /// absolute one) creates the file and its parent folders if missing.
    /// `postgres://…` or `postgresql://…` connects as libpq URLs do (a
    /// `?options=-c%20search_path%3DNAME` parameter picks a schema).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            let location = sqlite::Location::parse(url)?;
            let opened = location.clone();
            let (writer, checkpointer) = tokio::task::spawn_blocking(move || {
                let mut conn = sqlite::open(&opened)?;
                sqlite::migrate(&mut conn)?;
                let checkpoint_conn = match &opened {
                    sqlite::Location::File(_) => Some(sqlite::open(&opened)?),
                    sqlite::Location::Memory => None,
                };
                let writer = writer::Writer::start(conn)?;
                let checkpointer =
                    checkpoint_conn.map(|c| Arc::new(checkpoint::start(c, writer.clone())));
                Ok::<_, StoreError>((writer, checkpointer))
            })
            .await
            .map_err(|e| StoreError::Config(format!("opening the database stopped: {e}")))??;
            Backend::Sqlite {
                writer,
                readers: sqlite::Readers::new(location),
                checkpointer,
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::Postgres::connect(url).await?)
        } else {
            return Err(StoreError::Config(format!(
                "database url must start with sqlite: or postgres://, got `{url}`"
            )));
        };
        Ok(Store {
            backend: Arc::new(backend),
            commits: Arc::default(),
            audit_key: Arc::default(),
        })
    }

    /// Makes one write on the backend's write path and answers what it did.
    /// `durability` is what the caller needs before it tells anyone.
    pub async fn write<T: TryFrom<answer::Answer, Error = StoreError>>(
        &self,
        write: Write,
        durability: Durability,
    ) -> Result<T, StoreError> {
        let name = write.name();
        let key = match audit_key::current(&self.audit_key) {
            audit_key::KeyState::None => None,
            audit_key::KeyState::Key(k) => Some(k),
            audit_key::KeyState::Unusable(why) => return Err(StoreError::Config(why)),
        };
        let answer = match &*self.backend {
            Backend::Sqlite { writer, .. } => writer.write(write, durability, key).await?,
            Backend::Postgres(pg) => pg.write(write, durability, key).await?,
        };
        *self
            .commits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((name, durability))
            .or_default() += 1;
        T::try_from(answer)
    }

    /// From now on every audit entry this store (and every clone of it) appends
    /// is keyed with `key` (HMAC-SHA256), and runs are claimed only when their
    /// approvals are backed by entries that verify under it. The first keyed
    /// append records where keying starts (an `audit.keyed` entry).
    pub fn set_audit_key(&self, key: AuditKey) {
        *self.audit_key.write().unwrap_or_else(|e| e.into_inner()) =
            audit_key::KeyState::Key(Arc::new(key));
    }

    /// The configured audit key could not be loaded (`why`): from now on every
    /// write fails saying so, rather than writing entries nobody can trust.
    pub fn set_audit_key_unusable(&self, why: String) {
        *self.audit_key.write().unwrap_or_else(|e| e.into_inner()) =
            audit_key::KeyState::Unusable(why);
    }

    /// The audit key set with [`Store::set_audit_key`], if any.
    pub fn audit_key(&self) -> Option<Arc<AuditKey>> {
        match audit_key::current(&self.audit_key) {
            audit_key::KeyState::Key(k) => Some(k),
            _ => None,
        }
    }

    /// How many writes were committed, per operation and durability.
    pub fn commit_counts(&self) -> Vec<(&'static str, Durability, u64)> {
        self.commits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((op, d), n)| (*op, *d, *n))
            .collect()
    }

    pub(crate) async fn fetch_all(
        &self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        self.rows(sql, args, usize::MAX).await
    }

    pub(crate) async fn fetch_optional(
        &self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, args, 1).await?.pop())
    }

    pub(crate) async fn fetch_one(&self, sql: &str, args: Vec<Value>) -> Result<Row, StoreError> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from `{sql}`")))
    }

    async fn rows(
        &self,
        sql: &str,
        args: Vec<Value>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        match &*self.backend {
            Backend::Sqlite {
                writer, readers, ..
            } => readers.rows(writer, sql.to_string(), args, limit).await,
            Backend::Postgres(pg) => {
                let mut rows = pg.rows(sql, args).await?;
                rows.truncate(limit);
                Ok(rows)
            }
        }
    }

    /// `"sqlite"` or `"postgres"`, for logs, `/healthz` and tests.
    pub fn backend_name(&self) -> &'static str {
        match &*self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Executes raw SQL (several statements allowed), bypassing every rule of the
    /// store. For tests and tools only: tests use it to tamper with the audit log.
    pub async fn exec_raw(&self, sql: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Sqlite { .. } => {
                self.write(Write::Raw(sql.to_string()), Durability::Synced)
                    .await
            }
            Backend::Postgres(pg) => pg.raw(sql).await,
        }
    }

    /// The first column of the first row of `sql` as an integer (NULL or no row:
    /// `None`), bypassing the store's types. For tests, benchmarks and tools.
    pub async fn scalar_raw(&self, sql: &str) -> Result<Option<i64>, StoreError> {
        match self.fetch_optional(sql, Vec::new()).await? {
            Some(row) => row.first(),
            None => Ok(None),
        }
    }

    /// Commits what was asked before, then closes every connection. On SQLite
    /// the writer's connection closes last, which folds and removes the WAL.
    pub async fn close(&self) {
        match &*self.backend {
            Backend::Sqlite {
                writer,
                readers,
                checkpointer,
            } => {
                if let Some(c) = checkpointer {
                    let c = c.clone();
                    let _ = tokio::task::spawn_blocking(move || c.stop()).await;
                }
                readers.close();
                writer.close().await;
            }
            Backend::Postgres(pg) => pg.close().await,
        }
    }
}

/// A database URL for logs, without its password.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
