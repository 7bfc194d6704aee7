//! The Events API: `url_verification`, and `event_callback` for mentions of the
//! bot and direct messages to it. Each event is handled once (Slack redelivers
//! an event it thinks was not acked, with `X-Slack-Retry-Num`), after the ack.

use crate::Slack;
use execgov_chat::{Inbound, InboundContent, Place, Platform, PlatformUser, ReplyKind};
use serde::Deserialize;
use std::sync::Arc;

/// An Events API request body (or a Socket Mode `events_api` payload).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum EventsBody {
    UrlVerification {
        challenge: String,
    },
    EventCallback {
        #[serde(default)]
        event_id: Option<String>,
        event: Box<Event>,
    },
    #[serde(other)]
    Other,
}

/// The fields of a `message` / `app_mention` event the adapter reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    subtype: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    channel_type: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    thread_ts: Option<String>,
    /// Files shared with the message (`file_share`), for file parameters.
    #[serde(default)]
    files: Vec<crate::download::SharedFile>,
}

/// How to answer the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EventsAck {
    /// `{"challenge": …}` for `url_verification`.
    Challenge(String),
    /// An empty 200.
    Ok,
}

/// A message meant for the bot: who, where (the thread to answer in), what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Said {
    user: String,
    channel: String,
    thread_ts: String,
    text: String,
    /// Said in the bot's direct conversation (its App Home's messages tab).
    direct: bool,
    files: Vec<crate::download::SharedFile>,
}

/// Records the event as seen and starts handling it; returns the ack.
pub(crate) async fn on_events(slack: &Arc<Slack>, body: EventsBody) -> EventsAck {
    let (event_id, event) = match body {
        EventsBody::UrlVerification { challenge } => return EventsAck::Challenge(challenge),
        EventsBody::Other => return EventsAck::Ok,
        EventsBody::EventCallback { event_id, event } => (event_id, event),
    };
    let Some(said) = said(&event) else {
        return EventsAck::Ok;
    };
    let Some(event_id) = event_id.filter(|id| !id.is_empty()) else {
        tracing::warn!("event without an event_id ignored");
        return EventsAck::Ok;
    };
    if !slack.handler.first_time(&event_id).await {
        tracing::debug!(event_id, "event redelivered; handled already");
        return EventsAck::Ok;
    }
    let slack = slack.clone();
    tokio::spawn(async move { slack.on_said(event_id, said).await });
    EventsAck::Ok
}

/// A mention of the bot, or a direct message to it, from a person.
fn said(e: &Event) -> Option<Said> {
    let addressed = match e.kind.as_str() {
        "app_mention" => true,
        "message" => e.channel_type.as_deref() == Some("im"),
        _ => false,
    };
    // A message with files is a `file_share`; other subtypes are edits and the like.
    let plain = e.subtype.is_none() || e.subtype.as_deref() == Some("file_share");
    if !addressed || e.bot_id.is_some() || !plain {
        return None;
    }
    let ts = e.ts.clone()?;
    Some(Said {
        user: e.user.clone().filter(|u| !u.is_empty())?,
        channel: e.channel.clone().filter(|c| !c.is_empty())?,
        thread_ts: e.thread_ts.clone().unwrap_or(ts),
        text: strip_mentions(e.text.as_deref().unwrap_or("")).to_string(),
        direct: e.channel_type.as_deref() == Some("im"),
        files: e.files.clone(),
    })
}

/// `<@U0BOT> run x` → `run x` (every leading mention, with its spaces).
fn strip_mentions(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix("<@") {
        match after.find('>') {
            Some(end) => rest = after[end + 1..].trim_start(),
            None => break,
        }
    }
    rest.trim_end()
}

