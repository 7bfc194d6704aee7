//! Signed checkpoints of the audit chain's head, kept outside the database.
//!
//! A checkpoint is one JSON line:
//! `{"v":1,"seq":N,"hash":"…","at":MS,"key":"ed25519:…","sig":"…"}`, where `sig`
//! is the base64 ed25519 signature of `execgov audit checkpoint v1\n{seq}\n{hash}\n{at}`
//! and `key` names the public key that signed it (informational: `verify`
//! checks against the key it is given). `execgov audit checkpoint` writes one,
//! `serve` one every `[audit] checkpoint_every`; each is appended to `[audit]
//! checkpoint_file` and logged. Whoever keeps a copy of the file (or of the
//! channel it is posted to) can later show that the chain still holds every
//! entry it held then: `execgov audit verify --checkpoints FILE`.

use std::io::{BufRead, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::keys::public_key_token;
use crate::config::Config;
use crate::engine::Engine;
use crate::store::{Checkpoint, CheckpointProblem, Store};

/// One line of the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    /// The format's version: 1.
    pub v: u32,
    /// The newest entry's seq when the checkpoint was made (0: an empty chain).
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// When it was made, epoch ms.
    pub at: i64,
    /// The public key that signed it, `ed25519:<base64>`.
    pub key: String,
    /// Base64 ed25519 signature of [`message`].
    pub sig: String,
}

/// What a checkpoint's signature covers.
fn message(seq: i64, hash: &str, at: i64) -> String {
    format!("execgov audit checkpoint v1\n{seq}\n{hash}\n{at}")
}

impl SignedCheckpoint {
    pub fn sign(key: &SigningKey, seq: i64, hash: &str, at: i64) -> SignedCheckpoint {
        let sig = key.sign(message(seq, hash, at).as_bytes());
        SignedCheckpoint {
            v: 1,
            seq,
            hash: hash.to_string(),
            at,
            key: public_key_token(&key.verifying_key()),
            sig: B64.encode(sig.to_bytes()),
        }
    }

    /// Whether `key` signed exactly these seq, hash and time.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), String> {
        if self.v != 1 {
            return Err(format!("unknown checkpoint version {}", self.v));
        }
        let sig = B64
            .decode(&self.sig)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or("the signature is not 64 bytes of base64")?;
        key.verify(
            message(self.seq, &self.hash, self.at).as_bytes(),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| {
            format!(
                "the signature does not verify under {} (the checkpoint was altered, \
                 or signed with another key)",
                public_key_token(key)
            )
        })
    }
}

/// Signs the chain's head now, appends the checkpoint to the configured file
/// and answers it.
pub async fn write_checkpoint(
    store: &Store,
    config: &Config,
    key: &SigningKey,
    now: i64,
) -> anyhow::Result<SignedCheckpoint> {
    let (seq, hash) = store.audit_head().await.context("reading the audit head")?;
    let checkpoint = SignedCheckpoint::sign(key, seq, &hash, now);
    let file = config.checkpoint_file();
    append_line(&file, &checkpoint)
        .with_context(|| format!("appending a checkpoint to {}", file.display()))?;
    tracing::info!(seq, hash = %hash, file = %file.display(), "audit checkpoint signed");
    Ok(checkpoint)
}

fn append_line(file: &Path, checkpoint: &SignedCheckpoint) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_string(checkpoint).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// Reads a checkpoint file, checking each line's signature with `key`. The
/// first line that is not a checkpoint, or whose signature fails, is named.
pub fn read_checkpoints(
    file: &Path,
    key: &VerifyingKey,
) -> anyhow::Result<Result<Vec<Checkpoint>, CheckpointProblem>> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let label = format!("{name} line {}", i + 1);
        let problem = |reason: String| CheckpointProblem {
            label: label.clone(),
            reason,
        };
        let c: SignedCheckpoint = match serde_json::from_str(&line) {
            Ok(c) => c,
            Err(e) => return Ok(Err(problem(format!("not a checkpoint ({e})")))),
        };
        if let Err(reason) = c.verify(key) {
            return Ok(Err(problem(reason)));
        }
        out.push(Checkpoint {
            seq: c.seq,
            hash: c.hash,
            at: c.at,
            label,
        });
    }
    Ok(Ok(out))
}

/// Signs a checkpoint every `[audit] checkpoint_every` until `shutdown` (the
/// first one a period after the start). A failure is logged and tried again
/// at the next tick.
pub async fn checkpoints_until_stopped(engine: Arc<Engine>, shutdown: CancellationToken) {
    let config = engine.config().clone();
    let key = match super::keys::signing_key(&config) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "no audit checkpoints: the signing key is unusable");
            return;
        }
    };
    let every = config.audit.checkpoint_every.max(Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = engine.clock().now_ms();
        if let Err(e) = write_checkpoint(engine.store(), &config, &key, now).await {
            tracing::warn!(error = %format!("{e:#}"), "audit checkpoint failed; trying again at the next one");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_as_signed() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let c = SignedCheckpoint::sign(&key, 12, "ab", 1000);
        assert_eq!(c.verify(&key.verifying_key()), Ok(()));
        let mut moved = c.clone();
        moved.seq = 9;
        assert!(moved.verify(&key.verifying_key()).is_err(), "seq is signed");
        let mut rehashed = c.clone();
        rehashed.hash = "cd".into();
        assert!(
            rehashed.verify(&key.verifying_key()).is_err(),
            "hash is signed"
        );
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert!(c.verify(&other.verifying_key()).is_err(), "another key");
    }
}
