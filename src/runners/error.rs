//! What a runner is answered when a call cannot be done: a status that says
//! which kind of problem it is, and `{"error": …}` saying what to fix.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use execgov_runner::protocol::ErrorBody;

use crate::store::StoreError;

/// A refused runner call. No side effects when rendered; logged once by the
/// web layer's error logging like every other 5xx.
#[derive(Debug, thiserror::Error)]
pub enum RunnerApiError {
    /// No credential, or one the server does not know (forged, revoked, or an
    /// enrolment token already used or expired).
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is good, but this runner may not do that.
    #[error("{0}")]
    Forbidden(String),
    /// No such run, or not one this runner holds (the same answer).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// Out of order: the log continues at `expected_at`; or the run was written off.
    #[error("{message}")]
    Conflict {
        message: String,
        expected_at: Option<u64>,
    },
    #[error("{0}")]
    TooLarge(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for RunnerApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotHeld(run) | StoreError::NotFound(run) => {
                RunnerApiError::NotFound(format!("this runner holds no run {run}"))
            }
            StoreError::LogGap { expected } => RunnerApiError::Conflict {
                message: format!("the log continues at byte {expected}; send it from there"),
                expected_at: Some(expected),
            },
            StoreError::TooLarge(message) => RunnerApiError::TooLarge(message),
            StoreError::Conflict(message) => RunnerApiError::Conflict {
                message,
                expected_at: None,
            },
            StoreError::InvalidTransition { run, from, .. } => RunnerApiError::Conflict {
                message: format!("run {run} is {from}; it takes no report"),
                expected_at: None,
            },
            other => RunnerApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for RunnerApiError {
    fn into_response(self) -> Response {
        let (status, expected_at) = match &self {
            RunnerApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, None),
            RunnerApiError::Forbidden(_) => (StatusCode::FORBIDDEN, None),
            RunnerApiError::NotFound(_) => (StatusCode::NOT_FOUND, None),
            RunnerApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, None),
            RunnerApiError::Conflict { expected_at, .. } => (StatusCode::CONFLICT, *expected_at),
            RunnerApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, None),
            RunnerApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        let error = match &self {
            // The details are in the service's log, not for the runner.
            RunnerApiError::Internal(_) => "the service failed; it is logged there".to_string(),
            other => other.to_string(),
        };
        let mut resp = (status, Json(ErrorBody { error, expected_at })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let RunnerApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "a runner call failed");
        }
        resp
    }
}

/// A JSON body; a malformed one is refused with [`RunnerApiError::BadRequest`]
/// saying what was wrong, in the same `{"error": …}` shape as every refusal.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = RunnerApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(RunnerApiError::BadRequest(format!(
                "the body is not what this call takes ({}); see docs/runners.md",
                rejection.body_text()
            ))),
        }
    }
}
