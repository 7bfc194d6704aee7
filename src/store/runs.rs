//! Runs: recording a request, the one transition function every state change goes
//! through, and the sweeps built on it (expiry, cancellation, lapsed leases).

use serde_json::{Value, json};
use tracing::instrument;

use super::audit::{AuditTx, NewEntry};
use super::background::OwnedAudit;
use super::model::{NewRun, Run, RunFilter, RunPatch};
use super::{Store, StoreError, json_text};
use crate::types::{RunId, RunState};

/// Transaction-level run operations, for use inside `write_tx!`.
pub(super) trait RunsTx {
    async fn fetch_run(&mut self, id: RunId) -> Result<Run, StoreError>;

    /// Moves `id` to `to` and appends the audit entry. Refuses an arrow the lifecycle
    /// diagram lacks.
    async fn transition_in(
        &mut self,
        id: RunId,
        to: RunState,
        a: Audited<'_>,
    ) -> Result<Run, StoreError>;

    async fn insert_run(&mut self, new: &NewRun, now: i64) -> Result<Run, StoreError>;
}

/// Who made a transition and what the audit entry says, plus the columns it sets.
pub(super) struct Audited<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub details: Value,
    pub patch: RunPatch,
    pub now: i64,
}

/// One run by id.
pub(super) const FETCH_RUN: &str = "SELECT * FROM runs WHERE id = $1";

/// Moves run `$1` from state `$2` to `$3`, setting the columns of [`Moved`]
/// (`$4`..`$14`, in its field order); returns the row, or none if the run
/// was not in `$2`.
pub(super) const TRANSITION: &str = "UPDATE runs SET state = $3, queued_at = $4, \
     started_at = $5, finished_at = $6, exit_code = $7, error = $8, log_path = $9, \
     log_bytes = $10, log_dropped = $11, output_tail = $12, \
     result = COALESCE($13, result), reason = $14 \
     WHERE id = $1 AND state = $2 RETURNING *";

/// The columns a transition writes besides the state.
pub(super) struct Moved {
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub log_path: Option<String>,
    pub log_bytes: i64,
    pub log_dropped: i64,
    pub output_tail: Option<String>,
    /// JSON text, or `None` to keep the stored result.
    pub result: Option<String>,
    pub reason: Option<String>,
}

/// What moving `run` to `to` writes: the state's timestamp stamped at `now`,
/// `patch` over the stored columns. Refuses an arrow the lifecycle lacks.
pub(super) fn moved(run: Run, to: RunState, p: RunPatch, now: i64) -> Result<Moved, StoreError> {
    let from = run.state;
    if !from.can_become(to) {
        return Err(StoreError::InvalidTransition {
            run: run.id,
            from,
            to,
        });
    }
    let stamp = |when: bool, old: Option<i64>| if when { Some(now) } else { old };
    Ok(Moved {
        queued_at: stamp(to == RunState::Queued, run.queued_at),
        started_at: stamp(to == RunState::Running, run.started_at),
        finished_at: stamp(to.is_final(), run.finished_at),
        exit_code: p.exit_code.or(run.exit_code),
        error: p.error.or(run.error),
        log_path: p.log_path.or(run.log_path),
        log_bytes: p.log_bytes.unwrap_or(run.log_bytes),
        log_dropped: p.log_dropped.unwrap_or(run.log_dropped),
        output_tail: p.output_tail.or(run.output_tail),
        result: p.result.as_ref().map(json_text),
        reason: p.reason.or(run.reason),
    })
}

/// Under the write lock nobody else can have moved the run; say so if they did.
pub(super) fn changed_outside_the_lock(id: RunId) -> StoreError {
    StoreError::Corrupt(format!("run {id} changed state outside the write lock"))
}

/// Inserts a new run, `$1`..`$18` bound in this order; returns the row.
pub(super) const INSERT_RUN: &str = "INSERT INTO runs (script, args, requester, \
     requester_person, place, state, reason, manifest_digest, max_concurrent, timeout_ms, \
     risk, quorum, approvers, expires_at, schedule_key, created_at, queued_at, finished_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
     $18) RETURNING *";

