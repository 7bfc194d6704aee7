//! Starting the child: its environment, finding its program, saying what to do
//! when it cannot start, and signalling its process group.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{AccessFlags, Pid, access};

use crate::child::ScriptProcess;
use crate::sandbox::StartFailure;
use crate::setup::{ChildFailure, ChildSetup, Launch, Step};
use crate::spawner::Spawner;
use crate::spec::ExecSpec;
use crate::user::RunUser;

/// `PATH` for the child when this process has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// `LANG` for the child when this process has none.
const DEFAULT_LANG: &str = "C.UTF-8";
/// Variables the runner sets that `pass_env` cannot replace: the runner reads
/// the result and the artifacts from these places, and the run folder is home.
const RUNNER_OWNED: [&str; 4] = [
    "HOME",
    "EXECGOV_RUN_ID",
    "EXECGOV_OUTPUT_DIR",
    "EXECGOV_RESULT",
];

/// The run folder, absolute (the child's working directory is the run folder,
/// so a relative path in its environment would point somewhere else).
pub(crate) fn run_dir(spec: &ExecSpec) -> PathBuf {
    std::path::absolute(&spec.run_dir).unwrap_or_else(|_| spec.run_dir.clone())
}

/// Where files become artifacts: `EXECGOV_OUTPUT_DIR`.
pub(crate) fn output_dir(spec: &ExecSpec) -> PathBuf {
    run_dir(spec).join("output")
}

/// Where the script may write its JSON summary: `EXECGOV_RESULT`.
pub(crate) fn result_path(spec: &ExecSpec) -> PathBuf {
    run_dir(spec).join("result.json")
}

/// The child's whole environment; see [`crate::child_env`].
pub(crate) fn child_env(spec: &ExecSpec) -> Vec<(String, String)> {
    let inherited = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let text = |p: PathBuf| p.to_string_lossy().into_owned();
    let mut env = vec![
        ("PATH".to_string(), inherited("PATH", DEFAULT_PATH)),
        ("LANG".to_string(), inherited("LANG", DEFAULT_LANG)),
        ("HOME".to_string(), text(run_dir(spec))),
        ("EXECGOV_RUN_ID".to_string(), spec.run_id.to_string()),
        ("EXECGOV_OUTPUT_DIR".to_string(), text(output_dir(spec))),
        ("EXECGOV_RESULT".to_string(), text(result_path(spec))),
    ];
    for (name, value) in &spec.pass_env {
        let valid = !name.is_empty() && !name.contains(['=', '\0']) && !value.contains('\0');
        if !valid || RUNNER_OWNED.contains(&name.as_str()) {
            tracing::warn!(variable = %name, "not passing this variable to the script");
            continue;
        }
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1.clone_from(value),
            None => env.push((name.clone(), value.clone())),
        }
    }
    env
}

/// Kills the whole process group when dropped: whatever way `execute` ends
/// (even when its future is dropped), no process of the run lives on.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    pub(crate) pgid: Pid,
    armed: bool,
}

impl GroupGuard {
    /// The group is gone and its id may be reused: dropping must not signal it.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Sends `signal` to every process of the group; a group that is already gone is fine.
pub(crate) fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(pgid = pgid.as_raw(), %signal, error = %e, "could not signal the process group")
        }
    }
}

/// Starts the child from the spawner thread, in a process group of its own,
/// with `setup` applied before `exec`; or says why it cannot start.
pub(crate) async fn spawn(
    spawner: &Spawner,
    spec: &ExecSpec,
    env: &[(String, String)],
    setup: ChildSetup,
    user: Option<&RunUser>,
) -> Result<(ScriptProcess, GroupGuard), String> {
    let Some(argv0) = spec.argv.first() else {
        return Err("the command is empty; the manifest's command must name a program".to_string());
    };
    let path_var = env
        .iter()
        .rev()
        .find(|(n, _)| n == "PATH")
        .map_or("", |(_, v)| v);
    let program = resolve_program(argv0, path_var)?;
    let launch = launch(&program, spec, env)?;
    let started = match spawner.spawn(launch, setup).await {
        Ok(started) => started,
        Err(StartFailure::Prepare(e)) => {
            return Err(format!("could not prepare the script's start: {e}"));
        }
        Err(StartFailure::Child(ChildFailure { step, error })) => {
            return Err(match step {
                Some(Step::Exec) => explain_spawn_error(&program, &error, user),
                Some(step) => explain_step_error(step, &error, spec, user),
                None => format!("the script could not start ({error})"),
            });
        }
    };
    // The child made itself the leader of a group with its own id.
    let guard = GroupGuard {
        pgid: Pid::from_raw(started.pid),
        armed: true,
    };
    let process = ScriptProcess::new(started)
        .map_err(|e| format!("could not watch the started script: {e}"))?;
    Ok((process, guard))
}

/// What `execve` takes, as C strings: a NUL byte in any of them is refused.
fn launch(program: &Path, spec: &ExecSpec, env: &[(String, String)]) -> Result<Launch, String> {
    let c = |bytes: Vec<u8>, what: &str| {
        CString::new(bytes)
            .map_err(|_| format!("{what} holds a NUL byte, which a program cannot be given"))
    };
    Ok(Launch {
        program: c(
            program.as_os_str().as_bytes().to_vec(),
            "the program's path",
        )?,
        argv: spec
            .argv
            .iter()
            .map(|a| c(a.clone().into_bytes(), "an argument"))
            .collect::<Result<_, _>>()?,
        env: env
            .iter()
            .map(|(k, v)| c(format!("{k}={v}").into_bytes(), "an environment variable"))
            .collect::<Result<_, _>>()?,
        cwd: c(
            run_dir(spec).as_os_str().as_bytes().to_vec(),
            "the run folder's path",
        )?,
    })
}

