//! Refusals from Slack: an unknown script, a bad argument, a person without
//! access, a Slack account nobody configured and a channel the script is not
//! open to each get a private (ephemeral) answer that says why, make no run
//! (except the policy refusals the core records as `refused` runs), post
//! nothing to the channel, and leave an audit entry.

use super::payloads::{ALICE, BOB, ONCALL, RANDOM, STRANGER, SlackChannel, SlackUser};
use super::*;
use execgov::types::RunState;

struct Case {
    user: SlackUser,
    channel: SlackChannel,
    text: &'static str,
    /// Words the answer must contain.
    says: &'static str,
    /// The core records a `refused` run (policy refusals) rather than none.
    recorded: bool,
}

const CASES: &[Case] = &[
    Case {
        user: ALICE,
        channel: ONCALL,
        text: "slack-reprt month=2026-10",
        says: "slack-report",
        recorded: false,
    },
    Case {
        user: ALICE,
        channel: ONCALL,
        text: "slack-report month=2026-13",
        says: "month",
        recorded: false,
    },
    Case {
        user: ALICE,
        channel: ONCALL,
        text: "slack-report mnth=2026-10",
        says: "mnth",
        recorded: false,
    },
    Case {
        user: BOB,
        channel: ONCALL,
        text: "slack-report month=2026-10",
        says: "may not run",
        recorded: true,
    },
    Case {
        user: STRANGER,
        channel: ONCALL,
        text: "slack-report month=2026-10",
        says: "not mapped",
        recorded: true,
    },
    Case {
        user: ALICE,
        channel: RANDOM,
        text: "slack-report month=2026-10",
        says: "may not be run from",
        recorded: true,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_answer_privately_record_policy_refusals_and_are_audited() {
    let app = spawn_slack_app().await;
    let mut expected_runs = 0;
    for case in CASES {
        let reply = app.command(case.user, case.channel, case.text).await;
        assert_eq!(
            reply.status, 200,
            "a refusal is still an answer: {}",
            reply.body
        );
        let answer = reply.json();
        assert_eq!(
            answer["response_type"], "ephemeral",
            "`{}` is answered privately: {}",
            case.text, reply.body
        );
        let text = answer["text"].as_str().unwrap_or_default();
        assert!(
            text.contains(case.says),
            "`{}` by {} says why ({}): {text}",
            case.text,
            case.user.name,
            case.says
        );
        if case.recorded {
            expected_runs += 1;
        }
        let runs = app.runs().await;
        assert_eq!(
            runs.len(),
            expected_runs,
            "after `{}` by {}: {runs:?}",
            case.text,
            case.user.name
        );
        assert!(
            runs.iter().all(|r| r.state == RunState::Refused),
            "refused runs never run: {runs:?}"
        );
    }
    let refusals = app
        .all_actions()
        .await
        .iter()
        .filter(|a| *a == "run.refused")
        .count();
    assert!(
        refusals >= CASES.len(),
        "each refused request leaves an audit entry ({refusals})"
    );

    // A good request after them: once it is finished, its messages are the only ones.
    app.command(ALICE, ONCALL, "slack-report month=2026-10")
        .await;
    let good = app.runs().await.pop().expect("the good run");
    assert_ne!(
        good.state,
        RunState::Refused,
        "the good request is accepted"
    );
    crate::helpers::wait_final(&app.engine, good.id).await;
    let status = app.status_message(good.id, ONCALL).await;
    let ts = status.answered_ts().unwrap().to_string();
    app.fake
        .wait_call("chat.postMessage", |c| c.field("thread_ts") == Some(&ts))
        .await;
    for c in app.fake.calls_of("chat.postMessage") {
        assert!(
            mentions_run(&c, good.id),
            "a refusal posted nothing in a channel:\n{}",
            app.fake.summary()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_help_answer_privately() {
    let app = spawn_slack_app().await;
    let reply = app.command(ALICE, ONCALL, "list").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["response_type"], "ephemeral", "{}", reply.body);
    assert!(
        answer["text"]
            .as_str()
            .unwrap_or_default()
            .contains("slack-report"),
        "list shows the scripts: {answer}"
    );
    let reply = app.command(ALICE, ONCALL, "help").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        !reply.json()["text"].as_str().unwrap_or_default().is_empty(),
        "help says something: {}",
        reply.body
    );
    assert!(app.runs().await.is_empty(), "list and help record no run");
}
