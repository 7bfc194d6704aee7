//! `/audit`: the audit log, newest first and paged by `seq`, under the chain's
//! verification status. Admins see every entry; others see the entries of runs
//! they may see and their own actions.

use super::auth::Viewer;
use super::layout::{page, plural, time, time_short};
use super::{WebError, WebState};
use crate::store::{AuditEntry, ChainCheck};
use crate::types::RunId;
use axum::extract::{Query, State};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::HashMap;

/// Entries per page.
const PAGE: usize = 100;
/// How long a verification of the whole chain is reused.
const VERIFY_EVERY_MS: i64 = 30_000;

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    before: Option<i64>,
    /// `1` verifies the chain now instead of reusing a recent check.
    verify: Option<u8>,
}

/// `GET /audit`.
pub(super) async fn audit_page(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(q): Query<AuditQuery>,
) -> Result<Markup, WebError> {
    let max_age = if q.verify == Some(1) {
        0
    } else {
        VERIFY_EVERY_MS
    };
    let (checked_at, check) = state.chain_status(max_age).await?;
    let (entries, older) = visible_entries(&state, &viewer, q.before).await?;
    let me = format!("person:{}", viewer.person);
    let now = state.engine().now();
    let body = html! {
        h1 { "Audit log" }
        @match &check {
            ChainCheck::Ok { entries } => p class="notice" id="chain-status" {
                "Chain verified: " (if *entries == 1 { "the one entry holds".to_string() } else { format!("all {} hold", plural(*entries, "entry", "entries")) })
                " (checked " (time(checked_at)) "). "
                a href="/audit?verify=1" { "Verify again" }
            },
            ChainCheck::Broken { seq, reason } => p class="error" id="chain-status" {
                "Chain BROKEN at entry " (seq) ": " (reason) " (checked " (time(checked_at)) "). "
                a href="/audit?verify=1" { "Verify again" }
            },
        }
        @if !viewer.admin { p class="muted" { "Entries of runs you may see, and your own actions." } }
        div class="scroll" {
            table class="audit cards" {
                thead { tr { th { "#" } th { "When" } th { "Who" } th { "What" } th { "Run" } th { "Details" } th { "Hash" } } }
                tbody {
                    @for e in &entries {
                        tr class="row" {
                            td data-label="#" { (e.seq) }
                            td data-label="When" { (time_short(e.at, now)) }
                            td data-label="Who" { @if e.actor == me { strong { (e.actor) } } @else { (e.actor) } }
                            td data-label="What" { code { (e.action) } }
                            td data-label="Run" { @if let Some(r) = e.run_id { a href=(format!("/runs/{r}")) { "#" (r) } } }
                            td data-label="Details" class="wrap" { code { (short(&e.details.to_string(), 160)) } }
                            td data-label="Hash" { code class="hash" title=(e.hash) { (short(&e.hash, 12)) } }
                        }
                    }
                }
            }
        }
        div class="pager" {
            @if q.before.is_some() { a href="/audit" { "« Newest" } }
            @if let Some(s) = older { a href=(format!("/audit?before={s}")) { "Older »" } }
        }
    };
    Ok(page("Audit log", Some(&viewer), None, body))
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Up to [`PAGE`] entries before `before` that the viewer may see, and the cursor
/// of the next page if there may be one. For people who are not admins this reads
/// a few batches and keeps what their runs allow.
async fn visible_entries(
    state: &WebState,
    viewer: &Viewer,
    before: Option<i64>,
) -> Result<(Vec<AuditEntry>, Option<i64>), WebError> {
    let engine = state.engine();
    let store = engine.store();
    if viewer.admin {
        let entries = store.audit_page(before, PAGE as i64).await?;
        let next = (entries.len() >= PAGE)
            .then(|| entries.last().map(|e| e.seq))
            .flatten();
        return Ok((entries, next));
    }
    let actor = viewer.actor();
    let me = format!("person:{}", viewer.person);
    let mut seen: HashMap<RunId, bool> = HashMap::new();
    let mut out = Vec::new();
    let mut cursor = before;
    for _ in 0..5 {
        let batch = store.audit_page(cursor, 200).await?;
        let full = batch.len() >= 200;
        let Some(last) = batch.last().map(|e| e.seq) else {
            return Ok((out, None));
        };
        for e in batch {
            let seq = e.seq;
            let ok = match e.run_id {
                Some(id) => match seen.get(&id) {
                    Some(v) => *v,
                    None => {
                        let v = store
                            .get_run(id)
                            .await
                            .is_ok_and(|r| engine.may_view(&actor, &r));
                        seen.insert(id, v);
                        v
                    }
                },
                None => e.actor.starts_with(&me),
            };
            if ok {
                out.push(e);
                if out.len() >= PAGE {
                    return Ok((out, Some(seq)));
                }
            }
        }
        if !full {
            return Ok((out, None));
        }
        cursor = Some(last);
    }
    Ok((out, cursor))
}
