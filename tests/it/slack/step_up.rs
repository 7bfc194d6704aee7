//! Step-up in Slack: on a critical run's approval request the Approve button
//! opens a dialog (views.open) that asks for the approver's authenticator
//! code; a wrong code submitted there is refused under the code, in the
//! dialog, which stays open, and decides nothing; a right one approves and the
//! script runs.

use super::payloads::{self, ALICE, APPROVALS, BOB, ONCALL};
use super::*;
use crate::helpers::{person, wait_final};
use execgov::clock::{Clock, SystemClock};
use execgov::totp::{code_at, from_base32, step_at};
use execgov::types::RunState;

const APPROVE_WITH_CODE: &str = "execgov_approve_code";

/// bob clicks "Approve with code"; answers the dialog Slack opened.
async fn open_dialog(app: &SlackApp, approval: &Call, opened_before: usize) -> Value {
    let ts = approval.answered_ts().expect("posted");
    let button = payloads::find_button(&approval.body["blocks"], APPROVE_WITH_CODE)
        .unwrap_or_else(|| panic!("an `{APPROVE_WITH_CODE}` button: {}", approval.body));
    assert!(
        button.0.get("confirm").is_none(),
        "the dialog is the confirmation: {}",
        button.0
    );
    let payload = payloads::block_actions(BOB, APPROVALS, ts, &approval.body, &button);
    let reply = app.interact(&payload).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let open = app
        .fake
        .wait_for("the dialog opened", |calls| {
            calls
                .iter()
                .filter(|c| c.method == "views.open")
                .nth(opened_before)
                .cloned()
        })
        .await;
    assert!(open.ok(), "{:?}", open.response);
    assert_eq!(open.field("trigger_id"), payload["trigger_id"].as_str());
    open.response["view"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_opens_a_dialog_that_asks_for_the_code() {
    let app = spawn_slack_app_with(Options {
        critical: true,
        ..Options::default()
    })
    .await;
    let marker = app.env.path().join("marker");
    let reply = app
        .command(
            ALICE,
            ONCALL,
            &format!("vault-rotate marker={}", marker.display()),
        )
        .await;
    assert!(reply.body.contains("awaits approval"), "{}", reply.body);
    let run = app.only_run().await;
    let approval = app.approval_message(run.id).await;
    assert!(
        approval.shown().contains("2FA code"),
        "the request says a code is needed: {}",
        approval.shown()
    );

    // bob's second factor (enrolled on the web or the CLI in real use).
    let e = &app.engine;
    let enrolment = e.enrol_factor(&person("bob")).await.unwrap().unwrap();
    let secret = from_base32(&enrolment.secret).unwrap();
    let now = || step_at(SystemClock.now_ms());
    e.confirm_factor(&person("bob"), &code_at(&secret, now()))
        .await
        .unwrap()
        .unwrap();

    let view = open_dialog(&app, &approval, 0).await;
    assert_eq!(view["callback_id"], APPROVE_WITH_CODE, "{view}");
    assert!(
        view.to_string().contains("authenticator"),
        "the dialog asks for the code: {view}"
    );
    let right = code_at(&secret, now() + 1);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = app
        .interact(&payloads::view_submission(BOB, &view, wrong))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Refused in the dialog itself, under the code, which stays open.
    let answer: serde_json::Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("the dialog gets its errors as JSON ({e}): {}", r.body));
    assert_eq!(answer["response_action"], "errors", "{answer}");
    let code_block = view["blocks"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "input"))
        .and_then(|b| b["block_id"].as_str())
        .unwrap_or_else(|| panic!("the dialog has an input: {view}"));
    let under_code = answer["errors"][code_block].as_str().unwrap_or_default();
    assert!(under_code.contains("wrong code"), "{answer}");
    assert_eq!(
        e.store().get_run(run.id).await.unwrap().state,
        RunState::AwaitingApproval,
        "a wrong code decides nothing"
    );

    // The same dialog, another try.
    let r = app
        .interact(&payloads::view_submission(BOB, &view, &right))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let done = wait_final(e, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    assert!(marker.exists(), "the script really ran");
    let entries = e.store().audit_entries(Some(run.id), 0, 100).await.unwrap();
    let approved = entries
        .iter()
        .find(|a| a.action == "approval.approved")
        .expect("approved");
    assert_eq!(approved.details["step_up"], true);
    assert!(
        entries.iter().any(|a| a.action == "2fa.refused"),
        "the wrong code is audited"
    );
}
