//! The store's public row types, and how rows of either backend decode into them.

use serde::Serialize;
use serde_json::Value;

use crate::types::{PersonId, RunId, RunState};

/// What the engine knows when it records a request. The store assigns the id and
/// the timestamps.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub script: String,
    pub args: Value,
    /// `Actor::audit_name()` of whoever asked.
    pub requester: String,
    /// The configured person behind the requester, if any (for "my runs" filters).
    pub requester_person: Option<String>,
    /// Where the request came from, so replies go back there.
    pub place: Value,
    /// Digest of the manifest as validated, so an approval is tied to what was shown.
    pub manifest_digest: String,
    pub max_concurrent: i64,
    pub timeout_ms: i64,
    pub risk: String,
    /// Only `Refused`, `AwaitingApproval` or `Queued`: the outcome of policy.
    pub state: RunState,
    /// Why policy refused, for `Refused`.
    pub reason: Option<String>,
    /// Distinct approvals needed before the run is queued.
    pub quorum: i64,
    /// Who may approve, for display only; policy decides, not the store.
    pub approvers: Value,
    /// When an unanswered approval request expires (unix ms).
    pub expires_at: Option<i64>,
    /// Unique when set: a scheduler records each firing once.
    pub schedule_key: Option<String>,
}

/// One run as stored. Timestamps are unix milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: RunId,
    pub script: String,
    pub args: Value,
    pub requester: String,
    pub requester_person: Option<String>,
    pub place: Value,
    pub state: RunState,
    pub reason: Option<String>,
    pub manifest_digest: String,
    pub max_concurrent: i64,
    pub timeout_ms: i64,
    pub risk: String,
    pub quorum: i64,
    pub approvers: Value,
    pub expires_at: Option<i64>,
    pub schedule_key: Option<String>,
    pub created_at: i64,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub log_path: Option<String>,
    pub log_bytes: i64,
    pub log_dropped: i64,
    pub output_tail: Option<String>,
    pub result: Option<Value>,
    pub progress_pct: Option<i64>,
    pub progress_text: Option<String>,
    /// The worker holding the run while it is `running`.
    pub worker: Option<String>,
    /// The worker must renew before this (unix ms) or the run becomes `interrupted`.
    pub lease_until: Option<i64>,
    /// Someone asked to cancel a running run; the worker stops it and transitions.
    pub cancel_requested: bool,
}

/// Columns a transition may set alongside the state. `None` leaves a column as is.
#[derive(Debug, Clone, Default)]
pub struct RunPatch {
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub log_path: Option<String>,
    pub log_bytes: Option<i64>,
    pub log_dropped: Option<i64>,
    pub output_tail: Option<String>,
    pub result: Option<Value>,
    pub reason: Option<String>,
}

/// One entry of the audit chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub run_id: Option<RunId>,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

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
    pub now: i64,
}

/// What a decision did to its run.
#[derive(Debug, Clone)]
pub enum DecisionOutcome {
    /// An approval, but the quorum is not reached yet.
    Recorded { run: Run, approvals: i64 },
    /// The quorum is reached: the run is now `queued`.
    Approved(Run),
    /// A deny: the run is now `rejected`.
    Rejected(Run),
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

/// A file a run produced, kept under the run's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub run_id: RunId,
    pub name: String,
    pub path: String,
    pub size: i64,
    pub sha256: String,
}

/// Which runs [`Store::list_runs`](super::Store::list_runs) returns: newest first,
/// `before_id` pages backwards (keyset), `limit` is clamped to 1..=500.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub script: Option<String>,
    /// A configured person: runs they requested.
    pub person: Option<String>,
    pub state: Option<RunState>,
    pub before_id: Option<RunId>,
    pub limit: i64,
}

pub(crate) fn parse_json(what: &str, text: &str) -> Result<Value, sqlx::Error> {
    serde_json::from_str(text)
        .map_err(|e| sqlx::Error::Decode(format!("{what} is not JSON: {e}").into()))
}

pub(crate) fn parse_state(text: &str) -> Result<RunState, sqlx::Error> {
    RunState::parse(text)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown run state `{text}`").into()))
}

