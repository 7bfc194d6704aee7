//! Invites: the bot joins a room only when someone in `allowed_inviters`
//! invited it, or the room is one the config names; other invites are rejected.

use crate::Matrix;
use matrix_sdk::ruma::OwnedRoomId;
use matrix_sdk::{Room, RoomState};
use std::sync::Arc;
use std::time::Duration;

/// Join attempts for an accepted invite (Synapse can answer a join that races
/// its own invite processing with an error; the example bots retry too).
const JOIN_ATTEMPTS: u32 = 6;

impl Matrix {
    /// Decides an invite in the background.
    pub(crate) fn on_invite(self: &Arc<Self>, room_id: OwnedRoomId) {
        if !self
            .deciding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(room_id.clone())
        {
            return;
        }
        let this = self.clone();
        self.tasks.spawn(async move {
            if let Some(room) = this.client.get_room(&room_id)
                && room.state() == RoomState::Invited
            {
                this.decide_invite(&room).await;
            }
            this.deciding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&room_id);
        });
    }

    async fn decide_invite(&self, room: &Room) {
        let room_id = room.room_id().to_owned();
        let inviter = match room.invite_details().await {
            Ok(invite) => invite.inviter_id,
            Err(e) => {
                tracing::warn!(%room_id, error = %e, "reading an invite failed; leaving it for now");
                return;
            }
        };
        let allowed = self
            .settings
            .allowed_inviters
            .iter()
            .any(|u| u == inviter.as_str())
            || self
                .settings
                .allowed_rooms
                .iter()
                .any(|r| r == room_id.as_str());
        if !allowed {
            tracing::info!(%room_id, %inviter, "rejecting an invite from someone not in allowed_inviters");
            if let Err(e) = room.leave().await {
                tracing::warn!(%room_id, error = %e, "rejecting an invite failed");
            }
            return;
        }
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=JOIN_ATTEMPTS {
            match room.join().await {
                Ok(()) => {
                    tracing::info!(%room_id, %inviter, "joined on invite");
                    return;
                }
                Err(e) if attempt < JOIN_ATTEMPTS => {
                    tracing::warn!(%room_id, error = %e, attempt, "joining failed; retrying");
                    tokio::select! {
                        biased;
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::error!(%room_id, error = %e, "could not join a room the bot was invited to")
                }
            }
        }
    }
}
