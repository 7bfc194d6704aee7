//! `/api/v1`: runs (list, detail, start), decisions and scripts as JSON, for the
//! person behind an API token (`Authorization: Bearer egv_…`), under the same rules
//! and engine calls as chat and the web UI. Described by `/api/v1/openapi.json`.

use super::auth::ApiCaller;
use super::runs_list::ListParams;
use super::{ApiError, WebError, WebState, openapi, view};
use crate::engine::{Engine, Reply, ReplyKind};
use crate::manifest::{Manifest, ParamKind};
use crate::policy::{self, Access};
use crate::store::Run;
use crate::types::RunId;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route(
            "/runs",
            // A file parameter's largest file, base64, and the JSON around it.
            get(list_runs)
                .post(start_run)
                .layer(axum::extract::DefaultBodyLimit::max(
                    (crate::manifest::MAX_FILE_SIZE as usize / 3 + 1) * 4 + 1024 * 1024,
                )),
        )
        .route("/runs/{id}", get(run_detail))
        .route("/runs/{id}/decision", post(decide))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/scripts", get(list_scripts))
        .route("/scripts/{name}", get(script_detail))
}

/// A run as the API shows it.
pub(crate) fn run_json(engine: &Engine, r: &Run) -> Value {
    json!({
        "id": r.id,
        "script": r.script,
        "state": r.state,
        "args": r.args,
        "requester": r.requester,
        "requester_person": r.requester_person,
        "place": crate::engine::render::place_text(r),
        "reason": r.reason,
        "risk": r.risk,
        "quorum": r.quorum,
        "expires_at": r.expires_at,
        "created_at": r.created_at,
        "queued_at": r.queued_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_ms": r.started_at.zip(r.finished_at).map(|(s, f)| f - s),
        "exit_code": r.exit_code,
        "error": r.error,
        "result": r.result,
        "progress_pct": r.progress_pct,
        "progress_text": r.progress_text,
        "url": format!("{}/runs/{}", engine.config().web.public_url.trim_end_matches('/'), r.id),
    })
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t)
        .map_err(|e| ApiError(WebError::BadRequest(e.body_text())))
}

/// `GET /api/v1/runs`: the same filters as `/runs`, newest first.
async fn list_runs(
    State(state): State<WebState>,
    caller: ApiCaller,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine();
    let query = params.to_query(engine, &caller.actor())?;
    let actor = caller.actor();
    let fetched = engine.store().query_runs(&query).await?;
    let next = (fetched.len() as i64 >= query.limit)
        .then(|| fetched.last().map(|r| r.id))
        .flatten();
    let runs: Vec<Value> = fetched
        .iter()
        .filter(|r| engine.may_view(&actor, r))
        .map(|r| run_json(engine, r))
        .collect();
    Ok(Json(json!({ "runs": runs, "next_before": next })))
}

/// `GET /api/v1/runs/{id}`: the run with its approvals, files and audit timeline.
async fn run_detail(
    State(state): State<WebState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine();
    let id = RunId::parse(&id).map_err(|_| WebError::NotFound(format!("no run {id}")))?;
    let run = view::visible_run(engine, &caller.actor(), id).await?;
    Ok(Json(run_document(engine, &run).await?))
}

