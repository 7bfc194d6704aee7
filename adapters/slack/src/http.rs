//! The HTTP endpoints Slack calls. Each reads the raw body and checks Slack's
//! signature before anything else; an unsigned, stale or forged request gets a
//! 401 and causes nothing.

use crate::Slack;
use crate::commands::{SlashCommand, on_command, on_invalid_command};
use crate::events::{EventsAck, EventsBody, on_events};
use crate::interactions::{Interaction, on_interaction};
use crate::verify::{VerifyError, verify_signature};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
const SIGNATURE_HEADER: &str = "x-slack-signature";
const RETRY_HEADER: &str = "x-slack-retry-num";

pub(crate) fn router(slack: Arc<Slack>) -> Router {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
        .with_state(slack)
}

/// Why a request was turned away.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error(transparent)]
    Unverified(#[from] VerifyError),
    #[error("{0}")]
    BadRequest(String),
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match self {
            HttpError::Unverified(_) => {
                (StatusCode::UNAUTHORIZED, "invalid Slack signature").into_response()
            }
            HttpError::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, "unreadable Slack request").into_response()
            }
        }
    }
}

/// The signature check that every endpoint passes first.
fn verified(slack: &Slack, headers: &HeaderMap, body: &[u8]) -> Result<(), HttpError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(VerifyError::MissingHeader(name))
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    verify_signature(
        &slack.signing_secret,
        header(TIMESTAMP_HEADER)?,
        body,
        header(SIGNATURE_HEADER)?,
        now,
    )
    .map_err(HttpError::from)
}

/// Logs a refused request in one place.
fn refused(endpoint: &'static str) -> impl FnOnce(&HttpError) {
    move |e| tracing::warn!(endpoint, error = %e, "Slack request refused")
}

async fn commands(
    State(slack): State<Arc<Slack>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let endpoint = "/slack/commands";
    verified(&slack, &headers, &body).inspect_err(refused(endpoint))?;
    // serde_urlencoded reads invalid UTF-8 as U+FFFD; it is checked first, and
    // the lossy reading only serves to say who to answer.
    let utf8 = form_is_utf8(&body);
    let cmd: SlashCommand = serde_urlencoded::from_bytes(&body)
        .map_err(|e| HttpError::BadRequest(e.to_string()))
        .inspect_err(refused(endpoint))?;
    if !utf8 {
        return Ok(Json(on_invalid_command(&slack, cmd).await).into_response());
    }
    Ok(Json(on_command(&slack, cmd).await).into_response())
}

/// Whether every name and value of a form body is UTF-8 once `+` and `%XX`
/// are decoded.
fn form_is_utf8(body: &[u8]) -> bool {
    body.split(|b| *b == b'&')
        .flat_map(|pair| pair.splitn(2, |b| *b == b'='))
        .all(|part| std::str::from_utf8(&form_decode(part)).is_ok())
}

/// `application/x-www-form-urlencoded` decoding of one name or value, as
/// bytes: `+` is a space, `%XX` a byte, anything else itself.
fn form_decode(part: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < part.len() => match (hex(part[i + 1]), hex(part[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

async fn interactions(
    State(slack): State<Arc<Slack>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let endpoint = "/slack/interactions";
    verified(&slack, &headers, &body).inspect_err(refused(endpoint))?;
    let payload: Interaction = serde_urlencoded::from_bytes::<InteractionForm>(&body)
        .map_err(|e| e.to_string())
        .and_then(|f| serde_json::from_str(&f.payload).map_err(|e| e.to_string()))
        .map_err(HttpError::BadRequest)
        .inspect_err(refused(endpoint))?;
    let ack = on_interaction(&slack, payload)
        .await
        .map_err(|e| HttpError::BadRequest(e.to_string()))
        .inspect_err(refused(endpoint))?;
    Ok(match ack {
        Some(body) => Json(body).into_response(),
        None => StatusCode::OK.into_response(),
    })
}

async fn events(
    State(slack): State<Arc<Slack>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let endpoint = "/slack/events";
    verified(&slack, &headers, &body).inspect_err(refused(endpoint))?;
    if let Some(retry) = headers.get(RETRY_HEADER).and_then(|v| v.to_str().ok()) {
        tracing::debug!(retry, "Slack redelivers an event");
    }
    let parsed: EventsBody = serde_json::from_slice(&body)
        .map_err(|e| HttpError::BadRequest(e.to_string()))
        .inspect_err(refused(endpoint))?;
    Ok(match on_events(&slack, parsed).await {
        EventsAck::Challenge(challenge) => {
            Json(serde_json::json!({ "challenge": challenge })).into_response()
        }
        EventsAck::Ok => StatusCode::OK.into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_checked_after_decoding() {
        assert!(form_is_utf8(b"text=report+month%3D2026-10&user_id=U1"));
        assert!(form_is_utf8("text=caf%C3%A9&x=é".as_bytes()));
        assert!(form_is_utf8(b"text=100%&a=%zz"), "a stray % is itself");
        assert!(
            !form_is_utf8(b"text=%FF%FE&user_id=U1"),
            "bytes that are not UTF-8"
        );
        assert!(
            !form_is_utf8(b"text=%C3&user_id=U1"),
            "a cut multi-byte character"
        );
        assert!(!form_is_utf8(b"te%80xt=a"), "names count too");
        assert!(!form_is_utf8(b"text=\xff"), "raw bytes that are not UTF-8");
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode(b"a+b%20c%41"), b"a b cA");
        assert_eq!(form_decode(b"%4"), b"%4");
        assert_eq!(form_decode(b"%"), b"%");
    }
}
