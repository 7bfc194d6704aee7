//! Matrix events in, [`Inbound`] values out: commands (`!run …`, a mention, or
//! anything in a direct room; the grammar is `grammar.rs`), `!approve`/`!deny`,
//! and ✅/❌ reactions on approval requests. Each event is handed to the core once (its event id is
//! recorded through [`InboundHandler::first_time`]); the core's answer goes
//! back into the command's thread.

use crate::Matrix;
use crate::grammar::{
    Decision, Mentioned, parse_command, reaction_decision, without_reply_fallback,
};
use crate::render::RUN_ID_FIELD;
use execgov_chat::{Inbound, InboundContent, Place, Platform, PlatformUser};
use matrix_sdk::Room;
use matrix_sdk::deserialized_responses::TimelineEvent;
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
