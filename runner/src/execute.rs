//! One run from start to outcome: the run folder, the run's cgroup, the child,
//! its output, and stopping every process of the run on timeout, cancel or end.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use crate::cgroup::RunCgroup;
use crate::child::ScriptProcess;
use crate::contain::Containment;
use crate::host::StopMechanism;
use crate::log::CappedLog;
use crate::mask::Masker;
use crate::output::Capture;
use crate::runner::{Inner, Runner};
use crate::sandbox::InitProgram;
use crate::setup::{ChildSetup, Credentials, NamespaceInit};
use crate::spec::{ExecOutcome, ExecSpec, ExitKind, Limits, Progress, size};
use crate::user::RunUser;
use crate::{artifacts, output, spawn, user};

/// After every process of the run was killed, how long to keep reading output
/// still in the pipes. Reading normally ends at once (every writer is dead);
/// only a process the runner could not find (fallback hosts) holds them open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

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

#[instrument(skip_all, fields(run_id = %spec.run_id))]
pub(crate) async fn execute(
    runner: &Inner,
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
    let host = &runner.host;
    let user = host.user.as_ref();
    let env = child_env(&spec);
    if let Err(why) = prepare_run_dir(&spec, user) {
        return ended_early(started, Some(log), ExitKind::SpawnFailed(why));
    }
    if cancel.is_cancelled() {
        log.note("cancelled before the script started");
        return ended_early(started, Some(log), ExitKind::Cancelled);
    }
    let cgroup = match &runner.tree {
        Some(tree) => {
            let name = format!("run-{}-{}", spec.run_id, Runner::next_seq(runner));
            let init = u32::from(host.pid_namespace);
            match RunCgroup::create(tree, &name, spec.limits, init) {
                Ok(cgroup) => Some(cgroup),
                Err(why) => return ended_early(started, Some(log), ExitKind::SpawnFailed(why)),
            }
        }
        None => None,
    };
    note_unenforced(&mut log, spec.limits, cgroup.as_ref());
    let subreaper = host.stop == StopMechanism::Subreaper;
    let init = runner.namespace_init.as_ref();
    let setup = match child_setup(&spec, cgroup.as_ref(), init, subreaper, user) {
        Ok(setup) => setup,
        Err(why) => return ended_early(started, Some(log), ExitKind::SpawnFailed(why)),
    };
    let (mut child, group) = match spawn::spawn(&runner.spawner, &spec, &env, setup, user).await {
        Ok(started) => started,
        Err(why) => return ended_early(started, Some(log), ExitKind::SpawnFailed(why)),
    };
    let mut contain = Containment {
        leader: group.pgid.as_raw(),
        group,
        cgroup,
        orphan_marks: subreaper.then(|| orphan_marks(&env)),
    };
    tracing::debug!(pid = contain.leader, "script started");

    let masker = Masker::new(&spec.secrets);
    let stop_reading = CancellationToken::new();
    let _stop_reading_if_dropped = stop_reading.clone().drop_guard();
    let mut reader = tokio::spawn(output::capture(
        Capture::new(log, masker.clone(), progress),
        child.stdout.take(),
        child.stderr.take(),
        stop_reading.clone(),
    ));

    let ending = supervise(&mut child, &contain, &spec, &cancel).await;
    // Whatever is left of the run dies now, in every outcome.
    let limits_reached = contain.end().await;

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
            "stopped reading output: a process the runner could not stop still holds its stdout or stderr",
        );
    }
    if let Some(note) = ending.note {
        log.note(&note);
    }
    for limit in &limits_reached {
        log.note(&format!(
            "{limit}: the kernel stopped the run at the manifest's limit"
        ));
    }
    let owner = user.map(|u| u.uid);
    let result = match artifacts::read_result(&spawn::result_path(&spec), &masker, owner) {
        Ok(result) => result,
        Err(note) => {
            log.note(&note);
            None
        }
    };
    let artifacts = artifacts::collect_artifacts(spawn::output_dir(&spec), owner).await;
    if user.is_some() {
        let dir = spawn::run_dir(&spec);
        let failed = tokio::task::spawn_blocking(move || user::take_back(&dir))
            .await
            .unwrap_or(1);
        if failed > 0 {
            log.note(&format!(
                "{failed} entries of the run folder could not be taken back from the run user"
            ));
        }
    }
    let (log_bytes, dropped_bytes) = log.finish();
    ExecOutcome {
        kind: ending.kind,
        duration: started.elapsed(),
        log_bytes,
        dropped_bytes,
        tail,
        result,
        artifacts,
        limits_reached,
    }
}

