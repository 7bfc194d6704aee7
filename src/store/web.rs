//! What the web UI and JSON API keep and ask: one-time sign-in links, browser
//! sessions and API tokens (each stored only as the SHA-256 of the token), and the
//! run and audit listings behind `/runs` and `/audit`, written so that every page
//! is an index range scan, newest first, however many runs there are.
//!
//! Callers hash tokens before they get here (`crate::web::auth::token_hash`): the
//! functions below never see a raw token.

use serde::Serialize;

use super::ops::{Durability, Write};
use super::sql::{Row, Tx, Value, args};
use super::{Run, Store, StoreError};
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
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub person: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiToken {
    fn from_row(r: &Row) -> Result<ApiToken, StoreError> {
        Ok(ApiToken {
            id: r.get("id")?,
            person: r.get("person")?,
            name: r.get("name")?,
            created_at: r.get("created_at")?,
            last_used_at: r.get("last_used_at")?,
            revoked_at: r.get("revoked_at")?,
        })
    }
}

/// Appends `clause` with its one `?` numbered as the next `$n`, and its value.
fn push(args: &mut Vec<Value>, sql: &mut String, clause: &str, a: impl Into<Value>) {
    args.push(a.into());
    sql.push_str(&clause.replace('?', &format!("${}", args.len())));
}

pub(super) async fn create_login_token(
    tx: &mut Tx<'_>,
    hash: &str,
    person: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM web_login_tokens WHERE expires_at < $1",
        args![now],
    )
    .await?;
    tx.execute(
        "INSERT INTO web_login_tokens (token_hash, person, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
        args![hash, person, now, expires_at],
    )
    .await?;
    Ok(())
}

pub(super) async fn consume_login_token(
    tx: &mut Tx<'_>,
    hash: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    match tx
        .fetch_optional(
            "UPDATE web_login_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING person",
            args![hash, now],
        )
        .await?
    {
        Some(row) => Ok(Some(row.first()?)),
        None => Ok(None),
    }
}

