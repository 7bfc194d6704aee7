//! Runs: recording a request, the one transition every state change goes
//! through, and the sweeps built on it (cancellation, expiry, lapsed leases).

use serde_json::{Value, json};
use tracing::instrument;

use super::ops::{Durability, Write};
use super::sql::{Backend, Tx, args};
use super::{INSERT_RUN, NewRun, Run, RunFilter, Store, StoreError};
use crate::types::{RunId, RunState};

/// Who made a change and what its audit entry says.
#[derive(Debug, Clone)]
pub struct Note {
    /// `Actor::audit_name()`, `system`, `worker:<id>`.
    pub actor: String,
    /// `run.<state>` for a transition.
    pub action: String,
    pub details: Value,
    pub now: i64,
}

impl Note {
    /// The entry `actor` writes for moving a run to `to` (`run.<to>`).
    pub fn moved(actor: &str, to: RunState, details: Value, now: i64) -> Note {
        Note {
            actor: actor.to_string(),
            action: format!("run.{}", to.as_str()),
            details,
            now,
        }
    }
}

/// What a transition changes besides the state and its timestamp: a function
/// of the run as it will be stored. Only `changing` columns may change (see
/// `columns.rs`); the store writes the columns whose values differ.
pub struct Edit(Option<EditFn>);

type EditFn = Box<dyn FnOnce(&mut Run) + Send>;

impl Edit {
    pub fn new(f: impl FnOnce(&mut Run) + Send + 'static) -> Edit {
        Edit(Some(Box::new(f)))
    }

    /// Nothing besides the state.
    pub fn none() -> Edit {
        Edit(None)
    }

    fn apply(self, run: &mut Run) {
        if let Some(f) = self.0 {
            f(run);
        }
    }
}

impl std::fmt::Debug for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Edit(..)"
        } else {
            "Edit(none)"
        })
    }
}

/// Move run `id` to `to`, with `edit`, audited by `note`.
#[derive(Debug)]
pub struct Transition {
    pub id: RunId,
    pub to: RunState,
    pub note: Note,
    pub edit: Edit,
}

/// Inserts `new` and queues its two entries.
pub(super) async fn create(tx: &mut Tx<'_>, mut new: NewRun) -> Result<Run, StoreError> {
    if !RunState::Requested.can_become(new.state) {
        return Err(StoreError::InvalidTransition {
            run: RunId(0),
            from: RunState::Requested,
            to: new.state,
        });
    }
    let inputs = std::mem::take(&mut new.inputs);
    let mut run = Run::recorded(new, RunId(0));
    let row = tx.fetch_one(&INSERT_RUN, run.values()).await?;
    run.id = row.first()?;
    for f in inputs {
        tx.execute(
            "INSERT INTO run_inputs (run_id, param, name, sha256, data) VALUES ($1, $2, $3, $4, $5)",
            args![run.id.0, f.param, f.name, f.sha256, f.data],
        )
        .await?;
    }
    let mut requested = json!({
        "script": run.script,
        "args": run.args,
        "place": run.place,
        "digest": run.manifest_digest,
    });
    if let Some(rule) = &run.rule {
        requested["rule"] = json!(rule);
    }
    if let Some(of) = run.preview_of {
        requested["preview_of"] = json!(of);
    }
    let first = match run.state {
        RunState::Refused => json!({ "reason": run.reason }),
        RunState::AwaitingApproval => json!({
            "quorum": run.quorum,
            "approvers": run.approvers,
            "expires_at": run.expires_at,
        }),
        _ => json!({}),
    };
    let (at, actor) = (run.created_at, run.requester.clone());
    tx.audit(at, &actor, "run.requested", Some(run.id), requested);
    if let Some(reason) = &run.break_glass {
        let bypassed = json!({
            "reason": reason,
            "quorum": run.quorum,
            "approvers": run.approvers,
            "rule": run.rule,
        });
        tx.audit(at, &actor, "policy.bypassed", Some(run.id), bypassed);
    }
    let action = format!("run.{}", run.state.as_str());
    tx.audit(at, &actor, &action, Some(run.id), first);
    Ok(run)
}

/// The run, locked against other writers until the transaction ends
/// (PostgreSQL; SQLite has one writer).
pub(super) async fn fetch_for_update(tx: &mut Tx<'_>, id: RunId) -> Result<Run, StoreError> {
    let sql = match tx.backend() {
        Backend::Sqlite => "SELECT * FROM runs WHERE id = $1",
        Backend::Postgres => "SELECT * FROM runs WHERE id = $1 FOR UPDATE",
    };
    let row = tx.fetch_optional(sql, args![id.0]).await?;
    Run::from_row(&row.ok_or(StoreError::NotFound(id))?)
}

