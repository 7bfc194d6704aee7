//! The store keeps the run lifecycle and the audit chain honest on both backends:
//! no arrow the lifecycle lacks, one audit entry per change, one decision per
//! approver, no run handed to two workers, and any edit of history detected.
//!
//! Every test runs on SQLite and on PostgreSQL (`EXECGOV_TEST_POSTGRES_URL`; the
//! PostgreSQL variants fail when it is unset).
//!
//! - `lifecycle.rs`: arrows, audit entries, expiry;
//! - `approvals.rs`: one decision per approver, quorum, deny;
//! - `claims.rs`: concurrency limits, leases, cancels, claims across processes;
//! - `audit.rs`: `verify_chain` against edited, deleted, swapped, rehashed rows;
//! - `tables.rs`: artifacts, heartbeats, queries, and opening databases.

use std::collections::HashSet;

use execgov::store::testing::{allow_audit_tampering, fresh_database, fresh_store};
use execgov::store::{
    Artifact, ChainCheck, DecisionInput, DecisionOutcome, NewRun, RunFilter, RunPatch, Store,
    StoreError,
};
use execgov::types::{PersonId, RunId, RunState};
use serde_json::json;
use sha2::{Digest, Sha256};

/// A fixed clock: 2023-11-14T22:13:20Z in unix milliseconds.
const T: i64 = 1_700_000_000_000;

/// Each name becomes `<module>::<name>::sqlite` and `<module>::<name>::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name("sqlite").await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name("postgres").await
            }
        }
    )*};
}

mod approvals;
mod audit;
mod claims;
mod lifecycle;
mod tables;

fn new_run(script: &str, state: RunState) -> NewRun {
    NewRun {
        script: script.into(),
        args: json!({ "days": 30 }),
        requester: "person:alice".into(),
        requester_person: Some("alice".into()),
        place: json!({ "platform": "slack", "channel": "C1" }),
        manifest_digest: "digest-1".into(),
        max_concurrent: 1,
        timeout_ms: 60_000,
        risk: "low".into(),
        state,
        reason: None,
        quorum: 1,
        approvers: json!(["group:sre-leads"]),
        expires_at: None,
        schedule_key: None,
    }
}

fn awaiting(script: &str, quorum: i64, expires_at: Option<i64>) -> NewRun {
    NewRun {
        quorum,
        expires_at,
        risk: "high".into(),
        ..new_run(script, RunState::AwaitingApproval)
    }
}

fn decision(approver: &str, approve: bool, now: i64) -> DecisionInput {
    DecisionInput {
        approver: PersonId(approver.into()),
        actor: format!("person:{approver}"),
        approve,
        reason: (!approve).then(|| "not today".to_string()),
        digest: "digest-1".into(),
        now,
    }
}

/// The audit actions recorded for one run, in order.
async fn actions(store: &Store, run: RunId) -> Vec<String> {
    let entries = store
        .audit_entries(Some(run), 0, 1000)
        .await
        .expect("reading audit");
    entries.into_iter().map(|e| e.action).collect()
}

async fn start(store: &Store, id: RunId, now: i64) -> Result<execgov::store::Run, StoreError> {
    let patch = RunPatch::default();
    store
        .transition(
            id,
            RunState::Running,
            "system",
            "run.started",
            json!({}),
            patch,
            now,
        )
        .await
}

async fn finish(store: &Store, id: RunId, now: i64) {
    let patch = RunPatch {
        exit_code: Some(0),
        ..RunPatch::default()
    };
    let details = json!({ "exit_code": 0 });
    store
        .transition(
            id,
            RunState::Succeeded,
            "system",
            "run.succeeded",
            details,
            patch,
            now,
        )
        .await
        .expect("a running run can succeed");
}
