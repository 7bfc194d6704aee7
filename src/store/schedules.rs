//! What the scheduler keeps beside the runs: per schedule, the last fire time it
//! handled (so a restart knows what it missed), the once-only records of fires
//! skipped or missed, and the "reload the manifests" request `execgov reload`
//! leaves for every server.
//!
//! Each fire is recorded exactly once across processes by the runs table's UNIQUE
//! `schedule_key`; the skipped/missed records are deduped through `inbound_events`,
//! keyed `schedule.skipped:<schedule key>` and the like.

use serde_json::Value;

use super::ops::{Durability, Write};
use super::sql::{Row, Tx, args};
use super::{Store, StoreError};
use crate::types::{RunId, RunState};

/// The states in which a schedule's run is still going: a new fire overlaps it.
const ACTIVE: [RunState; 3] = [
    RunState::AwaitingApproval,
    RunState::Queued,
    RunState::Running,
];

/// One schedule's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    /// `<script>/<schedule name>`.
    pub id: String,
    /// The cron expression and timezone `last_fire_at` belongs to; a changed schedule
    /// starts afresh instead of catching up on fires of its new expression.
    pub spec: String,
    /// The latest fire time (unix ms) handled: fired, skipped or given up as missed.
    pub last_fire_at: i64,
    pub updated_at: i64,
}

/// A fact about one fire worth one audit entry, however many processes see it.
#[derive(Debug, Clone)]
pub struct ScheduleEvent {
    /// Dedupe key, e.g. `schedule.skipped:<schedule key>`.
    pub key: String,
    /// `schedule:<script>/<name>`.
    pub actor: String,
    /// `schedule.skipped`, `schedule.missed`, `schedule.failed`.
    pub action: String,
    pub details: Value,
    /// Record only while this run is still going (the run a skipped fire overlapped):
    /// checked under the write lock, so no process fires what another recorded as skipped.
    pub while_active: Option<RunId>,
    pub now: i64,
}

/// What [`Store::record_schedule_event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Recorded,
    /// Another process (or an earlier tick) recorded it already.
    AlreadyRecorded,
    /// `while_active` had finished: nothing recorded.
    NoLongerActive,
}

