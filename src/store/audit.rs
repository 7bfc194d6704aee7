//! The audit chain: append-only, each entry holding the hash of the one before it, so
//! that [`Store::verify_chain`] finds any edited, deleted or reordered row.
//!
//! An entry's `hash` is the lowercase hex SHA-256 of the compact JSON array
//! `[seq, at, actor, action, run_id or null, details, prev_hash]`, where `details` is
//! the stored TEXT exactly as written (so verifying never re-serialises JSON), and the
//! first entry's `prev_hash` is 64 zeros. Changing this form breaks every existing
//! chain: the known-answer test below pins it.
//!
//! Deleting the newest entries leaves a valid shorter chain; catching that needs an
//! anchor outside the database (e.g. the head hash published elsewhere).

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::AuditEntry;
use super::{ChainCheck, Store, StoreError, json_text};
use crate::types::RunId;

/// `prev_hash` of the first entry.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How many entries `verify_chain` holds in memory at once.
const VERIFY_PAGE: i64 = 1000;

/// The hash of one entry; see the module documentation for the canonical form.
pub(crate) fn entry_hash(
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    run_id: Option<i64>,
    details: &str,
    prev_hash: &str,
) -> String {
    let canonical =
        serde_json::json!([seq, at, actor, action, run_id, details, prev_hash]).to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// One entry to append: everything but `seq` and the hashes, which the chain gives.
pub(super) struct NewEntry<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub run: Option<RunId>,
    pub details: &'a Value,
}

/// The query for the chain's head: `(seq, hash)` of the newest entry.
pub(super) const HEAD_SQL: &str = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";

/// `INSERT INTO audit … VALUES (…), (…)` for `rows` entries, `$n` placeholders
/// in the order of [`Linked`]'s fields.
pub(super) fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit (seq, at, actor, action, run_id, details, prev_hash, hash) VALUES ",
    );
    for r in 0..rows {
        let b = r * 8;
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8
        ));
    }
    sql
}

/// One entry as it is stored: numbered and hashed onto the chain.
pub(super) struct Linked<'a> {
    pub seq: i64,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub run_id: Option<i64>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Numbers and hashes `entries` onto the chain whose head is `head` (`None`
/// for an empty chain), in order.
pub(super) fn link<'a>(head: Option<(i64, String)>, entries: &[NewEntry<'a>]) -> Vec<Linked<'a>> {
    let (mut seq, mut prev_hash) = head.unwrap_or((0, GENESIS.to_string()));
    entries
        .iter()
        .map(|e| {
            seq += 1;
            let run_id = e.run.map(|r| r.0);
            let details = json_text(e.details);
            let hash = entry_hash(seq, e.at, e.actor, e.action, run_id, &details, &prev_hash);
            Linked {
                seq,
                at: e.at,
                actor: e.actor,
                action: e.action,
                run_id,
                details,
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            }
        })
        .collect()
}

/// Appending inside a transaction of `write_tx!`.
pub(super) trait AuditTx {
    /// Appends one entry and returns its `seq`. Only sound under the write lock that
    /// `write_tx!` takes: that lock is what keeps `seq` and `prev_hash` from forking.
    async fn append_audit(
        &mut self,
        at: i64,
        actor: &str,
        action: &str,
        run: Option<RunId>,
        details: &Value,
    ) -> Result<i64, StoreError> {
        self.append_entries(&[NewEntry {
            at,
            actor,
            action,
            run,
            details,
        }])
        .await
    }

