//! What Slack sends, in its real shapes: slash command form fields, a
//! `block_actions` click on a button the bot posted, a `view_submission` of a
//! modal the bot opened, an `app_mention` event callback, `url_verification`.
//! Clicks and submissions are built from what the bot really sent to the fake
//! (its blocks, its view), so their ids are the adapter's own.

use super::fake::{APP_ID, BOT_ID, BOT_USER, TEAM};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

/// Slack's (deprecated) verification token, sent in every payload.
pub const VERIFICATION_TOKEN: &str = "gIkuvaNzQIHg97ATvDxqgjtO";

/// A Slack user as payloads name them.
#[derive(Debug, Clone, Copy)]
pub struct SlackUser {
    pub id: &'static str,
    pub name: &'static str,
}

pub const ALICE: SlackUser = SlackUser {
    id: "UALICE",
    name: "alice",
};
pub const BOB: SlackUser = SlackUser {
    id: "UBOB",
    name: "bob",
};
pub const CAROL: SlackUser = SlackUser {
    id: "UCAROL",
    name: "carol",
};
pub const DAVE: SlackUser = SlackUser {
    id: "UDAVE",
    name: "dave",
};
/// A Slack account no `[people]` entry maps.
pub const STRANGER: SlackUser = SlackUser {
    id: "USTRANGER",
    name: "stranger",
};

/// A Slack channel: id and name.
#[derive(Debug, Clone, Copy)]
pub struct SlackChannel {
    pub id: &'static str,
    pub name: &'static str,
}

pub const ONCALL: SlackChannel = SlackChannel {
    id: "CONCALL",
    name: "oncall",
};
pub const APPROVALS: SlackChannel = SlackChannel {
    id: "CAPPROVE",
    name: "approvals",
};
/// A channel no `[channels]` name maps.
pub const RANDOM: SlackChannel = SlackChannel {
    id: "CRANDOM",
    name: "random",
};

static SEQ: AtomicU64 = AtomicU64::new(1);

fn seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A fresh `trigger_id` in Slack's format.
pub fn trigger_id() -> String {
    format!(
        "{}.47445629121.803a0bc887a14d10d2c447fce8b6703c",
        398738663015u64 + seq()
    )
}

