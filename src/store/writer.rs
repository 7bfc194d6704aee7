//! SQLite's one write path: a thread that owns the only writing connection.
//!
//! Every write operation ([`Write`]) is sent here with its durability. The
//! thread takes what has arrived, synced work first, and commits it in one
//! transaction: each operation in a savepoint of its own (one that fails is
//! rolled back alone and answered with its error; the others commit), one
//! `COMMIT`, then the answers. A batch holding anything synced commits with
//! `synchronous=FULL` (the WAL is on disk before anyone is answered); a batch
//! of bookkeeping only with `NORMAL`. So requests that arrive together share
//! one fsync, and nobody waits for more than the batch in progress.
//!
//! A whole transaction runs on this thread (rusqlite), so a write costs one
//! hand-over each way, not one per statement.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use futures_util::FutureExt;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;
use super::answer::Answer;
use super::audit_key::AuditKey;
use super::ops::{Durability, Write, apply};
use super::sql::{Tx, TxConn};

/// The most synced operations one transaction takes.
const MAX_SYNCED: usize = 64;
/// The most operations of any kind one transaction takes. Bookkeeping fills a
/// batch up to this after the synced work, so a request that arrives meanwhile
/// waits for at most this many small writes.
const MAX_BATCH: usize = 96;

/// One write and where its answer goes.
struct Job {
    write: Write,
    durability: Durability,
    /// The audit key its entries are hashed with.
    key: Option<Arc<AuditKey>>,
    answer: oneshot::Sender<Result<Answer, StoreError>>,
}

/// Work for the thread besides writes.
enum Chore {
    /// Run a read on the writer's connection (an in-memory database).
    Read(Box<dyn FnOnce(&Connection) + Send>),
    /// A PASSIVE checkpoint between transactions, so the next commit can
    /// start the WAL over (see `checkpoint.rs`).
    Checkpoint(oneshot::Sender<Result<Folded, StoreError>>),
}

/// What a checkpoint between transactions did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Folded {
    /// A reader still needed some frames, which stay in the WAL.
    pub busy: bool,
    pub frames: i64,
    pub folded: i64,
    pub took: std::time::Duration,
}

#[derive(Default)]
struct Inbox {
    synced: VecDeque<Job>,
    relaxed: VecDeque<Job>,
    chores: VecDeque<Chore>,
    /// Set by `close`: finish what is queued, then stop and answer this.
    closing: Option<oneshot::Sender<()>>,
    closed: bool,
}

struct Shared {
    inbox: Mutex<Inbox>,
    ready: Condvar,
}

/// The sending side of the writer thread. Cheap to clone.
#[derive(Clone)]
pub(super) struct Writer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the thread, which owns `conn` from now on.
    pub(super) fn start(conn: Connection) -> Result<Writer, StoreError> {
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            ready: Condvar::new(),
        });
        let thread = shared.clone();
        std::thread::Builder::new()
            .name("execgov-writer".into())
            .spawn(move || write_until_closed(conn, &thread))
            .map_err(|e| {
                StoreError::Config(format!("cannot start the store's writer thread: {e}"))
            })?;
        Ok(Writer { shared })
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        // Nothing panics while holding the lock; recover rather than spread one.
        self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits `write` with `durability` and answers what it did.
    pub(super) async fn write(
        &self,
        write: Write,
        durability: Durability,
        key: Option<Arc<AuditKey>>,
    ) -> Result<Answer, StoreError> {
        let (answer, answered) = oneshot::channel();
        {
            let mut inbox = self.inbox();
            if inbox.closed || inbox.closing.is_some() {
                return Err(StoreError::Closed);
            }
            let job = Job {
                write,
                durability,
                key,
                answer,
            };
            match durability {
                Durability::Synced => inbox.synced.push_back(job),
                Durability::Relaxed => inbox.relaxed.push_back(job),
            }
        }
        self.shared.ready.notify_one();
        // The thread answers every job it takes; no answer means it stopped
        // half-way, and the write may or may not be committed: say so.
        answered.await.unwrap_or_else(|_| {
            Err(StoreError::Corrupt(
                "the store's writer stopped before answering (is the service shutting down?); \
                 the change may or may not be recorded: check before asking again"
                    .into(),
            ))
        })
    }

    /// Runs `read` on the writer's connection, between transactions.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.chore(Chore::Read(Box::new(move |c| {
            let _ = answer.send(read(c));
        })))?;
        answered.await.map_err(|_| StoreError::Closed)?
    }

    /// A PASSIVE checkpoint between two transactions; blocks the calling thread.
    pub(super) fn checkpoint_blocking(&self) -> Result<Folded, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.chore(Chore::Checkpoint(answer))?;
        answered.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    fn chore(&self, chore: Chore) -> Result<(), StoreError> {
        {
            let mut inbox = self.inbox();
            if inbox.closed {
                return Err(StoreError::Closed);
            }
            inbox.chores.push_back(chore);
        }
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Lets the thread commit what was sent before, then close its connection.
    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        {
            let mut inbox = self.inbox();
            if inbox.closed || inbox.closing.is_some() {
                return;
            }
            inbox.closing = Some(done);
        }
        self.shared.ready.notify_one();
        let _ = closed.await;
    }
}