/// A new run's `queued_at` and `finished_at`, stamped by its first state.
pub(super) fn first_stamps(new: &NewRun, now: i64) -> (Option<i64>, Option<i64>) {
    let queued_at = (new.state == RunState::Queued).then_some(now);
    let finished_at = new.state.is_final().then_some(now);
    (queued_at, finished_at)
}

/// The row `INSERT_RUN` writes for `new` as run `id`: its own columns, and
/// every other column at its default (nothing has happened to it yet).
pub(super) fn as_inserted(new: NewRun, id: RunId, now: i64) -> Run {
    let (queued_at, finished_at) = first_stamps(&new, now);
    let NewRun {
        script,
        args,
        requester,
        requester_person,
        place,
        manifest_digest,
        max_concurrent,
        timeout_ms,
        risk,
        state,
        reason,
        quorum,
        approvers,
        expires_at,
        schedule_key,
    } = new;
    Run {
        id,
        script,
        args,
        requester,
        requester_person,
        place,
        state,
        reason,
        manifest_digest,
        max_concurrent,
        timeout_ms,
        risk,
        quorum,
        approvers,
        expires_at,
        schedule_key,
        created_at: now,
        queued_at,
        started_at: None,
        finished_at,
        exit_code: None,
        error: None,
        log_path: None,
        log_bytes: 0,
        log_dropped: 0,
        output_tail: None,
        result: None,
        progress_pct: None,
        progress_text: None,
        worker: None,
        lease_until: None,
        cancel_requested: false,
    }
}

macro_rules! impl_runs_tx {
    ($conn:ty) => {
        impl RunsTx for $conn {
            async fn fetch_run(&mut self, id: RunId) -> Result<Run, StoreError> {
                sqlx::query_as(FETCH_RUN)
                    .bind(id.0)
                    .fetch_optional(&mut *self)
                    .await?
                    .ok_or(StoreError::NotFound(id))
            }

            async fn transition_in(
                &mut self,
                id: RunId,
                to: RunState,
                a: Audited<'_>,
            ) -> Result<Run, StoreError> {
                let run = self.fetch_run(id).await?;
                let from = run.state;
                let m = moved(run, to, a.patch, a.now)?;
                let updated: Option<Run> = sqlx::query_as(TRANSITION)
                    .bind(id.0)
                    .bind(from.as_str())
                    .bind(to.as_str())
                    .bind(m.queued_at)
                    .bind(m.started_at)
                    .bind(m.finished_at)
                    .bind(m.exit_code)
                    .bind(m.error)
                    .bind(m.log_path)
                    .bind(m.log_bytes)
                    .bind(m.log_dropped)
                    .bind(m.output_tail)
                    .bind(m.result)
                    .bind(m.reason)
                    .fetch_optional(&mut *self)
                    .await?;
                let updated = updated.ok_or_else(|| changed_outside_the_lock(id))?;
                self.append_audit(a.now, a.actor, a.action, Some(id), &a.details)
                    .await?;
                Ok(updated)
            }

            async fn insert_run(&mut self, new: &NewRun, now: i64) -> Result<Run, StoreError> {
                let (queued_at, finished_at) = first_stamps(new, now);
                let run: Run = sqlx::query_as(INSERT_RUN)
                    .bind(&new.script)
                    .bind(json_text(&new.args))
                    .bind(&new.requester)
                    .bind(&new.requester_person)
                    .bind(json_text(&new.place))
                    .bind(new.state.as_str())
                    .bind(&new.reason)
                    .bind(&new.manifest_digest)
                    .bind(new.max_concurrent)
                    .bind(new.timeout_ms)
                    .bind(&new.risk)
                    .bind(new.quorum)
                    .bind(json_text(&new.approvers))
                    .bind(new.expires_at)
                    .bind(&new.schedule_key)
                    .bind(now)
                    .bind(queued_at)
                    .bind(finished_at)
                    .fetch_one(&mut *self)
                    .await?;
                Ok(run)
            }
        }
    };
}

