//! The store's public value types beside [`Run`](super::Run) (which
//! `columns.rs` declares), and how their rows decode.

use serde::Serialize;

use super::StoreError;
use super::sql::Row;
use crate::types::{PersonId, RunId};

/// The answer of [`Store::verify_chain`](super::Store::verify_chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChainCheck {
    Ok {
        entries: u64,
    },
    /// The first entry at which the chain no longer holds, and why.
    Broken {
        seq: i64,
        reason: String,
    },
}

/// One approver's decision on one run.
#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub approver: PersonId,
    /// `Actor::audit_name()` of the account that clicked or typed.
    pub actor: String,
    pub approve: bool,
    pub reason: Option<String>,
    /// The manifest digest the approver was shown; recorded with the decision.
    pub digest: String,
    /// The time step of the second-factor code this approval proved, consumed
    /// in the decision's transaction (`risk = "critical"`); `None` without step-up.
    pub step_up: Option<i64>,
    pub now: i64,
}

/// What a decision did to its run.
#[derive(Debug, Clone)]
pub enum DecisionOutcome {
    /// An approval, but the quorum is not reached yet.
    Recorded { run: super::Run, approvals: i64 },
    /// The quorum is reached: the run is now `queued`.
    Approved(super::Run),
    /// A deny: the run is now `rejected`.
    Rejected(super::Run),
}

/// A recorded decision, as listed by [`Store::approvals`](super::Store::approvals).
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub approver: PersonId,
    pub approve: bool,
    pub reason: Option<String>,
    pub at: i64,
    pub digest: String,
}

impl Approval {
    pub(super) fn from_row(r: &Row) -> Result<Approval, StoreError> {
        Ok(Approval {
            approver: r.get("approver")?,
            approve: r.get("approve")?,
            reason: r.get("reason")?,
            at: r.get("at")?,
            digest: r.get("digest")?,
        })
    }
}

/// A file a run produced, kept under the run's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub run_id: RunId,
    pub name: String,
    pub path: String,
    pub size: i64,
    pub sha256: String,
}

impl Artifact {
    pub(super) fn from_row(r: &Row) -> Result<Artifact, StoreError> {
        Ok(Artifact {
            run_id: r.get("run_id")?,
            name: r.get("name")?,
            path: r.get("path")?,
            size: r.get("size")?,
            sha256: r.get("sha256")?,
        })
    }
}

/// Which runs [`Store::list_runs`](super::Store::list_runs) returns: newest first,
/// `before_id` pages backwards (keyset), `limit` is clamped to 1..=500.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub script: Option<String>,
    /// A configured person: runs they requested.
    pub person: Option<String>,
    pub state: Option<crate::types::RunState>,
    pub before_id: Option<RunId>,
    pub limit: i64,
}
