//! `approve`, `deny` and `cancel`. Every refusal is audited; every decision is
//! bound to the run's exact arguments (a run's arguments never change) and to the
//! digest of its manifest and script when it was requested.

use super::{Engine, Reply, ReplyKind};
use crate::policy;
use crate::store::{
    DecisionInput, DecisionOutcome, Durability, Edit, Note, Run, StoreError, Transition,
};
use crate::types::{Actor, RunId, RunState};
use serde_json::json;

impl Engine {
    /// Approve (`approve = true`) or deny a run waiting for approval.
    #[tracing::instrument(skip_all, fields(run_id = %id, approve))]
    pub async fn decide(
        &self,
        actor: &Actor,
        id: RunId,
        approve: bool,
        reason: Option<String>,
        proof: Option<super::step_up::Proof>,
    ) -> anyhow::Result<Reply> {
        let verb = if approve { "approve" } else { "deny" };
        let run = match self.store.get_run(id).await {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return Ok(Reply::error(format!("no run {id}"))),
            Err(e) => return Err(e.into()),
        };
        let refuse = |why: String| async move {
            let details = json!({ "decision": verb, "reason": why });
            self.store
                .audit(
                    &actor.audit_name(),
                    "approval.refused",
                    Some(id),
                    details,
                    self.now(),
                )
                .await?;
            anyhow::Ok(Reply {
                kind: ReplyKind::Error,
                text: format!("cannot {verb} run {id}: {why}"),
                run: None,
            })
        };
        if run.state != RunState::AwaitingApproval {
            return refuse(format!("it is {}, not awaiting approval", run.state)).await;
        }
        let Some(manifest) = self.governing(&run) else {
            return refuse(format!(
                "its script `{}` is no longer registered",
                run.script
            ))
            .await;
        };
        let requester = run.requester_person.clone();
        let approver = match policy::may_decide(&self.config, &manifest, actor, requester.as_ref())
        {
            Ok(p) => p,
            Err(why) => return refuse(why).await,
        };
        let digest = manifest.current_digest()?;
        if approve && digest != run.manifest_digest {
            // What was asked for is no longer what would run: end it, ask for a new request.
            let why = "its manifest or script changed since it was requested; request it again";
            let details = json!({ "reason": why, "requested_digest": run.manifest_digest, "current_digest": digest });
            let ended = self
                .store
                .transition(
                    Transition {
                        id,
                        to: RunState::Rejected,
                        note: Note::moved("system", RunState::Rejected, details, self.now()),
                        edit: Edit::new(move |r| r.reason = Some(why.into())),
                    },
                    Durability::Synced,
                )
                .await?;
            self.emit(&ended);
            return refuse(why.into()).await;
        }
        // Critical: the approver proves a second factor now (denying needs none).
        let step_up = if approve && manifest.risk.needs_step_up() {
            match self
                .prove_step_up(actor, &approver, id, proof.as_ref())
                .await?
            {
                Ok(step) => Some(step),
                Err(why) => return Ok(Reply::error(format!("cannot approve run {id}: {why}"))),
            }
        } else {
            None
        };
        let input = DecisionInput {
            approver: approver.clone(),
            actor: actor.audit_name(),
            approve,
            reason: reason.clone(),
            digest,
            step_up,
            now: self.now(),
        };
        let outcome = match self.store.decide(id, input, Durability::Synced).await {
            Ok(o) => o,
            Err(StoreError::AlreadyDecided { .. }) => {
                return refuse(format!("{approver} has already decided on it")).await;
            }
            Err(StoreError::InvalidTransition { from, .. }) => {
                return refuse(format!("it is {from}, not awaiting approval")).await;
            }
            // The code was used by a concurrent approval a moment ago.
            Err(StoreError::Conflict(why)) if step_up.is_some() => return refuse(why).await,
            Err(e) => return Err(e.into()),
        };
        let (text, run) = match outcome {
            DecisionOutcome::Recorded { run, approvals } => (
                format!(
                    "{approver} approved run {id}{}: {approvals} of {} approvals so far",
                    if step_up.is_some() {
                        " with a second factor"
                    } else {
                        ""
                    },
                    run.quorum
                ),
                run,
            ),
            DecisionOutcome::Approved(run) => {
                let how = if step_up.is_some() {
                    " with a second factor"
                } else {
                    ""
                };
                (
                    format!("{approver} approved run {id}{how}; it is queued"),
                    run,
                )
            }
            DecisionOutcome::Rejected(run) => (
                match &reason {
                    Some(r) => format!("{approver} denied run {id}: {r}"),
                    None => format!("{approver} denied run {id}"),
                },
                run,
            ),
        };
        self.emit(&run);
        Ok(Reply {
            kind: ReplyKind::Decided,
            text,
            run: Some(run),
        })
    }

    /// Cancels a run that has not finished: its requester or one of its approvers may.
    #[tracing::instrument(skip_all, fields(run_id = %id))]
    pub async fn cancel(&self, actor: &Actor, id: RunId) -> anyhow::Result<Reply> {
        let run = match self.store.get_run(id).await {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return Ok(Reply::error(format!("no run {id}"))),
            Err(e) => return Err(e.into()),
        };
        if !self.may_cancel(actor, &run) {
            let why = "only its requester or an approver of its script may cancel it";
            self.store
                .audit(
                    &actor.audit_name(),
                    "cancel.refused",
                    Some(id),
                    json!({ "reason": why }),
                    self.now(),
                )
                .await?;
            return Ok(Reply::error(format!("cannot cancel run {id}: {why}")));
        }
        match self
            .store
            .request_cancel(id, &actor.audit_name(), self.now(), Durability::Synced)
            .await
        {
            Ok(run) => {
                self.emit(&run);
                if run.state == RunState::Running {
                    self.cancel_local(id);
                    Ok(Reply {
                        kind: ReplyKind::Info,
                        text: format!("cancelling run {id}"),
                        run: Some(run),
                    })
                } else {
                    Ok(Reply {
                        kind: ReplyKind::Info,
                        text: format!("run {id} cancelled"),
                        run: Some(run),
                    })
                }
            }
            Err(StoreError::InvalidTransition { from, .. }) => Ok(Reply::error(format!(
                "run {id} is already {from}; nothing to cancel"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn may_cancel(&self, actor: &Actor, run: &Run) -> bool {
        let manifest = self.governing(run);
        policy::may_cancel(
            &self.config,
            manifest.as_ref(),
            actor,
            run.requester_person.as_ref(),
        )
    }

    /// Wakes this process's runner polls, so the runner holding the run hears
    /// of the cancel at once (polls through other servers look every 250 ms).
    fn cancel_local(&self, _id: RunId) {
        self.wake.notify_waiters();
    }
}
