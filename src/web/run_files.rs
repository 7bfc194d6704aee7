//! `/runs/{id}/log` and `/runs/{id}/artifacts/{name}`: a run's whole log as
//! plain text and its files as downloads, opened the way its page is (an audit
//! link's token or a signed-in person who may see the run; see `run_page.rs`).
//! What retention removed answers 410 and says when.

use super::auth::MaybeViewer;
use super::layout::urlencode;
use super::run_page::{TokenQuery, authorise, strip_ansi};
use super::{WebError, WebState};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// `GET /runs/{id}/log`: the whole log as plain text, ANSI codes stripped.
pub(super) async fn run_log(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
    MaybeViewer(viewer): MaybeViewer,
) -> Result<Response, WebError> {
    let (run, _) = authorise(state.engine(), &id, &q, viewer).await?;
    if run.log_pruned_at.is_some() {
        let why = crate::retention::notes(&run, false)
            .into_iter()
            .next()
            .unwrap_or_else(|| "log removed by retention".into());
        return Err(WebError::Gone(format!("run {}: {why}", run.id)));
    }
    let body = crate::runs_data::log_all(state.engine(), &run)
        .await?
        .ok_or_else(|| WebError::NotFound("this run has no log yet".into()))?;
    let text = strip_ansi(&String::from_utf8_lossy(&body));
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// `GET /runs/{id}/artifacts/{name}`: one file the run produced, as a download.
pub(super) async fn artifact(
    State(state): State<WebState>,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<TokenQuery>,
    MaybeViewer(viewer): MaybeViewer,
) -> Result<Response, WebError> {
    let engine = state.engine();
    let (run, _) = authorise(engine, &id, &q, viewer).await?;
    let artifacts = engine.store().artifacts(run.id).await?;
    let a = artifacts
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| WebError::NotFound(format!("run {} has no file `{name}`", run.id)))?;
    if let Some(at) = run.files_pruned_at {
        return Err(WebError::Gone(format!(
            "run {}: the file `{name}` was removed by retention on {} (sha256 {}, {} bytes)",
            run.id,
            crate::clock::format_ms(at),
            a.sha256,
            a.size
        )));
    }
    let body = crate::runs_data::artifact_bytes(engine, &a)
        .await?
        .ok_or_else(|| WebError::NotFound("the file's contents are not kept any more".into()))?;
    let safe: String = a
        .name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    let disposition = format!(
        "attachment; filename=\"{safe}\"; filename*=UTF-8''{}",
        urlencode(&a.name)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
