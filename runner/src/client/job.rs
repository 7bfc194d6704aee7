//! One claimed run on this host: its script files checked against the
//! approved digests, run in the sandbox, its log streamed while it runs, then
//! its files and outcome delivered, however long the server is away.
//!
//! The spool is the run's record on this host until the server has it:
//! `{spool}/{run}.log` (the masked log, which the runner writes and the
//! streamer reads from the byte the server has) and, once the run ended,
//! `{spool}/{run}.json` (its outcome and files). Both go when the server has
//! accepted the finish or said the run is no longer this runner's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::deliver::{deliver, forward_progress, stream_log};
use super::inputs::{fetch_inputs, inputs};
use super::spool::{Ended, Held, ended_path, log_path};
use super::{Shared, pyenv};
use crate::protocol::{ArtifactInfo, Ending, Finish, Job, ProgressReport, PythonUsed};
use crate::spec::{ExecOutcome, ExecSpec, ExitKind, Limits, Progress, RunId};

/// Runs `job` and delivers what came of it. `slot_done` is called once the
/// script has ended (its slot is free while the delivery goes on).
pub(super) async fn run(shared: Arc<Shared>, job: Job, held: Arc<Held>, slot_done: impl FnOnce()) {
    let run = job.run;
    let log = log_path(&shared.opts.spool, run);
    let python = tokio::select! {
        biased;
        _ = held.cancel.cancelled() => Err((Ending::Cancelled, "cancelled while its Python environment was being prepared".to_string())),
        p = python(&shared, &job) => p,
    };
    let inputs = match python {
        Ok(_) => fetch_inputs(&shared, &job).await,
        Err(_) => Ok(Vec::new()),
    };
    let ready = python.and_then(|py| inputs.map(|files| (py, files)));
    let (ended, sent) = match ready.and_then(|(py, files)| prepare(&shared, &job, &log, py, files))
    {
        Ok((spec, used)) => {
            held.started.store(true, Ordering::Relaxed);
            let (outcome, sent) = execute(&shared, &held, spec, &log).await;
            let mut ended = ended_from(outcome);
            ended.finish.python = used;
            (ended, sent)
        }
        Err((ending, why)) => {
            tracing::warn!(run_id = run, %why, "refused to start the run");
            (refused(&log, ending, why), 0)
        }
    };
    if let Err(e) = keep(&shared.opts.spool, run, &ended) {
        tracing::warn!(run_id = run, error = %e, "could not spool the run's outcome; delivering from memory");
    }
    slot_done();
    deliver(&shared, run, &held, ended, sent).await;
}

/// The interpreter a Python run starts: its `[python]` environment, found or
/// built under the envs folder (progress says so while it builds), or the
/// real binary behind a `python3` command (never a shim per run). `None`: not
/// a Python run.
async fn python(shared: &Shared, job: &Job) -> Result<Option<PythonRun>, (Ending, String)> {
    let program = job.argv.first().map(String::as_str).unwrap_or("");
    if let Some(want) = &job.python {
        let envs = envs_dir(&shared.opts);
        let run = job.run;
        let said = |text: String| {
            let report = ProgressReport { pct: None, text };
            let path = format!("/runs/{run}/progress");
            let http = shared.http.clone();
            tokio::spawn(async move {
                let sent: Result<serde_json::Value, _> =
                    http.post_json(&path, &report, Duration::from_secs(5)).await;
                if let Err(e) = sent
                    && e.status() != Some(200)
                {
                    tracing::debug!(run_id = run, error = %e, "progress not delivered");
                }
            });
        };
        let prepared = pyenv::prepare(&envs, want, said).await.map_err(|why| {
            (
                Ending::NotStarted,
                format!("preparing the Python environment: {why}"),
            )
        })?;
        tracing::info!(run_id = run, env = %prepared.key, cached = prepared.cached, took = ?prepared.took, "python environment ready");
        return Ok(Some(PythonRun {
            program: prepared.python,
            used: PythonUsed {
                interpreter: prepared.interpreter.path.display().to_string(),
                version: prepared.interpreter.version,
                env: Some(prepared.key),
                cached: prepared.cached,
                prepare_ms: prepared.took.as_millis() as u64,
            },
        }));
    }
    if !pyenv::is_python(program) {
        return Ok(None);
    }
    let found = pyenv::resolve_program(program)
        .await
        .map_err(|why| (Ending::NotStarted, why))?;
    Ok(Some(PythonRun {
        program: found.path.clone(),
        used: PythonUsed {
            interpreter: found.path.display().to_string(),
            version: found.version,
            env: None,
            cached: true,
            prepare_ms: 0,
        },
    }))
}

