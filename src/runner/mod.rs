//! The runner: one script as a child process, governed.
//!
//! The child gets a fresh run folder (its working directory and `HOME`), an
//! environment cleared down to what [`child_env`] lists, and a process group of
//! its own, so a timeout or a cancel stops it and everything it started. Its
//! stdout and stderr go to a capped log with secrets masked; `::progress` lines
//! are forwarded; its result file and output folder are picked up at the end.
//!
//! # Layout
//! - `spawn`: the environment, finding the program, start errors, the process group.
//! - `output`: reading both pipes line by line into the log, the tail and progress.
//! - `mask`: replacing secret values with `***`, also across reads.
//! - `log`: the log file with its size cap and `[execgov]` notes.
//! - `artifacts`: the result JSON and the hashed output files.

mod artifacts;
mod log;
mod mask;
mod output;
mod spawn;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use crate::types::RunId;
use log::CappedLog;
use mask::Masker;
use output::Capture;
use spawn::GroupGuard;

/// After the group is killed, how long to keep reading output still in the
/// pipes. Reading normally ends at once (every writer is dead); only a process
/// that left the group can hold the pipes open, and it is not waited for.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// Everything needed to run one script once.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub run_id: RunId,
    /// `argv[0]` is a program name (looked up in the child's `PATH`) or a path
    /// (a relative one is taken from this process's working directory). No shell, ever.
    pub argv: Vec<String>,
    /// A fresh per-run folder: created by the runner (an error if it exists);
    /// the child's working directory and `HOME`.
    pub run_dir: PathBuf,
    /// Extra variables the manifest passes through, already resolved.
    pub pass_env: Vec<(String, String)>,
    /// Values masked as `***` in the log, the tail, progress text and the
    /// result; empty and shorter-than-4-character values are ignored.
    pub secrets: Vec<String>,
    pub timeout: Duration,
    /// Between SIGTERM to the group and SIGKILL.
    pub kill_grace: Duration,
    pub log_path: PathBuf,
    /// Output bytes written to the log at most; the rest is counted and dropped.
    pub log_cap: u64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitKind {
    Exited(i32),
    /// Killed by this signal (not by us: timeouts and cancels have their own kinds).
    Signaled(i32),
    TimedOut,
    Cancelled,
    /// It never ran (or was lost); the message says what to do.
    SpawnFailed(String),
}

/// A file the script left in `EXECGOV_OUTPUT_DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// What came of one run.
#[derive(Debug, Clone)]
pub struct ExecOutcome {
    pub kind: ExitKind,
    pub duration: Duration,
    /// Bytes in the log: output up to the cap plus the `[execgov]` notes.
    pub log_bytes: u64,
    /// Output bytes dropped past the cap.
    pub dropped_bytes: u64,
    /// The last ~3,000 characters of masked output, for chat.
    pub tail: String,
    /// The `EXECGOV_RESULT` JSON, if the script wrote a valid one (a note in the
    /// log says why one was ignored).
    pub result: Option<serde_json::Value>,
    pub artifacts: Vec<Artifact>,
}

impl ExecOutcome {
    /// Exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.kind == ExitKind::Exited(0)
    }
}

/// A `::progress [N] text` line from the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub percent: Option<u8>,
    pub text: String,
}

/// The environment the child gets, in order: `PATH` and `LANG` from this
/// process (defaults `/usr/local/bin:/usr/bin:/bin` and `C.UTF-8`), `HOME` = the
/// run folder, `EXECGOV_RUN_ID`, `EXECGOV_OUTPUT_DIR` = run folder/output,
/// `EXECGOV_RESULT` = run folder/result.json, then `pass_env`. Nothing else.
///
/// `pass_env` may replace `PATH` and `LANG`; it cannot replace `HOME` or the
/// `EXECGOV_*` variables, which the runner relies on. Paths are absolute.
pub fn child_env(spec: &ExecSpec) -> Vec<(String, String)> {
    spawn::child_env(spec)
}

