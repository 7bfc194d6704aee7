//! Runners: enrolment and credentials (hashes only), revocation, the list;
//! what a runner sends about its runs is in `reports.rs`.

use serde_json::json;

use super::ops::{Durability, Write};
use super::runs::{Edit, Note, fetch_for_update, move_run};
use super::sql::{Row, Tx, args};
use super::{Run, Store, StoreError};
use crate::types::RunState;

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
}
