//! The keyed chain: with write access to the database alone, an appended entry
//! for a forged approval neither verifies nor starts the run; keying starts at a
//! marked entry; a cut or rewritten tail shows against a signed checkpoint.

use super::*;
use execgov::store::{AuditKey, Checkpoint};

on_both_backends!(
    keying_starts_at_a_marked_entry_and_needs_the_key,
    a_forged_approval_does_not_start_the_run_and_verify_names_it,
    a_tail_cut_after_a_checkpoint_is_named,
);

fn key() -> AuditKey {
    AuditKey::new(b"0123456789abcdef0123456789abcdef")
}

fn broken_at(check: ChainCheck) -> (i64, String) {
    match check {
        ChainCheck::Broken { seq, reason } => (seq, reason),
        ChainCheck::Ok { entries } => {
            panic!("tampering went unnoticed ({entries} entries verified)")
        }
    }
}

fn plain_hash(
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    run: i64,
    details: &str,
    prev: &str,
) -> String {
    let canonical = json!([seq, at, actor, action, run, details, prev]).to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

async fn keying_starts_at_a_marked_entry_and_needs_the_key(backend: &str) {
    let (store, db) = fresh_store(backend).await;
    store
        .create_at(new_run("backup", RunState::Queued), T)
        .await
        .unwrap();
    store.set_audit_key(key());
    store
        .create_at(new_run("backup", RunState::Queued), T + 1)
        .await
        .unwrap();
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainCheck::Ok { entries: 5 },
        "two plain entries, the marker, two keyed entries"
    );
    assert_eq!(store.audit_keyed_from().await.unwrap(), Some(3));
    let marker = store.audit_entries(None, 2, 1).await.unwrap().remove(0);
    assert_eq!(marker.action, "audit.keyed");
    assert_eq!(marker.details["key_id"], key().id());

    let (seq, reason) = broken_at(store.verify_chain_against(None, &[]).await.unwrap());
    assert_eq!(
        (seq, reason.contains("no audit key")),
        (3, true),
        "{reason}"
    );
    let other = AuditKey::new(b"another key, quite long enough!!");
    let (seq, reason) = broken_at(store.verify_chain_against(Some(&other), &[]).await.unwrap());
    assert_eq!((seq, reason.contains("another key")), (3, true), "{reason}");

    // A process without the key (or with another one) cannot append.
    let keyless = Store::connect(db.url()).await.unwrap();
    let refused = keyless
        .create_at(new_run("backup", RunState::Queued), T + 2)
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Config(m)) if m.contains("no audit key")),
        "a keyless store is refused: {refused:?}"
    );
    keyless.set_audit_key(other);
    let refused = keyless
        .create_at(new_run("backup", RunState::Queued), T + 2)
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Config(m)) if m.contains("is not the key")),
        "another key is refused: {refused:?}"
    );
    keyless.close().await;
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainCheck::Ok { entries: 5 }
    );
}

/// The measured attack: a script with database access inserts an approval row,
/// moves the run to `queued` and appends a correctly chained plain entry.
async fn a_forged_approval_does_not_start_the_run_and_verify_names_it(backend: &str) {
    let (store, _db) = fresh_store(backend).await;
    store.set_audit_key(key());
    let run = store.create_at(awaiting("wipe", 1, None), T).await.unwrap();
    assert_eq!(run.state, RunState::AwaitingApproval);
    allow_audit_tampering(&store).await;

    let (seq, prev) = store.audit_head().await.unwrap();
    let forged_seq = seq + 1;
    let details = r#"{"approver":"alice","digest":"digest-1","digest_matches":true,"reason":null}"#;
    let at = T + 5;
    let hash = plain_hash(
        forged_seq,
        at,
        "person:alice",
        "approval.approved",
        run.id.0,
        details,
        &prev,
    );
    store
        .exec_raw(&format!(
            "INSERT INTO approvals (run_id, approver, approve, reason, at, digest) \
               VALUES ({id}, 'alice', TRUE, NULL, {at}, 'digest-1'); \
             UPDATE runs SET state = 'queued', queued_at = {at} WHERE id = {id}; \
             INSERT INTO audit (seq, at, actor, action, run_id, details, prev_hash, hash) \
               VALUES ({forged_seq}, {at}, 'person:alice', 'approval.approved', {id}, '{details}', '{prev}', '{hash}'); \
             UPDATE audit_head SET seq = {forged_seq}, hash = '{hash}' WHERE id = 1;",
            id = run.id.0
        ))
        .await
        .unwrap();

    let claimed = store
        .claim_next(&execgov::store::testing::local_runner("w"), 30_000, T + 10)
        .await
        .unwrap();
    assert!(
        claimed.is_none(),
        "the forged run is not handed to a runner: {claimed:?}"
    );
    let after = store.get_run(run.id).await.unwrap();
    assert_eq!(after.state, RunState::Failed, "it fails instead");
    let why = after.reason.clone().unwrap_or_default();
    assert!(
        why.contains("approval not backed by the audit log"),
        "{why}"
    );
    let entries = store.audit_entries(Some(run.id), 0, 100).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.action == "run.approval_not_backed"),
        "the refusal is audited: {entries:?}"
    );

    let (seq, reason) = broken_at(store.verify_chain().await.unwrap());
    assert_eq!(seq, forged_seq, "verify names the forged entry: {reason}");
    assert!(reason.contains("plain SHA-256 entry after"), "{reason}");

    // A genuine approval of another run still starts it.
    let genuine = store
        .create_at(awaiting("wipe2", 1, None), T + 20)
        .await
        .unwrap();
    let decision = DecisionInput {
        approver: PersonId("alice".into()),
        actor: "person:alice".into(),
        approve: true,
        reason: None,
        digest: "digest-1".into(),
        step_up: None,
        now: T + 21,
    };
    store
        .decide(genuine.id, decision, Durability::Synced)
        .await
        .unwrap();
    let claimed = store
        .claim_next(&execgov::store::testing::local_runner("w"), 30_000, T + 22)
        .await
        .unwrap();
    assert_eq!(
        claimed.map(|r| r.id),
        Some(genuine.id),
        "a backed approval starts"
    );
}

async fn a_tail_cut_after_a_checkpoint_is_named(backend: &str) {
    let (store, _db) = fresh_store(backend).await;
    store.set_audit_key(key());
    for i in 0..3 {
        store
            .create_at(new_run("backup", RunState::Queued), T + i)
            .await
            .unwrap();
    }
    let (seq, hash) = store.audit_head().await.unwrap();
    assert_eq!(seq, 7, "the marker and 3 runs' two entries");
    let checkpoint = Checkpoint {
        seq,
        hash,
        at: T + 10,
        label: "checkpoints.jsonl line 1".into(),
    };
    allow_audit_tampering(&store).await;
    let kept = store
        .audit_entries(None, seq - 4, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(kept.seq, seq - 3);
    store
        .exec_raw(&format!(
            "DELETE FROM audit WHERE seq > {}; UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1;",
            kept.seq, kept.seq, kept.hash
        ))
        .await
        .unwrap();
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainCheck::Ok { entries: 4 },
        "without a checkpoint the shorter chain verifies: the case the chain alone cannot see"
    );
    let k = key();
    let (at, reason) = broken_at(
        store
            .verify_chain_against(Some(&k), std::slice::from_ref(&checkpoint))
            .await
            .unwrap(),
    );
    assert_eq!(at, seq - 2, "names the first entry cut off: {reason}");
    assert!(
        reason.contains("cut off") && reason.contains("line 1"),
        "{reason}"
    );
}
