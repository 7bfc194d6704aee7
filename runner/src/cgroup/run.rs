//! One run's cgroup, in every hierarchy the runner uses: the child joins it
//! before it runs anything, so every process the script starts is in it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::RunnerTree;
use super::files;
use crate::setup::UnifiedCgroup;
use crate::spec::{LimitReached, Limits};

/// Which cgroup version a controller's files follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// A controller of the run's cgroup: its folder and its file layout.
#[derive(Debug, Clone)]
struct Controller {
    dir: PathBuf,
    version: Version,
}

/// One run's cgroups. Dropped without [`RunCgroup::remove`], it kills what is
/// left in them and removes them from a thread of its own.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    unified: Option<PathBuf>,
    /// `unified` has `cgroup.kill` (Linux 5.14).
    unified_kill: bool,
    memory: Option<Controller>,
    pids: Option<Controller>,
    freezer: Option<PathBuf>,
    /// The limits set on it, to name in the outcome.
    memory_limit: Option<u64>,
    process_limit: Option<u32>,
    removed: bool,
}

impl RunCgroup {
    /// Makes `name` in the runner's cgroups and sets the limits the host can
    /// enforce (`extra_processes` of them are the runner's own, the PID
    /// namespace's init). Fails closed: the run does not start without it.
    pub(crate) fn create(
        tree: &RunnerTree,
        name: &str,
        limits: Limits,
        extra_processes: u32,
    ) -> Result<RunCgroup, String> {
        let mut cgroup = RunCgroup {
            unified: None,
            unified_kill: tree.unified_kill,
            memory: None,
            pids: None,
            freezer: None,
            memory_limit: None,
            process_limit: None,
            removed: false,
        };
        let made = cgroup.make_dirs(tree, name, limits);
        let limited = made.and_then(|()| cgroup.set_limits(limits, extra_processes));
        match limited {
            Ok(()) => Ok(cgroup),
            Err(why) => {
                cgroup.remove();
                Err(why)
            }
        }
    }

    /// The cgroups an earlier runner left, found by their folders.
    pub(crate) fn existing(dirs: &[PathBuf]) -> RunCgroup {
        let mut cgroup = RunCgroup {
            unified: None,
            unified_kill: false,
            memory: None,
            pids: None,
            freezer: None,
            memory_limit: None,
            process_limit: None,
            removed: false,
        };
        for dir in dirs {
            if dir.join("cgroup.events").exists() {
                cgroup.unified_kill = dir.join("cgroup.kill").exists();
                cgroup.unified = Some(dir.clone());
            } else if dir.join("freezer.state").exists() {
                cgroup.freezer = Some(dir.clone());
            } else if dir.join("memory.limit_in_bytes").exists() {
                cgroup.memory = Some(Controller {
                    dir: dir.clone(),
                    version: Version::V1,
                });
            } else if dir.join("pids.max").exists() {
                cgroup.pids = Some(Controller {
                    dir: dir.clone(),
                    version: Version::V1,
                });
            }
        }
        cgroup
    }

    /// Makes the run's cgroup in the hierarchies it needs: the one that stops
    /// it, and a v1 controller only when the run has its limit (each v1
    /// `memory` cgroup costs the kernel real work to make and remove).
    fn make_dirs(&mut self, tree: &RunnerTree, name: &str, limits: Limits) -> Result<(), String> {
        let make = |parent: &Path| -> Result<PathBuf, String> {
            let dir = parent.join(name);
            std::fs::create_dir(&dir)
                .map(|()| dir.clone())
                .map_err(|e| format!("could not make the run's cgroup `{}`: {e}", dir.display()))
        };
        if let Some(parent) = &tree.unified {
            let dir = make(parent)?;
            let controller = |given: bool| {
                given.then(|| Controller {
                    dir: dir.clone(),
                    version: Version::V2,
                })
            };
            self.memory = controller(tree.unified_memory);
            self.pids = controller(tree.unified_pids);
            self.unified = Some(dir);
        }
        let tracked = tree.unified.is_some() || tree.freezer_v1.is_some();
        if let Some(parent) = &tree.memory_v1
            && (limits.memory.is_some() || !tracked)
        {
            self.memory = Some(Controller {
                dir: make(parent)?,
                version: Version::V1,
            });
        }
        if let Some(parent) = &tree.pids_v1
            && (limits.processes.is_some() || (!tracked && self.memory.is_none()))
        {
            self.pids = Some(Controller {
                dir: make(parent)?,
                version: Version::V1,
            });
        }
        // The freezer stops a run only where `cgroup.kill` cannot (joining
        // one more hierarchy costs the child a wait for the kernel).
        if let Some(parent) = &tree.freezer_v1
            && !(self.unified.is_some() && self.unified_kill)
        {
            self.freezer = Some(make(parent)?);
        }
        Ok(())
    }

