//! The chat notifier, through a recording adapter: a run asked in chat gets one
//! status message, edited as it moves, and its result in that message's thread;
//! a risky run's approval request goes to the approver channel and is edited
//! when decided, with a note in the requester's thread; a failed post is retried
//! and shown once; a refusal never reaches the channel.

use crate::helpers::*;
use execgov::chat::notifier::Notifier;
use execgov::types::{Place, Platform};
use execgov_chat::{ChatAdapter, ChatError, Message, MessageRef, Outbound};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Call {
    pub edit_of: Option<String>,
    pub id: String,
    pub out: Outbound,
}

/// A ChatAdapter that records every post and edit, and can fail on demand.
#[derive(Default)]
pub struct Recorder {
    calls: Mutex<Vec<Call>>,
    fail_next_posts: Mutex<u32>,
    changed: tokio::sync::Notify,
}

impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn fail_next_posts(&self, n: u32) {
        *self.fail_next_posts.lock().unwrap() = n;
    }

    /// Waits (on the recorder's own signal) until `done` holds for the calls.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.changed.notified();
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; calls: {calls:#?}"
            );
            let _ = tokio::time::timeout(Duration::from_millis(500), notified).await;
        }
    }
}

#[async_trait::async_trait]
impl ChatAdapter for Recorder {
    fn platform(&self) -> Platform {
        Platform::Slack
    }

    async fn post(&self, msg: &Outbound) -> Result<MessageRef, ChatError> {
        {
            let mut fail = self.fail_next_posts.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(ChatError::Transient {
                    message: "429".into(),
                    retry_after_ms: Some(50),
                });
            }
        }
        let mut calls = self.calls.lock().unwrap();
        let id = format!("m{}", calls.len() + 1);
        calls.push(Call {
            edit_of: None,
            id: id.clone(),
            out: msg.clone(),
        });
        drop(calls);
        self.changed.notify_waiters();
        Ok(MessageRef {
            place: msg.place.clone(),
            id,
        })
    }

    async fn edit(&self, target: &MessageRef, msg: &Outbound) -> Result<(), ChatError> {
        let mut calls = self.calls.lock().unwrap();
        let id = format!("m{}", calls.len() + 1);
        calls.push(Call {
            edit_of: Some(target.id.clone()),
            id,
            out: msg.clone(),
        });
        drop(calls);
        self.changed.notify_waiters();
        Ok(())
    }
}

fn is_result(c: &Call) -> bool {
    matches!(c.out.message, Message::RunResult { .. })
}

fn status_state(c: &Call) -> Option<String> {
    match &c.out.message {
        Message::RunStatus { run } => Some(run.state.clone()),
        _ => None,
    }
}

