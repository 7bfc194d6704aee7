//! Before a run starts: are its approvals backed by the audit chain?
//!
//! Write access to the database is enough to insert an approval row and move a
//! run to `queued`. It is not enough to append an entry that verifies under the
//! audit key. So when a store holds the key, a claim checks the run it is about
//! to start: the entry that queued it (`run.queued`) must be there and verify,
//! and when the run waited for approval (`run.awaiting_approval`), every
//! approval row must have its verifying `approval.approved` entry, and those must
//! reach the run's quorum. A run that fails the check does not start: it becomes
//! `failed` ("approval not backed by the audit log") with an entry saying why,
//! and `audit verify` names the forged entry.
//!
//! A store without the key cannot tell a forged entry from a real one (a plain
//! hash anyone can compute), and skips the check.

use std::collections::BTreeSet;

use serde_json::json;

use super::audit_verify::RawEntry;
use super::runs::{Edit, Note, move_run};
use super::sql::{Tx, args};
use super::{Run, StoreError};
use crate::types::RunState;

/// The error a run that fails the check ends with.
pub const NOT_BACKED: &str = "approval not backed by the audit log";

/// `Ok(None)`: the run may start. `Ok(Some(why))`: it must not.
pub(super) async fn check(tx: &mut Tx<'_>, run: &Run) -> Result<Option<String>, StoreError> {
    let Some(key) = tx.key.clone() else {
        return Ok(None);
    };
    let rows = tx
        .fetch_all(
            "SELECT seq, at, actor, action, run_id, details, prev_hash, hash, hash_kind \
             FROM audit WHERE run_id = $1 ORDER BY seq",
            args![run.id.0],
        )
        .await?;
    let mut queued = false;
    let mut waited = false;
    let mut approvers: BTreeSet<String> = BTreeSet::new();
    for row in &rows {
        let e = RawEntry::from_row(row)?;
        if let Err(why) = e.holds(Some(&key)) {
            if matches!(
                e.action.as_str(),
                "run.queued" | "run.awaiting_approval" | "approval.approved"
            ) {
                return Ok(Some(format!(
                    "its entry {} ({}) does not verify: {why}",
                    e.seq, e.action
                )));
            }
            continue;
        }
        match e.action.as_str() {
            "run.queued" => queued = true,
            "run.awaiting_approval" => waited = true,
            "approval.approved" => {
                let details: serde_json::Value =
                    serde_json::from_str(&e.details).unwrap_or_default();
                if let Some(a) = details["approver"].as_str() {
                    approvers.insert(a.to_string());
                }
            }
            _ => {}
        }
    }
    if !queued {
        return Ok(Some("no verifying `run.queued` entry".into()));
    }
    if !waited {
        return Ok(None);
    }
    let rows = tx
        .fetch_all(
            "SELECT approver FROM approvals WHERE run_id = $1 AND approve ORDER BY approver",
            args![run.id.0],
        )
        .await?;
    for row in &rows {
        let approver: String = row.get("approver")?;
        if !approvers.contains(&approver) {
            return Ok(Some(format!(
                "the approval by {approver} has no verifying `approval.approved` entry"
            )));
        }
    }
    let quorum = run.quorum.max(1);
    if (approvers.len() as i64) < quorum {
        return Ok(Some(format!(
            "{} verifying approval(s) of the {quorum} needed",
            approvers.len()
        )));
    }
    Ok(None)
}

/// The run does not start: it becomes `failed`, with the reason in its entry.
pub(super) async fn refuse(
    tx: &mut Tx<'_>,
    run: Run,
    why: String,
    now: i64,
) -> Result<Run, StoreError> {
    tracing::error!(run_id = %run.id, "{NOT_BACKED}: {why}");
    let reason = format!("{NOT_BACKED}: {why}");
    let details = json!({ "error": NOT_BACKED, "why": why });
    let note = Note {
        actor: "system".into(),
        action: "run.approval_not_backed".into(),
        details,
        now,
    };
    let edit = Edit::new(move |r| {
        r.error = Some(reason.clone());
        r.reason = Some(reason);
    });
    move_run(tx, run, RunState::Failed, note, edit).await
}
