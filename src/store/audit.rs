//! The audit chain: append-only, each entry holding the hash of the one before it, so
//! that [`Store::verify_chain`] finds any edited, deleted or reordered row.
//!
//! An entry's `hash` covers the compact JSON array
//! `[seq, at, actor, action, run_id or null, details, prev_hash]`, where `details` is
//! the stored TEXT exactly as written (so verifying never re-serialises JSON), and the
//! first entry's `prev_hash` is 64 zeros. Its `hash_kind` says how: `hmac-sha256`
//! under the audit key (held outside the database; see `audit_key.rs`), or
//! `sha256`, plain, for the entries written before the chain was keyed. Changing
//! this form breaks every existing chain: the known-answer test below pins it.
//!
//! # Where keying starts
//! The first append made with a key to a chain whose newest entry is plain first
//! appends an `audit.keyed` entry (keyed itself, its details naming the key's id).
//! From there on every entry must be keyed: a plain entry after it is a forgery,
//! since anyone can compute one. The head remembers the kind and the key id, so a
//! process without the key, or with another key, refuses to append.
//!
//! # Appending
//! The chain's head (`seq`, `hash` of the newest entry) is one row of its own,
//! `audit_head`. A write operation queues its entries on its transaction
//! ([`Tx::audit`]) and [`Tx::flush_audit`] appends them at the operation's end:
//! it reads the head (on PostgreSQL `FOR UPDATE`, the only lock every writer
//! takes), links the entries, inserts them and moves the head. So writers of
//! different runs run side by side and wait for each other only from that append
//! to their commit, and the chain keeps one total order. Because the head is kept
//! apart from the entries, cutting the newest entries off shows as soon as the
//! next one is written (its `seq` leaves a gap); a cut that also rewrites the
//! head shows only against a signed checkpoint (`audit_verify.rs`).

use serde_json::{Value, json};

use super::audit_key::{Fields, KEYED, PLAIN};
use super::sql::{Backend, Row, Tx, Value as Bind, args};
use super::{Store, StoreError};
use crate::types::RunId;

/// `prev_hash` of the first entry.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Entries per INSERT statement (9 parameters each; SQLite allows 32,766).
const INSERT_ROWS: usize = 500;

/// The action of the entry that starts the keyed part of the chain.
pub(crate) const KEYED_MARKER: &str = "audit.keyed";

/// One entry of the audit chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub run_id: Option<RunId>,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
    /// `hmac-sha256` (keyed) or `sha256` (plain, written before keying started).
    pub hash_kind: String,
}

impl AuditEntry {
    pub(super) fn from_row(r: &Row) -> Result<AuditEntry, StoreError> {
        Ok(AuditEntry {
            seq: r.get("seq")?,
            at: r.get("at")?,
            actor: r.get("actor")?,
            action: r.get("action")?,
            run_id: r.get("run_id")?,
            details: r.get("details")?,
            prev_hash: r.get("prev_hash")?,
            hash: r.get("hash")?,
            hash_kind: r.get("hash_kind")?,
        })
    }
}

/// One entry to append: everything but `seq` and the hashes, which the chain gives.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub run: Option<RunId>,
    pub details: Value,
}