impl_runs_tx!(sqlx::SqliteConnection);
impl_runs_tx!(sqlx::PgConnection);

/// The audit details of the entry that records a new run's first state.
fn first_state_details(new: &NewRun) -> Value {
    match new.state {
        RunState::Refused => json!({ "reason": new.reason }),
        RunState::AwaitingApproval => json!({
            "quorum": new.quorum,
            "approvers": new.approvers,
            "expires_at": new.expires_at,
        }),
        _ => json!({}),
    }
}

/// What a new run's two audit entries say: the `run.requested` details, then
/// the action and details of its first state.
pub(super) fn first_entries(new: &NewRun) -> (Value, (String, Value)) {
    let requested = json!({
        "script": new.script,
        "args": new.args,
        "place": new.place,
        "digest": new.manifest_digest,
    });
    let state_action = format!("run.{}", new.state.as_str());
    (requested, (state_action, first_state_details(new)))
}

impl Store {
    /// Records a request in the state policy chose (`Refused`, `AwaitingApproval` or
    /// `Queued`), with two audit entries: `run.requested`, then `run.<state>`.
    /// Any other state is refused as `InvalidTransition` from `requested`, with
    /// `RunId(0)` since no run was recorded. On SQLite, requests that arrive
    /// together are committed together (see `group`).
    #[instrument(skip_all, fields(script = %new.script, state = %new.state))]
    pub async fn create_run(&self, new: NewRun, now: i64) -> Result<Run, StoreError> {
        if !RunState::Requested.can_become(new.state) {
            return Err(StoreError::InvalidTransition {
                run: RunId(0),
                from: RunState::Requested,
                to: new.state,
            });
        }
        match &self.recorder {
            Some(recorder) if new.schedule_key.is_none() => match recorder.record(new, now).await {
                Ok(recorded) => recorded,
                Err(new) => self.create_run_now(new, now).await,
            },
            _ => self.create_run_now(new, now).await,
        }
    }

    /// `create_run` in a transaction of its own.
    pub(super) async fn create_run_now(&self, new: NewRun, now: i64) -> Result<Run, StoreError> {
        let (requested, (state_action, state_details)) = first_entries(&new);
        write_tx!(self, |c| {
            let run = c.insert_run(&new, now).await?;
            let entry = |action, details| NewEntry {
                at: now,
                actor: &new.requester,
                action,
                run: Some(run.id),
                details,
            };
            c.append_entries(&[
                entry("run.requested", &requested),
                entry(&state_action, &state_details),
            ])
            .await?;
            Ok::<_, StoreError>(run)
        })
    }

    /// The one way a run changes state: reads the current state, refuses an arrow the
    /// lifecycle lacks ([`StoreError::InvalidTransition`]), writes the new state (with
    /// `queued_at`/`started_at`/`finished_at` stamped by state) and `patch`, and
    /// appends the audit entry, all in one transaction.
    #[allow(clippy::too_many_arguments)] // the lead's agreed signature
    #[instrument(skip_all, fields(run_id = %id, to = %to))]
    pub async fn transition(
        &self,
        id: RunId,
        to: RunState,
        actor: &str,
        action: &str,
        details: Value,
        patch: RunPatch,
        now: i64,
    ) -> Result<Run, StoreError> {
        if let Some(writer) = self.background_writer() {
            let a = OwnedAudit {
                actor: actor.to_string(),
                action: action.to_string(),
                details,
                patch,
                now,
            };
            return writer
                .write(move |c| super::background::transition(c, id, to, a))
                .await;
        }
        let a = Audited {
            actor,
            action,
            details,
            patch,
            now,
        };
        write_tx!(self, |c| c.transition_in(id, to, a).await)
    }