impl Slack {
    async fn on_said(self: Arc<Self>, event_id: String, said: Said) {
        if self.bot_user_id().await == Some(said.user.as_str()) {
            return;
        }
        let files = match self.download_all(&said.files).await {
            Ok(f) => f,
            Err(why) => {
                self.tell(&said.channel, &said.user, Some(&said.thread_ts), &why)
                    .await;
                return;
            }
        };
        let inbound = Inbound {
            event_id: Some(event_id),
            actor: PlatformUser {
                platform: Platform::Slack,
                id: said.user.clone(),
            },
            place: Place {
                platform: Platform::Slack,
                channel: said.channel.clone(),
                thread: Some(said.thread_ts.clone()),
            },
            content: InboundContent::Text {
                text: said.text,
                implicit_run: false,
            },
            direct: said.direct,
            files,
        };
        let reply = self.handler.handle(inbound).await;
        if reply.text.trim().is_empty() {
            return;
        }
        // Errors, private answers (a sign-in link) and "accepted" go to the user
        // alone: an accepted run's status message follows in this thread anyway.
        // A direct conversation is the user's alone already, and an answer
        // there is a plain reply (an ephemeral one may not show in it).
        let text = match reply.kind {
            ReplyKind::Error => execgov_chat::cap_echoes(&reply.text),
            _ => reply.text,
        };
        if !said.direct
            && matches!(
                reply.kind,
                ReplyKind::Error | ReplyKind::Private | ReplyKind::Accepted
            )
        {
            self.tell(&said.channel, &said.user, Some(&said.thread_ts), &text)
                .await;
        } else {
            self.reply_in_thread(&said.channel, &said.thread_ts, &text)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: serde_json::Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn mentions_are_stripped_from_the_front_only() {
        assert_eq!(strip_mentions("<@U0BOT> run x"), "run x");
        assert_eq!(strip_mentions("  <@U0BOT>  <@U0OTHER> list "), "list");
        assert_eq!(
            strip_mentions("run x for <@U0CAROL>"),
            "run x for <@U0CAROL>"
        );
        assert_eq!(strip_mentions("<@U0BOT"), "<@U0BOT");
    }

    #[test]
    fn a_mention_is_answered_in_its_thread() {
        let said = said(&event(json!({
            "type": "app_mention", "user": "U1", "text": "<@U0BOT> list",
            "channel": "C1", "ts": "1.1", "event_ts": "1.1"
        })))
        .unwrap();
        assert_eq!(said.thread_ts, "1.1", "a new thread on the mention");
        assert_eq!(said.text, "list");
        let in_thread = super::said(&event(json!({
            "type": "app_mention", "user": "U1", "text": "<@U0BOT> status 3",
            "channel": "C1", "ts": "1.5", "thread_ts": "1.1"
        })))
        .unwrap();
        assert_eq!(in_thread.thread_ts, "1.1", "an existing thread is kept");
    }

    #[test]
    fn only_direct_messages_from_people_count() {
        let dm = json!({ "type": "message", "channel_type": "im", "user": "U1", "text": "help", "channel": "D1", "ts": "2.1" });
        assert!(said(&event(dm.clone())).is_some());
        let mut channel_msg = dm.clone();
        channel_msg["channel_type"] = json!("channel");
        assert!(
            said(&event(channel_msg)).is_none(),
            "channel chatter is not for us"
        );
        let mut bot = dm.clone();
        bot["bot_id"] = json!("B1");
        assert!(said(&event(bot)).is_none(), "bots are ignored");
        let mut edited = dm;
        edited["subtype"] = json!("message_changed");
        assert!(
            said(&event(edited)).is_none(),
            "edits and joins are ignored"
        );
    }

    #[test]
    fn bodies_parse_by_type() {
        let v: EventsBody = serde_json::from_value(
            json!({ "type": "url_verification", "token": "t", "challenge": "abc" }),
        )
        .unwrap();
        assert!(matches!(v, EventsBody::UrlVerification { challenge } if challenge == "abc"));
        let v: EventsBody =
            serde_json::from_value(json!({ "type": "app_rate_limited", "minute_rate_limited": 1 }))
                .unwrap();
        assert!(matches!(v, EventsBody::Other));
    }
}
