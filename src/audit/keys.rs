//! The audit log's two keys: the HMAC key (`[audit] key`) that makes entries
//! verifiable only by whoever holds it, and the ed25519 key (`[audit]
//! signing_key`) that signs checkpoints. Each is a secret reference, else
//! generated once into `data_dir` (mode 0600) the way the web secret is.

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::config::Config;
use crate::store::{AuditKey, Store};

/// The file `data_dir` keeps a generated audit key in.
pub const AUDIT_KEY_FILE: &str = "audit-key";
/// The file `data_dir` keeps a generated signing key in.
pub const SIGNING_KEY_FILE: &str = "audit-signing-key";

/// Opens the configured database with the audit key set: what every process
/// that writes to the chain uses (a store without the key is refused by a
/// keyed chain).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let key = audit_key(config)?;
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening the database {}",
                crate::store::redact_url(&config.database_url)
            )
        })?;
    store.set_audit_key(key);
    Ok(store)
}

/// `[audit] key`, else `data_dir/audit-key` (generated once).
pub fn audit_key(config: &Config) -> anyhow::Result<AuditKey> {
    let secret = match &config.audit.key {
        Some(r) => r.resolve().context("resolving [audit] key")?,
        None => crate::config::generated_once(&config.data_dir, AUDIT_KEY_FILE)?,
    };
    anyhow::ensure!(
        secret.len() >= 16,
        "[audit] key is too short: use at least 32 random bytes (e.g. `openssl rand -hex 32`)"
    );
    Ok(AuditKey::new(secret.as_bytes()))
}

/// `[audit] signing_key` (32 bytes, hex or base64), else
/// `data_dir/audit-signing-key` (generated once).
pub fn signing_key(config: &Config) -> anyhow::Result<SigningKey> {
    let text = match &config.audit.signing_key {
        Some(r) => r.resolve().context("resolving [audit] signing_key")?,
        None => crate::config::generated_once(&config.data_dir, SIGNING_KEY_FILE)?,
    };
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| B64.decode(text).ok())
        .filter(|b| b.len() == 32)
        .context("[audit] signing_key must be 32 bytes in hex or base64")?;
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&bytes);
    Ok(SigningKey::from_bytes(&seed))
}

/// The public key as one token, `ed25519:<base64>`: what `audit key` prints and
/// `audit verify --key` takes.
pub fn public_key_token(key: &VerifyingKey) -> String {
    format!("ed25519:{}", B64.encode(key.as_bytes()))
}

/// Reads a token of [`public_key_token`].
pub fn parse_public_key(token: &str) -> anyhow::Result<VerifyingKey> {
    let b64 = token
        .strip_prefix("ed25519:")
        .context("a public key is written `ed25519:<base64>` (see `execgov audit key`)")?;
    let bytes = B64
        .decode(b64.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .context("the public key is not 32 bytes of base64")?;
    VerifyingKey::from_bytes(&bytes).context("not an ed25519 public key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::defaults();
        config.data_dir = dir.path().to_path_buf();
        let a = audit_key(&config).unwrap();
        let mode = std::fs::metadata(dir.path().join(AUDIT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only the service's user reads the key");
        assert_eq!(
            audit_key(&config).unwrap().id(),
            a.id(),
            "the same key next time"
        );
        let s = signing_key(&config).unwrap();
        assert_eq!(
            signing_key(&config).unwrap().verifying_key(),
            s.verifying_key()
        );
        let token = public_key_token(&s.verifying_key());
        assert_eq!(parse_public_key(&token).unwrap(), s.verifying_key());
        assert!(parse_public_key("ed25519:AAAA").is_err());
    }
}
