//! Verifying the audit chain: every link, every hash (keyed ones under the audit
//! key), the head, and, given signed checkpoints of earlier heads, that the chain
//! still holds what each checkpoint saw.
//!
//! The chain alone cannot see its newest entries cut off when the head row is
//! rewritten with them: what is left is a shorter chain that verifies. A
//! checkpoint (seq, hash, time, signed outside the database; see
//! `crate::audit::checkpoints`) can: the entry it names must still be there with
//! the hash it saw.

use std::collections::BTreeMap;

use super::audit::{GENESIS, KEYED_MARKER};
use super::audit_key::{AuditKey, Fields, KEYED, PLAIN};
use super::sql::{Row, args};
use super::{ChainCheck, Store, StoreError};

/// How many entries verification holds in memory at once.
const VERIFY_PAGE: i64 = 1000;

/// A head of the chain as a signed checkpoint saw it, its signature already
/// checked by whoever read it. `label` names it in messages
/// (`checkpoints.jsonl line 3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: i64,
    pub label: String,
}

/// Why a checkpoint file does not hold (a line whose signature fails, a line that
/// is not a checkpoint); the reader says which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{label}: {reason}")]
pub struct CheckpointProblem {
    pub label: String,
    pub reason: String,
}

/// One stored row as verification needs it: `details` as raw TEXT.
pub(super) struct RawEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub run_id: Option<i64>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
    pub hash_kind: String,
}

impl RawEntry {
    pub(super) fn from_row(r: &Row) -> Result<RawEntry, StoreError> {
        Ok(RawEntry {
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

    fn fields(&self) -> Fields<'_> {
        Fields {
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            run_id: self.run_id,
            details: &self.details,
            prev_hash: &self.prev_hash,
        }
    }

    /// Whether this entry's own hash holds (its link to the one before is not
    /// looked at). `Err` says why not.
    pub(super) fn holds(&self, key: Option<&AuditKey>) -> Result<(), String> {
        if self.action == KEYED_MARKER
            && self.hash_kind == KEYED
            && let Some(k) = key
        {
            let theirs = serde_json::from_str::<serde_json::Value>(&self.details)
                .ok()
                .and_then(|d| d["key_id"].as_str().map(str::to_string))
                .unwrap_or_default();
            if theirs != k.id() {
                return Err(format!(
                    "the chain is keyed from here with another key (key id {theirs}); \
                     the audit key given has id {}",
                    k.id()
                ));
            }
        }
        match self.fields().check(&self.hash_kind, &self.hash, key)? {
            true => Ok(()),
            false if self.hash_kind == PLAIN => {
                Err("hash does not match its contents (edited)".into())
            }
            false => Err(
                "hash does not verify under the audit key (edited, or written without the key)"
                    .into(),
            ),
        }
    }
}

/// Walks the chain in `seq` order, one entry at a time.
pub(super) struct ChainWalk<'k> {
    key: Option<&'k AuditKey>,
    expected_seq: i64,
    prev_hash: String,
    pub(super) entries: u64,
    /// The `audit.keyed` entry: from it on, every entry must be keyed.
    keyed_from: Option<i64>,
}

impl<'k> ChainWalk<'k> {
    pub(super) fn new(key: Option<&'k AuditKey>) -> Self {
        ChainWalk {
            key,
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
            entries: 0,
            keyed_from: None,
        }
    }

