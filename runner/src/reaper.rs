//! The fallback where no cgroup can hold a run and no PID namespace can be
//! made (the runner is not root and has no cgroup delegated to it).
//!
//! The script is made a child subreaper in the child (see `sandbox`): while it
//! lives, every process it starts stays in its tree even after a double fork
//! and `setsid()`, so a timeout or cancel finds them all from its pid. When
//! the script ends, its orphans go to the runner's process, a child subreaper
//! too; the runner kills those of the run that ended, known by the run's
//! variables in their environment. A process that replaced its environment
//! at `exec` is not recognised there: this fallback is best effort, and the
//! README's host table says so.

use std::collections::HashMap;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// Makes this process a child subreaper: orphans below it become its children.
pub(crate) fn adopt_orphans() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Every process's parent, from `/proc/*/stat`; zombies left out.
fn parents() -> HashMap<i32, i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            (state != "Z").then_some((pid, ppid))
        })
        .collect()
}

fn descendants(root: i32, parents: &HashMap<i32, i32>) -> Vec<i32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (&pid, &ppid) in parents {
            if ppid == parent {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

fn send(pid: i32, signal: Signal) {
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pid, %signal, error = %e, "could not signal a run's process"),
    }
}

/// Sends `signal` to every descendant of `root` (the live script).
pub(crate) fn signal_tree(root: i32, signal: Signal) {
    for pid in descendants(root, &parents()) {
        send(pid, signal);
    }
}

/// SIGKILL to every descendant of `root` until none is left (a process that
/// forks while being killed leaves a child that the next round finds).
pub(crate) fn kill_tree(root: i32) {
    for _ in 0..50 {
        let left = descendants(root, &parents());
        if left.is_empty() {
            return;
        }
        for pid in left {
            send(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills this process's children that carry every one of `marks` (`NAME=value`)
/// in their environment, and what they started, and reaps them. Returns how
/// many it killed.
pub(crate) fn kill_adopted(marks: &[String]) -> usize {
    let me = std::process::id() as i32;
    let mut killed = 0;
    for _ in 0..50 {
        let parents = parents();
        let ours: Vec<i32> = parents
            .iter()
            .filter(|&(&pid, &ppid)| ppid == me && carries(pid, marks))
            .map(|(&pid, _)| pid)
            .collect();
        if ours.is_empty() {
            break;
        }
        for pid in ours {
            kill_tree(pid);
            send(pid, Signal::SIGKILL);
            if let Err(e) = waitpid(Pid::from_raw(pid), None) {
                tracing::debug!(pid, error = %e, "reaping an adopted process");
            }
            killed += 1;
        }
    }
    killed
}

fn carries(pid: i32, marks: &[String]) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
    marks.iter().all(|m| vars.contains(&m.as_bytes()))
}
