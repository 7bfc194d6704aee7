//! Side tables and queries, and opening databases.

use super::*;

on_both_backends!(side_tables_and_queries_work);

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
    let run = store.create_at(keyed(), T).await.unwrap();
    let dup = store.create_at(keyed(), T).await.unwrap_err();
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
            requester_person: Some(PersonId(person.into())),
            ..new_run(script, RunState::Queued)
        };
        store.create_at(new, T).await.unwrap();
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
        serde_json::to_value(&all[4].args).unwrap(),
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
        .create_at(new_run("backup", RunState::Queued), T)
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
