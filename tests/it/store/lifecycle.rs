//! The lifecycle: no arrow it lacks, one audit entry per change, expiry.

use super::*;

on_both_backends!(
    lifecycle_refuses_missing_arrows_and_audits_each_change,
    expiry_closes_unanswered_requests,
);

async fn lifecycle_refuses_missing_arrows_and_audits_each_change(backend: &str) {
    let (store, _db) = fresh_store(backend).await;

    let run = store
        .create_at(new_run("backup", RunState::Queued), T)
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

    let edit = Edit::new(|r| {
        r.exit_code = Some(0);
        r.output_tail = Some("done".into());
        r.result = Some(json!({"rows": 3}));
    });
    let done = store
        .move_at(run.id, RunState::Succeeded, "system", edit, T + 3)
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
        .create_at(awaiting("purge", 1, None), T)
        .await
        .unwrap();
    let rejected = store
        .move_at(
            risky.id,
            RunState::Rejected,
            "person:bob",
            Edit::none(),
            T + 1,
        )
        .await
        .unwrap();
    assert!(
        rejected.finished_at.is_some(),
        "a final state stamps finished_at"
    );
    let requeue = store
        .move_at(
            risky.id,
            RunState::Queued,
            "person:bob",
            Edit::none(),
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
        .create_at(new_run("backup", RunState::Running), T)
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

async fn expiry_closes_unanswered_requests(backend: &str) {
    let (store, _db) = fresh_store(backend).await;
    let due = store
        .create_at(awaiting("purge", 1, Some(T + 10)), T)
        .await
        .unwrap();
    let later = store
        .create_at(awaiting("purge", 1, Some(T + 1_000)), T)
        .await
        .unwrap();
    let never = store
        .create_at(awaiting("purge", 1, None), T)
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
        .decide(
            later.id,
            decision("bob", true, T + 2_000),
            Durability::Synced,
        )
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
