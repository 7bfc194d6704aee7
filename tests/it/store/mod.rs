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
//! - `keyed.rs`: the keyed chain, forged approvals, checkpoints;
//! - `tables.rs`: artifacts, heartbeats, queries, and opening databases.

use std::collections::HashSet;

use execgov::store::testing::{allow_audit_tampering, fresh_database, fresh_store};
use execgov::store::{
    Artifact, ChainCheck, DecisionInput, DecisionOutcome, Durability, Edit, NewRun, Note, Run,
    RunFilter, Store, StoreError, Transition,
};
use execgov::types::{Approvers, ArgValue, PersonId, Place, Platform, Risk, RunId, RunState};
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
mod keyed;
mod lifecycle;
mod tables;

fn new_run(script: &str, state: RunState) -> NewRun {
    NewRun {
        script: script.into(),
        args: [("days".to_string(), ArgValue::Int(30))].into(),
        requester: "person:alice".into(),
        requester_person: Some(PersonId("alice".into())),
        place: Place::new(Platform::Slack, "C1"),
        manifest_digest: "digest-1".into(),
        max_concurrent: 1,
        timeout_ms: 60_000,
        risk: Risk::Low,
        quorum: 1,
        approvers: Approvers {
            principals: vec!["group:sre-leads".into()],
            ..Approvers::default()
        },
        expires_at: None,
        schedule_key: None,
        created_at: T,
        runs_on: Vec::new(),
        rule: None,
        break_glass: None,
        preview_of: None,
        state,
        reason: None,
        inputs: Vec::new(),
    }
}

fn awaiting(script: &str, quorum: i64, expires_at: Option<i64>) -> NewRun {
    NewRun {
        quorum,
        expires_at,
        risk: Risk::High,
        ..new_run(script, RunState::AwaitingApproval)
    }
}

/// The store's calls as these tests make them: at a given time, synced.
trait At {
    async fn create_at(&self, new: NewRun, now: i64) -> Result<Run, StoreError>;
    async fn move_at(
        &self,
        id: RunId,
        to: RunState,
        actor: &str,
        edit: Edit,
        now: i64,
    ) -> Result<Run, StoreError>;
}

impl At for Store {
    async fn create_at(&self, new: NewRun, now: i64) -> Result<Run, StoreError> {
        let new = NewRun {
            created_at: now,
            ..new
        };
        self.create_run(new, Durability::Synced).await
    }

    async fn move_at(
        &self,
        id: RunId,
        to: RunState,
        actor: &str,
        edit: Edit,
        now: i64,
    ) -> Result<Run, StoreError> {
        let note = Note::moved(actor, to, json!({}), now);
        self.transition(Transition { id, to, note, edit }, Durability::Synced)
            .await
    }
}

fn decision(approver: &str, approve: bool, now: i64) -> DecisionInput {
    DecisionInput {
        approver: PersonId(approver.into()),
        actor: format!("person:{approver}"),
        approve,
        reason: (!approve).then(|| "not today".to_string()),
        digest: "digest-1".into(),
        step_up: None,
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

async fn start(store: &Store, id: RunId, now: i64) -> Result<Run, StoreError> {
    let note = Note {
        actor: "system".into(),
        action: "run.started".into(),
        details: json!({}),
        now,
    };
    let to = RunState::Running;
    let edit = Edit::none();
    store
        .transition(Transition { id, to, note, edit }, Durability::Relaxed)
        .await
}

async fn finish(store: &Store, id: RunId, now: i64) {
    store
        .move_at(
            id,
            RunState::Succeeded,
            "system",
            Edit::new(|r| r.exit_code = Some(0)),
            now,
        )
        .await
        .expect("a running run can succeed");
}