    fn set_limits(&mut self, limits: Limits, extra_processes: u32) -> Result<(), String> {
        let set = |dir: &Path, file: &str, value: String| {
            files::write(&dir.join(file), &value)
                .map_err(|e| format!("could not set {file} = {value} in `{}`: {e}", dir.display()))
        };
        if let (Some(bytes), Some(memory)) = (limits.memory, &self.memory) {
            match memory.version {
                Version::V2 => {
                    set(&memory.dir, "memory.max", bytes.to_string())?;
                    // The limit is on memory, not on RAM: no swapping past it.
                    if memory.dir.join("memory.swap.max").exists() {
                        set(&memory.dir, "memory.swap.max", "0".into())?;
                    }
                }
                Version::V1 => {
                    set(&memory.dir, "memory.limit_in_bytes", bytes.to_string())?;
                    if memory.dir.join("memory.memsw.limit_in_bytes").exists() {
                        set(
                            &memory.dir,
                            "memory.memsw.limit_in_bytes",
                            bytes.to_string(),
                        )?;
                    }
                }
            }
            self.memory_limit = Some(bytes);
        }
        if let (Some(count), Some(pids)) = (limits.processes, &self.pids) {
            let max = u64::from(count) + u64::from(extra_processes);
            set(&pids.dir, "pids.max", max.to_string())?;
            self.process_limit = Some(count);
        }
        Ok(())
    }

    /// The v2 folder, to create the child in, and its `cgroup.procs` for a
    /// kernel that cannot (see `sandbox`).
    pub(crate) fn unified_handles(&self) -> Result<Option<UnifiedCgroup>, String> {
        let Some(dir) = &self.unified else {
            return Ok(None);
        };
        let folder = std::fs::File::open(dir)
            .map_err(|e| format!("could not open `{}`: {e}", dir.display()))?;
        Ok(Some(UnifiedCgroup {
            dir: OwnedFd::from(folder),
            procs: procs_handle(dir)?,
        }))
    }

    /// `cgroup.procs` of each v1 folder, opened for the child to write `0`
    /// into (join it) before it runs anything. Closed at `exec`.
    pub(crate) fn join_handles(&self) -> Result<Vec<OwnedFd>, String> {
        self.dirs()
            .filter(|dir| Some(*dir) != self.unified.as_deref())
            .map(procs_handle)
            .collect()
    }

    /// The limits this cgroup enforces, and those it was asked for but cannot.
    pub(crate) fn enforces(&self) -> Limits {
        Limits {
            memory: self.memory_limit,
            processes: self.process_limit,
        }
    }

    fn dirs(&self) -> impl Iterator<Item = &Path> {
        let memory = self.memory.as_ref().filter(|c| c.version == Version::V1);
        let pids = self.pids.as_ref().filter(|c| c.version == Version::V1);
        [
            self.unified.as_deref(),
            memory.map(|c| c.dir.as_path()),
            pids.map(|c| c.dir.as_path()),
            self.freezer.as_deref(),
        ]
        .into_iter()
        .flatten()
    }

    /// The run's processes now (from the first hierarchy; all hold the same).
    pub(crate) fn members(&self) -> Vec<i32> {
        self.dirs().next().map(files::procs).unwrap_or_default()
    }

    /// Sends `signal` to every process of the run, in whatever session or
    /// process group it put itself.
    pub(crate) fn signal(&self, signal: Signal) {
        for pid in self.members() {
            send(pid, signal);
        }
    }