    /// Checks the next entry; `Err` is the first break found.
    pub(super) fn step(&mut self, e: &RawEntry) -> Result<(), ChainCheck> {
        let broken = |seq: i64, reason: String| ChainCheck::Broken { seq, reason };
        let want = self.expected_seq;
        if e.seq != want {
            let gone = if e.seq == want + 1 {
                format!("entry {want}")
            } else {
                format!("entries {want} to {}", e.seq - 1)
            };
            let reason = if want == 1 {
                format!("sequence starts at {} instead of 1 ({gone} deleted)", e.seq)
            } else {
                format!(
                    "sequence jumps from {} to {} ({gone} deleted)",
                    want - 1,
                    e.seq
                )
            };
            return Err(broken(want, reason));
        }
        match (e.hash_kind.as_str(), self.keyed_from) {
            (PLAIN, Some(from)) => {
                return Err(broken(
                    e.seq,
                    format!(
                        "a plain SHA-256 entry after the chain became keyed at entry {from} \
                         (forged: anyone with write access to the database can compute one)"
                    ),
                ));
            }
            (KEYED, None) if e.action != KEYED_MARKER => {
                return Err(broken(
                    e.seq,
                    "a keyed entry before the chain's `audit.keyed` entry".into(),
                ));
            }
            _ => {}
        }
        e.holds(self.key).map_err(|reason| broken(e.seq, reason))?;
        if e.prev_hash != self.prev_hash {
            let reason = if e.seq == 1 {
                "prev_hash of the first entry is not the genesis value".to_string()
            } else {
                format!(
                    "prev_hash does not match entry {} (deleted or reordered)",
                    e.seq - 1
                )
            };
            return Err(broken(e.seq, reason));
        }
        if e.hash_kind == KEYED && self.keyed_from.is_none() {
            self.keyed_from = Some(e.seq);
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&e.hash);
        self.entries += 1;
        Ok(())
    }

    fn last(&self) -> i64 {
        self.expected_seq - 1
    }
}

impl Store {
    /// Recomputes the whole chain with this store's audit key, a page at a time
    /// (memory stays bounded however long the log is), and reports the first
    /// entry that does not hold. Entries cut off the end show once a newer entry
    /// was appended after them, or when the head row still names them.
    pub async fn verify_chain(&self) -> Result<ChainCheck, StoreError> {
        let key = self.audit_key();
        self.verify_chain_against(key.as_deref(), &[]).await
    }

    /// Like [`Store::verify_chain`], with `key` (needed for keyed entries), and
    /// checking that every checkpoint's entry is still there with the hash the
    /// checkpoint saw: a chain cut after a checkpoint, or with its tail rewritten,
    /// fails naming the first entry that is missing or differs.
    pub async fn verify_chain_against(
        &self,
        key: Option<&AuditKey>,
        checkpoints: &[Checkpoint],
    ) -> Result<ChainCheck, StoreError> {
        let mut seen: BTreeMap<i64, Vec<&Checkpoint>> = BTreeMap::new();
        for c in checkpoints {
            seen.entry(c.seq).or_default().push(c);
        }
        let mut walk = ChainWalk::new(key);
        loop {
            let page = self
                .fetch_all(
                    "SELECT seq, at, actor, action, run_id, details, prev_hash, hash, hash_kind \
                     FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                    args![walk.last(), VERIFY_PAGE],
                )
                .await?;
            for row in &page {
                let e = RawEntry::from_row(row)?;
                if let Err(broken) = walk.step(&e) {
                    return Ok(broken);
                }
                for c in seen.get(&e.seq).into_iter().flatten() {
                    if c.hash != e.hash {
                        return Ok(ChainCheck::Broken {
                            seq: e.seq,
                            reason: format!(
                                "entry {} is not the one the checkpoint of {} signed \
                                 (the chain was rewritten after it)",
                                e.seq, c.label
                            ),
                        });
                    }
                }
            }
            if page.len() as i64 == VERIFY_PAGE {
                continue;
            }
            let last = walk.last();
            if let Some((_, cs)) = seen.range(last + 1..).next_back() {
                let c = cs[0];
                let gone = if c.seq == last + 1 {
                    format!("entry {}", c.seq)
                } else {
                    format!("entries {} to {}", last + 1, c.seq)
                };
                return Ok(ChainCheck::Broken {
                    seq: last + 1,
                    reason: format!(
                        "the chain ends at entry {last}, but the checkpoint of {} signed \
                         entry {} ({gone} cut off)",
                        c.label, c.seq
                    ),
                });
            }
            let head = self
                .fetch_one("SELECT seq, hash FROM audit_head WHERE id = 1", args![])
                .await?;
            let (seq, hash): (i64, String) = (head.get("seq")?, head.get("hash")?);
            if seq != last || hash != walk.prev_hash {
                return Ok(ChainCheck::Broken {
                    seq: last + 1,
                    reason: format!(
                        "the chain ends at entry {last}, but its head says entry {seq} \
                         (entries after {last} deleted)"
                    ),
                });
            }
            return Ok(ChainCheck::Ok {
                entries: walk.entries,
            });
        }
    }