/// Runs one script to completion (or timeout/cancel). Never panics on script
/// misbehaviour; whatever happens, no process of the script's group is left.
#[instrument(skip_all, fields(run_id = %spec.run_id))]
pub async fn execute(
    spec: ExecSpec,
    cancel: CancellationToken,
    progress: mpsc::Sender<Progress>,
) -> ExecOutcome {
    let started = Instant::now();
    let mut log = match CappedLog::create(&spec.log_path, spec.log_cap) {
        Ok(log) => log,
        Err(e) => {
            let why = format!(
                "could not create the run log `{}`: {e}",
                spec.log_path.display()
            );
            return ended_early(started, None, ExitKind::SpawnFailed(why));
        }
    };
    let env = child_env(&spec);
    if let Err(why) = prepare_run_dir(&spec) {
        return ended_early(started, Some(log), ExitKind::SpawnFailed(why));
    }
    if cancel.is_cancelled() {
        log.note("cancelled before the script started");
        return ended_early(started, Some(log), ExitKind::Cancelled);
    }
    let (mut child, group) = match spawn::spawn(&spec, &env) {
        Ok(started) => started,
        Err(why) => return ended_early(started, Some(log), ExitKind::SpawnFailed(why)),
    };
    tracing::debug!(pgid = group.pgid.as_raw(), "script started");

    let masker = Masker::new(&spec.secrets);
    let stop_reading = CancellationToken::new();
    let _stop_reading_if_dropped = stop_reading.clone().drop_guard();
    let mut reader = tokio::spawn(output::capture(
        Capture::new(log, masker.clone(), progress),
        child.stdout.take(),
        child.stderr.take(),
        stop_reading.clone(),
    ));

    let ending = supervise(&mut child, &group, &spec, &cancel).await;
    drop(group); // SIGKILL to whatever is left of the group, in every outcome

    let mut held_open = false;
    let read = match tokio::time::timeout(DRAIN_AFTER_EXIT, &mut reader).await {
        Ok(read) => read,
        Err(_) => {
            held_open = true;
            stop_reading.cancel();
            reader.await
        }
    };
    let (mut log, tail) = match read {
        Ok(read) => read,
        Err(e) => {
            tracing::error!(error = %e, "output capture failed");
            return ended_early(started, None, ending.kind);
        }
    };

    log.note_cap();
    if held_open {
        log.note(
            "stopped reading output: a process outside the script's process group still holds its stdout or stderr",
        );
    }
    if let Some(note) = ending.note {
        log.note(&note);
    }
    let result = match artifacts::read_result(&spawn::result_path(&spec), &masker) {
        Ok(result) => result,
        Err(note) => {
            log.note(&note);
            None
        }
    };
    let artifacts = artifacts::collect_artifacts(spawn::output_dir(&spec)).await;
    let (log_bytes, dropped_bytes) = log.finish();
    ExecOutcome {
        kind: ending.kind,
        duration: started.elapsed(),
        log_bytes,
        dropped_bytes,
        tail,
        result,
        artifacts,
    }
}

/// The run folder (which must be new) and its output folder.
fn prepare_run_dir(spec: &ExecSpec) -> Result<(), String> {
    let dir = spawn::run_dir(spec);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("could not create `{}`: {e}", parent.display()))?;
    }
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!(
            "run folder `{}` already exists; every run needs a fresh one",
            dir.display()
        ),
        _ => format!("could not create the run folder `{}`: {e}", dir.display()),
    })?;
    let output = spawn::output_dir(spec);
    std::fs::create_dir(&output)
        .map_err(|e| format!("could not create `{}`: {e}", output.display()))
}

/// How the leader ended, and a note for the log when it is worth one.
struct Ending {
    kind: ExitKind,
    note: Option<String>,
}

/// Waits for the leader to exit, the timeout, or the cancel; on the last two,
/// stops the group: SIGTERM, `kill_grace`, SIGKILL. The leader is reaped.
async fn supervise(
    child: &mut Child,
    group: &GroupGuard,
    spec: &ExecSpec,
    cancel: &CancellationToken,
) -> Ending {
    // The leader's exit comes first: a script that finished keeps its real result.
    let (kind, why) = tokio::select! {
        biased;
        status = child.wait() => return exited(status),
        () = cancel.cancelled() => (ExitKind::Cancelled, "cancelled".to_string()),
        () = tokio::time::sleep(spec.timeout) => (
            ExitKind::TimedOut,
            format!("timed out after {}", humantime::format_duration(spec.timeout)),
        ),
    };
    spawn::signal_group(group.pgid, Signal::SIGTERM);
    let mut how = "SIGTERM";
    if tokio::time::timeout(spec.kill_grace, child.wait())
        .await
        .is_err()
    {
        spawn::signal_group(group.pgid, Signal::SIGKILL);
        how = "SIGTERM, then SIGKILL after the grace period";
        if let Err(e) = child.wait().await {
            tracing::warn!(error = %e, "could not reap the script after SIGKILL");
        }
    }
    Ending {
        kind,
        note: Some(format!("{why}; stopped the script's process group ({how})")),
    }
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> Ending {
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Ending {
                kind: ExitKind::Exited(code),
                note: None,
            },
            (None, Some(signal)) => Ending {
                kind: ExitKind::Signaled(signal),
                note: Some(match Signal::try_from(signal) {
                    Ok(name) => format!("the script was killed by {name}"),
                    Err(_) => format!("the script was killed by signal {signal}"),
                }),
            },
            (None, None) => Ending {
                kind: ExitKind::SpawnFailed(format!(
                    "the script ended with an unknown status ({status})"
                )),
                note: None,
            },
        },
        Err(e) => Ending {
            kind: ExitKind::SpawnFailed(format!("lost track of the script's process: {e}")),
            note: None,
        },
    }
}

/// An outcome for a run whose output could not be read (or that never started);
/// a start failure is also noted in the log.
fn ended_early(started: Instant, log: Option<CappedLog>, kind: ExitKind) -> ExecOutcome {
    let (log_bytes, dropped_bytes) = match log {
        Some(mut log) => {
            if let ExitKind::SpawnFailed(why) = &kind {
                log.note(why);
            }
            log.finish()
        }
        None => (0, 0),
    };
    if let ExitKind::SpawnFailed(why) = &kind {
        tracing::warn!(%why, "script did not start");
    }
    ExecOutcome {
        kind,
        duration: started.elapsed(),
        log_bytes,
        dropped_bytes,
        tail: String::new(),
        result: None,
        artifacts: Vec::new(),
    }
}
