//! `/runs/{id}?t=…`: the page an audit link opens — the run's request,
//! decisions, timeline, result and log — plus its full log and artifacts
//! behind the same token.

use super::WebError;
use crate::clock::{format_duration_ms, format_ms};
use crate::engine::Engine;
use crate::store::Run;
use crate::types::RunId;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use std::sync::Arc;

/// How much of the log the page shows inline; the rest is one click away.
const PAGE_LOG_BYTES: u64 = 256 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    t: Option<String>,
}

/// Checks the link token and loads the run. A bad token and a missing run get
/// the same 403, so a link says nothing about runs it was not made for.
async fn authorised_run(engine: &Engine, id: &str, q: &TokenQuery) -> Result<Run, WebError> {
    let forbidden = || WebError::Forbidden("this link does not open that run (wrong, expired or missing token)".into());
    let id = RunId::parse(id).map_err(|_| forbidden())?;
    let token = q.t.as_deref().ok_or_else(forbidden)?;
    engine.links().verify(id, token, engine.now()).map_err(|e| WebError::Forbidden(e.to_string()))?;
    match engine.store().get_run(id).await {
        Ok(run) => Ok(run),
        Err(crate::store::StoreError::NotFound(_)) => Err(forbidden()),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn run_page(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Markup, WebError> {
    let run = authorised_run(&engine, &id, &q).await?;
    let store = engine.store();
    let approvals = store.approvals(run.id).await?;
    let timeline = store.audit_entries(Some(run.id), 0, 500).await?;
    let artifacts = store.artifacts(run.id).await?;
    let token = q.t.unwrap_or_default();
    let (log, log_truncated) = read_log_tail(&run).await;
    let args = crate::engine::render::stored_args_text(&run);
    Ok(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Run " (run.id) " · " (run.script) " · ExecGov" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "Run " (run.id) ": " code { (run.script) } }
                    span class=(format!("state {}", run.state)) { (run.state) }
                }
                section {
                    h2 { "Request" }
                    dl {
                        dt { "Arguments" } dd { code { (if args.is_empty() { "(none)".to_string() } else { args }) } }
                        dt { "Requested by" } dd { (run.requester) }
                        dt { "Where" } dd { (crate::engine::render::place_text(&run)) }
                        dt { "When" } dd { (format_ms(run.created_at)) }
                        @if let Some(r) = &run.reason { dt { "Reason" } dd { (r) } }
                        @if run.quorum > 0 {
                            dt { "Approval" }
                            dd {
                                (approvals.iter().filter(|a| a.approve).count()) " of " (run.quorum) " needed"
                                @for a in &approvals {
                                    br;
                                    (a.approver) " " (if a.approve { "approved" } else { "denied" }) " at " (format_ms(a.at))
                                    @if let Some(r) = &a.reason { ": " (r) }
                                }
                            }
                        }
                        dt { "Manifest digest" } dd { code class="digest" { (run.manifest_digest) } }
                    }
                }
                section {
                    h2 { "Outcome" }
                    dl {
                        @if let (Some(s), Some(f)) = (run.started_at, run.finished_at) {
                            dt { "Duration" } dd { (format_duration_ms(f - s)) }
                        }
                        @if let Some(c) = run.exit_code { dt { "Exit code" } dd { (c) } }
                        @if let Some(e) = &run.error { dt { "Error" } dd { (e) } }
                    }
                    @if let Some(result) = &run.result { (result_table(result)) }
                    @if !artifacts.is_empty() {
                        h3 { "Files" }
                        ul {
                            @for a in &artifacts {
                                li {
                                    a href=(format!("/runs/{}/artifacts/{}?t={}", run.id, urlencode(&a.name), token)) { (a.name) }
                                    " (" (a.size) " bytes, sha256 " code class="digest" { (a.sha256) } ")"
                                }
                            }
                        }
                    }
                }
                section {
                    h2 { "Timeline" }
                    ol class="timeline" {
                        @for e in &timeline {
                            li { time { (format_ms(e.at)) } " " strong { (e.action) } " by " (e.actor) }
                        }
                    }
                }
                section {
                    h2 { "Log" }
                    @if run.log_dropped > 0 {
                        p class="note" { "The log was capped; " (run.log_dropped) " bytes were dropped." }
                    }
                    @if log_truncated {
                        p class="note" { "Showing the last 256 KiB. " a href=(format!("/runs/{}/log?t={}", run.id, token)) { "Full log" } }
                    }
                    pre class="log" { (log) }
                }
            }
        }
    })
}

/// A structured result as a table: an object's keys, or a list of objects' columns.
fn result_table(v: &serde_json::Value) -> Markup {
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    html! {
        h3 { "Result" }
        @match v {
            serde_json::Value::Object(map) => table { @for (k, v) in map { tr { th { (k) } td { (cell(v)) } } } },
            serde_json::Value::Array(rows) if rows.iter().all(|r| r.is_object()) && !rows.is_empty() => {
                @let cols: Vec<String> = rows[0].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
                table {
                    tr { @for c in &cols { th { (c) } } }
                    @for r in rows { tr { @for c in &cols { td { (r.get(c).map(cell).unwrap_or_default()) } } } }
                }
            }
            other => pre { (serde_json::to_string_pretty(other).unwrap_or_default()) },
        }
    }
}

/// The log's last [`PAGE_LOG_BYTES`], ANSI colour codes stripped.
async fn read_log_tail(run: &Run) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let Some(path) = &run.log_path else {
        return (String::from("(no log yet)"), false);
    };
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return (String::from("(the log file is not on this server)"), false);
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(PAGE_LOG_BYTES);
    if f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return (String::new(), false);
    }
    let mut buf = Vec::with_capacity((len - start) as usize);
    let _ = f.read_to_end(&mut buf).await;
    (strip_ansi(&String::from_utf8_lossy(&buf)), start > 0)
}

/// Removes ANSI escape sequences (colours, cursor moves) from log text.
pub fn strip_ansi(s: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07").expect("valid regex"));
    re.replace_all(s, "").into_owned()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) async fn run_log(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Response, WebError> {
    let run = authorised_run(&engine, &id, &q).await?;
    let path = run.log_path.ok_or_else(|| WebError::NotFound("this run has no log yet".into()))?;
    let body = tokio::fs::read(&path)
        .await
        .map_err(|_| WebError::NotFound("the log file is not on this server".into()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

pub(super) async fn artifact(
    State(engine): State<Arc<Engine>>,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<TokenQuery>,
) -> Result<Response, WebError> {
    let run = authorised_run(&engine, &id, &q).await?;
    let artifacts = engine.store().artifacts(run.id).await?;
    let a = artifacts
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| WebError::NotFound(format!("run {} has no file `{name}`", run.id)))?;
    let body = tokio::fs::read(&a.path)
        .await
        .map_err(|_| WebError::NotFound("the file is not on this server".into()))?;
    let disposition = format!("attachment; filename=\"{}\"", a.name.replace('"', ""));
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response())
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#222}
header{display:flex;gap:1rem;align-items:center;flex-wrap:wrap}h1{font-size:1.4rem}
.state{padding:.2rem .6rem;border-radius:1rem;background:#ddd;font-weight:600}
.state.succeeded{background:#c8f0c8}.state.failed,.state.timed_out,.state.rejected,.state.refused{background:#f6c9c9}
.state.awaiting_approval,.state.queued,.state.running{background:#fbeab5}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}dd{margin:0}
.digest{font-size:.75rem;word-break:break-all}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
pre.log{background:#111;color:#eee;padding:.8rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.note{color:#a60}.timeline{padding-left:1.2rem}";
