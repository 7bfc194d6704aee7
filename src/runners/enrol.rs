//! `POST /runner/v1/enrol`: a runner's first call trades its one-time
//! enrolment token for a credential of its own. The server keeps only hashes.

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;

use super::RunnerApi;
use super::error::{JsonBody, RunnerApiError};
use crate::links::{new_token, token_hash};
use execgov_runner::protocol::{CREDENTIAL_PREFIX, ENROLMENT_PREFIX, EnrolRequest, EnrolResponse};

pub(super) async fn enrol(
    State(api): State<RunnerApi>,
    parts: Parts,
    JsonBody(req): JsonBody<EnrolRequest>,
) -> Result<Json<EnrolResponse>, RunnerApiError> {
    let engine = &api.engine;
    if !req.token.starts_with(ENROLMENT_PREFIX) {
        return Err(super::auth::refuse(&api, &parts, "not an enrolment token (egen_…)").await);
    }
    let credential = format!("{CREDENTIAL_PREFIX}{}", new_token());
    let hostname: String = req.hostname.chars().take(255).collect();
    let enrolled = engine
        .store()
        .enrol_runner(
            &token_hash(&req.token),
            &token_hash(&credential),
            &hostname,
            engine.now(),
        )
        .await
        .map_err(|e| RunnerApiError::Internal(e.into()))?;
    let Some(runner) = enrolled else {
        let why = "an enrolment token that is unknown, used already, or expired (they last 1 hour)";
        return Err(super::auth::refuse(&api, &parts, why).await);
    };
    tracing::info!(runner = %runner.name, %hostname, "runner enrolled");
    Ok(Json(EnrolResponse {
        runner: runner.name,
        credential,
        tags: runner.tags,
        lease_ms: api.lease().as_millis() as u64,
    }))
}
