//! What the chat notifier has shown for each run, so posting is idempotent,
//! survives restarts and failed posts are retried rather than lost.

use super::ops::{Durability, Write};
use super::sql::{Row, Tx, args};
use super::{Store, StoreError};
use crate::types::{RunId, RunState};

/// One chat message the notifier keeps in step with a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPost {
    pub run_id: RunId,
    /// `status`, `approval` or `note:<key>`.
    pub role: String,
    pub place_key: String,
    /// The place as JSON (`execgov_chat::Place`).
    pub place: String,
    /// The platform's id of the posted message, once posted.
    pub message_id: Option<String>,
    /// A digest of what the message shows now.
    pub shown: Option<String>,
    /// The run's result went into the message's thread.
    pub result_posted: bool,
    /// Nothing more will change.
    pub done: bool,
    pub attempts: i64,
    pub next_at: i64,
    pub last_error: Option<String>,
}

impl ChatPost {
    fn from_row(r: &Row) -> Result<ChatPost, StoreError> {
        Ok(ChatPost {
            run_id: r.get("run_id")?,
            role: r.get("role")?,
            place_key: r.get("place_key")?,
            place: r.get("place")?,
            message_id: r.get("message_id")?,
            shown: r.get("shown")?,
            result_posted: r.get("result_posted")?,
            done: r.get("done")?,
            attempts: r.get("attempts")?,
            next_at: r.get("next_at")?,
            last_error: r.get("last_error")?,
        })
    }
}

const ONE: &str = "SELECT * FROM chat_posts WHERE run_id = $1 AND role = $2 AND place_key = $3";

pub(super) async fn ensure(
    tx: &mut Tx<'_>,
    run: RunId,
    role: &str,
    place_key: &str,
    place: &str,
) -> Result<ChatPost, StoreError> {
    tx.execute(
        "INSERT INTO chat_posts (run_id, role, place_key, place) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (run_id, role, place_key) DO NOTHING",
        args![run.0, role, place_key, place],
    )
    .await?;
    ChatPost::from_row(&tx.fetch_one(ONE, args![run.0, role, place_key]).await?)
}

pub(super) async fn save(tx: &mut Tx<'_>, p: &ChatPost) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE chat_posts SET message_id = $4, shown = $5, result_posted = $6, done = $7, \
         attempts = $8, next_at = $9, last_error = $10 \
         WHERE run_id = $1 AND role = $2 AND place_key = $3",
        args![
            p.run_id.0,
            p.role.as_str(),
            p.place_key.as_str(),
            &p.message_id,
            &p.shown,
            p.result_posted,
            p.done,
            p.attempts,
            p.next_at,
            &p.last_error,
        ],
    )
    .await?;
    Ok(())
}

impl Store {
    /// The post for (run, role, place), created empty if it does not exist yet.
    pub async fn ensure_post(
        &self,
        run: RunId,
        role: &str,
        place_key: &str,
        place: &str,
    ) -> Result<ChatPost, StoreError> {
        // Nearly always there already: look before writing.
        if let Some(row) = self
            .fetch_optional(ONE, args![run.0, role, place_key])
            .await?
        {
            return ChatPost::from_row(&row);
        }
        let write = Write::EnsurePost {
            run,
            role: role.to_string(),
            place_key: place_key.to_string(),
            place: place.to_string(),
        };
        self.write(write, Durability::Relaxed).await
    }

    /// Records what a post shows after a successful post or edit.
    pub async fn save_post(&self, p: &ChatPost) -> Result<(), StoreError> {
        self.write(Write::SavePost(p.clone()), Durability::Relaxed)
            .await
    }

    /// All posts of a run.
    pub async fn posts(&self, run: RunId) -> Result<Vec<ChatPost>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT * FROM chat_posts WHERE run_id = $1 ORDER BY role, place_key",
                args![run.0],
            )
            .await?;
        rows.iter().map(ChatPost::from_row).collect()
    }

    /// Runs the notifier should look at: posts not done and due, runs still
    /// moving, and runs that finished since `finished_since` (possibly run by
    /// another process).
    pub async fn runs_to_notify(
        &self,
        now: i64,
        finished_since: i64,
        limit: i64,
    ) -> Result<Vec<RunId>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT run_id FROM chat_posts WHERE done = FALSE AND next_at <= $1 \
                 UNION SELECT id FROM runs WHERE state IN ($2, $3, $4) \
                 UNION SELECT id FROM runs WHERE finished_at >= $5 \
                 ORDER BY 1 LIMIT $6",
                args![
                    now,
                    RunState::AwaitingApproval.as_str(),
                    RunState::Queued.as_str(),
                    RunState::Running.as_str(),
                    finished_since,
                    limit
                ],
            )
            .await?;
        rows.iter().map(|r| r.first()).collect()
    }
}
