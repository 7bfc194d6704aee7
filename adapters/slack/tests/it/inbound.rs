//! Slack's HTTP requests in: signatures first, then commands, clicks and events
//! reach the core with the signed user as the actor, answered where they belong.

use crate::{SECRET, spawn_app};
use axum::http::StatusCode;
use execgov_chat::{InboundContent, Place, Platform, ReplyKind};
use execgov_slack::sign;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn unsigned_stale_or_forged_requests_do_nothing() {
    let app = spawn_app().await;
    let body = "command=%2Frun&text=list&user_id=U1&channel_id=C1";
    let form = "application/x-www-form-urlencoded";
    let unsigned = app.send("/slack/commands", form, body, None).await;
    assert_eq!(
        unsigned.status,
        StatusCode::UNAUTHORIZED,
        "no signature, no entry"
    );
    let stale = app.signed("/slack/commands", form, body, 301).await;
    assert_eq!(
        stale.status,
        StatusCode::UNAUTHORIZED,
        "a replay after 5 min is refused"
    );
    let future = app.signed("/slack/commands", form, body, -301).await;
    assert_eq!(
        future.status,
        StatusCode::UNAUTHORIZED,
        "a timestamp from the future is refused"
    );
    let ts = crate::now().to_string();
    let forged = sign("not-the-secret", &ts, body.as_bytes());
    let forged = app
        .send("/slack/commands", form, body, Some((ts.clone(), forged)))
        .await;
    assert_eq!(
        forged.status,
        StatusCode::UNAUTHORIZED,
        "another secret is refused"
    );
    let tampered = sign(SECRET, &ts, body.as_bytes());
    let tampered = app
        .send(
            "/slack/commands",
            form,
            &body.replace("U1", "U2"),
            Some((ts, tampered)),
        )
        .await;
    assert_eq!(
        tampered.status,
        StatusCode::UNAUTHORIZED,
        "a changed body is refused"
    );
    for path in ["/slack/interactions", "/slack/events"] {
        let r = app.send(path, "application/json", "{}", None).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{path} checks signatures too"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(app.handler.received().is_empty(), "the core heard nothing");
    assert!(app.fake.calls().is_empty(), "Slack was not called");
}

#[tokio::test]
async fn slash_command_is_an_implicit_run_answered_ephemerally() {
    let app = spawn_app().await;
    let r = app.command("report-export month=2026-10").await;
    assert_eq!(r.status, StatusCode::OK);
    let ack = r.json();
    assert_eq!(
        ack["response_type"], "ephemeral",
        "answers go to the requester only"
    );
    assert!(
        ack["text"].as_str().unwrap().contains("&lt;ok&gt;"),
        "escaped: {ack}"
    );
    let got = app.handler.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].actor.id, "U0ALICE");
    assert_eq!(got[0].actor.platform, Platform::Slack);
    assert_eq!(got[0].place, Place::new(Platform::Slack, "C0123"));
    assert_eq!(
        got[0].content,
        InboundContent::Text {
            text: "report-export month=2026-10".into(),
            implicit_run: true
        }
    );
    assert!(
        app.fake.calls().is_empty(),
        "nothing is posted in the channel"
    );
}

fn click(action_id: &str) -> serde_json::Value {
    json!({
        "type": "block_actions",
        "user": { "id": "U0BOB", "username": "bob", "team_id": "T1" },
        "api_app_id": "A1",
        "team": { "id": "T1", "domain": "acme" },
        "trigger_id": "111.222.333",
        "container": { "type": "message", "message_ts": "1700000000.000100", "channel_id": "C0456", "is_ephemeral": false },
        "channel": { "id": "C0456", "name": "approvals" },
        "actions": [{ "action_id": action_id, "block_id": "execgov_decide_31", "text": { "type": "plain_text", "text": "Approve" }, "value": "31", "style": "primary", "type": "button", "action_ts": "1700000005.1" }]
    })
}

