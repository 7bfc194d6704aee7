//! Matrix events in, [`Inbound`] values out: commands (`!run …`, a mention, or
//! anything in a direct room), `!approve`/`!deny`, and ✅/❌ reactions on
//! approval requests. Each event is handed to the core once (its event id is
//! recorded through [`InboundHandler::first_time`]); the core's answer goes
//! back into the command's thread.

use crate::Matrix;
use crate::render::RUN_ID_FIELD;
use execgov_chat::{Inbound, InboundContent, Place, Platform, PlatformUser};
use matrix_sdk::Room;
use matrix_sdk::deserialized_responses::TimelineEvent;
use matrix_sdk::ruma::events::Mentions;
use matrix_sdk::ruma::events::room::member::MembershipState;
use matrix_sdk::ruma::events::room::message::{
    MessageType, OriginalSyncRoomMessageEvent, Relation,
};
use matrix_sdk::ruma::events::{
    AnySyncMessageLikeEvent, AnySyncStateEvent, AnySyncTimelineEvent, SyncMessageLikeEvent,
    SyncStateEvent,
};
use matrix_sdk::ruma::{OwnedEventId, UserId};
use std::sync::Arc;
use std::time::Duration;

/// Commands older than this when they reach us (the bot was away) are not run:
/// the requester is told to ask again.
const STALE_MS: u64 = 30 * 60 * 1000;
/// Clock difference between the homeserver and us that the "sent before we
/// started" check tolerates.
const CLOCK_SLACK_MS: u64 = 2 * 60 * 1000;
/// Waits before asking again for an event we could not decrypt yet (its key
/// may arrive in a later sync).
const DECRYPT_RETRIES: &[u64] = &[1, 2, 4, 8, 15, 30];

/// A decision read from a reaction key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Approve,
    Deny,
}

/// ✅ ✔️ ☑️ 👍 approve, ❌ ✖️ ❎ 👎 deny (variation selectors and skin tones ignored).
pub(crate) fn reaction_decision(key: &str) -> Option<Decision> {
    let base: String = key
        .chars()
        .filter(|c| *c != '\u{fe0f}' && !('\u{1f3fb}'..='\u{1f3ff}').contains(c))
        .collect();
    match base.as_str() {
        "✅" | "✔" | "☑" | "👍" => Some(Decision::Approve),
        "❌" | "✖" | "❎" | "👎" => Some(Decision::Deny),
        _ => None,
    }
}

/// Whether a message mentions the bot, as its sender's client said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mentioned {
    /// `m.mentions.user_ids` has the bot.
    Yes,
    /// The event has `m.mentions` without the bot: its name in the text is
    /// someone talking about it, not to it.
    No,
    /// No `m.mentions` (an older client): the text decides.
    Unsaid,
}

impl Mentioned {
    /// From an event's `m.mentions`, if it has one.
    pub(crate) fn of(mentions: Option<&Mentions>, own: &UserId) -> Mentioned {
        match mentions {
            Some(m) if m.user_ids.contains(own) => Mentioned::Yes,
            Some(_) => Mentioned::No,
            None => Mentioned::Unsaid,
        }
    }
}

/// The command in a message body, with whether its prefix meant "run".
///
/// - `!approve …` / `!deny …` → `approve …` / `deny …` (never implicit run);
/// - `<prefix> rest` (`!run report-export month=2026-10`) → `rest`, implicit run;
/// - a mention of the bot (`m.mentions`; for clients without it, the bot's
///   name or id, then `:`/`,`/space), then a command → the command, its
///   leading name (the pill's text) left out;
/// - in a direct room, any text → itself.
pub(crate) fn parse_command(
    body: &str,
    prefix: &str,
    names: &[String],
    direct: bool,
    mentioned: Mentioned,
) -> Option<(String, bool)> {
    let text = body.trim();
    for verb in ["approve", "deny"] {
        if let Some(rest) = strip_word(text, &format!("!{verb}")) {
            return Some((format!("{verb} {rest}").trim().to_string(), false));
        }
    }
    if let Some(rest) = strip_word(text, prefix) {
        return Some((rest.to_string(), true));
    }
    // The longest name that matches: `ExecGov Bot, …` is not `ExecGov` + `Bot, …`.
    let named = names
        .iter()
        .filter_map(|n| strip_mention(text, n).map(|rest| (n.len(), rest)))
        .max_by_key(|(len, _)| *len)
        .map(|(_, rest)| rest);
    let addressed = match (mentioned, named) {
        (Mentioned::Yes, Some(rest)) => Some(rest),
        // Mentioned elsewhere than at the start (or by a pill whose text is
        // not a name we know): the whole message is the command.
        (Mentioned::Yes, None) => Some(text),
        (Mentioned::Unsaid, named) => named,
        (Mentioned::No, _) => None,
    };
    if let Some(rest) = addressed {
        return match parse_command(rest, prefix, &[], true, Mentioned::Unsaid) {
            Some(c) => Some(c),
            None => Some((rest.to_string(), false)),
        };
    }
    if direct && !text.is_empty() {
        return Some((text.to_string(), false));
    }
    None
}

