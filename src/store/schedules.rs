//! What the scheduler keeps beside the runs: per schedule, the last fire time it
//! handled (so a restart knows what it missed), the once-only records of fires
//! skipped or missed, and the "reload the manifests" request `execgov reload`
//! leaves for every server.
//!
//! Each fire is recorded exactly once across processes by the runs table's UNIQUE
//! `schedule_key`; the skipped/missed records are deduped through `inbound_events`,
//! keyed `schedule.skipped:<schedule key>` and the like.

use serde_json::Value;

use super::audit::AuditTx;
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
pub struct ScheduleEvent<'a> {
    /// Dedupe key, e.g. `schedule.skipped:<schedule key>`.
    pub key: &'a str,
    /// `schedule:<script>/<name>`.
    pub actor: &'a str,
    /// `schedule.skipped`, `schedule.missed`, `schedule.failed`.
    pub action: &'a str,
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

type StateRow = (String, String, i64, i64);

fn state(r: StateRow) -> ScheduleState {
    ScheduleState {
        id: r.0,
        spec: r.1,
        last_fire_at: r.2,
        updated_at: r.3,
    }
}

impl Store {
    /// Every schedule's stored state.
    pub async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        read_conn!(self, |c| {
            let rows: Vec<StateRow> = sqlx::query_as(
                "SELECT id, spec, last_fire_at, updated_at FROM schedule_state ORDER BY id",
            )
            .fetch_all(&mut *c)
            .await?;
            Ok(rows.into_iter().map(state).collect())
        })
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
        write_conn!(self, |c| {
            sqlx::query(
                "INSERT INTO schedule_state (id, spec, last_fire_at, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
                 spec = excluded.spec, last_fire_at = excluded.last_fire_at, \
                 updated_at = excluded.updated_at WHERE schedule_state.spec <> excluded.spec",
            )
            .bind(id)
            .bind(spec)
            .bind(start_at)
            .bind(now)
            .execute(&mut *c)
            .await?;
            let row: StateRow = sqlx::query_as(
                "SELECT id, spec, last_fire_at, updated_at FROM schedule_state WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&mut *c)
            .await?;
            Ok(state(row))
        })
    }

    /// Records that schedule `id` handled its fires up to `fire_at`; never moves back.
    pub async fn advance_schedule(
        &self,
        id: &str,
        fire_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        write_conn!(self, |c| {
            sqlx::query(
                "UPDATE schedule_state SET last_fire_at = $2, updated_at = $3 \
                 WHERE id = $1 AND last_fire_at < $2",
            )
            .bind(id)
            .bind(fire_at)
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// The run recorded for a schedule key, if any.
    pub async fn run_for_schedule_key(&self, key: &str) -> Result<Option<RunId>, StoreError> {
        read_conn!(self, |c| {
            let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM runs WHERE schedule_key = $1")
                .bind(key)
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.map(|(id,)| RunId(id)))
        })
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
        let len = prefix.chars().count() as i32;
        read_conn!(self, |c| {
            let row: Option<(i64,)> = sqlx::query_as(
                "SELECT id FROM runs WHERE script = $1 AND state IN ($2, $3, $4) \
                 AND substr(schedule_key, 1, $5) = $6 AND schedule_key <> $7 ORDER BY id LIMIT 1",
            )
            .bind(script)
            .bind(ACTIVE[0].as_str())
            .bind(ACTIVE[1].as_str())
            .bind(ACTIVE[2].as_str())
            .bind(len)
            .bind(&prefix)
            .bind(except_key)
            .fetch_optional(&mut *c)
            .await?;
            Ok(row.map(|(id,)| RunId(id)))
        })
    }

    /// Appends `ev`'s audit entry unless its key was recorded before (by any process)
    /// or its `while_active` run has finished: the dedupe row, the check and the entry
    /// are one transaction under the write lock.
    pub async fn record_schedule_event(
        &self,
        ev: ScheduleEvent<'_>,
    ) -> Result<EventOutcome, StoreError> {
        write_tx!(self, |c| {
            let mut still_going = true;
            if let Some(run) = ev.while_active {
                let row: Option<(String,)> = sqlx::query_as("SELECT state FROM runs WHERE id = $1")
                    .bind(run.0)
                    .fetch_optional(&mut *c)
                    .await?;
                still_going = row.is_some_and(|(s,)| ACTIVE.iter().any(|a| a.as_str() == s));
            }
            if !still_going {
                Ok::<_, StoreError>(EventOutcome::NoLongerActive)
            } else {
                let inserted = sqlx::query(
                    "INSERT INTO inbound_events (event_id, at) VALUES ($1, $2) \
                     ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(ev.key)
                .bind(ev.now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                if inserted == 1 {
                    c.append_audit(ev.now, ev.actor, ev.action, ev.while_active, &ev.details)
                        .await?;
                    Ok(EventOutcome::Recorded)
                } else {
                    Ok(EventOutcome::AlreadyRecorded)
                }
            }
        })
    }

    /// Whether a schedule event with this key was recorded.
    pub async fn schedule_event_recorded(&self, key: &str) -> Result<bool, StoreError> {
        read_conn!(self, |c| {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT at FROM inbound_events WHERE event_id = $1")
                    .bind(key)
                    .fetch_optional(&mut *c)
                    .await?;
            Ok(row.is_some())
        })
    }

    /// Asks every server sharing this database to reload its manifests
    /// (`execgov reload`); returns the new request generation.
    pub async fn request_reload(&self, by: &str, now: i64) -> Result<i64, StoreError> {
        write_conn!(self, |c| {
            let (generation,): (i64,) = sqlx::query_as(
                "INSERT INTO reload_requests (id, generation, requested_at, requested_by) \
                 VALUES (1, 1, $1, $2) ON CONFLICT (id) DO UPDATE SET \
                 generation = reload_requests.generation + 1, \
                 requested_at = excluded.requested_at, requested_by = excluded.requested_by \
                 RETURNING generation",
            )
            .bind(now)
            .bind(by)
            .fetch_one(&mut *c)
            .await?;
            Ok(generation)
        })
    }

    /// The latest reload request's generation (0 if none was ever made); servers
    /// reload when it changes.
    pub async fn reload_generation(&self) -> Result<i64, StoreError> {
        read_conn!(self, |c| {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT generation FROM reload_requests WHERE id = 1")
                    .fetch_optional(&mut *c)
                    .await?;
            Ok(row.map_or(0, |(g,)| g))
        })
    }
}
