//! ExecGov's Matrix adapter: a bot account that takes commands in rooms and
//! direct messages, answers in threads, keeps each run's status message
//! edited in place, posts results with their files, and turns ✅/❌ reactions
//! on approval requests into decisions. Encrypted rooms work: the SDK's SQLite
//! crypto store in `store_dir` keeps the device's keys across restarts.
//!
//! Layout:
//! - [`Settings`], [`MatrixError`] (`settings`, `error`): what it needs, what can fail.
//! - `session`: log in (token or password) as the device recorded in `store_dir`.
//! - `state`: the adapter's own small state file (start time, joins, approval requests).
//! - this file: [`Matrix::connect`] and the sync loop, [`Matrix::sync_until_stopped`].
//! - `identity`: cross-signing, so the bot's device is verified by its owner.
//! - `invites`: which invites are accepted.
//! - `inbound`: events → [`execgov_chat::Inbound`] (commands, reactions), once each;
//!   `grammar`: which messages are commands and what they say; `files`: the file a
//!   command replies to.
//! - `outbound`: [`execgov_chat::ChatAdapter`] (post, edit, files) and answers.
//! - `render`: the core's messages as Matrix `body` + HTML `formatted_body`.

mod error;
mod files;
mod grammar;
mod identity;
mod inbound;
mod invites;
mod outbound;
mod render;
mod session;
mod settings;
mod state;

pub use error::MatrixError;
/// The SDK this adapter is built on, for callers (tests, tools) that talk Matrix too.
pub use matrix_sdk;
pub use settings::Settings;

use error::{Retry, classify};
use execgov_chat::InboundHandler;
use matrix_sdk::Client;
use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter;
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId, UInt};
use matrix_sdk::sync::SyncResponse;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The long-poll time of one sync request.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeline events per room per sync: enough to catch up after a restart
/// without a gap.
const TIMELINE_LIMIT: u32 = 100;
/// First and largest wait between failed syncs (doubling in between).
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Failed syncs in a row after which the adapter reports itself not ready.
/// One failure is a blip (a restart of the homeserver's worker); two in a
/// row, with the wait between them, is an outage.
const FAILURES_NOT_READY: u32 = 2;
/// How long shutdown waits for answers still being sent.
const DRAIN: Duration = Duration::from_secs(10);

/// The Matrix bot. Shared as `Arc<Matrix>`: the sync loop runs on one clone,
/// the core's notifier posts through another (as `Arc<dyn ChatAdapter>`).
pub struct Matrix {
    client: Client,
    own: OwnedUserId,
    settings: Settings,
    /// Ways people address the bot at the start of a message (id, localpart, display name).
    names: Vec<String>,
    handler: Arc<dyn InboundHandler>,
    state: state::State,
    /// Answers, joins and decryption retries in flight; waited for at shutdown.
    tasks: TaskTracker,
    /// Cancelled when the sync loop stops, for those tasks.
    stop: CancellationToken,
    /// Invites being decided, so one is not decided twice at once.
    deciding: Mutex<HashSet<OwnedRoomId>>,
    /// Direct rooms are made one at a time (two answers must not make two rooms).
    dm_lock: tokio::sync::Mutex<()>,
    /// Sends into each room go one at a time (see `one_at_a_time`).
    send_locks: Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matrix")
            .field("user_id", &self.own)
            .finish()
    }
}

