//! `/runs/{id}`: one run — request, approvals, timeline, outcome, structured
//! result, log and files — rendered once for both ways in: an audit link
//! (`?t=…`, that run only, read-only) and a signed-in person who may see it (who
//! also gets the decision panel of `decision.rs` and Cancel, through the engine
//! like chat).

use super::auth::{MaybeViewer, Viewer};
use super::layout::{
    page_refreshing, plural, redirect_with_notice, respond, state_badge, take_notice, time,
    urlencode,
};
use super::timeline::timeline_label;
use super::{WebError, WebState, decision, view};
use crate::clock::{format_duration_ms, format_ms};
use crate::engine::Engine;
use crate::store::{Approval, Artifact, AuditEntry, Run};
use crate::types::{RunId, RunState};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

/// How much of the log the page shows inline; the rest is one click away.
const PAGE_LOG_BYTES: u64 = 256 * 1024;

/// Seconds between reloads of a queued or running run's page.
const REFRESH_SECS: u32 = 5;

#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    t: Option<String>,
}

/// How the page was opened.
pub(super) enum Access {
    /// An audit link: this run only, read-only; links inside carry the token.
    Link(String),
    /// A signed-in person who may see the run.
    Person(Viewer),
}

impl Access {
    /// `?t=…` for links inside the page, or nothing for a signed-in person.
    fn query(&self) -> String {
        match self {
            Access::Link(t) => format!("?t={}", urlencode(t)),
            Access::Person(_) => String::new(),
        }
    }
}

/// A valid token opens its run. Without one (or with a bad one), a signed-in
/// person who may see the run gets it, anyone else a refusal that says nothing
/// about whether the run exists: 403 for links, 404 for signed-in people.
pub(super) async fn authorise(
    engine: &Engine,
    id: &str,
    q: &TokenQuery,
    viewer: Option<Viewer>,
) -> Result<(Run, Access), WebError> {
    let forbidden = || {
        WebError::Forbidden(
            "this link does not open that run (wrong, expired or missing token)".into(),
        )
    };
    let Ok(id) = RunId::parse(id) else {
        return Err(if viewer.is_some() {
            WebError::NotFound(format!("no run {id}"))
        } else {
            forbidden()
        });
    };
    let token_check =
        q.t.as_deref()
            .map(|t| engine.links().verify(id, t, engine.now()));
    if let (Some(t), Some(Ok(()))) = (&q.t, &token_check) {
        return match engine.store().get_run(id).await {
            Ok(run) => Ok((run, Access::Link(t.clone()))),
            Err(crate::store::StoreError::NotFound(_)) => Err(forbidden()),
            Err(e) => Err(e.into()),
        };
    }
    match (viewer, token_check) {
        (Some(v), _) => {
            let run = view::visible_run(engine, &v.actor(), id).await?;
            Ok((run, Access::Person(v)))
        }
        (None, Some(Err(e))) => Err(WebError::Forbidden(e.to_string())),
        (None, _) => Err(WebError::Forbidden(
            "this page opens with the run's audit link, or after signing in (type `login` in chat)"
                .into(),
        )),
    }
}

pub(super) async fn run_page(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
    MaybeViewer(viewer): MaybeViewer,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let engine = state.engine();
    let (run, access) = authorise(engine, &id, &q, viewer).await?;
    let store = engine.store();
    let approvals = store.approvals(run.id).await?;
    let timeline = store.audit_entries(Some(run.id), 0, 500).await?;
    let artifacts = store.artifacts(run.id).await?;
    let preview = if run.quorum > 0 {
        store.preview_for(run.id).await?
    } else {
        None
    };
    let (log, log_truncated) = read_log_tail(engine, &run).await;
    let (log, progress_lines) = without_progress(&log);
    let notice = match access {
        Access::Person(_) => take_notice(&headers),
        Access::Link(_) => None,
    };
    let page_data = RunPage {
        run: &run,
        approvals: &approvals,
        timeline: &timeline,
        artifacts: &artifacts,
        log: &log,
        log_truncated,
        progress_lines,
        preview: preview.as_ref(),
    };
    let body = render(engine, &page_data, &access);
    let title = format!("Run {} · {}", run.id, run.script);
    let viewer = match &access {
        Access::Person(v) => Some(v),
        Access::Link(_) => None,
    };
    Ok(respond(
        page_refreshing(
            &title,
            viewer,
            notice.as_deref(),
            body,
            refresh_secs(run.state),
        ),
        notice.is_some(),
        state.secure_cookies(),
    ))
}