pub(super) async fn create_session(
    tx: &mut Tx<'_>,
    hash: &str,
    person: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM web_sessions WHERE expires_at < $1", args![now])
        .await?;
    tx.execute(
        "INSERT INTO web_sessions (token_hash, person, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
        args![hash, person, now, expires_at],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_session(tx: &mut Tx<'_>, hash: &str) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM web_sessions WHERE token_hash = $1",
        args![hash],
    )
    .await?;
    Ok(())
}

pub(super) async fn create_api_token(
    tx: &mut Tx<'_>,
    hash: &str,
    person: &str,
    name: &str,
    now: i64,
) -> Result<i64, StoreError> {
    tx.fetch_one(
        "INSERT INTO api_tokens (token_hash, person, name, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
        args![hash, person, name, now],
    )
    .await?
    .first()
}

pub(super) async fn revoke_api_token(
    tx: &mut Tx<'_>,
    id: i64,
    person: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE api_tokens SET revoked_at = $3 \
             WHERE id = $1 AND person = $2 AND revoked_at IS NULL",
            args![id, person, now],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn touch_api_token(
    tx: &mut Tx<'_>,
    hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1",
        args![hash, now],
    )
    .await?;
    Ok(())
}

impl Store {
    /// Answers when the database does (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.fetch_one("SELECT 1", args![]).await?;
        Ok(())
    }

    /// Runs matching `q`, newest first.
    pub async fn query_runs(&self, q: &RunQuery) -> Result<Vec<Run>, StoreError> {
        let mut sql = String::from("SELECT * FROM runs WHERE TRUE");
        let mut args: Vec<Value> = Vec::new();
        if let Some(s) = &q.script {
            push(&mut args, &mut sql, " AND script = ?", s.as_str());
        }
        if let Some(p) = &q.person {
            push(&mut args, &mut sql, " AND requester_person = ?", p.as_str());
        }
        if let Some(s) = q.state {
            push(&mut args, &mut sql, " AND state = ?", s.as_str());
        }
        if let Some(from) = q.from_ms {
            push(&mut args, &mut sql, " AND created_at >= ?", from);
            push(
                &mut args,
                &mut sql,
                " AND id >= COALESCE((SELECT id FROM runs WHERE created_at >= ? \
                 ORDER BY created_at, id LIMIT 1), 9223372036854775807)",
                from - CREATED_SLACK_MS,
            );
        }
        if let Some(to) = q.to_ms {
            push(&mut args, &mut sql, " AND created_at < ?", to);
            push(
                &mut args,
                &mut sql,
                " AND id <= COALESCE((SELECT id FROM runs WHERE created_at < ? \
                 ORDER BY created_at DESC, id DESC LIMIT 1), 0)",
                to + CREATED_SLACK_MS,
            );
        }
        if let Some(b) = q.before {
            push(&mut args, &mut sql, " AND id < ?", b.0);
        }
        if let Visibility::Person { person, scripts } = &q.visible {
            push(
                &mut args,
                &mut sql,
                " AND (requester_person = ?",
                person.as_str(),
            );
            if !scripts.is_empty() {
                sql.push_str(" OR script IN (");
                for (i, s) in scripts.iter().enumerate() {
                    let sep = if i == 0 { "?" } else { ", ?" };
                    push(&mut args, &mut sql, sep, s.as_str());
                }
                sql.push(')');
            }
            sql.push(')');
        }
        push(
            &mut args,
            &mut sql,
            " ORDER BY id DESC LIMIT ?",
            q.limit.clamp(1, 500),
        );
        let rows = self.fetch_all(&sql, args).await?;
        rows.iter().map(Run::from_row).collect()
    }

    /// How many runs wait or run now, by state (`queued`, `running`,
    /// `awaiting_approval`): each an index range count.
    pub async fn active_run_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT state, COUNT(*) AS n FROM runs \
                 WHERE state IN ('queued', 'running', 'awaiting_approval') GROUP BY state",
                args![],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.get("state")?, r.get("n")?)))
            .collect()
    }

    /// Records a one-time sign-in link for `person`, and forgets expired ones.
    pub async fn create_login_token(
        &self,
        hash: &str,
        person: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let write = Write::CreateLoginToken {
            hash: hash.to_string(),
            person: person.to_string(),
            now,
            expires_at,
        };
        self.write(write, Durability::Synced).await
    }

    /// The person a sign-in link is for, if it is unused and unexpired (without using it).
    pub async fn peek_login_token(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        match self
            .fetch_optional(
                "SELECT person FROM web_login_tokens \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
                args![hash, now],
            )
            .await?
        {
            Some(row) => Ok(Some(row.first()?)),
            None => Ok(None),
        }
    }

    /// Uses a sign-in link: one statement, so two clicks cannot both sign in.
    pub async fn consume_login_token(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let hash = hash.to_string();
        self.write(Write::ConsumeLoginToken { hash, now }, Durability::Synced)
            .await
    }

    /// Records a browser session, and forgets expired ones.
    pub async fn create_session(
        &self,
        hash: &str,
        person: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let write = Write::CreateSession {
            hash: hash.to_string(),
            person: person.to_string(),
            now,
            expires_at,
        };
        self.write(write, Durability::Synced).await
    }

    /// The person of a live session.
    pub async fn session_person(&self, hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        match self
            .fetch_optional(
                "SELECT person FROM web_sessions WHERE token_hash = $1 AND expires_at > $2",
                args![hash, now],
            )
            .await?
        {
            Some(row) => Ok(Some(row.first()?)),
            None => Ok(None),
        }
    }

    /// Ends a session (sign out).
    pub async fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        let hash = hash.to_string();
        self.write(Write::DeleteSession { hash }, Durability::Synced)
            .await
    }

    /// Records a new API token and returns its id.
    pub async fn create_api_token(
        &self,
        hash: &str,
        person: &str,
        name: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let write = Write::CreateApiToken {
            hash: hash.to_string(),
            person: person.to_string(),
            name: name.to_string(),
            now,
        };
        self.write(write, Durability::Synced).await
    }

    /// A person's API tokens, newest first, revoked ones included.
    pub async fn api_tokens(&self, person: &str) -> Result<Vec<ApiToken>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT id, person, name, created_at, last_used_at, revoked_at FROM api_tokens \
                 WHERE person = $1 ORDER BY id DESC",
                args![person],
            )
            .await?;
        rows.iter().map(ApiToken::from_row).collect()
    }

    /// Revokes one of `person`'s tokens; false when it is not theirs or already revoked.
    pub async fn revoke_api_token(
        &self,
        id: i64,
        person: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let person = person.to_string();
        self.write(
            Write::RevokeApiToken { id, person, now },
            Durability::Synced,
        )
        .await
    }

    /// The person behind a live API token, noting its use (at most once a minute,
    /// so a busy client does not write on every request).
    pub async fn api_token_person(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let Some(row) = self
            .fetch_optional(
                "SELECT person, last_used_at FROM api_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL",
                args![hash],
            )
            .await?
        else {
            return Ok(None);
        };
        let (person, last_used): (String, Option<i64>) =
            (row.get("person")?, row.get("last_used_at")?);
        if last_used.is_none_or(|t| t < now - 60_000) {
            let hash = hash.to_string();
            self.write::<()>(Write::TouchApiToken { hash, now }, Durability::Relaxed)
                .await?;
        }
        Ok(Some(person))
    }
}