/// One run as one JSON document, with its approvals, files, audit timeline,
/// output tail and audit link: the API's run and `execgov show ID --json`.
pub(crate) async fn run_document(
    engine: &Engine,
    run: &Run,
) -> Result<Value, crate::store::StoreError> {
    let id = run.id;
    let store = engine.store();
    let approvals = store.approvals(id).await?;
    let artifacts = store.artifacts(id).await?;
    let timeline = store.audit_entries(Some(id), 0, 1000).await?;
    let base = engine
        .config()
        .web
        .public_url
        .trim_end_matches('/')
        .to_string();
    let mut v = run_json(engine, run);
    v["approvals"] = json!(approvals);
    v["artifacts"] = artifacts
        .iter()
        .map(|a| json!({ "name": a.name, "size": a.size, "sha256": a.sha256, "url": format!("{base}/runs/{id}/artifacts/{}", super::layout::urlencode(&a.name)) }))
        .collect();
    v["timeline"] = timeline
        .iter()
        .map(|e| json!({ "seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "details": e.details, "hash": e.hash }))
        .collect();
    v["output_tail"] = json!(run.output_tail.as_deref().map(super::strip_ansi));
    v["audit_link"] = json!(engine.audit_link(run));
    v["retention"] = json!({
        "log_pruned_at": run.log_pruned_at,
        "log_sha256": run.log_sha256,
        "log_bytes": run.log_bytes,
        "files_pruned_at": run.files_pruned_at,
        "output_pruned_at": run.output_pruned_at,
        "notes": crate::retention::notes(run, !artifacts.is_empty()),
    });
    Ok(v)
}

#[derive(Debug, Deserialize)]
struct StartRun {
    script: String,
    #[serde(default)]
    args: serde_json::Map<String, Value>,
    /// Break-glass: the reason to start without waiting for approval.
    #[serde(default)]
    break_glass: Option<String>,
}

/// `POST /api/v1/runs`: asks for a run as `web:local` through the engine's entry
/// point for requests: 404 for an unknown script, 400 for bad arguments (both
/// audited as `run.refused`), 403 for a refusal recorded as a run.
async fn start_run(
    State(state): State<WebState>,
    caller: ApiCaller,
    b: Result<Json<StartRun>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(b)?;
    let engine = state.engine();
    let mut raw = Vec::with_capacity(req.args.len());
    let mut files = Vec::new();
    for (k, v) in req.args {
        let text = match v {
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            // A file parameter: `{"name": "x.csv", "base64": "…"}`.
            Value::Object(f) if f.contains_key("base64") => {
                use base64::Engine as _;
                let name = f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(&k)
                    .to_string();
                let data = f
                    .get("base64")
                    .and_then(Value::as_str)
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .ok_or_else(|| {
                        WebError::BadRequest(format!("parameter `{k}`: `base64` is not base64"))
                    })?;
                files.push(execgov_chat::Attachment {
                    name: name.clone(),
                    data,
                });
                name
            }
            _ => {
                return Err(WebError::BadRequest(format!(
                    "parameter `{k}`: give a string, number or boolean (a file: {{\"name\": …, \"base64\": …}})"
                ))
                .into());
            }
        };
        raw.push((k, text));
    }
    // The entry point chat uses, so a refused request is audited as from chat.
    let answer = engine
        .request_run_checked(
            &caller.actor(),
            &view::web_place(),
            &req.script,
            &raw,
            &files,
            req.break_glass.as_deref(),
        )
        .await?;
    if answer.reply.run.is_none() && answer.reply.is_error() {
        return Err(match answer.arg_error {
            Some(e) => WebError::BadRequest(e.to_string()),
            None if answer.forbidden => WebError::Forbidden(answer.reply.text),
            None => WebError::NotFound(answer.reply.text),
        }
        .into());
    }
    Ok(reply_response(engine, answer.reply, StatusCode::CREATED))
}

/// An engine reply as JSON: `ok` (with `status`) for success, 403 for a refusal
/// that was recorded as a run, 409 for anything else the engine refused.
fn reply_response(engine: &Engine, reply: Reply, ok: StatusCode) -> Response {
    let run = reply.run.as_ref().map(|r| run_json(engine, r));
    match reply.kind {
        ReplyKind::Error if run.is_some() => (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": reply.text, "status": 403, "run": run })),
        )
            .into_response(),
        ReplyKind::Error => (
            StatusCode::CONFLICT,
            Json(json!({ "error": reply.text, "status": 409 })),
        )
            .into_response(),
        _ => (ok, Json(json!({ "message": reply.text, "run": run }))).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct Decision {
    decision: String,
    reason: Option<String>,
    /// The approver's authenticator code, for a critical run.
    code: Option<String>,
}

/// `POST /api/v1/runs/{id}/decision`: `{"decision": "approve" | "deny", "reason": …,
/// "code": "123456"}` (`code`: a critical run's step-up).
async fn decide(
    State(state): State<WebState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    b: Result<Json<Decision>, JsonRejection>,
) -> Result<Response, ApiError> {
    let engine = state.engine();
    let id = RunId::parse(&id).map_err(|_| WebError::NotFound(format!("no run {id}")))?;
    let actor = caller.actor();
    view::visible_run(engine, &actor, id).await?;
    let d = body(b)?;
    let approve = match d.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(WebError::BadRequest(format!(
                "decision must be `approve` or `deny`, not `{other}`"
            ))
            .into());
        }
    };
    let reason = d
        .reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    let proof = d.code.map(|code| crate::engine::step_up::Proof {
        code,
        seen_by_others: false,
    });
    let reply = engine.decide(&actor, id, approve, reason, proof).await?;
    Ok(reply_response(engine, reply, StatusCode::OK))
}

/// `POST /api/v1/runs/{id}/cancel`: withdraws a run that has not started, or
/// stops a running one (its requester or an approver of its script).
async fn cancel(
    State(state): State<WebState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine();
    let id = RunId::parse(&id).map_err(|_| WebError::NotFound(format!("no run {id}")))?;
    let actor = caller.actor();
    view::visible_run(engine, &actor, id).await?;
    let reply = engine.cancel(&actor, id).await?;
    Ok(reply_response(engine, reply, StatusCode::OK))
}

/// A manifest as the API shows it, with what `caller` may do with it.
fn script_json(engine: &Engine, caller: &ApiCaller, m: &Manifest) -> Value {
    let params: Vec<Value> = m
        .params
        .iter()
        .map(|p| {
            let mut v = json!({
                "name": p.name,
                "type": p.kind.type_name(),
                "required": p.required && p.default.is_none(),
                "default": p.default,
                "description": p.description,
            });
            match &p.kind {
                ParamKind::String { pattern, max_len } => {
                    v["pattern"] = json!(pattern.as_ref().map(|r| r.as_str()));
                    v["max_len"] = json!(max_len);
                }
                ParamKind::Int { min, max } => {
                    v["min"] = json!(min);
                    v["max"] = json!(max);
                }
                ParamKind::Float { min, max } => {
                    v["min"] = json!(min);
                    v["max"] = json!(max);
                }
                ParamKind::Enum { choices } => v["choices"] = json!(choices),
                ParamKind::Bool | ParamKind::Date => {}
                ParamKind::File {
                    max_size,
                    extensions,
                } => {
                    v["max_size"] = json!(max_size);
                    v["extensions"] = json!(extensions);
                }
            }
            v
        })
        .collect();
    let (may_run, refused) = match view::may_run(engine, &caller.actor(), m) {
        Access::Allowed => (true, None),
        Access::Refused(why) => (false, Some(why)),
    };
    let schedules: Vec<Value> = m
        .schedules
        .iter()
        .map(|s| {
            let next: Vec<String> = crate::scheduler::FireTimes::of(s)
                .upcoming(engine.now(), 3)
                .iter()
                .map(|t| t.to_rfc3339())
                .collect();
            json!({ "name": s.name, "cron": s.cron, "timezone": s.timezone.name(), "args": s.args, "post_to": s.post_to, "next": next })
        })
        .collect();
    json!({
        "name": m.name,
        "description": m.description,
        "risk": m.risk.as_str(),
        "timeout_s": m.timeout.as_secs(),
        "max_concurrent": m.max_concurrent,
        "params": params,
        "who_may_run": m.access.run.iter().map(policy::principal_text).collect::<Vec<_>>(),
        "channels": m.access.channels,
        "approval": m.approval.as_ref().filter(|_| m.risk.needs_approval()).map(|a| json!({
            "approvers": a.approvers.iter().map(policy::principal_text).collect::<Vec<_>>(),
            "quorum": a.quorum.max(1),
            "expires_s": a.expires.as_secs(),
            "channel": a.channel,
            "self_approval": a.self_approval,
        })),
        "schedules": schedules,
        "may_run": may_run,
        "may_run_refused": refused,
    })
}

/// `GET /api/v1/scripts`.
async fn list_scripts(State(state): State<WebState>, caller: ApiCaller) -> Json<Value> {
    let engine = state.engine();
    let scripts: Vec<Value> = engine
        .catalog()
        .iter()
        .map(|m| script_json(engine, &caller, m))
        .collect();
    Json(json!({ "scripts": scripts }))
}

/// `GET /api/v1/scripts/{name}`.
async fn script_detail(
    State(state): State<WebState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine();
    let m = engine
        .manifest(&name)
        .ok_or_else(|| WebError::NotFound(format!("no script `{name}`")))?;
    Ok(Json(script_json(engine, &caller, &m)))
}
