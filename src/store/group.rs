//! Group commit for new runs on SQLite, on a thread of its own.
//!
//! Recording a request is what an ack waits for, and on SQLite every write
//! goes through one connection, one transaction at a time. So requests that
//! arrive while a transaction is under way are recorded together in the next
//! one: one `BEGIN`, one read of the audit chain's head, the runs' rows and
//! their audit entries, and one synced `COMMIT`, instead of one of each per
//! run. Each run is still its own row with its own two entries; the chain is
//! the same as if they had been recorded one after another.
//!
//! The recorder is a thread that owns a connection of its own (`rusqlite`,
//! `synchronous=FULL`), not a task on one of sqlx's connections: through sqlx
//! each statement is a round trip to the connection's worker thread, two
//! thread wake-ups, and a group commit is five statements. Here the whole
//! transaction runs on the thread, so an ack waits for one hand-over each way
//! plus the write itself. It writes in foreground turns of the store's
//! [`gate`](super::gate) like any other writer, so it never contends with
//! the store's other connections for SQLite's write lock. It runs the same
//! SQL as `runs.rs` (`INSERT_RUN`) and appends to the chain as `direct`
//! does; a test compares what it returns with the row sqlx reads back.
//!
//! A batch that fails is retried one run per transaction, so each request gets
//! its own answer (a bad one cannot fail the others). Runs with a
//! `schedule_key` never come here: their unique key is how a schedule's fire
//! is deduplicated, and they are background work.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::audit::NewEntry;
use super::direct::{Message, WriterThread, append, query_first};
use super::gate::WriterGate;
use super::model::{NewRun, Run};
use super::runs::{INSERT_RUN, as_inserted, first_entries, first_stamps};
use super::{StoreError, json_text};
use crate::types::RunId;

/// The most runs one transaction records.
const MAX_BATCH: usize = 64;

/// One request to record, and where its answer goes.
struct Ask {
    new: NewRun,
    now: i64,
    answer: oneshot::Sender<Result<Run, StoreError>>,
}

/// Hands requests to the store's recording thread.
#[derive(Clone, Debug)]
pub(super) struct Recorder {
    thread: WriterThread<Ask>,
    /// Transactions that recorded more than one run (tests read it).
    #[cfg_attr(not(test), allow(dead_code))]
    together: Arc<AtomicU64>,
}

impl Recorder {
    /// Opens a connection to the database file at `path` and starts the
    /// recording thread, which takes its turns at `gate`. The thread ends when
    /// the last `Recorder` is dropped or [`Recorder::close`] is called.
    pub(super) fn start(path: &Path, gate: Arc<WriterGate>) -> Result<Recorder, StoreError> {
        let together = Arc::new(AtomicU64::new(0));
        let counter = together.clone();
        let thread = WriterThread::start("execgov-recorder", path, "FULL", move |conn, inbox| {
            record_until_closed(conn, &gate, inbox, &counter)
        })?;
        Ok(Recorder { thread, together })
    }

    /// Records `new` in the next group commit. `Err(new)` hands it back when the
    /// thread is gone (the store closed), for the caller to record itself.
    pub(super) async fn record(
        &self,
        new: NewRun,
        now: i64,
    ) -> Result<Result<Run, StoreError>, NewRun> {
        let (answer, answered) = oneshot::channel();
        if let Err(ask) = self.thread.send(Ask { new, now, answer }) {
            return Err(ask.new);
        }
        // The thread answers every ask it takes; no answer means it stopped half-way,
        // and the run may or may not be recorded: say so rather than record twice.
        Ok(answered.await.unwrap_or_else(|_| {
            Err(StoreError::Db(sqlx::Error::Protocol(
                "the store's run recorder stopped before answering (is the service shutting \
                 down?); the run may or may not be recorded: check the run list before asking again"
                    .into(),
            )))
        }))
    }

    /// Records what was asked before, then closes the connection and ends the thread.
    pub(super) async fn close(&self) {
        self.thread.close().await;
    }
}