pub(super) async fn transition(tx: &mut Tx<'_>, t: Transition) -> Result<Run, StoreError> {
    let run = fetch_for_update(tx, t.id).await?;
    move_run(tx, run, t.to, t.note, t.edit).await
}

/// The one place a run changes state: refuses an arrow the lifecycle lacks,
/// stamps the state's timestamp, applies `edit`, writes what changed (guarded
/// by the state it was read in) and queues the audit entry.
pub(super) async fn move_run(
    tx: &mut Tx<'_>,
    before: Run,
    to: RunState,
    note: Note,
    edit: Edit,
) -> Result<Run, StoreError> {
    if !before.state.can_become(to) {
        return Err(StoreError::InvalidTransition {
            run: before.id,
            from: before.state,
            to,
        });
    }
    let mut after = before.clone();
    after.state = to;
    after.stamp(note.now);
    edit.apply(&mut after);
    after.state = to;
    if let Some((sql, args)) = after.update_from(&before)?
        && tx.execute(&sql, args).await? != 1
    {
        return Err(StoreError::Corrupt(format!(
            "run {} changed state while it was being moved",
            before.id
        )));
    }
    tx.audit(
        note.now,
        &note.actor,
        &note.action,
        Some(after.id),
        note.details,
    );
    Ok(after)
}

pub(super) async fn request_cancel(
    tx: &mut Tx<'_>,
    id: RunId,
    actor: &str,
    now: i64,
) -> Result<Run, StoreError> {
    let run = fetch_for_update(tx, id).await?;
    match run.state {
        RunState::Running if run.cancel_requested => Ok(run),
        RunState::Running => {
            tx.execute(
                "UPDATE runs SET cancel_requested = TRUE WHERE id = $1",
                args![id.0],
            )
            .await?;
            tx.audit(
                now,
                actor,
                "run.cancel_requested",
                Some(id),
                json!({ "worker": run.worker }),
            );
            Ok(Run {
                cancel_requested: true,
                ..run
            })
        }
        from => {
            let note = Note::moved(actor, RunState::Cancelled, json!({ "from": from }), now);
            move_run(tx, run, RunState::Cancelled, note, Edit::none()).await
        }
    }
}

/// Runs matching `sql` (their ids, oldest first), each locked or skipped
/// (PostgreSQL: another instance is sweeping it) and then moved by `sweep`.
async fn sweep(
    tx: &mut Tx<'_>,
    sql: &str,
    now: i64,
    mut step: impl FnMut(&Run) -> Option<(RunState, Note, Edit)>,
) -> Result<Vec<Run>, StoreError> {
    let sql = match tx.backend() {
        Backend::Sqlite => sql.to_string(),
        Backend::Postgres => format!("{sql} FOR UPDATE SKIP LOCKED"),
    };
    let rows = tx.fetch_all(&sql, args![now]).await?;
    let mut moved = Vec::with_capacity(rows.len());
    for row in &rows {
        let run = Run::from_row(row)?;
        if let Some((to, note, edit)) = step(&run) {
            moved.push(move_run(tx, run, to, note, edit).await?);
        }
    }
    Ok(moved)
}

pub(super) async fn expire_due(tx: &mut Tx<'_>, now: i64) -> Result<Vec<Run>, StoreError> {
    let due = "SELECT * FROM runs WHERE state = 'awaiting_approval' AND expires_at <= $1 \
               ORDER BY id";
    sweep(tx, due, now, |run| {
        let note = Note::moved(
            "system",
            RunState::Expired,
            json!({ "expires_at": run.expires_at }),
            now,
        );
        Some((RunState::Expired, note, Edit::none()))
    })
    .await
}

pub(super) async fn lapse_leases(tx: &mut Tx<'_>, now: i64) -> Result<Vec<Run>, StoreError> {
    let lapsed = "SELECT * FROM runs WHERE state = 'running' AND lease_until < $1 ORDER BY id";
    sweep(tx, lapsed, now, |run| {
        let worker = run.worker.as_deref().unwrap_or("?");
        let cause = format!("its runner {worker} stopped renewing its lease");
        let why = super::runners::interrupted_because(run, &cause);
        let details = json!({
            "worker": run.worker,
            "lease_until": run.lease_until,
            "script_started": run.script_started_at.is_some(),
        });
        let note = Note::moved("system", RunState::Interrupted, details, now);
        let edit = Edit::new(move |r| r.error = Some(why));
        Some((RunState::Interrupted, note, edit))
    })
    .await
}

