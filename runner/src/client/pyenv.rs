//! Python environments, built where the run executes: one virtual environment
//! per (interpreter, requirements), cached under the runner's envs folder
//! (`{runner data}/envs/<key>`), shared by every script with the same key and
//! reused across restarts.
//!
//! - The interpreter is resolved once per process to a real binary: a pyenv
//!   shim (a bash script costing ~80–270 ms a start) is run once with
//!   `-c 'import sys; print(sys.executable)'` and never again.
//! - An environment is built with uv (`uv venv` + `uv pip install -r`), or with
//!   `python -m venv` + pip when uv is missing, in `<key>.tmp` and renamed into
//!   place, under an exclusive lock on `<key>.lock`, so two runs never build
//!   the same one twice and a half-built one is never used.
//! - Every step has a deadline: a resolver that hangs fails the run with what
//!   it printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::protocol::PythonEnv;

/// The longest one step of a build (venv, install) may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest asking an interpreter who it is may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);
/// The file that marks a finished environment (and says what is in it).
const MARKER: &str = "execgov-env.json";
/// The most characters of a failed tool's output kept in the error.
const ERROR_TAIL: usize = 2000;

/// A real interpreter binary and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    /// `sys.executable`: the binary itself, never a shim.
    pub path: PathBuf,
    /// `3.11.7`.
    pub version: String,
}

/// An environment ready to run a script with.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The environment's `bin/python`.
    pub python: PathBuf,
    /// The interpreter it was built from.
    pub interpreter: Interpreter,
    /// Its folder name under the envs folder.
    pub key: String,
    /// Found ready (no build).
    pub cached: bool,
    /// How long finding or building it took.
    pub took: Duration,
}

