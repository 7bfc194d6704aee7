//! The web UI: every page renders for a signed-in person; sign-in links from chat
//! work once, only for configured people, and are never stored raw; a person sees
//! only the runs `Engine::may_view` allows (others look exactly like missing runs);
//! forms without the session's CSRF token are refused; runs started and approved
//! from the web go through the engine's rules; dev login is loopback-only; and
//! `/metrics` is Prometheus text whose counters move when runs happen.
//!
//! - `pages.rs`: every page renders; a run's page;
//! - `access.rs`: who sees which runs, sign-in links, CSRF, starting and
//!   approving runs, dev login;
//! - `ops.rs`: `/readyz` and `/metrics`.

use crate::both_backends;
use crate::helpers::*;
use crate::web_support::*;
use execgov::engine::ReplyKind;
use execgov::types::{RunId, RunState};
use std::collections::BTreeMap;

mod access;
mod ops;
mod pages;

/// Every column of `tables`, as one string.
async fn table_dump(app: &WebApp, tables: &[&str]) -> String {
    let url = app.env.database_url.clone();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut out = String::new();
    for t in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {t}")))
            .fetch_all(&pool)
            .await
            .unwrap();
        use sqlx::{Column, Row};
        for r in rows {
            for (i, col) in r.columns().iter().enumerate() {
                let v: Option<String> = r.try_get(i).ok().flatten();
                let n: Option<i64> = r.try_get(i).ok().flatten();
                out.push_str(&format!("{}={:?}/{:?} ", col.name(), v, n));
            }
            out.push('\n');
        }
    }
    out
}

async fn actions_all(app: &WebApp) -> Vec<String> {
    app.engine
        .store()
        .audit_entries(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

impl Client {
    /// A pre-sign-in form token (from `/login`), for posting a sign-in by hand.
    pub async fn input_or_fresh_form_token(&mut self) -> String {
        self.get("/login").await;
        self.cookies
            .get("execgov_form")
            .cloned()
            .expect("the login page sets the form cookie")
    }
}