/// The form fields of `/run {text}` typed by `user` in `channel`.
pub fn slash_command(user: SlackUser, channel: SlackChannel, text: &str) -> Vec<(String, String)> {
    let n = seq();
    [
        ("token", VERIFICATION_TOKEN.to_string()),
        ("team_id", TEAM.to_string()),
        ("team_domain", "execgov-test".to_string()),
        ("channel_id", channel.id.to_string()),
        ("channel_name", channel.name.to_string()),
        ("user_id", user.id.to_string()),
        ("user_name", user.name.to_string()),
        ("command", "/run".to_string()),
        ("text", text.to_string()),
        ("api_app_id", APP_ID.to_string()),
        ("is_enterprise_install", "false".to_string()),
        (
            "response_url",
            format!(
                "https://hooks.slack.com/commands/{TEAM}/{}/96rGlfmibIGlgcZRskXaIFfN",
                397700885554u64 + n
            ),
        ),
        ("trigger_id", trigger_id()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The same slash command as Socket Mode carries it: a JSON object of strings.
pub fn slash_command_json(user: SlackUser, channel: SlackChannel, text: &str) -> Value {
    Value::Object(
        slash_command(user, channel, text)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

/// The button with `action_id` in the blocks the bot posted, and its block's id.
pub fn find_button(blocks: &Value, action_id: &str) -> Option<(Value, String)> {
    for block in blocks.as_array()? {
        let elements = block
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let accessory = block.get("accessory").into_iter();
        for el in elements.chain(accessory) {
            if el["type"] == "button" && el["action_id"] == action_id {
                let block_id = block["block_id"]
                    .as_str()
                    .unwrap_or("execgov_fake_block")
                    .to_string();
                return Some((el.clone(), block_id));
            }
        }
    }
    None
}

/// `user` clicks `button` (from [`find_button`]) on the message `ts` the bot posted in `channel`.
pub fn block_actions(
    user: SlackUser,
    channel: SlackChannel,
    ts: &str,
    posted: &Value,
    button: &(Value, String),
) -> Value {
    let (el, block_id) = button;
    let mut message = json!({"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": ts, "text": posted.get("text").cloned().unwrap_or(json!(""))});
    if let Some(b) = posted.get("blocks") {
        message["blocks"] = b.clone();
    }
    let mut action = json!({
        "action_id": el["action_id"],
        "block_id": block_id,
        "text": el.get("text").cloned().unwrap_or(json!({"type": "plain_text", "text": "Button"})),
        "value": el.get("value").cloned().unwrap_or(json!("")),
        "type": "button",
        "action_ts": format!("1700000{:03}.{:06}", seq() % 1000, seq() % 1_000_000)
    });
    if let Some(style) = el.get("style") {
        action["style"] = style.clone();
    }
    json!({
        "type": "block_actions",
        "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "message", "message_ts": ts, "channel_id": channel.id, "is_ephemeral": false},
        "trigger_id": trigger_id(),
        "team": {"id": TEAM, "domain": "execgov-test"},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": channel.id, "name": channel.name},
        "message": message,
        "state": {"values": {}},
        "response_url": format!("https://hooks.slack.com/actions/{TEAM}/{}/ZkAsVDwZbq5ZHEhT", 1_000_000 + seq()),
        "actions": [action]
    })
}

/// `user` submits the modal `view` (as `views.open` answered it) with `reason`
/// typed into its first input.
pub fn view_submission(user: SlackUser, view: &Value, reason: &str) -> Value {
    let mut view = view.clone();
    let input = view["blocks"]
        .as_array()
        .and_then(|bs| bs.iter().find(|b| b["type"] == "input"))
        .map(|b| {
            (
                b["block_id"].as_str().unwrap_or_default().to_string(),
                b["element"].clone(),
            )
        });
    let mut values = serde_json::Map::new();
    if let Some((block_id, element)) = input {
        let action_id = element["action_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = element["type"]
            .as_str()
            .unwrap_or("plain_text_input")
            .to_string();
        values.insert(
            block_id,
            json!({ action_id: {"type": kind, "value": reason} }),
        );
    }
    view["state"] = json!({ "values": values });
    json!({
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "execgov-test"},
        "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id(),
        "view": view,
        "response_urls": [],
        "is_enterprise_install": false,
        "enterprise": null
    })
}

/// The `event_callback` of `@execgov {text}` said by `user` in `channel`.
pub fn app_mention(
    event_id: &str,
    user: SlackUser,
    channel: SlackChannel,
    text: &str,
    thread_ts: Option<&str>,
) -> Value {
    let ts = format!("1700001{:03}.{:06}", seq() % 1000, seq());
    let mut event = json!({
        "type": "app_mention",
        "user": user.id,
        "text": format!("<@{BOT_USER}> {text}"),
        "ts": ts,
        "channel": channel.id,
        "event_ts": ts,
        "team": TEAM,
        "client_msg_id": format!("1b1d2e4a-{:04}-4c3b-9d58-3f0c7f8ad7c1", seq() % 10000)
    });
    if let Some(t) = thread_ts {
        event["thread_ts"] = json!(t);
    }
    json!({
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_700_001_000,
        "authorizations": [{"enterprise_id": null, "team_id": TEAM, "user_id": BOT_USER, "is_bot": true, "is_enterprise_install": false}],
        "is_ext_shared_channel": false,
        "event_context": "4-eyJldCI6ImFwcF9tZW50aW9uIiwidGlkIjoiVDEiLCJhaWQiOiJBMSIsImNpZCI6IkNPTkNBTEwifQ"
    })
}

/// What Slack sends when the Events API URL is configured.
pub fn url_verification(challenge: &str) -> Value {
    json!({"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"})
}
