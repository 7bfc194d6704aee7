//! Approval decisions: one per approver and run, a deny rejects, enough distinct
//! approvals queue the run. Who may approve is policy's question, not the store's.

use serde_json::json;
use tracing::instrument;

use super::audit::AuditTx;
use super::model::{Approval, DecisionInput, DecisionOutcome, Run, RunPatch};
use super::runs::{Audited, RunsTx};
use super::{Store, StoreError};
use crate::types::{RunId, RunState};

/// What the decision transaction did, before it commits.
pub(super) enum Step {
    Decided(DecisionOutcome),
    /// The deadline had passed: the run was expired instead (and that is committed).
    ExpiredFirst(Run),
}

pub(super) trait ApprovalsTx {
    async fn decide_in(&mut self, id: RunId, d: &DecisionInput) -> Result<Step, StoreError>;
}

macro_rules! impl_approvals_tx {
    ($conn:ty) => {
        impl ApprovalsTx for $conn {
            async fn decide_in(&mut self, id: RunId, d: &DecisionInput) -> Result<Step, StoreError> {
                let run = self.fetch_run(id).await?;
                let target = if d.approve { RunState::Queued } else { RunState::Rejected };
                if run.state != RunState::AwaitingApproval {
                    return Err(StoreError::InvalidTransition { run: id, from: run.state, to: target });
                }
                if let Some(deadline) = run.expires_at.filter(|at| *at <= d.now) {
                    let a = Audited {
                        actor: "system",
                        action: "run.expired",
                        details: json!({ "expires_at": deadline }),
                        patch: RunPatch::default(),
                        now: d.now,
                    };
                    let run = self.transition_in(id, RunState::Expired, a).await?;
                    return Ok(Step::ExpiredFirst(run));
                }
                let inserted = sqlx::query(
                    "INSERT INTO approvals (run_id, approver, approve, reason, at, digest) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, approver) DO NOTHING",
                )
                .bind(id.0)
                .bind(d.approver.as_str())
                .bind(d.approve)
                .bind(&d.reason)
                .bind(d.now)
                .bind(&d.digest)
                .execute(&mut *self)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Err(StoreError::AlreadyDecided { run: id, approver: d.approver.clone() });
                }
                let action = if d.approve { "approval.approved" } else { "approval.denied" };
                let details = json!({
                    "approver": d.approver,
                    "reason": d.reason,
                    "digest": d.digest,
                    "digest_matches": d.digest == run.manifest_digest,
                });
                self.append_audit(d.now, &d.actor, action, Some(id), &details).await?;

                if !d.approve {
                    let a = Audited {
                        actor: &d.actor,
                        action: "run.rejected",
                        details: json!({ "approver": d.approver, "reason": d.reason }),
                        patch: RunPatch { reason: d.reason.clone(), ..RunPatch::default() },
                        now: d.now,
                    };
                    let run = self.transition_in(id, RunState::Rejected, a).await?;
                    return Ok(Step::Decided(DecisionOutcome::Rejected(run)));
                }
                let (approvals,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM approvals WHERE run_id = $1 AND approve",
                )
                .bind(id.0)
                .fetch_one(&mut *self)
                .await?;
                if approvals < run.quorum.max(1) {
                    return Ok(Step::Decided(DecisionOutcome::Recorded { run, approvals }));
                }
                let a = Audited {
                    actor: &d.actor,
                    action: "run.queued",
                    details: json!({ "approvals": approvals, "quorum": run.quorum }),
                    patch: RunPatch::default(),
                    now: d.now,
                };
                let run = self.transition_in(id, RunState::Queued, a).await?;
                Ok(Step::Decided(DecisionOutcome::Approved(run)))
            }
        }
    };
}

impl_approvals_tx!(sqlx::SqliteConnection);
impl_approvals_tx!(sqlx::PgConnection);

impl Store {
    /// Records one approver's decision, in one transaction with its audit entry
    /// (`approval.approved` / `approval.denied`) and the transition it causes: a deny
    /// makes the run `rejected`; the approval that reaches the run's quorum of
    /// distinct approvers makes it `queued` (both audited as `run.<state>` too).
    ///
    /// Refuses a run not awaiting approval (`InvalidTransition` with its state), a
    /// second decision by the same approver (`AlreadyDecided`), and a decision after
    /// `expires_at`: the run is then expired and the answer is `InvalidTransition`
    /// from `expired`.
    #[instrument(skip_all, fields(run_id = %id, approver = %d.approver, approve = d.approve))]
    pub async fn decide(&self, id: RunId, d: DecisionInput) -> Result<DecisionOutcome, StoreError> {
        let step = write_tx!(self, |c| c.decide_in(id, &d).await)?;
        match step {
            Step::Decided(outcome) => Ok(outcome),
            Step::ExpiredFirst(run) => Err(StoreError::InvalidTransition {
                run: id,
                from: run.state,
                to: if d.approve {
                    RunState::Queued
                } else {
                    RunState::Rejected
                },
            }),
        }
    }

    /// The decisions recorded for a run, oldest first.
    pub async fn approvals(&self, id: RunId) -> Result<Vec<Approval>, StoreError> {
        read_conn!(self, |c| {
            let rows = sqlx::query_as(
                "SELECT approver, approve, reason, at, digest FROM approvals \
                 WHERE run_id = $1 ORDER BY at, approver",
            )
            .bind(id.0)
            .fetch_all(&mut *c)
            .await?;
            Ok(rows)
        })
    }
}
