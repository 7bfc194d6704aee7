//! Approval decisions: one per approver and run, a deny rejects, enough distinct
//! approvals queue the run. Who may approve is policy's question, not the store's.

use serde_json::json;
use tracing::instrument;

use super::model::{Approval, DecisionInput, DecisionOutcome};
use super::ops::{Durability, Write};
use super::runs::{Edit, Note, fetch_for_update, move_run};
use super::sql::{Tx, args};
use super::{Store, StoreError};
use crate::types::{RunId, RunState};

/// What a decision's transaction did.
#[derive(Debug)]
pub enum Decided {
    Outcome(Box<DecisionOutcome>),
    /// The deadline had passed: the run was expired instead (and that is committed).
    ExpiredFirst,
}

pub(super) async fn decide(
    tx: &mut Tx<'_>,
    id: RunId,
    d: DecisionInput,
) -> Result<Decided, StoreError> {
    let run = fetch_for_update(tx, id).await?;
    let target = if d.approve {
        RunState::Queued
    } else {
        RunState::Rejected
    };
    if run.state != RunState::AwaitingApproval {
        return Err(StoreError::InvalidTransition {
            run: id,
            from: run.state,
            to: target,
        });
    }
    if let Some(deadline) = run.expires_at.filter(|at| *at <= d.now) {
        // Too late: the run expires now, and that is committed; the decision is refused.
        let note = Note::moved(
            "system",
            RunState::Expired,
            json!({ "expires_at": deadline }),
            d.now,
        );
        move_run(tx, run, RunState::Expired, note, Edit::none()).await?;
        return Ok(Decided::ExpiredFirst);
    }
    if let Some(step) = d.step_up {
        super::second_factor::consume(tx, d.approver.as_str(), step, d.now).await?;
    }
    let inserted = tx
        .execute(
            "INSERT INTO approvals (run_id, approver, approve, reason, at, digest) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, approver) DO NOTHING",
            args![
                id.0,
                d.approver.as_str(),
                d.approve,
                d.reason.clone(),
                d.now,
                d.digest.as_str()
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::AlreadyDecided {
            run: id,
            approver: d.approver,
        });
    }
    let action = if d.approve {
        "approval.approved"
    } else {
        "approval.denied"
    };
    let details = json!({
        "approver": d.approver,
        "reason": d.reason,
        "digest": d.digest,
        "digest_matches": d.digest == run.manifest_digest,
        "step_up": d.step_up.is_some(),
    });
    tx.audit(d.now, &d.actor, action, Some(id), details);

    if !d.approve {
        let details = json!({ "approver": d.approver, "reason": d.reason });
        let note = Note::moved(&d.actor, RunState::Rejected, details, d.now);
        let reason = d.reason.clone();
        let edit = Edit::new(move |r| {
            if reason.is_some() {
                r.reason = reason;
            }
        });
        let run = move_run(tx, run, RunState::Rejected, note, edit).await?;
        return Ok(Decided::Outcome(Box::new(DecisionOutcome::Rejected(run))));
    }
    let approvals = tx
        .fetch_one(
            "SELECT COUNT(*) FROM approvals WHERE run_id = $1 AND approve",
            args![id.0],
        )
        .await?
        .first::<i64>()?;
    if approvals < run.quorum.max(1) {
        let recorded = DecisionOutcome::Recorded { run, approvals };
        return Ok(Decided::Outcome(Box::new(recorded)));
    }
    let details = json!({ "approvals": approvals, "quorum": run.quorum });
    let note = Note::moved(&d.actor, RunState::Queued, details, d.now);
    let run = move_run(tx, run, RunState::Queued, note, Edit::none()).await?;
    Ok(Decided::Outcome(Box::new(DecisionOutcome::Approved(run))))
}

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
    #[instrument(skip_all, fields(run_id = %id, approver = %decision.approver, approve = decision.approve))]
    pub async fn decide(
        &self,
        id: RunId,
        decision: DecisionInput,
        d: Durability,
    ) -> Result<DecisionOutcome, StoreError> {
        let to = if decision.approve {
            RunState::Queued
        } else {
            RunState::Rejected
        };
        match self.write(Write::Decide { id, decision }, d).await? {
            Decided::Outcome(outcome) => Ok(*outcome),
            Decided::ExpiredFirst => Err(StoreError::InvalidTransition {
                run: id,
                from: RunState::Expired,
                to,
            }),
        }
    }

    /// The decisions recorded for a run, oldest first.
    pub async fn approvals(&self, id: RunId) -> Result<Vec<Approval>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT approver, approve, reason, at, digest FROM approvals \
                 WHERE run_id = $1 ORDER BY at, approver",
                args![id.0],
            )
            .await?;
        rows.iter().map(Approval::from_row).collect()
    }
}
