//! Runners and what they send: enrolment and credentials (hashes only), the
//! leases a poll renews, a run's log in chunks at byte offsets, its files, and
//! its finish. Every write checks that the runner holds the run: a runner can
//! report only on runs it claimed.

use serde_json::json;

use super::model::Artifact;
use super::ops::{Durability, Write};
use super::runs::{Edit, Note, fetch_for_update, move_run};
use super::sql::{Row, Tx, args};
use super::{Run, Store, StoreError};
use crate::types::{RunId, RunState};

/// A runner as `execgov runners list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunnerRecord {
    pub name: String,
    pub tags: Vec<String>,
    /// A service's own local runner.
    pub local: bool,
    pub created_at: i64,
    pub enrolled_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_seen: Option<i64>,
    pub slots: i64,
    pub hostname: Option<String>,
    /// Runs it holds now.
    pub running: i64,
}

/// Who is calling, once its credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerIdentity {
    pub name: String,
    pub tags: Vec<String>,
    pub local: bool,
}

impl RunnerIdentity {
    fn from_row(r: &Row) -> Result<RunnerIdentity, StoreError> {
        Ok(RunnerIdentity {
            name: r.get("name")?,
            tags: r.get("tags")?,
            local: r.get("local")?,
        })
    }

    /// Whether this runner may take a run that needs `runs_on`: a run with no
    /// tags is the local runner's; otherwise the runner must have every tag.
    pub fn can_take(&self, runs_on: &[String]) -> bool {
        if runs_on.is_empty() {
            self.local
        } else {
            runs_on.iter().all(|t| self.tags.contains(t))
        }
    }
}

/// A new one-time enrolment token for runner `name`.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub name: String,
    pub tags: Vec<String>,
    pub token_hash: String,
    pub expires_at: i64,
    /// Who asked (`Actor::audit_name()`).
    pub actor: String,
    pub now: i64,
}

/// A runner's report of a run's end: the state it leads to and what the run
/// row and the audit entry say. Accepted only from the runner that holds the
/// run, once the whole log has arrived.
#[derive(Debug)]
pub struct RunnerFinish {
    pub run: RunId,
    pub runner: String,
    pub to: RunState,
    pub note: Note,
    pub edit: Edit,
    /// Bytes of log the runner says it sent.
    pub log_bytes: u64,
}

/// What became of a finish.
#[derive(Debug)]
pub enum Finished {
    /// The run is now final (or already was, with this finish: a repeat).
    Done(Box<Run>),
    /// The run had been written off (interrupted) before the report came: the
    /// report is kept in the audit log, the state stays.
    WrittenOff(Box<Run>),
}

