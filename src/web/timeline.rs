//! The run page's timeline: each audit entry of a run worded for people
//! (what happened, and who decided where it matters).

use crate::store::AuditEntry;

/// A timeline entry for people: what happened, with who decided where it matters.
pub(super) fn timeline_label(e: &AuditEntry) -> String {
    let detail = |k: &str| {
        e.details
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let reason = detail("reason")
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match e.action.as_str() {
        "run.requested" => "Requested".into(),
        "run.awaiting_approval" => "Waiting for approval".into(),
        "run.queued" => "Queued".into(),
        "run.started" | "run.running" => match detail("worker") {
            Some(w) => format!("Started on {w}"),
            None => "Started".into(),
        },
        "approval.approved" => format!(
            "Approved by {}{reason}",
            detail("approver").unwrap_or_default()
        ),
        "approval.denied" => format!(
            "Denied by {}{reason}",
            detail("approver").unwrap_or_default()
        ),
        "approval.refused" => format!("Decision refused{reason}"),
        "run.cancel_requested" => "Cancel requested".into(),
        "policy.bypassed" => format!("Break-glass: started without approval{reason}"),
        "policy.reviewed" => format!(
            "Break-glass reviewed{}",
            detail("note").map(|n| format!(": {n}")).unwrap_or_default()
        ),
        "policy.review_overdue" => "Break-glass review overdue: posted again".into(),
        "run.refused" => format!("Refused{reason}"),
        "run.rejected" => format!("Rejected{reason}"),
        a if a.starts_with("run.") => {
            let mut label = format!("Finished: {}", &a[4..]);
            if let Some(c) = e.details.get("exit_code").and_then(|c| c.as_i64()) {
                label.push_str(&format!(" (exit code {c})"));
            }
            label
        }
        other => other.to_string(),
    }
}
