//! The store keeps the run lifecycle and the audit chain honest on both backends:
//! no arrow the lifecycle lacks, one audit entry per change, one decision per
//! approver, no run handed to two workers, and any edit of history detected.
//!
//! Every test runs on SQLite and on PostgreSQL (`EXECGOV_TEST_POSTGRES_URL`; the
//! PostgreSQL variants fail when it is unset).

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

/// Each name becomes `store::<name>::sqlite` and `store::<name>::postgres`.
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

on_both_backends!(
    lifecycle_refuses_missing_arrows_and_audits_each_change,
    decisions_need_distinct_approvers_and_a_deny_rejects,
    expiry_closes_unanswered_requests,
    claims_honour_max_concurrent_and_oldest_first,
    leases_lapse_and_cancels_follow_the_state,
    separate_processes_never_claim_a_run_twice,
    verify_chain_names_the_edited_row,
    verify_chain_names_the_deleted_row,
    verify_chain_catches_swapped_rows,
    verify_chain_catches_a_rehashed_edit,
    side_tables_and_queries_work,
);

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

async fn lifecycle_refuses_missing_arrows_and_audits_each_change(backend: &str) {
    let (store, _db) = fresh_store(backend).await;

    let run = store
        .create_run(new_run("backup", RunState::Queued), T)
        .await
        .unwrap();
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(
        run.queued_at,
        Some(T),
        "queued_at is stamped on entering queued"
    );
    assert_eq!(
        actions(&store, run.id).await,
        ["run.requested", "run.queued"]
    );

    let running = start(&store, run.id, T + 1)
        .await
        .expect("queued -> running");
    assert_eq!(running.started_at, Some(T + 1));
    assert_eq!(
        actions(&store, run.id).await.len(),
        3,
        "one entry for the start"
    );

    let second = start(&store, run.id, T + 2).await;
    assert!(
        matches!(
            second,
            Err(StoreError::InvalidTransition {
                from: RunState::Running,
                to: RunState::Running,
                ..
            })
        ),
        "no second start: {second:?}"
    );
    assert_eq!(
        actions(&store, run.id).await.len(),
        3,
        "a refused transition writes nothing"
    );

    let patch = RunPatch {
        exit_code: Some(0),
        output_tail: Some("done".into()),
        result: Some(json!({"rows": 3})),
        ..RunPatch::default()
    };
    let done = store
        .transition(
            run.id,
            RunState::Succeeded,
            "system",
            "run.succeeded",
            json!({}),
            patch,
            T + 3,
        )
        .await
        .unwrap();
    assert_eq!((done.exit_code, done.finished_at), (Some(0), Some(T + 3)));
    assert_eq!(done.result, Some(json!({"rows": 3})));
    assert_eq!(done.output_tail.as_deref(), Some("done"));
    assert_eq!(
        actions(&store, run.id).await,
        [
            "run.requested",
            "run.queued",
            "run.started",
            "run.succeeded"
        ]
    );

    let risky = store
        .create_run(awaiting("purge", 1, None), T)
        .await
        .unwrap();
    let rejected = store
        .transition(
            risky.id,
            RunState::Rejected,
            "person:bob",
            "run.rejected",
            json!({}),
            RunPatch::default(),
            T + 1,
        )
        .await
        .unwrap();
    assert!(
        rejected.finished_at.is_some(),
        "a final state stamps finished_at"
    );
    let requeue = store
        .transition(
            risky.id,
            RunState::Queued,
            "person:bob",
            "run.queued",
            json!({}),
            RunPatch::default(),
            T + 2,
        )
        .await;
    assert!(
        matches!(
            requeue,
            Err(StoreError::InvalidTransition {
                from: RunState::Rejected,
                to: RunState::Queued,
                ..
            })
        ),
        "a rejected run never runs: {requeue:?}"
    );
    assert_eq!(
        actions(&store, risky.id).await.len(),
        3,
        "requested, awaiting_approval, rejected"
    );

    let bad_start = store
        .create_run(new_run("backup", RunState::Running), T)
        .await;
    assert!(
        matches!(bad_start, Err(StoreError::InvalidTransition { .. })),
        "a run is not recorded as running"
    );
    assert!(matches!(
        store.get_run(RunId(999_999)).await,
        Err(StoreError::NotFound(RunId(999_999)))
    ));
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainCheck::Ok { entries: 7 }
    );
}

