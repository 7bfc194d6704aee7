//! Group commit for new runs on SQLite.
//!
//! Recording a request is what an ack waits for, and on SQLite every write
//! goes through one connection, one transaction at a time. So requests that
//! arrive while a transaction is under way are recorded together in the next
//! one: one `BEGIN`, one read of the audit chain's head, one `INSERT` for all
//! their audit entries and one synced `COMMIT`, instead of one of each per run.
//! Each run is still its own row with its own two entries; the chain is the
//! same as if they had been recorded one after another.
//!
//! One task per store does the recording, in [`super::foreground`] turns. A
//! batch that fails is retried one run per transaction, so each request gets
//! its own answer (a bad one cannot fail the others). Runs with a
//! `schedule_key` never come here: their unique key is how a schedule's fire
//! is deduplicated, and they are background work.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

use super::audit::{AuditTx, NewEntry};
use super::model::{NewRun, Run};
use super::runs::{RunsTx, first_entries};
use super::{Store, StoreError};

/// The most runs one transaction records.
const MAX_BATCH: usize = 64;

/// One request to record, and where its answer goes.
struct Ask {
    new: NewRun,
    now: i64,
    answer: oneshot::Sender<Result<Run, StoreError>>,
}

/// Hands requests to the store's recording task.
#[derive(Clone, Debug)]
pub(super) struct Recorder {
    asks: mpsc::UnboundedSender<Ask>,
    /// Transactions that recorded more than one run (tests read it; the task
    /// logs it when it ends).
    #[cfg_attr(not(test), allow(dead_code))]
    together: Arc<AtomicU64>,
}

impl Recorder {
    /// Starts the recording task on the current runtime. `store` must have no
    /// recorder of its own (the task would keep itself alive); the task ends
    /// when the last `Recorder` is dropped.
    pub(super) fn start(store: Store) -> Recorder {
        debug_assert!(store.recorder.is_none());
        let (asks, inbox) = mpsc::unbounded_channel();
        let together = Arc::new(AtomicU64::new(0));
        tokio::spawn(super::foreground(record_until_closed(
            store,
            inbox,
            together.clone(),
        )));
        Recorder { asks, together }
    }

    /// Records `new` in the next group commit. `Err(new)` hands it back when the
    /// task is gone (its runtime shut down), for the caller to record itself.
    pub(super) async fn record(
        &self,
        new: NewRun,
        now: i64,
    ) -> Result<Result<Run, StoreError>, NewRun> {
        let (answer, answered) = oneshot::channel();
        if let Err(e) = self.asks.send(Ask { new, now, answer }) {
            return Err(e.0.new);
        }
        // The task answers every ask it takes; no answer means it stopped half-way,
        // and the run may or may not be recorded: say so rather than record twice.
        Ok(answered.await.unwrap_or_else(|_| {
            Err(StoreError::Db(sqlx::Error::Protocol(
                "the store's run recorder stopped before answering (is the service shutting \
                 down?); the run may or may not be recorded: check the run list before asking again"
                    .into(),
            )))
        }))
    }
}

async fn record_until_closed(
    store: Store,
    mut inbox: mpsc::UnboundedReceiver<Ask>,
    together: Arc<AtomicU64>,
) {
    while let Some(first) = inbox.recv().await {
        let mut batch = vec![first];
        // Whatever queued while the last batch was being written.
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(ask) => batch.push(ask),
                Err(_) => break,
            }
        }
        if batch.len() == 1 {
            let Ask { new, now, answer } = batch.pop().expect("one ask");
            let _ = answer.send(store.create_run_now(new, now).await);
            continue;
        }
        match store.create_runs_together(&batch).await {
            Ok(runs) => {
                together.fetch_add(1, Ordering::Relaxed);
                for (ask, run) in batch.into_iter().zip(runs) {
                    let _ = ask.answer.send(Ok(run));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, runs = batch.len(), "recording runs together failed; recording them one by one");
                for Ask { new, now, answer } in batch {
                    let _ = answer.send(store.create_run_now(new, now).await);
                }
            }
        }
    }
}

impl Store {
    /// Records every ask of `batch` in one transaction, runs in order.
    async fn create_runs_together(&self, batch: &[Ask]) -> Result<Vec<Run>, StoreError> {
        let firsts: Vec<_> = batch.iter().map(|a| first_entries(&a.new)).collect();
        write_tx!(self, |c| {
            let mut runs = Vec::with_capacity(batch.len());
            for ask in batch {
                runs.push(c.insert_run(&ask.new, ask.now).await?);
            }
            let mut entries = Vec::with_capacity(2 * batch.len());
            for ((ask, run), (requested, (state_action, state_details))) in
                batch.iter().zip(&runs).zip(&firsts)
            {
                for (action, details) in [
                    ("run.requested", requested),
                    (state_action.as_str(), state_details),
                ] {
                    entries.push(NewEntry {
                        at: ask.now,
                        actor: &ask.new.requester,
                        action,
                        run: Some(run.id),
                        details,
                    });
                }
            }
            c.append_entries(&entries).await?;
            Ok::<_, StoreError>(runs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChainCheck;
    use crate::types::RunState;
    use futures_util::FutureExt;
    use serde_json::json;
    use std::future::Future;
    use std::pin::Pin;

    fn new_run(script: &str, who: &str) -> NewRun {
        NewRun {
            script: script.into(),
            args: json!({ "n": 1 }),
            requester: format!("person:{who}"),
            requester_person: Some(who.into()),
            place: json!({ "platform": "slack", "channel": "C1" }),
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

    type Asking<'a> = Pin<Box<dyn Future<Output = Result<Run, StoreError>> + 'a>>;

    /// Starts `n` requests and polls each once, so all are queued for the
    /// recording task before it runs (the test runtime has one thread).
    fn ask_all<'a>(store: &'a Store, scripts: &[&str]) -> Vec<Asking<'a>> {
        scripts
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
            .collect()
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
}