/// How often the page of a run in `state` reloads itself: while the run moves on
/// its own (queued, running), and never once it is final. A run awaiting approval
/// does not reload, so a reason being typed into its Deny form is not lost.
fn refresh_secs(state: RunState) -> Option<u32> {
    matches!(state, RunState::Queued | RunState::Running).then_some(REFRESH_SECS)
}

/// Everything one run's page shows.
struct RunPage<'a> {
    run: &'a Run,
    approvals: &'a [Approval],
    timeline: &'a [AuditEntry],
    artifacts: &'a [Artifact],
    log: &'a str,
    log_truncated: bool,
    /// `::progress` lines left out of `log` (the progress shows as progress).
    progress_lines: usize,
    /// The run's preview (`[approval] preview`), if it has one.
    preview: Option<&'a Run>,
}

fn render(engine: &Engine, p: &RunPage<'_>, access: &Access) -> Markup {
    let run = p.run;
    let q = access.query();
    let args = crate::engine::render::stored_args_text(run);
    let retained = crate::retention::notes(run, !p.artifacts.is_empty());
    html! {
        header class="run" {
            h1 { "Run " (run.id) ": " code { (run.script) } }
            (state_badge(run.state))
        }
        @if run.state == RunState::Running && (run.progress_pct.is_some() || run.progress_text.is_some()) {
            p class="progress" {
                @if let Some(pct) = run.progress_pct {
                    progress max="100" value=(pct) aria-label="Progress" { (pct) "%" }
                    " " strong { (pct) "%" } " "
                }
                (run.progress_text.as_deref().unwrap_or(""))
            }
        }
        @if let Some(of) = run.preview_of {
            p class="note" role="status" {
                "This is the preview of "
                @if let Access::Person(_) = access { a href=(format!("/runs/{of}")) { "run " (of) } } @else { "run " (of) }
                ": it ran with the manifest's preview arguments and needed no approval."
            }
        }
        @if let Access::Person(v) = access { (actions(engine, run, p.approvals, v)) }
        @if let Some(pv) = p.preview { (preview_section(pv, access)) }
        section {
            h2 { "Request" }
            dl {
                dt { "Requested by" } dd { (run.requester) }
                dt { "Where" } dd { (crate::engine::render::place_text(run)) }
                dt { "When" } dd { (time(run.created_at)) }
                dt { "Arguments" } dd { code { (if args.is_empty() { "(none)".to_string() } else { args }) } }
                @if let Some(r) = &run.reason { dt { "Reason" } dd { (r) } }
                @if run.quorum > 0 {
                    dt { "Approval" }
                    dd {
                        (p.approvals.iter().filter(|a| a.approve).count()) " of " (plural(run.quorum, "approval", "approvals")) " needed"
                        @if let Some(exp) = run.expires_at.filter(|_| run.state == RunState::AwaitingApproval) {
                            ", expires " (time(exp))
                        }
                        @if !run.approvers.eligible.is_empty() {
                            br; span class="muted" { "Who may approve: "
                                (run.approvers.eligible.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")) }
                        }
                        @for a in p.approvals {
                            br;
                            strong { (a.approver) } " " (if a.approve { "approved" } else { "denied" }) " at " (format_ms(a.at))
                            @if let Some(r) = &a.reason { ": " (r) }
                        }
                    }
                }
                dt { "Manifest digest" } dd { code class="digest" { (run.manifest_digest) } }
            }
        }
        section {
            h2 { "Outcome" }
            dl {
                dt { "State" } dd { (state_badge(run.state)) }
                @if let Some(s) = run.started_at { dt { "Started" } dd { (time(s)) } }
                @if let Some(f) = run.finished_at { dt { "Finished" } dd { (time(f)) } }
                @if let (Some(s), Some(f)) = (run.started_at, run.finished_at) {
                    dt { "Duration" } dd { (format_duration_ms(f - s)) }
                }
                @if let Some(c) = run.exit_code { dt { "Exit code" } dd { code { (c) } } }
                @if let Some(e) = &run.error { dt { "Error" } dd { (e) } }
            }
            @for note in &retained {
                p class="note" role="note" { (capitalised(note)) "." }
            }
            @if let Some(result) = &run.result { (result_table(result)) }
            @if !p.artifacts.is_empty() {
                h3 { "Files" }
                ul {
                    @for a in p.artifacts {
                        li {
                            @if run.files_pruned_at.is_some() {
                                (a.name)
                            } @else {
                                a href=(format!("/runs/{}/artifacts/{}{q}", run.id, urlencode(&a.name))) download { (a.name) }
                            }
                            " (" (bytesize::ByteSize(a.size.max(0) as u64).display().iec()) ", sha256 " code class="digest" { (a.sha256) } ")"
                        }
                    }
                }
            }
        }
        section {
            h2 { "Timeline" }
            ol class="timeline" {
                @for e in p.timeline {
                    li {
                        (time(e.at)) " — " strong { (timeline_label(e)) } " "
                        span class="muted" { "by " (e.actor) " · " code { (e.action) } }
                    }
                }
            }
        }
        section {
            h2 { "Log" }
            @if run.log_dropped > 0 {
                p class="note" { "The log was capped; " (plural(run.log_dropped, "byte was", "bytes were")) " dropped." }
            }
            @if run.log_pruned_at.is_some() {
                p class="muted" { "The log is not kept any more (see above)." }
            } @else if p.log_truncated {
                p class="note" { "Showing the last 256 KiB. " a href=(format!("/runs/{}/log{q}", run.id)) { "Full log" } }
            } @else if run.log_path.is_some() || !p.log.is_empty() {
                p { a href=(format!("/runs/{}/log{q}", run.id)) { "Plain-text log" } }
            }
            @if p.progress_lines > 0 {
                p class="muted" { (plural(p.progress_lines as i64, "progress line is", "progress lines are")) " left out here; the plain-text log has them." }
            }
            @if run.log_pruned_at.is_none() {
                pre class="log" tabindex="0" role="region" aria-label="Log output" { (p.log) }
            }
        }
    }
}

/// What the run's preview did, for whoever decides on the run.
fn preview_section(pv: &Run, access: &Access) -> Markup {
    html! {
        section {
            h2 { "Preview" }
            p {
                @if let Access::Person(_) = access {
                    a href=(format!("/runs/{}", pv.id)) { "Run " (pv.id) }
                } @else { "Run " (pv.id) }
                " ran with the preview's arguments: " (state_badge(pv.state))
                @if let Some(c) = pv.exit_code { " exit code " code { (c) } }
            }
            @if !pv.state.is_final() {
                p class="muted" { "Still running; reload to see its outcome." }
            }
            @if let Some(e) = &pv.error { p { "Error: " (e) } }
            @if let Some(result) = &pv.result { (result_table(result)) }
            @if let Some(tail) = pv.output_tail.as_deref().filter(|t| !t.trim().is_empty()) {
                pre class="log" tabindex="0" role="region" aria-label="Preview output" { (strip_ansi(tail)) }
            }
        }
    }
}

/// `text` with its first letter in upper case.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The decision panel and Cancel, as far as the viewer may; the engine decides again.
fn actions(engine: &Engine, run: &Run, approvals: &[Approval], v: &Viewer) -> Markup {
    let actor = v.actor();
    let decide = view::may_decide(engine, &actor, run);
    let cancel = view::may_cancel(engine, &actor, run);
    let review = view::may_review(engine, &actor, run);
    html! {
        @if let Some(flag) = crate::engine::render::break_glass_text(run) {
            p class="note" role="status" { strong { (flag) } }
        }
        @if review {
            form class="stack" method="post" action=(format!("/runs/{}/review", run.id)) {
                input type="hidden" name="csrf" value=(v.csrf());
                div class="field" {
                    label for="review-note" { "Review note (optional)" }
                    input type="text" id="review-note" name="note" maxlength="500";
                }
                div { button type="submit" { "Mark break-glass reviewed" } }
            }
        }
        @if decide { (decision::panel(run, approvals, v)) }
        @if cancel {
            form class="inline" method="post" action=(format!("/runs/{}/cancel", run.id)) {
                input type="hidden" name="csrf" value=(v.csrf());
                p { button class="secondary" type="submit" { "Cancel this run" } }
            }
        }
        p class="muted" { "To share: " a href=(engine.audit_link(run)) { "audit link" } " (opens this run only, read-only)." }
    }
}

/// A structured result as a table: a `table` (docs/results.md) with the other
/// keys as facts above it, an object's keys, or a list of objects' columns.
fn result_table(v: &serde_json::Value) -> Markup {
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(view) = execgov_chat::result::ResultView::with_table(v) {
        return html! {
            h3 { "Result" }
            @if !view.fields.is_empty() {
                table class="result" { @for (k, v) in &view.fields { tr { th scope="row" { (k) } td { (v) } } } }
            }
            @if let Some(t) = &view.table {
                div class="scroll" {
                    table class="result" {
                        thead { tr { @for c in &t.columns { th scope="col" { (c) } } } }
                        tbody { @for r in &t.rows { tr { @for c in r { td { (c) } } } } }
                    }
                }
            }
        };
    }
    html! {
        h3 { "Result" }
        div class="scroll" {
            @match v {
                serde_json::Value::Object(map) => table class="result" { @for (k, v) in map { tr { th { (k) } td { (cell(v)) } } } },
                serde_json::Value::Array(rows) if rows.iter().all(|r| r.is_object()) && !rows.is_empty() => {
                    @let cols: Vec<String> = rows[0].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                    table class="result" {
                        tr { @for c in &cols { th { (c) } } }
                        @for r in rows { tr { @for c in &cols { td { (r.get(c).map(cell).unwrap_or_default()) } } } }
                    }
                }
                other => pre { (serde_json::to_string_pretty(other).unwrap_or_default()) },
            }
        }
    }
}

/// The log's last [`PAGE_LOG_BYTES`], ANSI codes stripped. Secrets were masked when
/// the log was written, so they stay masked here.
async fn read_log_tail(engine: &Engine, run: &Run) -> (String, bool) {
    match crate::runs_data::log_tail(engine, run, PAGE_LOG_BYTES).await {
        Ok(Some((bytes, cut))) => (strip_ansi(&String::from_utf8_lossy(&bytes)), cut),
        Ok(None) => (String::from("(no log yet)"), false),
        Err(e) => {
            tracing::warn!(run_id = %run.id, error = %e, "reading a run's log failed");
            (String::from("(the log could not be read)"), false)
        }
    }
}

/// The log without its `::progress` lines (as the runner recognises them: the
/// word alone or followed by whitespace), and how many there were.
fn without_progress(log: &str) -> (String, usize) {
    let mut kept = String::with_capacity(log.len());
    let mut dropped = 0;
    for line in log.split_inclusive('\n') {
        let is_progress = line
            .strip_prefix("::progress")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
        if is_progress {
            dropped += 1;
        } else {
            kept.push_str(line);
        }
    }
    (kept, dropped)
}

/// Removes ANSI escape sequences (colours, cursor moves) from log text.
pub fn strip_ansi(s: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07").expect("valid regex")
    });
    re.replace_all(s, "").into_owned()
}

#[derive(Debug, Deserialize)]
pub(super) struct CancelForm {
    csrf: Option<String>,
}

/// `POST /runs/{id}/cancel`: through `Engine::cancel`.
pub(super) async fn cancel(
    State(state): State<WebState>,
    Path(id): Path<String>,
    viewer: Viewer,
    Form(f): Form<CancelForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(f.csrf.as_deref())?;
    let engine = state.engine();
    let id = RunId::parse(&id).map_err(|_| WebError::NotFound(format!("no run {id}")))?;
    let actor = viewer.actor();
    view::visible_run(engine, &actor, id).await?;
    let reply = engine.cancel(&actor, id).await?;
    Ok(redirect_with_notice(
        &format!("/runs/{id}"),
        &reply.text,
        state.secure_cookies(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_left_out_of_the_log_view() {
        let log = "start\n::progress 40 Exporting rows\n::progress\n::progressive is output\nend ::progress 5\n::progress 100";
        let (kept, dropped) = without_progress(log);
        assert_eq!(
            kept, "start\n::progressive is output\nend ::progress 5\n",
            "only whole ::progress lines go, as the runner reads them"
        );
        assert_eq!(dropped, 3);
    }
}
