//! The background writer: a thread with a `synchronous=NORMAL` rusqlite
//! connection (see `direct`) that writes the pool's claims and finishes, and
//! folds the WAL for the checkpointer, in background turns at the gate.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior, params};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::StoreError;
use super::audit::NewEntry;
use super::claim::CLAIM_SQLITE;
use super::direct::{Message, WriterThread, append, query_first};
use super::gate::WriterGate;
use super::model::{Run, RunPatch};
use super::runs::{FETCH_RUN, TRANSITION, changed_outside_the_lock, moved};
use crate::types::{RunId, RunState};

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

    /// Runs `work` on the thread in a background turn and answers what it
    /// returns. Once the store is closed, `PoolClosed` as from sqlx.
    async fn ask<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = answer.send(work(conn));
        });
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.thread.send(job).map_err(|_| closed())?;
        answered.await.map_err(|_| closed())?
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction on the thread, in a
    /// background turn: committed when it returns `Ok`, rolled back on `Err`.
    /// Once the store is closed, `PoolClosed` as from sqlx.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.ask(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = work(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Checkpoints the WAL in a background turn, when no writer of this
    /// process can add a frame meanwhile: every frame that no reader still
    /// needs goes into the database file, and the next write starts the WAL
    /// over from its beginning. (Outside a turn, a checkpoint under steady
    /// writes never catches up with the newest frame, and SQLite only starts
    /// the WAL over once one has.)
    pub(super) async fn checkpoint(&self) -> Result<Folded, StoreError> {
        self.ask(|conn| {
            let started = std::time::Instant::now();
            let folded = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok(Folded {
                    busy: r.get(0)?,
                    frames: r.get(1)?,
                    folded: r.get(2)?,
                    took: started.elapsed(),
                })
            })?;
            Ok(folded)
        })
        .await
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
    use crate::store::testing::{fresh_store, new_run};
    use crate::store::{ChainCheck, Store};

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
        let run = store.create_run(new_run("s", "p"), 10).await.unwrap();
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