    /// Withdraws a run that has not started (`cancelled`), or asks the worker running
    /// it to stop (`cancel_requested`, audited as `run.cancel_requested`; the worker
    /// then transitions it). A finished run refuses with `InvalidTransition`. Asking
    /// twice for a running run changes nothing the second time.
    #[instrument(skip_all, fields(run_id = %id))]
    pub async fn request_cancel(
        &self,
        id: RunId,
        actor: &str,
        now: i64,
    ) -> Result<Run, StoreError> {
        write_tx!(self, |c| {
            let run = c.fetch_run(id).await?;
            match run.state {
                RunState::Running if run.cancel_requested => Ok(run),
                RunState::Running => {
                    let run: Run = sqlx::query_as(
                        "UPDATE runs SET cancel_requested = TRUE WHERE id = $1 RETURNING *",
                    )
                    .bind(id.0)
                    .fetch_one(&mut *c)
                    .await?;
                    let details = json!({ "worker": run.worker });
                    c.append_audit(now, actor, "run.cancel_requested", Some(id), &details)
                        .await?;
                    Ok(run)
                }
                _ => {
                    let a = Audited {
                        actor,
                        action: "run.cancelled",
                        details: json!({ "from": run.state }),
                        patch: RunPatch::default(),
                        now,
                    };
                    c.transition_in(id, RunState::Cancelled, a).await
                }
            }
        })
    }

    /// Expires every `awaiting_approval` run whose `expires_at` has passed, as actor
    /// `system`, and returns them.
    #[instrument(skip_all)]
    pub async fn expire_due(&self, now: i64) -> Result<Vec<Run>, StoreError> {
        write_tx!(self, |c| {
            let due: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT id, expires_at FROM runs WHERE state = 'awaiting_approval' \
                 AND expires_at <= $1 ORDER BY id",
            )
            .bind(now)
            .fetch_all(&mut *c)
            .await?;
            let mut expired = Vec::with_capacity(due.len());
            for (id, expires_at) in due {
                let a = Audited {
                    actor: "system",
                    action: "run.expired",
                    details: json!({ "expires_at": expires_at }),
                    patch: RunPatch::default(),
                    now,
                };
                expired.push(c.transition_in(RunId(id), RunState::Expired, a).await?);
            }
            Ok::<_, StoreError>(expired)
        })
    }

    /// Marks `interrupted` (actor `system`) every running run whose worker stopped
    /// renewing its lease before `now`, and returns them.
    #[instrument(skip_all)]
    pub async fn lapse_leases(&self, now: i64) -> Result<Vec<Run>, StoreError> {
        write_tx!(self, |c| {
            let lapsed: Vec<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
                "SELECT id, worker, lease_until FROM runs WHERE state = 'running' \
                 AND lease_until < $1 ORDER BY id",
            )
            .bind(now)
            .fetch_all(&mut *c)
            .await?;
            let mut interrupted = Vec::with_capacity(lapsed.len());
            for (id, worker, lease_until) in lapsed {
                let a = Audited {
                    actor: "system",
                    action: "run.interrupted",
                    details: json!({ "worker": worker, "lease_until": lease_until }),
                    patch: RunPatch {
                        error: Some("its worker stopped renewing the lease".into()),
                        ..RunPatch::default()
                    },
                    now,
                };
                interrupted.push(c.transition_in(RunId(id), RunState::Interrupted, a).await?);
            }
            Ok::<_, StoreError>(interrupted)
        })
    }

    pub async fn get_run(&self, id: RunId) -> Result<Run, StoreError> {
        read_conn!(self, |c| c.fetch_run(id).await)
    }

    /// Runs matching `f`, newest first; page on with `before_id` = the last id seen.
    pub async fn list_runs(&self, f: &RunFilter) -> Result<Vec<Run>, StoreError> {
        let state = f.state.map(RunState::as_str);
        let before = f.before_id.map(|r| r.0);
        let limit = f.limit.clamp(1, 500);
        read_conn!(self, |c| {
            let runs = sqlx::query_as(
                "SELECT * FROM runs WHERE ($1 IS NULL OR script = $1) \
                 AND ($2 IS NULL OR requester_person = $2) AND ($3 IS NULL OR state = $3) \
                 AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
            )
            .bind(&f.script)
            .bind(&f.person)
            .bind(state)
            .bind(before)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
            Ok(runs)
        })
    }
}
