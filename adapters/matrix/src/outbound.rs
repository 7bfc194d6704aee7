//! What the bot says: the core's messages posted into threads, edited in place
//! (`m.replace`), files uploaded into the thread (encrypted where the room is),
//! and the answers to commands, with a direct room for what is private.
//!
//! Posts that happen once per run and place use a transaction id derived from
//! what they are, so a retry after a lost response (or a restart) is the same
//! event to the homeserver, not a second message.

use crate::Matrix;
use crate::error::chat_error;
use crate::inbound::now_ms;
use crate::render::{Rendered, render, text_message};
use execgov_chat::{
    ChatAdapter, ChatError, Message, MessageRef, Outbound, OutboundFile, Place, Platform, ReplyKind,
};
use matrix_sdk::Room;
use matrix_sdk::ruma::events::reaction::ReactionEventContent;
use matrix_sdk::ruma::events::relation::{Annotation, Thread};
use matrix_sdk::ruma::events::room::message::{
    FileInfo, FileMessageEventContent, MessageType, Relation, RoomMessageEventContent,
};
use matrix_sdk::ruma::{
    OwnedEventId, OwnedRoomId, OwnedTransactionId, TransactionId, UInt, UserId,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Files larger than this are named in the thread instead of uploaded
/// (Synapse's default upload limit is 50 MiB).
const MAX_FILE: u64 = 50 * 1024 * 1024;

/// A transaction id that is the same every time for the same `parts`.
fn stable_txn(parts: &[&str]) -> OwnedTransactionId {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    OwnedTransactionId::from(format!("execgov-{}", &hex::encode(h.finalize())[..32]))
}

/// The identity of a run's message in a place: stable across retries and restarts.
fn run_key(place: &Place, msg: &Message) -> Option<Vec<String>> {
    let (kind, run) = match msg {
        Message::RunStatus { run } => ("status", run),
        Message::RunResult { run } => ("result", run),
        Message::ApprovalRequest { approval } => ("approval", &approval.run),
        Message::Text { .. } => return None,
    };
    Some(vec![
        kind.to_string(),
        place.to_string(),
        run.run_id.clone(),
        run.script.clone(),
        run.args.clone(),
        run.requester.clone(),
        run.asked_in.clone(),
    ])
}

fn thread_relation(root: &str) -> Value {
    json!({
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": true,
        "m.in_reply_to": { "event_id": root },
    })
}

impl Matrix {
    fn joined_room(&self, room_id: &str) -> Result<Room, ChatError> {
        let id = OwnedRoomId::try_from(room_id).map_err(|e| {
            ChatError::Permanent(format!("`{room_id}` is not a Matrix room id: {e}"))
        })?;
        match self.client.get_room(&id) {
            Some(room) if room.state() == matrix_sdk::RoomState::Joined => Ok(room),
            // Maybe not invited yet: worth a few more tries while someone does.
            _ => Err(ChatError::Transient {
                message: format!("the bot is not in {room_id}; invite it"),
                retry_after_ms: Some(30_000),
            }),
        }
    }

    /// Sends `content` as an `m.room.message`; encrypted when the room is.
    pub(crate) async fn send_message(
        &self,
        room: &Room,
        content: Value,
        txn: Option<OwnedTransactionId>,
    ) -> Result<OwnedEventId, matrix_sdk::Error> {
        let txn = txn.unwrap_or_else(TransactionId::new);
        let r = room.clone();
        self.one_at_a_time(room, async move {
            let sent = r
                .send_raw("m.room.message", content)
                .with_transaction_id(&txn)
                .await?;
            Ok(sent.response.event_id)
        })
        .await
    }

    /// Runs one send into `room` after the previous one there has finished,
    /// on a task of its own.
    ///
    /// One at a time: the SDK's direct `send` checks that the room's Megolm
    /// session is shared and then encrypts, and a concurrent send that uses up
    /// the session in between (its 100th message) makes the second one panic
    /// ("Session expired"); the SDK's own send queue serializes for the same
    /// reason. A task of its own: if the SDK panics anyway, that is one failed
    /// (and retried) send, not a dead notifier or sync loop.
    pub(crate) async fn one_at_a_time<T: Send + 'static>(
        &self,
        room: &Room,
        send: impl Future<Output = Result<T, matrix_sdk::Error>> + Send + 'static,
    ) -> Result<T, matrix_sdk::Error> {
        let lock = {
            let mut locks = self.send_locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(room.room_id().to_owned()).or_default().clone()
        };
        let task = tokio::spawn(async move {
            let _turn = lock.lock().await;
            send.await
        });
        task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the Matrix SDK failed while sending");
            Err(matrix_sdk::Error::Io(std::io::Error::other(format!(
                "the Matrix SDK failed while sending: {e}"
            ))))
        })
    }

    /// The direct room with `user`, made (and the user invited) when there is none.
    pub(crate) async fn direct_room(&self, user: &UserId) -> Result<Room, matrix_sdk::Error> {
        let _one_at_a_time = self.dm_lock.lock().await;
        if let Some(room) = self.client.get_dm_room(user) {
            return Ok(room);
        }
        tracing::info!(%user, "creating a direct room");
        self.client.create_dm(user).await
    }

    /// Answers an event in the background (the sync loop goes on).
    pub(crate) fn reply_later(
        self: &Arc<Self>,
        room: &Room,
        root: OwnedEventId,
        user: &UserId,
        source: OwnedEventId,
        kind: ReplyKind,
        text: String,
    ) {
        let (this, room, user) = (self.clone(), room.clone(), user.to_owned());
        self.tasks.spawn(async move {
            if let Err(e) = this
                .send_reply(&room, &root, &user, &source, kind, &text)
                .await
            {
                tracing::warn!(%source, error = %e, "answering in Matrix failed");
            }
        });
    }

    async fn send_reply(
        &self,
        room: &Room,
        root: &OwnedEventId,
        user: &UserId,
        source: &OwnedEventId,
        kind: ReplyKind,
        text: &str,
    ) -> Result<(), matrix_sdk::Error> {
        let in_thread = |rendered: Rendered| {
            let mut c = rendered.content();
            c["m.relates_to"] = thread_relation(root.as_str());
            c
        };
        let private_here = room.is_direct().await.unwrap_or(false);
        if kind == ReplyKind::Private && !private_here {
            let dm = self.direct_room(user).await?;
            let txn = stable_txn(&["private", source.as_str()]);
            self.send_message(&dm, text_message(text).content(), Some(txn))
                .await?;
            let note = text_message("I sent you the answer in a direct message.");
            let txn = stable_txn(&["reply", source.as_str()]);
            self.send_message(room, in_thread(note), Some(txn)).await?;
            return Ok(());
        }
        let txn = stable_txn(&["reply", source.as_str()]);
        self.send_message(room, in_thread(text_message(text)), Some(txn))
            .await?;
        Ok(())
    }

    /// The place a message really goes to: a message for one user goes to the
    /// direct room with that user (Matrix has no per-user messages in a room).
    async fn target_place(&self, msg: &Outbound) -> Result<Place, ChatError> {
        let Some(user) = &msg.only_to else {
            return Ok(msg.place.clone());
        };
        let user = <&UserId>::try_from(user.id.as_str()).map_err(|e| {
            ChatError::Permanent(format!("`{}` is not a Matrix user id: {e}", user.id))
        })?;
        let dm = self
            .direct_room(user)
            .await
            .map_err(|e| chat_error("opening a direct room", &e))?;
        Ok(Place::new(Platform::Matrix, dm.room_id().as_str()))
    }

    async fn post_message(&self, msg: &Outbound) -> Result<MessageRef, ChatError> {
        let place = self.target_place(msg).await?;
        let room = self.joined_room(&place.channel)?;
        let rendered = render(&msg.message);
        let mut content = rendered.content();
        if let Some(root) = &place.thread {
            content["m.relates_to"] = thread_relation(root);
        }
        let key = run_key(&place, &msg.message);
        let txn = key
            .as_ref()
            .map(|k| stable_txn(&k.iter().map(String::as_str).collect::<Vec<_>>()));
        let event_id = self
            .send_message(&room, content, txn)
            .await
            .map_err(|e| chat_error("posting to Matrix", &e))?;
        match &msg.message {
            Message::ApprovalRequest { approval } => {
                self.state.record_approval(
                    event_id.as_str(),
                    room.room_id().as_str(),
                    &approval.run.run_id,
                    now_ms(),
                );
                if approval.open {
                    self.offer_reactions(&room, &event_id).await;
                }
            }
            Message::RunResult { run } => {
                let root = match &place.thread {
                    Some(t) => {
                        OwnedEventId::try_from(t.as_str()).unwrap_or_else(|_| event_id.clone())
                    }
                    None => event_id.clone(),
                };
                let key = key.unwrap_or_default();
                for (i, file) in run.files.iter().enumerate() {
                    let mut parts: Vec<&str> = key.iter().map(String::as_str).collect();
                    let index = i.to_string();
                    parts.extend(["file", &index]);
                    self.send_file(&room, &root, file, stable_txn(&parts))
                        .await?;
                }
            }
            _ => {}
        }
        Ok(MessageRef {
            place,
            id: event_id.to_string(),
        })
    }

    /// ✅ and ❌ under a new approval request, so deciding is one click.
    async fn offer_reactions(&self, room: &Room, event_id: &OwnedEventId) {
        for key in ["✅", "❌"] {
            let reaction =
                ReactionEventContent::new(Annotation::new(event_id.clone(), key.to_string()));
            let txn = stable_txn(&["offer", event_id.as_str(), key]);
            if let Err(e) = room.send(reaction).with_transaction_id(txn).await {
                tracing::debug!(%event_id, error = %e, "adding a reaction to an approval request failed");
            }
        }
    }

    /// Uploads one file (encrypted in an encrypted room) and posts it as `m.file` in the thread.
    async fn send_file(
        &self,
        room: &Room,
        root: &OwnedEventId,
        file: &OutboundFile,
        txn: OwnedTransactionId,
    ) -> Result<(), ChatError> {
        let problem = match tokio::fs::metadata(&file.path).await {
            Ok(m) if m.len() > MAX_FILE => {
                Some(format!("{} MiB is over the upload limit", m.len() >> 20))
            }
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        let data = match problem {
            None => tokio::fs::read(&file.path).await.map_err(|e| e.to_string()),
            Some(p) => Err(p),
        };
        let data = match data {
            Ok(d) => d,
            Err(why) => {
                // Unreadable or too big: say so in the thread instead of failing the result.
                let mut c = text_message(&format!(
                    "File `{}` could not be attached: {why}",
                    file.name
                ))
                .content();
                c["m.relates_to"] = thread_relation(root.as_str());
                self.send_message(room, c, Some(txn))
                    .await
                    .map_err(|e| chat_error("posting to Matrix", &e))?;
                return Ok(());
            }
        };
        let mime = mime_of(&file.name);
        let size = data.len() as u64;
        let encrypted = room
            .latest_encryption_state()
            .await
            .map_err(|e| chat_error("reading the room's encryption", &e))?
            .is_encrypted();
        let mut content = if encrypted {
            let mut reader = std::io::Cursor::new(data);
            let enc = self
                .client
                .upload_encrypted_file(&mut reader)
                .await
                .map_err(|e| chat_error("uploading a file", &e))?;
            FileMessageEventContent::encrypted(file.name.clone(), enc)
        } else {
            let up = self
                .client
                .media()
                .upload(&mime, data, None)
                .await
                .map_err(|e| chat_error("uploading a file", &e))?;
            FileMessageEventContent::plain(file.name.clone(), up.content_uri)
        };
        let mut info = FileInfo::new();
        info.mimetype = Some(mime.essence_str().to_string());
        info.size = UInt::new(size);
        content.info = Some(Box::new(info));
        content.filename = Some(file.name.clone());
        let mut message = RoomMessageEventContent::new(MessageType::File(content));
        message.relates_to = Some(Relation::Thread(Thread::plain(root.clone(), root.clone())));
        let r = room.clone();
        self.one_at_a_time(room, async move {
            r.send(message).with_transaction_id(txn).await?;
            Ok(())
        })
        .await
        .map_err(|e| chat_error("posting a file", &e))
    }
}

