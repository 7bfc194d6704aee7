//! Retention's write: the payloads of finished runs past their retention
//! removed, one batch of runs per write, and one `retention.pruned` entry per
//! batch saying what went (`docs/retention.md`).
//!
//! The run row stays, with when each payload went and the removed log's
//! sha256 and size; the artifacts' names and digests stay; audit entries are
//! never touched, so the chain verifies as before.

use serde_json::{Value, json};

use super::ops::{Durability, Write};
use super::runs::fetch_for_update;
use super::sql::{Tx, Value as SqlValue, args};
use super::{Run, Store, StoreError};
use crate::types::RunId;

/// The actor of `retention.pruned` entries.
pub const ACTOR: &str = "retention";

/// A run's log as read before the write that removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenLog {
    /// The log's sha256 (hex); `None`: the run had no log.
    pub sha256: Option<String>,
    /// The log's size in bytes.
    pub bytes: u64,
    /// How many bytes of it were in the database (`log_chunks`); 0 for a log
    /// kept in a file by an earlier version. The write removes the log only if
    /// this still holds, so the digest recorded is the digest of what went.
    pub stored: u64,
}

/// What to remove from one finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prune {
    pub run: RunId,
    /// The log, with what was read of it.
    pub log: Option<SeenLog>,
    /// The bytes of its files.
    pub files: bool,
    /// Its output tail and result.
    pub output: bool,
}

impl Prune {
    fn is_empty(&self) -> bool {
        self.log.is_none() && !self.files && !self.output
    }
}

/// The cut of each retention, in unix ms: finished runs that ended before it
/// lose that payload. `None`: kept forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cuts {
    pub logs: Option<i64>,
    pub files: Option<i64>,
    pub output: Option<i64>,
}

/// Removes what `batch` names from each run that is final and still has it.
/// Answers what was removed (a run pruned meanwhile by another server is left
/// out), and audits it in one entry.
pub(super) async fn prune(
    tx: &mut Tx<'_>,
    batch: Vec<Prune>,
    now: i64,
) -> Result<Vec<Prune>, StoreError> {
    let mut done = Vec::new();
    for p in batch {
        let before = match fetch_for_update(tx, p.run).await {
            Ok(r) if r.state.is_final() => r,
            Ok(_) | Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let mut after = before.clone();
        let mut did = Prune {
            run: p.run,
            log: None,
            files: false,
            output: false,
        };
        if let Some(seen) = p.log.filter(|_| before.log_pruned_at.is_none())
            && super::reports::log_end(tx, p.run).await? == seen.stored
        {
            tx.execute("DELETE FROM log_chunks WHERE run_id = $1", args![p.run.0])
                .await?;
            after.log_pruned_at = Some(now);
            if seen.sha256.is_some() {
                after.log_sha256 = seen.sha256.clone();
                after.log_bytes = seen.bytes as i64;
            }
            did.log = Some(seen);
        }
        if p.files && before.files_pruned_at.is_none() {
            tx.execute(
                "DELETE FROM artifact_data WHERE run_id = $1",
                args![p.run.0],
            )
            .await?;
            // The files sent with the request go with the files it made; the
            // arguments keep their names, sizes and sha256.
            tx.execute("DELETE FROM run_inputs WHERE run_id = $1", args![p.run.0])
                .await?;
            after.files_pruned_at = Some(now);
            did.files = true;
        }
        if p.output && before.output_pruned_at.is_none() {
            after.output_tail = None;
            after.result = None;
            after.output_pruned_at = Some(now);
            did.output = true;
        }
        if did.is_empty() {
            continue;
        }
        if let Some((sql, args)) = after.update_from(&before)?
            && tx.execute(&sql, args).await? != 1
        {
            return Err(StoreError::Corrupt(format!(
                "run {} changed while retention pruned it",
                p.run
            )));
        }
        done.push(did);
    }
    if !done.is_empty() {
        let runs: Vec<Value> = done.iter().map(entry_of).collect();
        let details = json!({ "runs": runs });
        tx.audit(now, ACTOR, "retention.pruned", None, details);
    }
    Ok(done)
}

/// One run in a `retention.pruned` entry: what went, and the log's digest.
fn entry_of(p: &Prune) -> Value {
    let mut removed = Vec::new();
    if p.log.is_some() {
        removed.push("log");
    }
    if p.files {
        removed.push("files");
    }
    if p.output {
        removed.push("output");
    }
    let mut v = json!({ "run": p.run, "removed": removed });
    if let Some(SeenLog {
        sha256: Some(sha),
        bytes,
        ..
    }) = &p.log
    {
        v["log_sha256"] = json!(sha);
        v["log_bytes"] = json!(bytes);
    }
    v
}

impl Store {
    /// Removes the payloads `batch` names (see [`Prune`]) and audits them in
    /// one `retention.pruned` entry. Bookkeeping: relaxed. Answers what was
    /// removed.
    pub async fn prune(&self, batch: Vec<Prune>, now: i64) -> Result<Vec<Prune>, StoreError> {
        self.write(Write::Prune { batch, now }, Durability::Relaxed)
            .await
    }

    /// Up to `limit` finished runs after `after` (by id) that still hold a
    /// payload past its cut, oldest id first.
    pub async fn prune_candidates(
        &self,
        cuts: Cuts,
        after: RunId,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError> {
        let mut args = vec![SqlValue::from(after.0)];
        let mut wants = Vec::new();
        for (cut, pruned) in [
            (cuts.logs, "log_pruned_at"),
            (cuts.files, "files_pruned_at"),
            (cuts.output, "output_pruned_at"),
        ] {
            if let Some(cut) = cut {
                args.push(SqlValue::from(cut));
                wants.push(format!(
                    "(finished_at < ${} AND {pruned} IS NULL)",
                    args.len()
                ));
            }
        }
        let Some(latest) = [cuts.logs, cuts.files, cuts.output]
            .into_iter()
            .flatten()
            .max()
        else {
            return Ok(Vec::new());
        };
        args.push(SqlValue::from(latest));
        let sql = format!(
            "SELECT * FROM runs WHERE id > $1 AND finished_at < ${} AND ({}) \
             ORDER BY id LIMIT {limit}",
            args.len(),
            wants.join(" OR ")
        );
        let rows = self.fetch_all(&sql, args).await?;
        rows.iter().map(Run::from_row).collect()
    }
}