/// What the thread takes in one go.
enum Next {
    Work(Vec<Chore>, Vec<Job>),
    Close(oneshot::Sender<()>),
}

fn next(shared: &Shared) -> Next {
    let mut inbox = shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let chores: Vec<Chore> = inbox.chores.drain(..).collect();
        let mut jobs: Vec<Job> = Vec::new();
        while jobs.len() < MAX_SYNCED {
            match inbox.synced.pop_front() {
                Some(j) => jobs.push(j),
                None => break,
            }
        }
        while jobs.len() < MAX_BATCH {
            match inbox.relaxed.pop_front() {
                Some(j) => jobs.push(j),
                None => break,
            }
        }
        if !chores.is_empty() || !jobs.is_empty() {
            return Next::Work(chores, jobs);
        }
        if let Some(done) = inbox.closing.take() {
            inbox.closed = true;
            return Next::Close(done);
        }
        inbox = shared.ready.wait(inbox).unwrap_or_else(|e| e.into_inner());
    }
}

fn write_until_closed(mut conn: Connection, shared: &Shared) {
    let mut synced = false;
    let done = loop {
        match next(shared) {
            Next::Work(chores, jobs) => {
                for chore in chores {
                    match chore {
                        Chore::Read(read) => read(&conn),
                        Chore::Checkpoint(answer) => {
                            let _ = answer.send(checkpoint(&conn));
                        }
                    }
                }
                if !jobs.is_empty() {
                    commit_batch(&mut conn, jobs, &mut synced);
                }
            }
            Next::Close(done) => break done,
        }
    };
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite writer connection failed");
    }
    let _ = done.send(());
}

/// One transaction for `jobs`; then each job gets its answer.
fn commit_batch(conn: &mut Connection, jobs: Vec<Job>, synced: &mut bool) {
    let wants_sync = jobs.iter().any(|j| j.durability == Durability::Synced);
    if wants_sync != *synced {
        let mode = if wants_sync { "FULL" } else { "NORMAL" };
        if let Err(e) = conn.pragma_update(None, "synchronous", mode) {
            return fail_all(jobs, e.into());
        }
        *synced = wants_sync;
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        return fail_all(jobs, e.into());
    }
    let mut answered = Vec::with_capacity(jobs.len());
    for job in jobs {
        let result = one(conn, job.write, job.key);
        answered.push((job.answer, result));
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        let e = StoreError::from(e);
        for (answer, _) in answered {
            let _ = answer.send(Err(StoreError::Corrupt(format!("commit failed: {e}"))));
        }
        return;
    }
    for (answer, result) in answered {
        let _ = answer.send(result);
    }
}

/// One write in a savepoint of its own: kept, or rolled back alone.
fn one(
    conn: &mut Connection,
    write: Write,
    key: Option<Arc<AuditKey>>,
) -> Result<Answer, StoreError> {
    conn.execute_batch("SAVEPOINT op")?;
    let result = {
        let mut tx = Tx::new(TxConn::Sqlite(conn)).with_key(key);
        apply(&mut tx, write)
            .now_or_never()
            .unwrap_or_else(|| Err(StoreError::Corrupt("a SQLite write waited".into())))
    };
    let end = if result.is_ok() {
        "RELEASE op"
    } else {
        "ROLLBACK TO op; RELEASE op"
    };
    conn.execute_batch(end)?;
    result
}

fn fail_all(jobs: Vec<Job>, e: StoreError) {
    let why = e.to_string();
    for job in jobs {
        let _ = job.answer.send(Err(StoreError::Corrupt(format!(
            "the write could not start: {why}"
        ))));
    }
}

fn checkpoint(conn: &Connection) -> Result<Folded, StoreError> {
    let started = Instant::now();
    let (busy, frames, folded): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(Folded {
        busy: busy != 0,
        frames,
        folded,
        took: started.elapsed(),
    })
}
