//! What the adapter needs to know, already resolved from the config (secrets read).

use std::path::PathBuf;

/// The adapter's settings. The core builds this from `[matrix]` in the config,
/// with secret references already resolved.
#[derive(Clone)]
pub struct Settings {
    /// Base URL of the homeserver's client API (`https://matrix.example.org`).
    pub homeserver: String,
    /// The bot's own user id (`@execgov:example.org`).
    pub user_id: String,
    /// An access token for the bot's device; its device keeps its keys across restarts.
    pub access_token: Option<String>,
    /// Used when there is no access token (or the stored session was revoked):
    /// logs in again as the device recorded in `store_dir`.
    pub password: Option<String>,
    /// Messages starting with this are commands (`!run`).
    pub command_prefix: String,
    /// Only invites from these users are accepted.
    pub allowed_inviters: Vec<String>,
    /// Invites into these rooms (the Matrix places of `[channels]`) are accepted
    /// from anyone: the config already trusts them.
    pub allowed_rooms: Vec<String>,
    /// The SQLite state and crypto stores, the session (device id) and the
    /// adapter's own small state file: `data_dir/matrix`. Keeping it across
    /// restarts keeps the device, its keys and the sync position.
    pub store_dir: PathBuf,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("homeserver", &self.homeserver)
            .field("user_id", &self.user_id)
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("command_prefix", &self.command_prefix)
            .field("allowed_inviters", &self.allowed_inviters)
            .field("allowed_rooms", &self.allowed_rooms)
            .field("store_dir", &self.store_dir)
            .finish()
    }
}