/// Where this runner keeps Python environments: `envs` beside its run
/// folders (`{data}/envs`; for the local runner `data_dir/envs`).
pub fn envs_dir(opts: &super::ClientOptions) -> PathBuf {
    opts.runs_dir
        .parent()
        .map(|p| p.join("envs"))
        .unwrap_or_else(|| PathBuf::from("envs"))
}

/// A Python run's interpreter, and what to report about it.
#[derive(Debug)]
struct PythonRun {
    program: PathBuf,
    used: PythonUsed,
}

/// The spec for `job`, or why it must not start: a script file that is not
/// the approved one refuses the run. A Python run starts `python`'s program
/// with `PYTHONUNBUFFERED=1` and its script's folder on `PYTHONPATH`.
fn prepare(
    shared: &Shared,
    job: &Job,
    log: &Path,
    python: Option<PythonRun>,
    files: Vec<Vec<u8>>,
) -> Result<(ExecSpec, Option<PythonUsed>), (Ending, String)> {
    let scripts = &shared.opts.scripts;
    let mut argv = job.argv.clone();
    let mut script_dir: Option<PathBuf> = None;
    for file in &job.files {
        let rel = Path::new(&file.path);
        let safe = rel.is_relative()
            && rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err((
                Ending::Refused,
                format!(
                    "script file `{}` is not a path under the scripts folder",
                    file.path
                ),
            ));
        }
        let here = scripts.join(rel);
        let bytes = std::fs::read(&here).map_err(|e| {
            (
                Ending::Refused,
                format!(
                    "script file {} cannot be read on this runner ({e}); the approved one is \
                     sha256 {}",
                    here.display(),
                    file.sha256
                ),
            )
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if sha256 != file.sha256 {
            return Err((
                Ending::Refused,
                format!(
                    "script file {} on this runner differs from the approved one (sha256 {sha256}, \
                     approved {}): refused; deploy the approved file or request the run again",
                    here.display(),
                    file.sha256
                ),
            ));
        }
        let absolute = std::path::absolute(&here).unwrap_or(here);
        if script_dir.is_none() && argv.get(1) == Some(&file.path) {
            script_dir = absolute.parent().map(Path::to_path_buf);
        }
        for arg in argv.iter_mut().filter(|a| **a == file.path) {
            *arg = absolute.display().to_string();
        }
    }
    let mut pass_env = Vec::new();
    let mut secrets = shared.opts.mask.clone();
    for name in &job.env {
        if let Ok(v) = std::env::var(name) {
            pass_env.push((name.clone(), v));
        }
    }
    for name in &job.secret_env {
        let value = match shared.opts.secrets.iter().find(|(n, _)| n == name) {
            Some((_, source)) => Some(source.resolve().map_err(|why| (Ending::NotStarted, why))?),
            None => std::env::var(name).ok(),
        };
        if let Some(v) = value {
            secrets.push(v.clone());
            pass_env.push((name.clone(), v));
        }
    }
    let used = python.map(|py| {
        argv[0] = py.program.display().to_string();
        python_env(&mut pass_env, script_dir.as_deref());
        py.used
    });
    let run_dir = fresh_run_dir(&shared.opts.runs_dir, job.run)
        .map_err(|e| (Ending::NotStarted, format!("making the run folder: {e}")))?;
    let inputs = inputs(job, files, &run_dir, &mut argv)?;
    let lib = python_lib(&shared.opts.runs_dir).map_err(|e| {
        (
            Ending::NotStarted,
            format!("writing the execgov Python module: {e}"),
        )
    })?;
    add_python_path(&mut pass_env, &lib);
    let spec = ExecSpec {
        run_id: RunId(job.run),
        argv,
        run_dir,
        pass_env,
        secrets,
        timeout: Duration::from_millis(job.timeout_ms.max(1)),
        kill_grace: Duration::from_millis(job.kill_grace_ms),
        log_path: log.to_path_buf(),
        log_cap: job.log_cap,
        limits: Limits {
            memory: job.memory,
            processes: job.max_processes,
        },
        inputs,
    };
    Ok((spec, used))
}

/// `PYTHONUNBUFFERED=1` (a `print` reaches the log when it is made) and the
/// script's folder first on `PYTHONPATH` (its own modules import), before
/// any `PYTHONPATH` the manifest passes through.
fn python_env(pass_env: &mut Vec<(String, String)>, script_dir: Option<&Path>) {
    pass_env.retain(|(n, _)| n != "PYTHONUNBUFFERED");
    pass_env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    let Some(dir) = script_dir else { return };
    let dir = dir.display().to_string();
    match pass_env.iter_mut().find(|(n, _)| n == "PYTHONPATH") {
        Some((_, v)) if !v.is_empty() => *v = format!("{dir}:{v}"),
        Some((_, v)) => *v = dir,
        None => pass_env.push(("PYTHONPATH".into(), dir)),
    }
}

/// The `execgov` Python module (progress, results; docs/results.md), importable
/// by every Python run.
pub const PYTHON_MODULE: &str = include_str!("execgov.py");

/// `runs_dir/.execgov/lib` holding `execgov.py`, written when missing or
/// different (a run folder must be created fresh by the sandbox, so the module
/// sits beside the run folders rather than in one).
fn python_lib(runs: &Path) -> std::io::Result<PathBuf> {
    let lib = runs.join(".execgov/lib");
    let file = lib.join("execgov.py");
    if std::fs::read(&file).ok().as_deref() != Some(PYTHON_MODULE.as_bytes()) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&lib)?;
        // Readable by a run user whatever this process's umask.
        let open =
            |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
        open(&runs.join(".execgov"), 0o755)?;
        open(&lib, 0o755)?;
        // A name of its own per write: runs start at once and write it together.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = lib.join(format!("execgov.py.{}.{n}", std::process::id()));
        std::fs::write(&tmp, PYTHON_MODULE)?;
        open(&tmp, 0o644)?;
        std::fs::rename(&tmp, &file)?;
    }
    Ok(std::path::absolute(&lib).unwrap_or(lib))
}

