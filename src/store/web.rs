//! What the web UI and JSON API keep and ask: one-time sign-in links, browser
//! sessions and API tokens (each stored only as the SHA-256 of the token), and the
//! run and audit listings behind `/runs` and `/audit`, written so that every page
//! is an index range scan, newest first, however many runs there are.
//!
//! Callers hash tokens before they get here (`crate::web::auth::token_hash`): the
//! functions below never see a raw token.

use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::model::{AuditEntry, Run};
use super::{Store, StoreError};
use crate::types::{RunId, RunState};

/// How far `created_at` may run out of step with `id` (a run's timestamp is taken
/// before its transaction waits for the write lock). A date filter is narrowed to
/// an id range found through the `created_at` index, widened by this much, and then
/// applied exactly; the id range is what keeps an old date range fast.
const CREATED_SLACK_MS: i64 = 3_600_000;

/// Which runs a listing shows. `limit` is clamped to 1..=500.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub script: Option<String>,
    /// Runs requested by this configured person.
    pub person: Option<String>,
    pub state: Option<RunState>,
    /// Created at or after (unix ms).
    pub from_ms: Option<i64>,
    /// Created before (unix ms).
    pub to_ms: Option<i64>,
    /// Keyset cursor: only runs with a smaller id (the last id of the page before).
    pub before: Option<RunId>,
    pub limit: i64,
    pub visible: Visibility,
}

/// Whose runs a viewer may see; the SQL form of `Engine::may_view`.
#[derive(Debug, Clone, Default)]
pub enum Visibility {
    /// Admins, and ExecGov itself.
    #[default]
    All,
    /// Runs this person requested, plus every run of these scripts (those the person
    /// may run or approve).
    Person {
        person: String,
        scripts: Vec<String>,
    },
}

/// One API token as its owner sees it in the web UI (never the token itself).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub person: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A value bound to a query built at run time.
enum Arg {
    Text(String),
    Int(i64),
}

/// Appends `clause` with its one `?` numbered as the next `$n`, and its value.
fn push(args: &mut Vec<Arg>, sql: &mut String, clause: &str, a: Arg) {
    args.push(a);
    sql.push_str(&clause.replace('?', &format!("${}", args.len())));
}

impl Store {
    /// Answers when the database does (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        read_conn!(self, |c| {
            sqlx::query_as::<_, (i32,)>("SELECT 1")
                .fetch_one(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Runs matching `q`, newest first.
    pub async fn query_runs(&self, q: &RunQuery) -> Result<Vec<Run>, StoreError> {
        let mut sql = String::from("SELECT * FROM runs WHERE TRUE");
        let mut args: Vec<Arg> = Vec::new();
        if let Some(s) = &q.script {
            push(&mut args, &mut sql, " AND script = ?", Arg::Text(s.clone()));
        }
        if let Some(p) = &q.person {
            push(
                &mut args,
                &mut sql,
                " AND requester_person = ?",
                Arg::Text(p.clone()),
            );
        }
        if let Some(s) = q.state {
            push(
                &mut args,
                &mut sql,
                " AND state = ?",
                Arg::Text(s.as_str().into()),
            );
        }
        if let Some(from) = q.from_ms {
            push(&mut args, &mut sql, " AND created_at >= ?", Arg::Int(from));
            push(
                &mut args,
                &mut sql,
                " AND id >= COALESCE((SELECT id FROM runs WHERE created_at >= ? \
                 ORDER BY created_at, id LIMIT 1), 9223372036854775807)",
                Arg::Int(from - CREATED_SLACK_MS),
            );
        }
        if let Some(to) = q.to_ms {
            push(&mut args, &mut sql, " AND created_at < ?", Arg::Int(to));
            push(
                &mut args,
                &mut sql,
                " AND id <= COALESCE((SELECT id FROM runs WHERE created_at < ? \
                 ORDER BY created_at DESC, id DESC LIMIT 1), 0)",
                Arg::Int(to + CREATED_SLACK_MS),
            );
        }
        if let Some(b) = q.before {
            push(&mut args, &mut sql, " AND id < ?", Arg::Int(b.0));
        }
        if let Visibility::Person { person, scripts } = &q.visible {
            push(
                &mut args,
                &mut sql,
                " AND (requester_person = ?",
                Arg::Text(person.clone()),
            );
            if !scripts.is_empty() {
                sql.push_str(" OR script IN (");
                for (i, s) in scripts.iter().enumerate() {
                    let sep = if i == 0 { "?" } else { ", ?" };
                    push(&mut args, &mut sql, sep, Arg::Text(s.clone()));
                }
                sql.push(')');
            }
            sql.push(')');
        }
        push(
            &mut args,
            &mut sql,
            " ORDER BY id DESC LIMIT ?",
            Arg::Int(q.limit.clamp(1, 500)),
        );
        read_conn!(self, |c| {
            let mut query = sqlx::query_as(AssertSqlSafe(sql.clone()));
            for a in &args {
                query = match a {
                    Arg::Text(s) => query.bind(s.clone()),
                    Arg::Int(n) => query.bind(*n),
                };
            }
            let runs: Vec<Run> = query.fetch_all(&mut *c).await?;
            Ok(runs)
        })
    }

    /// Audit entries newest first, before `before_seq` (None: from the newest).
    pub async fn audit_page(
        &self,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let before = before_seq.unwrap_or(i64::MAX);
        read_conn!(self, |c| {
            let entries =
                sqlx::query_as("SELECT * FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2")
                    .bind(before)
                    .bind(limit.clamp(1, 1000))
                    .fetch_all(&mut *c)
                    .await?;
            Ok(entries)
        })
    }

    /// How many runs wait or run now, by state (`queued`, `running`,
    /// `awaiting_approval`): each an index range count.
    pub async fn active_run_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        read_conn!(self, |c| {
            let rows = sqlx::query_as(
                "SELECT state, COUNT(*) FROM runs \
                 WHERE state IN ('queued', 'running', 'awaiting_approval') GROUP BY state",
            )
            .fetch_all(&mut *c)
            .await?;
            Ok(rows)
        })
    }