    /// The seq of the entry where the chain became keyed, if it is.
    pub async fn audit_keyed_from(&self) -> Result<Option<i64>, StoreError> {
        let row = self
            .fetch_one(
                "SELECT MIN(seq) FROM audit WHERE action = $1 AND hash_kind = $2",
                args![KEYED_MARKER, KEYED],
            )
            .await?;
        row.first()
    }

    /// The chain's head as the store holds it: `(seq, hash)` of the newest entry.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let head = self
            .fetch_one("SELECT seq, hash FROM audit_head WHERE id = 1", args![])
            .await?;
        Ok((head.get("seq")?, head.get("hash")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64, key: Option<&AuditKey>, keyed_from: i64) -> Vec<RawEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let k = key.filter(|_| seq >= keyed_from);
                let (action, details) = match k {
                    Some(k) if seq == keyed_from => (
                        KEYED_MARKER.to_string(),
                        format!("{{\"key_id\":\"{}\"}}", k.id()),
                    ),
                    _ => ("x".to_string(), "{}".to_string()),
                };
                let fields = Fields {
                    seq,
                    at: seq * 10,
                    actor: "system",
                    action: &action,
                    run_id: None,
                    details: &details,
                    prev_hash: &prev,
                };
                let (hash, kind) = fields.hash(k);
                let e = RawEntry {
                    seq,
                    at: seq * 10,
                    actor: "system".into(),
                    action,
                    run_id: None,
                    details,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                    hash_kind: kind.into(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn walk(entries: &[RawEntry], key: Option<&AuditKey>) -> Result<u64, ChainCheck> {
        let mut w = ChainWalk::new(key);
        for e in entries {
            w.step(e)?;
        }
        Ok(w.entries)
    }

    fn broken_at(r: Result<u64, ChainCheck>) -> (i64, String) {
        match r {
            Err(ChainCheck::Broken { seq, reason }) => (seq, reason),
            other => panic!("expected a break, got {other:?}"),
        }
    }

    #[test]
    fn a_walk_names_the_first_break() {
        assert_eq!(walk(&chain(5, None, 0), None), Ok(5));
        let mut gap = chain(6, None, 0);
        gap.remove(4);
        let (seq, reason) = broken_at(walk(&gap, None));
        assert_eq!(seq, 5);
        assert!(reason.contains("from 4 to 6"), "{reason}");
        let mut head = chain(3, None, 0);
        head.remove(0);
        assert_eq!(broken_at(walk(&head, None)).0, 1);
        let mut edited = chain(3, None, 0);
        edited[1].details = "{\"x\":1}".into();
        let (seq, reason) = broken_at(walk(&edited, None));
        assert_eq!(seq, 2);
        assert!(reason.contains("edited"), "{reason}");
    }

    #[test]
    fn plain_entries_verify_before_keying_and_never_after() {
        let key = AuditKey::new(b"k");
        let mixed = chain(6, Some(&key), 4);
        assert_eq!(walk(&mixed, Some(&key)), Ok(6), "plain 1-3, keyed 4-6");

        // A plain entry recomputed in place of a keyed one: its own hash holds,
        // and the walk still names it.
        let mut forged = mixed;
        let f = &mut forged[4];
        f.details = "{\"forged\":true}".into();
        f.hash_kind = PLAIN.into();
        f.hash = f.fields().plain_hash();
        forged[5].prev_hash = forged[4].hash.clone();
        let (seq, reason) = broken_at(walk(&forged, Some(&key)));
        assert_eq!(seq, 5);
        assert!(reason.contains("plain SHA-256 entry after"), "{reason}");
    }

    #[test]
    fn a_keyed_entry_does_not_verify_under_another_key_nor_without_one() {
        let key = AuditKey::new(b"k");
        let keyed = chain(3, Some(&key), 1);
        let (seq, reason) = broken_at(walk(&keyed, Some(&AuditKey::new(b"other"))));
        assert_eq!(seq, 1);
        assert!(reason.contains("another key"), "{reason}");
        let (seq, reason) = broken_at(walk(&keyed, None));
        assert_eq!(seq, 1);
        assert!(reason.contains("no audit key"), "{reason}");
    }
}
