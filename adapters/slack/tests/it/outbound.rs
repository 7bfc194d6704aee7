//! The core's messages out: Block Kit posts and edits, ephemeral notes, results
//! with their files in the thread, and Slack's errors sorted for retrying.

use crate::fake_slack::Canned;
use crate::spawn_app;
use execgov_chat::{
    ChatAdapter, ChatError, Message, Outbound, OutboundFile, Place, Platform, PlatformUser, RunView,
};
use serde_json::json;

fn run_view() -> RunView {
    serde_json::from_str(include_str!("../fixtures/run_running.json")).unwrap()
}

fn out(place: Place, message: Message) -> Outbound {
    Outbound {
        place,
        message,
        only_to: None,
    }
}

#[tokio::test]
async fn status_is_posted_as_blocks_and_edited_in_place() {
    let app = spawn_app().await;
    let place = Place::new(Platform::Slack, "C0123");
    let msg = out(place.clone(), Message::RunStatus { run: run_view() });
    let posted = app.slack.post(&msg).await.expect("posted");
    let call = &app.fake.calls_of("chat.postMessage")[0];
    assert_eq!(
        call.authorization.as_deref(),
        Some("Bearer xoxb-test-token")
    );
    assert_eq!(call.body["channel"], "C0123");
    assert!(
        call.body["blocks"]
            .as_array()
            .is_some_and(|b| !b.is_empty()),
        "{}",
        call.body
    );
    assert_eq!(call.body["text"], msg.message.fallback_text());
    assert!(
        call.body.get("thread_ts").is_none(),
        "a status message starts its own thread"
    );
    assert_eq!(posted.place, place);
    assert!(posted.id.starts_with("1700000000."), "the id is Slack's ts");

    let mut done = run_view();
    done.state = "succeeded".into();
    done.finished = true;
    app.slack
        .edit(&posted, &out(place, Message::RunStatus { run: done }))
        .await
        .expect("edited");
    let update = &app.fake.calls_of("chat.update")[0];
    assert_eq!(update.body["channel"], "C0123");
    assert_eq!(update.body["ts"], posted.id.as_str());
    assert!(update.body["blocks"].to_string().contains("Succeeded"));
}

#[tokio::test]
async fn only_to_posts_ephemerally_in_the_thread() {
    let app = spawn_app().await;
    let mut place = Place::new(Platform::Slack, "C0123");
    place.thread = Some("1.5".into());
    let msg = Outbound {
        place,
        message: Message::Text {
            text: "not allowed here".into(),
        },
        only_to: Some(PlatformUser {
            platform: Platform::Slack,
            id: "U0ALICE".into(),
        }),
    };
    app.slack.post(&msg).await.expect("posted");
    let call = &app.fake.calls_of("chat.postEphemeral")[0];
    assert_eq!(call.body["user"], "U0ALICE");
    assert_eq!(call.body["thread_ts"], "1.5");
    assert!(app.fake.calls_of("chat.postMessage").is_empty());
}

#[tokio::test]
async fn a_result_brings_its_output_and_files_into_the_thread() {
    let app = spawn_app().await;
    let dir = std::env::temp_dir().join(format!("execgov-slack-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("report.csv");
    std::fs::write(&csv, "month,rows\n2026-10,1204\n").unwrap();
    let mut run = run_view();
    run.state = "succeeded".into();
    run.finished = true;
    run.exit_code = Some(0);
    let tail: String = (0..1000).map(|i| format!("row {i} exported\n")).collect();
    run.output_tail = Some(tail.clone());
    run.files = vec![OutboundFile {
        name: "report.csv".into(),
        path: csv,
    }];
    let mut place = Place::new(Platform::Slack, "C0123");
    place.thread = Some("1700000000.000001".into());
    app.slack
        .post(&out(place, Message::RunResult { run }))
        .await
        .expect("posted");
    let post = &app.fake.calls_of("chat.postMessage")[0];
    assert_eq!(
        post.body["thread_ts"], "1700000000.000001",
        "the result goes in the thread"
    );
    for block in post.body["blocks"].as_array().unwrap() {
        if let Some(t) = block["text"]["text"].as_str() {
            assert!(t.chars().count() <= 3000, "within Slack's limit");
        }
    }
    let reserved = app.fake.calls_of("files.getUploadURLExternal");
    assert_eq!(reserved.len(), 2, "output.txt and the run's file");
    assert_eq!(reserved[0].body["filename"], "output.txt");
    assert_eq!(
        reserved[0].body["length"],
        tail.len().to_string(),
        "length is in bytes"
    );
    assert_eq!(reserved[1].body["filename"], "report.csv");
    let uploads: Vec<_> = app
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.method.starts_with("upload:"))
        .collect();
    assert_eq!(uploads.len(), 2);
    assert_eq!(
        uploads[0].raw.as_ref(),
        tail.as_bytes(),
        "the whole output is uploaded"
    );
    assert_eq!(uploads[1].raw.as_ref(), b"month,rows\n2026-10,1204\n");
    let complete = app.fake.calls_of("files.completeUploadExternal");
    assert_eq!(complete.len(), 2);
    assert_eq!(complete[1].body["channel_id"], "C0123");
    assert_eq!(complete[1].body["thread_ts"], "1700000000.000001");
    assert_eq!(complete[1].body["files"][0]["title"], "report.csv");
    assert!(complete[1].body["files"][0]["id"].is_string());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn rate_limits_are_waited_out_then_reported_as_transient() {
    let app = spawn_app().await;
    let limited = |s| Canned {
        status: 429,
        retry_after: Some(s),
        body: json!({ "ok": false, "error": "ratelimited" }),
    };
    app.fake.queue("chat.postMessage", limited(1));
    let msg = out(
        Place::new(Platform::Slack, "C0123"),
        Message::Text { text: "hi".into() },
    );
    let started = std::time::Instant::now();
    app.slack.post(&msg).await.expect("posted after one wait");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(app.fake.calls_of("chat.postMessage").len(), 2);

    for _ in 0..4 {
        app.fake.queue("chat.postMessage", limited(0));
    }
    match app.slack.post(&msg).await {
        Err(ChatError::Transient { retry_after_ms, .. }) => assert_eq!(retry_after_ms, Some(0)),
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert_eq!(
        app.fake.calls_of("chat.postMessage").len(),
        6,
        "one call and three retries"
    );
}

#[tokio::test]
async fn slack_errors_are_sorted_by_whether_a_retry_helps() {
    let app = spawn_app().await;
    let failing = |code: &str| Canned {
        status: 200,
        retry_after: None,
        body: json!({ "ok": false, "error": code }),
    };
    let msg = out(
        Place::new(Platform::Slack, "C0NONE"),
        Message::Text { text: "hi".into() },
    );
    app.fake
        .queue("chat.postMessage", failing("channel_not_found"));
    match app.slack.post(&msg).await {
        Err(ChatError::Permanent(m)) => assert!(m.contains("channel_not_found"), "{m}"),
        other => panic!("expected permanent, got {other:?}"),
    }
    app.fake
        .queue("chat.postMessage", failing("internal_error"));
    assert!(app.slack.post(&msg).await.unwrap_err().is_transient());
    app.fake.queue("chat.update", failing("invalid_auth"));
    let target = execgov_chat::MessageRef {
        place: Place::new(Platform::Slack, "C1"),
        id: "1.1".into(),
    };
    assert!(
        !app.slack
            .edit(&target, &msg)
            .await
            .unwrap_err()
            .is_transient()
    );
}