    /// Records a one-time sign-in link for `person`, and forgets expired ones.
    pub async fn create_login_token(
        &self,
        hash: &str,
        person: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        write_conn!(self, |c| {
            sqlx::query("DELETE FROM web_login_tokens WHERE expires_at < $1")
                .bind(now)
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO web_login_tokens (token_hash, person, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(hash)
            .bind(person)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// The person a sign-in link is for, if it is unused and unexpired (without using it).
    pub async fn peek_login_token(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        read_conn!(self, |c| {
            let row: Option<(String,)> = sqlx::query_as(
                "SELECT person FROM web_login_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&mut *c)
            .await?;
            Ok(row.map(|r| r.0))
        })
    }

    /// Uses a sign-in link: one statement, so two clicks cannot both sign in.
    pub async fn consume_login_token(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        write_conn!(self, |c| {
            let row: Option<(String,)> = sqlx::query_as(
                "UPDATE web_login_tokens SET used_at = $2 \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING person",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&mut *c)
            .await?;
            Ok(row.map(|r| r.0))
        })
    }

    /// Records a browser session, and forgets expired ones.
    pub async fn create_session(
        &self,
        hash: &str,
        person: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        write_conn!(self, |c| {
            sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
                .bind(now)
                .execute(&mut *c)
                .await?;
            sqlx::query("INSERT INTO web_sessions (token_hash, person, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(hash)
                .bind(person)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// The person of a live session.
    pub async fn session_person(&self, hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        read_conn!(self, |c| {
            let row: Option<(String,)> = sqlx::query_as(
                "SELECT person FROM web_sessions WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&mut *c)
            .await?;
            Ok(row.map(|r| r.0))
        })
    }

    /// Ends a session (sign out).
    pub async fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        write_conn!(self, |c| {
            sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
                .bind(hash)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Records a new API token and returns its id.
    pub async fn create_api_token(
        &self,
        hash: &str,
        person: &str,
        name: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        write_conn!(self, |c| {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO api_tokens (token_hash, person, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(hash)
            .bind(person)
            .bind(name)
            .bind(now)
            .fetch_one(&mut *c)
            .await?;
            Ok(id)
        })
    }

    /// A person's API tokens, newest first, revoked ones included.
    pub async fn api_tokens(&self, person: &str) -> Result<Vec<ApiToken>, StoreError> {
        read_conn!(self, |c| {
            let rows = sqlx::query_as(
                "SELECT id, person, name, created_at, last_used_at, revoked_at FROM api_tokens \
                 WHERE person = $1 ORDER BY id DESC",
            )
            .bind(person)
            .fetch_all(&mut *c)
            .await?;
            Ok(rows)
        })
    }

    /// Revokes one of `person`'s tokens; false when it is not theirs or already revoked.
    pub async fn revoke_api_token(
        &self,
        id: i64,
        person: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        write_conn!(self, |c| {
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND person = $2 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(person)
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The person behind a live API token, noting its use (at most once a minute,
    /// so a busy client does not write on every request).
    pub async fn api_token_person(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        write_conn!(self, |c| {
            let row: Option<(String, Option<i64>)> = sqlx::query_as(
                "SELECT person, last_used_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(hash)
            .fetch_optional(&mut *c)
            .await?;
            let Some((person, last_used)) = row else {
                return Ok(None);
            };
            if last_used.is_none_or(|t| t < now - 60_000) {
                sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1")
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(Some(person))
        })
    }
}