#[tokio::test]
async fn approve_click_acts_as_the_clicking_user_and_explains_refusals_privately() {
    let app = spawn_app().await;
    app.handler.answer_with(ReplyKind::Error);
    let r = app.interaction(click("execgov_approve")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty(), "an empty 200 acks a click");
    let got = app.handler.wait_for(1).await;
    assert_eq!(got[0].actor.id, "U0BOB", "the actor is the signed user");
    assert_eq!(
        got[0].content,
        InboundContent::Approve {
            run_id: "31".into(),
            code: None
        }
    );
    let note = app.fake.wait_for("chat.postEphemeral", 1).await;
    assert_eq!(note[0].body["user"], "U0BOB");
    assert_eq!(note[0].body["channel"], "C0456");
    assert!(
        app.fake.calls_of("chat.postMessage").is_empty(),
        "no noise in the channel"
    );
}

#[tokio::test]
async fn deny_asks_for_a_reason_in_a_modal() {
    let app = spawn_app().await;
    app.handler.answer_with(ReplyKind::Decided);
    let r = app.interaction(click("execgov_deny")).await;
    assert_eq!(r.status, StatusCode::OK);
    let open = app.fake.wait_for("views.open", 1).await;
    assert_eq!(open[0].body["trigger_id"], "111.222.333");
    let view = &open[0].body["view"];
    assert_eq!(view["callback_id"], "execgov_deny");
    assert!(
        app.handler.received().is_empty(),
        "a click alone does not deny"
    );
    let submit = json!({
        "type": "view_submission",
        "team": { "id": "T1" },
        "user": { "id": "U0BOB" },
        "view": {
            "id": "V1", "type": "modal", "callback_id": "execgov_deny",
            "private_metadata": view["private_metadata"],
            "state": { "values": { "reason": { "reason": { "type": "plain_text_input", "value": "not during the freeze" } } } }
        }
    });
    let r = app.interaction(submit).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty(), "an empty 200 closes the modal");
    let got = app.handler.wait_for(1).await;
    assert_eq!(got[0].actor.id, "U0BOB");
    assert_eq!(got[0].place.channel, "C0456");
    assert_eq!(
        got[0].content,
        InboundContent::Deny {
            run_id: "31".into(),
            reason: Some("not during the freeze".into())
        }
    );
}

#[tokio::test]
async fn url_verification_echoes_the_challenge() {
    let app = spawn_app().await;
    let r = app
        .event(json!({ "token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification" }))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
}

fn mention(event_id: &str, user: &str) -> serde_json::Value {
    json!({
        "token": "t", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": 1700000000,
        "event": {
            "type": "app_mention", "user": user, "text": "<@U0BOT> list",
            "ts": "1700000000.000200", "channel": "C0789", "event_ts": "1700000000.000200"
        }
    })
}

#[tokio::test]
async fn a_mention_is_handled_once_and_answered_in_its_thread() {
    let app = spawn_app().await;
    let r = app.event(mention("Ev1", "U0CAROL")).await;
    assert_eq!(r.status, StatusCode::OK);
    let got = app.handler.wait_for(1).await;
    assert_eq!(got[0].event_id.as_deref(), Some("Ev1"));
    assert_eq!(got[0].place.thread.as_deref(), Some("1700000000.000200"));
    assert_eq!(
        got[0].content,
        InboundContent::Text {
            text: "list".into(),
            implicit_run: false
        }
    );
    let reply = app.fake.wait_for("chat.postMessage", 1).await;
    assert_eq!(reply[0].body["channel"], "C0789");
    assert_eq!(reply[0].body["thread_ts"], "1700000000.000200");
    let retry = app.event(mention("Ev1", "U0CAROL")).await;
    assert_eq!(retry.status, StatusCode::OK, "a redelivery is acked");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.handler.received().len(),
        1,
        "a redelivered event is handled once"
    );
}

#[tokio::test]
async fn the_bots_own_messages_are_ignored() {
    let app = spawn_app().await;
    app.event(mention("Ev2", "U0BOT")).await;
    app.fake.wait_for("auth.test", 1).await;
    let dm = json!({
        "type": "event_callback", "event_id": "Ev3",
        "event": { "type": "message", "channel_type": "im", "user": "U0DAVE", "text": "help", "ts": "5.1", "channel": "D1" }
    });
    app.event(dm).await;
    let got = app.handler.wait_for(1).await;
    assert_eq!(got.len(), 1, "only Dave's DM reached the core");
    assert_eq!(got[0].actor.id, "U0DAVE");
    assert_eq!(
        app.fake.calls_of("auth.test").len(),
        1,
        "auth.test is asked once"
    );
}
