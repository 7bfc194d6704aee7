//! `execgov backup FILE`: a consistent copy of the SQLite database, safe while
//! `serve` runs (see [`crate::store::backup`]); for PostgreSQL, the `pg_dump`
//! command that does the same.

use super::{EXIT_REFUSED, EXIT_USAGE};
use crate::app::redact_url;
use crate::config::Config;
use crate::store::backup::{BackupError, sqlite_backup};
use std::path::Path;
use std::process::ExitCode;

pub(super) async fn backup(config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    let url = &config.database_url;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        eprintln!("{}", pg_dump_advice(url, file));
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let (url, dest) = (url.clone(), file.to_path_buf());
    let done = tokio::task::spawn_blocking(move || sqlite_backup(&url, &dest)).await?;
    match done {
        Ok(report) => {
            println!(
                "backed up {} to {}: {} runs, {} audit entries, {}",
                report.source.display(),
                file.display(),
                report.runs,
                report.audit_entries,
                bytesize::ByteSize::b(report.bytes)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (BackupError::Exists(_) | BackupError::NotSqliteFile(_))) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_USAGE))
        }
        Err(e @ BackupError::Failed(_)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_REFUSED))
        }
    }
}

/// What to run instead on PostgreSQL, with the configured URL (password hidden).
fn pg_dump_advice(url: &str, file: &Path) -> String {
    format!(
        "The database is PostgreSQL: back it up with pg_dump, which takes a consistent \
         snapshot of a live database:\n\n  pg_dump --format=custom --file={} '{}'\n\n\
         (restore with pg_restore; PGPASSWORD or ~/.pgpass supplies the password)",
        file.display(),
        redact_url(url)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_the_pg_dump_command_without_its_password() {
        let advice = pg_dump_advice(
            "postgres://execgov:s3cret@db.internal:5432/execgov",
            Path::new("/backups/execgov.dump"),
        );
        assert!(
            advice.contains(
                "pg_dump --format=custom --file=/backups/execgov.dump 'postgres://execgov:***@db.internal:5432/execgov'"
            ),
            "{advice}"
        );
        assert!(!advice.contains("s3cret"), "no password: {advice}");
    }
}
