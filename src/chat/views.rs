//! Runs and approval requests worded for chat ([`RunView`], [`ApprovalView`]).
//! Adapters only lay these out; what is said is decided here, once.

use crate::clock::format_ms;
use crate::engine::Engine;
use crate::engine::render::{decision_text, place_text, stored_args_text};
use crate::store::{Approval, Artifact, Run};
use crate::types::{Platform, PlatformUser, RunState};
use execgov_chat::{ApprovalView, OutboundFile, PreviewView, RunView};

/// A run as shown on `platform` (mentions use the requester's account there).
pub fn run_view(
    engine: &Engine,
    run: &Run,
    approvals: &[Approval],
    artifacts: &[Artifact],
    platform: Platform,
) -> RunView {
    let requester = run
        .requester_person
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| run.requester.clone());
    let requester_account = run
        .requester_person
        .as_ref()
        .and_then(|p| engine.config().people.get(p))
        .and_then(|person| match platform {
            Platform::Slack => person.slack.clone(),
            Platform::Matrix => person.matrix.clone(),
            _ => None,
        })
        .map(|id| PlatformUser { platform, id });
    let duration_ms = match (run.started_at, run.finished_at) {
        (Some(s), Some(f)) => Some(f - s),
        _ => None,
    };
    let reason = run
        .reason
        .clone()
        .or_else(|| run.error.clone())
        .or_else(|| {
            approvals
                .iter()
                .find(|a| !a.approve)
                .map(|a| {
                    format!(
                        "denied by {}{}",
                        a.approver,
                        a.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    )
                })
                .filter(|_| run.state == RunState::Rejected)
        });
    RunView {
        run_id: run.id.to_string(),
        script: run.script.clone(),
        args: stored_args_text(run),
        requester,
        requester_account,
        asked_in: place_text(run),
        state: run.state.as_str().to_string(),
        finished: run.state.is_final(),
        progress_pct: run.progress_pct.map(|p| p.clamp(0, 100) as u8),
        progress_text: run.progress_text.clone(),
        exit_code: run.exit_code,
        duration_ms,
        reason,
        output_tail: run.output_tail.clone(),
        full_output: None,
        result: run.result.clone(),
        audit_link: engine.audit_link(run),
        files: artifacts
            .iter()
            .map(|a| OutboundFile {
                name: a.name.clone(),
                path: a.path.clone().into(),
            })
            .collect(),
        decisions: approvals.iter().map(decision_text).collect(),
        waiting_for: (run.state == RunState::AwaitingApproval)
            .then(|| {
                format!(
                    "{}; expires {}",
                    still_needed(run, approvals),
                    expires_text(run)
                )
            })
            .or_else(|| crate::engine::render::waiting_text(run)),
        mentions: Vec::new(),
        flag: crate::engine::render::break_glass_text(run),
    }
}

/// `1 more approval(s) from bob, dave under rule `prod``: what an open
/// request still needs, and the `[[rule]]` that asks for it.
fn still_needed(run: &Run, approvals: &[Approval]) -> String {
    let approves = approvals.iter().filter(|a| a.approve).count() as i64;
    let eligible: Vec<&str> = run.approvers.eligible.iter().map(|p| p.as_str()).collect();
    format!(
        "{} more approval(s) from {}{}",
        (run.quorum - approves).max(0),
        eligible.join(", "),
        crate::engine::rule_note(run.rule.as_deref())
    )
}

fn expires_text(run: &Run) -> String {
    run.expires_at
        .map(format_ms)
        .unwrap_or_else(|| "never".into())
}

/// The approval request for `run`.
pub fn approval_view(run_view: RunView, run: &Run, approvals: &[Approval]) -> ApprovalView {
    let open = run.state == RunState::AwaitingApproval;
    let needed = if open {
        still_needed(run, approvals)
    } else if let Some(mark) = crate::engine::render::break_glass_text(run) {
        // Approvers are told at once; the request reads as the review it needs.
        mark
    } else {
        format!("decided: {}", run.state.as_str().replace('_', " "))
    };
    ApprovalView {
        run: run_view,
        needed,
        expires: expires_text(run),
        open,
        step_up: run.risk.needs_step_up(),
        preview: None,
    }
}

/// A preview run as its request shows it (`[approval] preview`).
pub fn preview_view(engine: &Engine, preview: &Run, platform: Platform) -> PreviewView {
    let extra = engine
        .manifest(&preview.script)
        .and_then(|m| m.approval)
        .map(|a| crate::engine::render::argv_text(&a.preview))
        .unwrap_or_default();
    PreviewView {
        run: run_view(engine, preview, &[], &[], platform),
        extra_args: extra,
    }
}
