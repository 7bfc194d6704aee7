//! One claimed run, from `running` to its final state.

use super::PoolOptions;
use crate::engine::Engine;
use crate::manifest::Args;
use crate::runner::{self, ExecOutcome, ExecSpec, ExitKind};
use crate::store::{Artifact, Run, RunPatch};
use crate::types::{RunId, RunState};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs `run` (already `running`, claimed by us) and records its end.
#[tracing::instrument(skip_all, fields(run_id = %run.id, script = %run.script))]
pub(super) async fn run_one(
    engine: &Engine,
    opts: &PoolOptions,
    run: Run,
    stop: CancellationToken,
) {
    engine.emit(&run);
    let id = run.id;
    let cancel = stop.child_token();
    engine.track_local(id, cancel.clone());
    let result = match prepare(engine, opts, &run) {
        Ok(spec) => Ok(execute_with_lease(engine, opts, spec, cancel).await),
        Err(why) => Err(why),
    };
    engine.untrack_local(id);
    if let Err(e) = finish(engine, opts, id, result).await {
        tracing::error!(
            error = format!("{e:#}"),
            "recording the end of a run failed"
        );
    }
}

/// Builds the process spec from the manifest as it is now, refusing to run
/// anything other than what was requested (and approved).
fn prepare(engine: &Engine, opts: &PoolOptions, run: &Run) -> Result<ExecSpec, String> {
    let Some(manifest) = engine.manifest(&run.script) else {
        return Err(format!("script `{}` is no longer registered", run.script));
    };
    let digest = manifest
        .current_digest()
        .map_err(|e| format!("reading the manifest and script: {e}"))?;
    if digest != run.manifest_digest {
        return Err(
            "the manifest or script changed after the run was requested; request it again".into(),
        );
    }
    let args: Args = serde_json::from_value(run.args.clone())
        .map_err(|e| format!("stored arguments unreadable: {e}"))?;
    let argv = manifest.argv(&args);
    let mut pass_env = Vec::new();
    let mut secrets = engine.config().secret_values();
    for name in manifest.env.iter().chain(manifest.secret_env.iter()) {
        if let Ok(v) = std::env::var(name) {
            if manifest.secret_env.contains(name) {
                secrets.push(v.clone());
            }
            pass_env.push((name.clone(), v));
        }
    }
    let run_dir =
        fresh_run_dir(&opts.data_dir, run.id).map_err(|e| format!("making the run folder: {e}"))?;
    let logs = opts.data_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("making {}: {e}", logs.display()))?;
    Ok(ExecSpec {
        run_id: run.id,
        argv,
        run_dir,
        pass_env,
        secrets,
        timeout: Duration::from_millis(run.timeout_ms.max(1) as u64),
        kill_grace: opts.kill_grace,
        log_path: logs.join(format!("{}.log", run.id)),
        log_cap: opts.log_cap,
    })
}

/// `data_dir/runs/{id}`; a folder left from an earlier database is moved aside, never reused.
fn fresh_run_dir(data_dir: &std::path::Path, id: RunId) -> std::io::Result<PathBuf> {
    let runs = data_dir.join("runs");
    std::fs::create_dir_all(&runs)?;
    let dir = runs.join(id.to_string());
    if dir.exists() {
        let aside = runs.join(format!(
            "{id}.old-{}",
            chrono::Utc::now().timestamp_millis()
        ));
        std::fs::rename(&dir, aside)?;
    }
    Ok(dir)
}

/// Executes while renewing the lease and watching for a cancel requested
/// through the store (by another process).
async fn execute_with_lease(
    engine: &Engine,
    opts: &PoolOptions,
    spec: ExecSpec,
    cancel: CancellationToken,
) -> ExecOutcome {
    let id = spec.run_id;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<runner::Progress>(64);
    let exec = runner::execute(spec, cancel.clone(), tx);
    tokio::pin!(exec);
    let every = Duration::from_millis((opts.lease_ms / 3).max(100) as u64);
    let mut lease = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let store = engine.store();
    let mut progress_open = true;
    loop {
        tokio::select! {
            outcome = &mut exec => return outcome,
            p = rx.recv(), if progress_open => match p {
                Some(p) => {
                    let pct = p.percent.map(i64::from);
                    if let Err(e) = store.set_progress(id, pct, &p.text).await {
                        tracing::warn!(error = %e, "recording progress failed");
                    }
                    engine.emit_progress(id, p.percent, p.text);
                }
                None => progress_open = false,
            },
            _ = lease.tick() => {
                let now = engine.now();
                match store.renew_lease(id, &opts.worker_id, now + opts.lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!("lost the lease of a running run; stopping it");
                        cancel.cancel();
                    }
                    Err(e) => tracing::warn!(error = %e, "renewing the lease failed"),
                }
                if let Ok(r) = store.get_run(id).await && r.cancel_requested {
                    cancel.cancel();
                }
            }
        }
    }
}

async fn finish(
    engine: &Engine,
    opts: &PoolOptions,
    id: RunId,
    result: Result<ExecOutcome, String>,
) -> anyhow::Result<()> {
    let now = engine.now();
    let actor = format!("worker:{}", opts.worker_id);
    let (state, patch, details) = match result {
        Err(why) => (
            RunState::Failed,
            RunPatch {
                error: Some(why.clone()),
                ..RunPatch::default()
            },
            json!({ "error": why }),
        ),
        Ok(out) => {
            for a in &out.artifacts {
                engine
                    .store()
                    .add_artifact(&Artifact {
                        run_id: id,
                        name: a.name.clone(),
                        path: a.path.display().to_string(),
                        size: a.size as i64,
                        sha256: a.sha256.clone(),
                    })
                    .await?;
            }
            let (state, exit_code, error) = match &out.kind {
                ExitKind::Exited(0) => (RunState::Succeeded, Some(0), None),
                ExitKind::Exited(c) => (RunState::Failed, Some(*c as i64), None),
                ExitKind::Signaled(s) => (
                    RunState::Failed,
                    None,
                    Some(format!("killed by signal {s}")),
                ),
                ExitKind::TimedOut => (
                    RunState::TimedOut,
                    None,
                    Some("timed out; its process group was stopped".to_string()),
                ),
                ExitKind::Cancelled => (RunState::Cancelled, None, None),
                ExitKind::SpawnFailed(m) => (RunState::Failed, None, Some(m.clone())),
            };
            let details = json!({
                "exit_code": exit_code,
                "duration_ms": out.duration.as_millis() as i64,
                "log_bytes": out.log_bytes,
                "dropped_bytes": out.dropped_bytes,
                "artifacts": out.artifacts.iter().map(|a| json!({"name": a.name, "sha256": a.sha256, "size": a.size})).collect::<Vec<_>>(),
                "error": error,
            });
            let patch = RunPatch {
                exit_code,
                error,
                log_path: None,
                log_bytes: Some(out.log_bytes as i64),
                log_dropped: Some(out.dropped_bytes as i64),
                output_tail: Some(out.tail),
                result: out.result,
                reason: None,
            };
            (state, patch, details)
        }
    };
    let patch = RunPatch {
        log_path: Some(
            opts.data_dir
                .join("logs")
                .join(format!("{id}.log"))
                .display()
                .to_string(),
        ),
        ..patch
    };
    let action = format!("run.{state}");
    let run = engine
        .store()
        .transition(id, state, &actor, &action, details, patch, now)
        .await?;
    tracing::info!(state = %run.state, "run finished");
    crate::web::metrics::run_finished(&run);
    engine.emit(&run);
    Ok(())
}
