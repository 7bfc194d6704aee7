//! SQLite writes on threads that own a `rusqlite` connection, for the two
//! kinds of transaction that every run makes many of: recording it (`group`)
//! and the pool's claims and finishes ([`BackgroundWriter`]).
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
use std::sync::Arc;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::audit::{HEAD_SQL, NewEntry, insert_sql, link};
use super::claim::CLAIM_SQLITE;
use super::gate::WriterGate;
use super::model::{Run, RunPatch};
use super::runs::{FETCH_RUN, TRANSITION, changed_outside_the_lock, moved};
use super::{SQLITE_BUSY_TIMEOUT, SQLITE_WAL_LIMIT_BYTES, StoreError};
use crate::types::{RunId, RunState};

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

/// What a checkpoint in a writer's turn did: SQLite's answer, and how long
/// the turn was held.
#[derive(Debug, Clone, Copy)]
pub(super) struct Folded {
    /// A reader still needed some frames, which stay in the WAL.
    pub busy: bool,
    /// Frames in the WAL.
    pub frames: i64,
    /// Frames now in the database file.
    pub folded: i64,
    pub took: std::time::Duration,
}

/// A transaction to run on the background writer's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A thread with a `synchronous=NORMAL` connection that runs background
/// transactions (claims, a run's finish) in background turns.
#[derive(Clone, Debug)]
pub(super) struct BackgroundWriter {
    thread: WriterThread<Job>,
}

impl BackgroundWriter {
    /// Opens the connection and starts the thread; it ends when the last
    /// `BackgroundWriter` is dropped or [`BackgroundWriter::close`] is called.
    pub(super) fn start(path: &Path, gate: Arc<WriterGate>) -> Result<Self, StoreError> {
        let thread = WriterThread::<Job>::start(
            "execgov-writer",
            path,
            "NORMAL",
            move |conn, mut inbox| {
                while let Some(message) = inbox.blocking_recv() {
                    match message {
                        Message::Work(job) => {
                            let turn = gate.turn_blocking(false);
                            job(conn);
                            drop(turn);
                        }
                        Message::Close(done) => return Some(done),
                    }
                }
                None
            },
        )?;
        Ok(BackgroundWriter { thread })
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction on the thread, in a
    /// background turn: committed when it returns `Ok`, rolled back on `Err`.
    /// Once the store is closed, `PoolClosed` as from sqlx.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let out = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::from)
                .and_then(|tx| {
                    let out = work(&tx)?;
                    tx.commit()?;
                    Ok(out)
                });
            let _ = answer.send(out);
        });
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.thread.send(job).map_err(|_| closed())?;
        answered.await.map_err(|_| closed())?
    }

    /// Checkpoints the WAL in a background turn, when no writer of this
    /// process can add a frame meanwhile: every frame that no reader still
    /// needs goes into the database file, and the next write starts the WAL
    /// over from its beginning. (Outside a turn, a checkpoint under steady
    /// writes never catches up with the newest frame, and SQLite only starts
    /// the WAL over once one has.)
    pub(super) async fn checkpoint(&self) -> Result<Folded, StoreError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let started = std::time::Instant::now();
            let out = conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok(Folded {
                        busy: r.get(0)?,
                        frames: r.get(1)?,
                        folded: r.get(2)?,
                        took: started.elapsed(),
                    })
                })
                .map_err(StoreError::from);
            let _ = answer.send(out);
        });
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.thread.send(job).map_err(|_| closed())?;
        answered.await.map_err(|_| closed())?
    }

    /// Runs the jobs sent before, then closes the connection and ends the thread.
    pub(super) async fn close(&self) {
        self.thread.close().await;
    }
}

/// `claim_in` on a rusqlite connection.
pub(super) fn claim(
    conn: &Connection,
    worker: &str,
    lease_until: i64,
    now: i64,
) -> Result<Option<Run>, StoreError> {
    let run = query_first(
        conn,
        CLAIM_SQLITE,
        params![now, worker, lease_until],
        Run::from_rusqlite,
    )?;
    if let Some(run) = &run {
        let details = json!({ "worker": worker, "lease_until": lease_until });
        append(
            conn,
            &[NewEntry {
                at: now,
                actor: "system",
                action: "run.started",
                run: Some(run.id),
                details: &details,
            }],
        )?;
    }
    Ok(run)
}

/// What a transition's audit entry says, owned (it crosses to the thread).
pub(super) struct OwnedAudit {
    pub actor: String,
    pub action: String,
    pub details: Value,
    pub patch: RunPatch,
    pub now: i64,
}

