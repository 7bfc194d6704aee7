//! What the host lets a runner guarantee, found when the runner starts: the
//! service shows it, the log says it once, and the README's host table lists
//! every combination.

use std::ffi::CString;
use std::fmt;
use std::sync::OnceLock;

use crate::cgroup::{Bases, RunnerTree};
use crate::sandbox::InitProgram;
use crate::user::RunUser;

/// What this process can use, probed once per process.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) root: bool,
    pub(crate) bases: Bases,
    /// What a run's PID namespace init runs, or why PID namespaces cannot
    /// be made here.
    pub(crate) pid_namespace: Result<InitProgram, String>,
}

impl Probe {
    pub(crate) fn get() -> &'static Probe {
        static PROBE: OnceLock<Probe> = OnceLock::new();
        PROBE.get_or_init(|| {
            let root = nix::unistd::geteuid().is_root();
            let pid_namespace = if root {
                crate::sandbox::probe_pid_namespace()
                    .map_err(|e| format!("PID namespaces are refused here ({e})"))
                    .and_then(|()| InitProgram::find(sleep_binary))
            } else {
                Err("PID namespaces need root".to_string())
            };
            Probe {
                root,
                bases: Bases::discover(),
                pid_namespace,
            }
        })
    }
}

/// The `sleep` a PID namespace's init becomes where the built image cannot
/// be used.
fn sleep_binary() -> Result<CString, String> {
    const PLACES: [&str; 2] = ["/bin/sleep", "/usr/bin/sleep"];
    PLACES
        .iter()
        .find(|p| nix::unistd::access(**p, nix::unistd::AccessFlags::X_OK).is_ok())
        .and_then(|p| CString::new(*p).ok())
        .ok_or_else(|| {
            format!(
                "no PID namespaces: their init runs `sleep`, and there is none in {}",
                PLACES.join(" or ")
            )
        })
}

/// Which cgroup layout the runner's runs are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupSetup {
    /// One v2 hierarchy that does everything used: stopping, and the limits
    /// its controllers allow.
    V2,
    /// v1 controllers (memory, pids, freezer), alone or next to a v2
    /// hierarchy without them (used for `cgroup.kill`).
    V1Hybrid,
    /// No cgroup could be made.
    None,
}

impl CgroupSetup {
    /// The name the README's host table uses.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupSetup::V2 => "v2",
            CgroupSetup::V1Hybrid => "v1 hybrid",
            CgroupSetup::None => "none",
        }
    }
}

/// How every process of a run is stopped at timeout, cancel and the end,
/// including those that left its process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMechanism {
    /// `cgroup.kill` (cgroup v2, Linux 5.14).
    CgroupKill,
    /// Freeze the v1 freezer cgroup, kill every member, thaw.
    CgroupFreezer,
    /// Kill what a cgroup lists until it lists nothing.
    CgroupProcs,
    /// The run's PID namespace: its init dies with the script, the kernel
    /// kills the rest.
    PidNamespace,
    /// The script and the runner as child subreapers, killing the run's
    /// orphans (best effort: a process that replaced its environment escapes).
    Subreaper,
}

/// What happens to a run's processes when the runner itself dies (kill -9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerDeath {
    /// All of them die at once: the script by its parent-death signal, the
    /// rest with its PID namespace.
    AllDieAtOnce,
    /// The script dies at once (parent-death signal); what it started in
    /// another session lives in the run's cgroup until a runner with the same
    /// scope starts again and kills it (and names the run).
    RestKilledAtRestart,
    /// Only the script dies (parent-death signal); what it started in another
    /// session lives on.
    OnlyTheScript,
}

/// What the host gives this runner; see the README's host table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The runner runs as root (PID namespaces, another user for scripts).
    pub root: bool,
    pub cgroups: CgroupSetup,
    pub stop: StopMechanism,
    /// The manifest's `memory` is enforced.
    pub memory_limit: bool,
    /// The manifest's `max_processes` is enforced.
    pub process_limit: bool,
    /// Each run gets a PID namespace.
    pub pid_namespace: bool,
    pub runner_death: RunnerDeath,
    /// The user scripts run as; `None`: the runner's own.
    pub user: Option<RunUser>,
    /// Why a mechanism is not used, one line each.
    pub notes: Vec<String>,
}

impl Host {
    pub(crate) fn new(
        probe: &Probe,
        tree: Option<&RunnerTree>,
        pid_namespace: bool,
        user: Option<RunUser>,
        mut notes: Vec<String>,
    ) -> Host {
        let tracked = tree.filter(|t| t.tracks_runs());
        let cgroups = match tracked {
            None => CgroupSetup::None,
            Some(t) if t.memory_v1.is_none() && t.pids_v1.is_none() && t.freezer_v1.is_none() => {
                CgroupSetup::V2
            }
            Some(_) => CgroupSetup::V1Hybrid,
        };
        let stop = match tracked {
            Some(t) if t.unified_kill => StopMechanism::CgroupKill,
            Some(t) if t.freezer_v1.is_some() => StopMechanism::CgroupFreezer,
            Some(_) => StopMechanism::CgroupProcs,
            None if pid_namespace => StopMechanism::PidNamespace,
            None => StopMechanism::Subreaper,
        };
        let runner_death = if pid_namespace {
            RunnerDeath::AllDieAtOnce
        } else if tracked.is_some() {
            RunnerDeath::RestKilledAtRestart
        } else {
            RunnerDeath::OnlyTheScript
        };
        if let Err(why) = &probe.pid_namespace
            && !pid_namespace
        {
            notes.push(why.clone());
        }
        Host {
            root: probe.root,
            cgroups,
            stop,
            memory_limit: tracked.is_some_and(RunnerTree::memory),
            process_limit: tracked.is_some_and(RunnerTree::pids),
            pid_namespace,
            runner_death,
            user,
            notes,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "cgroups {}, stop by {:?}, memory limit {}, process limit {}, PID namespace {}, \
             on runner death {:?}, ",
            self.cgroups.as_str(),
            self.stop,
            yes(self.memory_limit),
            yes(self.process_limit),
            yes(self.pid_namespace),
            self.runner_death,
        )?;
        match &self.user {
            Some(u) => write!(f, "scripts run as {} (uid {})", u.name, u.uid),
            None => write!(f, "scripts run as the runner's user"),
        }
    }
}