/// Says which of the child's own steps failed, and what to do about it.
fn explain_step_error(
    step: Step,
    e: &io::Error,
    spec: &ExecSpec,
    user: Option<&RunUser>,
) -> String {
    match (step, user) {
        (Step::RunFolder, Some(user)) => format!(
            "user `{}` cannot enter the run folder `{}` ({e}); run folders must be where \
             that user can reach them",
            user.name,
            run_dir(spec).display()
        ),
        _ => format!("the script could not start: {} failed ({e})", step.doing()),
    }
}

/// Finds the program the way a shell would (a name is looked up in the child's
/// `PATH`, anything with a `/` is a path), so a failure can say what to fix.
/// A relative path is taken from this process's working directory, not the run folder.
fn resolve_program(argv0: &str, path_var: &str) -> Result<PathBuf, String> {
    if argv0.contains('/') {
        let path = std::path::absolute(argv0).map_err(|e| format!("program `{argv0}`: {e}"))?;
        return match check_program(&path) {
            Candidate::Runnable => Ok(path),
            Candidate::Missing => Err(format!(
                "program `{argv0}` does not exist; check the manifest's command"
            )),
            other => Err(other.explain(&path)),
        };
    }
    let mut blocked = None;
    for dir in path_var.split(':').filter(|d| d.starts_with('/')) {
        let path = Path::new(dir).join(argv0);
        match check_program(&path) {
            Candidate::Runnable => return Ok(path),
            Candidate::Missing => {}
            other => {
                blocked.get_or_insert((path, other));
            }
        }
    }
    match blocked {
        Some((path, why)) => Err(why.explain(&path)),
        None => Err(format!(
            "program `{argv0}` not found in PATH={path_var}; check the manifest's command"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Candidate {
    Runnable,
    Missing,
    Directory,
    NotExecutable { mode: u32 },
}

impl Candidate {
    fn explain(self, path: &Path) -> String {
        let shown = path.display();
        match self {
            Candidate::Directory => {
                format!("`{shown}` is a directory, not a program; check the manifest's command")
            }
            Candidate::NotExecutable { mode } => format!(
                "`{shown}` is not executable (mode {mode:o}); run `chmod +x {shown}` or start it \
                 through its interpreter in the manifest's command (e.g. `bash {shown}`)"
            ),
            Candidate::Runnable | Candidate::Missing => {
                format!("`{shown}`: check the manifest's command")
            }
        }
    }
}

fn check_program(path: &Path) -> Candidate {
    match std::fs::metadata(path) {
        Err(_) => Candidate::Missing,
        Ok(meta) if meta.is_dir() => Candidate::Directory,
        Ok(meta) => match access(path, AccessFlags::X_OK) {
            Ok(()) => Candidate::Runnable,
            Err(_) => Candidate::NotExecutable {
                mode: meta.permissions().mode() & 0o7777,
            },
        },
    }
}

/// Says why `exec` failed and what to change.
fn explain_spawn_error(program: &Path, e: &io::Error, user: Option<&RunUser>) -> String {
    let shown = program.display();
    match e.raw_os_error().map(Errno::from_raw) {
        // The file exists (we just checked), so what is missing is its interpreter.
        Some(Errno::ENOENT) => match shebang(program) {
            Some(line) => format!(
                "`{shown}` could not start: its interpreter `{line}` was not found; fix the script's first line"
            ),
            None => format!("`{shown}` could not start ({e}); check the manifest's command"),
        },
        Some(Errno::ENOEXEC) => format!(
            "`{shown}` is neither a program nor a script with a `#!` line; add one (e.g. `#!/bin/sh`) \
             or name its interpreter in the manifest's command"
        ),
        Some(Errno::EACCES) if user.is_some() => format!(
            "user `{}` may not run `{shown}`: it needs read and execute permission on the file \
             and on every folder above it",
            user.map_or("", |u| u.name.as_str())
        ),
        Some(Errno::EACCES) => format!(
            "permission denied starting `{shown}` (is its folder or file system mounted noexec?); \
             check the manifest's command"
        ),
        _ => format!("`{shown}` could not start: {e}"),
    }
}

/// The script's `#!` line, if it has one.
fn shebang(program: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let first = head[..n].split(|&b| b == b'\n').next()?;
    first
        .starts_with(b"#!")
        .then(|| String::from_utf8_lossy(first).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_the_path_searched() {
        let err = resolve_program("pyhton3", "/usr/bin:/bin").expect_err("no such program");
        assert_eq!(
            err,
            "program `pyhton3` not found in PATH=/usr/bin:/bin; check the manifest's command"
        );
    }

    #[test]
    fn a_program_is_found_in_path() {
        let found = resolve_program("sh", DEFAULT_PATH).expect("sh is on every Unix");
        assert!(found.is_absolute(), "resolved to {}", found.display());
    }
}
