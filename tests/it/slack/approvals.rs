//! Approvals through Slack's buttons: the request in the approver channel has
//! Approve (primary) and Deny (danger), both behind a confirm dialog; the
//! requester's and a non-approver's clicks are refused privately and audited;
//! an approver's click runs the script and both messages are updated (the
//! request loses its buttons); Deny opens a modal whose reason is kept; a
//! double click makes one decision.

use super::payloads::{self, ALICE, APPROVALS, BOB, CAROL, DAVE, ONCALL};
use super::*;
use crate::helpers::{actions, wait_final};
use execgov::types::RunState;
use std::path::PathBuf;

const APPROVE: &str = "execgov_approve";
const DENY: &str = "execgov_deny";

/// alice asks for `risky`; returns the run, its marker file and the approval request.
async fn request_risky(app: &SlackApp) -> (Run, PathBuf, Call) {
    let marker = app.env.path().join("marker");
    let reply = app
        .command(ALICE, ONCALL, &format!("risky marker={}", marker.display()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["response_type"], "ephemeral", "{}", reply.body);
    assert!(
        reply.body.contains("awaits approval"),
        "the requester learns it waits: {}",
        reply.body
    );
    let run = app.only_run().await;
    assert_eq!(run.state, RunState::AwaitingApproval);
    let approval = app.approval_message(run.id).await;
    (run, marker, approval)
}

/// `user` clicks the button `action_id` on the approval request.
async fn click(
    app: &SlackApp,
    user: payloads::SlackUser,
    approval: &Call,
    action_id: &str,
) -> Value {
    let ts = approval.answered_ts().expect("posted");
    let button = payloads::find_button(&approval.body["blocks"], action_id).unwrap_or_else(|| {
        panic!(
            "the approval request has a `{action_id}` button: {}",
            approval.body
        )
    });
    let payload = payloads::block_actions(user, APPROVALS, ts, &approval.body, &button);
    let reply = app.interact(&payload).await;
    assert_eq!(
        reply.status, 200,
        "clicks are acked at once: {}",
        reply.body
    );
    payload
}

/// The private answer `user` got in the approvals channel.
async fn ephemeral_to(app: &SlackApp, user: payloads::SlackUser) -> Call {
    app.fake
        .wait_call("chat.postEphemeral", |c| {
            c.field("user") == Some(user.id) && c.field("channel") == Some(APPROVALS.id)
        })
        .await
}

/// Waits for an edit of the approval request that has no buttons left.
async fn request_closed(app: &SlackApp, approval: &Call) -> Call {
    let ts = approval.answered_ts().unwrap().to_string();
    app.fake
        .wait_call("chat.update", |c| {
            c.ok()
                && c.field("channel") == Some(APPROVALS.id)
                && c.field("ts") == Some(&ts)
                && buttons(&c.body["blocks"]).is_empty()
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_approvers_click_runs_a_risky_script() {
    let app = spawn_slack_app().await;
    let (run, marker, approval) = request_risky(&app).await;
    let blocks = &approval.body["blocks"];
    for (id, style) in [(APPROVE, "primary"), (DENY, "danger")] {
        let (button, _) = payloads::find_button(blocks, id)
            .unwrap_or_else(|| panic!("a `{id}` button: {blocks}"));
        assert_eq!(button["style"], style, "{id} is styled {style}");
        assert_eq!(
            button["value"],
            run.id.to_string(),
            "{id} carries the run id"
        );
        let confirm = &button["confirm"];
        for key in ["title", "text", "confirm", "deny"] {
            assert!(
                confirm.get(key).is_some(),
                "{id} asks for confirmation ({key}): {button}"
            );
        }
    }
    let status = app.status_message(run.id, ONCALL).await;

    click(&app, ALICE, &approval, APPROVE).await;
    let own = ephemeral_to(&app, ALICE).await;
    assert!(
        own.shown().contains("requested this run"),
        "the requester cannot approve: {}",
        own.shown()
    );
    click(&app, CAROL, &approval, APPROVE).await;
    let outsider = ephemeral_to(&app, CAROL).await;
    assert!(
        outsider.shown().contains("not an approver"),
        "a non-approver cannot approve: {}",
        outsider.shown()
    );
    let still = app.engine.store().get_run(run.id).await.unwrap();
    assert_eq!(
        still.state,
        RunState::AwaitingApproval,
        "refused clicks change nothing"
    );
    assert!(
        app.engine
            .store()
            .approvals(run.id)
            .await
            .unwrap()
            .is_empty(),
        "no decision recorded"
    );

    click(&app, BOB, &approval, APPROVE).await;
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(
        done.state,
        RunState::Succeeded,
        "the approved run ran: {:?}",
        done.error
    );
    assert!(marker.exists(), "the script really ran");
    let closed = request_closed(&app, &approval).await;
    assert!(
        closed.shown().contains("bob"),
        "the request says who approved: {}",
        closed.shown()
    );
    let status_ts = status.answered_ts().unwrap().to_string();
    app.fake
        .wait_call("chat.update", |c| {
            c.ok() && c.field("ts") == Some(&status_ts) && c.shown().contains("succeeded")
        })
        .await;

    let acts = actions(&app.engine, run.id).await;
    assert_eq!(
        acts.iter().filter(|a| *a == "approval.refused").count(),
        2,
        "both refused clicks audited: {acts:?}"
    );
    assert_eq!(
        acts.iter().filter(|a| *a == "approval.approved").count(),
        1,
        "{acts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_asks_for_a_reason_in_a_modal_and_keeps_it() {
    let app = spawn_slack_app().await;
    let (run, marker, approval) = request_risky(&app).await;
    let clicked = click(&app, DAVE, &approval, DENY).await;

    let open = app.fake.wait_call("views.open", |c| c.ok()).await;
    assert_eq!(
        open.field("trigger_id"),
        clicked["trigger_id"].as_str(),
        "the modal answers this click's trigger"
    );
    let view = open.response["view"].clone();
    assert_eq!(view["type"], "modal");
    assert_eq!(
        view["callback_id"], DENY,
        "the modal is the deny form: {view}"
    );
    let meta: Value = serde_json::from_str(view["private_metadata"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("private_metadata is JSON ({e}): {view}"));
    let meta_run = meta["run_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| meta["run_id"].to_string());
    assert_eq!(
        meta_run,
        run.id.to_string(),
        "the modal remembers the run: {meta}"
    );
    assert_eq!(
        meta["channel_id"], APPROVALS.id,
        "and the request's channel: {meta}"
    );
    assert_eq!(
        meta["message_ts"],
        approval.answered_ts().unwrap(),
        "and the request's ts: {meta}"
    );
    assert_eq!(
        app.engine.store().get_run(run.id).await.unwrap().state,
        RunState::AwaitingApproval,
        "opening the modal decides nothing"
    );

    let reason = "not during the freeze";
    let reply = app
        .interact(&payloads::view_submission(DAVE, &view, reason))
        .await;
    assert_eq!(reply.status, 200, "the submission is acked: {}", reply.body);
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Rejected, "a Deny rejects");
    let decisions = app.engine.store().approvals(run.id).await.unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(
        decisions[0].approver.to_string(),
        "dave",
        "the submitter decided"
    );
    assert!(!decisions[0].approve);
    assert_eq!(
        decisions[0].reason.as_deref(),
        Some(reason),
        "the reason is kept"
    );
    request_closed(&app, &approval).await;
    assert!(!marker.exists(), "a denied run never runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_click_makes_one_decision() {
    let app = spawn_slack_app().await;
    let (run, marker, approval) = request_risky(&app).await;
    let ts = approval.answered_ts().unwrap();
    let button =
        payloads::find_button(&approval.body["blocks"], APPROVE).expect("an approve button");
    let first = payloads::block_actions(BOB, APPROVALS, ts, &approval.body, &button);
    let second = payloads::block_actions(BOB, APPROVALS, ts, &approval.body, &button);
    let (a, b) = tokio::join!(app.interact(&first), app.interact(&second));
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "both clicks are acked: {} / {}",
        a.body,
        b.body
    );

    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    assert!(marker.exists());
    let decisions = app.engine.store().approvals(run.id).await.unwrap();
    assert_eq!(
        decisions.len(),
        1,
        "one decision from two clicks: {decisions:?}"
    );
    let acts = actions(&app.engine, run.id).await;
    assert_eq!(
        acts.iter().filter(|a| *a == "approval.approved").count(),
        1,
        "{acts:?}"
    );
    assert_eq!(app.runs().await.len(), 1, "still one run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_shows_its_output_and_table_on_the_approval_card() {
    let app = spawn_slack_app().await;
    crate::preview::install(&app.engine, &app.env.path().join("manifests"));
    let marker = app.env.path().join("purged");
    let reply = app
        .command(ALICE, ONCALL, &format!("purge marker={}", marker.display()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("awaits approval"), "{}", reply.body);
    let runs = app.wait_runs(2).await;
    let (run, preview) = (&runs[0], &runs[1]);
    assert_eq!(preview.preview_of, Some(run.id), "{runs:?}");
    let approval = app.approval_message(run.id).await;
    let blocks = approval.body["blocks"].to_string();
    for shown in [
        format!(
            "Preview (run {}, `--dry-run`): succeeded, exit 0",
            preview.id
        ),
        "would purge 3 rows older than 90 days".to_string(),
        "events".to_string(),
        "sessions".to_string(),
    ] {
        assert!(
            blocks.contains(&shown),
            "the first approval card shows `{shown}`: {blocks}"
        );
    }
    assert!(
        approval.body["text"]
            .as_str()
            .unwrap_or_default()
            .contains("would purge 3 rows"),
        "the notification text has it too: {}",
        approval.body
    );
    assert!(!marker.exists(), "the preview changed nothing");
    assert!(
        !app.fake
            .calls_of("chat.postMessage")
            .iter()
            .any(|c| mentions_run(c, preview.id) && !mentions_run(c, run.id)),
        "a preview posts nothing of its own"
    );

    click(&app, BOB, &approval, APPROVE).await;
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{done:?}");
    assert!(marker.exists(), "the approved run ran for real");
}
