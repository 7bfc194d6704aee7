//! Handing queued runs to workers: the claim (a transition `queued → running`
//! like any other), the lease a live worker renews, and progress updates.
//!
//! A claim takes the oldest queued run (by `queued_at`, then id) whose script has
//! fewer running runs than that run's `max_concurrent`. On SQLite the one writer
//! makes the count and the move atomic. On PostgreSQL candidates are locked
//! `FOR UPDATE SKIP LOCKED` (a run another instance is claiming is passed over,
//! not waited for), and the count for one script is taken under a lock of that
//! script alone (`pg_advisory_xact_lock`), so instances claiming different
//! scripts never wait for each other and two never both take the last slot.

use serde_json::json;

use super::audit_backing;
use super::ops::{Durability, Write};
use super::runners::RunnerIdentity;
use super::runs::{Edit, Note, move_run};
use super::sql::{Backend, Tx, args};
use super::{Run, Store, StoreError};
use crate::types::{RunId, RunState};

/// How many queued runs a claim looks at in one go.
const CANDIDATES: i64 = 32;

/// Claim up to `max` runs `runner` may take, each leased until `now + lease_ms`.
#[derive(Debug, Clone)]
pub struct Claim {
    pub runner: RunnerIdentity,
    pub max: usize,
    pub lease_ms: i64,
    pub now: i64,
}

/// Runs the claiming runner may take: no `runs_on` tags for a local runner,
/// otherwise every tag among its own (`$2`, JSON). Filtered in SQL so a claim
/// neither scans past nor (on PostgreSQL) locks runs meant for other runners.
const CANDIDATES_SQLITE: &str = "SELECT * FROM runs q WHERE q.state = 'queued' \
     AND (SELECT COUNT(*) FROM runs r WHERE r.script = q.script AND r.state = 'running') \
         < q.max_concurrent \
     AND CASE WHEN q.runs_on = '[]' THEN $3 \
         ELSE NOT EXISTS (SELECT 1 FROM json_each(q.runs_on) t \
              WHERE t.value NOT IN (SELECT value FROM json_each($2))) END \
     ORDER BY q.queued_at, q.id LIMIT $1";

const CANDIDATES_POSTGRES: &str = "SELECT * FROM runs WHERE state = 'queued' \
     AND CASE WHEN runs_on = '[]' THEN $3 ELSE runs_on::jsonb <@ $2::jsonb END \
     ORDER BY queued_at, id LIMIT $1 FOR UPDATE SKIP LOCKED";

/// How many runs one claim may refuse to start (approvals not backed by the
/// audit log) before it answers that nothing can run.
const REFUSALS: usize = 8;

/// Up to `c.max` runs `c.runner` may take become `running` for it, oldest
/// first, in one transaction; a run whose approvals are not backed by the
/// audit chain (`audit_backing.rs`) becomes `failed` instead, and the claim
/// looks again.
pub(super) async fn claim(tx: &mut Tx<'_>, c: Claim) -> Result<Vec<Run>, StoreError> {
    let mut taken = Vec::new();
    let mut refused = 0;
    while taken.len() < c.max && refused < REFUSALS {
        let Some(run) = next(tx, &c).await? else {
            break;
        };
        match audit_backing::check(tx, &run).await? {
            None => taken.push(take(tx, run, &c).await?),
            Some(why) => {
                refused += 1;
                audit_backing::refuse(tx, run, why, c.now).await?;
            }
        }
    }
    Ok(taken)
}

/// The next queued run `c.runner` may take, as read (on PostgreSQL locked).
async fn next(tx: &mut Tx<'_>, c: &Claim) -> Result<Option<Run>, StoreError> {
    let run = match tx.backend() {
        Backend::Sqlite => {
            let tags = serde_json::to_string(&c.runner.tags).unwrap_or_default();
            let rows = tx
                .fetch_all(CANDIDATES_SQLITE, args![1i64, tags, c.runner.local])
                .await?;
            match rows.first() {
                Some(row) => Run::from_row(row)?,
                None => return Ok(None),
            }
        }
        Backend::Postgres => match next_postgres(tx, &c.runner).await? {
            Some(run) => run,
            None => return Ok(None),
        },
    };
    Ok(Some(run))
}

/// `run` (as read) becomes `running` for the claiming worker: the one
/// transition, so a run that is not `queued` is refused like any other move.
async fn take(tx: &mut Tx<'_>, run: Run, c: &Claim) -> Result<Run, StoreError> {
    let lease_until = c.now + c.lease_ms;
    let details = json!({ "worker": c.runner.name, "lease_until": lease_until });
    let note = Note {
        actor: "system".into(),
        action: "run.started".into(),
        details,
        now: c.now,
    };
    let worker = c.runner.name.clone();
    let edit = Edit::new(move |r| {
        r.worker = Some(worker);
        r.lease_until = Some(lease_until);
    });
    move_run(tx, run, RunState::Running, note, edit).await
}

