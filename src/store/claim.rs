//! Handing queued runs to workers: the atomic `queued → running` claim, the lease a
//! live worker renews, and progress updates.
//!
//! A claim takes the oldest queued run (by `queued_at`, then id) whose script has
//! fewer running runs than that run's `max_concurrent`, in one conditional `UPDATE …
//! RETURNING`, under the same write lock as every audited write (see `mod.rs`): on
//! SQLite `BEGIN IMMEDIATE`, on PostgreSQL the advisory lock, without which two
//! processes could both count "one slot free" and both start a run. PostgreSQL also
//! selects the row `FOR UPDATE SKIP LOCKED`, so a row another transaction holds is
//! passed over rather than waited for.

use serde_json::json;
use tracing::instrument;

use super::audit::AuditTx;
use super::model::Run;
use super::{Store, StoreError};
use crate::types::RunId;

/// `$1` = now, `$2` = worker, `$3` = lease_until.
pub(super) const CLAIM_SQLITE: &str = "UPDATE runs SET state = 'running', started_at = $1, worker = $2, \
     lease_until = $3 \
     WHERE id = (SELECT q.id FROM runs q WHERE q.state = 'queued' \
         AND (SELECT COUNT(*) FROM runs r WHERE r.script = q.script AND r.state = 'running') \
             < q.max_concurrent \
         ORDER BY q.queued_at, q.id LIMIT 1) \
     AND state = 'queued' RETURNING *";

const CLAIM_POSTGRES: &str = "UPDATE runs SET state = 'running', started_at = $1, worker = $2, \
     lease_until = $3 \
     WHERE id = (SELECT q.id FROM runs q WHERE q.state = 'queued' \
         AND (SELECT COUNT(*) FROM runs r WHERE r.script = q.script AND r.state = 'running') \
             < q.max_concurrent \
         ORDER BY q.queued_at, q.id LIMIT 1 FOR UPDATE OF q SKIP LOCKED) \
     AND state = 'queued' RETURNING *";

/// The claim itself, inside `write_tx!`.
pub(super) trait ClaimTx {
    async fn claim_in(
        &mut self,
        worker: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<Option<Run>, StoreError>;
}

macro_rules! impl_claim_tx {
    ($conn:ty, $sql:expr) => {
        impl ClaimTx for $conn {
            async fn claim_in(
                &mut self,
                worker: &str,
                lease_until: i64,
                now: i64,
            ) -> Result<Option<Run>, StoreError> {
                let run: Option<Run> = sqlx::query_as($sql)
                    .bind(now)
                    .bind(worker)
                    .bind(lease_until)
                    .fetch_optional(&mut *self)
                    .await?;
                if let Some(run) = &run {
                    let details = json!({ "worker": worker, "lease_until": lease_until });
                    self.append_audit(now, "system", "run.started", Some(run.id), &details)
                        .await?;
                }
                Ok(run)
            }
        }
    };
}

impl_claim_tx!(sqlx::SqliteConnection, CLAIM_SQLITE);
impl_claim_tx!(sqlx::PgConnection, CLAIM_POSTGRES);

impl Store {
    /// Moves the next runnable queued run to `running` for `worker`, with a lease
    /// until `now + lease_ms`, and audits `run.started`. `None` when nothing can run.
    /// No run is ever handed to two workers, across processes too.
    #[instrument(skip_all, fields(worker = %worker))]
    pub async fn claim_next(
        &self,
        worker: &str,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Run>, StoreError> {
        let lease_until = now + lease_ms;
        if let Some(writer) = self.background_writer() {
            let worker_id = worker.to_string();
            return writer
                .write(move |c| super::background::claim(c, &worker_id, lease_until, now))
                .await;
        }
        write_tx!(self, |c| c.claim_in(worker, lease_until, now).await)
    }

    /// Extends the lease of a run `worker` holds. `false` when it no longer holds it
    /// (the run finished, was interrupted, or belongs to another worker): stop it.
    pub async fn renew_lease(
        &self,
        id: RunId,
        worker: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        // Under the write lock, so a renewal never lands between lapse_leases'
        // read and its update.
        write_tx!(self, |c| {
            sqlx::query(
                "UPDATE runs SET lease_until = $3 \
                 WHERE id = $1 AND worker = $2 AND state = 'running'",
            )
            .bind(id.0)
            .bind(worker)
            .bind(until)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected() == 1)
        })
    }

    /// Records a `::progress` line of a running run (not audited: it is chatter).
    pub async fn set_progress(
        &self,
        id: RunId,
        pct: Option<i64>,
        text: &str,
    ) -> Result<(), StoreError> {
        let pct = pct.map(|p| p.clamp(0, 100));
        write_conn!(self, |c| {
            sqlx::query(
                "UPDATE runs SET progress_pct = $2, progress_text = $3 \
                 WHERE id = $1 AND state = 'running'",
            )
            .bind(id.0)
            .bind(pct)
            .bind(text)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }
}
