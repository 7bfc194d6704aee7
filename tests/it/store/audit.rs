//! The audit chain: `verify_chain` names the first edited, deleted, swapped
//! or rehashed row.

use super::*;

on_both_backends!(
    verify_chain_names_the_edited_row,
    verify_chain_names_the_deleted_row,
    verify_chain_catches_swapped_rows,
    verify_chain_catches_a_rehashed_edit,
);

/// A store whose chain holds 3 runs' `run.requested` + `run.queued` entries (6),
/// with the triggers that guard the audit table lifted.
async fn chain_of_six(backend: &str) -> (Store, execgov::store::testing::Guard) {
    let (store, db) = fresh_store(backend).await;
    for i in 0..3 {
        store
            .create_at(new_run("backup", RunState::Queued), T + i)
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