async fn decisions_need_distinct_approvers_and_a_deny_rejects(backend: &str) {
    let (store, _db) = fresh_store(backend).await;

    let run = store
        .create_run(awaiting("purge", 2, Some(T + 3_600_000)), T)
        .await
        .unwrap();
    match store
        .decide(run.id, decision("alice", true, T + 1))
        .await
        .unwrap()
    {
        DecisionOutcome::Recorded { run, approvals } => {
            assert_eq!(approvals, 1);
            assert_eq!(
                run.state,
                RunState::AwaitingApproval,
                "one approval of two queues nothing"
            );
        }
        other => panic!("expected Recorded, got {other:?}"),
    }
    let again = store.decide(run.id, decision("alice", true, T + 2)).await;
    assert!(
        matches!(&again, Err(StoreError::AlreadyDecided { approver, .. }) if approver.as_str() == "alice"),
        "one decision per approver: {again:?}"
    );
    let queued = match store
        .decide(run.id, decision("bob", true, T + 3))
        .await
        .unwrap()
    {
        DecisionOutcome::Approved(run) => run,
        other => panic!("the second distinct approval reaches quorum 2, got {other:?}"),
    };
    assert_eq!(
        (queued.state, queued.queued_at),
        (RunState::Queued, Some(T + 3))
    );
    let approvals = store.approvals(run.id).await.unwrap();
    let approvers: Vec<_> = approvals
        .iter()
        .map(|a| (a.approver.as_str(), a.approve))
        .collect();
    assert_eq!(approvers, [("alice", true), ("bob", true)]);
    assert_eq!(
        actions(&store, run.id).await,
        [
            "run.requested",
            "run.awaiting_approval",
            "approval.approved",
            "approval.approved",
            "run.queued"
        ]
    );
    let late = store.decide(run.id, decision("carol", true, T + 4)).await;
    assert!(
        matches!(
            late,
            Err(StoreError::InvalidTransition {
                from: RunState::Queued,
                ..
            })
        ),
        "a queued run takes no more decisions: {late:?}"
    );

    let other = store
        .create_run(awaiting("purge", 1, None), T)
        .await
        .unwrap();
    let rejected = match store
        .decide(other.id, decision("carol", false, T + 1))
        .await
        .unwrap()
    {
        DecisionOutcome::Rejected(run) => run,
        other => panic!("a deny rejects, got {other:?}"),
    };
    assert_eq!(rejected.state, RunState::Rejected);
    assert_eq!(rejected.reason.as_deref(), Some("not today"));
    let after = store.decide(other.id, decision("dave", true, T + 2)).await;
    assert!(
        matches!(
            after,
            Err(StoreError::InvalidTransition {
                from: RunState::Rejected,
                to: RunState::Queued,
                ..
            })
        ),
        "an approval of a rejected run is refused: {after:?}"
    );
    assert_eq!(
        store.get_run(other.id).await.unwrap().state,
        RunState::Rejected
    );
    assert!(matches!(
        store.verify_chain().await.unwrap(),
        ChainCheck::Ok { .. }
    ));
}

async fn expiry_closes_unanswered_requests(backend: &str) {
    let (store, _db) = fresh_store(backend).await;
    let due = store
        .create_run(awaiting("purge", 1, Some(T + 10)), T)
        .await
        .unwrap();
    let later = store
        .create_run(awaiting("purge", 1, Some(T + 1_000)), T)
        .await
        .unwrap();
    let never = store
        .create_run(awaiting("purge", 1, None), T)
        .await
        .unwrap();

    let expired = store.expire_due(T + 10).await.unwrap();
    let ids: Vec<_> = expired.iter().map(|r| r.id).collect();
    assert_eq!(ids, [due.id], "only the run whose deadline passed expires");
    assert_eq!(expired[0].state, RunState::Expired);
    let last = store
        .audit_entries(Some(due.id), 0, 100)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.actor.as_str(), last.action.as_str()),
        ("system", "run.expired")
    );
    assert!(
        store.expire_due(T + 10).await.unwrap().is_empty(),
        "expiring twice does nothing"
    );

    let too_late = store
        .decide(later.id, decision("bob", true, T + 2_000))
        .await;
    assert!(
        matches!(
            too_late,
            Err(StoreError::InvalidTransition {
                from: RunState::Expired,
                ..
            })
        ),
        "an approval after the deadline never queues the run: {too_late:?}"
    );
    assert_eq!(
        store.get_run(later.id).await.unwrap().state,
        RunState::Expired,
        "and the expiry sticks"
    );
    assert_eq!(
        store.get_run(never.id).await.unwrap().state,
        RunState::AwaitingApproval
    );
}