    /// SIGKILL to every process of the run, without a gap a fork could use:
    /// `cgroup.kill` (v2), else freeze, kill, thaw (v1 freezer), else kill
    /// what is listed until nothing is.
    pub(crate) fn kill_all(&self) {
        if self.unified_kill
            && let Some(dir) = &self.unified
        {
            match files::write(&dir.join("cgroup.kill"), "1") {
                Ok(()) => return,
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cgroup.kill failed"),
            }
        }
        if let Some(dir) = &self.freezer {
            freeze_and_kill(dir);
        }
        for _ in 0..100 {
            let members = self.members();
            if members.is_empty() {
                return;
            }
            for pid in members {
                send(pid, Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// No process is left in it.
    pub(crate) fn is_empty(&self) -> bool {
        match &self.unified {
            Some(dir) if dir.join("cgroup.events").exists() => files::unpopulated(dir),
            _ => self.dirs().all(|d| files::procs(d).is_empty()),
        }
    }

    /// Waits until it is empty, polling at growing intervals (killed
    /// processes are usually gone within a millisecond); false at `limit`.
    pub(crate) async fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut pause = Duration::from_millis(1);
        while !self.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        true
    }

    /// [`RunCgroup::wait_empty`] for code that is not async.
    pub(crate) fn wait_empty_blocking(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.is_empty() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// The limits the kernel enforced during the run, from its counters: the
    /// OOM killer's kills in the cgroup, and forks refused at `pids.max`.
    pub(crate) fn limits_reached(&self) -> Vec<LimitReached> {
        let mut reached = Vec::new();
        if let (Some(bytes), Some(memory)) = (self.memory_limit, &self.memory) {
            let (file, key) = match memory.version {
                Version::V2 => ("memory.events", "oom_kill"),
                Version::V1 => ("memory.oom_control", "oom_kill"),
            };
            if files::counter(&memory.dir.join(file), key).unwrap_or(0) > 0 {
                reached.push(LimitReached::Memory(bytes));
            }
        }
        if let (Some(count), Some(pids)) = (self.process_limit, &self.pids)
            && files::counter(&pids.dir.join("pids.events"), "max").unwrap_or(0) > 0
        {
            reached.push(LimitReached::Processes(count));
        }
        reached
    }

    /// Leaves its folders as they are (a later sweep removes them).
    pub(crate) fn forget(&mut self) {
        self.removed = true;
    }

    /// Removes its folders (it must be empty).
    pub(crate) fn remove(&mut self) {
        self.removed = true;
        if let Some(dir) = &self.freezer {
            let _ = files::write(&dir.join("freezer.state"), "THAWED");
        }
        for dir in self.dirs() {
            if let Err(e) = std::fs::remove_dir(dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a run's cgroup");
            }
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // `execute` was dropped mid-run: stop everything now, tidy up later.
        self.kill_all();
        let mut left = RunCgroup {
            unified: self.unified.take(),
            unified_kill: self.unified_kill,
            memory: self.memory.take(),
            pids: self.pids.take(),
            freezer: self.freezer.take(),
            memory_limit: None,
            process_limit: None,
            removed: false,
        };
        self.removed = true;
        let _ = std::thread::Builder::new()
            .name("execgov-cgroup-rm".into())
            .spawn(move || {
                left.wait_empty_blocking(Duration::from_secs(5));
                left.remove();
            });
    }
}

/// `cgroup.procs` of `dir`, open for writing.
fn procs_handle(dir: &Path) -> Result<OwnedFd, String> {
    let path = dir.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map(OwnedFd::from)
        .map_err(|e| format!("could not open `{}`: {e}", path.display()))
}

fn send(pid: i32, signal: Signal) {
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pid, %signal, error = %e, "could not signal a run's process"),
    }
}

/// Freezes the cgroup (no process runs, so none can fork), kills every
/// member, thaws it so the kills take effect.
fn freeze_and_kill(dir: &Path) {
    let state = dir.join("freezer.state");
    if let Err(e) = files::write(&state, "FROZEN") {
        tracing::warn!(dir = %dir.display(), error = %e, "could not freeze a run's cgroup");
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while files::read(&state).is_ok_and(|s| s.trim() == "FREEZING") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    for pid in files::procs(dir) {
        send(pid, Signal::SIGKILL);
    }
    let _ = files::write(&state, "THAWED");
}
