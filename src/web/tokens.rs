//! `/account/tokens`: the signed-in person's API tokens. A new token is shown
//! once, on the page that answers its creation; the database keeps its hash.

use super::auth::{self, API_TOKEN_PREFIX, Viewer};
use super::layout::{page, redirect_with_notice, respond, take_notice, time};
use super::{WebError, WebState};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

/// `GET /account/tokens`.
pub(super) async fn tokens_page(
    State(state): State<WebState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let notice = take_notice(&headers);
    let body = render(&state, &viewer, None).await?;
    Ok(respond(
        page("API tokens", Some(&viewer), notice.as_deref(), body),
        notice.is_some(),
        state.secure_cookies(),
    ))
}

async fn render(
    state: &WebState,
    viewer: &Viewer,
    created: Option<&str>,
) -> Result<Markup, WebError> {
    let tokens = state
        .engine()
        .store()
        .api_tokens(viewer.person.as_str())
        .await?;
    let base = state
        .engine()
        .config()
        .web
        .public_url
        .trim_end_matches('/')
        .to_string();
    Ok(html! {
        h1 { "API tokens" }
        p { "A token acts as you on the JSON API (" a href="/api/v1/openapi.json" { "OpenAPI document" } "): "
            code { "curl -H 'Authorization: Bearer egv_…' " (base) "/api/v1/runs" } }
        @if let Some(t) = created {
            div class="notice" {
                p { strong { "Your new token. Copy it now: it is not shown again." } }
                code class="token" id="new-token" { (t) }
            }
        }
        h2 { "New token" }
        form class="filters" method="post" action="/account/tokens" {
            input type="hidden" name="csrf" value=(viewer.csrf());
            label { "Name (what it is for)" input type="text" name="name" required maxlength="80" placeholder="ci-deploy"; }
            button type="submit" { "Create token" }
        }
        h2 { "Your tokens" }
        @if tokens.is_empty() { p class="muted" { "None yet." } } @else {
            div class="scroll" { table class="cards" {
                thead { tr { th { "Name" } th { "Created" } th { "Last used" } th { "State" } } }
                tbody { @for t in &tokens { tr {
                    td data-label="Name" class="wrap" { (t.name) }
                    td data-label="Created" { (time(t.created_at)) }
                    td data-label="Last used" { @if let Some(u) = t.last_used_at { (time(u)) } @else { span class="muted" { "never" } } }
                    td data-label="State" {
                        @if let Some(r) = t.revoked_at { span class="muted" { "revoked " (time(r)) } } @else {
                            form class="inline" method="post" action=(format!("/account/tokens/{}/revoke", t.id)) {
                                input type="hidden" name="csrf" value=(viewer.csrf());
                                button class="deny" type="submit" { "Revoke" }
                            }
                        }
                    }
                } } }
            } }
        }
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateForm {
    csrf: Option<String>,
    name: Option<String>,
}

/// `POST /account/tokens`: creates a token and shows it once.
pub(super) async fn create_token(
    State(state): State<WebState>,
    viewer: Viewer,
    Form(f): Form<CreateForm>,
) -> Result<Markup, WebError> {
    viewer.check_csrf(f.csrf.as_deref())?;
    let name = f
        .name
        .map(|n| n.trim().chars().take(80).collect::<String>())
        .filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| WebError::BadRequest("give the token a name".into()))?;
    let token = format!("{API_TOKEN_PREFIX}{}", auth::new_token());
    let engine = state.engine();
    let now = engine.now();
    let id = engine
        .store()
        .create_api_token(
            &auth::token_hash(&token),
            viewer.person.as_str(),
            &name,
            now,
        )
        .await?;
    let actor = format!("person:{}", viewer.person);
    engine
        .store()
        .audit(
            &actor,
            "web.api_token_created",
            None,
            json!({ "token_id": id, "name": name }),
            now,
        )
        .await?;
    let body = render(&state, &viewer, Some(&token)).await?;
    Ok(page("API tokens", Some(&viewer), None, body))
}

#[derive(Debug, Deserialize)]
pub(super) struct RevokeForm {
    csrf: Option<String>,
}

/// `POST /account/tokens/{id}/revoke`: only the owner's own tokens.
pub(super) async fn revoke_token(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    viewer: Viewer,
    Form(f): Form<RevokeForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(f.csrf.as_deref())?;
    let engine = state.engine();
    let now = engine.now();
    if !engine
        .store()
        .revoke_api_token(id, viewer.person.as_str(), now)
        .await?
    {
        return Err(WebError::NotFound(format!("you have no active token {id}")));
    }
    let actor = format!("person:{}", viewer.person);
    engine
        .store()
        .audit(
            &actor,
            "web.api_token_revoked",
            None,
            json!({ "token_id": id }),
            now,
        )
        .await?;
    Ok(redirect_with_notice(
        "/account/tokens",
        "Token revoked; it no longer works.",
        state.secure_cookies(),
    ))
}
