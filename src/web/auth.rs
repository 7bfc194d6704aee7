//! Who is asking: the signed-in person behind a session cookie ([`Viewer`]), or
//! behind an API token ([`ApiCaller`]), and the CSRF checks on every form.
//!
//! Tokens are 32 random bytes in hex; the database keeps only their SHA-256
//! ([`token_hash`]). A session's CSRF token is derived from the session token
//! (`sha256("csrf:" + token)`), so it needs no storage and is worthless without
//! the cookie it belongs to. Forms shown before a session exists (the sign-in
//! button, dev login) use a double-submit cookie instead ([`FORM_COOKIE`]).
//!
//! A session or API token whose person has left the config stops working at once.

use super::{WebError, WebState};
use crate::types::{Actor, PersonId, Platform, PlatformUser};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

/// The session cookie: HttpOnly, SameSite=Lax, Secure when `public_url` is https.
pub const SESSION_COOKIE: &str = "execgov_session";
/// The double-submit CSRF cookie of forms shown to people not signed in yet.
pub const FORM_COOKIE: &str = "execgov_form";
/// How long a browser session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// The prefix of API tokens, so a leaked one is recognisable in logs and scanners.
pub const API_TOKEN_PREFIX: &str = "egv_";

pub use crate::links::{new_token, token_hash};

/// The CSRF token of the session whose cookie is `session_token`.
fn csrf_for(session_token: &str) -> String {
    hex::encode(Sha256::digest(format!("csrf:{session_token}").as_bytes()))
}

/// Equal strings, compared in time that does not depend on where they differ.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: Path=/, HttpOnly, SameSite=Lax, and Secure when asked.
/// `max_age_s` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
    ))
    .expect("cookie values are hex or short ASCII")
}

/// The actor a person is when acting from the web (UI or API).
pub fn web_actor(person: &PersonId) -> Actor {
    Actor::Person {
        person: person.clone(),
        via: PlatformUser {
            platform: Platform::Web,
            id: person.to_string(),
        },
        impersonated_by: None,
    }
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub person: PersonId,
    /// Listed in `web.admins`: sees every run.
    pub admin: bool,
    csrf: String,
    session_hash: String,
}

impl Viewer {
    pub fn actor(&self) -> Actor {
        web_actor(&self.person)
    }

    /// The token every form of this session carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Refuses a form without this session's CSRF token.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), WebError> {
        match sent {
            Some(s) if ct_eq(s, &self.csrf) => Ok(()),
            _ => Err(WebError::Forbidden(
                "the form's CSRF token is missing or wrong; reload the page and try again".into(),
            )),
        }
    }

    pub(super) fn session_hash(&self) -> &str {
        &self.session_hash
    }
}

/// Looks up the session cookie. `None` when absent, unknown, expired, or its person
/// is no longer configured.
pub(super) async fn viewer_from(
    state: &WebState,
    headers: &HeaderMap,
) -> Result<Option<Viewer>, WebError> {
    let Some(raw) = cookie_value(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let engine = state.engine();
    let hash = token_hash(&raw);
    let Some(person) = engine.store().session_person(&hash, engine.now()).await? else {
        return Ok(None);
    };
    let person = PersonId(person);
    if !engine.config().people.contains_key(&person) {
        return Ok(None);
    }
    let admin = engine
        .config()
        .web
        .admins
        .iter()
        .any(|a| a == person.as_str());
    Ok(Some(Viewer {
        person,
        admin,
        csrf: csrf_for(&raw),
        session_hash: hash,
    }))
}

impl FromRequestParts<WebState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Viewer, WebError> {
        viewer_from(state, &parts.headers)
            .await?
            .ok_or(WebError::SignInRequired)
    }
}

/// A signed-in person, if any (pages that audit links open too).
#[derive(Debug, Clone)]
pub struct MaybeViewer(pub Option<Viewer>);

impl FromRequestParts<WebState> for MaybeViewer {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<MaybeViewer, WebError> {
        Ok(MaybeViewer(viewer_from(state, &parts.headers).await?))
    }
}

/// The person behind `Authorization: Bearer egv_…` on `/api/v1`.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub person: PersonId,
    pub admin: bool,
}

impl ApiCaller {
    pub fn actor(&self) -> Actor {
        web_actor(&self.person)
    }
}

impl FromRequestParts<WebState> for ApiCaller {
    type Rejection = super::ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<ApiCaller, super::ApiError> {
        let unauthorized = || {
            WebError::Unauthorized(
                "send `Authorization: Bearer <token>`; create a token on the web UI's API tokens page".into(),
            )
        };
        let raw = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(API_TOKEN_PREFIX))
            .ok_or_else(unauthorized)?;
        let engine = state.engine();
        let person = engine
            .store()
            .api_token_person(&token_hash(raw), engine.now())
            .await?
            .map(PersonId)
            .filter(|p| engine.config().people.contains_key(p))
            .ok_or_else(|| WebError::Unauthorized("the API token is unknown or revoked".into()))?;
        let admin = engine
            .config()
            .web
            .admins
            .iter()
            .any(|a| a == person.as_str());
        Ok(ApiCaller { person, admin })
    }
}

/// The double-submit token of a form shown before sign-in: the cookie's value, or a
/// fresh one together with the `Set-Cookie` that stores it.
pub(super) fn form_token(headers: &HeaderMap, secure: bool) -> (String, Option<HeaderValue>) {
    match cookie_value(headers, FORM_COOKIE).filter(|v| v.len() == 64) {
        Some(v) => (v, None),
        None => {
            let v = new_token();
            let cookie = set_cookie(FORM_COOKIE, &v, 3600, secure);
            (v, Some(cookie))
        }
    }
}

/// Refuses a pre-sign-in form whose token does not match its cookie.
pub(super) fn check_form_token(headers: &HeaderMap, sent: Option<&str>) -> Result<(), WebError> {
    match (cookie_value(headers, FORM_COOKIE), sent) {
        (Some(c), Some(s)) if !c.is_empty() && ct_eq(&c, s) => Ok(()),
        _ => Err(WebError::Forbidden(
            "the form's CSRF token is missing or wrong; reload the page and try again".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; execgov_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_value(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie_value(&h, "execgov"), None);
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        assert_ne!(csrf_for("one"), csrf_for("two"));
        assert_ne!(csrf_for("one"), token_hash("one"), "not the stored hash");
        assert!(ct_eq("abc", "abc") && !ct_eq("abc", "abd") && !ct_eq("abc", "ab"));
    }

    #[test]
    fn session_cookies_are_http_only_and_lax() {
        let c = set_cookie(SESSION_COOKIE, "x", 60, true);
        let c = c.to_str().unwrap();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("; Secure"),
            "{c}"
        );
        assert!(
            !set_cookie(SESSION_COOKIE, "x", 60, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
