//! The bot joins only rooms it was invited to by someone in `allowed_inviters`.

use super::World;
use super::user::TestUser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_from_someone_not_allowed_is_rejected() {
    // World::new already checked that alice's and bob's invites were accepted.
    let w = World::new(false).await;
    let mallory = TestUser::new(&w.hs, &format!("mallory-{}", &w.bot_id[9..15])).await;
    let room = mallory.create_room(false, &[&w.bot_id]).await;
    let left = mallory
        .wait_for("the bot rejecting the invite", |v| {
            v["room_id"] == room.as_str()
                && v["type"] == "m.room.member"
                && v["state_key"] == w.bot_id.as_str()
                && v["content"]["membership"] == "leave"
        })
        .await;
    assert_eq!(left["sender"], w.bot_id.as_str(), "the bot itself declined");
    assert!(
        !mallory
            .events()
            .iter()
            .any(|v| v["room_id"] == room.as_str()
                && v["type"] == "m.room.member"
                && v["state_key"] == w.bot_id.as_str()
                && v["content"]["membership"] == "join"),
        "the bot never joined mallory's room"
    );
}