/// Puts `lib` last on `PYTHONPATH` (after whatever the manifest passes), so a
/// script's own `execgov` module would win over ours.
fn add_python_path(pass_env: &mut Vec<(String, String)>, lib: &Path) {
    let lib = lib.display().to_string();
    match pass_env.iter_mut().find(|(n, _)| n == "PYTHONPATH") {
        Some((_, v)) if !v.is_empty() => *v = format!("{v}:{lib}"),
        Some((_, v)) => *v = lib,
        None => pass_env.push(("PYTHONPATH".to_string(), lib)),
    }
}

/// `runs_dir/{run}`; a folder left from before is moved aside, never reused.
fn fresh_run_dir(runs: &Path, run: i64) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(runs)?;
    let dir = runs.join(run.to_string());
    if dir.exists() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        std::fs::rename(&dir, runs.join(format!("{run}.old-{now}")))?;
    }
    Ok(dir)
}

/// Runs the script while its log streams to the server and its progress is
/// forwarded.
async fn execute(
    shared: &Arc<Shared>,
    held: &Arc<Held>,
    spec: ExecSpec,
    log: &Path,
) -> (ExecOutcome, u64) {
    let run = spec.run_id.0;
    let (tx, rx) = mpsc::channel::<Progress>(16);
    let ended = CancellationToken::new();
    let streamer = tokio::spawn(stream_log(
        shared.clone(),
        run,
        log.to_path_buf(),
        held.clone(),
        ended.clone(),
    ));
    let forwarder = tokio::spawn(forward_progress(shared.clone(), run, rx));
    let outcome = shared.runner.execute(spec, held.cancel.clone(), tx).await;
    ended.cancel();
    let sent = streamer.await.unwrap_or(0);
    let _ = forwarder.await;
    (outcome, sent)
}

