//! Everything that holds one run's processes, and stopping all of them: the
//! script's process group, the run's cgroup, its PID namespace (which dies
//! with the script by itself), or in the fallback the subreaper's view.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::cgroup::RunCgroup;
use crate::reaper;
use crate::spawn::{GroupGuard, signal_group};
use crate::spec::LimitReached;

/// How long the run's cgroup may take to empty after everything was killed.
const EMPTY_WITHIN: Duration = Duration::from_secs(5);

/// One run's processes: where they are and how to stop them.
#[derive(Debug)]
pub(crate) struct Containment {
    /// The script's process group; SIGKILL to it when dropped.
    pub(crate) group: GroupGuard,
    /// The script's process id (the group's leader).
    pub(crate) leader: i32,
    pub(crate) cgroup: Option<RunCgroup>,
    /// Fallback without cgroup and namespace: the run's variables in the
    /// environment of the runner's adopted children mark the run's orphans.
    pub(crate) orphan_marks: Option<Vec<String>>,
}

impl Containment {
    /// SIGTERM to every process of the run that can be found, so each can tidy
    /// up, including those that left the process group.
    pub(crate) fn terminate(&self) {
        signal_group(self.group.pgid, Signal::SIGTERM);
        if let Some(cgroup) = &self.cgroup {
            cgroup.signal(Signal::SIGTERM);
        } else if self.orphan_marks.is_some() {
            reaper::signal_tree(self.leader, Signal::SIGTERM);
        }
    }

    /// SIGKILL to every process of the run but the script itself while it
    /// lives (the caller kills the script: it must be reaped by its `Child`).
    pub(crate) async fn kill_descendants(&self) {
        signal_group(self.group.pgid, Signal::SIGKILL);
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_all();
        } else if self.orphan_marks.is_some() {
            let leader = self.leader;
            let _ = tokio::task::spawn_blocking(move || reaper::kill_tree(leader)).await;
        }
    }

    /// After the script ended: kills whatever is left of the run and returns
    /// the limits the kernel enforced. The run's cgroup is removed once it is
    /// empty, in the background: nothing the outcome needs waits for that.
    pub(crate) async fn end(&mut self) -> Vec<LimitReached> {
        signal_group(self.group.pgid, Signal::SIGKILL);
        // The group is gone now; its id may be reused, so it is not signalled again.
        self.group.disarm();
        if let Some(marks) = self.orphan_marks.clone() {
            let killed = tokio::task::spawn_blocking(move || reaper::kill_adopted(&marks))
                .await
                .unwrap_or(0);
            if killed > 0 {
                tracing::debug!(killed, "killed the run's orphans");
            }
        }
        let Some(mut cgroup) = self.cgroup.take() else {
            return Vec::new();
        };
        cgroup.kill_all();
        let reached = cgroup.limits_reached();
        tokio::spawn(async move {
            if cgroup.wait_empty(EMPTY_WITHIN).await {
                cgroup.remove();
            } else {
                // Dropping it kills again and removes it once empty.
                tracing::warn!(
                    left = ?cgroup.members(),
                    "processes of a run were still dying {EMPTY_WITHIN:?} after SIGKILL"
                );
            }
        });
        reached
    }
}
