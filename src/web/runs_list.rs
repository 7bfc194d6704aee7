//! `/runs`: the runs a person may see, newest first, filtered by script, person,
//! state and date range, and paged by id (`before=`), so every page is one index
//! range scan however many runs there are.

use super::auth::Viewer;
use super::layout::{page, state_badge, time_short, urlencode};
use super::{WebError, WebState, view};
use crate::clock::format_duration_ms;
use crate::engine::Engine;
use crate::store::Run;
use crate::store::web::RunQuery;
use crate::types::{RunId, RunState};
use axum::extract::{Query, State};
use maud::{Markup, html};
use serde::Deserialize;

/// Runs per page.
pub(super) const PAGE_SIZE: i64 = 50;

/// The filters as the form and the API send them; empty values mean "any".
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct ListParams {
    pub script: Option<String>,
    pub person: Option<String>,
    pub state: Option<String>,
    /// First day, `YYYY-MM-DD` (UTC), inclusive.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive.
    pub to: Option<String>,
    /// Keyset cursor: runs with a smaller id.
    pub before: Option<String>,
    pub limit: Option<i64>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn day_start_ms(day: &str, what: &str) -> Result<i64, WebError> {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(|d| {
            d.and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp_millis()
        })
        .map_err(|_| {
            WebError::BadRequest(format!(
                "`{what}` must be a date written YYYY-MM-DD, got `{day}`"
            ))
        })
}

impl ListParams {
    /// The store query these filters mean for `viewer`.
    pub(super) fn to_query(
        &self,
        engine: &Engine,
        viewer: &crate::types::Actor,
    ) -> Result<RunQuery, WebError> {
        let state = match given(&self.state) {
            Some(s) => Some(RunState::parse(s).ok_or_else(|| {
                WebError::BadRequest(format!(
                    "unknown state `{s}`; one of {}",
                    RunState::ALL.map(|s| s.as_str()).join(", ")
                ))
            })?),
            None => None,
        };
        let before = match given(&self.before) {
            Some(b) => Some(RunId::parse(b).map_err(WebError::BadRequest)?),
            None => None,
        };
        let from_ms = given(&self.from)
            .map(|d| day_start_ms(d, "from"))
            .transpose()?;
        let to_ms = given(&self.to)
            .map(|d| day_start_ms(d, "to").map(|ms| ms + 86_400_000))
            .transpose()?;
        Ok(RunQuery {
            script: given(&self.script).map(str::to_string),
            person: given(&self.person).map(str::to_string),
            state,
            from_ms,
            to_ms,
            before,
            limit: self.limit.unwrap_or(PAGE_SIZE).clamp(1, 200),
            visible: view::visibility(engine, viewer),
        })
    }

    /// This query string with `before` replaced (None: the newest page).
    fn with_before(&self, before: Option<RunId>) -> String {
        let mut parts: Vec<String> = [
            ("script", &self.script),
            ("person", &self.person),
            ("state", &self.state),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter_map(|(k, v)| given(v).map(|v| format!("{k}={}", urlencode(v))))
        .collect();
        if let Some(b) = before {
            parts.push(format!("before={b}"));
        }
        if parts.is_empty() {
            "/runs".to_string()
        } else {
            format!("/runs?{}", parts.join("&"))
        }
    }
}

/// `GET /runs`.
pub(super) async fn runs_page(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(params): Query<ListParams>,
) -> Result<Markup, WebError> {
    let engine = state.engine();
    let query = params.to_query(engine, &viewer.actor())?;
    let actor = viewer.actor();
    let fetched = engine.store().query_runs(&query).await?;
    let next = (fetched.len() as i64 >= query.limit)
        .then(|| fetched.last().map(|r| r.id))
        .flatten();
    // The query already keeps to what the viewer may see; this is the engine's word on it.
    let runs: Vec<Run> = fetched
        .into_iter()
        .filter(|r| engine.may_view(&actor, r))
        .collect();
    let now = engine.now();
    let body = html! {
        h1 { "Runs" }
        @if !viewer.admin { p class="muted" { "Runs you asked for, and runs of scripts you may run or approve." } }
        (filters(engine, &params))
        div class="scroll" {
            table class="runs cards" {
                thead { tr { th { "Run" } th { "Script" } th { "State" } th { "Requested by" } th { "Where" } th { "Requested" } th { "Duration" } } }
                tbody {
                    @for r in &runs {
                        tr class="row" {
                            td data-label="Run" { a href=(format!("/runs/{}", r.id)) { "#" (r.id) } }
                            td data-label="Script" { a href=(format!("/scripts/{}", urlencode(&r.script))) { (r.script) } }
                            td data-label="State" { (state_badge(r.state)) }
                            td data-label="Requested by" { (r.requester_person.as_ref().map_or(r.requester.as_str(), |p| p.as_str())) }
                            td data-label="Where" { (crate::engine::render::place_text(r)) }
                            td data-label="Requested" { (time_short(r.created_at, now)) }
                            td data-label="Duration" { @if let (Some(s), Some(f)) = (r.started_at, r.finished_at) { (format_duration_ms(f - s)) } }
                        }
                    }
                }
            }
        }
        @if runs.is_empty() { p class="muted" { "No runs match." } }
        div class="pager" {
            @if query.before.is_some() { a href=(params.with_before(None)) { "« Newest" } }
            @if let Some(n) = next { a id="older" href=(params.with_before(Some(n))) { "Older »" } }
        }
    };
    Ok(page("Runs", Some(&viewer), None, body))
}

fn filters(engine: &Engine, p: &ListParams) -> Markup {
    let sel = |v: &Option<String>, x: &str| given(v) == Some(x);
    html! {
        form class="filters" method="get" action="/runs" {
            label { "Script"
                select name="script" {
                    option value="" { "any" }
                    @for m in engine.catalog().iter() { option value=(m.name) selected[sel(&p.script, m.name.as_str())] { (m.name) } }
                }
            }
            label { "Person"
                select name="person" {
                    option value="" { "anyone" }
                    @for person in engine.config().people.keys() { option value=(person) selected[sel(&p.person, person.as_str())] { (person) } }
                }
            }
            label { "State"
                select name="state" {
                    option value="" { "any" }
                    @for s in RunState::ALL { option value=(s.as_str()) selected[sel(&p.state, s.as_str())] { (s.as_str().replace('_', " ")) } }
                }
            }
            label { "From" input type="date" name="from" value=(given(&p.from).unwrap_or("")); }
            label { "To" input type="date" name="to" value=(given(&p.to).unwrap_or("")); }
            button type="submit" { "Filter" }
            a href="/runs" { "Clear" }
        }
    }
}
