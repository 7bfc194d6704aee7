//! Break-glass (`docs/break-glass.md`): a run that needs approval starts at
//! once because someone in `[access] break_glass` gave a reason; its approvers
//! are told at once (the notifier posts it to their channel), it stays marked
//! until one of them reviews it, and one not reviewed within `[access]
//! review_within` is posted again.

use super::request::Assessment;
use super::{Engine, Reply, ReplyKind};
use crate::policy::{self, Access};
use crate::store::StoreError;
use crate::types::{Actor, RunId};
use serde_json::json;

/// What a break-glass request becomes.
pub(super) enum Glass {
    /// It needs approval and may skip it: the reason.
    Bypass(String),
    /// Policy refuses the run anyway: it is recorded as refused, as usual.
    Plain,
    /// It needs no approval: an ordinary request.
    NotNeeded,
    /// Not allowed, or no reason: the answer (audited as `break_glass.refused`).
    Refused(Box<Reply>),
}

impl Engine {
    /// Whether `actor` may start the run `a` assesses without its approval.
    pub(super) async fn break_glass(
        &self,
        actor: &Actor,
        script: &str,
        raw: &[(String, String)],
        a: &Assessment,
        reason: &str,
    ) -> anyhow::Result<Glass> {
        if let Access::Refused(_) = a.access {
            return Ok(Glass::Plain);
        }
        if a.approval.is_none() {
            return Ok(Glass::NotNeeded);
        }
        let reason = reason.trim();
        let why = if reason.is_empty() {
            Some(
                "a break-glass run needs a reason: `run! SCRIPT … reason=\"what is on fire\"`"
                    .to_string(),
            )
        } else {
            policy::may_break_glass(&self.config, actor).err()
        };
        let Some(why) = why else {
            return Ok(Glass::Bypass(reason.to_string()));
        };
        let args: serde_json::Map<String, serde_json::Value> =
            raw.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let details = json!({ "script": script, "args": args, "reason": reason, "why": why });
        self.store
            .audit(
                &actor.audit_name(),
                "break_glass.refused",
                None,
                details,
                self.now(),
            )
            .await?;
        Ok(Glass::Refused(Box::new(Reply::error(format!(
            "cannot break glass: {why}"
        )))))
    }

    /// `review ID [note]`: an approver of the run (never its requester) says a
    /// break-glass run was looked at; its mark goes away everywhere.
    #[tracing::instrument(skip_all, fields(run_id = %id))]
    pub async fn review(
        &self,
        actor: &Actor,
        id: RunId,
        note: Option<String>,
    ) -> anyhow::Result<Reply> {
        let run = match self.store.get_run(id).await {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return Ok(Reply::error(format!("no run {id}"))),
            Err(e) => return Err(e.into()),
        };
        let refuse = |why: String| async move {
            let details = json!({ "reason": why });
            self.store
                .audit(
                    &actor.audit_name(),
                    "review.refused",
                    Some(id),
                    details,
                    self.now(),
                )
                .await?;
            anyhow::Ok(Reply::error(format!("cannot review run {id}: {why}")))
        };
        let reviewer = match self.governing(&run) {
            None => {
                return refuse(format!(
                    "its script `{}` is no longer registered",
                    run.script
                ))
                .await;
            }
            Some(m) => {
                match policy::may_decide(&self.config, &m, actor, run.requester_person.as_ref()) {
                    Ok(p) => p,
                    Err(why) => return refuse(why).await,
                }
            }
        };
        let reviewed = match self
            .store
            .review_break_glass(id, reviewer.as_str(), note.clone(), self.now())
            .await
        {
            Ok(r) => r,
            Err(StoreError::Conflict(why)) => return refuse(why).await,
            Err(e) => return Err(e.into()),
        };
        self.emit(&reviewed);
        Ok(Reply {
            kind: ReplyKind::Decided,
            text: match note {
                Some(n) => format!("{reviewer} reviewed break-glass run {id}: {n}"),
                None => format!("{reviewer} reviewed break-glass run {id}"),
            },
            run: Some(reviewed),
        })
    }

    /// Break-glass runs nobody reviewed within `[access] review_within`: marked
    /// as reminded and announced, so the notifier posts each again. Answers how
    /// many (the housekeeping loop calls this).
    pub async fn remind_unreviewed(&self) -> anyhow::Result<usize> {
        let now = self.now();
        let due = now - self.config.access.review_within.as_millis() as i64;
        let runs = self.store.remind_unreviewed(due, now).await?;
        for run in &runs {
            tracing::warn!(run_id = %run.id, script = %run.script, "a break-glass run is still not reviewed");
            self.emit(run);
        }
        Ok(runs.len())
    }
}
