//! A consistent copy of the SQLite database while servers keep writing to it:
//! `VACUUM INTO` on a connection of its own, opened read-only, so the copy is
//! one transaction's snapshot and the writer thread is never involved (a
//! running `serve` waits for nothing; the copy waits only for the WAL's
//! readers' lock, as any reader does).
//!
//! PostgreSQL is not copied here: `pg_dump` makes a consistent dump of a live
//! database, and it is what its operators already use.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::sqlite::Location;

/// How long the copy waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The database file copied.
    pub source: PathBuf,
    pub runs: i64,
    pub audit_entries: i64,
    /// Size of the copy in bytes.
    pub bytes: u64,
}

/// Why a backup was not made. Every variant leaves no file behind except
/// [`BackupError::Exists`], which is someone else's file.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database is not a SQLite file (PostgreSQL, or in memory).
    #[error("{0}")]
    NotSqliteFile(String),
    /// The destination exists; a backup never overwrites anything.
    #[error("{} exists; a backup never overwrites a file: choose a new name or remove it first", .0.display())]
    Exists(PathBuf),
    #[error("{0}")]
    Failed(String),
}

/// Copies the SQLite database at `url` into the new file `dest` (mode 0600:
/// it holds everything the service knows), checks the copy, and says what it holds.
pub fn sqlite_backup(url: &str, dest: &Path) -> Result<BackupReport, BackupError> {
    let source =
        match Location::parse(url).map_err(|e| BackupError::NotSqliteFile(e.to_string()))? {
            Location::File(path) => path,
            Location::Memory => {
                return Err(BackupError::NotSqliteFile(
                    "the database is in memory: there is nothing on disk to back up".into(),
                ));
            }
        };
    if !source.is_file() {
        return Err(BackupError::Failed(format!(
            "no database at {}: check [database] url or EXECGOV_DATABASE_URL",
            source.display()
        )));
    }
    // Claimed before anything is read: `create_new` fails if the name is
    // taken, even by a file made a moment ago, and VACUUM INTO accepts an
    // empty file as its target.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(BackupError::Exists(dest.to_path_buf()));
        }
        Err(e) => {
            return Err(BackupError::Failed(format!(
                "cannot create {}: {e}",
                dest.display()
            )));
        }
    }
    copy_and_check(&source, dest).map_err(|e| {
        let _ = std::fs::remove_file(dest);
        BackupError::Failed(e)
    })
}

fn copy_and_check(source: &Path, dest: &Path) -> Result<BackupReport, String> {
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("opening {} read-only: {e}", source.display()))?;
    src.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    let dest_text = dest
        .to_str()
        .ok_or_else(|| format!("{} is not a UTF-8 path", dest.display()))?;
    src.execute("VACUUM INTO ?1", [dest_text])
        .map_err(|e| format!("copying {} into {}: {e}", source.display(), dest.display()))?;
    drop(src);
    sync(dest).map_err(|e| format!("writing {} to disk: {e}", dest.display()))?;

    let copy = Connection::open_with_flags(
        dest,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("opening the copy: {e}"))?;
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("checking the copy: {e}"))?;
    if check != "ok" {
        return Err(format!("the copy failed its integrity check: {check}"));
    }
    let count = |table: &str| -> Result<i64, String> {
        copy.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .map_err(|e| format!("reading the copy's {table}: {e}"))
    };
    Ok(BackupReport {
        source: source.to_path_buf(),
        runs: count("runs")?,
        audit_entries: count("audit")?,
        bytes: std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0),
    })
}

/// The copy's bytes and its directory entry on disk before we say it is done.
fn sync(file: &Path) -> io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