    /// Appends `entries` in order with one read of the chain's head and one
    /// INSERT; returns the last `seq` (the head's when `entries` is empty). Same
    /// lock rule as `append_audit`.
    async fn append_entries(&mut self, entries: &[NewEntry<'_>]) -> Result<i64, StoreError>;
}

macro_rules! impl_audit_tx {
    ($conn:ty) => {
        impl AuditTx for $conn {
            async fn append_entries(
                &mut self,
                entries: &[NewEntry<'_>],
            ) -> Result<i64, StoreError> {
                let head: Option<(i64, String)> =
                    sqlx::query_as(HEAD_SQL).fetch_optional(&mut *self).await?;
                let head_seq = head.as_ref().map_or(0, |(seq, _)| *seq);
                let rows = link(head, entries);
                let Some(last) = rows.last().map(|r| r.seq) else {
                    return Ok(head_seq);
                };
                let sql = insert_sql(rows.len());
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in rows {
                    insert = insert
                        .bind(r.seq)
                        .bind(r.at)
                        .bind(r.actor)
                        .bind(r.action)
                        .bind(r.run_id)
                        .bind(r.details)
                        .bind(r.prev_hash)
                        .bind(r.hash);
                }
                insert.execute(&mut *self).await?;
                Ok(last)
            }
        }
    };
}

impl_audit_tx!(sqlx::SqliteConnection);
impl_audit_tx!(sqlx::PgConnection);

/// One stored row as verification needs it: `details` as raw TEXT.
type RawEntry = (
    i64,
    i64,
    String,
    String,
    Option<i64>,
    String,
    String,
    String,
);

/// Walks the chain in `seq` order, one entry at a time.
struct ChainWalk {
    expected_seq: i64,
    prev_hash: String,
    entries: u64,
}

impl ChainWalk {
    fn new() -> Self {
        ChainWalk {
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
            entries: 0,
        }
    }

    /// Checks the next entry; `Err` is the first break found.
    fn step(&mut self, e: &RawEntry) -> Result<(), ChainCheck> {
        let (seq, at, actor, action, run_id, details, prev_hash, hash) = e;
        let broken = |seq: i64, reason: String| ChainCheck::Broken { seq, reason };
        let want = self.expected_seq;
        if *seq != want {
            let gone = if *seq == want + 1 {
                format!("entry {want}")
            } else {
                format!("entries {want} to {}", seq - 1)
            };
            let reason = if want == 1 {
                format!("sequence starts at {seq} instead of 1 ({gone} deleted)")
            } else {
                format!("sequence jumps from {} to {seq} ({gone} deleted)", want - 1)
            };
            return Err(broken(want, reason));
        }
        let computed = entry_hash(*seq, *at, actor, action, *run_id, details, prev_hash);
        if computed != *hash {
            return Err(broken(
                *seq,
                "hash does not match its contents (edited)".into(),
            ));
        }
        if *prev_hash != self.prev_hash {
            let reason = if *seq == 1 {
                "prev_hash of the first entry is not the genesis value".to_string()
            } else {
                format!(
                    "prev_hash does not match entry {} (deleted or reordered)",
                    seq - 1
                )
            };
            return Err(broken(*seq, reason));
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(hash);
        self.entries += 1;
        Ok(())
    }
}

impl Store {
    /// Appends a standalone entry, for actions that change no run (a refused
    /// command, a config reload) or that concern a run without changing it.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        run: Option<RunId>,
        details: Value,
        now: i64,
    ) -> Result<(), StoreError> {
        write_tx!(self, |c| c
            .append_audit(now, actor, action, run, &details)
            .await)?;
        Ok(())
    }

    /// Entries in `seq` order after `after_seq` (0 for the start), optionally only
    /// those of one run; `limit` is clamped to 1..=1000.
    pub async fn audit_entries(
        &self,
        run: Option<RunId>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let run_id = run.map(|r| r.0);
        let limit = limit.clamp(1, 1000);
        read_conn!(self, |c| {
            let entries = sqlx::query_as(
                "SELECT * FROM audit WHERE ($1 IS NULL OR run_id = $1) AND seq > $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(run_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
            Ok(entries)
        })
    }

    /// Recomputes the whole chain, a page at a time (memory stays bounded however
    /// long the log is), and reports the first entry that does not hold.
    pub async fn verify_chain(&self) -> Result<ChainCheck, StoreError> {
        let mut walk = ChainWalk::new();
        let mut after = 0i64;
        loop {
            let page: Vec<RawEntry> = read_conn!(self, |c| {
                sqlx::query_as(
                    "SELECT seq, at, actor, action, run_id, details, prev_hash, hash \
                     FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(VERIFY_PAGE)
                .fetch_all(&mut *c)
                .await
            })?;
            for entry in &page {
                if let Err(broken) = walk.step(entry) {
                    return Ok(broken);
                }
            }
            match page.last() {
                Some(last) if page.len() as i64 == VERIFY_PAGE => after = last.0,
                _ => {
                    return Ok(ChainCheck::Ok {
                        entries: walk.entries,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let h = entry_hash(
            1,
            1_700_000_000_000,
            "system",
            "run.requested",
            Some(7),
            "{\"a\":1}",
            GENESIS,
        );
        assert_eq!(h, hex::encode(Sha256::digest(canonical.as_bytes())));
        assert_eq!(h.len(), 64);
    }

    fn chain(n: i64) -> Vec<RawEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let hash = entry_hash(seq, seq * 10, "system", "x", None, "{}", &prev);
                let e = (
                    seq,
                    seq * 10,
                    "system".into(),
                    "x".into(),
                    None,
                    "{}".into(),
                    prev.clone(),
                    hash.clone(),
                );
                prev = hash;
                e
            })
            .collect()
    }

    fn walk(entries: &[RawEntry]) -> Result<u64, ChainCheck> {
        let mut w = ChainWalk::new();
        for e in entries {
            w.step(e)?;
        }
        Ok(w.entries)
    }

    #[test]
    fn a_walk_names_the_first_break() {
        assert_eq!(walk(&chain(5)), Ok(5));
        let mut gap = chain(6);
        gap.remove(4);
        assert!(
            matches!(walk(&gap), Err(ChainCheck::Broken { seq: 5, ref reason }) if reason.contains("from 4 to 6"))
        );
        let mut head = chain(3);
        head.remove(0);
        assert!(matches!(
            walk(&head),
            Err(ChainCheck::Broken { seq: 1, .. })
        ));
        let mut edited = chain(3);
        edited[1].5 = "{\"x\":1}".into();
        assert!(
            matches!(walk(&edited), Err(ChainCheck::Broken { seq: 2, ref reason }) if reason.contains("edited"))
        );
    }
}
