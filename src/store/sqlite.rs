//! SQLite: opening the file, bringing its schema up to date (safely when
//! several processes open a fresh file at once), and the connections that
//! read it. Writes go through the one writer thread (`writer.rs`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::StoreError;
use super::sql::{Row, Value, sqlite_rows};
use super::writer::Writer;

/// How long a connection waits for another process's lock on the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);
/// The size the WAL file is cut back to when SQLite starts it over after a
/// checkpoint (`journal_size_limit`). Without it the file keeps the size of
/// its largest burst for good. Large enough that a busy service (about 36 MB
/// of WAL between two checkpoints at 500 runs/s) does not cut and regrow it
/// every cycle.
pub(crate) const WAL_LIMIT_BYTES: u64 = 64 << 20;
/// Connections reading at once (web pages, the notifier, the scheduler).
const READERS: usize = 4;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Where a `sqlite:` URL points: a file, or memory (`sqlite::memory:`).
#[derive(Debug, Clone)]
pub(super) enum Location {
    File(PathBuf),
    Memory,
}

impl Location {
    /// `sqlite://PATH`, `sqlite:PATH` (relative to the working directory),
    /// `sqlite:///abs/path`, `sqlite::memory:`; a `?query` is ignored.
    pub(super) fn parse(url: &str) -> Result<Location, StoreError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Config(format!("`{url}` is not a sqlite: URL")))?;
        let path = rest.split('?').next().unwrap_or_default();
        if path == ":memory:" || url.contains("mode=memory") {
            return Ok(Location::Memory);
        }
        if path.is_empty() {
            return Err(StoreError::Config(format!(
                "`{url}` names no database file; write sqlite://data/execgov.db"
            )));
        }
        Ok(Location::File(PathBuf::from(path)))
    }
}

/// Opens a connection with the store's settings. The file is created if
/// missing (with its folder), and put in WAL mode.
pub(super) fn open(location: &Location) -> Result<Connection, StoreError> {
    let conn = match location {
        Location::Memory => Connection::open_in_memory()?,
        Location::File(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Config(format!(
                        "cannot create the database folder {}: {e}",
                        parent.display()
                    ))
                })?;
            }
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?
        }
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // No checkpoint inside a commit: one there copies thousands of pages and
    // syncs the file while every writer waits (10–50 ms stalls under load).
    // `checkpoint.rs` does it beside the writer.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", WAL_LIMIT_BYTES as i64)?;
    if let Location::File(path) = location {
        wal_mode(&conn, path)?;
    }
    Ok(conn)
}

/// Puts the file in WAL mode (it stays so). Another process doing the same at
/// the same moment can make this answer "busy" at once, without waiting for
/// the busy timeout: retry until it holds.
fn wal_mode(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(StoreError::Config(format!(
                    "{} stays in journal mode {mode}, not WAL (is it on a network file system?)",
                    path.display()
                )));
            }
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Applies the migrations this file lacks, in one `BEGIN IMMEDIATE`
/// transaction: a second process opening the same fresh file waits for the
/// first to finish, then finds nothing left to do. The bookkeeping table is
/// sqlx's (`_sqlx_migrations`, same columns and checksums), so databases made
/// by earlier versions carry on.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        )",
    )?;
    let applied: Vec<(i64, Vec<u8>)> = {
        let mut stmt =
            tx.prepare("SELECT version, checksum FROM _sqlx_migrations WHERE success")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    for m in MIGRATIONS.iter() {
        match applied.iter().find(|(v, _)| *v == m.version) {
            Some((_, sum)) if sum.as_slice() == &*m.checksum => continue,
            Some(_) => {
                return Err(StoreError::Config(format!(
                    "migration {} ({}) was applied to this database in another form; \
                     restore migrations/sqlite from the release that made the database",
                    m.version, m.description
                )));
            }
            None => {}
        }
        let started = Instant::now();
        tx.execute_batch(m.sql.as_str()).map_err(|e| {
            StoreError::Config(format!(
                "applying migration {} ({}): {e}",
                m.version, m.description
            ))
        })?;
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?1, ?2, TRUE, ?3, ?4)",
            rusqlite::params![
                m.version,
                &*m.description,
                &*m.checksum,
                started.elapsed().as_nanos() as i64
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Connections that only read, lent one per query to a blocking thread. For
/// an in-memory database (one connection is the whole database) reads go to
/// the writer thread instead.
pub(super) struct Readers {
    location: Location,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").finish_non_exhaustive()
    }
}

impl Readers {
    pub(super) fn new(location: Location) -> Readers {
        Readers {
            location,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(READERS),
        }
    }

    /// At most `limit` rows of `sql`.
    pub(super) async fn rows(
        &self,
        writer: &Writer,
        sql: String,
        args: Vec<Value>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        if let Location::Memory = self.location {
            return writer
                .read(move |c| sqlite_rows(c, &sql, &args, limit))
                .await;
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let conn = self.idle.lock().expect("reader pool").pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = open(&self.location)?;
                c.pragma_update(None, "query_only", true)?;
                c
            }
        };
        let (conn, rows) = tokio::task::spawn_blocking(move || {
            let rows = sqlite_rows(&conn, &sql, &args, limit);
            (conn, rows)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("a read stopped: {e}")))?;
        self.idle.lock().expect("reader pool").push(conn);
        rows
    }

    /// Closes the idle connections (the store is closing).
    pub(super) fn close(&self) {
        self.idle.lock().expect("reader pool").clear();
    }
}