/// `transition_in` on a rusqlite connection.
pub(super) fn transition(
    conn: &Connection,
    id: RunId,
    to: RunState,
    a: OwnedAudit,
) -> Result<Run, StoreError> {
    let run = query_first(conn, FETCH_RUN, params![id.0], Run::from_rusqlite)?
        .ok_or(StoreError::NotFound(id))?;
    let from = run.state;
    let m = moved(run, to, a.patch, a.now)?;
    let updated = query_first(
        conn,
        TRANSITION,
        params![
            id.0,
            from.as_str(),
            to.as_str(),
            m.queued_at,
            m.started_at,
            m.finished_at,
            m.exit_code,
            m.error,
            m.log_path,
            m.log_bytes,
            m.log_dropped,
            m.output_tail,
            m.result,
            m.reason,
        ],
        Run::from_rusqlite,
    )?
    .ok_or_else(|| changed_outside_the_lock(id))?;
    append(
        conn,
        &[NewEntry {
            at: a.now,
            actor: &a.actor,
            action: &a.action,
            run: Some(id),
            details: &a.details,
        }],
    )?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ChainCheck, NewRun, Store, testing::fresh_store};

    fn new_run() -> NewRun {
        NewRun {
            script: "s".into(),
            args: json!({ "n": 1 }),
            requester: "person:p".into(),
            requester_person: Some("p".into()),
            place: json!({}),
            manifest_digest: "d".into(),
            max_concurrent: 1,
            timeout_ms: 1000,
            risk: "low".into(),
            state: RunState::Queued,
            reason: None,
            quorum: 0,
            approvers: json!({}),
            expires_at: None,
            schedule_key: None,
        }
    }

    async fn as_stored(store: &Store, run: &Run) -> (Value, Value) {
        let stored = store.get_run(run.id).await.unwrap();
        (
            serde_json::to_value(run).unwrap(),
            serde_json::to_value(stored).unwrap(),
        )
    }

    /// A claim and a finish written on the background thread answer the row
    /// as sqlx reads it back, and leave the chain whole.
    #[tokio::test]
    async fn claims_and_finishes_on_the_thread_answer_the_stored_row() {
        let (store, _guard) = fresh_store("sqlite").await;
        assert!(
            store.background_writer().is_some(),
            "background callers use it"
        );
        let run = store.create_run(new_run(), 10).await.unwrap();
        let claimed = store.claim_next("w1", 5_000, 20).await.unwrap().unwrap();
        assert_eq!((claimed.id, claimed.state), (run.id, RunState::Running));
        let (answered, stored) = as_stored(&store, &claimed).await;
        assert_eq!(answered, stored);
        let patch = RunPatch {
            exit_code: Some(0),
            output_tail: Some("done\n".into()),
            result: Some(json!({ "rows": 3 })),
            log_bytes: Some(5),
            ..Default::default()
        };
        let finished = store
            .transition(
                run.id,
                RunState::Succeeded,
                "system",
                "run.succeeded",
                json!({ "exit_code": 0 }),
                patch,
                30,
            )
            .await
            .unwrap();
        assert_eq!(finished.finished_at, Some(30));
        assert_eq!(finished.result, Some(json!({ "rows": 3 })));
        let (answered, stored) = as_stored(&store, &finished).await;
        assert_eq!(answered, stored);
        let again = store
            .transition(
                run.id,
                RunState::Failed,
                "system",
                "run.failed",
                json!({}),
                RunPatch::default(),
                40,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(again, StoreError::InvalidTransition { .. }),
            "{again}"
        );
        assert_eq!(
            store.verify_chain().await.unwrap(),
            ChainCheck::Ok { entries: 4 }
        );
    }

    /// The checkpoint sequence in the WAL's header (bytes 12..16, big-endian),
    /// which SQLite advances each time it starts the WAL over.
    fn wal_sequence(wal: &str) -> Option<u32> {
        use std::io::Read;
        let mut header = [0u8; 16];
        std::fs::File::open(wal)
            .and_then(|mut f| f.read_exact(&mut header))
            .ok()?;
        Some(u32::from_be_bytes(header[12..16].try_into().unwrap()))
    }

    /// Writers that never pause leave a checkpoint outside their turns
    /// behind the newest frame, and SQLite then never starts the WAL over:
    /// the file grew by 680 MB in 10 s at 500 runs/s. The checkpointer's
    /// step in a writer's turn lets it start over while they go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_steady_writes_the_wal_still_starts_over() {
        let (store, guard) = fresh_store("sqlite").await;
        let store = Arc::new(store);
        let wal = format!("{}-wal", guard.url().trim_start_matches("sqlite://"));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let open = NewRun {
                            max_concurrent: 1 << 20,
                            ..new_run()
                        };
                        store.create_run(open, n).await.unwrap();
                        let claimed = store.claim_next("w", 1_000, n).await.unwrap();
                        assert!(claimed.is_some(), "each writer claims a run");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let first = loop {
            if let Some(seq) = wal_sequence(&wal) {
                break seq;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let mut seen = first;
        while seen < first + 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            seen = wal_sequence(&wal).unwrap_or(seen);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut written = 0;
        for w in writers {
            written += w.await.unwrap();
        }
        assert!(
            seen >= first + 2,
            "the WAL started over {} times during {written} runs written without a pause",
            seen - first
        );
        assert_eq!(
            store.verify_chain().await.unwrap(),
            ChainCheck::Ok {
                // Two entries per recorded run (requested, queued), one per claim.
                entries: written as u64 * 3
            }
        );
    }

    #[tokio::test]
    async fn a_foreground_caller_does_not_use_the_thread() {
        let (store, _guard) = fresh_store("sqlite").await;
        let inside = crate::store::foreground(async { store.background_writer().is_none() }).await;
        assert!(inside, "foreground writes go through the synced writer");
    }

    #[tokio::test]
    async fn after_close_a_claim_is_refused() {
        let (store, _guard) = fresh_store("sqlite").await;
        store.close().await;
        let err = store.claim_next("w1", 5_000, 20).await.unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }
}