impl ScheduleState {
    fn from_row(r: &Row) -> Result<ScheduleState, StoreError> {
        Ok(ScheduleState {
            id: r.get("id")?,
            spec: r.get("spec")?,
            last_fire_at: r.get("last_fire_at")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

pub(super) async fn init(
    tx: &mut Tx<'_>,
    id: &str,
    spec: &str,
    start_at: i64,
    now: i64,
) -> Result<ScheduleState, StoreError> {
    tx.execute(
        "INSERT INTO schedule_state (id, spec, last_fire_at, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
         spec = excluded.spec, last_fire_at = excluded.last_fire_at, \
         updated_at = excluded.updated_at WHERE schedule_state.spec <> excluded.spec",
        args![id, spec, start_at, now],
    )
    .await?;
    let row = tx
        .fetch_one(
            "SELECT id, spec, last_fire_at, updated_at FROM schedule_state WHERE id = $1",
            args![id],
        )
        .await?;
    ScheduleState::from_row(&row)
}

pub(super) async fn advance(
    tx: &mut Tx<'_>,
    id: &str,
    fire_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE schedule_state SET last_fire_at = $2, updated_at = $3 \
         WHERE id = $1 AND last_fire_at < $2",
        args![id, fire_at, now],
    )
    .await?;
    Ok(())
}

pub(super) async fn record_event(
    tx: &mut Tx<'_>,
    ev: ScheduleEvent,
) -> Result<EventOutcome, StoreError> {
    if let Some(run) = ev.while_active {
        let sql = match tx.backend() {
            super::sql::Backend::Sqlite => "SELECT state FROM runs WHERE id = $1",
            super::sql::Backend::Postgres => "SELECT state FROM runs WHERE id = $1 FOR UPDATE",
        };
        let state = match tx.fetch_optional(sql, args![run.0]).await? {
            Some(row) => Some(row.get::<RunState>("state")?),
            None => None,
        };
        if !state.is_some_and(|s| ACTIVE.contains(&s)) {
            return Ok(EventOutcome::NoLongerActive);
        }
    }
    let inserted = tx
        .execute(
            "INSERT INTO inbound_events (event_id, at) VALUES ($1, $2) \
             ON CONFLICT (event_id) DO NOTHING",
            args![ev.key.as_str(), ev.now],
        )
        .await?;
    if inserted == 0 {
        return Ok(EventOutcome::AlreadyRecorded);
    }
    tx.audit(ev.now, &ev.actor, &ev.action, ev.while_active, ev.details);
    Ok(EventOutcome::Recorded)
}

pub(super) async fn request_reload(tx: &mut Tx<'_>, by: &str, now: i64) -> Result<i64, StoreError> {
    tx.fetch_one(
        "INSERT INTO reload_requests (id, generation, requested_at, requested_by) \
         VALUES (1, 1, $1, $2) ON CONFLICT (id) DO UPDATE SET \
         generation = reload_requests.generation + 1, \
         requested_at = excluded.requested_at, requested_by = excluded.requested_by \
         RETURNING generation",
        args![now, by],
    )
    .await?
    .first()
}

impl Store {
    /// Every schedule's stored state.
    pub async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT id, spec, last_fire_at, updated_at FROM schedule_state ORDER BY id",
                args![],
            )
            .await?;
        rows.iter().map(ScheduleState::from_row).collect()
    }

    /// The state of schedule `id` for `spec`: created with `start_at` as its last fire
    /// when missing, and restarted from `start_at` when its spec changed. Returns the
    /// row as stored (another process may have created it first).
    pub async fn init_schedule(
        &self,
        id: &str,
        spec: &str,
        start_at: i64,
        now: i64,
    ) -> Result<ScheduleState, StoreError> {
        let write = Write::InitSchedule {
            id: id.to_string(),
            spec: spec.to_string(),
            start_at,
            now,
        };
        self.write(write, Durability::Relaxed).await
    }

    /// Records that schedule `id` handled its fires up to `fire_at`; never moves back.
    pub async fn advance_schedule(
        &self,
        id: &str,
        fire_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(
            Write::AdvanceSchedule { id, fire_at, now },
            Durability::Relaxed,
        )
        .await
    }

    /// The run recorded for a schedule key, if any.
    pub async fn run_for_schedule_key(&self, key: &str) -> Result<Option<RunId>, StoreError> {
        match self
            .fetch_optional("SELECT id FROM runs WHERE schedule_key = $1", args![key])
            .await?
        {
            Some(row) => Ok(Some(row.first()?)),
            None => Ok(None),
        }
    }

    /// The oldest run of schedule `id` (a run of `script` whose key starts `<id>@`)
    /// still awaiting approval, queued or running, other than the one keyed `except_key`.
    pub async fn active_schedule_run(
        &self,
        script: &str,
        id: &str,
        except_key: &str,
    ) -> Result<Option<RunId>, StoreError> {
        let prefix = format!("{id}@");
        // substr rather than LIKE: `_` in a name is no wildcard, and case counts on both backends.
        let len = prefix.chars().count() as i64;
        let row = self
            .fetch_optional(
                "SELECT id FROM runs WHERE script = $1 AND state IN ($2, $3, $4) \
                 AND substr(schedule_key, 1, CAST($5 AS INTEGER)) = $6 AND schedule_key <> $7 ORDER BY id LIMIT 1",
                args![
                    script,
                    ACTIVE[0].as_str(),
                    ACTIVE[1].as_str(),
                    ACTIVE[2].as_str(),
                    len,
                    prefix,
                    except_key
                ],
            )
            .await?;
        match row {
            Some(row) => Ok(Some(row.first()?)),
            None => Ok(None),
        }
    }

    /// Appends `ev`'s audit entry unless its key was recorded before (by any process)
    /// or its `while_active` run has finished: the dedupe row, the check and the entry
    /// are one transaction.
    pub async fn record_schedule_event(
        &self,
        ev: ScheduleEvent,
    ) -> Result<EventOutcome, StoreError> {
        self.write(Write::ScheduleEvent(ev), Durability::Relaxed)
            .await
    }

    /// Whether a schedule event with this key was recorded.
    pub async fn schedule_event_recorded(&self, key: &str) -> Result<bool, StoreError> {
        let row = self
            .fetch_optional(
                "SELECT at FROM inbound_events WHERE event_id = $1",
                args![key],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Asks every server sharing this database to reload its manifests
    /// (`execgov reload`); returns the new request generation.
    pub async fn request_reload(&self, by: &str, now: i64) -> Result<i64, StoreError> {
        let by = by.to_string();
        self.write(Write::RequestReload { by, now }, Durability::Synced)
            .await
    }

    /// The latest reload request's generation (0 if none was ever made); servers
    /// reload when it changes.
    pub async fn reload_generation(&self) -> Result<i64, StoreError> {
        let row = self
            .fetch_optional(
                "SELECT generation FROM reload_requests WHERE id = 1",
                args![],
            )
            .await?;
        match row {
            Some(row) => row.first(),
            None => Ok(0),
        }
    }
}
