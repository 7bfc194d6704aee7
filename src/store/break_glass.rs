//! Break-glass runs after the fact: an approver's review, and the reminder
//! for runs nobody reviewed in time (`docs/break-glass.md`). Starting one is
//! an ordinary create (`runs::create` audits `policy.bypassed`).

use serde_json::json;

use super::ops::{Durability, Write};
use super::runs::fetch_for_update;
use super::sql::{Backend, Tx, args};
use super::{Run, Store, StoreError};
use crate::types::RunId;

/// Marks break-glass run `id` reviewed by `reviewer` (audited as
/// `policy.reviewed` with the note). Refused when the run did not bypass
/// approval or was reviewed already.
pub(super) async fn review(
    tx: &mut Tx<'_>,
    id: RunId,
    reviewer: &str,
    note: Option<String>,
    now: i64,
) -> Result<Run, StoreError> {
    let before = fetch_for_update(tx, id).await?;
    if before.break_glass.is_none() {
        return Err(StoreError::Conflict(format!(
            "run {id} did not bypass approval; there is nothing to review"
        )));
    }
    if let Some(by) = &before.reviewed_by {
        return Err(StoreError::Conflict(format!(
            "run {id} was already reviewed by {by}"
        )));
    }
    let mut after = before.clone();
    after.reviewed_by = Some(reviewer.to_string());
    after.reviewed_at = Some(now);
    save(tx, &after, &before).await?;
    tx.audit(
        now,
        reviewer,
        "policy.reviewed",
        Some(id),
        json!({ "note": note }),
    );
    Ok(after)
}

/// Break-glass runs recorded before `due` that nobody has reviewed and that
/// were not reminded of yet: each gets `review_reminded_at = now` and a
/// `policy.review_overdue` entry. Answers them.
pub(super) async fn remind_due(
    tx: &mut Tx<'_>,
    due: i64,
    now: i64,
) -> Result<Vec<Run>, StoreError> {
    let sql = "SELECT * FROM runs WHERE break_glass IS NOT NULL AND reviewed_at IS NULL \
               AND review_reminded_at IS NULL AND created_at <= $1 ORDER BY id";
    let sql = match tx.backend() {
        Backend::Sqlite => sql.to_string(),
        Backend::Postgres => format!("{sql} FOR UPDATE SKIP LOCKED"),
    };
    let rows = tx.fetch_all(&sql, args![due]).await?;
    let mut reminded = Vec::with_capacity(rows.len());
    for row in &rows {
        let before = Run::from_row(row)?;
        let mut after = before.clone();
        after.review_reminded_at = Some(now);
        save(tx, &after, &before).await?;
        let details = json!({ "recorded_at": before.created_at });
        tx.audit(
            now,
            "system",
            "policy.review_overdue",
            Some(before.id),
            details,
        );
        reminded.push(after);
    }
    Ok(reminded)
}

async fn save(tx: &mut Tx<'_>, after: &Run, before: &Run) -> Result<(), StoreError> {
    if let Some((sql, values)) = after.update_from(before)?
        && tx.execute(&sql, values).await? != 1
    {
        return Err(StoreError::Corrupt(format!(
            "run {} changed while it was being reviewed",
            before.id
        )));
    }
    Ok(())
}

impl Store {
    /// Records `reviewer`'s review of break-glass run `id` (see [`review`]).
    pub async fn review_break_glass(
        &self,
        id: RunId,
        reviewer: &str,
        note: Option<String>,
        now: i64,
    ) -> Result<Run, StoreError> {
        let reviewer = reviewer.to_string();
        let write = Write::Review {
            id,
            reviewer,
            note,
            now,
        };
        self.write(write, Durability::Synced).await
    }

    /// Marks break-glass runs unreviewed since before `due` as reminded (see
    /// [`remind_due`]) and answers them, for the notifier to post again.
    pub async fn remind_unreviewed(&self, due: i64, now: i64) -> Result<Vec<Run>, StoreError> {
        self.write(Write::RemindUnreviewed { due, now }, Durability::Relaxed)
            .await
    }

    /// Break-glass runs not reviewed yet, and how many of them were recorded
    /// before `due` (overdue): the `/metrics` gauges.
    pub async fn unreviewed_counts(&self, due: i64) -> Result<(i64, i64), StoreError> {
        let row = self
            .fetch_optional(
                "SELECT COUNT(*) AS unreviewed, \
                 COALESCE(SUM(CASE WHEN created_at <= $1 THEN 1 ELSE 0 END), 0) AS overdue \
                 FROM runs WHERE break_glass IS NOT NULL AND reviewed_at IS NULL",
                args![due],
            )
            .await?;
        match row {
            Some(r) => Ok((r.get("unreviewed")?, r.get("overdue")?)),
            None => Ok((0, 0)),
        }
    }
}