pub(super) async fn issue_enrolment(tx: &mut Tx<'_>, e: Enrolment) -> Result<(), StoreError> {
    let existing = tx
        .fetch_optional(
            "SELECT revoked_at FROM runners WHERE name = $1",
            args![e.name.as_str()],
        )
        .await?;
    if let Some(row) = existing {
        let revoked: Option<i64> = row.get("revoked_at")?;
        if revoked.is_none() {
            return Err(StoreError::Conflict(format!(
                "a runner named `{}` exists; `execgov runners revoke {}` first, or pick another name",
                e.name, e.name
            )));
        }
        tx.execute(
            "DELETE FROM runners WHERE name = $1",
            args![e.name.as_str()],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO runners (name, tags, local, enrol_hash, enrol_expires_at, created_at) \
         VALUES ($1, $2, FALSE, $3, $4, $5)",
        args![
            e.name.as_str(),
            serde_json::to_string(&e.tags).expect("tags serialize"),
            e.token_hash.as_str(),
            e.expires_at,
            e.now
        ],
    )
    .await?;
    tx.audit(
        e.now,
        &e.actor,
        "runner.enrolment_issued",
        None,
        json!({ "runner": e.name, "tags": e.tags, "expires_at": e.expires_at }),
    );
    Ok(())
}

pub(super) async fn enrol(
    tx: &mut Tx<'_>,
    token_hash: &str,
    credential_hash: &str,
    hostname: &str,
    now: i64,
) -> Result<Option<RunnerIdentity>, StoreError> {
    let row = tx
        .fetch_optional(
            "SELECT name, tags, local FROM runners WHERE enrol_hash = $1 \
             AND enrol_expires_at > $2 AND revoked_at IS NULL",
            args![token_hash, now],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let runner = RunnerIdentity::from_row(&row)?;
    tx.execute(
        "UPDATE runners SET enrol_hash = NULL, enrol_expires_at = NULL, credential_hash = $2, \
         enrolled_at = $3, last_seen = $3, hostname = $4 WHERE name = $1",
        args![runner.name.as_str(), credential_hash, now, hostname],
    )
    .await?;
    let actor = format!("runner:{}", runner.name);
    let details = json!({ "runner": runner.name, "hostname": hostname, "tags": runner.tags });
    tx.audit(now, &actor, "runner.enrolled", None, details);
    Ok(Some(runner))
}

pub(super) async fn register_local(
    tx: &mut Tx<'_>,
    runner: &RunnerIdentity,
    credential_hash: &str,
    hostname: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM runners WHERE name = $1",
        args![runner.name.as_str()],
    )
    .await?;
    tx.execute(
        "INSERT INTO runners (name, tags, local, credential_hash, created_at, enrolled_at, \
         last_seen, hostname) VALUES ($1, $2, TRUE, $3, $4, $4, $4, $5)",
        args![
            runner.name.as_str(),
            serde_json::to_string(&runner.tags).expect("tags serialize"),
            credential_hash,
            now,
            hostname
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn revoke(
    tx: &mut Tx<'_>,
    name: &str,
    actor: &str,
    now: i64,
) -> Result<Option<Vec<Run>>, StoreError> {
    let n = tx
        .execute(
            "UPDATE runners SET revoked_at = $2, credential_hash = NULL, enrol_hash = NULL \
             WHERE name = $1 AND revoked_at IS NULL",
            args![name, now],
        )
        .await?;
    if n == 0 {
        return Ok(None);
    }
    tx.audit(
        now,
        actor,
        "runner.revoked",
        None,
        json!({ "runner": name }),
    );
    let rows = tx
        .fetch_all(
            "SELECT id FROM runs WHERE state = 'running' AND worker = $1 ORDER BY id",
            args![name],
        )
        .await?;
    let mut interrupted = Vec::with_capacity(rows.len());
    for row in &rows {
        let run = fetch_for_update(tx, row.get("id")?).await?;
        if run.state != RunState::Running {
            continue;
        }
        let why = interrupted_because(&run, &format!("its runner {name} was revoked"));
        let details = json!({ "worker": name, "reason": why });
        let note = Note::moved(actor, RunState::Interrupted, details, now);
        let edit = Edit::new(move |r| r.error = Some(why));
        interrupted.push(move_run(tx, run, RunState::Interrupted, note, edit).await?);
    }
    Ok(Some(interrupted))
}

/// "its runner db1 stopped renewing its lease; the script had started, so it
/// may have run partly" (or "had not started"): what an interrupted run's
/// thread is told.
pub(crate) fn interrupted_because(run: &Run, cause: &str) -> String {
    if run.script_started_at.is_some() {
        format!("{cause}; the script had started, so it may have run partly")
    } else {
        format!("{cause}; the script had not started")
    }
}

/// One poll: the runner is alive, its leases are renewed, and the runs it
/// says it holds that it no longer does are answered as lost.
pub(super) async fn poll(
    tx: &mut Tx<'_>,
    runner: &str,
    holding: &[(RunId, bool)],
    slots: i64,
    lease_until: i64,
    now: i64,
) -> Result<Vec<RunId>, StoreError> {
    tx.execute(
        "UPDATE runners SET last_seen = $2, slots = $3 WHERE name = $1",
        args![runner, now, slots],
    )
    .await?;
    let mut lost = Vec::new();
    for (id, started) in holding {
        let renewed = tx
            .execute(
                "UPDATE runs SET lease_until = $3, \
                 script_started_at = CASE WHEN $4 AND script_started_at IS NULL \
                     THEN CAST($5 AS BIGINT) ELSE script_started_at END \
                 WHERE id = $1 AND worker = $2 AND state = 'running'",
                args![id.0, runner, lease_until, *started, now],
            )
            .await?;
        if renewed == 0 {
            // Finished and not yet reported is still held; anything else is lost.
            let row = tx
                .fetch_optional("SELECT state, worker FROM runs WHERE id = $1", args![id.0])
                .await?;
            let held = match row {
                Some(r) => {
                    let state: RunState = r.get("state")?;
                    let worker: Option<String> = r.get("worker")?;
                    worker.as_deref() == Some(runner) && state != RunState::Interrupted
                }
                None => false,
            };
            if !held {
                lost.push(*id);
            }
        }
    }
    Ok(lost)
}

/// The log stored so far for `run`: where the next byte goes.
pub(super) async fn log_end(tx: &mut Tx<'_>, run: RunId) -> Result<u64, StoreError> {
    let last = tx
        .fetch_optional(
            "SELECT at_byte, length(data) AS n FROM log_chunks WHERE run_id = $1 \
             ORDER BY at_byte DESC LIMIT 1",
            args![run.0],
        )
        .await?;
    Ok(match last {
        Some(r) => (r.get::<i64>("at_byte")? + r.get::<i64>("n")?) as u64,
        None => 0,
    })
}

/// The run, if `runner` holds it (claimed it; running, or finished by it).
async fn held(tx: &mut Tx<'_>, run: RunId, runner: &str) -> Result<Run, StoreError> {
    let r = match fetch_for_update(tx, run).await {
        Ok(r) => r,
        Err(StoreError::NotFound(_)) => return Err(StoreError::NotHeld(run)),
        Err(e) => return Err(e),
    };
    if r.worker.as_deref() != Some(runner) {
        return Err(StoreError::NotHeld(run));
    }
    Ok(r)
}

pub(super) async fn append_log(
    tx: &mut Tx<'_>,
    run: RunId,
    runner: &str,
    at: u64,
    data: Vec<u8>,
    cap: u64,
) -> Result<u64, StoreError> {
    held(tx, run, runner).await?;
    let end = log_end(tx, run).await?;
    if at > end {
        return Err(StoreError::LogGap { expected: end });
    }
    let len = data.len() as u64;
    if at + len <= end {
        return Ok(end); // sent before: stored once
    }
    let fresh = &data[(end - at) as usize..];
    if end + fresh.len() as u64 > cap {
        return Err(StoreError::TooLarge(format!(
            "the log of run {run} would be {} bytes, over its cap of {cap}; \
             the runner caps the log itself, so this runner is misbehaving",
            end + fresh.len() as u64
        )));
    }
    tx.execute(
        "INSERT INTO log_chunks (run_id, at_byte, data) VALUES ($1, $2, $3)",
        args![run.0, end as i64, fresh],
    )
    .await?;
    if end == 0 {
        // Output means the script started, even before a poll says so.
        tx.execute(
            "UPDATE runs SET script_started_at = COALESCE(script_started_at, started_at) \
             WHERE id = $1 AND state = 'running'",
            args![run.0],
        )
        .await?;
    }
    Ok(end + fresh.len() as u64)
}

pub(super) async fn save_artifact(
    tx: &mut Tx<'_>,
    runner: &str,
    a: &Artifact,
    data: Vec<u8>,
) -> Result<(), StoreError> {
    held(tx, a.run_id, runner).await?;
    let exists = tx
        .fetch_optional(
            "SELECT sha256 FROM artifacts WHERE run_id = $1 AND name = $2",
            args![a.run_id.0, a.name.as_str()],
        )
        .await?;
    if let Some(row) = exists {
        let sha: String = row.get("sha256")?;
        return if sha == a.sha256 {
            Ok(()) // sent before
        } else {
            Err(StoreError::Conflict(format!(
                "run {} already has a file `{}` with other contents",
                a.run_id, a.name
            )))
        };
    }
    super::misc::add_artifact(tx, a).await?;
    tx.execute(
        "INSERT INTO artifact_data (run_id, name, data) VALUES ($1, $2, $3)",
        args![a.run_id.0, a.name.as_str(), data],
    )
    .await?;
    Ok(())
}

pub(super) async fn finish(tx: &mut Tx<'_>, f: RunnerFinish) -> Result<Finished, StoreError> {
    let run = held(tx, f.run, &f.runner).await?;
    match run.state {
        RunState::Running => {}
        s if s == f.to => return Ok(Finished::Done(Box::new(run))),
        RunState::Interrupted => {
            let details = json!({ "reported": f.to, "report": f.note.details });
            let actor = f.note.actor.clone();
            tx.audit(f.note.now, &actor, "run.late_report", Some(f.run), details);
            return Ok(Finished::WrittenOff(Box::new(run)));
        }
        from => {
            return Err(StoreError::InvalidTransition {
                run: f.run,
                from,
                to: f.to,
            });
        }
    }
    let end = log_end(tx, f.run).await?;
    if end < f.log_bytes {
        return Err(StoreError::LogGap { expected: end });
    }
    let run = move_run(tx, run, f.to, f.note, f.edit).await?;
    Ok(Finished::Done(Box::new(run)))
}

impl Store {
    /// A one-time enrolment token for a new runner (its hash), audited.
    pub async fn issue_enrolment(&self, e: Enrolment) -> Result<(), StoreError> {
        self.write(Write::IssueEnrolment(e), Durability::Synced)
            .await
    }

    /// Trades an unused, unexpired enrolment token (its hash) for a credential
    /// (its hash). `None`: no such token.
    pub async fn enrol_runner(
        &self,
        token_hash: &str,
        credential_hash: &str,
        hostname: &str,
        now: i64,
    ) -> Result<Option<RunnerIdentity>, StoreError> {
        let write = Write::Enrol {
            token_hash: token_hash.to_string(),
            credential_hash: credential_hash.to_string(),
            hostname: hostname.to_string(),
            now,
        };
        self.write(write, Durability::Synced).await
    }

    /// Records a service's own local runner with a fresh credential (its hash).
    pub async fn register_local_runner(
        &self,
        runner: &RunnerIdentity,
        credential_hash: &str,
        hostname: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let write = Write::RegisterLocalRunner {
            runner: runner.clone(),
            credential_hash: credential_hash.to_string(),
            hostname: hostname.to_string(),
            now,
        };
        self.write(write, Durability::Synced).await
    }

    /// Revokes runner `name` and interrupts its running runs. `None`: no
    /// such runner (or already revoked).
    pub async fn revoke_runner(
        &self,
        name: &str,
        actor: &str,
        now: i64,
    ) -> Result<Option<Vec<Run>>, StoreError> {
        let write = Write::RevokeRunner {
            name: name.to_string(),
            actor: actor.to_string(),
            now,
        };
        self.write(write, Durability::Synced).await
    }

    /// The runner behind a credential (its hash), unless revoked.
    pub async fn runner_by_credential(
        &self,
        credential_hash: &str,
    ) -> Result<Option<RunnerIdentity>, StoreError> {
        let row = self
            .fetch_optional(
                "SELECT name, tags, local FROM runners \
                 WHERE credential_hash = $1 AND revoked_at IS NULL",
                args![credential_hash],
            )
            .await?;
        row.as_ref().map(RunnerIdentity::from_row).transpose()
    }

    /// Every runner, by name, with the runs each holds now.
    pub async fn runners(&self) -> Result<Vec<RunnerRecord>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT r.*, (SELECT COUNT(*) FROM runs WHERE state = 'running' \
                 AND worker = r.name) AS running FROM runners r ORDER BY r.name",
                args![],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RunnerRecord {
                    name: r.get("name")?,
                    tags: r.get("tags")?,
                    local: r.get("local")?,
                    created_at: r.get("created_at")?,
                    enrolled_at: r.get("enrolled_at")?,
                    revoked_at: r.get("revoked_at")?,
                    last_seen: r.get("last_seen")?,
                    slots: r.get("slots")?,
                    hostname: r.get("hostname")?,
                    running: r.get("running")?,
                })
            })
            .collect()
    }

    /// A runner's poll: alive, its leases renewed; answers the held runs it lost.
    pub async fn runner_poll(
        &self,
        runner: &str,
        holding: Vec<(RunId, bool)>,
        slots: i64,
        lease_until: i64,
        now: i64,
    ) -> Result<Vec<RunId>, StoreError> {
        let write = Write::RunnerPoll {
            runner: runner.to_string(),
            holding,
            slots,
            lease_until,
            now,
        };
        self.write(write, Durability::Relaxed).await
    }

    /// Of `runs`, those someone asked to cancel.
    pub async fn cancel_requested(&self, runs: &[RunId]) -> Result<Vec<RunId>, StoreError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = runs.iter().map(|r| r.0.to_string()).collect();
        let rows = self
            .fetch_all(
                &format!(
                    "SELECT id FROM runs WHERE cancel_requested AND state = 'running' \
                     AND id IN ({})",
                    list.join(", ")
                ),
                args![],
            )
            .await?;
        rows.iter().map(|r| r.get("id")).collect()
    }

    /// Stores the next bytes of a run's log at byte `at` (see [`StoreError::LogGap`]);
    /// answers how many bytes are stored now. Bookkeeping: the run's finish
    /// is refused until they are all in.
    pub async fn append_log(
        &self,
        run: RunId,
        runner: &str,
        at: u64,
        data: Vec<u8>,
        cap: u64,
    ) -> Result<u64, StoreError> {
        let write = Write::AppendLog {
            run,
            runner: runner.to_string(),
            at,
            data,
            cap,
        };
        self.write(write, Durability::Relaxed).await
    }

    /// Stores a file of a run its runner sent (the digest already checked).
    pub async fn save_artifact(
        &self,
        runner: &str,
        artifact: Artifact,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        let write = Write::SaveArtifact {
            runner: runner.to_string(),
            artifact,
            data,
        };
        self.write(write, Durability::Relaxed).await
    }

    /// A runner's report of a run's end (see [`RunnerFinish`]).
    pub async fn runner_finish(&self, f: RunnerFinish) -> Result<Finished, StoreError> {
        self.write(Write::RunnerFinish(f), Durability::Synced).await
    }

    /// `run`'s log from byte `from` (at most `max` bytes), as stored.
    pub async fn log_bytes(&self, run: RunId, from: u64, max: u64) -> Result<Vec<u8>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT at_byte, data FROM log_chunks WHERE run_id = $1 \
                 AND at_byte + length(data) > $2 ORDER BY at_byte",
                args![run.0, from as i64],
            )
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let at: i64 = r.get("at_byte")?;
            let data: Vec<u8> = r.get("data")?;
            let skip = (from as i64 - at).max(0) as usize;
            out.extend_from_slice(&data[skip.min(data.len())..]);
            if out.len() as u64 >= max {
                out.truncate(max as usize);
                break;
            }
        }
        Ok(out)
    }

    /// How many bytes of `run`'s log are stored.
    pub async fn log_size(&self, run: RunId) -> Result<u64, StoreError> {
        let row = self
            .fetch_optional(
                "SELECT at_byte, length(data) AS n FROM log_chunks WHERE run_id = $1 \
                 ORDER BY at_byte DESC LIMIT 1",
                args![run.0],
            )
            .await?;
        Ok(match row {
            Some(r) => (r.get::<i64>("at_byte")? + r.get::<i64>("n")?) as u64,
            None => 0,
        })
    }

    /// The bytes of a run's file, if the server has them.
    pub async fn artifact_bytes(
        &self,
        run: RunId,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .fetch_optional(
                "SELECT data FROM artifact_data WHERE run_id = $1 AND name = $2",
                args![run.0, name],
            )
            .await?;
        row.map(|r| r.get("data")).transpose()
    }
}
