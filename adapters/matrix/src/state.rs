//! The adapter's own small state, kept as JSON in the store folder beside the
//! SDK's SQLite stores: when this store first synced, when the bot joined each
//! room (so history is not read as commands), and which message asks for which
//! run's approval (so a reaction finds its run after a restart).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Approval requests older than this are forgotten (their runs have long expired).
const KEEP_APPROVALS_MS: u64 = 90 * 24 * 60 * 60 * 1000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Data {
    /// Our clock when this store first synced; `None` until the first sync is done.
    #[serde(default)]
    started_ms: Option<u64>,
    /// Room id → the homeserver's timestamp of the bot's own join.
    #[serde(default)]
    joined_ms: BTreeMap<String, u64>,
    /// Approval request event id → its run.
    #[serde(default)]
    approvals: BTreeMap<String, Approval>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Approval {
    run_id: String,
    room_id: String,
    at_ms: u64,
}

/// The state file, written whole (temp file, then rename) on every change.
#[derive(Debug)]
pub(crate) struct State {
    path: PathBuf,
    data: Mutex<Data>,
}

impl State {
    pub(crate) fn load(dir: &Path) -> std::io::Result<State> {
        let path = dir.join("execgov-state.json");
        let data = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Data::default(),
            Err(e) => return Err(e),
        };
        Ok(State {
            path,
            data: Mutex::new(data),
        })
    }

    fn update(&self, change: impl FnOnce(&mut Data)) {
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut data);
        if let Err(e) = write_atomically(&self.path, &data) {
            tracing::error!(path = %self.path.display(), error = %e, "saving the Matrix adapter state failed");
        }
    }

    pub(crate) fn started_ms(&self) -> Option<u64> {
        self.data
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .started_ms
    }

    pub(crate) fn set_started(&self, ms: u64) {
        self.update(|d| d.started_ms = Some(ms));
    }

    pub(crate) fn joined_ms(&self, room_id: &str) -> Option<u64> {
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        data.joined_ms.get(room_id).copied()
    }

    /// Records the bot's join into a room; a later join (after leaving) moves it.
    pub(crate) fn set_joined(&self, room_id: &str, ms: u64) {
        if self.joined_ms(room_id) != Some(ms) {
            self.update(|d| {
                d.joined_ms.insert(room_id.to_string(), ms);
            });
        }
    }

    pub(crate) fn approval_run(&self, event_id: &str) -> Option<String> {
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        data.approvals.get(event_id).map(|a| a.run_id.clone())
    }

    pub(crate) fn record_approval(&self, event_id: &str, room_id: &str, run_id: &str, now_ms: u64) {
        self.update(|d| {
            d.approvals
                .retain(|_, a| a.at_ms + KEEP_APPROVALS_MS > now_ms);
            d.approvals.insert(
                event_id.to_string(),
                Approval {
                    run_id: run_id.to_string(),
                    room_id: room_id.to_string(),
                    at_ms: now_ms,
                },
            );
        });
    }
}

fn write_atomically(path: &Path, data: &Data) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(data).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::load(dir.path()).unwrap();
        assert_eq!(s.started_ms(), None, "a new store has not synced");
        s.set_started(5);
        s.record_approval("$req", "!r:hs", "12", 1000);
        s.set_joined("!r:hs", 7);
        let again = State::load(dir.path()).unwrap();
        assert_eq!(again.started_ms(), Some(5));
        assert_eq!(
            again.approval_run("$req").as_deref(),
            Some("12"),
            "the reaction finds its run after a restart"
        );
        assert_eq!(again.joined_ms("!r:hs"), Some(7));
    }

    #[test]
    fn old_approvals_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::load(dir.path()).unwrap();
        s.record_approval("$old", "!r:hs", "1", 0);
        s.record_approval("$new", "!r:hs", "2", KEEP_APPROVALS_MS + 1);
        assert_eq!(s.approval_run("$old"), None);
        assert_eq!(s.approval_run("$new").as_deref(), Some("2"));
    }
}
