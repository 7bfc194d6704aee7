//! The approval request in an approver channel, and the modal that asks why a
//! run is denied.

use super::{
    APPROVE_ACTION, APPROVE_CODE_ACTION, DENY_ACTION, audit_context, clip, escape, fields, mrkdwn,
    place_name, plain, requester, run_title, section, state_emoji, state_label,
};
use execgov_chat::{ApprovalView, RunView};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `callback_id` of the deny modal, matched on `view_submission`.
pub(crate) const DENY_CALLBACK_ID: &str = "execgov_deny";
/// `block_id` and `action_id` of the modal's reason input.
pub(crate) const REASON_INPUT: &str = "reason";
/// `callback_id` of the step-up approve modal.
pub(crate) const APPROVE_CALLBACK_ID: &str = "execgov_approve_code";
/// `block_id` and `action_id` of its code input.
pub(crate) const CODE_INPUT: &str = "code";

/// What a decision dialog (deny, approve with code) carries from the click to
/// the submission (its `private_metadata`, which Slack returns untouched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DialogMetadata {
    pub run_id: String,
    pub channel_id: String,
    #[serde(default)]
    pub message_ts: Option<String>,
}

/// The approval request: who asks for what, where, what is still needed and
/// until when; Approve / Deny buttons while it is open, the decisions after.
pub(crate) fn approval_blocks(approval: &ApprovalView) -> Vec<Value> {
    let run = &approval.run;
    let heading = if approval.open {
        format!(":lock: *Approval needed* · {}", run_title(run))
    } else {
        format!(
            "{} *Approval request* · {} — *{}*",
            state_emoji(&run.state),
            run_title(run),
            state_label(&run.state)
        )
    };
    let args = if run.args.trim().is_empty() {
        "_none_".to_string()
    } else {
        format!("`{}`", escape(&run.args).replace('`', "'"))
    };
    let mut blocks = vec![
        section(&heading),
        fields(&[
            ("Requested by".into(), requester(run)),
            ("Asked in".into(), place_name(&run.asked_in)),
            ("Script".into(), format!("`{}`", escape(&run.script))),
            ("Arguments".into(), args),
            (
                "Needs".into(),
                if approval.step_up {
                    format!("{} · each with a 2FA code", escape(&approval.needed))
                } else {
                    escape(&approval.needed)
                },
            ),
            ("Expires".into(), escape(&approval.expires)),
        ]),
    ];
    if let Some(reason) = run.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        blocks.push(section(&format!("*Reason:* {}", escape(reason))));
    }
    if let Some(preview) = &approval.preview {
        blocks.push(json!({ "type": "divider" }));
        blocks.extend(super::run::preview_blocks(preview));
        blocks.push(json!({ "type": "divider" }));
    }
    if approval.open {
        blocks.push(buttons(run, approval.step_up));
    }
    if !approval.open || !run.decisions.is_empty() {
        blocks.push(section(&decisions(run)));
    }
    blocks.push(audit_context(run));
    blocks
}

fn decisions(run: &RunView) -> String {
    if run.decisions.is_empty() {
        return "*Decisions*\n_none_".to_string();
    }
    let lines: Vec<String> = run
        .decisions
        .iter()
        .map(|d| format!("• {}", escape(d)))
        .collect();
    format!("*Decisions*\n{}", lines.join("\n"))
}

fn buttons(run: &RunView, step_up: bool) -> Value {
    let what = format!("run {} `{} {}`", run.run_id, run.script, run.args);
    let approve = if step_up {
        // The dialog that asks for the code is the confirmation.
        json!({
            "type": "button",
            "text": plain("Approve with code", 75),
            "style": "primary",
            "action_id": APPROVE_CODE_ACTION,
            "value": clip(&run.run_id, 2000),
        })
    } else {
        button(ButtonSpec {
            label: "Approve",
            style: "primary",
            action_id: APPROVE_ACTION,
            run_id: &run.run_id,
            question: &format!(
                "Approve {}? It runs as soon as approval is complete.",
                escape(what.trim())
            ),
        })
    };
    json!({
        "type": "actions",
        "block_id": format!("execgov_decide_{}", clip(&run.run_id, 200)),
        "elements": [
            approve,
            button(ButtonSpec {
                label: "Deny",
                style: "danger",
                action_id: DENY_ACTION,
                run_id: &run.run_id,
                question: &format!("Deny {}? You can give a reason next.", escape(what.trim())),
            }),
        ]
    })
}

struct ButtonSpec<'a> {
    label: &'a str,
    style: &'a str,
    action_id: &'a str,
    run_id: &'a str,
    question: &'a str,
}

fn button(spec: ButtonSpec<'_>) -> Value {
    json!({
        "type": "button",
        "text": plain(spec.label, 75),
        "style": spec.style,
        "action_id": spec.action_id,
        "value": clip(spec.run_id, 2000),
        "confirm": {
            "title": plain(&format!("{} run {}?", spec.label, spec.run_id), 100),
            "text": { "type": "mrkdwn", "text": clip(spec.question, 300) },
            "confirm": plain(spec.label, 30),
            "deny": plain("Cancel", 30),
            "style": spec.style,
        }
    })
}

/// A decision dialog about `meta`'s run: its title, submit button, what it
/// says, and its one input, submitted as `view_submission` with `callback_id`.
fn dialog(
    meta: &DialogMetadata,
    callback_id: &str,
    verb: &str,
    says: String,
    input: Value,
) -> Value {
    json!({
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": serde_json::to_string(meta).unwrap_or_default(),
        "title": plain(&clip(&format!("{verb} run {}", meta.run_id), 24), 24),
        "submit": plain(verb, 24),
        "close": plain("Cancel", 24),
        "blocks": [{ "type": "section", "text": mrkdwn(&says) }, input]
    })
}

/// The modal a Deny click opens: an optional reason.
pub(crate) fn deny_modal(meta: &DialogMetadata) -> Value {
    let says = format!("Deny run *{}*? It will not run.", escape(&meta.run_id));
    let input = json!({
        "type": "input",
        "block_id": REASON_INPUT,
        "optional": true,
        "label": plain("Reason", 2000),
        "element": {
            "type": "plain_text_input",
            "action_id": REASON_INPUT,
            "multiline": true,
            "max_length": 1000,
            "placeholder": plain("Why not? The requester sees this.", 150),
        },
    });
    dialog(meta, DENY_CALLBACK_ID, "Deny", says, input)
}

/// The modal an "Approve with code" click opens (a critical run): the
/// approver's 6-digit authenticator code. What is typed here is seen by Slack
/// and ExecGov only.
pub(crate) fn approve_modal(meta: &DialogMetadata) -> Value {
    let says = format!(
        "Run *{}* is critical: approving it needs the 6-digit code your authenticator app shows for ExecGov. It runs as soon as approval is complete.",
        escape(&meta.run_id)
    );
    let input = json!({
        "type": "input",
        "block_id": CODE_INPUT,
        "label": plain("Authenticator code", 2000),
        "element": {
            "type": "plain_text_input",
            "action_id": CODE_INPUT,
            "min_length": 6,
            "max_length": 7,
            "placeholder": plain("123456", 150),
        },
    });
    dialog(meta, APPROVE_CALLBACK_ID, "Approve", says, input)
}
