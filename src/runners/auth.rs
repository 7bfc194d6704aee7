//! Who is calling: the runner behind `Authorization: Bearer egrc_…`. Anything
//! else is refused with 401, audited as `runner.refused`, and nothing happens.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::json;

use super::RunnerApi;
use super::error::RunnerApiError;
use crate::links::token_hash;
use crate::store::RunnerIdentity;
use execgov_runner::protocol::CREDENTIAL_PREFIX;

/// The runner making the call, its credential checked.
#[derive(Debug, Clone)]
pub struct RunnerCaller(pub RunnerIdentity);

impl FromRequestParts<RunnerApi> for RunnerCaller {
    type Rejection = RunnerApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &RunnerApi,
    ) -> Result<RunnerCaller, RunnerApiError> {
        let sent = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(credential) = sent.filter(|c| c.starts_with(CREDENTIAL_PREFIX)) else {
            return Err(refuse(
                api,
                parts,
                "no runner credential (Authorization: Bearer egrc_…)",
            )
            .await);
        };
        let engine = &api.engine;
        match engine
            .store()
            .runner_by_credential(&token_hash(credential))
            .await
            .map_err(|e| RunnerApiError::Internal(e.into()))?
        {
            Some(runner) => Ok(RunnerCaller(runner)),
            None => Err(refuse(api, parts, "an unknown or revoked runner credential").await),
        }
    }
}

/// Audits a refused call and says what to do.
pub(super) async fn refuse(api: &RunnerApi, parts: &Parts, why: &str) -> RunnerApiError {
    let engine = &api.engine;
    let details = json!({ "reason": why, "call": parts.uri.path() });
    if let Err(e) = engine
        .store()
        .audit("runner:?", "runner.refused", None, details, engine.now())
        .await
    {
        tracing::warn!(error = %e, "auditing a refused runner call failed");
    }
    RunnerApiError::Unauthorized(format!(
        "{why}: enrol the runner with `execgov runners enrol NAME` on the server and give it the \
         token (--token-file), or ask an admin whether it was revoked"
    ))
}