/// Whether `program` (argv\[0\]) is a Python interpreter: `python`, `python3`,
/// `python3.11`, by name or path.
pub fn is_python(program: &str) -> bool {
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let Some(rest) = name.strip_prefix("python") else {
        return false;
    };
    rest.is_empty()
        || (rest.starts_with(|c: char| c.is_ascii_digit())
            && rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// uv, if this host has it: `$EXECGOV_UV`, else `uv` on `PATH`.
/// `EXECGOV_UV=` (set, empty) means none: build with venv + pip.
pub fn uv() -> Option<PathBuf> {
    match std::env::var_os("EXECGOV_UV") {
        Some(path) if path.is_empty() => None,
        Some(path) => Some(PathBuf::from(path)),
        None => on_path("uv"),
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Interpreters resolved so far in this process, by what was asked for.
fn resolved() -> &'static Mutex<HashMap<String, Interpreter>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Interpreter>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The real binary behind `program` (`python3`, a shim, a path), asked once
/// per process and remembered.
pub async fn resolve_program(program: &str) -> Result<Interpreter, String> {
    let key = format!("program:{program}");
    if let Some(found) = resolved().lock().expect("not poisoned").get(&key) {
        return Ok(found.clone());
    }
    let found = ask(Path::new(program)).await?;
    resolved()
        .lock()
        .expect("not poisoned")
        .insert(key, found.clone());
    Ok(found)
}

/// The interpreter for `version` (`"3.11"`, `">=3.10"`; `None`: `python3`),
/// found with uv where it is installed, else as `python3.11` on `PATH`;
/// asked once per process and remembered.
pub async fn resolve_version(version: Option<&str>) -> Result<Interpreter, String> {
    let key = format!("version:{}", version.unwrap_or(""));
    if let Some(found) = resolved().lock().expect("not poisoned").get(&key) {
        return Ok(found.clone());
    }
    let found = match version {
        None => ask(Path::new("python3")).await?,
        Some(v) => match uv() {
            Some(uv) => {
                let out = tool(
                    Path::new(&uv),
                    &["python", "find", v],
                    ASK_TIMEOUT,
                    "uv python find",
                )
                .await?;
                ask(Path::new(out.trim())).await?
            }
            // Without uv: `python3.11` for a plain version, else `python3`
            // (a range such as ">=3.10" is not checked here).
            None if v.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                ask(Path::new(&format!("python{v}"))).await?
            }
            None => ask(Path::new("python3")).await?,
        },
    };
    if let Some(v) = version
        && v.starts_with(|c: char| c.is_ascii_digit())
        && !(found.version == v || found.version.starts_with(&format!("{v}.")))
    {
        return Err(format!(
            "python = \"{v}\" asked, but the interpreter found is {} ({})",
            found.version,
            found.path.display()
        ));
    }
    resolved()
        .lock()
        .expect("not poisoned")
        .insert(key, found.clone());
    Ok(found)
}

/// Runs `program -c …` once to learn its real binary and version.
async fn ask(program: &Path) -> Result<Interpreter, String> {
    let code = "import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])";
    let out = tool(
        program,
        &["-c", code],
        ASK_TIMEOUT,
        "asking the interpreter",
    )
    .await?;
    let mut lines = out.lines();
    match (lines.next(), lines.next()) {
        (Some(path), Some(version)) if !path.trim().is_empty() => Ok(Interpreter {
            path: PathBuf::from(path.trim()),
            version: version.trim().to_string(),
        }),
        _ => Err(format!(
            "{} did not say where its binary is (got `{}`)",
            program.display(),
            out.trim()
        )),
    }
}

/// The cache key of an environment: the interpreter (binary and version) and
/// the requirements, sorted, so the same set in another order is one
/// environment.
pub fn env_key(interpreter: &Interpreter, requirements: &[String]) -> String {
    let mut reqs: Vec<&str> = requirements.iter().map(|r| r.trim()).collect();
    reqs.sort_unstable();
    reqs.dedup();
    let mut h = Sha256::new();
    h.update(b"execgov-env-v1\0");
    h.update(interpreter.path.to_string_lossy().as_bytes());
    h.update(b"\0");
    h.update(interpreter.version.as_bytes());
    for r in reqs {
        h.update(b"\0");
        h.update(r.as_bytes());
    }
    hex::encode(h.finalize())[..32].to_string()
}

/// What the marker file of a finished environment holds.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    interpreter: Interpreter,
    requirements: Vec<String>,
    built_with: String,
}

/// Finds or builds the environment `want` asks for under `envs`.
/// `progress` hears "preparing environment: installing N packages" when a
/// build starts (never on a cache hit).
pub async fn prepare(
    envs: &Path,
    want: &PythonEnv,
    mut progress: impl FnMut(String),
) -> Result<Prepared, String> {
    let started = Instant::now();
    let interpreter = resolve_version(want.version.as_deref()).await?;
    let key = env_key(&interpreter, &want.requirements);
    let dir = envs.join(&key);
    let python = dir.join("bin").join("python");
    let done = |cached: bool| Prepared {
        python: python.clone(),
        interpreter: interpreter.clone(),
        key: key.clone(),
        cached,
        took: started.elapsed(),
    };
    if dir.join(MARKER).is_file() {
        return Ok(done(true));
    }
    std::fs::create_dir_all(envs)
        .map_err(|e| format!("making the envs folder {}: {e}", envs.display()))?;
    let _lock = lock(&envs.join(format!("{key}.lock"))).await?;
    // Someone else may have built it while we waited for the lock.
    if dir.join(MARKER).is_file() {
        return Ok(done(true));
    }
    let n = want.requirements.len();
    progress(format!(
        "preparing environment: installing {n} package{}",
        if n == 1 { "" } else { "s" }
    ));
    let tmp = envs.join(format!("{key}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .map_err(|e| format!("removing a half-built environment {}: {e}", tmp.display()))?;
    }
    let built = build(&tmp, &interpreter, &want.requirements).await;
    let built_with = match built {
        Ok(with) => with,
        Err(why) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(why);
        }
    };
    let marker = Marker {
        interpreter: interpreter.clone(),
        requirements: want.requirements.clone(),
        built_with,
    };
    std::fs::write(
        tmp.join(MARKER),
        serde_json::to_vec_pretty(&marker).expect("serializes"),
    )
    .map_err(|e| format!("writing {}: {e}", tmp.join(MARKER).display()))?;
    if dir.exists() {
        // A folder without a marker: a build that died after its rename. Replace it.
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::rename(&tmp, &dir)
        .map_err(|e| format!("moving the environment into {}: {e}", dir.display()))?;
    Ok(done(false))
}

/// Builds a venv in `dir` with `requirements` installed; says with what.
async fn build(
    dir: &Path,
    interpreter: &Interpreter,
    requirements: &[String],
) -> Result<String, String> {
    let dir_s = dir.to_string_lossy().into_owned();
    let py = interpreter.path.to_string_lossy().into_owned();
    let reqs = dir.with_extension("requirements.txt");
    let write_reqs = || {
        std::fs::write(&reqs, requirements.join("\n") + "\n")
            .map_err(|e| format!("writing {}: {e}", reqs.display()))
    };
    let reqs_s = reqs.to_string_lossy().into_owned();
    let built = async {
        Ok(match uv() {
            Some(uv) => {
                tool(
                    &uv,
                    &["venv", "--quiet", "--relocatable", "--python", &py, &dir_s],
                    STEP_TIMEOUT,
                    "uv venv",
                )
                .await?;
                if !requirements.is_empty() {
                    write_reqs()?;
                    let env_py = dir
                        .join("bin")
                        .join("python")
                        .to_string_lossy()
                        .into_owned();
                    tool(
                        &uv,
                        &[
                            "pip", "install", "--quiet", "--python", &env_py, "-r", &reqs_s,
                        ],
                        STEP_TIMEOUT,
                        "uv pip install",
                    )
                    .await?;
                }
                "uv".to_string()
            }
            None => {
                tool(
                    &interpreter.path,
                    &["-m", "venv", &dir_s],
                    STEP_TIMEOUT,
                    "python -m venv",
                )
                .await?;
                if !requirements.is_empty() {
                    write_reqs()?;
                    let env_py = dir.join("bin").join("python");
                    tool(
                        &env_py,
                        &[
                            "-m",
                            "pip",
                            "install",
                            "--quiet",
                            "--disable-pip-version-check",
                            "-r",
                            &reqs_s,
                        ],
                        STEP_TIMEOUT,
                        "pip install",
                    )
                    .await?;
                }
                "pip".to_string()
            }
        })
    }
    .await;
    let _ = std::fs::remove_file(&reqs);
    built
}

/// Runs a tool to its end within `limit`; its stdout, or an error with what
/// it printed.
async fn tool(
    program: &Path,
    args: &[&str],
    limit: Duration,
    what: &str,
) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("{what}: cannot start {}: {e}", program.display()))?;
    let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("{what}: {e}")),
        Err(_) => {
            return Err(format!(
                "{what} took longer than {} and was stopped",
                humantime::format_duration(limit)
            ));
        }
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let mut said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if said.is_empty() {
        said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    if said.chars().count() > ERROR_TAIL {
        let skip = said.chars().count() - ERROR_TAIL;
        said = format!("…{}", said.chars().skip(skip).collect::<String>());
    }
    Err(format!("{what} failed ({}): {said}", out.status))
}

/// An exclusive lock on `path`, held until dropped; waits (without blocking
/// a thread) while another process or task builds.
async fn lock(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    use nix::fcntl::{Flock, FlockArg};
    let deadline = Instant::now() + STEP_TIMEOUT * 2;
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("opening the lock {}: {e}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err((_, e)) => return Err(format!("locking {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_programs_are_told_from_others() {
        for yes in [
            "python",
            "python3",
            "python3.11",
            "/usr/bin/python3",
            "venv/bin/python",
        ] {
            assert!(is_python(yes), "{yes} is a Python interpreter");
        }
        for no in ["pythonic", "python3-config", "sh", "ipython", "python-x"] {
            assert!(!is_python(no), "{no} is not a Python interpreter");
        }
    }

    #[test]
    fn the_key_ignores_order_but_not_versions() {
        let i = Interpreter {
            path: "/usr/bin/python3.11".into(),
            version: "3.11.7".into(),
        };
        let a = env_key(&i, &["tabulate==0.9.0".into(), "six==1.16.0".into()]);
        let b = env_key(&i, &["six==1.16.0".into(), "tabulate==0.9.0".into()]);
        assert_eq!(
            a, b,
            "the same requirements in another order share an environment"
        );
        let c = env_key(&i, &["tabulate==0.8.10".into(), "six==1.16.0".into()]);
        assert_ne!(a, c, "another pin is another environment");
        let j = Interpreter {
            version: "3.12.1".into(),
            ..i.clone()
        };
        assert_ne!(
            a,
            env_key(&j, &["tabulate==0.9.0".into(), "six==1.16.0".into()])
        );
    }
}
