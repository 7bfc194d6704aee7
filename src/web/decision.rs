//! Approving and denying from the web. A decision is an explicit button press:
//! Deny is its own form (the reason belongs to it, so Enter in the reason can only
//! deny), and Approve is a link to a confirmation page that repeats what is being
//! approved. The POST that approves must carry that page's confirmation, which is
//! bound to the run's exact request; a POST without it never approves.
//!
//! Every run that waits for approval is high-risk (only `risk = "high"` scripts
//! have an approval step), so every web approval goes through the confirmation.

use super::auth::Viewer;
use super::layout::{page, plural, redirect_with_notice, respond, take_notice, time};
use super::{WebError, WebState, view};
use crate::engine::Engine;
use crate::store::{Approval, Run};
use crate::types::{RunId, RunState};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The value the confirmation page's form carries: a digest of what the page
/// showed (run, script, arguments, manifest digest), so an approval confirms this
/// exact request and nothing that merely shares its id.
pub(super) fn confirmation(run: &Run) -> String {
    let mut h = Sha256::new();
    for part in [
        run.id.to_string(),
        run.script.clone(),
        serde_json::to_string(&run.args).unwrap_or_default(),
        run.requester.clone(),
        run.manifest_digest.clone(),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// What is being approved, repeated wherever a decision is offered: script,
/// each argument exactly, requester, when, approvals so far, expiry.
pub(super) fn summary(run: &Run, approvals: &[Approval]) -> Markup {
    let approved: Vec<&Approval> = approvals.iter().filter(|a| a.approve).collect();
    html! {
        dl class="summary" {
            dt { "Script" } dd { code { (run.script) } }
            dt { "Arguments" }
            dd { (args_list(run)) }
            dt { "Requested by" } dd { (run.requester) }
            dt { "Requested" } dd { (time(run.created_at)) " from " (crate::engine::render::place_text(run)) }
            dt { "Approvals so far" }
            dd {
                (approved.len()) " of " (plural(run.quorum, "approval", "approvals")) " needed"
                @for a in &approved {
                    br; (a.approver) " at " (time(a.at))
                }
            }
            @if let Some(exp) = run.expires_at.filter(|_| run.state == RunState::AwaitingApproval) {
                dt { "Expires" } dd { (time(exp)) }
            }
        }
    }
}

/// Each argument on its own line, its value exactly as it will be passed:
/// spaces kept, an empty value said in words, invisible characters escaped.
fn args_list(run: &Run) -> Markup {
    let args: Vec<(&String, &crate::types::ArgValue)> = run.args.iter().collect();
    html! {
        @if args.is_empty() {
            span class="muted" { "(none)" }
        } @else {
            ul class="args" {
                @for (name, value) in args {
                    li {
                        code { (name) } " = "
                        @match value {
                            crate::types::ArgValue::Str(s) if s.is_empty() => span class="muted" { "(empty)" },
                            crate::types::ArgValue::Str(s) => code class="exact" { (exact(s)) },
                            crate::types::ArgValue::File(f) => span {
                                code class="exact" { (exact(&f.name)) } " — "
                                (bytesize::ByteSize::b(f.size).display().iec().to_string()) ", sha256 "
                                code class="sha256" { (f.sha256) }
                            },
                            other => code class="exact" { (other.to_arg()) },
                        }
                    }
                }
            }
        }
    }
}

/// `s` with every character a reader could not see (controls, zero-width and
/// bidirectional marks, soft hyphens) written as a visible `\u{…}` escape, so two
/// values that look alike on screen never are different ones.
pub(super) fn exact(s: &str) -> Markup {
    html! {
        @for c in s.chars() {
            @if is_invisible(c) {
                span class="esc" title="an invisible character" { (c.escape_unicode().to_string()) }
            } @else {
                (c)
            }
        }
    }
}

fn is_invisible(c: char) -> bool {
    c.is_control() && c != ' '
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

/// The approval panel on a run's page, for a person who may decide: what is
/// being approved, Approve (a link to the confirmation page), and Deny with its
/// reason in a form of its own.
pub(super) fn panel(run: &Run, approvals: &[Approval], v: &Viewer) -> Markup {
    html! {
        section class="actions" aria-labelledby="decide-title" {
            h2 id="decide-title" { "Your decision" }
            p { "Run " (run.id) " waits for approval. You are asked to approve:" }
            (summary(run, approvals))
            div class="decide" {
                a id="approve" class="button" href=(format!("/runs/{}/approve", run.id)) { "Approve…" }
                form class="deny" method="post" action=(format!("/runs/{}/decision", run.id)) {
                    input type="hidden" name="csrf" value=(v.csrf());
                    input type="hidden" name="decision" value="deny";
                    label { "Reason for denying (optional) " input type="text" name="reason" maxlength="500"; }
                    button id="deny" class="deny" type="submit" { "Deny" }
                }
            }
        }
    }
}

/// `GET /runs/{id}/approve`: the confirmation step. It repeats what is being
/// approved and holds the only form that approves.
pub(super) async fn confirm_page(
    State(state): State<WebState>,
    Path(id): Path<String>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let engine = state.engine();
    let id = RunId::parse(&id).map_err(|_| WebError::NotFound(format!("no run {id}")))?;
    let run = view::visible_run(engine, &viewer.actor(), id).await?;
    let approvals = engine.store().approvals(id).await?;
    let notice = take_notice(&headers);
    let body = confirm_body(engine, &run, &approvals, &viewer);
    Ok(respond(
        page(
            &format!("Approve run {}?", run.id),
            Some(&viewer),
            notice.as_deref(),
            body,
        ),
        notice.is_some(),
        state.secure_cookies(),
    ))
}

fn confirm_body(engine: &Engine, run: &Run, approvals: &[Approval], v: &Viewer) -> Markup {
    let may = view::may_decide(engine, &v.actor(), run);
    html! {
        h1 { "Approve run " (run.id) "?" }
        @if may {
            p { "Approving lets this run go ahead with exactly these arguments. Check them:" }
        } @else if run.state != RunState::AwaitingApproval {
            p class="error" { "Run " (run.id) " is " (run.state.as_str().replace('_', " ")) "; there is nothing to approve." }
        } @else {
            p class="error" { "You may not approve run " (run.id) "." }
        }
        (summary(run, approvals))
        @if may {
            form class="stack confirm" method="post" action=(format!("/runs/{}/decision", run.id)) {
                input type="hidden" name="csrf" value=(v.csrf());
                input type="hidden" name="decision" value="approve";
                input type="hidden" name="confirm" value=(confirmation(run));
                @if run.risk.needs_step_up() {
                    p { "Run " (run.id) " is critical: approving it needs the 6-digit code your authenticator app shows for ExecGov. "
                        "No app set up yet? " a href="/account/2fa" { "Set up two-factor authentication" } "." }
                    label { "Authenticator code "
                        input id="code" type="text" name="code" inputmode="numeric" autocomplete="one-time-code"
                            pattern="[0-9 ]{6,7}" maxlength="7" required;
                    }
                }
                label { "Note (optional) " textarea name="reason" maxlength="500" rows="2" {} }
                div class="decide" {
                    button id="confirm-approve" type="submit" { "Approve run " (run.id) }
                    a class="button secondary" href=(format!("/runs/{}", run.id)) { "Back without approving" }
                }
            }
        } @else {
            p { a href=(format!("/runs/{}", run.id)) { "Back to run " (run.id) } }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct DecisionForm {
    csrf: Option<String>,
    decision: Option<String>,
    reason: Option<String>,
    /// [`confirmation`] of the run, from the confirmation page; approving needs it.
    confirm: Option<String>,
    /// The approver's authenticator code (a critical run).
    code: Option<String>,
}

/// `POST /runs/{id}/decision`: deny, or approve with the confirmation page's
/// token, through `Engine::decide`. An approval without a matching confirmation
/// decides nothing and leads to the confirmation page.
pub(super) async fn decide(
    State(state): State<WebState>,
    Path(id): Path<String>,
    viewer: Viewer,
    Form(f): Form<DecisionForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(f.csrf.as_deref())?;
    let engine = state.engine();
    let id = RunId::parse(&id).map_err(|_| WebError::NotFound(format!("no run {id}")))?;
    let actor = viewer.actor();
    let run = view::visible_run(engine, &actor, id).await?;
    let approve = match f.decision.as_deref() {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return Err(WebError::BadRequest(
                "decision must be `approve` or `deny`".into(),
            ));
        }
    };
    if approve && f.confirm.as_deref() != Some(confirmation(&run).as_str()) {
        return Ok(redirect_with_notice(
            &format!("/runs/{id}/approve"),
            &format!("Nothing was approved: confirm run {id} on this page first."),
            state.secure_cookies(),
        ));
    }
    let reason = f
        .reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    let proof = f
        .code
        .filter(|c| !c.trim().is_empty())
        .map(|code| crate::engine::step_up::Proof {
            code,
            seen_by_others: false,
        });
    let reply = engine.decide(&actor, id, approve, reason, proof).await?;
    if approve && reply.is_error() && run.risk.needs_step_up() {
        // Back to the form with the code field, saying why.
        return Ok(redirect_with_notice(
            &format!("/runs/{id}/approve"),
            &reply.text,
            state.secure_cookies(),
        ));
    }
    Ok(redirect_with_notice(
        &format!("/runs/{id}"),
        &reply.text,
        state.secure_cookies(),
    ))
}

#[derive(Deserialize)]
pub(super) struct ReviewForm {
    csrf: Option<String>,
    note: Option<String>,
}

/// `POST /runs/{id}/review`: an approver reviews a break-glass run.
pub(super) async fn review(
    State(state): State<WebState>,
    Path(id): Path<String>,
    viewer: Viewer,
    Form(f): Form<ReviewForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(f.csrf.as_deref())?;
    let engine = state.engine();
    let id = RunId::parse(&id).map_err(|_| WebError::NotFound(format!("no run {id}")))?;
    let actor = viewer.actor();
    view::visible_run(engine, &actor, id).await?;
    let note = f
        .note
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let reply = engine.review(&actor, id, note).await?;
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
    fn invisible_characters_are_shown_as_escapes() {
        let shown = exact("a\u{202E}b\u{200B} c\n").into_string();
        assert!(
            shown.contains(r"\u{202e}") && shown.contains(r"\u{200b}") && shown.contains(r"\u{a}"),
            "bidi override, zero-width space and newline are visible: {shown}"
        );
        assert!(shown.contains("b"), "ordinary text stays: {shown}");
        assert_eq!(
            exact("ä ö ü").into_string(),
            "ä ö ü",
            "visible non-ASCII and spaces are left alone"
        );
    }
}
