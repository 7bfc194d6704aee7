//! Decisions: one per approver, the quorum, and a deny that rejects.

use super::*;

on_both_backends!(decisions_need_distinct_approvers_and_a_deny_rejects);

async fn decisions_need_distinct_approvers_and_a_deny_rejects(backend: &str) {
    let (store, _db) = fresh_store(backend).await;

    let run = store
        .create_at(awaiting("purge", 2, Some(T + 3_600_000)), T)
        .await
        .unwrap();
    match store
        .decide(run.id, decision("alice", true, T + 1), Durability::Synced)
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
    let again = store
        .decide(run.id, decision("alice", true, T + 2), Durability::Synced)
        .await;
    assert!(
        matches!(&again, Err(StoreError::AlreadyDecided { approver, .. }) if approver.as_str() == "alice"),
        "one decision per approver: {again:?}"
    );
    let queued = match store
        .decide(run.id, decision("bob", true, T + 3), Durability::Synced)
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
    let late = store
        .decide(run.id, decision("carol", true, T + 4), Durability::Synced)
        .await;
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
        .create_at(awaiting("purge", 1, None), T)
        .await
        .unwrap();
    let rejected = match store
        .decide(
            other.id,
            decision("carol", false, T + 1),
            Durability::Synced,
        )
        .await
        .unwrap()
    {
        DecisionOutcome::Rejected(run) => run,
        other => panic!("a deny rejects, got {other:?}"),
    };
    assert_eq!(rejected.state, RunState::Rejected);
    assert_eq!(rejected.reason.as_deref(), Some("not today"));
    let after = store
        .decide(other.id, decision("dave", true, T + 2), Durability::Synced)
        .await;
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
