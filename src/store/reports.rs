//! What a runner sends about the runs it holds: the leases a poll renews, a
//! run's log in chunks at byte offsets, its files, and its finish. Every
//! write checks that the runner holds the run: a runner can report only on
//! runs it claimed.

use serde_json::json;

use super::model::Artifact;
use super::ops::{Durability, Write};
use super::runs::{Edit, Note, fetch_for_update, move_run};
use super::sql::{Row, Tx, args};
use super::{Run, Store, StoreError};
use crate::types::{RunId, RunState};

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

/// A run's last log chunk: where it starts and how long it is.
const LAST_CHUNK: &str = "SELECT at_byte, length(data) AS n FROM log_chunks WHERE run_id = $1 \
                          ORDER BY at_byte DESC LIMIT 1";

/// The log's length from its last chunk (none: nothing stored).
fn end_of(last: Option<Row>) -> Result<u64, StoreError> {
    Ok(match last {
        Some(r) => (r.get::<i64>("at_byte")? + r.get::<i64>("n")?) as u64,
        None => 0,
    })
}

/// The log stored so far for `run`: where the next byte goes.
pub(super) async fn log_end(tx: &mut Tx<'_>, run: RunId) -> Result<u64, StoreError> {
    end_of(tx.fetch_optional(LAST_CHUNK, args![run.0]).await?)
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
        end_of(self.fetch_optional(LAST_CHUNK, args![run.0]).await?)
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
