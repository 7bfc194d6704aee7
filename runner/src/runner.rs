//! The long-lived runner: set up once per process that runs scripts (the
//! service's local runner, `execgov runner`), then any number of runs at once.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cgroup::{Allowed, RUNNER_PREFIX, RunnerTree};
use crate::host::{Host, Probe};
use crate::leftovers::{self, Leftover};
use crate::sandbox::InitProgram;
use crate::spawner::Spawner;
use crate::spec::{ExecOutcome, ExecSpec};
use crate::user::{RunUser, UserError};

/// Longest scope kept as written in cgroup names; longer ones are hashed.
const SCOPE_CHARS: usize = 24;

/// How a runner is set up.
#[derive(Debug, Clone, Default)]
pub struct RunnerOptions {
    /// Names this runner across restarts (the service: its data folder; a
    /// remote runner: its name), so that a new runner kills and names the runs
    /// an earlier one of the same scope left behind when it died.
    pub scope: String,
    /// Run scripts as this OS user (the runner must be root).
    pub user: Option<String>,
    /// Mechanisms not to use even where the host has them.
    pub avoid: Avoid,
}

/// Mechanisms a runner leaves unused: to test the fallbacks, or for an
/// operator whose host misbehaves with one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Avoid {
    pub cgroup_v2: bool,
    pub cgroup_v1: bool,
    pub pid_namespace: bool,
}

/// Why a runner cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error(
        "scripts can run as user `{user}` only when the runner runs as root (it runs as uid {uid})"
    )]
    NotRoot { user: String, uid: u32 },
    #[error("could not start the runner's spawner thread: {0}")]
    Spawner(#[source] std::io::Error),
}

/// Runs scripts; cheap to clone (clones share one runner). Dropping the last
/// clone ends the spawner thread, which kills any script still running.
#[derive(Clone)]
pub struct Runner {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) host: Host,
    pub(crate) tree: Option<RunnerTree>,
    pub(crate) spawner: Spawner,
    /// Runs so far, to name each run's cgroup uniquely.
    pub(crate) seq: AtomicU64,
    pub(crate) leftovers: Vec<Leftover>,
    /// What each run's PID namespace init runs; `None`: no namespace.
    pub(crate) namespace_init: Option<InitProgram>,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("host", &self.inner.host)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// Finds what the host gives, kills what dead runners of the same scope
    /// left (see [`Runner::leftovers`]), makes the runner's cgroups and starts
    /// its spawner thread. Logs what the host gives once.
    pub fn start(options: RunnerOptions) -> Result<Runner, StartError> {
        let probe = Probe::get();
        let user = match &options.user {
            Some(name) => {
                let user = RunUser::lookup(name)?;
                if !probe.root {
                    return Err(StartError::NotRoot {
                        user: name.clone(),
                        uid: nix::unistd::geteuid().as_raw(),
                    });
                }
                Some(user)
            }
            None => None,
        };
        let scope = scope_name(&options.scope);
        let (leftovers, mut notes) = leftovers::sweep(&probe.bases, &scope);
        for left in &leftovers {
            tracing::warn!(
                run_id = %left.run_id,
                killed = left.killed,
                runner_pid = left.runner_pid,
                "killed what a dead runner left of this run (the script had started)"
            );
        }

        let allowed = Allowed {
            v2: !options.avoid.cgroup_v2,
            v1: !options.avoid.cgroup_v1,
        };
        let tree = if allowed.v2 || allowed.v1 {
            let (tree, tree_notes) =
                RunnerTree::create(&probe.bases, &runner_name(&scope), allowed);
            notes.extend(tree_notes);
            Some(tree).filter(RunnerTree::tracks_runs)
        } else {
            None
        };
        let namespace_init = probe
            .pid_namespace
            .as_ref()
            .ok()
            .filter(|_| !options.avoid.pid_namespace)
            .cloned();
        let pid_namespace = namespace_init.is_some();
        if tree.is_none() && !pid_namespace {
            // Neither a cgroup nor a namespace can hold a run: keep orphans close.
            match crate::reaper::adopt_orphans() {
                Ok(()) => notes.push(
                    "no cgroup and no PID namespace: the runner and each script are child \
                     subreapers (best effort)"
                        .into(),
                ),
                Err(e) => notes.push(format!("could not become a child subreaper: {e}")),
            }
        }
        let host = Host::new(probe, tree.as_ref(), pid_namespace, user, notes);
        tracing::info!(%host, "runner ready");
        for note in &host.notes {
            tracing::info!("runner: {note}");
        }
        let spawner = Spawner::start().map_err(StartError::Spawner)?;
        Ok(Runner {
            inner: Arc::new(Inner {
                host,
                tree,
                spawner,
                seq: AtomicU64::new(0),
                leftovers,
                namespace_init,
            }),
        })
    }

    /// What this runner can guarantee on this host.
    pub fn host(&self) -> &Host {
        &self.inner.host
    }

    /// Runs that a dead runner of the same scope left running, killed when
    /// this one started: the server can mark them interrupted, knowing the
    /// script had started.
    pub fn leftovers(&self) -> &[Leftover] {
        &self.inner.leftovers
    }

    /// Runs one script to completion (or timeout/cancel). Never panics on
    /// script misbehaviour; whatever happens, no process of the run is left.
    pub async fn execute(
        &self,
        spec: ExecSpec,
        cancel: CancellationToken,
        progress: mpsc::Sender<Progress>,
    ) -> ExecOutcome {
        crate::execute::execute(&self.inner, spec, cancel, progress).await
    }

    pub(crate) fn next_seq(inner: &Inner) -> u64 {
        inner.seq.fetch_add(1, Ordering::Relaxed)
    }
}

use crate::spec::Progress;

/// The scope as it appears in cgroup names: lowercase letters, digits and
/// `-`, else a short hash of it.
fn scope_name(scope: &str) -> String {
    let plain = !scope.is_empty()
        && scope.len() <= SCOPE_CHARS
        && scope
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if plain {
        scope.to_string()
    } else {
        hex::encode(&Sha256::digest(scope.as_bytes())[..6])
    }
}

/// `execgov-{scope}-{pid}-{starttime}-{n}`: unique per runner, and says
/// whose it is once the process is gone.
fn runner_name(scope: &str) -> String {
    static RUNNERS: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id() as i32;
    let start = leftovers::start_time(pid).unwrap_or(0);
    let n = RUNNERS.fetch_add(1, Ordering::Relaxed);
    format!("{RUNNER_PREFIX}{scope}-{pid}-{start}-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_become_safe_cgroup_names() {
        assert_eq!(scope_name("db-host-1"), "db-host-1");
        let hashed = scope_name("/var/lib/execgov");
        assert_eq!(hashed.len(), 12, "a path is hashed: {hashed}");
        assert_eq!(
            hashed,
            scope_name("/var/lib/execgov"),
            "the same every time"
        );
        assert_ne!(hashed, scope_name("/srv/execgov"));
    }
}
