//! `/scripts`: the catalogue — parameters, risk, who may run, who approves,
//! schedules with their next firings, recent runs — with the form of
//! `run_form.rs` that asks for a run through the engine as chat does.

use super::auth::Viewer;
use super::layout::{page, plural, state_badge, time_short, urlencode};
use super::run_form::{FormProblem, run_form};
use super::{WebError, WebState, view};
use crate::engine::Engine;
use crate::manifest::{Manifest, Param, Risk};
use crate::policy::{self, Access};
use crate::store::web::RunQuery;
use axum::extract::{Path, State};
use maud::{Markup, html};

/// `GET /scripts`.
pub(super) async fn scripts_page(State(state): State<WebState>, viewer: Viewer) -> Markup {
    let engine = state.engine();
    let actor = viewer.actor();
    let catalog = engine.catalog();
    let body = html! {
        h1 { "Scripts" }
        @if catalog.is_empty() { p class="muted" { "No scripts are registered." } }
        div class="scroll" {
            table class="scripts cards" {
                thead { tr { th { "Script" } th { "Description" } th { "Risk" } th { "Who may run" } th { "Approvers" } th { "Next scheduled" } th { "You" } } }
                tbody {
                    @for m in catalog.iter() {
                        tr class="row" {
                            td data-label="Script" { a href=(format!("/scripts/{}", urlencode(m.name.as_str()))) { (m.name) } }
                            td data-label="Description" { (m.description) }
                            td data-label="Risk" { (risk_badge(m.risk)) }
                            td data-label="Who may run" class="wrap" { (policy::principals_text(&m.access.run)) }
                            td data-label="Approvers" class="wrap" { (approvers_text(m)) }
                            td data-label="Next scheduled" { (m.schedules.iter().filter_map(|s| view::next_fires(s, 1).pop()).min().unwrap_or_default()) }
                            td data-label="You" { @match view::may_run(engine, &actor, m) {
                                Access::Allowed => "may run",
                                Access::Refused(_) => span class="muted" { "not from the web" },
                            } }
                        }
                    }
                }
            }
        }
    };
    page("Scripts", Some(&viewer), None, body)
}

fn risk_badge(r: Risk) -> Markup {
    html! { span class=(if r.needs_approval() { "state failed" } else { "state succeeded" }) { (r.as_str()) } }
}

fn approvers_text(m: &Manifest) -> String {
    match &m.approval {
        Some(a) if m.risk.needs_approval() => format!(
            "{} ({} needed)",
            policy::principals_text(&a.approvers),
            plural(a.quorum.max(1), "approval", "approvals")
        ),
        _ => "none needed".to_string(),
    }
}

/// `GET /scripts/{name}`.
pub(super) async fn script_page(
    State(state): State<WebState>,
    Path(name): Path<String>,
    viewer: Viewer,
) -> Result<Markup, WebError> {
    let engine = state.engine();
    let m = engine
        .manifest(&name)
        .ok_or_else(|| WebError::NotFound(format!("no script `{name}`")))?;
    render_script(engine, &viewer, &m, None, &[]).await
}

/// A script's page; `problem` and `entered` re-show a refused form.
pub(super) async fn render_script(
    engine: &Engine,
    viewer: &Viewer,
    m: &Manifest,
    problem: Option<&FormProblem>,
    entered: &[(String, String)],
) -> Result<Markup, WebError> {
    let actor = viewer.actor();
    let query = RunQuery {
        script: Some(m.name.to_string()),
        limit: 20,
        visible: view::visibility(engine, &actor),
        ..RunQuery::default()
    };
    let recent: Vec<_> = engine
        .store()
        .query_runs(&query)
        .await?
        .into_iter()
        .filter(|r| engine.may_view(&actor, r))
        .collect();
    let access = view::may_run(engine, &actor, m);
    // Break-glass is offered to whoever may use it, on scripts that can need approval.
    let glass = crate::policy::may_break_glass(engine.config(), &actor).is_ok()
        && (m.risk.needs_approval()
            || m.rules
                .iter()
                .any(|r| r.risk.is_some_and(|r| r.needs_approval())));
    let now = engine.now();
    let body = html! {
        header class="run" { h1 { "Script " code { (m.name) } } (risk_badge(m.risk)) }
        p { (m.description) }
        dl {
            dt { "Timeout" } dd { (humantime::format_duration(m.timeout)) }
            dt { "At most at once" } dd { (plural(m.max_concurrent as i64, "run", "runs")) }
            dt { "Who may run" } dd { (policy::principals_text(&m.access.run)) }
            dt { "From where" } dd { @if m.access.channels.is_empty() { "anywhere" } @else { (m.access.channels.join(", ")) } }
            dt { "Approval" } dd {
                @match &m.approval {
                    Some(a) if m.risk.needs_approval() => {
                        (plural(a.quorum.max(1), "approval", "approvals")) " from " (policy::principals_text(&a.approvers))
                        ", expires after " (humantime::format_duration(a.expires))
                        @if let Some(c) = &a.channel { ", asked in " code { (c) } }
                        @if a.self_approval { ", the requester may approve" } @else { ", never the requester" }
                    }
                    _ => "none needed",
                }
            }
        }
        h2 { "Parameters" }
        @if m.params.is_empty() { p class="muted" { "None." } } @else {
            div class="scroll" { table class="cards" {
                thead { tr { th { "Name" } th { "Type" } th { "Accepts" } th { "Description" } } }
                tbody { @for p in &m.params { tr {
                    td data-label="Name" { code { (p.name) } } td data-label="Type" { (p.kind.type_name()) }
                    td data-label="Accepts" class="wrap" { (accepts(p)) } td data-label="Description" { (p.description) }
                } } }
            } }
        }
        @if !m.schedules.is_empty() {
            h2 { "Schedules" }
            div class="scroll" { table class="cards" {
                thead { tr { th { "Name" } th { "Cron" } th { "Time zone" } th { "Arguments" } th { "Posts to" } th { "Next firings" } } }
                tbody { @for s in &m.schedules { tr {
                    td data-label="Name" { (s.name) } td data-label="Cron" { code { (s.cron) } } td data-label="Time zone" { (s.timezone.name()) }
                    td data-label="Arguments" class="wrap" { code { (view::args_text(&s.args)) } }
                    td data-label="Posts to" { (s.post_to.join(", ")) }
                    td data-label="Next firings" { @for t in view::next_fires(s, 3) { (t) br; } }
                } } }
            } }
        }
        h2 { "Run it" }
        @match &access {
            Access::Refused(why) => p class="muted" { "You may not run this from the web: " (why) },
            Access::Allowed => (run_form(viewer, m, problem, entered, glass)),
        }
        h2 { "Recent runs" }
        @if recent.is_empty() { p class="muted" { "None you may see." } }
        ul { @for r in &recent { li { a href=(format!("/runs/{}", r.id)) { "#" (r.id) } " " (state_badge(r.state)) " " (time_short(r.created_at, now)) " by " (r.requester_person.as_ref().map_or(r.requester.as_str(), |p| p.as_str())) } } }
    };
    Ok(page(
        &format!("Script {}", m.name),
        Some(viewer),
        None,
        body,
    ))
}

/// What a parameter accepts, without its name.
fn accepts(p: &Param) -> String {
    let d = p.describe();
    let inner = d.strip_prefix(&format!("{} (", p.name)).unwrap_or(&d);
    inner
        .split_once("):")
        .map(|(a, _)| a)
        .unwrap_or(inner.trim_end_matches(')'))
        .to_string()
}
