//! A file attached to the message that asks for a run (an `app_mention` with
//! `files`, served by the fake Slack's file endpoint to the bot token only)
//! reaches the script; a 20 MB file for a 1 MB `max_size` is refused in the
//! thread and nothing runs.

use super::payloads::{self, ALICE, ONCALL};
use super::sign::SlackRequest;
use super::*;
use crate::helpers::wait_final;
use execgov::types::RunState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_attached_in_slack_reaches_the_script_and_a_big_one_is_refused() {
    let app = spawn_slack_app_with(Options {
        files: true,
        ..Options::default()
    })
    .await;
    let data = crate::files::csv(4321);
    let shared = app.fake.host_file("from-slack.csv", data);
    let mut event = payloads::app_mention("Ev0FILE1", ALICE, ONCALL, "run import-csv", None);
    event["event"]["files"] = serde_json::json!([shared.clone()]);
    event["event"]["subtype"] = serde_json::json!("file_share");
    let r = app.send(&SlackRequest::event(&event)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let run = app.wait_runs(1).await.remove(0);
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    let out = done.output_tail.unwrap_or_default();
    assert!(
        out.contains("name: from-slack.csv") && out.contains("bytes: 4321"),
        "{out}"
    );
    assert_eq!(app.fake.downloads(shared["id"].as_str().unwrap()), 1);

    // 20 MB for a 1 MB parameter: refused in the thread, nothing recorded.
    let big = app
        .fake
        .host_file("huge.csv", crate::files::csv(20 * 1024 * 1024));
    let mut event = payloads::app_mention("Ev0FILE2", ALICE, ONCALL, "run import-csv", None);
    event["event"]["files"] = serde_json::json!([big]);
    let r = app.send(&SlackRequest::event(&event)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let told = app
        .fake
        .wait_call("chat.postEphemeral", |c| c.shown().contains("huge.csv"))
        .await;
    assert!(
        told.shown().contains("takes at most 1.0 MiB"),
        "the refusal says why: {}",
        told.shown()
    );
    assert_eq!(told.field("user"), Some(ALICE.id));
    assert_eq!(app.runs().await.len(), 1, "the big file ran nothing");
}