/// Records batches until the last sender is gone or a close request comes,
/// which it returns.
fn record_until_closed(
    conn: &mut Connection,
    gate: &WriterGate,
    mut inbox: mpsc::UnboundedReceiver<Message<Ask>>,
    together: &AtomicU64,
) -> Option<oneshot::Sender<()>> {
    let mut closing = None;
    while closing.is_none() {
        let first = match inbox.blocking_recv() {
            Some(Message::Work(ask)) => ask,
            Some(Message::Close(done)) => {
                closing = Some(done);
                break;
            }
            None => break,
        };
        let mut batch = vec![first];
        let turn = gate.turn_blocking(true);
        // Whatever queued while the last batch was being written, or while
        // this one waited for its turn.
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(Message::Work(ask)) => batch.push(ask),
                Ok(Message::Close(done)) => {
                    closing = Some(done);
                    break;
                }
                Err(_) => break,
            }
        }
        let answers = record_batch(conn, &batch, together);
        drop(turn);
        for (Ask { new, now, answer }, id) in batch.into_iter().zip(answers) {
            let _ = answer.send(id.map(|id| as_inserted(new, id, now)));
        }
    }
    closing
}

/// Records `batch` in one transaction, or when that fails, each ask in one
/// of its own. The new runs' ids, in order.
fn record_batch(
    conn: &mut Connection,
    batch: &[Ask],
    together: &AtomicU64,
) -> Vec<Result<RunId, StoreError>> {
    if batch.len() > 1 {
        match record_together(conn, batch) {
            Ok(ids) => {
                together.fetch_add(1, Ordering::Relaxed);
                return ids.into_iter().map(Ok).collect();
            }
            Err(e) => {
                tracing::warn!(error = %e, runs = batch.len(), "recording runs together failed; recording them one by one");
            }
        }
    }
    batch
        .iter()
        .map(|ask| {
            let ids = record_together(conn, std::slice::from_ref(ask))?;
            Ok(ids[0])
        })
        .collect()
}

