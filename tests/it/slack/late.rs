//! Answers to slash commands beyond the ack, end to end: the fake takes
//! `response_url` POSTs as Slack does; a command the core is slow to answer
//! (its database is locked for a moment) is acked "Working on it…" and answered
//! through its `response_url`; a command in the bot's direct conversation is
//! answered there; a command that is not UTF-8 is refused and audited; a 1 MiB
//! command's error answer repeats 200 characters of it, not 1 MiB.

use super::payloads::{ALICE, ONCALL};
use super::sign::{self, Signing, SlackRequest};
use super::*;
use serde_json::json;

/// A POST of `body` to `url` on the fake, as the adapter would send it.
async fn post_hook(app: &SlackApp, url: &str, body: &Value) -> sign::Reply {
    let path = url
        .split_once("/hooks/")
        .map(|(_, p)| format!("/hooks/{p}"))
        .expect("a fake response_url");
    let req = SlackRequest {
        path: Box::leak(path.into_boxed_str()),
        content_type: "application/json",
        body: body.to_string(),
        headers: Vec::new(),
        signing: Signing::NoSignature,
    };
    sign::send(app.fake.addr(), &req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_takes_response_url_posts_as_slack_does() {
    let app = spawn_slack_app().await;
    let url = app.fake.response_url();
    let msg = json!({"response_type": "ephemeral", "replace_original": true, "text": "done"});
    for i in 1..=5 {
        let r = post_hook(&app, &url, &msg).await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"), "use {i} of 5");
    }
    let r = post_hook(&app, &url, &msg).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "used_url"),
        "a sixth use is refused"
    );
    let other = app.fake.response_url();
    let r = post_hook(&app, &other, &json!({"response_type": "ephemeral"})).await;
    assert_eq!((r.status, r.body.as_str()), (400, "no_text"));
    app.fake
        .fail_next("response_url", 1, fake::Fault::Error("expired_url".into()));
    let r = post_hook(&app, &other, &msg).await;
    assert_eq!((r.status, r.body.as_str()), (404, "expired_url"));
    let calls = app.fake.calls_of("response_url");
    assert_eq!(calls.len(), 8, "every POST is recorded");
    assert_eq!(calls[0].body["text"], "done");
    assert!(calls[0].ok() && !calls[5].ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_slash_command_is_answered_through_its_response_url() {
    let app = spawn_slack_app().await;
    // Another process holds the database's write lock for a while: the core
    // cannot record the run within Slack's 3 s.
    let db = app.env.path().join("data/execgov.db");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).expect("open the database");
        conn.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(3500));
        conn.execute_batch("COMMIT").expect("release it");
    });
    locked_rx.recv().unwrap();

    let reply = app
        .command(ALICE, ONCALL, "slack-report month=2026-10")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["text"],
        "Working on it…",
        "acked before the answer: {}",
        reply.body
    );
    let late = app.fake.wait_call("response_url", |c| c.ok()).await;
    holder.join().unwrap();
    let run = app.only_run().await;
    assert_eq!(late.body["response_type"], "ephemeral", "{}", late.body);
    assert_eq!(
        late.body["replace_original"], true,
        "it replaces \"Working on it…\": {}",
        late.body
    );
    assert!(
        mentions_run(&late, run.id),
        "the answer names the run: {}",
        late.body
    );
    assert_eq!(late.auth, None, "a response_url takes no token");
    assert!(
        app.fake.calls_of("chat.postEphemeral").is_empty(),
        "never chat.postEphemeral for a late answer:\n{}",
        app.fake.summary()
    );
    crate::helpers::wait_final(&app.engine, run.id).await;
}

/// A `message.im` event: `text` said by alice in her DM with the bot.
fn direct_message(event_id: &str, ts: &str, text: &str) -> Value {
    json!({
        "token": payloads::VERIFICATION_TOKEN,
        "team_id": fake::TEAM,
        "api_app_id": fake::APP_ID,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_700_002_000,
        "event": {
            "type": "message", "channel_type": "im", "channel": "DALICE",
            "user": ALICE.id, "text": text, "ts": ts, "event_ts": ts
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_in_the_bots_direct_conversation_is_answered_there() {
    let app = spawn_slack_app().await;
    let (list_ts, status_ts) = ("1700002000.000100", "1700002001.000100");
    let r = app
        .send(&SlackRequest::event(&direct_message(
            "Ev0DIRECT1",
            list_ts,
            "list",
        )))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = app
        .fake
        .wait_call("chat.postMessage", |c| {
            c.ok() && c.field("thread_ts") == Some(list_ts)
        })
        .await;
    assert_eq!(
        answer.field("channel"),
        Some("DALICE"),
        "answered in the DM"
    );
    assert!(
        answer.shown().contains("slack-report"),
        "the list: {}",
        answer.shown()
    );
    // An error answer too is a plain reply there: the DM is alice's alone,
    // and an ephemeral message may not show in it.
    let r = app
        .send(&SlackRequest::event(&direct_message(
            "Ev0DIRECT2",
            status_ts,
            "status 999",
        )))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let error = app
        .fake
        .wait_call("chat.postMessage", |c| {
            c.ok() && c.field("thread_ts") == Some(status_ts)
        })
        .await;
    assert!(error.shown().contains("no run 999"), "{}", error.shown());
    assert!(
        app.fake.calls_of("chat.postEphemeral").is_empty(),
        "no ephemeral in a DM:\n{}",
        app.fake.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_is_not_utf8_is_refused_and_audited() {
    let app = spawn_slack_app().await;
    let body = format!(
        "token={}&team_id={}&channel_id={}&user_id={}&command=%2Frun&text=slack-report+month%3D2026-10%FF%FE&response_url={}",
        payloads::VERIFICATION_TOKEN,
        fake::TEAM,
        ONCALL.id,
        ALICE.id,
        app.fake.response_url()
    );
    let req = SlackRequest {
        path: "/slack/commands",
        content_type: "application/x-www-form-urlencoded",
        body,
        headers: Vec::new(),
        signing: Signing::Good,
    };
    let r = app.send(&req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["response_type"], "ephemeral", "{}", r.body);
    assert!(
        r.json()["text"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid UTF-8"),
        "says why: {}",
        r.body
    );
    assert!(app.runs().await.is_empty(), "nothing ran");
    let actions: Vec<String> = app
        .all_actions()
        .await
        .into_iter()
        .filter(|a| a != "audit.keyed")
        .collect();
    assert_eq!(
        actions,
        vec!["run.refused".to_string()],
        "the refusal is audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_command_gets_a_short_error() {
    let app = spawn_slack_app().await;
    let huge = "x".repeat(1 << 20);
    let r = app.command(ALICE, ONCALL, &huge).await;
    assert_eq!(r.status, 200);
    let mut text = r.json()["text"].as_str().unwrap_or_default().to_string();
    if text == "Working on it…" {
        // Reading 1 MiB of input can take the core past Slack's 3 s.
        let late = app.fake.wait_call("response_url", |c| c.ok()).await;
        text = late.field("text").unwrap_or_default().to_string();
    }
    assert!(
        text.contains("unknown script") && text.contains(&"x".repeat(200)),
        "it still says what is wrong: {}",
        &text[..text.len().min(300)]
    );
    assert!(
        !text.contains(&"x".repeat(201)),
        "the echo is cut at 200 characters ({} in all)",
        text.len()
    );
    assert!(
        text.chars().count() <= execgov_chat::MAX_ANSWER_CHARS + 1,
        "well under Slack's 40,000: {}",
        text.chars().count()
    );
}