/// A `Run` from row `$r`, each column read with `$r.$get("column")?`, JSON
/// columns parsed with `$json` and the state with `$state`: one field list for
/// sqlx's rows of both backends and for rusqlite's (the writer threads).
macro_rules! run_from_row {
    ($r:ident . $get:ident, $json:path, $state:path) => {{
        let text = |column: &str| -> Result<String, _> { $r.$get(column) };
        let result: Option<String> = $r.$get("result")?;
        Run {
            id: RunId($r.$get("id")?),
            script: $r.$get("script")?,
            args: $json("args", &text("args")?)?,
            requester: $r.$get("requester")?,
            requester_person: $r.$get("requester_person")?,
            place: $json("place", &text("place")?)?,
            state: $state(&text("state")?)?,
            reason: $r.$get("reason")?,
            manifest_digest: $r.$get("manifest_digest")?,
            max_concurrent: $r.$get("max_concurrent")?,
            timeout_ms: $r.$get("timeout_ms")?,
            risk: $r.$get("risk")?,
            quorum: $r.$get("quorum")?,
            approvers: $json("approvers", &text("approvers")?)?,
            expires_at: $r.$get("expires_at")?,
            schedule_key: $r.$get("schedule_key")?,
            created_at: $r.$get("created_at")?,
            queued_at: $r.$get("queued_at")?,
            started_at: $r.$get("started_at")?,
            finished_at: $r.$get("finished_at")?,
            exit_code: $r.$get("exit_code")?,
            error: $r.$get("error")?,
            log_path: $r.$get("log_path")?,
            log_bytes: $r.$get("log_bytes")?,
            log_dropped: $r.$get("log_dropped")?,
            output_tail: $r.$get("output_tail")?,
            result: result.map(|t| $json("result", &t)).transpose()?,
            progress_pct: $r.$get("progress_pct")?,
            progress_text: $r.$get("progress_text")?,
            worker: $r.$get("worker")?,
            lease_until: $r.$get("lease_until")?,
            cancel_requested: $r.$get("cancel_requested")?,
        }
    }};
}

impl Run {
    /// A `runs` row read through rusqlite, on the store's writer threads.
    pub(super) fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
        let json = |what: &str, text: &str| {
            parse_json(what, text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
            })
        };
        let state = |text: &str| {
            parse_state(text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
            })
        };
        Ok(run_from_row!(r.get, json, state))
    }
}

/// `FromRow` for both backends' rows, written once.
macro_rules! impl_from_row {
    ($row:ty) => {
        impl sqlx::FromRow<'_, $row> for Run {
            fn from_row(r: &$row) -> Result<Self, sqlx::Error> {
                use sqlx::Row;
                Ok(run_from_row!(r.try_get, parse_json, parse_state))
            }
        }

        impl sqlx::FromRow<'_, $row> for AuditEntry {
            fn from_row(r: &$row) -> Result<Self, sqlx::Error> {
                use sqlx::Row;
                let run_id: Option<i64> = r.try_get("run_id")?;
                Ok(AuditEntry {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    run_id: run_id.map(RunId),
                    details: parse_json("details", r.try_get("details")?)?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            }
        }

        impl sqlx::FromRow<'_, $row> for Approval {
            fn from_row(r: &$row) -> Result<Self, sqlx::Error> {
                use sqlx::Row;
                Ok(Approval {
                    approver: PersonId(r.try_get("approver")?),
                    approve: r.try_get("approve")?,
                    reason: r.try_get("reason")?,
                    at: r.try_get("at")?,
                    digest: r.try_get("digest")?,
                })
            }
        }

        impl sqlx::FromRow<'_, $row> for Artifact {
            fn from_row(r: &$row) -> Result<Self, sqlx::Error> {
                use sqlx::Row;
                Ok(Artifact {
                    run_id: RunId(r.try_get("run_id")?),
                    name: r.try_get("name")?,
                    path: r.try_get("path")?,
                    size: r.try_get("size")?,
                    sha256: r.try_get("sha256")?,
                })
            }
        }
    };
}

impl_from_row!(sqlx::sqlite::SqliteRow);
impl_from_row!(sqlx::postgres::PgRow);