async fn claims_honour_max_concurrent_and_oldest_first(backend: &str) {
    let (store, _db) = fresh_store(backend).await;
    let a1 = store
        .create_run(new_run("alpha", RunState::Queued), T)
        .await
        .unwrap();
    let a2 = store
        .create_run(new_run("alpha", RunState::Queued), T + 1)
        .await
        .unwrap();
    let b1 = store
        .create_run(
            NewRun {
                max_concurrent: 2,
                ..new_run("beta", RunState::Queued)
            },
            T + 2,
        )
        .await
        .unwrap();

    let first = store
        .claim_next("w1", 30_000, T + 10)
        .await
        .unwrap()
        .expect("a1 is runnable");
    assert_eq!(first.id, a1.id, "oldest first");
    assert_eq!(first.state, RunState::Running);
    assert_eq!(
        (first.worker.as_deref(), first.lease_until, first.started_at),
        (Some("w1"), Some(T + 30_010), Some(T + 10))
    );
    assert_eq!(
        actions(&store, a1.id).await.last().map(String::as_str),
        Some("run.started")
    );

    let second = store
        .claim_next("w2", 30_000, T + 11)
        .await
        .unwrap()
        .expect("b1 is runnable");
    assert_eq!(
        second.id, b1.id,
        "alpha is at max_concurrent 1, so beta goes next"
    );
    assert!(
        store
            .claim_next("w3", 30_000, T + 12)
            .await
            .unwrap()
            .is_none(),
        "a2 waits for a1"
    );

    finish(&store, a1.id, T + 20).await;
    let third = store
        .claim_next("w3", 30_000, T + 21)
        .await
        .unwrap()
        .expect("a2 is runnable now");
    assert_eq!(third.id, a2.id);
    assert!(
        matches!(
            start(&store, a2.id, T + 22).await,
            Err(StoreError::InvalidTransition { .. })
        ),
        "claimed runs are not started twice"
    );
}

