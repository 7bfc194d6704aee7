//! `execgov evidence RUN_ID --out FILE` and `execgov evidence verify FILE --key
//! PUBKEY`: one self-contained file an auditor can check without the database
//! (docs/audit.md#evidence).
//!
//! The file is two lines. The first is the bundle (compact JSON, schema
//! `execgov.evidence/1`): the run as requested and as it ended, its approvals
//! (who, when, through which account, against which digest), digests, the log
//! and its sha256, the result and files' digests, and every chain entry from
//! the run's request up to a signed checkpoint at or after its last entry, with
//! that checkpoint. The second line is an ed25519 signature of the first line's
//! exact bytes by the service's checkpoint signing key.
//!
//! Offline, the keyed entry hashes cannot be recomputed (the audit key stays
//! with the service), so `verify` checks what a public key can: the bundle's
//! signature (any edited byte fails it), the checkpoint's signature, that the
//! entries link (each `prev_hash` is the previous `hash`) and end at the
//! checkpoint's entry, that the run's entries are all there and agree with the
//! run (request, arguments, digest, approvals), and the log's sha256.

use std::collections::BTreeSet;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::checkpoints::{SignedCheckpoint, write_checkpoint};
use super::keys::public_key_token;
use crate::engine::Engine;
use crate::store::AuditEntry;
use crate::types::RunId;

/// The bundle's schema.
pub const SCHEMA: &str = "execgov.evidence/1";
const SIGNATURE_SCHEMA: &str = "execgov.evidence-signature/1";

/// Builds the bundle of run `id`, signed with `key`. When no checkpoint in the
/// checkpoint file covers the run's last entry yet, one is signed now (and
/// appended to the file, as `execgov audit checkpoint` does).
pub async fn bundle(
    engine: &Engine,
    id: RunId,
    key: &SigningKey,
    now: i64,
) -> anyhow::Result<String> {
    let store = engine.store();
    let run = store.get_run(id).await?;
    let approvals = store.approvals(id).await?;
    let artifacts = store.artifacts(id).await?;
    let own = store.audit_entries(Some(id), 0, 1000).await?;
    let (Some(first), Some(last)) = (own.first(), own.last()) else {
        anyhow::bail!("run {id} has no audit entries");
    };
    let public = key.verifying_key();
    let checkpoint = match covering_checkpoint(engine, &public, last.seq)? {
        Some(c) => c,
        None => write_checkpoint(store, engine.config(), key, now).await?,
    };
    let mut chain = Vec::new();
    let mut after = first.seq - 1;
    while after < checkpoint.seq {
        let page = store.audit_entries(None, after, 1000).await?;
        let Some(end) = page.last() else { break };
        after = end.seq;
        chain.extend(page.into_iter().filter(|e| e.seq <= checkpoint.seq));
    }
    let log = crate::runs_data::log_all(engine, &run).await?;
    let log = match log {
        Some(bytes) => {
            let sha = hex::encode(Sha256::digest(&bytes));
            let (encoding, text) = match String::from_utf8(bytes.clone()) {
                Ok(text) => ("utf-8", text),
                Err(_) => ("base64", B64.encode(&bytes)),
            };
            json!({ "sha256": sha, "bytes": bytes.len(), "encoding": encoding, "text": text })
        }
        None => json!({
            "removed": run.log_pruned_at.is_some(),
            "sha256": run.log_sha256,
            "bytes": run.log_bytes,
        }),
    };
    let body = json!({
        "schema": SCHEMA,
        "generated_at": now,
        "run": run,
        "approvals": approvals.iter().map(|a| {
            let how = own.iter().find(|e| {
                e.action.starts_with("approval.") && e.details["approver"] == a.approver.as_str()
            });
            json!({
                "approver": a.approver,
                "approve": a.approve,
                "at": a.at,
                "reason": a.reason,
                "digest": a.digest,
                "digest_matches": a.digest == run.manifest_digest,
                "via": how.map(|e| e.actor.clone()),
                "entry": how.map(|e| e.seq),
                // A second factor proved at the moment of approving (critical runs).
                "step_up": how.is_some_and(|e| e.details["step_up"] == true),
            })
        }).collect::<Vec<_>>(),
        "files": artifacts.iter().map(|a| json!({ "name": a.name, "bytes": a.size, "sha256": a.sha256 })).collect::<Vec<_>>(),
        "log": log,
        "chain": chain.iter().map(entry_json).collect::<Vec<_>>(),
        "checkpoint": checkpoint,
    });
    let line = serde_json::to_string(&body)?;
    let sig = key.sign(line.as_bytes());
    let signature = json!({
        "schema": SIGNATURE_SCHEMA,
        "key": public_key_token(&public),
        "sig": B64.encode(sig.to_bytes()),
    });
    Ok(format!("{line}\n{signature}\n"))
}

/// The first checkpoint of the configured file signed by `key` whose entry is
/// at or after `seq`.
fn covering_checkpoint(
    engine: &Engine,
    key: &VerifyingKey,
    seq: i64,
) -> anyhow::Result<Option<SignedCheckpoint>> {
    let file = engine.config().checkpoint_file();
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<SignedCheckpoint>(l).ok())
        .filter(|c| c.verify(key).is_ok())
        .find(|c| c.seq >= seq))
}

fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "seq": e.seq,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "run_id": e.run_id,
        "details": e.details,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
        "hash_kind": e.hash_kind,
    })
}

/// What a bundle that holds shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub run: i64,
    pub entries: usize,
    pub checkpoint_seq: i64,
    pub approvals: usize,
}

/// Checks a bundle with `key` only; `Err` names the first thing that does not hold.
pub fn verify(text: &str, key: &VerifyingKey) -> Result<Verified, String> {
    let mut lines = text.split('\n');
    let body_line = lines.next().unwrap_or_default();
    let sig_line = lines.next().unwrap_or_default();
    if lines.any(|l| !l.is_empty()) {
        return Err("the file has more than the bundle and its signature".into());
    }
    let sig: Value = serde_json::from_str(sig_line)
        .map_err(|e| format!("line 2 is not the bundle's signature ({e})"))?;
    if sig["schema"] != SIGNATURE_SCHEMA {
        return Err(format!(
            "line 2: unknown signature schema {}",
            sig["schema"]
        ));
    }
    let token = public_key_token(key);
    if sig["key"] != token.as_str() {
        return Err(format!(
            "the bundle was signed by {} and not by {token}",
            sig["key"].as_str().unwrap_or("an unnamed key")
        ));
    }
    let bytes = sig["sig"]
        .as_str()
        .and_then(|s| B64.decode(s).ok())
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or("line 2: the signature is not 64 bytes of base64")?;
    key.verify(body_line.as_bytes(), &Signature::from_bytes(&bytes))
        .map_err(|_| {
            "the bundle's signature does not verify: line 1 was altered after it was signed"
                .to_string()
        })?;
    let body: Value =
        serde_json::from_str(body_line).map_err(|e| format!("line 1 is not JSON ({e})"))?;
    if body["schema"] != SCHEMA {
        return Err(format!("unknown bundle schema {}", body["schema"]));
    }
    let checkpoint: SignedCheckpoint = serde_json::from_value(body["checkpoint"].clone())
        .map_err(|e| format!("the checkpoint is malformed ({e})"))?;
    checkpoint
        .verify(key)
        .map_err(|e| format!("checkpoint at entry {}: {e}", checkpoint.seq))?;
    let chain = body["chain"].as_array().ok_or("the bundle has no chain")?;
    let mut prev: Option<&Value> = None;
    for e in chain {
        let seq = e["seq"].as_i64().ok_or("a chain entry has no seq")?;
        if let Some(p) = prev {
            if Some(seq) != p["seq"].as_i64().map(|s| s + 1) {
                return Err(format!("entry {seq} does not follow entry {}", p["seq"]));
            }
            if e["prev_hash"] != p["hash"] {
                return Err(format!(
                    "entry {seq} does not link to entry {} (its prev_hash differs)",
                    p["seq"]
                ));
            }
        }
        prev = Some(e);
    }
    let last = prev.ok_or("the chain is empty")?;
    if last["seq"].as_i64() != Some(checkpoint.seq) || last["hash"] != checkpoint.hash.as_str() {
        return Err(format!(
            "the chain ends at entry {} and not at the checkpoint's entry {} with its hash",
            last["seq"], checkpoint.seq
        ));
    }
    let run = &body["run"];
    let id = run["id"].as_i64().ok_or("the bundle names no run")?;
    let own: Vec<&Value> = chain.iter().filter(|e| e["run_id"] == id).collect();
    let requested = own
        .first()
        .filter(|e| e["action"] == "run.requested")
        .ok_or(format!("the chain does not start with run {id}'s request"))?;
    if requested["details"]["args"] != run["args"] {
        return Err(format!(
            "run {id}'s arguments differ from its request (entry {})",
            requested["seq"]
        ));
    }
    if requested["details"]["digest"] != run["manifest_digest"] {
        return Err(format!(
            "run {id}'s digest differs from its request (entry {})",
            requested["seq"]
        ));
    }
    let approvals = body["approvals"].as_array().cloned().unwrap_or_default();
    let mut decided = BTreeSet::new();
    for a in &approvals {
        let who = a["approver"].as_str().unwrap_or_default();
        let action = if a["approve"] == true {
            "approval.approved"
        } else {
            "approval.denied"
        };
        let backed = own.iter().any(|e| {
            e["action"] == action
                && e["details"]["approver"] == who
                && e["details"]["digest"] == a["digest"]
        });
        if !backed {
            return Err(format!(
                "{who}'s {} has no matching entry in the chain",
                action.trim_start_matches("approval.")
            ));
        }
        decided.insert(who.to_string());
    }
    let log = &body["log"];
    if let Some(text) = log["text"].as_str() {
        let bytes = match log["encoding"].as_str() {
            Some("base64") => B64
                .decode(text)
                .map_err(|_| "the log is not valid base64")?,
            _ => text.as_bytes().to_vec(),
        };
        let sha = hex::encode(Sha256::digest(&bytes));
        if log["sha256"] != sha.as_str() {
            return Err(format!(
                "the log's sha256 is {sha}, not the {} the bundle states",
                log["sha256"]
            ));
        }
    }
    Ok(Verified {
        run: id,
        entries: chain.len(),
        checkpoint_seq: checkpoint.seq,
        approvals: decided.len(),
    })
}