/// The run folder (which must be new) and its output folder; with a run
/// user, both are handed to it, and it must be able to reach them.
fn prepare_run_dir(spec: &ExecSpec, user: Option<&RunUser>) -> Result<(), String> {
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
        .map_err(|e| format!("could not create `{}`: {e}", output.display()))?;
    // The request's files: the runner's, readable by the script (0755/0644).
    for (rel, data) in &spec.inputs {
        let path = dir.join(rel);
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            if let Some(parent) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)?;
            std::io::Write::write_all(&mut f, data)
        };
        write().map_err(|e| format!("could not save `{}`: {e}", path.display()))?;
    }
    if let Some(user) = user {
        user.check_reachable(&dir)?;
        for folder in [&dir, &output] {
            user.hand_over(folder).map_err(|e| {
                format!(
                    "could not give `{}` to user `{}`: {e}",
                    folder.display(),
                    user.name
                )
            })?;
        }
    }
    Ok(())
}

/// What the child does to itself before `exec` (see `sandbox`).
fn child_setup(
    spec: &ExecSpec,
    cgroup: Option<&RunCgroup>,
    namespace_init: Option<&InitProgram>,
    subreaper: bool,
    user: Option<&RunUser>,
) -> Result<ChildSetup, String> {
    let run_dir = CString::new(spawn::run_dir(spec).as_os_str().as_bytes())
        .map_err(|_| "the run folder's path holds a NUL byte".to_string())?;
    Ok(ChildSetup {
        unified: cgroup
            .map(RunCgroup::unified_handles)
            .transpose()?
            .flatten(),
        join: match cgroup {
            Some(cgroup) => cgroup.join_handles()?,
            None => Vec::new(),
        },
        pid_namespace: namespace_init.map(NamespaceInit::new),
        credentials: user.map(|u| Credentials {
            uid: u.uid,
            gid: u.gid,
            groups: u.groups.clone(),
        }),
        subreaper,
        runner_pid: std::process::id() as i32,
        run_dir,
    })
}

/// Says in the log which of the manifest's limits this host cannot enforce:
/// a limit that silently does nothing would be worse than none.
fn note_unenforced(log: &mut CappedLog, asked: Limits, cgroup: Option<&RunCgroup>) {
    let enforced = cgroup.map(RunCgroup::enforces).unwrap_or_default();
    if let (Some(bytes), None) = (asked.memory, enforced.memory) {
        log.note(&format!(
            "memory = {} is not enforced: this runner has no memory cgroup (see the README's host table)",
            size(bytes)
        ));
    }
    if let (Some(count), None) = (asked.processes, enforced.processes) {
        log.note(&format!(
            "max_processes = {count} is not enforced: this runner has no pids cgroup (see the README's host table)"
        ));
    }
}

/// The variables that mark the run's processes for the subreaper fallback.
fn orphan_marks(env: &[(String, String)]) -> Vec<String> {
    env.iter()
        .filter(|(k, _)| k == "EXECGOV_RUN_ID" || k == "HOME")
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// How the script ended, and a note for the log when it is worth one.
struct Ending {
    kind: ExitKind,
    note: Option<String>,
}

/// Waits for the script to exit, the timeout, or the cancel; on the last two,
/// stops the run: SIGTERM to all of it, `kill_grace`, SIGKILL. The script is reaped.
async fn supervise(
    child: &mut ScriptProcess,
    contain: &Containment,
    spec: &ExecSpec,
    cancel: &CancellationToken,
) -> Ending {
    // The script's exit comes first: a script that finished keeps its real result.
    let (kind, why) = tokio::select! {
        biased;
        status = child.wait() => return exited(status),
        () = cancel.cancelled() => (ExitKind::Cancelled, "cancelled".to_string()),
        () = tokio::time::sleep(spec.timeout) => (
            ExitKind::TimedOut,
            format!("timed out after {}", humantime::format_duration(spec.timeout)),
        ),
    };
    contain.terminate();
    let mut how = "SIGTERM";
    if tokio::time::timeout(spec.kill_grace, child.wait())
        .await
        .is_err()
    {
        contain.kill_descendants().await;
        if let Err(e) = child.start_kill() {
            tracing::debug!(error = %e, "the script was already gone");
        }
        how = "SIGTERM, then SIGKILL after the grace period";
        if let Err(e) = child.wait().await {
            tracing::warn!(error = %e, "could not reap the script after SIGKILL");
        }
    }
    Ending {
        kind,
        note: Some(format!("{why}; stopped every process of the run ({how})")),
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

/// The outcome of a run that was refused before anything started (the
/// runner could not start, say): `why` is noted in the run's log too.
pub fn not_started(spec: &ExecSpec, why: &str) -> ExecOutcome {
    let log = CappedLog::create(&spec.log_path, spec.log_cap).ok();
    ended_early(Instant::now(), log, ExitKind::SpawnFailed(why.to_string()))
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
        limits_reached: Vec::new(),
    }
}