/// The oldest queued run that is not being claimed elsewhere and whose script
/// has a free slot, locked.
async fn next_postgres(
    tx: &mut Tx<'_>,
    runner: &RunnerIdentity,
) -> Result<Option<Run>, StoreError> {
    let tags = serde_json::to_string(&runner.tags).unwrap_or_default();
    let rows = tx
        .fetch_all(CANDIDATES_POSTGRES, args![CANDIDATES, tags, runner.local])
        .await?;
    let mut full: Vec<String> = Vec::new();
    for row in &rows {
        let run = Run::from_row(row)?;
        if full.contains(&run.script) {
            continue;
        }
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7370001))",
            args![format!("execgov.claim:{}", run.script)],
        )
        .await?;
        let running = tx
            .fetch_one(
                "SELECT COUNT(*) FROM runs WHERE script = $1 AND state = 'running'",
                args![run.script.as_str()],
            )
            .await?
            .first::<i64>()?;
        if running < run.max_concurrent {
            return Ok(Some(run));
        }
        full.push(run.script);
    }
    Ok(None)
}

pub(super) async fn renew_lease(
    tx: &mut Tx<'_>,
    id: RunId,
    worker: &str,
    until: i64,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE runs SET lease_until = $3 WHERE id = $1 AND worker = $2 AND state = 'running'",
            args![id.0, worker, until],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn set_progress(
    tx: &mut Tx<'_>,
    id: RunId,
    pct: Option<i64>,
    text: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE runs SET progress_pct = $2, progress_text = $3 WHERE id = $1 AND state = 'running'",
        args![id.0, pct.map(|p| p.clamp(0, 100)), text],
    )
    .await?;
    Ok(())
}

impl Store {
    /// Moves the next queued run `runner` may take to `running` for it, with a lease
    /// until `now + lease_ms`, and audits `run.started`. `None` when nothing can run.
    /// No run is ever handed to two workers, across processes too.
    pub async fn claim_next(
        &self,
        runner: &RunnerIdentity,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Run>, StoreError> {
        Ok(self.claim_runs(runner, 1, lease_ms, now).await?.pop())
    }

    /// [`claim_next`](Self::claim_next) for up to `max` runs at once (one
    /// transaction), oldest first; empty when nothing can run.
    pub async fn claim_runs(
        &self,
        runner: &RunnerIdentity,
        max: usize,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<Run>, StoreError> {
        let claim = Claim {
            runner: runner.clone(),
            max,
            lease_ms,
            now,
        };
        self.write(Write::Claim(claim), Durability::Relaxed).await
    }

    /// Extends the lease of a run `worker` holds. `false` when it no longer holds it
    /// (the run finished, was interrupted, or belongs to another worker): stop it.
    pub async fn renew_lease(
        &self,
        id: RunId,
        worker: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let worker = worker.to_string();
        self.write(Write::RenewLease { id, worker, until }, Durability::Relaxed)
            .await
    }

    /// Records a `::progress` line of a running run (not audited: it is chatter).
    pub async fn set_progress(
        &self,
        id: RunId,
        pct: Option<i64>,
        text: &str,
    ) -> Result<(), StoreError> {
        let text = text.to_string();
        self.write(Write::SetProgress { id, pct, text }, Durability::Relaxed)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;
    use crate::store::sql::TxConn;
    use crate::store::testing::{fresh_store, new_run};
    use futures_util::FutureExt;

    /// A claim is the same transition as any other move: handed a run that is
    /// not `queued` (here: already running, as a second worker would see it
    /// without the guard of the claim's query), it is refused and writes nothing.
    #[tokio::test]
    async fn a_claim_of_a_run_that_is_not_queued_is_refused_by_the_transition_check() {
        let (store, guard) = fresh_store("sqlite").await;
        store
            .create_run(new_run("s", "p"), Durability::Synced)
            .await
            .unwrap();
        let running = store
            .claim_next(&crate::store::testing::local_runner("w1"), 1_000, 2_000)
            .await
            .unwrap()
            .unwrap();
        let path = guard.url().trim_start_matches("sqlite://").to_string();
        let mut conn = rusqlite::Connection::open(path).unwrap();
        let mut tx = Tx::new(TxConn::Sqlite(&mut conn));
        let claim = Claim {
            runner: crate::store::testing::local_runner("w2"),
            max: 1,
            lease_ms: 1_000,
            now: 3_000,
        };
        let second = take(&mut tx, running.clone(), &claim)
            .now_or_never()
            .expect("SQLite never waits");
        assert!(
            matches!(
                second,
                Err(StoreError::InvalidTransition {
                    from: RunState::Running,
                    to: RunState::Running,
                    ..
                })
            ),
            "refused: {second:?}"
        );
        assert!(tx.audit.is_empty(), "no audit entry queued");
        drop(tx);
        let stored = store.get_run(running.id).await.unwrap();
        assert_eq!(
            stored.worker.as_deref(),
            Some("w1"),
            "still the first worker's"
        );
    }
}