async fn leases_lapse_and_cancels_follow_the_state(backend: &str) {
    let (store, _db) = fresh_store(backend).await;
    let run = store
        .create_run(new_run("alpha", RunState::Queued), T)
        .await
        .unwrap();
    store
        .claim_next("w1", 1_000, T)
        .await
        .unwrap()
        .expect("claimable");
    assert!(
        !store.renew_lease(run.id, "w2", T + 5_000).await.unwrap(),
        "only the holder renews"
    );
    assert!(store.renew_lease(run.id, "w1", T + 5_000).await.unwrap());
    assert!(
        store.lapse_leases(T + 4_000).await.unwrap().is_empty(),
        "a renewed lease holds"
    );
    store
        .set_progress(run.id, Some(40), "Exporting rows")
        .await
        .unwrap();
    let p = store.get_run(run.id).await.unwrap();
    assert_eq!(
        (p.progress_pct, p.progress_text.as_deref()),
        (Some(40), Some("Exporting rows"))
    );

    let lapsed = store.lapse_leases(T + 5_001).await.unwrap();
    assert_eq!(
        lapsed.iter().map(|r| (r.id, r.state)).collect::<Vec<_>>(),
        [(run.id, RunState::Interrupted)]
    );
    let last = store
        .audit_entries(Some(run.id), 0, 100)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.actor.as_str(), last.action.as_str()),
        ("system", "run.interrupted")
    );
    assert!(
        !store.renew_lease(run.id, "w1", T + 9_000).await.unwrap(),
        "an interrupted run has no lease"
    );

    let queued = store
        .create_run(new_run("beta", RunState::Queued), T)
        .await
        .unwrap();
    let cancelled = store
        .request_cancel(queued.id, "person:alice", T + 1)
        .await
        .unwrap();
    assert_eq!(cancelled.state, RunState::Cancelled);
    assert_eq!(
        actions(&store, queued.id).await.last().map(String::as_str),
        Some("run.cancelled")
    );
    let twice = store.request_cancel(queued.id, "person:alice", T + 2).await;
    assert!(
        matches!(
            twice,
            Err(StoreError::InvalidTransition {
                from: RunState::Cancelled,
                ..
            })
        ),
        "{twice:?}"
    );
    let waiting = store
        .create_run(awaiting("purge", 1, None), T)
        .await
        .unwrap();
    assert_eq!(
        store
            .request_cancel(waiting.id, "person:alice", T + 1)
            .await
            .unwrap()
            .state,
        RunState::Cancelled
    );

    let busy = store
        .create_run(new_run("gamma", RunState::Queued), T)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_next("w1", 60_000, T)
            .await
            .unwrap()
            .map(|r| r.id),
        Some(busy.id)
    );
    let asked = store
        .request_cancel(busy.id, "person:alice", T + 1)
        .await
        .unwrap();
    assert!(
        asked.cancel_requested && asked.state == RunState::Running,
        "a running run is asked, not flipped"
    );
    let entries = actions(&store, busy.id).await.len();
    store
        .request_cancel(busy.id, "person:bob", T + 2)
        .await
        .unwrap();
    assert_eq!(
        actions(&store, busy.id).await.len(),
        entries,
        "asking again records nothing new"
    );
    assert!(
        matches!(store.verify_chain().await.unwrap(), ChainCheck::Ok { .. }),
        "the chain holds"
    );
}