impl Matrix {
    /// Logs in (as the device recorded in `store_dir`, or a new one the first
    /// time) on SQLite stores in `store_dir`. On the very first start, one sync
    /// is done and its events ignored: what was said before the bot existed
    /// is history, not commands. Later starts resume from the stored sync
    /// position, so what was said while the bot was down is still answered.
    pub async fn connect(
        settings: Settings,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<Arc<Matrix>, MatrixError> {
        // The SDK's HTTP client needs a process-wide rustls provider, and the
        // workspace links two (ring and aws-lc-rs): choose, harmlessly if
        // `main` already did.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if settings.command_prefix.trim().is_empty() {
            return Err(MatrixError::Settings(
                "command_prefix must not be empty".into(),
            ));
        }
        create_private_dir(&settings.store_dir)?;
        let state =
            state::State::load(&settings.store_dir).map_err(|source| MatrixError::Store {
                path: settings.store_dir.clone(),
                source,
            })?;
        let client = session::connect_client(&settings).await?;
        let own = client
            .user_id()
            .ok_or_else(|| MatrixError::Settings("logged in without a user id".into()))?
            .to_owned();
        let mut names = vec![own.to_string(), own.localpart().to_string()];
        match client.account().get_display_name().await {
            Ok(Some(name)) if !name.trim().is_empty() => names.push(name),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reading the bot's display name failed"),
        }
        let matrix = Arc::new(Matrix {
            client,
            own,
            settings,
            names,
            handler,
            state,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            deciding: Mutex::new(HashSet::new()),
            dm_lock: tokio::sync::Mutex::new(()),
            send_locks: Mutex::new(HashMap::new()),
        });
        if matrix.state.started_ms().is_none() {
            let first = matrix
                .client
                .sync_once(sync_settings(Duration::ZERO))
                .await?;
            matrix.state.set_started(inbound::now_ms());
            tracing::info!(
                rooms = first.rooms.joined.len(),
                "first Matrix sync done; earlier messages are history"
            );
        }
        matrix.bootstrap_cross_signing().await;
        // Invites that arrived while the bot was away.
        for room in matrix.client.invited_rooms() {
            matrix.on_invite(room.room_id().to_owned());
        }
        tracing::info!(user_id = %matrix.own, device = ?matrix.client.device_id(), "connected to Matrix");
        Ok(matrix)
    }

    /// The bot's own user id.
    pub fn user_id(&self) -> &str {
        self.own.as_str()
    }

    /// The SDK client, for what this adapter does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Syncs until `shutdown`: each response's invites and timeline events are
    /// handled in order. A failed sync (homeserver down, network gone) is
    /// retried after a doubling wait capped at 30 s, or after the homeserver's
    /// own `retry_after` when it rate-limits; each retry resumes from the
    /// stored sync position, so nothing is skipped.
    pub async fn sync_until_stopped(self: Arc<Self>, shutdown: CancellationToken) {
        self.sync_reporting_until_stopped(shutdown, |_| {}).await
    }

    /// [`Matrix::sync_until_stopped`], telling `ready` whether the bot hears
    /// its rooms: `false` at the start, `true` after each successful sync,
    /// `false` once [`FAILURES_NOT_READY`] syncs in a row failed, and at the
    /// end. It is what `/readyz` reports for Matrix.
    pub async fn sync_reporting_until_stopped(
        self: Arc<Self>,
        shutdown: CancellationToken,
        ready: impl Fn(bool) + Send + Sync,
    ) {
        ready(false);
        let settings = sync_settings(SYNC_TIMEOUT);
        let mut wait = BACKOFF_FIRST;
        let mut failures = 0u32;
        loop {
            let result = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                r = self.client.sync_once(settings.clone()) => r,
            };
            match result {
                Ok(response) => {
                    if failures > 0 {
                        tracing::info!(failures, "Matrix sync resumed");
                    }
                    failures = 0;
                    wait = BACKOFF_FIRST;
                    ready(true);
                    self.on_sync(response).await;
                }
                Err(e) => {
                    failures += 1;
                    if failures >= FAILURES_NOT_READY {
                        ready(false);
                    }
                    let pause = match classify(&e) {
                        Retry::Transient(Some(server_says)) => server_says,
                        Retry::Transient(None) | Retry::Permanent => {
                            let w = wait;
                            wait = (wait * 2).min(BACKOFF_MAX);
                            w
                        }
                    };
                    tracing::warn!(error = %e, failures, wait_ms = pause.as_millis() as u64, "Matrix sync failed; retrying");
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        ready(false);
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(DRAIN, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("stopped with Matrix answers still being sent");
        }
        tracing::info!("Matrix sync stopped");
    }

    async fn on_sync(self: &Arc<Self>, response: SyncResponse) {
        for room_id in response.rooms.invited.keys() {
            self.on_invite(room_id.clone());
        }
        for (room_id, update) in response.rooms.joined {
            let Some(room) = self.client.get_room(&room_id) else {
                continue;
            };
            if update.timeline.limited {
                tracing::debug!(%room_id, "timeline gap in this sync; older events are not replayed");
            }
            self.on_timeline(&room, update.timeline.events).await;
        }
    }
}

fn sync_settings(timeout: Duration) -> SyncSettings {
    let mut filter = FilterDefinition::default();
    filter.room.timeline.limit = Some(UInt::from(TIMELINE_LIMIT));
    SyncSettings::default()
        .timeout(timeout)
        .filter(Filter::FilterDefinition(filter))
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), MatrixError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| MatrixError::Store {
            path: dir.to_path_buf(),
            source,
        })
}
