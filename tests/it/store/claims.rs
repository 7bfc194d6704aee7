//! Claims: `max_concurrent`, oldest first, leases, cancels, and no run
//! handed to two workers, across processes too.

use super::*;

on_both_backends!(
    claims_honour_max_concurrent_and_oldest_first,
    leases_lapse_and_cancels_follow_the_state,
    separate_processes_never_claim_a_run_twice,
    claims_pass_over_runs_meant_for_other_runners,
);

/// Forty queued runs that need a `db-host` runner neither hide the plain run
/// behind them from the local runner nor go to a runner without that tag.
async fn claims_pass_over_runs_meant_for_other_runners(backend: &str) {
    let (store, _db) = fresh_store(backend).await;
    for i in 0..40 {
        let run = NewRun {
            runs_on: vec!["db-host".into()],
            max_concurrent: 100,
            ..new_run("on-db", RunState::Queued)
        };
        store.create_at(run, T + i).await.unwrap();
    }
    let plain = store
        .create_at(new_run("plain", RunState::Queued), T + 100)
        .await
        .unwrap();
    let local = execgov::store::testing::local_runner("local");
    let got = store.claim_next(&local, 30_000, T + 200).await.unwrap();
    assert_eq!(got.map(|r| r.id), Some(plain.id), "the local runner's run");
    assert!(
        store
            .claim_next(&local, 30_000, T + 201)
            .await
            .unwrap()
            .is_none(),
        "runs with tags are not the local runner's"
    );
    let tagged = |name: &str, tags: &[&str]| execgov::store::RunnerIdentity {
        name: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        local: false,
    };
    let eu = tagged("eu1", &["eu"]);
    assert!(
        store
            .claim_next(&eu, 30_000, T + 202)
            .await
            .unwrap()
            .is_none()
    );
    let db = tagged("db1", &["eu", "db-host"]);
    let got = store
        .claim_next(&db, 30_000, T + 203)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.runs_on.clone(), got.worker.as_deref()),
        (vec!["db-host".to_string()], Some("db1"))
    );
}

async fn claims_honour_max_concurrent_and_oldest_first(backend: &str) {
    let (store, _db) = fresh_store(backend).await;
    let a1 = store
        .create_at(new_run("alpha", RunState::Queued), T)
        .await
        .unwrap();
    let a2 = store
        .create_at(new_run("alpha", RunState::Queued), T + 1)
        .await
        .unwrap();
    let b1 = store
        .create_at(
            NewRun {
                max_concurrent: 2,
                ..new_run("beta", RunState::Queued)
            },
            T + 2,
        )
        .await
        .unwrap();

    let first = store
        .claim_next(&execgov::store::testing::local_runner("w1"), 30_000, T + 10)
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
        .claim_next(&execgov::store::testing::local_runner("w2"), 30_000, T + 11)
        .await
        .unwrap()
        .expect("b1 is runnable");
    assert_eq!(
        second.id, b1.id,
        "alpha is at max_concurrent 1, so beta goes next"
    );
    assert!(
        store
            .claim_next(&execgov::store::testing::local_runner("w3"), 30_000, T + 12)
            .await
            .unwrap()
            .is_none(),
        "a2 waits for a1"
    );

    finish(&store, a1.id, T + 20).await;
    let third = store
        .claim_next(&execgov::store::testing::local_runner("w3"), 30_000, T + 21)
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
        .create_at(new_run("alpha", RunState::Queued), T)
        .await
        .unwrap();
    store
        .claim_next(&execgov::store::testing::local_runner("w1"), 1_000, T)
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
        .create_at(new_run("beta", RunState::Queued), T)
        .await
        .unwrap();
    let cancelled = store
        .request_cancel(queued.id, "person:alice", T + 1, Durability::Synced)
        .await
        .unwrap();
    assert_eq!(cancelled.state, RunState::Cancelled);
    assert_eq!(
        actions(&store, queued.id).await.last().map(String::as_str),
        Some("run.cancelled")
    );
    let twice = store
        .request_cancel(queued.id, "person:alice", T + 2, Durability::Synced)
        .await;
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
        .create_at(awaiting("purge", 1, None), T)
        .await
        .unwrap();
    assert_eq!(
        store
            .request_cancel(waiting.id, "person:alice", T + 1, Durability::Synced)
            .await
            .unwrap()
            .state,
        RunState::Cancelled
    );

    let busy = store
        .create_at(new_run("gamma", RunState::Queued), T)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_next(&execgov::store::testing::local_runner("w1"), 60_000, T)
            .await
            .unwrap()
            .map(|r| r.id),
        Some(busy.id)
    );
    let asked = store
        .request_cancel(busy.id, "person:alice", T + 1, Durability::Synced)
        .await
        .unwrap();
    assert!(
        asked.cancel_requested && asked.state == RunState::Running,
        "a running run is asked, not flipped"
    );
    let entries = actions(&store, busy.id).await.len();
    store
        .request_cancel(busy.id, "person:bob", T + 2, Durability::Synced)
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
        store.create_at(new, T + i as i64).await.unwrap();
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
                    .claim_next(&execgov::store::testing::local_runner(&worker), 60_000, T)
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
