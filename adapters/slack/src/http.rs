//! The HTTP endpoints Slack calls. Each reads the raw body and checks Slack's
//! signature before anything else; an unsigned, stale or forged request gets a
//! 401 and causes nothing.

use crate::Slack;
use crate::commands::{SlashCommand, on_command};
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
    let cmd: SlashCommand = serde_urlencoded::from_bytes(&body)
        .map_err(|e| HttpError::BadRequest(e.to_string()))
        .inspect_err(refused(endpoint))?;
    Ok(Json(on_command(&slack, cmd).await).into_response())
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
    on_interaction(&slack, payload)
        .map_err(|e| HttpError::BadRequest(e.to_string()))
        .inspect_err(refused(endpoint))?;
    Ok(StatusCode::OK.into_response())
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
