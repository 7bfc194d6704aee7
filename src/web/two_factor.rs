//! `/account/2fa`: the signed-in person's second factor for approving
//! critical runs. Enrolling shows the secret once, as a QR code and as text,
//! and asks for the first code to confirm it; the database keeps it sealed.

use super::auth::Viewer;
use super::layout::{page, redirect_with_notice, respond, take_notice, time};
use super::{WebError, WebState};
use crate::engine::step_up::{Enrolment, FactorState};
use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

const TITLE: &str = "Two-factor authentication";

/// `GET /account/2fa`.
pub(super) async fn page_2fa(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let notice = take_notice(&headers);
    let factor = state.engine().factor_state(&viewer.person).await?;
    let pending = match factor {
        FactorState::Pending => state.engine().pending_enrolment(&viewer.person).await?,
        _ => None,
    };
    let body = html! {
        h1 { (TITLE) }
        p { "Runs marked " strong { "critical" } " need every approver to type the 6-digit code of an authenticator app "
            "(any app that reads " code { "otpauth://" } " codes) at the moment of approving." }
        @match factor {
            FactorState::Enrolled { since, locked_until } => {
                p id="factor-state" { "Enabled since " (time(since)) "." }
                @if let Some(until) = locked_until {
                    p class="error" { "Your approvals are locked until " (time(until)) " after too many wrong codes." }
                }
                p class="muted" { "Lost the app? An admin runs " code { "execgov 2fa reset " (viewer.person) } " and you set it up again." }
            }
            FactorState::Pending => {
                p id="factor-state" { "Set-up started but not confirmed yet." }
                @if let Some(e) = &pending { (steps(&viewer, e)) }
                (enrol_button(&viewer, "Start again with a new secret"))
            }
            FactorState::None => {
                p id="factor-state" { "Not set up." }
                (enrol_button(&viewer, "Set up an authenticator app"))
            }
        }
    };
    Ok(respond(
        page(TITLE, Some(&viewer), notice.as_deref(), body),
        notice.is_some(),
        state.secure_cookies(),
    ))
}

fn enrol_button(viewer: &Viewer, label: &str) -> Markup {
    html! {
        form method="post" action="/account/2fa/enrol" {
            input type="hidden" name="csrf" value=(viewer.csrf());
            button id="enrol" type="submit" { (label) }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /account/2fa/enrol`: a new secret, shown once, with the confirm form.
pub(super) async fn enrol(
    State(state): State<WebState>,
    viewer: Viewer,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(f.csrf.as_deref())?;
    let e = match state.engine().enrol_factor(&viewer.actor()).await? {
        Ok(e) => e,
        Err(why) => {
            return Ok(redirect_with_notice(
                "/account/2fa",
                &why,
                state.secure_cookies(),
            ));
        }
    };
    let body = enrolment(&viewer, &e);
    Ok(respond(
        page(TITLE, Some(&viewer), None, body),
        false,
        state.secure_cookies(),
    ))
}

fn enrolment(viewer: &Viewer, e: &Enrolment) -> Markup {
    html! {
        h1 { (TITLE) }
        (steps(viewer, e))
    }
}

fn steps(viewer: &Viewer, e: &Enrolment) -> Markup {
    html! {
        ol class="stack" {
            li { "Scan this code with your authenticator app:"
                figure class="qr" role="img" aria-label="QR code of your authenticator secret" { (qr_svg(&e.uri)) }
            }
            li { "Or type this secret into it (time-based, 6 digits, 30 seconds): "
                code id="totp-secret" class="token" { (e.secret) } }
            li { "Then type the code the app shows, to confirm:"
                form class="filters" method="post" action="/account/2fa/confirm" {
                    input type="hidden" name="csrf" value=(viewer.csrf());
                    label { "Code "
                        input id="code" type="text" name="code" inputmode="numeric" autocomplete="one-time-code"
                            pattern="[0-9 ]{6,7}" maxlength="7" required;
                    }
                    button id="confirm" type="submit" { "Confirm" }
                }
            }
        }
        p class="muted" { "Once confirmed, the secret is not shown again." }
    }
}

/// The URI as an inline SVG QR code (no image request, no script).
fn qr_svg(uri: &str) -> Markup {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // Drop the XML declaration: the SVG goes inside the page.
            let start = svg.find("<svg").unwrap_or(0);
            PreEscaped(svg[start..].to_string())
        }
        Err(_) => html! { p class="muted" { "(too long for a QR code: type the secret)" } },
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfirmForm {
    csrf: Option<String>,
    code: Option<String>,
}

/// `POST /account/2fa/confirm`: the first code confirms the enrolment.
pub(super) async fn confirm(
    State(state): State<WebState>,
    viewer: Viewer,
    Form(f): Form<ConfirmForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(f.csrf.as_deref())?;
    let code = f.code.unwrap_or_default();
    let notice = match state
        .engine()
        .confirm_factor(&viewer.actor(), &code)
        .await?
    {
        Ok(()) => {
            "Two-factor authentication is on: critical approvals now ask for a code.".to_string()
        }
        Err(why) => format!("Not confirmed: {why}"),
    };
    Ok(redirect_with_notice(
        "/account/2fa",
        &notice,
        state.secure_cookies(),
    ))
}
