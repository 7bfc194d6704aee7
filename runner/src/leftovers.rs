//! What an earlier runner left: the cgroups of a runner whose process is gone
//! (killed, crashed) may still hold processes of its runs. A starting runner
//! kills them, removes the cgroups, and names the runs of its own scope, so
//! the server can mark them interrupted knowing the script had started.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::{Bases, RUNNER_PREFIX, RunCgroup};
use crate::spec::RunId;

/// How long a leftover run's cgroup may take to empty once killed.
const EMPTY_WITHIN: Duration = Duration::from_secs(5);

/// A run an earlier runner of the same scope left running, now stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub run_id: RunId,
    /// Processes of the run that were still alive and were killed.
    pub killed: usize,
    /// The process id of the runner that started it (now gone).
    pub runner_pid: i32,
}

/// A runner's cgroup name taken apart: `execgov-{scope}-{pid}-{start}-{n}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Owner {
    pub(crate) scope: String,
    pub(crate) pid: i32,
    pub(crate) start: u64,
}

impl Owner {
    pub(crate) fn parse(name: &str) -> Option<Owner> {
        let rest = name.strip_prefix(RUNNER_PREFIX)?;
        let mut parts = rest.rsplitn(4, '-');
        let _seq: u64 = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let scope = parts.next()?.to_string();
        Some(Owner { scope, pid, start })
    }

    /// The process is alive and is the same process (not a reused pid).
    pub(crate) fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`, field 22).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// `run-{id}-{n}` → the run id.
fn run_id_of(name: &str) -> Option<RunId> {
    let rest = name.strip_prefix("run-")?;
    let (id, _n) = rest.rsplit_once('-')?;
    id.parse().ok().map(RunId)
}

/// Stops and removes the cgroups of dead runners of `scope` under `bases`,
/// and returns their runs that still had processes, with notes about cgroups
/// that could not be removed. Empty cgroups of other scopes' dead runners are
/// removed too (tidying up); their runs are left for a runner of their scope,
/// the only one that can tell its server about them.
pub(crate) fn sweep(bases: &Bases, scope: &str) -> (Vec<Leftover>, Vec<String>) {
    // Runner cgroup name → its folder in each hierarchy.
    let mut dead: BTreeMap<String, (Owner, Vec<PathBuf>)> = BTreeMap::new();
    for base in bases.all() {
        let Ok(entries) = std::fs::read_dir(base) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(owner) = Owner::parse(&name).filter(|o| !o.alive()) else {
                continue;
            };
            dead.entry(name)
                .or_insert_with(|| (owner, Vec::new()))
                .1
                .push(entry.path());
        }
    }
    let mut leftovers = Vec::new();
    let mut notes = Vec::new();
    for (owner, dirs) in dead.into_values() {
        let ours = owner.scope == scope;
        for (run, killed) in sweep_runner(&dirs, ours, &mut notes) {
            if killed > 0 {
                leftovers.push(Leftover {
                    run_id: run,
                    killed,
                    runner_pid: owner.pid,
                });
            }
        }
        for dir in &dirs {
            if let Err(e) = std::fs::remove_dir(dir)
                && ours
            {
                notes.push(format!("could not remove `{}`: {e}", dir.display()));
            }
        }
    }
    (leftovers, notes)
}

/// Kills (if `kill`) and removes each run cgroup under a dead runner's
/// folders; without `kill`, only the empty ones are removed.
fn sweep_runner(dirs: &[PathBuf], kill: bool, notes: &mut Vec<String>) -> Vec<(RunId, usize)> {
    let mut runs: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for dir in dirs {
        for child in subdirs(dir) {
            if let Some(name) = child.file_name().map(|n| n.to_string_lossy().into_owned()) {
                runs.entry(name).or_default().push(child);
            }
        }
    }
    let mut found = Vec::new();
    for (name, run_dirs) in runs {
        let mut cgroup = RunCgroup::existing(&run_dirs);
        let killed: BTreeSet<i32> = run_dirs
            .iter()
            .flat_map(|d| crate::cgroup::procs_of(d))
            .collect();
        if !killed.is_empty() {
            if !kill {
                cgroup.forget();
                continue;
            }
            cgroup.kill_all();
        }
        if cgroup.wait_empty_blocking(EMPTY_WITHIN) {
            cgroup.remove();
        } else {
            notes.push(format!(
                "processes of `{name}` did not die within {EMPTY_WITHIN:?}"
            ));
            cgroup.forget();
        }
        if let Some(run) = run_id_of(&name) {
            found.push((run, killed.len()));
        }
    }
    found
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_cgroup_names_say_who_made_them() {
        let owner = Owner::parse("execgov-3f2a9c-4242-987654-1").expect("parses");
        assert_eq!(
            owner,
            Owner {
                scope: "3f2a9c".into(),
                pid: 4242,
                start: 987654
            }
        );
        assert_eq!(
            Owner::parse("execgov-service"),
            None,
            "the v2 leaf is no runner"
        );
        assert_eq!(run_id_of("run-42-7"), Some(RunId(42)));
        assert_eq!(run_id_of("run-x-7"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = std::process::id() as i32;
        let start = start_time(me).expect("own start time");
        assert!(
            Owner {
                scope: "s".into(),
                pid: me,
                start
            }
            .alive()
        );
        assert!(
            !Owner {
                scope: "s".into(),
                pid: me,
                start: start + 1
            }
            .alive(),
            "same pid, other start time: another process"
        );
    }
}