async fn separate_processes_never_claim_a_run_twice(backend: &str) {
    const RUNS: usize = 200;
    const MAX: i64 = 3;
    let (store, db) = fresh_store(backend).await;
    for i in 0..RUNS {
        let new = NewRun {
            max_concurrent: MAX,
            ..new_run(&format!("script-{}", i % 4), RunState::Queued)
        };
        store.create_run(new, T + i as i64).await.unwrap();
    }

    let mut workers = Vec::new();
    for w in 0..4 {
        // Its own pool and connections: as good as another process.
        let store = Store::connect(db.url())
            .await
            .expect("a second process connects");
        workers.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut claimed = Vec::new();
            loop {
                match store
                    .claim_next(&worker, 60_000, T)
                    .await
                    .expect("claiming")
                {
                    Some(run) => {
                        let running = RunFilter {
                            script: Some(run.script.clone()),
                            state: Some(RunState::Running),
                            limit: 500,
                            ..RunFilter::default()
                        };
                        let n = store.list_runs(&running).await.unwrap().len() as i64;
                        assert!(
                            n <= MAX,
                            "{n} runs of {} running at once, max_concurrent is {MAX}",
                            run.script
                        );
                        claimed.push(run.id);
                        finish(&store, run.id, T).await;
                    }
                    None => {
                        let queued = RunFilter {
                            state: Some(RunState::Queued),
                            limit: 1,
                            ..RunFilter::default()
                        };
                        if store.list_runs(&queued).await.unwrap().is_empty() {
                            return claimed;
                        }
                        tokio::task::yield_now().await;
                    }
                }
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker task"));
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(
        all.len(),
        RUNS,
        "every run is claimed exactly once (claims: {})",
        all.len()
    );
    assert_eq!(distinct.len(), RUNS, "no run is handed to two workers");

    let mut started = 0;
    let mut after = 0;
    loop {
        let page = store.audit_entries(None, after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        started += page.iter().filter(|e| e.action == "run.started").count();
    }
    assert_eq!(started, RUNS, "one run.started entry per run");
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainCheck::Ok {
            entries: (RUNS * 4) as u64
        },
        "concurrent appends never fork the chain"
    );
}

/// A store whose chain holds 3 runs' `run.requested` + `run.queued` entries (6),
/// with the triggers that guard the audit table lifted.
async fn chain_of_six(backend: &str) -> (Store, execgov::store::testing::Guard) {
    let (store, db) = fresh_store(backend).await;
    for i in 0..3 {
        store
            .create_run(new_run("backup", RunState::Queued), T + i)
            .await
            .unwrap();
    }
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainCheck::Ok { entries: 6 }
    );
    let refused = store
        .exec_raw("UPDATE audit SET actor = 'mallory' WHERE seq = 1")
        .await;
    assert!(
        refused.is_err(),
        "the audit table refuses updates while its triggers stand"
    );
    allow_audit_tampering(&store).await;
    (store, db)
}

fn broken_at(check: ChainCheck) -> (i64, String) {
    match check {
        ChainCheck::Broken { seq, reason } => (seq, reason),
        ChainCheck::Ok { entries } => {
            panic!("tampering went unnoticed ({entries} entries verified)")
        }
    }
}

async fn verify_chain_names_the_edited_row(backend: &str) {
    let (store, _db) = chain_of_six(backend).await;
    store
        .exec_raw(r#"UPDATE audit SET details = '{"script":"evil"}' WHERE seq = 3"#)
        .await
        .unwrap();
    let (seq, reason) = broken_at(store.verify_chain().await.unwrap());
    assert_eq!(seq, 3, "the edited entry is named: {reason}");
    assert!(reason.contains("edited"), "{reason}");
}

async fn verify_chain_names_the_deleted_row(backend: &str) {
    let (store, _db) = chain_of_six(backend).await;
    store
        .exec_raw("DELETE FROM audit WHERE seq = 4")
        .await
        .unwrap();
    let (seq, reason) = broken_at(store.verify_chain().await.unwrap());
    assert_eq!(seq, 4, "the deleted entry is named: {reason}");
    assert!(
        reason.contains("from 3 to 5") && reason.contains("deleted"),
        "{reason}"
    );
}

async fn verify_chain_catches_swapped_rows(backend: &str) {
    let (store, _db) = chain_of_six(backend).await;
    store
        .exec_raw(
            "UPDATE audit SET seq = -1 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; \
             UPDATE audit SET seq = 4 WHERE seq = -1;",
        )
        .await
        .unwrap();
    let (seq, reason) = broken_at(store.verify_chain().await.unwrap());
    assert_eq!(seq, 3, "the first swapped entry is named: {reason}");
}

/// The hash as DESIGN's chain defines it, computed independently of the store.
fn chain_hash(
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    run_id: Option<i64>,
    details: &str,
    prev: &str,
) -> String {
    let canonical = json!([seq, at, actor, action, run_id, details, prev]).to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

async fn verify_chain_catches_a_rehashed_edit(backend: &str) {
    let (store, _db) = chain_of_six(backend).await;
    let e = store.audit_entries(None, 2, 1).await.unwrap().remove(0);
    assert_eq!(e.seq, 3);
    let stored = e.details.to_string();
    assert_eq!(
        chain_hash(
            e.seq,
            e.at,
            &e.actor,
            &e.action,
            e.run_id.map(|r| r.0),
            &stored,
            &e.prev_hash
        ),
        e.hash,
        "entries are hashed as the canonical form says"
    );
    // A careful attacker rewrites entry 3 and recomputes its own hash.
    let forged = r#"{"args":{"days":1},"digest":"digest-1","place":{},"script":"evil"}"#;
    let hash = chain_hash(
        e.seq,
        e.at,
        &e.actor,
        &e.action,
        e.run_id.map(|r| r.0),
        forged,
        &e.prev_hash,
    );
    store
        .exec_raw(&format!(
            "UPDATE audit SET details = '{forged}', hash = '{hash}' WHERE seq = 3"
        ))
        .await
        .unwrap();
    let (seq, reason) = broken_at(store.verify_chain().await.unwrap());
    assert_eq!(seq, 4, "the next entry no longer links to it: {reason}");
    assert!(
        reason.contains("prev_hash does not match entry 3"),
        "{reason}"
    );
}

async fn side_tables_and_queries_work(backend: &str) {
    let (store, _db) = fresh_store(backend).await;

    assert!(
        store.first_time("evt-1", T).await.unwrap(),
        "a new event is new"
    );
    assert!(
        !store.first_time("evt-1", T + 1).await.unwrap(),
        "a redelivery is not"
    );
    assert!(store.first_time("evt-2", T).await.unwrap());

    store.heartbeat("w1", T).await.unwrap();
    store.heartbeat("w2", T - 60_000).await.unwrap();
    assert_eq!(store.live_workers(T - 1_000).await.unwrap(), 1);
    store.heartbeat("w2", T).await.unwrap();
    assert_eq!(
        store.live_workers(T - 1_000).await.unwrap(),
        2,
        "a heartbeat upserts"
    );

    let keyed = || NewRun {
        schedule_key: Some("backup/0 0 6 * * */1700000000".into()),
        ..new_run("backup", RunState::Queued)
    };
    let run = store.create_run(keyed(), T).await.unwrap();
    let dup = store.create_run(keyed(), T).await.unwrap_err();
    assert!(
        dup.is_unique_violation(),
        "a schedule firing is recorded once: {dup:?}"
    );

    let art = |name: &str| Artifact {
        run_id: run.id,
        name: name.into(),
        path: format!("runs/{}/{name}", run.id),
        size: 3,
        sha256: "ab".repeat(32),
    };
    store.add_artifact(&art("report.csv")).await.unwrap();
    store.add_artifact(&art("a.txt")).await.unwrap();
    assert_eq!(
        store.artifacts(run.id).await.unwrap(),
        [art("a.txt"), art("report.csv")]
    );
    assert!(
        store
            .add_artifact(&art("a.txt"))
            .await
            .unwrap_err()
            .is_unique_violation()
    );

    for (script, person) in [
        ("report", "bob"),
        ("report", "alice"),
        ("backup", "bob"),
        ("report", "bob"),
    ] {
        let new = NewRun {
            requester_person: Some(person.into()),
            ..new_run(script, RunState::Queued)
        };
        store.create_run(new, T).await.unwrap();
    }
    let bobs_reports = RunFilter {
        script: Some("report".into()),
        person: Some("bob".into()),
        limit: 1,
        ..RunFilter::default()
    };
    let page1 = store.list_runs(&bobs_reports).await.unwrap();
    let page2 = store
        .list_runs(&RunFilter {
            before_id: Some(page1[0].id),
            ..bobs_reports.clone()
        })
        .await
        .unwrap();
    let page3 = store
        .list_runs(&RunFilter {
            before_id: Some(page2[0].id),
            ..bobs_reports.clone()
        })
        .await
        .unwrap();
    assert!(page1[0].id > page2[0].id, "newest first");
    assert!(page3.is_empty(), "two of bob's report runs, then nothing");
    let all = store
        .list_runs(&RunFilter {
            limit: 100,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(
        all[4].args,
        json!({ "days": 30 }),
        "JSON columns round-trip"
    );

    store
        .audit(
            "person:carol",
            "command.refused",
            None,
            json!({ "text": "run nope" }),
            T,
        )
        .await
        .unwrap();
    let entries = store.audit_entries(None, 0, 1000).await.unwrap();
    let refused = entries.last().unwrap();
    assert_eq!(
        (refused.action.as_str(), refused.run_id),
        ("command.refused", None)
    );
    let tail = store
        .audit_entries(None, refused.seq - 2, 10)
        .await
        .unwrap();
    assert_eq!(tail.len(), 2, "after_seq pages on");
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainCheck::Ok {
            entries: entries.len() as u64
        }
    );
}

#[tokio::test]
async fn sqlite_creates_missing_folders_and_uses_wal() {
    let db = fresh_database("sqlite").await;
    let url = db.url().replace("execgov.db", "nested/deeper/x.db");
    let store = Store::connect(&url)
        .await
        .expect("missing folders are created");
    assert_eq!(store.backend_name(), "sqlite");
    store
        .create_run(new_run("backup", RunState::Queued), T)
        .await
        .unwrap();
    let file = url.trim_start_matches("sqlite://");
    assert!(
        std::path::Path::new(file).exists(),
        "database file at {file}"
    );
    assert!(
        std::path::Path::new(&format!("{file}-wal")).exists(),
        "journal_mode is WAL"
    );
}

#[tokio::test]
async fn unknown_database_urls_are_refused() {
    let err = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert!(err.to_string().contains("sqlite: or postgres://"), "{err}");
}