fn mime_of(name: &str) -> mime::Mime {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let m = match ext.as_str() {
        "csv" => "text/csv",
        "txt" | "log" => "text/plain",
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    };
    m.parse().unwrap_or(mime::APPLICATION_OCTET_STREAM)
}

#[async_trait::async_trait]
impl ChatAdapter for Matrix {
    fn platform(&self) -> Platform {
        Platform::Matrix
    }

    #[tracing::instrument(skip_all, fields(place = %msg.place))]
    async fn post(&self, msg: &Outbound) -> Result<MessageRef, ChatError> {
        self.post_message(msg).await
    }

    #[tracing::instrument(skip_all, fields(target = %target.id))]
    async fn edit(&self, target: &MessageRef, msg: &Outbound) -> Result<(), ChatError> {
        let room = self.joined_room(&target.place.channel)?;
        let rendered = render(&msg.message);
        let new_content = rendered.content();
        let mut content = json!({
            "msgtype": "m.notice",
            "body": format!("* {}", rendered.body),
            "format": "org.matrix.custom.html",
            "formatted_body": format!("* {}", rendered.html),
            "m.new_content": new_content,
            "m.relates_to": { "rel_type": "m.replace", "event_id": target.id },
            // An edit notifies nobody new.
            "m.mentions": {},
        });
        if let Some(run) = &rendered.run_id {
            content[crate::render::RUN_ID_FIELD] = json!(run);
        }
        // A fresh transaction id: the same content may rightly be shown again
        // after a change in between.
        self.send_message(&room, content, None)
            .await
            .map_err(|e| chat_error("editing a Matrix message", &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_messages_have_distinct_transaction_ids() {
        let run: execgov_chat::RunView = serde_json::from_value(serde_json::json!({
            "run_id": "1", "script": "s", "args": "", "requester": "alice", "requester_account": null,
            "asked_in": "matrix:!r:hs", "state": "succeeded", "finished": true, "progress_pct": null,
            "progress_text": null, "exit_code": 0, "duration_ms": 5, "reason": null, "output_tail": null,
            "result": null, "audit_link": "http://x", "files": [], "decisions": []
        }))
        .unwrap();
        let place = Place::new(Platform::Matrix, "!r:hs");
        let status = run_key(&place, &Message::RunStatus { run: run.clone() });
        let result = run_key(&place, &Message::RunResult { run });
        assert_ne!(
            status, result,
            "the result is not mistaken for the status post"
        );
    }

    #[test]
    fn stable_transaction_ids() {
        assert_eq!(stable_txn(&["a", "b"]), stable_txn(&["a", "b"]));
        assert_ne!(
            stable_txn(&["a", "b"]),
            stable_txn(&["ab"]),
            "parts are separated"
        );
    }

    #[test]
    fn file_types() {
        assert_eq!(mime_of("report-2026-10.csv").essence_str(), "text/csv");
        assert_eq!(mime_of("blob").essence_str(), "application/octet-stream");
    }
}
