//! Slash command answers that are not the ack: a slow core's answer through
//! the command's `response_url` (replacing "Working on it…"), a direct
//! message when that URL fails, never `chat.postEphemeral`; a command that is
//! not valid UTF-8 refused and reported to the core; errors that repeat the
//! input repeat a short piece of it.

use crate::fake_slack::Canned;
use crate::spawn_app;
use axum::http::StatusCode;
use execgov_chat::ReplyKind;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_slow_answer_goes_through_the_response_url() {
    let app = spawn_app().await;
    *app.handler.delay.lock().unwrap() = Duration::from_millis(3000);
    let r = app.command("list").await;
    assert_eq!(r.json()["text"], "Working on it…");
    assert_eq!(r.json()["response_type"], "ephemeral");
    let later = app.fake.wait_for("response_url", 1).await;
    let body = &later[0].body;
    assert_eq!(
        body["response_type"], "ephemeral",
        "for the requester only: {body}"
    );
    assert_eq!(
        body["replace_original"], true,
        "it replaces \"Working on it…\": {body}"
    );
    assert!(
        body["text"].as_str().unwrap().contains("answer to"),
        "the core's answer: {body}"
    );
    assert_eq!(
        later[0].authorization, None,
        "a response_url takes no token"
    );
    assert!(
        app.fake.calls_of("chat.postEphemeral").is_empty()
            && app.fake.calls_of("chat.postMessage").is_empty(),
        "nothing else was sent: {:?}",
        app.fake.calls()
    );
}

#[tokio::test]
async fn an_expired_response_url_falls_back_to_a_direct_message() {
    let app = spawn_app().await;
    *app.handler.delay.lock().unwrap() = Duration::from_millis(3000);
    app.fake.queue(
        "response_url",
        Canned {
            status: 404,
            retry_after: None,
            body: json!("expired_url"),
        },
    );
    let r = app.command("list").await;
    assert_eq!(r.json()["text"], "Working on it…");
    let posted = app.fake.wait_for("chat.postMessage", 1).await;
    let open = app.fake.calls_of("conversations.open");
    assert_eq!(open.len(), 1, "{:?}", app.fake.calls());
    assert_eq!(open[0].body["users"], "U0ALICE", "the requester's DM");
    assert_eq!(
        posted[0].body["channel"], "DU0ALICE",
        "posted in the DM conversations.open gave"
    );
    assert!(
        posted[0].body["text"]
            .as_str()
            .unwrap()
            .contains("answer to"),
        "{}",
        posted[0].body
    );
    assert!(
        app.fake.calls_of("chat.postEphemeral").is_empty(),
        "never chat.postEphemeral: it fails where the bot is not a member"
    );
}

#[tokio::test]
async fn a_command_that_is_not_utf8_is_refused_and_reported() {
    let app = spawn_app().await;
    let body = "token=legacy&team_id=T1&channel_id=C0123&user_id=U0ALICE&command=%2Frun&text=report%FF%FEmonth&trigger_id=1.2.3";
    let r = app
        .signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body,
            0,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["response_type"], "ephemeral");
    assert!(
        r.json()["text"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8"),
        "says why: {}",
        r.body
    );
    assert!(
        app.handler.received().is_empty(),
        "nothing reached the core as a command"
    );
    assert_eq!(
        *app.handler.refused.lock().unwrap(),
        vec![(
            "U0ALICE".to_string(),
            "the command is not valid UTF-8".to_string()
        )],
        "the core hears of the refusal, to audit it"
    );
}

#[tokio::test]
async fn an_error_repeats_at_most_a_short_piece_of_a_huge_command() {
    let app = spawn_app().await;
    app.handler.answer_with(ReplyKind::Error);
    let huge = "x".repeat(1 << 20);
    let r = app.command(&huge).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("answer to") && text.contains(&"x".repeat(150)),
        "the answer is still there: {}",
        &text[..text.len().min(300)]
    );
    assert!(
        text.chars().count() <= execgov_chat::MAX_ANSWER_CHARS + 1,
        "{} characters",
        text.chars().count()
    );
    assert!(!text.contains(&"x".repeat(201)), "the echo is cut at 200");
}
