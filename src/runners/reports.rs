//! What a runner sends about a run it holds: the log (raw bytes at an offset,
//! stored once), progress, files, and the finish that ends the run.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::RunnerApi;
use super::auth::RunnerCaller;
use super::error::{JsonBody, RunnerApiError};
use crate::store::{Artifact, Edit, Finished, Note, Run, RunnerFinish};
use crate::types::{RunId, RunState};
use execgov_runner::protocol::{Ending, Finish, LogStored, ProgressReport, SHA256_HEADER};

/// Beyond the log cap, room for the runner's own `[execgov]` notes.
const NOTES_ROOM: u64 = 64 * 1024;

fn run_id(raw: &str) -> Result<RunId, RunnerApiError> {
    RunId::parse(raw).map_err(|_| RunnerApiError::NotFound(format!("no run {raw}")))
}

#[derive(Debug, Deserialize)]
pub(super) struct At {
    at: u64,
}

/// `GET /runner/v1/runs/{id}/inputs/{n}`: the bytes of the n-th file (from 1)
/// sent with a run this runner holds and runs.
pub(super) async fn input(
    State(api): State<RunnerApi>,
    RunnerCaller(runner): RunnerCaller,
    Path((id, n)): Path<(String, usize)>,
) -> Result<Vec<u8>, RunnerApiError> {
    let id = run_id(&id)?;
    running(&api, id, &runner.name).await?;
    let data = match n.checked_sub(1) {
        Some(i) => api.engine.store().run_input_data(id, i as i64).await?,
        None => None,
    };
    data.ok_or_else(|| RunnerApiError::NotFound(format!("run {id} has no file {n}")))
}

/// `POST /runner/v1/runs/{id}/log?at=N`.
pub(super) async fn log(
    State(api): State<RunnerApi>,
    RunnerCaller(runner): RunnerCaller,
    Path(id): Path<String>,
    Query(At { at }): Query<At>,
    body: Bytes,
) -> Result<Json<LogStored>, RunnerApiError> {
    let id = run_id(&id)?;
    let cap = api.engine.config().runner.log_cap + NOTES_ROOM;
    let stored = api
        .engine
        .store()
        .append_log(id, &runner.name, at, body.to_vec(), cap)
        .await?;
    Ok(Json(LogStored { stored }))
}