impl Tx<'_> {
    /// Queues an entry; it is appended when the operation ends, in order.
    pub(super) fn audit(
        &mut self,
        at: i64,
        actor: &str,
        action: &str,
        run: Option<RunId>,
        details: Value,
    ) {
        self.audit.push(NewEntry {
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            run,
            details,
        });
    }

    /// Appends the queued entries to the chain (see the module documentation).
    pub(super) async fn flush_audit(&mut self) -> Result<(), StoreError> {
        if self.audit.is_empty() {
            return Ok(());
        }
        let mut entries = std::mem::take(&mut self.audit);
        let head_sql = match self.backend() {
            Backend::Sqlite => "SELECT seq, hash, hash_kind, key_id FROM audit_head WHERE id = 1",
            Backend::Postgres => {
                "SELECT seq, hash, hash_kind, key_id FROM audit_head WHERE id = 1 FOR UPDATE"
            }
        };
        let head = self.fetch_one(head_sql, args![]).await?;
        let (mut seq, mut prev): (i64, String) = (head.get("seq")?, head.get("hash")?);
        let head_kind: String = head.get("hash_kind")?;
        let head_key: Option<String> = head.get("key_id")?;
        let key = self.key.clone();
        match (&key, head_kind == KEYED) {
            (None, true) => {
                return Err(StoreError::Config(format!(
                    "the audit chain is keyed (key id {}) and this process has no audit key: \
                     give it the same `[audit] key` (or data_dir/audit-key) as the service",
                    head_key.unwrap_or_default()
                )));
            }
            (Some(k), true) if head_key.as_deref() != Some(k.id()) => {
                return Err(StoreError::Config(format!(
                    "this process's audit key (id {}) is not the key the audit chain is \
                     written with (id {}): give it the service's `[audit] key` (or data_dir/audit-key)",
                    k.id(),
                    head_key.unwrap_or_default()
                )));
            }
            (Some(k), false) => {
                let marker = NewEntry {
                    at: entries[0].at,
                    actor: "system".into(),
                    action: KEYED_MARKER.into(),
                    run: None,
                    details: json!({ "hash_kind": KEYED, "key_id": k.id(), "after": seq }),
                };
                entries.insert(0, marker);
            }
            _ => {}
        }
        let kind = if key.is_some() { KEYED } else { PLAIN };
        let chunks = entries.len().div_ceil(INSERT_ROWS);
        for (c, chunk) in entries.chunks(INSERT_ROWS).enumerate() {
            let mut sql = String::from(
                "INSERT INTO audit (seq, at, actor, action, run_id, details, prev_hash, hash, hash_kind) VALUES ",
            );
            let mut binds: Vec<Bind> = Vec::with_capacity(chunk.len() * 9);
            for (i, e) in chunk.iter().enumerate() {
                seq += 1;
                let run_id = e.run.map(|r| r.0);
                let details = e.details.to_string();
                let fields = Fields {
                    seq,
                    at: e.at,
                    actor: &e.actor,
                    action: &e.action,
                    run_id,
                    details: &details,
                    prev_hash: &prev,
                };
                let (hash, _) = fields.hash(key.as_deref());
                if i > 0 {
                    sql.push_str(", ");
                }
                let b = i * 9;
                let marks: Vec<String> = (1..=9).map(|n| format!("${}", b + n)).collect();
                sql.push_str(&format!("({})", marks.join(", ")));
                binds.extend(args![
                    seq,
                    e.at,
                    e.actor.as_str(),
                    e.action.as_str(),
                    run_id,
                    details,
                    std::mem::replace(&mut prev, hash.clone()),
                    hash,
                    kind,
                ]);
            }
            if c + 1 == chunks && self.backend() == Backend::Postgres {
                // On PostgreSQL the last rows and the head's move are one
                // statement (one round trip while the head is locked).
                let n = binds.len();
                sql = format!(
                    "WITH appended AS ({sql}) UPDATE audit_head SET seq = ${}, hash = ${}, \
                     hash_kind = ${}, key_id = ${} WHERE id = 1",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4
                );
                binds.extend(args![
                    seq,
                    prev.clone(),
                    kind,
                    key.as_ref().map(|k| k.id().to_string())
                ]);
                return self.execute(&sql, binds).await.map(|_| ());
            }
            self.execute(&sql, binds).await?;
        }
        self.execute(
            "UPDATE audit_head SET seq = $1, hash = $2, hash_kind = $3, key_id = $4 WHERE id = 1",
            args![seq, prev, kind, key.as_ref().map(|k| k.id().to_string())],
        )
        .await?;
        Ok(())
    }
}

impl Store {
    /// Entries in `seq` order after `after_seq` (0 for the start), optionally only
    /// those of one run; `limit` is clamped to 1..=1000.
    pub async fn audit_entries(
        &self,
        run: Option<RunId>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT * FROM audit WHERE ($1 IS NULL OR run_id = $1) AND seq > $2 \
                 ORDER BY seq LIMIT $3",
                args![run.map(|r| r.0), after_seq, limit.clamp(1, 1000)],
            )
            .await?;
        rows.iter().map(AuditEntry::from_row).collect()
    }

    /// Audit entries newest first, before `before_seq` (None: from the newest).
    pub async fn audit_page(
        &self,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT * FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                args![before_seq.unwrap_or(i64::MAX), limit.clamp(1, 1000)],
            )
            .await?;
        rows.iter().map(AuditEntry::from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_canonical_form_is_pinned() {
        // If this changes, every chain already written stops verifying.
        let canonical = serde_json::json!([
            1,
            1700000000000_i64,
            "system",
            "run.requested",
            7,
            "{\"a\":1}",
            GENESIS
        ])
        .to_string();
        assert_eq!(
            canonical,
            format!(
                "[1,1700000000000,\"system\",\"run.requested\",7,\"{{\\\"a\\\":1}}\",\"{GENESIS}\"]"
            )
        );
        let fields = Fields {
            seq: 1,
            at: 1_700_000_000_000,
            actor: "system",
            action: "run.requested",
            run_id: Some(7),
            details: "{\"a\":1}",
            prev_hash: GENESIS,
        };
        assert_eq!(fields.canonical(), canonical);
        let h = fields.plain_hash();
        assert_eq!(h, hex::encode(Sha256::digest(canonical.as_bytes())));
        assert_eq!(h.len(), 64);
    }
}
