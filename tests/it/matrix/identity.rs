//! The bot as others see it: its device is cross-signed by its own identity
//! (no "unverified device" warning in encrypted rooms); it is addressed by
//! `m.mentions` (its name in the text counts only for clients without it);
//! and what it reports for `/readyz` is false until a sync succeeded, and
//! while syncs fail.

use super::synapse::Synapse;
use super::user::WAIT;
use super::user::{body, in_thread};
use super::{Hs, World};
use execgov_matrix::matrix_sdk::ruma::OwnedUserId;
use execgov_matrix::matrix_sdk::ruma::events::Mentions;
use execgov_matrix::matrix_sdk::ruma::events::room::message::RoomMessageEventContent;

async fn until_ready(w: &World, want: bool) {
    let mut ready = w.bot.as_ref().expect("a running bot").ready.clone();
    tokio::time::timeout(WAIT, ready.wait_for(|up| *up == want))
        .await
        .unwrap_or_else(|_| panic!("the bot reports ready = {want} in time"))
        .expect("the sync loop is running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bots_device_is_cross_signed_by_its_own_identity() {
    let w = World::new(true).await;
    let bot = w.bot.as_ref().unwrap();
    assert!(
        bot.matrix.own_device_is_cross_signed().await,
        "the bot signed its own device"
    );
    // As alice's client sees it, from the homeserver's key directory.
    let bot_id = OwnedUserId::try_from(w.bot_id.as_str()).unwrap();
    let encryption = w.alice.client.encryption();
    let identity = encryption
        .request_user_identity(&bot_id)
        .await
        .expect("keys query")
        .expect("the bot has a cross-signing identity");
    assert_eq!(identity.user_id(), bot_id);
    let device_id = bot.matrix.client().device_id().unwrap().to_owned();
    let device = encryption
        .get_device(&bot_id, &device_id)
        .await
        .expect("device lookup")
        .expect("alice knows the bot's device");
    assert!(
        device.is_cross_signed_by_owner(),
        "the bot's device is signed by its owner's identity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m_mentions_address_the_bot_and_a_name_without_them_does_not() {
    let w = World::new(false).await;
    let room = w.alice.client.get_room(&w.ops).unwrap();
    let bot_id = OwnedUserId::try_from(w.bot_id.as_str()).unwrap();
    // Its name at the start, but m.mentions (empty) says nobody is mentioned.
    let named = room
        .send(
            RoomMessageEventContent::text_plain(format!("{}: list", w.bot_name))
                .add_mentions(Mentions::new()),
        )
        .await
        .unwrap()
        .response
        .event_id;
    // No name in the text, but m.mentions has the bot (a pill).
    let pill = room
        .send(
            RoomMessageEventContent::text_plain("list")
                .add_mentions(Mentions::with_user_ids([bot_id])),
        )
        .await
        .unwrap()
        .response
        .event_id;
    let answer = w
        .alice
        .wait_for("the answer to the m.mentions message", |v| {
            w.by_bot(v) && in_thread(v, pill.as_str())
        })
        .await;
    assert!(
        body(&answer).contains("report-export"),
        "`list` with the bot in m.mentions is a command: {}",
        body(&answer)
    );
    assert!(
        !w.alice
            .events()
            .iter()
            .any(|v| w.by_bot(v) && in_thread(v, named.as_str())),
        "a name in the text with m.mentions that leave the bot out is not a command"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_a_sync_and_drops_while_syncs_fail() {
    let mut w = World::on(Hs::Own(Synapse::own("ready")), false).await;
    until_ready(&w, true).await;
    w.hs.stop();
    until_ready(&w, false).await;
    w.hs.start();
    until_ready(&w, true).await;

    // Started while the homeserver is away (its stored session lets it):
    // not ready before its first sync.
    w.stop_bot().await;
    w.hs.stop();
    w.start_bot().await;
    assert!(
        !*w.bot.as_ref().unwrap().ready.borrow(),
        "not ready before any sync succeeded"
    );
    w.hs.start();
    until_ready(&w, true).await;
}