impl Store {
    /// The files sent with run `id` (its file parameters), in parameter order,
    /// without their bytes.
    pub async fn run_input_list(
        &self,
        id: RunId,
    ) -> Result<Vec<crate::types::FileArg>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT name, sha256, CAST(length(data) AS BIGINT) AS size FROM run_inputs \
                 WHERE run_id = $1 ORDER BY param",
                args![id.0],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::types::FileArg {
                    name: r.get("name")?,
                    sha256: r.get("sha256")?,
                    size: r.get::<i64>("size")? as u64,
                })
            })
            .collect()
    }

    /// The bytes of the `n`-th file (from 0, in [`Store::run_input_list`]'s order) of run `id`.
    pub async fn run_input_data(&self, id: RunId, n: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.fetch_optional(
            "SELECT data FROM run_inputs WHERE run_id = $1 ORDER BY param LIMIT 1 OFFSET $2",
            args![id.0, n],
        )
        .await?
        .map(|r| r.first())
        .transpose()
    }

    /// Records a request in the state policy chose (`Refused`, `AwaitingApproval` or
    /// `Queued`), with two audit entries: `run.requested`, then `run.<state>`.
    /// Any other state is refused as `InvalidTransition` from `requested`, with
    /// `RunId(0)` since no run was recorded.
    #[instrument(skip_all, fields(script = %new.script, state = %new.state))]
    pub async fn create_run(&self, new: NewRun, d: Durability) -> Result<Run, StoreError> {
        self.write(Write::CreateRun(Box::new(new)), d).await
    }

    /// The one way a run changes state: refuses an arrow the lifecycle lacks
    /// ([`StoreError::InvalidTransition`]), writes the new state (its timestamp
    /// stamped) and the edit, and appends the audit entry, in one transaction.
    #[instrument(skip_all, fields(run_id = %t.id, to = %t.to))]
    pub async fn transition(&self, t: Transition, d: Durability) -> Result<Run, StoreError> {
        self.write(Write::Transition(t), d).await
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
        d: Durability,
    ) -> Result<Run, StoreError> {
        let actor = actor.to_string();
        self.write(Write::RequestCancel { id, actor, now }, d).await
    }

    /// Expires every `awaiting_approval` run whose `expires_at` has passed, as actor
    /// `system`, and returns them.
    pub async fn expire_due(&self, now: i64) -> Result<Vec<Run>, StoreError> {
        self.write(Write::ExpireDue { now }, Durability::Relaxed)
            .await
    }

    /// Marks `interrupted` (actor `system`) every running run whose worker stopped
    /// renewing its lease before `now`, and returns them.
    pub async fn lapse_leases(&self, now: i64) -> Result<Vec<Run>, StoreError> {
        self.write(Write::LapseLeases { now }, Durability::Relaxed)
            .await
    }

    pub async fn get_run(&self, id: RunId) -> Result<Run, StoreError> {
        let row = self
            .fetch_optional("SELECT * FROM runs WHERE id = $1", args![id.0])
            .await?;
        Run::from_row(&row.ok_or(StoreError::NotFound(id))?)
    }

    /// The preview run of `id` (`[approval] preview`), if one was recorded.
    pub async fn preview_for(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        let row = self
            .fetch_optional(
                "SELECT * FROM runs WHERE preview_of = $1 ORDER BY id LIMIT 1",
                args![id.0],
            )
            .await?;
        row.as_ref().map(Run::from_row).transpose()
    }

    /// Runs matching `f`, newest first; page on with `before_id` = the last id seen.
    pub async fn list_runs(&self, f: &RunFilter) -> Result<Vec<Run>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT * FROM runs WHERE ($1 IS NULL OR script = $1) \
                 AND ($2 IS NULL OR requester_person = $2) AND ($3 IS NULL OR state = $3) \
                 AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
                args![
                    f.script.clone(),
                    f.person.clone(),
                    f.state.map(|s| s.as_str()),
                    f.before_id.map(|r| r.0),
                    f.limit.clamp(1, 500),
                ],
            )
            .await?;
        rows.iter().map(Run::from_row).collect()
    }
}
