//! Small tables beside the runs: artifacts, worker heartbeats, inbound event dedupe.

use super::model::Artifact;
use super::{Store, StoreError};
use crate::types::RunId;

impl Store {
    /// Records a file a run produced. A second artifact with the same name for the
    /// same run is refused (see [`StoreError::is_unique_violation`]).
    pub async fn add_artifact(&self, a: &Artifact) -> Result<(), StoreError> {
        write_conn!(self, |c| {
            sqlx::query(
                "INSERT INTO artifacts (run_id, name, path, size, sha256) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(a.run_id.0)
            .bind(&a.name)
            .bind(&a.path)
            .bind(a.size)
            .bind(&a.sha256)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// A run's artifacts, by name.
    pub async fn artifacts(&self, run: RunId) -> Result<Vec<Artifact>, StoreError> {
        read_conn!(self, |c| {
            let rows = sqlx::query_as("SELECT * FROM artifacts WHERE run_id = $1 ORDER BY name")
                .bind(run.0)
                .fetch_all(&mut *c)
                .await?;
            Ok(rows)
        })
    }

    /// Says `worker` is alive at `now`.
    pub async fn heartbeat(&self, worker: &str, now: i64) -> Result<(), StoreError> {
        write_conn!(self, |c| {
            sqlx::query(
                "INSERT INTO workers (worker, last_seen) VALUES ($1, $2) \
                 ON CONFLICT (worker) DO UPDATE SET last_seen = excluded.last_seen",
            )
            .bind(worker)
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// How many workers have sent a heartbeat at or after `since`.
    pub async fn live_workers(&self, since: i64) -> Result<i64, StoreError> {
        read_conn!(self, |c| {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM workers WHERE last_seen >= $1")
                .bind(since)
                .fetch_one(&mut *c)
                .await?;
            Ok(n)
        })
    }

    /// True the first time `event_id` is seen, false on every redelivery: adapters
    /// call this before acting on a platform event.
    pub async fn first_time(&self, event_id: &str, now: i64) -> Result<bool, StoreError> {
        write_conn!(self, |c| {
            sqlx::query(
                "INSERT INTO inbound_events (event_id, at) VALUES ($1, $2) \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(event_id)
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected())
        })
        .map(|rows| rows == 1)
        .map_err(StoreError::from)
    }

    /// Forgets inbound event ids seen before `before` (platforms stop redelivering
    /// after minutes to hours), so the dedupe table stays bounded. Returns how many.
    pub async fn forget_events_before(&self, before: i64) -> Result<u64, StoreError> {
        write_conn!(self, |c| {
            sqlx::query("DELETE FROM inbound_events WHERE at < $1")
                .bind(before)
                .execute(&mut *c)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(StoreError::from)
    }
}
