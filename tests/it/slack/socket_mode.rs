//! Socket Mode (an `app_token` set): the bot opens its connection with the app
//! token, acks each envelope by its `envelope_id`, runs slash commands and
//! button clicks that arrive over the WebSocket exactly as over HTTP, and
//! after Slack's `disconnect` it opens a new connection and keeps working;
//! an event delivered twice over the socket makes one run; a socket that
//! goes silent (half-open) is replaced. `/readyz` says whether the socket is up.

use super::payloads::{self, ALICE, APPROVALS, BOB, ONCALL};
use super::*;
use crate::helpers::{http_get, wait_final};
use execgov::types::RunState;

async fn spawn_socket_app() -> SlackApp {
    spawn_slack_app_with(Options {
        socket_mode: true,
        ..Options::default()
    })
    .await
}

/// `/run {text}` by alice over the socket; returns the ack.
async fn command_over_socket(app: &SlackApp, text: &str) -> Value {
    let payload = payloads::slash_command_json(ALICE, ONCALL, text);
    let envelope = app.fake.push_envelope("slash_commands", payload).await;
    app.fake.wait_ack(&envelope).await
}

/// Waits for run `id` to finish and for its result in its status message's thread.
async fn finished_and_reported(app: &SlackApp, id: RunId) {
    let done = wait_final(&app.engine, id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    let ts = app
        .status_message(id, ONCALL)
        .await
        .answered_ts()
        .unwrap()
        .to_string();
    let link = format!("/runs/{id}?t=");
    app.fake
        .wait_call("chat.postMessage", |c| {
            c.ok() && c.field("thread_ts") == Some(&ts) && c.shown().contains(&link)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_over_the_socket_is_acked_and_runs() {
    let app = spawn_socket_app().await;
    let open = app
        .fake
        .wait_call("apps.connections.open", |c| c.ok())
        .await;
    assert_eq!(
        open.auth.as_deref(),
        Some(format!("Bearer {}", fake::APP_TOKEN).as_str()),
        "the connection is opened with the app-level token"
    );

    let ack = command_over_socket(&app, "slack-report month=2026-05").await;
    let run = app.only_run().await;
    if let Some(text) = ack["payload"]["text"].as_str() {
        assert!(
            text.contains(&run.id.to_string()),
            "an ack with a payload names the run: {ack}"
        );
    }
    finished_and_reported(&app, run.id).await;
    app.fake
        .wait_file("the CSV over Socket Mode", |f| f.completed.is_some())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_over_the_socket_approves() {
    let app = spawn_socket_app().await;
    let marker = app.env.path().join("marker");
    command_over_socket(&app, &format!("risky marker={}", marker.display())).await;
    let run = app.only_run().await;
    assert_eq!(run.state, RunState::AwaitingApproval);
    let approval = app.approval_message(run.id).await;
    let ts = approval.answered_ts().unwrap();
    let button = payloads::find_button(&approval.body["blocks"], "execgov_approve")
        .expect("an approve button");
    let click = payloads::block_actions(BOB, APPROVALS, ts, &approval.body, &button);
    let envelope = app.fake.push_envelope("interactive", click).await;
    app.fake.wait_ack(&envelope).await;
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    assert!(marker.exists(), "the approved script ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_disconnect_the_bot_reconnects_and_keeps_working() {
    let app = spawn_socket_app().await;
    command_over_socket(&app, "slack-report month=2026-04").await;
    let first = app.only_run().await;
    finished_and_reported(&app, first.id).await;

    let connects = app.fake.socket_connects();
    let opens = app.fake.calls_of("apps.connections.open").len();
    app.fake.disconnect_newest("refresh_requested").await;
    app.fake.wait_socket_connects(connects + 1).await;
    app.fake
        .wait_for("a fresh apps.connections.open", |calls| {
            (calls
                .iter()
                .filter(|c| c.method == "apps.connections.open" && c.ok())
                .count()
                > opens)
                .then_some(())
        })
        .await;

    command_over_socket(&app, "slack-report month=2026-03").await;
    let runs = app.runs().await;
    assert_eq!(
        runs.len(),
        2,
        "the command after the reconnect made a run: {runs:?}"
    );
    finished_and_reported(&app, runs[1].id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_over_the_socket_runs_once_even_if_redelivered() {
    let app = spawn_socket_app().await;
    let event = payloads::app_mention(
        "Ev0SOCKET1",
        ALICE,
        ONCALL,
        "run slack-report month=2026-02",
        None,
    );
    let thread = event["event"]["ts"].as_str().unwrap().to_string();
    let first = app.fake.push_envelope("events_api", event.clone()).await;
    let ack = app.fake.wait_ack(&first).await;
    assert!(ack.get("payload").is_none(), "events are acked bare: {ack}");
    let again = app.fake.push_envelope("events_api", event).await;
    app.fake.wait_ack(&again).await;
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
        "the same event_id twice made one run"
    );
}

/// Polls `/readyz` until it answers `status` with `line` in its body.
async fn wait_readyz(app: &SlackApp, status: u16, line: &str) {
    wait_readyz_within(app, status, line, Duration::from_secs(20)).await
}

async fn wait_readyz_within(app: &SlackApp, status: u16, line: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (got, body) = http_get(app.addr, "/readyz").await;
        if got == status && body.lines().any(|l| l == line) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never answered {status} with `{line}`; last: {got} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_ready_only_while_the_socket_is_up() {
    let app = spawn_socket_app().await;
    wait_readyz(&app, 200, "slack ok").await;
    // Slack rotates the connection, and the next `apps.connections.open`
    // fails: no socket until the retry after the backoff.
    app.fake.fail_next(
        "apps.connections.open",
        1,
        fake::Fault::Error("internal_error".into()),
    );
    app.fake.disconnect_newest("refresh_requested").await;
    wait_readyz(&app, 503, "slack not ready").await;
    wait_readyz(&app, 200, "slack ok").await;
    assert!(
        app.fake.calls_of("apps.connections.open").len() >= 3,
        "{}",
        app.fake.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stops_answering_is_replaced_and_readyz_says_so_meanwhile() {
    let app = spawn_socket_app().await;
    wait_readyz(&app, 200, "slack ok").await;
    // Half-open: Slack's side neither answers pings nor sends, nor closes.
    let connects = app.fake.silence_newest().await;
    // Seen within the default 30 s (a ping every 10 s; silent for 20 s at a
    // ping is half-open); the deadline leaves room for a loaded machine.
    wait_readyz_within(&app, 503, "slack not ready", Duration::from_secs(60)).await;
    app.fake.wait_socket_connects(connects + 1).await;
    wait_readyz(&app, 200, "slack ok").await;
    command_over_socket(&app, "slack-report month=2026-01").await;
    let run = app.only_run().await;
    finished_and_reported(&app, run.id).await;
}
