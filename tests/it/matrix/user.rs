//! A person on the test homeserver: a matrix-sdk client of their own that
//! syncs in the background and records every timeline event it sees
//! (decrypted where it can), so tests can wait for what the bot sent.

use super::synapse::Synapse;
use execgov_matrix::matrix_sdk::config::{RequestConfig, SyncSettings};
use execgov_matrix::matrix_sdk::ruma::api::client::room::create_room::v3::{
    Request as CreateRoom, RoomPreset,
};
use execgov_matrix::matrix_sdk::ruma::events::InitialStateEvent;
use execgov_matrix::matrix_sdk::ruma::events::reaction::ReactionEventContent;
use execgov_matrix::matrix_sdk::ruma::events::relation::Annotation;
use execgov_matrix::matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use execgov_matrix::matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use execgov_matrix::matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use execgov_matrix::matrix_sdk::{Client, RoomState};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse battery staple";
/// How long a test waits for something to show up before it fails.
pub const WAIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Seen {
    events: Vec<Value>,
    /// When each event id reached this user's sync (for latency measurements).
    arrived: HashMap<String, Instant>,
    invites: Vec<OwnedRoomId>,
}

pub struct TestUser {
    pub id: OwnedUserId,
    pub client: Client,
    seen: Arc<Mutex<Seen>>,
    tick: watch::Receiver<u64>,
    stop: CancellationToken,
}

impl Drop for TestUser {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestUser {
    /// Registers `@name:localhost`, logs in and starts syncing.
    pub async fn new(hs: &Synapse, name: &str) -> TestUser {
        let id = OwnedUserId::try_from(hs.register(name, PASSWORD)).expect("a user id");
        let client = Client::builder()
            .homeserver_url(hs.url())
            .request_config(
                RequestConfig::new()
                    .retry_limit(1)
                    .timeout(Duration::from_secs(20)),
            )
            .build()
            .await
            .expect("test client builds");
        client
            .matrix_auth()
            .login_username(name, PASSWORD)
            .initial_device_display_name(name)
            .send()
            .await
            .expect("test user logs in");
        client
            .sync_once(SyncSettings::default())
            .await
            .expect("first sync");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, tick) = watch::channel(0u64);
        let stop = CancellationToken::new();
        tokio::spawn(sync_loop(client.clone(), seen.clone(), tx, stop.clone()));
        TestUser {
            id,
            client,
            seen,
            tick,
            stop,
        }
    }

    pub fn events(&self) -> Vec<Value> {
        self.seen.lock().unwrap().events.clone()
    }

    /// When the event with this id reached this user's sync (used by benches/matrix_latency.rs).
    #[allow(dead_code)]
    pub fn arrived(&self, event_id: &str) -> Option<Instant> {
        self.seen.lock().unwrap().arrived.get(event_id).copied()
    }