fn ended_from(out: ExecOutcome) -> Ended {
    let limit = out.limit_error();
    let (ending, mut error) = match out.kind {
        ExitKind::Exited(code) => (Ending::Exited { code }, None),
        ExitKind::Signaled(signal) => (Ending::Signaled { signal }, None),
        ExitKind::TimedOut => (Ending::TimedOut, None),
        ExitKind::Cancelled => (Ending::Cancelled, None),
        ExitKind::SpawnFailed(why) => (Ending::NotStarted, Some(why)),
    };
    // "memory limit 512MiB reached" says more than "killed by signal 9".
    if let Some(limit) = limit
        && ending != (Ending::Exited { code: 0 })
    {
        error = Some(limit);
    }
    Ended {
        finish: Finish {
            ending,
            error,
            duration_ms: out.duration.as_millis() as u64,
            log_bytes: out.log_bytes,
            dropped_bytes: out.dropped_bytes,
            tail: out.tail,
            result: out.result,
            python: None,
            artifacts: out
                .artifacts
                .iter()
                .map(|a| ArtifactInfo {
                    name: a.name.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                })
                .collect(),
        },
        files: out
            .artifacts
            .into_iter()
            .map(|a| (a.name, a.path))
            .collect(),
    }
}

/// A run that did not start: the reason is its whole log.
fn refused(log: &Path, ending: Ending, why: String) -> Ended {
    let line = format!("[execgov] {why}\n");
    let log_bytes = match std::fs::write(log, &line) {
        Ok(()) => line.len() as u64,
        Err(_) => 0,
    };
    Ended {
        finish: Finish {
            ending,
            error: Some(why),
            duration_ms: 0,
            log_bytes,
            dropped_bytes: 0,
            tail: String::new(),
            result: None,
            artifacts: Vec::new(),
            python: None,
        },
        files: Vec::new(),
    }
}

/// The outcome of a run whose script a dead runner of ours left: stopped when
/// this runner started, so it may have run partly.
pub(super) fn abandoned(log: &Path) -> Ended {
    let log_bytes = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    Ended {
        finish: Finish {
            ending: Ending::Abandoned,
            error: None,
            duration_ms: 0,
            log_bytes,
            dropped_bytes: 0,
            tail: String::new(),
            result: None,
            artifacts: Vec::new(),
            python: None,
        },
        files: Vec::new(),
    }
}

pub(super) fn keep(spool: &Path, run: i64, ended: &Ended) -> std::io::Result<()> {
    let path = ended_path(spool, run);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(ended).expect("serializes"))?;
    std::fs::rename(tmp, path)
}

pub(super) fn read_kept(spool: &Path, run: i64) -> Option<Ended> {
    let bytes = std::fs::read(ended_path(spool, run)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_starting_together_all_get_the_python_module() {
        let dir = tempfile::tempdir().expect("temp dir");
        let runs = dir.path().to_path_buf();
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let runs = runs.clone();
                std::thread::spawn(move || python_lib(&runs).map(|_| ()))
            })
            .collect();
        for t in threads {
            t.join().expect("thread").expect("each run gets the module");
        }
        let written = std::fs::read_to_string(runs.join(".execgov/lib/execgov.py")).unwrap();
        assert_eq!(written, PYTHON_MODULE);
    }
}