async fn with_notifier(backend: Backend) -> (Running, Arc<Recorder>, CancellationToken) {
    let app = start(backend).await;
    let rec = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    // Quick means within 3 s here, not 500 ms: runs of a loaded test machine count too.
    let notifier = Notifier::new(
        app.engine.clone(),
        vec![rec.clone() as Arc<dyn ChatAdapter>],
    )
    .quick_within(Duration::from_secs(3));
    tokio::spawn(notifier.run_until_stopped(stop.clone()));
    (app, rec, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_gets_one_status_message_edited_and_its_result_in_the_thread() {
    let (app, rec, stop) = with_notifier(Backend::Sqlite).await;
    let r = say(&app.engine, &person("alice"), "run echo-args note=hi").await;
    let id = r.run.unwrap().id;
    // The result goes out first (it is what the requester waits for), then the status edit.
    let calls = rec
        .wait_for("the result and the final status", |c| {
            c.iter().any(is_result)
                && c.iter().rev().find_map(status_state).as_deref() == Some("succeeded")
        })
        .await;

    let first = &calls[0];
    assert!(
        first.edit_of.is_none() && status_state(first).is_some(),
        "first a status post: {first:?}"
    );
    assert_eq!(first.out.place, oncall(), "posted where it was asked");
    let posts_of_status = calls
        .iter()
        .filter(|c| c.edit_of.is_none() && status_state(c).is_some())
        .count();
    assert_eq!(
        posts_of_status, 1,
        "one status message, then edits: {calls:#?}"
    );
    let last_status = calls.iter().rev().find_map(status_state).unwrap();
    assert_eq!(
        last_status, "succeeded",
        "the status message ends edited to the outcome"
    );
    assert!(
        calls
            .iter()
            .filter(|c| c.edit_of.is_some())
            .all(|c| c.edit_of.as_deref() == Some(&first.id))
    );

    let result = calls.iter().find(|c| is_result(c)).unwrap();
    assert_eq!(
        result.out.place.thread.as_deref(),
        Some(first.id.as_str()),
        "the result goes in the status message's thread"
    );
    let Message::RunResult { run } = &result.out.message else {
        unreachable!()
    };
    assert!(
        run.audit_link.contains(&format!("/runs/{id}?t=")),
        "with the audit link"
    );
    assert!(
        run.output_tail
            .as_deref()
            .unwrap_or("")
            .contains("arg=[hi]"),
        "and the output tail"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_requests_go_to_the_approver_channel_and_are_edited_when_decided() {
    let (app, rec, stop) = with_notifier(Backend::Sqlite).await;
    let marker = app.env.path().join("m");
    let run = say(
        &app.engine,
        &person("alice"),
        &format!("run risky marker={}", marker.display()),
    )
    .await
    .run
    .unwrap();
    let approval_place = Place::new(Platform::Slack, "CAPPROVE");
    let calls = rec
        .wait_for("the approval request", |c| {
            c.iter()
                .any(|c| matches!(c.out.message, Message::ApprovalRequest { .. }))
        })
        .await;
    let req = calls
        .iter()
        .find(|c| matches!(c.out.message, Message::ApprovalRequest { .. }))
        .unwrap();
    assert_eq!(
        req.out.place, approval_place,
        "request in the approvals channel"
    );
    let Message::ApprovalRequest { approval } = &req.out.message else {
        unreachable!()
    };
    assert!(approval.open, "open for decisions");
    assert!(
        approval.needed.contains("bob") && approval.needed.contains("dave"),
        "{}",
        approval.needed
    );

    say(&app.engine, &person("bob"), &format!("approve {}", run.id)).await;
    let req_id = req.id.clone();
    let closed = move |c: &Call| {
        c.edit_of.as_deref() == Some(req_id.as_str())
            && matches!(&c.out.message, Message::ApprovalRequest { approval } if !approval.open)
    };
    rec.wait_for("the result and the request edited to closed", |c| {
        c.iter().any(is_result) && c.iter().any(&closed)
    })
    .await;
    let calls = rec
        .wait_for("the decision note", |c| {
            c.iter().any(|c| matches!(&c.out.message, Message::Text { text } if text.contains("bob approved")))
        })
        .await;
    let note = calls
        .iter()
        .find(|c| matches!(&c.out.message, Message::Text { text } if text.contains("bob approved")))
        .unwrap();
    assert_eq!(
        note.out.place.channel, "CONCALL",
        "the note is in the requester's thread"
    );
    assert!(note.out.place.thread.is_some());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_post_is_retried_and_shown_once() {
    let (app, rec, stop) = with_notifier(Backend::Sqlite).await;
    rec.fail_next_posts(2);
    say(&app.engine, &person("alice"), "run echo-args").await;
    let calls = rec
        .wait_for("the result after retries", |c| c.iter().any(is_result))
        .await;
    let status_posts = calls
        .iter()
        .filter(|c| c.edit_of.is_none() && status_state(c).is_some())
        .count();
    assert_eq!(
        status_posts, 1,
        "retried until it worked, and only once: {calls:#?}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_never_reaches_the_channel() {
    let (app, rec, stop) = with_notifier(Backend::Sqlite).await;
    let r = say(&app.engine, &person("bob"), "run risky marker=x").await;
    assert!(r.is_error(), "bob may not ask for risky");
    // A run after it shows the notifier is working; the refusal left no message.
    say(&app.engine, &person("alice"), "run echo-args").await;
    let calls = rec
        .wait_for("the next result", |c| c.iter().any(is_result))
        .await;
    assert!(
        calls.iter().all(|c| status_state(c)
            .is_none_or(|_| !format!("{:?}", c.out.message).contains("\"risky\""))),
        "no status message for the refused run: {calls:#?}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_scheduled_run_posts_to_its_channels_and_mentions_its_people() {
    let (app, rec, stop) = with_notifier(Backend::Sqlite).await;
    let dir = app.env.path().join("manifests");
    std::fs::write(dir.join("scripts/fails.sh"), "echo broken >&2\nexit 3\n").unwrap();
    std::fs::write(
        dir.join("nightly.toml"),
        r#"name = "nightly"
description = "A nightly inspection that fails"
command = ["sh", "scripts/fails.sh"]
[access]
run = ["group:sre"]
[[schedule]]
name = "night"
cron = "0 0 3 * * *"
timezone = "Europe/Berlin"
post_to = ["oncall"]
notify_on_failure = ["person:bob", "group:sre"]
"#,
    )
    .unwrap();
    let (catalog, problems) = execgov::manifest::load_catalog(&dir, app.engine.config());
    assert!(problems.is_empty(), "{problems:?}");
    app.engine.replace_catalog(catalog);
    let manifest = app.engine.manifest("nightly").unwrap();
    let actor = execgov::types::Actor::Schedule {
        id: "nightly/night".into(),
    };
    let place = Place::new(Platform::Schedule, "nightly/night");
    let args = manifest.validate_args(&[]).unwrap();
    let reply = app
        .engine
        .request_typed(
            &actor,
            &place,
            &manifest,
            args,
            Some("nightly/night@1".into()),
            execgov::store::Durability::Relaxed,
        )
        .await
        .unwrap();
    assert!(!reply.is_error(), "{}", reply.text);

    let calls = rec
        .wait_for("the scheduled result", |c| c.iter().any(is_result))
        .await;
    let status = calls.iter().find(|c| status_state(c).is_some()).unwrap();
    assert_eq!(
        status.out.place,
        oncall(),
        "posted to the post_to channel's Slack place"
    );
    let result = calls.iter().find(|c| is_result(c)).unwrap();
    let Message::RunResult { run } = &result.out.message else {
        unreachable!()
    };
    assert_eq!(run.state, "failed");
    let mentioned: Vec<&str> = run.mentions.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        mentioned,
        vec!["UALICE", "UBOB", "UCAROL"],
        "bob and the sre group, once each, as Slack users"
    );
    stop.cancel();
}

/// Asks for `line` as alice in a thread of the on-call channel.
async fn say_in_thread(app: &Running, line: &str, thread: &str) -> execgov::types::RunId {
    let command = execgov::command::Command::parse(line).expect("test commands parse");
    let place = Place {
        thread: Some(thread.to_string()),
        ..oncall()
    };
    let reply = app
        .engine
        .handle(execgov::engine::Request {
            actor: person("alice"),
            place,
            command,
            private: true,
            files: Vec::new(),
        })
        .await;
    reply.run.expect("a run").id
}

fn of_run(c: &Call, id: execgov::types::RunId) -> bool {
    match &c.out.message {
        Message::RunStatus { run } | Message::RunResult { run } => run.run_id == id.to_string(),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_script_asked_in_a_thread_answers_with_its_result_first() {
    let (app, rec, stop) = with_notifier(Backend::Sqlite).await;
    // No history yet: the status message goes out at once, the result after it.
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = say_in_thread(&app, "run echo-args note=hi", &format!("T{i}")).await;
        rec.wait_for("the result", |c| {
            c.iter().any(|c| is_result(c) && of_run(c, id))
        })
        .await;
        ids.push(id);
    }
    let calls = rec.calls();
    let first = calls.iter().find(|c| of_run(c, ids[0])).unwrap();
    assert!(
        status_state(first).is_some_and(|s| s != "succeeded"),
        "a script without a record of quick runs gets its status at once: {first:?}"
    );

    // Three quick runs on record: the next one's result comes first, then its status.
    let id = say_in_thread(&app, "run echo-args note=again", "T9").await;
    let calls = rec
        .wait_for("the result and the status", |c| {
            c.iter().any(|c| is_result(c) && of_run(c, id))
                && c.iter().any(|c| status_state(c).is_some() && of_run(c, id))
        })
        .await;
    let mine: Vec<&Call> = calls.iter().filter(|c| of_run(c, id)).collect();
    assert!(is_result(mine[0]), "the result first: {mine:#?}");
    assert_eq!(mine[0].out.place.thread.as_deref(), Some("T9"));
    assert_eq!(
        status_state(mine[1]).as_deref(),
        Some("succeeded"),
        "then one status message, already showing the outcome: {mine:#?}"
    );
    assert_eq!(mine.len(), 2, "and no edit: {mine:#?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_scripts_slow_run_still_gets_its_status_while_going() {
    let (app, rec, stop) = with_notifier(Backend::Sqlite).await;
    for i in 0..3 {
        let id = say_in_thread(&app, "run echo-args note=hi", &format!("T{i}")).await;
        rec.wait_for("the result", |c| {
            c.iter().any(|c| is_result(c) && of_run(c, id))
        })
        .await;
    }
    // Held back from the pool: the run stays queued past the hold.
    app.stop_pool().await;
    let id = say_in_thread(&app, "run echo-args note=slow", "T9").await;
    let calls = rec
        .wait_for("the status while queued", |c| {
            c.iter().any(|c| status_state(c).is_some() && of_run(c, id))
        })
        .await;
    let status = calls
        .iter()
        .find(|c| status_state(c).is_some() && of_run(c, id))
        .unwrap();
    assert_eq!(status_state(status).as_deref(), Some("queued"));
    stop.cancel();
}
