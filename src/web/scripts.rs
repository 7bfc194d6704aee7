//! `/scripts`: the catalogue — parameters, risk, who may run, who approves,
//! schedules with their next firings, recent runs — and the form, generated from
//! the manifest's parameters, that asks for a run through the engine as chat does.

use super::auth::Viewer;
use super::layout::{page, redirect_with_notice, state_badge, time, urlencode};
use super::{WebError, WebState, view};
use crate::engine::Engine;
use crate::manifest::{Manifest, Param, ParamKind, Risk};
use crate::policy::{self, Access};
use crate::store::web::RunQuery;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
            table class="scripts" {
                thead { tr { th { "Script" } th { "Description" } th { "Risk" } th { "Who may run" } th { "Approvers" } th { "Next scheduled" } th { "You" } } }
                tbody {
                    @for m in catalog.iter() {
                        tr class="row" {
                            td { a href=(format!("/scripts/{}", urlencode(m.name.as_str()))) { (m.name) } }
                            td { (m.description) }
                            td { (risk_badge(m.risk)) }
                            td { (policy::principals_text(&m.access.run)) }
                            td { (approvers_text(m)) }
                            td { (m.schedules.iter().filter_map(|s| view::next_fires(s, 1).pop()).min().unwrap_or_default()) }
                            td { @match view::may_run(engine, &actor, m) {
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
    html! { span class=(if r == Risk::High { "state failed" } else { "state succeeded" }) { (r.as_str()) } }
}

fn approvers_text(m: &Manifest) -> String {
    match &m.approval {
        Some(a) if m.risk == Risk::High => format!(
            "{} ({} needed)",
            policy::principals_text(&a.approvers),
            a.quorum.max(1)
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

async fn render_script(
    engine: &Engine,
    viewer: &Viewer,
    m: &Manifest,
    error: Option<&str>,
    entered: &[(String, String)],
) -> Result<Markup, WebError> {
    let actor = viewer.actor();
    let query = RunQuery {
        script: Some(m.name.to_string()),
        limit: 20,
        visible: view::visibility(engine, &viewer.person, viewer.admin),
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
    let body = html! {
        header class="run" { h1 { "Script " code { (m.name) } } (risk_badge(m.risk)) }
        p { (m.description) }
        dl {
            dt { "Timeout" } dd { (humantime::format_duration(m.timeout)) }
            dt { "At most at once" } dd { (m.max_concurrent) }
            dt { "Who may run" } dd { (policy::principals_text(&m.access.run)) }
            dt { "From where" } dd { @if m.access.channels.is_empty() { "anywhere" } @else { (m.access.channels.join(", ")) } }
            dt { "Approval" } dd {
                @match &m.approval {
                    Some(a) if m.risk == Risk::High => {
                        (a.quorum.max(1)) " of " (policy::principals_text(&a.approvers))
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
            div class="scroll" { table {
                thead { tr { th { "Name" } th { "Type" } th { "Accepts" } th { "Description" } } }
                tbody { @for p in &m.params { tr { td { code { (p.name) } } td { (p.kind.type_name()) } td { (accepts(p)) } td { (p.description) } } } }
            } }
        }
        @if !m.schedules.is_empty() {
            h2 { "Schedules" }
            div class="scroll" { table {
                thead { tr { th { "Name" } th { "Cron" } th { "Time zone" } th { "Arguments" } th { "Posts to" } th { "Next firings" } } }
                tbody { @for s in &m.schedules { tr {
                    td { (s.name) } td { code { (s.cron) } } td { (s.timezone.name()) }
                    td { code { (view::args_text(&s.args)) } }
                    td { (s.post_to.join(", ")) }
                    td { @for t in view::next_fires(s, 3) { (t) br; } }
                } } }
            } }
        }
        h2 { "Run it" }
        @match &access {
            Access::Refused(why) => p class="muted" { "You may not run this from the web: " (why) },
            Access::Allowed => (run_form(viewer, m, error, entered)),
        }
        h2 { "Recent runs" }
        @if recent.is_empty() { p class="muted" { "None you may see." } }
        ul { @for r in &recent { li { a href=(format!("/runs/{}", r.id)) { "#" (r.id) } " " (state_badge(r.state)) " " (time(r.created_at)) " by " (r.requester_person.as_deref().unwrap_or(&r.requester)) } } }
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

/// One input per parameter, typed as the manifest says.
fn run_form(
    viewer: &Viewer,
    m: &Manifest,
    error: Option<&str>,
    entered: &[(String, String)],
) -> Markup {
    let value = |p: &Param| {
        entered
            .iter()
            .find(|(k, _)| *k == p.name)
            .map(|(_, v)| v.clone())
            .or_else(|| p.default.as_ref().map(|d| d.to_arg()))
            .unwrap_or_default()
    };
    html! {
        @if let Some(e) = error { p class="error" role="alert" { (e) } }
        form class="stack" method="post" action=(format!("/scripts/{}/run", urlencode(m.name.as_str()))) {
            input type="hidden" name="csrf" value=(viewer.csrf());
            @for p in &m.params {
                @let v = value(p);
                label {
                    span { code { (p.name) } @if p.required && p.default.is_none() { " (required)" } " — " (accepts(p)) }
                    @match &p.kind {
                        ParamKind::Enum { choices } => select name=(p.name) {
                            @if !p.required || p.default.is_some() { option value="" { "(default)" } }
                            @for c in choices { option value=(c) selected[*c == v] { (c) } }
                        },
                        ParamKind::Bool => select name=(p.name) {
                            option value="" { "(default)" }
                            option value="true" selected[v == "true"] { "true" }
                            option value="false" selected[v == "false"] { "false" }
                        },
                        ParamKind::Int { min, max } => input type="number" name=(p.name) value=(v)
                            min=[min.map(|x| x.to_string())] max=[max.map(|x| x.to_string())]
                            required[p.required && p.default.is_none()];,
                        ParamKind::Date => input type="date" name=(p.name) value=(v) required[p.required && p.default.is_none()];,
                        ParamKind::String { max_len, .. } => input type="text" name=(p.name) value=(v)
                            maxlength=[max_len.map(|x| x.to_string())] required[p.required && p.default.is_none()];,
                    }
                    @if !p.description.is_empty() { span class="muted" { (p.description) } }
                }
            }
            @if m.risk == Risk::High { p class="note" { "This script needs approval before it runs." } }
            button id="start-run" type="submit" { "Ask for a run" }
        }
    }
}

/// `POST /scripts/{name}/run`: the form's values typed by the manifest, then
/// `Engine::request_typed` as `web:local`.
pub(super) async fn start_run(
    State(state): State<WebState>,
    Path(name): Path<String>,
    viewer: Viewer,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    viewer.check_csrf(csrf)?;
    let engine = state.engine();
    let m = engine
        .manifest(&name)
        .ok_or_else(|| WebError::NotFound(format!("no script `{name}`")))?;
    let raw: Vec<(String, String)> = fields
        .into_iter()
        .filter(|(k, v)| k != "csrf" && !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect();
    let args = match m.validate_args(&raw) {
        Ok(a) => a,
        Err(e) => {
            let page = render_script(engine, &viewer, &m, Some(&e.to_string()), &raw).await?;
            return Ok((StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    let reply = engine
        .request_typed(&viewer.actor(), &view::web_place(), &m, args, None)
        .await?;
    let to = match &reply.run {
        Some(run) => format!("/runs/{}", run.id),
        None => format!("/scripts/{}", urlencode(m.name.as_str())),
    };
    Ok(redirect_with_notice(
        &to,
        &reply.text,
        state.secure_cookies(),
    ))
}