    /// Waits until an event matching `pred` has been seen; returns the first.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(what, |events| events.iter().find(|v| pred(v)).cloned())
            .await
    }

    /// Waits until `check` finds what it looks for in everything seen so far.
    pub async fn wait_until<T>(&self, what: &str, check: impl Fn(&[Value]) -> Option<T>) -> T {
        let mut tick = self.tick.clone();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = check(&self.events()) {
                return found;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || tokio::time::timeout(left, tick.changed()).await.is_err() {
                let seen: Vec<String> = self.events().iter().map(summary).collect();
                panic!("{} never saw {what}; saw:\n{}", self.id, seen.join("\n"));
            }
        }
    }

    /// Waits until `user` has joined `room` (as this user's client knows it).
    pub async fn wait_joined(&self, room: &RoomId, user: &str) {
        self.wait_for(&format!("{user} joining {room}"), |v| {
            v["room_id"] == room.as_str()
                && v["type"] == "m.room.member"
                && v["state_key"] == user
                && v["content"]["membership"] == "join"
        })
        .await;
    }

    /// Waits for an invite not yet answered and accepts it.
    pub async fn accept_invite(&self) -> OwnedRoomId {
        let mut tick = self.tick.clone();
        let deadline = tokio::time::Instant::now() + WAIT;
        let room_id = loop {
            let pending = self
                .seen
                .lock()
                .unwrap()
                .invites
                .iter()
                .find(|r| {
                    self.client
                        .get_room(r)
                        .is_some_and(|room| room.state() == RoomState::Invited)
                })
                .cloned();
            if let Some(r) = pending {
                break r;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero() && tokio::time::timeout(left, tick.changed()).await.is_ok(),
                "{} was never invited anywhere",
                self.id
            );
        };
        self.client
            .join_room_by_id(&room_id)
            .await
            .expect("joins the room it was invited to");
        room_id
    }

    pub async fn create_room(&self, encrypted: bool, invite: &[&str]) -> OwnedRoomId {
        let mut req = CreateRoom::new();
        req.invite = invite.iter().map(|u| UserId::parse(*u).unwrap()).collect();
        req.preset = Some(RoomPreset::PrivateChat);
        if encrypted {
            req.initial_state = vec![
                InitialStateEvent::with_empty_state_key(
                    RoomEncryptionEventContent::with_recommended_defaults(),
                )
                .to_raw_any(),
            ];
        }
        let room = self.client.create_room(req).await.expect("room created");
        room.room_id().to_owned()
    }

    pub async fn join(&self, room: &RoomId) {
        self.client
            .join_room_by_id(room)
            .await
            .expect("joins the room");
    }

    /// Shares a file in `room` (encrypted where the room is), as `m.file`.
    pub async fn send_file(&self, room: &RoomId, name: &str, data: Vec<u8>) -> OwnedEventId {
        let room = self.client.get_room(room).expect("a room this user is in");
        room.send_attachment(
            name,
            &mime::TEXT_CSV,
            data,
            execgov_matrix::matrix_sdk::attachment::AttachmentConfig::new(),
        )
        .await
        .expect("file sent")
        .event_id
    }

    /// Sends `body` as a reply to the event `to`.
    pub async fn reply(&self, room: &RoomId, to: &OwnedEventId, body: &str) -> OwnedEventId {
        use execgov_matrix::matrix_sdk::ruma::events::relation::Reply;
        use execgov_matrix::matrix_sdk::ruma::events::room::message::Relation;
        let room = self.client.get_room(room).expect("a room this user is in");
        let mut content = RoomMessageEventContent::text_plain(body);
        content.relates_to = Some(Relation::Reply(Reply::with_event_id(to.clone())));
        room.send(content)
            .await
            .expect("reply sent")
            .response
            .event_id
    }

    pub async fn send(&self, room: &RoomId, body: &str) -> OwnedEventId {
        let room = self.client.get_room(room).expect("a room this user is in");
        room.send(RoomMessageEventContent::text_plain(body))
            .await
            .expect("message sent")
            .response
            .event_id
    }

    pub async fn react(&self, room: &RoomId, event: &str, key: &str) -> OwnedEventId {
        let room = self.client.get_room(room).expect("a room this user is in");
        let event = OwnedEventId::try_from(event).unwrap();
        room.send(ReactionEventContent::new(Annotation::new(
            event,
            key.to_string(),
        )))
        .await
        .expect("reaction sent")
        .response
        .event_id
    }
}

async fn sync_loop(
    client: Client,
    seen: Arc<Mutex<Seen>>,
    tick: watch::Sender<u64>,
    stop: CancellationToken,
) {
    let settings = SyncSettings::default().timeout(Duration::from_secs(10));
    loop {
        let result = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            r = client.sync_once(settings.clone()) => r,
        };
        match result {
            Ok(resp) => {
                let now = Instant::now();
                let mut s = seen.lock().unwrap();
                s.invites.extend(resp.rooms.invited.keys().cloned());
                for (room_id, update) in resp.rooms.joined {
                    for ev in update.timeline.events {
                        if let Ok(mut v) = serde_json::from_str::<Value>(ev.raw().json().get()) {
                            v["room_id"] = Value::String(room_id.to_string());
                            if let Some(id) = v["event_id"].as_str() {
                                s.arrived.insert(id.to_string(), now);
                            }
                            s.events.push(v);
                        }
                    }
                }
                drop(s);
                tick.send_modify(|n| *n += 1);
            }
            // The homeserver may be down on purpose: try again soon.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One line per event, for failure messages.
pub fn summary(v: &Value) -> String {
    let rel = &v["content"]["m.relates_to"];
    format!(
        "{} {} {} rel={}:{} body={:?}",
        v["event_id"].as_str().unwrap_or("?"),
        v["sender"].as_str().unwrap_or("?"),
        v["type"].as_str().unwrap_or("?"),
        rel["rel_type"].as_str().unwrap_or("-"),
        rel["event_id"].as_str().unwrap_or("-"),
        v["content"]["body"]
            .as_str()
            .or(v["content"]["m.new_content"]["body"].as_str())
            .unwrap_or("")
    )
}

pub fn body(v: &Value) -> &str {
    v["content"]["body"].as_str().unwrap_or("")
}

/// A message in the thread rooted at `root`.
pub fn in_thread(v: &Value, root: &str) -> bool {
    let rel = &v["content"]["m.relates_to"];
    rel["rel_type"] == "m.thread" && rel["event_id"] == root
}

/// The new body of an `m.replace` edit of `target`, if `v` is one.
pub fn edit_of<'a>(v: &'a Value, target: &str) -> Option<&'a str> {
    let rel = &v["content"]["m.relates_to"];
    (rel["rel_type"] == "m.replace" && rel["event_id"] == target)
        .then(|| v["content"]["m.new_content"]["body"].as_str())
        .flatten()
}
