//! Files for a script's file parameters: a command sent as a reply to a file
//! message (`m.file`, or an image / video / audio message) brings that file,
//! downloaded (and decrypted, in an encrypted room) from the homeserver.

use crate::Matrix;
use execgov_chat::Attachment;
use matrix_sdk::Room;
use matrix_sdk::media::{MediaFormat, MediaRequestParameters};
use matrix_sdk::ruma::events::room::MediaSource;
use matrix_sdk::ruma::events::room::message::{MessageType, Relation, RoomMessageEventContent};
use matrix_sdk::ruma::events::{
    AnySyncMessageLikeEvent, AnySyncTimelineEvent, SyncMessageLikeEvent,
};
use matrix_sdk::ruma::{EventId, OwnedEventId};

/// The most ExecGov takes per file (a manifest's `max_size` is at most this).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The event a message replies to, if it is a reply (in a thread or not).
pub(crate) fn replied_to<C>(relates: Option<&Relation<C>>) -> Option<OwnedEventId> {
    match relates? {
        Relation::Reply(r) => Some(r.in_reply_to.event_id.clone()),
        Relation::Thread(t) if !t.is_falling_back => {
            t.in_reply_to.as_ref().map(|r| r.event_id.clone())
        }
        _ => None,
    }
}

impl Matrix {
    /// The file of the message `target`, downloaded; `Ok(None)` when that
    /// message is not a file; `Err` says why the file could not be had.
    pub(crate) async fn file_of(
        &self,
        room: &Room,
        target: &EventId,
    ) -> Result<Option<Attachment>, String> {
        let ev = room
            .event(target, None)
            .await
            .map_err(|e| format!("could not read the message this replies to ({e})"))?;
        let Ok(AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::RoomMessage(
            SyncMessageLikeEvent::Original(m),
        ))) = ev.raw().deserialize()
        else {
            return Ok(None);
        };
        let Some((name, source, size)) = file_parts(&m.content) else {
            return Ok(None);
        };
        if size > MAX_FILE_BYTES {
            return Err(format!(
                "`{name}` is {} MiB; ExecGov takes files of at most {} MiB",
                size / (1024 * 1024),
                MAX_FILE_BYTES / (1024 * 1024)
            ));
        }
        let request = MediaRequestParameters {
            source,
            format: MediaFormat::File,
        };
        let data = self
            .client
            .media()
            .get_media_content(&request, false)
            .await
            .map_err(|e| format!("could not download `{name}` ({e}); send it again"))?;
        if data.len() as u64 > MAX_FILE_BYTES {
            return Err(format!("`{name}` is larger than ExecGov takes"));
        }
        Ok(Some(Attachment { name, data }))
    }
}

/// A file message's name (its `filename`, else its body), source and declared size.
fn file_parts(c: &RoomMessageEventContent) -> Option<(String, MediaSource, u64)> {
    let size = |s: Option<matrix_sdk::ruma::UInt>| s.map(u64::from).unwrap_or(0);
    let (body, filename, source, bytes) = match &c.msgtype {
        MessageType::File(f) => (
            &f.body,
            &f.filename,
            &f.source,
            size(f.info.as_ref().and_then(|i| i.size)),
        ),
        MessageType::Image(f) => (
            &f.body,
            &f.filename,
            &f.source,
            size(f.info.as_ref().and_then(|i| i.size)),
        ),
        MessageType::Video(f) => (
            &f.body,
            &f.filename,
            &f.source,
            size(f.info.as_ref().and_then(|i| i.size)),
        ),
        MessageType::Audio(f) => (
            &f.body,
            &f.filename,
            &f.source,
            size(f.info.as_ref().and_then(|i| i.size)),
        ),
        _ => return None,
    };
    let name = filename.clone().unwrap_or_else(|| body.clone());
    Some((name, source.clone(), bytes))
}
