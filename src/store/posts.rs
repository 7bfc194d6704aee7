//! What the chat notifier has shown for each run, so posting is idempotent,
//! survives restarts and failed posts are retried rather than lost.

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

type PostRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    bool,
    i64,
    i64,
    Option<String>,
);

fn from_row(r: PostRow) -> ChatPost {
    ChatPost {
        run_id: RunId(r.0),
        role: r.1,
        place_key: r.2,
        place: r.3,
        message_id: r.4,
        shown: r.5,
        result_posted: r.6,
        done: r.7,
        attempts: r.8,
        next_at: r.9,
        last_error: r.10,
    }
}

const COLUMNS: &str = "run_id, role, place_key, place, message_id, shown, result_posted, done, attempts, next_at, last_error";

impl Store {
    /// The post for (run, role, place), created empty if it does not exist yet.
    pub async fn ensure_post(
        &self,
        run: RunId,
        role: &str,
        place_key: &str,
        place: &str,
    ) -> Result<ChatPost, StoreError> {
        // Nearly always there already: look before taking the writer.
        let existing: Option<PostRow> = read_conn!(self, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM chat_posts WHERE run_id = $1 AND role = $2 AND place_key = $3"
            )))
            .bind(run.0)
            .bind(role)
            .bind(place_key)
            .fetch_optional(&mut *c)
            .await
        })?;
        if let Some(row) = existing {
            return Ok(from_row(row));
        }
        write_conn!(self, |c| {
            sqlx::query(
                "INSERT INTO chat_posts (run_id, role, place_key, place) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_id, role, place_key) DO NOTHING",
            )
            .bind(run.0)
            .bind(role)
            .bind(place_key)
            .bind(place)
            .execute(&mut *c)
            .await?;
            let row: PostRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM chat_posts WHERE run_id = $1 AND role = $2 AND place_key = $3"
            )))
            .bind(run.0)
            .bind(role)
            .bind(place_key)
            .fetch_one(&mut *c)
            .await?;
            Ok(from_row(row))
        })
    }

    /// Records what a post shows after a successful post or edit.
    pub async fn save_post(&self, p: &ChatPost) -> Result<(), StoreError> {
        write_conn!(self, |c| {
            sqlx::query(
                "UPDATE chat_posts SET message_id = $4, shown = $5, result_posted = $6, done = $7, \
                 attempts = $8, next_at = $9, last_error = $10 \
                 WHERE run_id = $1 AND role = $2 AND place_key = $3",
            )
            .bind(p.run_id.0)
            .bind(&p.role)
            .bind(&p.place_key)
            .bind(&p.message_id)
            .bind(&p.shown)
            .bind(p.result_posted)
            .bind(p.done)
            .bind(p.attempts)
            .bind(p.next_at)
            .bind(&p.last_error)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// All posts of a run.
    pub async fn posts(&self, run: RunId) -> Result<Vec<ChatPost>, StoreError> {
        read_conn!(self, |c| {
            let rows: Vec<PostRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM chat_posts WHERE run_id = $1 ORDER BY role, place_key"
            )))
            .bind(run.0)
            .fetch_all(&mut *c)
            .await?;
            Ok(rows.into_iter().map(from_row).collect())
        })
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
        let moving = [
            RunState::AwaitingApproval,
            RunState::Queued,
            RunState::Running,
        ];
        read_conn!(self, |c| {
            let rows: Vec<(i64,)> = sqlx::query_as(
                "SELECT run_id FROM chat_posts WHERE done = FALSE AND next_at <= $1 \
                 UNION SELECT id FROM runs WHERE state IN ($2, $3, $4) \
                 UNION SELECT id FROM runs WHERE finished_at >= $5 \
                 ORDER BY 1 LIMIT $6",
            )
            .bind(now)
            .bind(moving[0].as_str())
            .bind(moving[1].as_str())
            .bind(moving[2].as_str())
            .bind(finished_since)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
            Ok(rows.into_iter().map(|(id,)| RunId(id)).collect())
        })
    }
}