/// The run, if this runner holds it and it is running.
async fn running(api: &RunnerApi, id: RunId, runner: &str) -> Result<Run, RunnerApiError> {
    let run = match api.engine.store().get_run(id).await {
        Ok(r) if r.worker.as_deref() == Some(runner) => r,
        Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {
            return Err(RunnerApiError::NotFound(format!(
                "this runner holds no run {id}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if run.state != RunState::Running {
        return Err(RunnerApiError::Conflict {
            message: format!("run {id} is {}, not running", run.state),
            expected_at: None,
        });
    }
    Ok(run)
}

/// `POST /runner/v1/runs/{id}/progress`.
pub(super) async fn progress(
    State(api): State<RunnerApi>,
    RunnerCaller(runner): RunnerCaller,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<ProgressReport>,
) -> Result<StatusCode, RunnerApiError> {
    let id = run_id(&id)?;
    running(&api, id, &runner.name).await?;
    let text: String = p.text.chars().take(500).collect();
    let pct = p.pct.map(|p| p.min(100));
    api.engine
        .store()
        .set_progress(id, pct.map(i64::from), &text)
        .await?;
    api.engine.emit_progress(id, pct, text);
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /runner/v1/runs/{id}/artifacts/{name}`: the bytes must match the
/// digest the runner says they have.
pub(super) async fn artifact(
    State(api): State<RunnerApi>,
    RunnerCaller(runner): RunnerCaller,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, RunnerApiError> {
    let id = run_id(&id)?;
    let valid = !name.is_empty()
        && name.len() <= 255
        && !name.contains(['/', '\0'])
        && name != "."
        && name != "..";
    if !valid {
        return Err(RunnerApiError::BadRequest(format!(
            "`{name}` is not a file name (no `/`, at most 255 bytes)"
        )));
    }
    let said = headers
        .get(SHA256_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RunnerApiError::BadRequest(format!("send the file's {SHA256_HEADER}")))?;
    let sha256 = hex::encode(Sha256::digest(&body));
    if sha256 != said.to_ascii_lowercase() {
        return Err(RunnerApiError::BadRequest(format!(
            "the file `{name}` does not match its digest: sent {said}, received {sha256}; send it again"
        )));
    }
    let artifact = Artifact {
        run_id: id,
        name: name.clone(),
        path: name,
        size: body.len() as i64,
        sha256,
    };
    api.engine
        .store()
        .save_artifact(&runner.name, artifact, body.to_vec())
        .await?;
    Ok(StatusCode::CREATED)
}

/// `POST /runner/v1/runs/{id}/finish`.
pub(super) async fn finish(
    State(api): State<RunnerApi>,
    RunnerCaller(runner): RunnerCaller,
    Path(id): Path<String>,
    JsonBody(f): JsonBody<Finish>,
) -> Result<Json<Value>, RunnerApiError> {
    let id = run_id(&id)?;
    let engine = &api.engine;
    let actor = format!("runner:{}", runner.name);
    let f = with_parsed_output(&api, id, f).await?;
    let (to, action, edit, details) = outcome(&runner.name, f, engine.now());
    let note = Note {
        actor,
        action,
        details,
        now: engine.now(),
    };
    let finish = RunnerFinish {
        run: id,
        runner: runner.name.clone(),
        to,
        note,
        edit: edit.0,
        log_bytes: edit.1,
    };
    match engine.store().runner_finish(finish).await? {
        Finished::Done(run) => {
            tracing::info!(run_id = %run.id, state = %run.state, runner = %runner.name, "run finished");
            engine.emit(&run);
            Ok(Json(json!({ "state": run.state })))
        }
        Finished::WrittenOff(run) => Err(RunnerApiError::Conflict {
            message: format!(
                "run {} was written off ({}) before this report came; the report is kept in \
                 the audit log, and the run is not run again",
                run.id, run.state
            ),
            expected_at: None,
        }),
    }
}

/// With the manifest's `output = "json" | "csv"`, the script's printed output
/// read from the stored log as the result, unless the script wrote one itself;
/// a log that was capped is incomplete, so it is not read. Output that does not
/// parse says why in the run's error and leaves the state as the exit made it.
async fn with_parsed_output(
    api: &RunnerApi,
    id: RunId,
    mut f: Finish,
) -> Result<Finish, RunnerApiError> {
    if f.result.is_some() || f.dropped_bytes > 0 || !matches!(f.ending, Ending::Exited { .. }) {
        return Ok(f);
    }
    let store = api.engine.store();
    let run = store.get_run(id).await?;
    let Some(format) = api
        .engine
        .manifest(run.script.as_str())
        .map(|m| m.output)
        .filter(|o| *o != crate::manifest::OutputFormat::Text)
    else {
        return Ok(f);
    };
    let log = store.log_bytes(id, 0, f.log_bytes).await?;
    match super::output::parse(format, &log) {
        Ok(result) => f.result = result,
        Err(why) => {
            f.error = Some(match f.error.take() {
                Some(e) => format!("{e}; {why}"),
                None => why,
            })
        }
    }
    Ok(f)
}

/// The state a runner's finish leads to, its audit action, the edit of the
/// run (with the log size the finish needs stored first) and the details.
fn outcome(runner: &str, f: Finish, _now: i64) -> (RunState, String, (Edit, u64), Value) {
    let (state, exit_code, mut error, action) = match &f.ending {
        Ending::Exited { code: 0 } => (RunState::Succeeded, Some(0), None, None),
        Ending::Exited { code } => (RunState::Failed, Some(i64::from(*code)), None, None),
        Ending::Signaled { signal } => (
            RunState::Failed,
            None,
            Some(format!("killed by signal {signal}")),
            None,
        ),
        Ending::TimedOut => (
            RunState::TimedOut,
            None,
            Some("timed out; every process of the run was stopped".to_string()),
            None,
        ),
        Ending::Cancelled => (RunState::Cancelled, None, None, None),
        Ending::NotStarted => (RunState::Failed, None, None, None),
        Ending::Refused => (
            RunState::Failed,
            None,
            None,
            Some("run.refused_by_runner".to_string()),
        ),
        Ending::Abandoned => (
            RunState::Interrupted,
            None,
            Some(format!(
                "its runner {runner} restarted and stopped what was left of it; the script had \
                 started, so it may have run partly"
            )),
            None,
        ),
    };
    if let Some(e) = &f.error {
        error = Some(match error {
            Some(ours) => format!("{ours}; {e}"),
            None => e.clone(),
        });
    }
    let action = action.unwrap_or_else(|| format!("run.{}", state.as_str()));
    let details = json!({
        "exit_code": exit_code,
        "duration_ms": f.duration_ms,
        "log_bytes": f.log_bytes,
        "dropped_bytes": f.dropped_bytes,
        "artifacts": f.artifacts,
        "error": error,
        "ending": f.ending,
        "python": f.python,
    });
    let log_bytes = f.log_bytes;
    let started = !matches!(f.ending, Ending::NotStarted | Ending::Refused);
    let edit = Edit::new(move |r| {
        if exit_code.is_some() {
            r.exit_code = exit_code;
        }
        if error.is_some() {
            r.error = error;
        }
        r.log_bytes = f.log_bytes as i64;
        r.log_dropped = f.dropped_bytes as i64;
        r.output_tail = Some(f.tail);
        if f.result.is_some() {
            r.result = f.result;
        }
        if started && r.script_started_at.is_none() {
            r.script_started_at = r.started_at;
        }
    });
    (state, action, (edit, log_bytes), details)
}
