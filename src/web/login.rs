//! Sign-in. `login` in chat answers the asker privately with a one-time link
//! (the engine's `login` answer); the link's page shows a button (so a link preview that
//! fetches the URL cannot use it up) whose POST uses the link and sets the session
//! cookie. The person is the chat identity that asked, and only a configured person
//! can ask. `web.dev_login` adds a person picker at `/login`, for the local demo.

use super::auth::{self, MaybeViewer, SESSION_COOKIE, SESSION_TTL_MS, Viewer};
use super::layout::{page, plural};
use super::{WebError, WebState};
use crate::types::PersonId;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::json;

pub use crate::engine::LOGIN_LINK_TTL_MS;

/// `GET /login`: who you are, or how to sign in (and the dev picker).
pub(super) async fn login_page(
    State(state): State<WebState>,
    MaybeViewer(viewer): MaybeViewer,
    headers: HeaderMap,
) -> Response {
    let config = state.engine().config();
    let (form_token, set) = auth::form_token(&headers, state.secure_cookies());
    let body = html! {
        h1 { "Sign in" }
        @if let Some(v) = &viewer {
            p { "You are signed in as " strong { (v.person) } ". " a href="/runs" { "Go to the runs" } }
        } @else {
            p { "Type " code { "login" } " to ExecGov in Slack or Matrix. It answers you privately with a \
                one-time link that signs you in here (valid for " (plural(LOGIN_LINK_TTL_MS / 60_000, "minute", "minutes")) ")." }
        }
        @if config.web.dev_login {
            h2 { "Development sign-in" }
            p class="note" { "web.dev_login is on: anyone who reaches this page can pick a person. Local demo only." }
            form class="stack" method="post" action="/login/dev" {
                input type="hidden" name="csrf" value=(form_token);
                label { "Person"
                    select name="person" { @for p in config.people.keys() { option value=(p) { (p) } } }
                }
                button type="submit" { "Sign in" }
            }
        }
    };
    let mut resp = page("Sign in", viewer.as_ref(), None, body).into_response();
    if let Some(c) = set {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// `GET /login/{token}`: checks the link without using it, and shows the button.
pub(super) async fn link_page(
    State(state): State<WebState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let engine = state.engine();
    let person = match engine
        .store()
        .peek_login_token(&auth::token_hash(&token), engine.now())
        .await
    {
        Ok(p) => p,
        Err(e) => return WebError::from(e).into_response(),
    };
    let Some(person) = person else {
        let body = html! {
            h1 { "This sign-in link does not work" }
            p class="error" { "It is wrong, already used, or expired. Type " code { "login" } " in chat for a new one." }
        };
        return (StatusCode::FORBIDDEN, page("Sign in", None, None, body)).into_response();
    };
    let (form_token, set) = auth::form_token(&headers, state.secure_cookies());
    let body = html! {
        h1 { "Sign in to ExecGov" }
        form class="stack" method="post" action="/login" {
            input type="hidden" name="csrf" value=(form_token);
            input type="hidden" name="token" value=(token);
            p { "This link signs you in as " strong { (person) } ". It works once." }
            button id="sign-in" type="submit" { "Sign in as " (person) }
        }
    };
    let mut resp = page("Sign in", None, None, body).into_response();
    if let Some(c) = set {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[derive(Debug, Deserialize)]
pub(super) struct SignInForm {
    token: Option<String>,
    csrf: Option<String>,
}

/// `POST /login`: uses the link and starts a session.
pub(super) async fn sign_in(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Result<Response, WebError> {
    auth::check_form_token(&headers, f.csrf.as_deref())?;
    let engine = state.engine();
    let refused = || {
        WebError::Forbidden(
            "the sign-in link is wrong, used or expired; type `login` in chat for a new one".into(),
        )
    };
    let token = f.token.ok_or_else(refused)?;
    let person = engine
        .store()
        .consume_login_token(&auth::token_hash(&token), engine.now())
        .await?
        .ok_or_else(refused)?;
    start_session(&state, PersonId(person), "chat link").await
}

#[derive(Debug, Deserialize)]
pub(super) struct DevSignInForm {
    person: Option<String>,
    csrf: Option<String>,
}

/// `POST /login/dev`: only with `web.dev_login` (on a loopback listener).
pub(super) async fn dev_sign_in(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<DevSignInForm>,
) -> Result<Response, WebError> {
    if !state.engine().config().web.dev_login {
        return Err(WebError::NotFound("development sign-in is off".into()));
    }
    auth::check_form_token(&headers, f.csrf.as_deref())?;
    start_session(&state, PersonId(f.person.unwrap_or_default()), "dev login").await
}

/// Records a session for a configured person and sets its cookie.
async fn start_session(
    state: &WebState,
    person: PersonId,
    via: &str,
) -> Result<Response, WebError> {
    let engine = state.engine();
    if !engine.config().people.contains_key(&person) {
        return Err(WebError::Forbidden(format!(
            "`{person}` is not a configured person"
        )));
    }
    let token = auth::new_token();
    let now = engine.now();
    let store = engine.store();
    store
        .create_session(
            &auth::token_hash(&token),
            person.as_str(),
            now,
            now + SESSION_TTL_MS,
        )
        .await?;
    store
        .audit(
            &format!("person:{person}"),
            "web.signed_in",
            None,
            json!({ "via": via }),
            now,
        )
        .await?;
    let secure = state.secure_cookies();
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/runs")]).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        auth::set_cookie(SESSION_COOKIE, &token, SESSION_TTL_MS / 1000, secure),
    );
    h.append(
        header::SET_COOKIE,
        auth::set_cookie(auth::FORM_COOKIE, "", 0, secure),
    );
    Ok(resp)
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /logout`: ends the session.
pub(super) async fn sign_out(
    State(state): State<WebState>,
    viewer: Viewer,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(f.csrf.as_deref())?;
    state
        .engine()
        .store()
        .delete_session(viewer.session_hash())
        .await?;
    let cookie = auth::set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies());
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/login")],
        [(header::SET_COOKIE, cookie)],
    )
        .into_response())
}
