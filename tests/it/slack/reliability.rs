//! Slack's own failure modes: an event Slack redelivers (same `event_id`,
//! `X-Slack-Retry-Num`) makes one run; a `chat.postMessage` answered 429 is
//! retried after its `Retry-After` and still arrives; a permanent `ok:false`
//! (`channel_not_found`) is recorded and given up on, and the run itself still
//! succeeds.

use super::fake::Fault;
use super::payloads::{self, ALICE, ONCALL};
use super::sign::SlackRequest;
use super::*;
use crate::helpers::wait_final;
use execgov::types::RunState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_makes_one_run() {
    let app = spawn_slack_app().await;
    let event = payloads::app_mention(
        "Ev0REDELIVER",
        ALICE,
        ONCALL,
        "run slack-report month=2026-08",
        None,
    );
    let thread = event["event"]["ts"].as_str().unwrap().to_string();
    let first = app.send(&SlackRequest::event(&event)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = app.send(&SlackRequest::event(&event).retry(1)).await;
    assert_eq!(
        again.status, 200,
        "a redelivery is acked so Slack stops retrying: {}",
        again.body
    );
    let run = app.wait_runs(1).await.remove(0);
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    let link = format!("/runs/{}?t=", run.id);
    app.fake
        .wait_call("chat.postMessage", |c| {
            c.field("thread_ts") == Some(&thread) && c.shown().contains(&link)
        })
        .await;
    assert_eq!(
        app.runs().await.len(),
        1,
        "the redelivered event made no second run"
    );
    let answered = |method: &str| {
        app.fake
            .calls_of(method)
            .into_iter()
            .filter(|c| c.field("text").is_some_and(|t| t.contains("is queued")))
            .count()
    };
    assert_eq!(
        (answered("chat.postEphemeral"), answered("chat.postMessage")),
        (1, 0),
        "the request was answered once, privately (its status message follows in the thread):\n{}",
        app.fake.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_post_is_retried_after_retry_after() {
    let app = spawn_slack_app().await;
    app.fake.fail_next(
        "chat.postMessage",
        1,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let reply = app
        .command(ALICE, ONCALL, "slack-report month=2026-07")
        .await;
    assert_eq!(
        reply.status, 200,
        "the ack does not wait on chat: {}",
        reply.body
    );
    let run = app.only_run().await;

    let status = app.status_message(run.id, ONCALL).await;
    let posts = app.fake.calls_of("chat.postMessage");
    let limited = posts.first().expect("a first attempt");
    assert_eq!(
        limited.status,
        429,
        "the first attempt was rate limited:\n{}",
        app.fake.summary()
    );
    let waited = status.at.duration_since(limited.at);
    assert!(
        waited >= Duration::from_millis(900),
        "the retry honoured Retry-After: 1 (after {waited:?})"
    );
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    let ts = status.answered_ts().unwrap().to_string();
    let link = format!("/runs/{}?t=", run.id);
    app.fake
        .wait_call("chat.postMessage", |c| {
            c.ok() && c.field("thread_ts") == Some(&ts) && c.shown().contains(&link)
        })
        .await;
    let oks = app
        .fake
        .calls_of("chat.postMessage")
        .into_iter()
        .filter(|c| c.ok() && c.field("thread_ts").is_none())
        .count();
    assert_eq!(
        oks,
        1,
        "exactly one status message despite the retry:\n{}",
        app.fake.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_channel_is_recorded_and_the_run_still_succeeds() {
    let app = spawn_slack_app().await;
    app.fake.fail_next(
        "chat.postMessage",
        1000,
        Fault::Error("channel_not_found".into()),
    );
    let reply = app
        .command(ALICE, ONCALL, "slack-report month=2026-06")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["response_type"],
        "ephemeral",
        "the requester still gets the ack: {}",
        reply.body
    );
    let run = app.only_run().await;
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(
        done.state,
        RunState::Succeeded,
        "chat failing does not fail the run: {:?}",
        done.error
    );
    app.fake
        .wait_call("chat.postMessage", |c| {
            c.response["error"] == "channel_not_found"
        })
        .await;
    let store = app.engine.store();
    eventually(
        &app.engine,
        "the failure is recorded on the run's status message",
        || async {
            store.posts(run.id).await.unwrap().iter().any(|p| {
                p.role == "status"
                    && p.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("channel_not_found"))
            })
        },
    )
    .await;
    assert!(
        app.fake.calls_of("chat.update").is_empty(),
        "nothing to edit when nothing was posted"
    );
}
