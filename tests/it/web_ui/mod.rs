//! The web UI: every page renders for a signed-in person; sign-in links from chat
//! work once, only for configured people, and are never stored raw; a person sees
//! only the runs `Engine::may_view` allows (others look exactly like missing runs);
//! forms without the session's CSRF token are refused; runs started and approved
//! from the web go through the engine's rules, an approval only through its
//! confirmation page; dev login is loopback-only; and
//! `/metrics` is Prometheus text whose counters move when runs happen.
//!
//! - `pages.rs`: every page renders; a run's page;
//! - `access.rs`: who sees which runs, sign-in links, CSRF, starting and
//!   approving runs, dev login;
//! - `decisions.rs`: Deny on its own, Approve only through the confirmation page;
//! - `run_form.rs`: labels, hints and errors of the run form in words;
//! - `requests.rs`: web and API requests audited like chat's; `web:local` in
//!   `[channels]`;
//! - `ops.rs`: `/readyz` and `/metrics`.

use crate::both_backends;
use crate::helpers::*;
use crate::web_support::*;
use execgov::engine::ReplyKind;
use execgov::types::{RunId, RunState};
use std::collections::BTreeMap;

mod access;
mod decisions;
pub mod ops;
mod pages;
mod requests;
mod run_form;

/// Every column of `tables`, as one string (read straight from the SQLite file).
async fn table_dump(app: &WebApp, tables: &[&str]) -> String {
    let url = app.env.database_url.clone();
    let path = url.trim_start_matches("sqlite://").to_string();
    let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut out = String::new();
        for t in &tables {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
            let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
            let mut rows = stmt.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                for (i, name) in names.iter().enumerate() {
                    let v: rusqlite::types::Value = r.get(i).unwrap();
                    out.push_str(&format!("{name}={v:?} "));
                }
                out.push('\n');
            }
        }
        out
    })
    .await
    .unwrap()
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