/// One transaction: each run's row, then every run's two audit entries.
fn record_together(conn: &mut Connection, asks: &[Ask]) -> rusqlite::Result<Vec<RunId>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ids = Vec::with_capacity(asks.len());
    for Ask { new, now, .. } in asks {
        let (queued_at, finished_at) = first_stamps(new, *now);
        let id: i64 = query_first(
            &tx,
            INSERT_RUN,
            params![
                new.script,
                json_text(&new.args),
                new.requester,
                new.requester_person,
                json_text(&new.place),
                new.state.as_str(),
                new.reason,
                new.manifest_digest,
                new.max_concurrent,
                new.timeout_ms,
                new.risk,
                new.quorum,
                json_text(&new.approvers),
                new.expires_at,
                new.schedule_key,
                now,
                queued_at,
                finished_at,
            ],
            |row| row.get("id"),
        )?
        .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        ids.push(RunId(id));
    }
    let firsts: Vec<_> = asks.iter().map(|a| first_entries(&a.new)).collect();
    let mut entries = Vec::with_capacity(2 * asks.len());
    for ((ask, id), (requested, (state_action, state_details))) in
        asks.iter().zip(&ids).zip(&firsts)
    {
        for (action, details) in [
            ("run.requested", requested),
            (state_action.as_str(), state_details),
        ] {
            entries.push(NewEntry {
                at: ask.now,
                actor: &ask.new.requester,
                action,
                run: Some(*id),
                details,
            });
        }
    }
    append(&tx, &entries)?;
    tx.commit()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChainCheck;
    use crate::store::Store;
    use crate::store::testing::new_run;
    use crate::types::RunState;
    use futures_util::FutureExt;
    use serde_json::json;
    use std::future::Future;
    use std::pin::Pin;

    type Asking<'a> = Pin<Box<dyn Future<Output = Result<Run, StoreError>> + 'a>>;

    /// Starts `n` requests and polls each once, so all are queued for the
    /// recording thread, while holding the writer: the thread takes the first
    /// and waits for its turn, and once the turn comes it finds the others
    /// queued. So all are in one batch, whatever the timing.
    fn ask_all<'a>(store: &'a Store, scripts: &[&str]) -> Vec<Asking<'a>> {
        let held = store
            .gate
            .turn()
            .now_or_never()
            .expect("the writer is free");
        let asks = scripts
            .iter()
            .enumerate()
            .map(|(i, script)| {
                let mut f: Asking<'a> =
                    Box::pin(store.create_run(new_run(script, &format!("p{i}")), 1000 + i as i64));
                assert!(
                    (&mut f).now_or_never().is_none(),
                    "queued, not yet recorded"
                );
                f
            })
            .collect();
        drop(held);
        asks
    }

    fn together(store: &Store) -> u64 {
        store
            .recorder
            .as_ref()
            .unwrap()
            .together
            .load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn runs_asked_together_are_recorded_in_one_commit_each_with_its_own_entries() {
        let (store, _guard) = crate::store::testing::fresh_store("sqlite").await;
        let scripts = ["a", "b", "c", "d", "e"];
        let runs: Vec<Run> = futures_util::future::join_all(ask_all(&store, &scripts))
            .await
            .into_iter()
            .map(|r| r.expect("recorded"))
            .collect();
        assert_eq!(together(&store), 1, "one transaction for all five");
        for (i, run) in runs.iter().enumerate() {
            assert_eq!(run.script, scripts[i], "in the order asked");
            assert_eq!(run.created_at, 1000 + i as i64);
            let entries = store.audit_entries(Some(run.id), 0, 100).await.unwrap();
            let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
            assert_eq!(actions, ["run.requested", "run.queued"], "run {}", run.id);
            assert!(entries.iter().all(|e| e.actor == format!("person:p{i}")));
        }
        assert!(runs.windows(2).all(|w| w[0].id.0 < w[1].id.0));
        assert!(matches!(
            store.verify_chain().await.unwrap(),
            ChainCheck::Ok { entries: 10 }
        ));
    }

    #[tokio::test]
    async fn one_bad_run_in_a_group_fails_alone() {
        let (store, _guard) = crate::store::testing::fresh_store("sqlite").await;
        store
            .exec_raw(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON runs WHEN NEW.script = 'boom' \
                 BEGIN SELECT RAISE(ABORT, 'boom refused'); END",
            )
            .await
            .unwrap();
        let results = futures_util::future::join_all(ask_all(&store, &["a", "boom", "c"])).await;
        assert_eq!(together(&store), 0, "the group did not commit");
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("boom refused"), "{err}");
        assert!(matches!(
            store.verify_chain().await.unwrap(),
            ChainCheck::Ok { entries: 4 }
        ));
    }
    /// What the recorder answers is exactly the row sqlx reads back, for
    /// each first state and with every column of `NewRun` set.
    #[tokio::test]
    async fn the_run_it_answers_is_the_row_as_stored() {
        let (store, _guard) = crate::store::testing::fresh_store("sqlite").await;
        let full = |state, reason: Option<&str>| NewRun {
            script: "report-export".into(),
            args: json!({ "month": "2026-10", "n": 3, "f": 1.5, "on": true }),
            requester: "slack:T1/U1".into(),
            requester_person: Some("alice".into()),
            place: json!({ "platform": "slack", "channel": "C1", "thread": "1.2" }),
            manifest_digest: "sha256:abc".into(),
            max_concurrent: 3,
            timeout_ms: 45_000,
            risk: "high".into(),
            state,
            reason: reason.map(Into::into),
            quorum: 2,
            approvers: json!({ "people": ["bob", "carol"] }),
            expires_at: Some(99_000),
            schedule_key: None,
        };
        for (i, new) in [
            full(RunState::Queued, None),
            full(RunState::Refused, Some("not in the ops group")),
            full(RunState::AwaitingApproval, None),
        ]
        .into_iter()
        .enumerate()
        {
            let answered = store.create_run(new, 5_000 + i as i64).await.unwrap();
            let stored = store.get_run(answered.id).await.unwrap();
            assert_eq!(
                serde_json::to_value(&answered).unwrap(),
                serde_json::to_value(&stored).unwrap(),
                "{:?}",
                answered.state
            );
        }
    }

    #[tokio::test]
    async fn its_connection_syncs_every_commit() {
        let (_store, guard) = crate::store::testing::fresh_store("sqlite").await;
        let conn = super::super::direct::open(
            Path::new(guard.url().trim_start_matches("sqlite://")),
            "FULL",
        )
        .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
    }

    #[tokio::test]
    async fn after_close_a_request_is_refused_not_lost() {
        let (store, _guard) = crate::store::testing::fresh_store("sqlite").await;
        store.create_run(new_run("a", "p"), 1).await.unwrap();
        store.close().await;
        let err = store.create_run(new_run("b", "p"), 2).await.unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }
}
