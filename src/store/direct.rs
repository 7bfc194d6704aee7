//! SQLite writes on threads that own a `rusqlite` connection, for the two
//! kinds of transaction that every run makes many of: recording it (`group`)
//! and the pool's claims and finishes (`background`). This is what both
//! threads share: the connection, binding, audit appends and the thread.
//!
//! Through sqlx each statement is a round trip to the connection's worker
//! thread, two thread wake-ups, and a transaction is five or six statements.
//! On these threads the whole transaction is one hand-over each way. Each
//! thread still writes only in its turn at the store's gate, so it never
//! contends with the store's other writers for SQLite's write lock.
//!
//! The SQL is the same as the sqlx path's (`INSERT_RUN`, `FETCH_RUN`,
//! `TRANSITION`, `CLAIM_SQLITE`, `HEAD_SQL`, `insert_sql`) and so is the
//! logic around it (`moved`, `link`, `Run` decoding); only the binding is
//! written twice.

use std::path::Path;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::{mpsc, oneshot};

use super::audit::{HEAD_SQL, NewEntry, insert_sql, link};
use super::{SQLITE_BUSY_TIMEOUT, SQLITE_WAL_LIMIT_BYTES, StoreError};

/// Opens a writer connection to the database file at `path`, which the store
/// has already created and migrated (so it is in WAL mode for good), with the
/// store's settings and `synchronous` = `sync` (`FULL` or `NORMAL`).
pub(super) fn open(path: &Path, sync: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", SQLITE_WAL_LIMIT_BYTES as i64)?;
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Db(sqlx::Error::Configuration(
            format!("{} is in journal mode {mode}, not WAL", path.display()).into(),
        )));
    }
    Ok(conn)
}

/// Runs `sql` with `values[n-1]` bound to its parameter `$n`, and maps its
/// first row, if any, with `f`. Bound by each parameter's name: SQLite
/// numbers `$n` parameters in their order of first appearance in the SQL,
/// not by `n`, so binding by position would put `TRANSITION`'s `$1` where
/// `$3` is.
pub(super) fn query_first<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    for index in 1..=stmt.parameter_count() {
        let name = stmt.parameter_name(index).unwrap_or("?");
        let n = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=values.len()).contains(n))
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_string()))?;
        stmt.raw_bind_parameter(index, values[n - 1])?;
    }
    let mut rows = stmt.raw_query();
    rows.next()?.map(f).transpose()
}

/// Appends `entries` to the audit chain, in order; returns the last `seq`.
/// Only inside a transaction that holds the write lock (as `AuditTx`).
pub(super) fn append(conn: &Connection, entries: &[NewEntry<'_>]) -> rusqlite::Result<i64> {
    let head: Option<(i64, String)> = conn
        .query_row(HEAD_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut last = head.as_ref().map_or(0, |(seq, _)| *seq);
    let insert = insert_sql(1);
    for r in link(head, entries) {
        query_first(
            conn,
            &insert,
            params![
                r.seq,
                r.at,
                r.actor,
                r.action,
                r.run_id,
                r.details,
                r.prev_hash,
                r.hash,
            ],
            |_| Ok(()),
        )?;
        last = r.seq;
    }
    Ok(last)
}

/// What a writer thread is sent: work of its kind, or the request to close.
pub(super) enum Message<W> {
    Work(W),
    /// Finish the work sent before, close the connection, then say so.
    Close(oneshot::Sender<()>),
}

/// The sending end of a thread that owns a writer connection.
pub(super) struct WriterThread<W> {
    inbox: mpsc::UnboundedSender<Message<W>>,
}

impl<W> Clone for WriterThread<W> {
    fn clone(&self) -> Self {
        WriterThread {
            inbox: self.inbox.clone(),
        }
    }
}

impl<W> std::fmt::Debug for WriterThread<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterThread").finish_non_exhaustive()
    }
}

impl<W: Send + 'static> WriterThread<W> {
    /// Opens a connection to `path` (see [`open`]) and starts thread `name`,
    /// which runs `serve` until it returns: when the last sender is dropped
    /// (`None`), or with the close request it took. Then the thread closes
    /// the connection and answers that request.
    pub(super) fn start(
        name: &str,
        path: &Path,
        sync: &str,
        serve: impl FnOnce(
            &mut Connection,
            mpsc::UnboundedReceiver<Message<W>>,
        ) -> Option<oneshot::Sender<()>>
        + Send
        + 'static,
    ) -> Result<Self, StoreError> {
        let mut conn = open(path, sync)?;
        let (inbox, receiver) = mpsc::unbounded_channel();
        let thread = name.to_string();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let closing = serve(&mut conn, receiver);
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(error = %e, thread, "closing a writer thread's SQLite connection failed");
                }
                if let Some(done) = closing {
                    let _ = done.send(());
                }
            })
            .map_err(|e| {
                StoreError::Db(sqlx::Error::Configuration(
                    format!("cannot start the store's {name} thread: {e}").into(),
                ))
            })?;
        Ok(WriterThread { inbox })
    }

    /// Hands `work` to the thread; `Err(work)` back once it has ended.
    pub(super) fn send(&self, work: W) -> Result<(), W> {
        self.inbox.send(Message::Work(work)).map_err(|e| match e.0 {
            Message::Work(work) => work,
            Message::Close(_) => unreachable!("sent work"),
        })
    }

    /// Lets the thread finish the work sent before, then close its
    /// connection and end.
    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.inbox.send(Message::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}