/// `text` without a leading `word` that stands alone (followed by whitespace or the end).
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    let rest = &text[word.len()..];
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
}

/// `text` without a leading mention of `name` (`execgov: …`, `@execgov:hs …`, `ExecGov, …`).
fn strip_mention<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head = text.get(..name.len())?;
    if name.is_empty() || !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = &text[name.len()..];
    let rest = rest.strip_prefix([':', ',']).unwrap_or(rest);
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
}

/// The body without a rich-reply fallback (`> <@a:hs> quoted` lines, then a blank line).
fn without_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    match body.find("\n\n") {
        Some(i) => &body[i + 2..],
        None => body,
    }
}

impl Matrix {
    /// Every event of one room's timeline in a sync, in order.
    pub(crate) async fn on_timeline(self: &Arc<Self>, room: &Room, events: Vec<TimelineEvent>) {
        for ev in events {
            if ev.kind.is_utd() {
                if let Some(id) = ev.event_id() {
                    self.retry_undecryptable(room.clone(), id);
                }
                continue;
            }
            self.on_event(room, &ev).await;
        }
    }

    async fn on_event(self: &Arc<Self>, room: &Room, ev: &TimelineEvent) {
        let event = match ev.raw().deserialize() {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "skipping an event that does not parse");
                return;
            }
        };
        match event {
            AnySyncTimelineEvent::State(AnySyncStateEvent::RoomMember(
                SyncStateEvent::Original(m),
            )) if m.state_key == self.own => {
                let was_joined = m
                    .unsigned
                    .prev_content
                    .as_ref()
                    .is_some_and(|p| p.membership == MembershipState::Join);
                if m.content.membership == MembershipState::Join && !was_joined {
                    self.state
                        .set_joined(room.room_id().as_str(), u64::from(m.origin_server_ts.0));
                }
            }
            AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::RoomMessage(
                SyncMessageLikeEvent::Original(m),
            )) => self.on_message(room, m).await,
            AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::Reaction(
                SyncMessageLikeEvent::Original(r),
            )) => {
                let Some(decision) = reaction_decision(&r.content.relates_to.key) else {
                    return;
                };
                let ts = u64::from(r.origin_server_ts.0);
                if r.sender == self.own || self.is_history(room, ts) {
                    return;
                }
                self.on_reaction(
                    room,
                    &r.sender,
                    r.event_id,
                    r.content.relates_to.event_id,
                    decision,
                )
                .await;
            }
            _ => {}
        }
    }

    /// Sent before the bot was in the room (or before this store first synced):
    /// history, not something to act on.
    fn is_history(&self, room: &Room, ts: u64) -> bool {
        let started = self
            .state
            .started_ms()
            .unwrap_or(0)
            .saturating_sub(CLOCK_SLACK_MS);
        let joined = self.state.joined_ms(room.room_id().as_str()).unwrap_or(0);
        ts < started || ts < joined
    }

    async fn on_message(self: &Arc<Self>, room: &Room, m: OriginalSyncRoomMessageEvent) {
        if m.sender == self.own {
            return;
        }
        let MessageType::Text(text) = &m.content.msgtype else {
            return;
        };
        if matches!(m.content.relates_to, Some(Relation::Replacement(_))) {
            // An edit of a command is not a second command.
            return;
        }
        let ts = u64::from(m.origin_server_ts.0);
        if self.is_history(room, ts) {
            return;
        }
        let direct = room.is_direct().await.unwrap_or(false);
        let body = without_reply_fallback(&text.body);
        let mentioned = Mentioned::of(m.content.mentions.as_ref(), &self.own);
        let Some((command, implicit_run)) = parse_command(
            body,
            &self.settings.command_prefix,
            &self.names,
            direct,
            mentioned,
        ) else {
            return;
        };
        let root = match &m.content.relates_to {
            Some(Relation::Thread(t)) => t.event_id.clone(),
            _ => m.event_id.clone(),
        };
        if !self.handler.first_time(m.event_id.as_str()).await {
            tracing::debug!(event_id = %m.event_id, "command already handled");
            return;
        }
        let age = now_ms().saturating_sub(ts);
        if age > STALE_MS {
            let text = format!(
                "This command was sent {} minutes ago while I was away, so I did not act on it. Send it again if it is still wanted.",
                age / 60_000
            );
            self.reply_later(
                room,
                root,
                &m.sender,
                m.event_id,
                execgov_chat::ReplyKind::Error,
                text,
            );
            return;
        }
        // A command that replies to a file brings it (for a file parameter).
        let files = match crate::files::replied_to(m.content.relates_to.as_ref()) {
            Some(target) => match self.file_of(room, &target).await {
                Ok(f) => f.into_iter().collect(),
                Err(why) => {
                    self.reply_later(
                        room,
                        root,
                        &m.sender,
                        m.event_id,
                        execgov_chat::ReplyKind::Error,
                        why,
                    );
                    return;
                }
            },
            None => Vec::new(),
        };
        let inbound = Inbound {
            event_id: Some(m.event_id.to_string()),
            actor: PlatformUser {
                platform: Platform::Matrix,
                id: m.sender.to_string(),
            },
            place: Place {
                platform: Platform::Matrix,
                channel: room.room_id().to_string(),
                thread: Some(root.to_string()),
            },
            content: InboundContent::Text {
                text: command,
                implicit_run,
            },
            // Marked direct and nobody else in it (a DM can be joined later).
            direct: direct && room.active_members_count() <= 2,
            files,
        };
        tracing::info!(event_id = %m.event_id, room = %room.room_id(), sender = %m.sender, "command");
        let reply = self.handler.handle(inbound).await;
        if reply.kind == execgov_chat::ReplyKind::Accepted && reply.run_id.is_some() {
            // The run's status message, posted by the notifier into this same
            // thread, is the answer: it says the same and then moves with the
            // run. A second message would be noise, and one more send ahead of
            // the result.
            tracing::debug!(event_id = %m.event_id, run_id = ?reply.run_id, "accepted; the status message answers");
            return;
        }
        self.reply_later(room, root, &m.sender, m.event_id, reply.kind, reply.text);
    }

    async fn on_reaction(
        self: &Arc<Self>,
        room: &Room,
        sender: &UserId,
        event_id: OwnedEventId,
        target: OwnedEventId,
        decision: Decision,
    ) {
        let Some(run_id) = self.run_of_request(room, &target).await else {
            return;
        };
        if !self.handler.first_time(event_id.as_str()).await {
            return;
        }
        let content = match decision {
            Decision::Approve => InboundContent::Approve { run_id, code: None },
            Decision::Deny => InboundContent::Deny {
                run_id,
                reason: None,
            },
        };
        let inbound = Inbound {
            event_id: Some(event_id.to_string()),
            actor: PlatformUser {
                platform: Platform::Matrix,
                id: sender.to_string(),
            },
            place: Place {
                platform: Platform::Matrix,
                channel: room.room_id().to_string(),
                thread: Some(target.to_string()),
            },
            content,
            direct: false,
            files: Vec::new(),
        };
        tracing::info!(%event_id, %target, %sender, ?decision, "approval reaction");
        let reply = self.handler.handle(inbound).await;
        self.reply_later(room, target, sender, event_id, reply.kind, reply.text);
    }

    /// The run an approval request message is for: from the state file, else
    /// from the message itself (only when the bot sent it).
    async fn run_of_request(&self, room: &Room, target: &OwnedEventId) -> Option<String> {
        if let Some(run) = self.state.approval_run(target.as_str()) {
            return Some(run);
        }
        let ev = room.event(target, None).await.ok()?;
        let json: serde_json::Value = ev.raw().deserialize_as().ok()?;
        if json.get("sender").and_then(|s| s.as_str()) != Some(self.own.as_str()) {
            return None;
        }
        let run = json
            .get("content")?
            .get(RUN_ID_FIELD)?
            .as_str()?
            .to_string();
        self.state
            .record_approval(target.as_str(), room.room_id().as_str(), &run, now_ms());
        Some(run)
    }

    /// An event we could not decrypt yet: ask for it again a few times (its
    /// room key may come in a later sync) and handle it once it decrypts.
    fn retry_undecryptable(self: &Arc<Self>, room: Room, event_id: OwnedEventId) {
        let this = self.clone();
        self.tasks.spawn(async move {
            for wait in DECRYPT_RETRIES {
                tokio::select! {
                    biased;
                    _ = this.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(*wait)) => {}
                }
                match room.event(&event_id, None).await {
                    Ok(ev) if !ev.kind.is_utd() => {
                        Box::pin(this.on_event(&room, &ev)).await;
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(%event_id, error = %e, "fetching an undecryptable event failed"),
                }
            }
            tracing::warn!(%event_id, room = %room.room_id(), "could not decrypt an event; it is ignored");
        });
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec![
            "@execgov:hs".into(),
            "execgov".into(),
            "ExecGov".into(),
            "ExecGov Bot".into(),
        ]
    }

    #[test]
    fn prefix_means_run() {
        assert_eq!(
            parse_command(
                "!run report-export month=2026-10",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("report-export month=2026-10".into(), true))
        );
        assert_eq!(
            parse_command("!run", "!run", &names(), false, Mentioned::Unsaid),
            Some(("".into(), true))
        );
        assert_eq!(
            parse_command("!running late", "!run", &names(), false, Mentioned::Unsaid),
            None,
            "a longer word is not the prefix"
        );
        assert_eq!(
            parse_command("hello all", "!run", &names(), false, Mentioned::Unsaid),
            None,
            "chat is not a command"
        );
    }

    #[test]
    fn approve_and_deny_are_commands() {
        assert_eq!(
            parse_command("!approve 12", "!run", &names(), false, Mentioned::Unsaid),
            Some(("approve 12".into(), false))
        );
        assert_eq!(
            parse_command(
                "!deny 12 not during the freeze",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("deny 12 not during the freeze".into(), false))
        );
    }

    #[test]
    fn mentions_and_direct_rooms() {
        assert_eq!(
            parse_command(
                "execgov: status 12",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("status 12".into(), false))
        );
        assert_eq!(
            parse_command(
                "@execgov:hs list",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("list".into(), false))
        );
        assert_eq!(
            parse_command(
                "ExecGov Bot, !run x",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("x".into(), true))
        );
        assert_eq!(
            parse_command("execgovx list", "!run", &names(), false, Mentioned::Unsaid),
            None
        );
        assert_eq!(
            parse_command("list", "!run", &names(), true, Mentioned::Unsaid),
            Some(("list".into(), false))
        );
        assert_eq!(
            parse_command("  ", "!run", &names(), true, Mentioned::Unsaid),
            None
        );
    }

    #[test]
    fn m_mentions_decide_where_the_event_has_them() {
        let yes = Mentioned::Yes;
        assert_eq!(
            parse_command("ExecGov: status 12", "!run", &names(), false, yes),
            Some(("status 12".into(), false)),
            "the pill's text is left out"
        );
        assert_eq!(
            parse_command("Bot-name-we-never-heard list", "!run", &names(), false, yes),
            Some(("Bot-name-we-never-heard list".into(), false)),
            "a mention by m.mentions needs no known name in the text"
        );
        assert_eq!(
            parse_command("execgov: status 12", "!run", &names(), false, Mentioned::No),
            None,
            "m.mentions without the bot: its name in the text is not a mention"
        );
        assert_eq!(
            parse_command("!run x", "!run", &names(), false, Mentioned::No),
            Some(("x".into(), true)),
            "the prefix still works"
        );
        let own = matrix_sdk::ruma::user_id!("@execgov:hs");
        let other = matrix_sdk::ruma::user_id!("@carol:hs");
        assert_eq!(Mentioned::of(None, own), Mentioned::Unsaid);
        assert_eq!(
            Mentioned::of(Some(&Mentions::with_user_ids([own.to_owned()])), own),
            Mentioned::Yes
        );
        assert_eq!(
            Mentioned::of(Some(&Mentions::with_user_ids([other.to_owned()])), own),
            Mentioned::No
        );
        assert_eq!(Mentioned::of(Some(&Mentions::new()), own), Mentioned::No);
    }

    #[test]
    fn reply_fallback_is_not_the_command() {
        assert_eq!(
            without_reply_fallback("> <@a:hs> !run x\n\nstatus 3"),
            "status 3"
        );
        assert_eq!(without_reply_fallback("status 3"), "status 3");
    }

    #[test]
    fn reaction_keys() {
        assert_eq!(reaction_decision("✅"), Some(Decision::Approve));
        assert_eq!(reaction_decision("✔️"), Some(Decision::Approve));
        assert_eq!(reaction_decision("👍🏽"), Some(Decision::Approve));
        assert_eq!(reaction_decision("❌"), Some(Decision::Deny));
        assert_eq!(reaction_decision("👎"), Some(Decision::Deny));
        assert_eq!(reaction_decision("🎉"), None);
    }
}
