//! Small tables beside the runs: artifacts, worker heartbeats, inbound event dedupe,
//! and standalone audit entries.

use serde_json::Value;

use super::audit::NewEntry;
use super::model::Artifact;
use super::ops::{Durability, Write};
use super::sql::{Tx, args};
use super::{Store, StoreError};
use crate::types::RunId;

pub(super) async fn add_artifact(tx: &mut Tx<'_>, a: &Artifact) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO artifacts (run_id, name, path, size, sha256) VALUES ($1, $2, $3, $4, $5)",
        args![
            a.run_id.0,
            a.name.as_str(),
            a.path.as_str(),
            a.size,
            a.sha256.as_str()
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn heartbeat(tx: &mut Tx<'_>, worker: &str, now: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO workers (worker, last_seen) VALUES ($1, $2) \
         ON CONFLICT (worker) DO UPDATE SET last_seen = excluded.last_seen",
        args![worker, now],
    )
    .await?;
    Ok(())
}

pub(super) async fn first_time(
    tx: &mut Tx<'_>,
    event_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "INSERT INTO inbound_events (event_id, at) VALUES ($1, $2) \
             ON CONFLICT (event_id) DO NOTHING",
            args![event_id, now],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn forget_events(tx: &mut Tx<'_>, before: i64) -> Result<u64, StoreError> {
    tx.execute("DELETE FROM inbound_events WHERE at < $1", args![before])
        .await
}

impl Store {
    /// Appends a standalone entry, for actions that change no run (a refused
    /// command, a config reload) or that concern a run without changing it.
    /// Synced: a refusal is an answer someone is given.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        run: Option<RunId>,
        details: Value,
        now: i64,
    ) -> Result<(), StoreError> {
        let entry = NewEntry {
            at: now,
            actor: actor.to_string(),
            action: action.to_string(),
            run,
            details,
        };
        self.write(Write::Audit(entry), Durability::Synced).await
    }

    /// Records a file a run produced. A second artifact with the same name for the
    /// same run is refused (see [`StoreError::is_unique_violation`]).
    pub async fn add_artifact(&self, a: &Artifact) -> Result<(), StoreError> {
        self.write(Write::AddArtifact(a.clone()), Durability::Relaxed)
            .await
    }

    /// A run's artifacts, by name.
    pub async fn artifacts(&self, run: RunId) -> Result<Vec<Artifact>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT * FROM artifacts WHERE run_id = $1 ORDER BY name",
                args![run.0],
            )
            .await?;
        rows.iter().map(Artifact::from_row).collect()
    }

    /// Says `worker` is alive at `now`.
    pub async fn heartbeat(&self, worker: &str, now: i64) -> Result<(), StoreError> {
        let worker = worker.to_string();
        self.write(Write::Heartbeat { worker, now }, Durability::Relaxed)
            .await
    }

    /// How many workers have sent a heartbeat at or after `since`.
    pub async fn live_workers(&self, since: i64) -> Result<i64, StoreError> {
        self.fetch_one(
            "SELECT COUNT(*) FROM workers WHERE last_seen >= $1",
            args![since],
        )
        .await?
        .first()
    }

    /// True the first time `event_id` is seen, false on every redelivery: adapters
    /// call this before acting on a platform event (synced: what follows is an answer).
    pub async fn first_time(&self, event_id: &str, now: i64) -> Result<bool, StoreError> {
        let event_id = event_id.to_string();
        self.write(Write::FirstTime { event_id, now }, Durability::Synced)
            .await
    }

    /// Forgets inbound event ids seen before `before` (platforms stop redelivering
    /// after minutes to hours), so the dedupe table stays bounded. Returns how many.
    pub async fn forget_events_before(&self, before: i64) -> Result<u64, StoreError> {
        self.write(Write::ForgetEventsBefore { before }, Durability::Relaxed)
            .await
    }
}
