//! How an audit entry's hash is made: plain SHA-256 (every entry written before
//! the chain was keyed) or HMAC-SHA256 under the audit key, which is held outside
//! the database (`[audit] key`, else `data_dir/audit-key`). With the key out of
//! the database's reach, write access to the database alone can neither append
//! nor rewrite an entry that verifies.

use std::sync::{Arc, RwLock};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The hash kind of entries made with the audit key.
pub const KEYED: &str = "hmac-sha256";
/// The hash kind of entries made without it (the chain before it was keyed).
pub const PLAIN: &str = "sha256";

/// The audit key: the secret every keyed entry's hash is an HMAC under.
#[derive(Clone)]
pub struct AuditKey {
    key: Vec<u8>,
    id: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey(id {})", self.id)
    }
}

impl AuditKey {
    /// A key from its secret bytes (any length; 32 random bytes or more is right).
    pub fn new(secret: &[u8]) -> AuditKey {
        let mut key = AuditKey {
            key: secret.to_vec(),
            id: String::new(),
        };
        key.id = key.mac(b"execgov audit key id")[..16].to_string();
        key
    }

    /// A short public name of the key (not the key): recorded in the chain where
    /// keying starts, so a process holding another key is told so.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Lowercase hex HMAC-SHA256 of `data` under this key.
    pub fn mac(&self, data: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `hash` is this key's HMAC of `data`, compared in constant time.
    pub fn verifies(&self, data: &[u8], hash: &str) -> bool {
        let Ok(given) = hex::decode(hash) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data);
        mac.verify_slice(&given).is_ok()
    }
}

/// The fields an entry's hash covers, as stored (`details` is the TEXT exactly as
/// written, so verifying never re-serialises JSON).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub seq: i64,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub run_id: Option<i64>,
    pub details: &'a str,
    pub prev_hash: &'a str,
}

impl Fields<'_> {
    /// The canonical form both kinds hash: the compact JSON array
    /// `[seq, at, actor, action, run_id or null, details, prev_hash]`.
    pub fn canonical(&self) -> String {
        serde_json::json!([
            self.seq,
            self.at,
            self.actor,
            self.action,
            self.run_id,
            self.details,
            self.prev_hash
        ])
        .to_string()
    }

    /// The plain SHA-256 hash (lowercase hex) of the canonical form.
    pub fn plain_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }

    /// The hash an entry of this kind gets: keyed when a key is given.
    pub fn hash(&self, key: Option<&AuditKey>) -> (String, &'static str) {
        match key {
            Some(k) => (k.mac(self.canonical().as_bytes()), KEYED),
            None => (self.plain_hash(), PLAIN),
        }
    }

    /// Whether `hash` of kind `kind` holds for these fields. A keyed hash needs the
    /// key: `Err` says what is missing or unknown.
    pub fn check(&self, kind: &str, hash: &str, key: Option<&AuditKey>) -> Result<bool, String> {
        match kind {
            PLAIN => Ok(self.plain_hash() == hash),
            KEYED => match key {
                Some(k) => Ok(k.verifies(self.canonical().as_bytes(), hash)),
                None => Err("the entry is keyed (HMAC) and no audit key was given".into()),
            },
            other => Err(format!("unknown hash kind `{other}`")),
        }
    }
}

/// The audit key of a store, shared by its clones and its write path; set by
/// whoever opens the store for the service ([`super::Store::set_audit_key`]).
pub(crate) type KeyCell = Arc<RwLock<KeyState>>;

#[derive(Debug, Clone, Default)]
pub(crate) enum KeyState {
    /// No key given: plain entries (refused once the chain is keyed).
    #[default]
    None,
    Key(Arc<AuditKey>),
    /// The configured key could not be loaded: every write fails with this.
    Unusable(String),
}

pub(crate) fn current(cell: &KeyCell) -> KeyState {
    cell.read().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_hash_depends_on_the_key_and_a_plain_one_does_not() {
        let f = Fields {
            seq: 1,
            at: 5,
            actor: "system",
            action: "x",
            run_id: None,
            details: "{}",
            prev_hash: "00",
        };
        let a = AuditKey::new(b"key a");
        let b = AuditKey::new(b"key b");
        let (ha, kind) = f.hash(Some(&a));
        assert_eq!(kind, KEYED);
        assert_eq!(
            f.check(KEYED, &ha, Some(&a)),
            Ok(true),
            "its own key verifies"
        );
        assert_eq!(
            f.check(KEYED, &ha, Some(&b)),
            Ok(false),
            "another key does not"
        );
        assert!(f.check(KEYED, &ha, None).is_err(), "no key: cannot say");
        assert_eq!(f.check(PLAIN, &f.plain_hash(), Some(&a)), Ok(true));
        assert_ne!(a.id(), b.id(), "key ids tell keys apart");
        assert_eq!(a.id().len(), 16);
    }
}
