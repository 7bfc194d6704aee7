//! What the child is and does to itself between `fork` and `exec` (see
//! `sandbox`, which runs it), prepared here by the parent so that the child
//! only makes system calls; and the steps, named when one fails.

use std::ffi::{CString, c_int};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicI32;

use crate::sandbox::InitProgram;

/// Stack of the PID namespace's init between its `clone` and its `exec`.
const INIT_STACK: usize = 64 * 1024;

/// The program and its start: all that `execve` takes, and the folder.
#[derive(Debug)]
pub(crate) struct Launch {
    /// An absolute path (looked up by the parent).
    pub(crate) program: CString,
    pub(crate) argv: Vec<CString>,
    /// `NAME=value` entries: the whole environment.
    pub(crate) env: Vec<CString>,
    pub(crate) cwd: CString,
}

/// The run's cgroup v2 folder: the child is created in it
/// (`clone3(CLONE_INTO_CGROUP)`, Linux 5.7), or, where the kernel cannot,
/// writes `0` into its `cgroup.procs` as for the v1 ones.
#[derive(Debug)]
pub(crate) struct UnifiedCgroup {
    pub(crate) dir: OwnedFd,
    pub(crate) procs: OwnedFd,
}

/// What the child does to itself before `exec`, all of it prepared by the parent.
#[derive(Debug)]
pub(crate) struct ChildSetup {
    pub(crate) unified: Option<UnifiedCgroup>,
    /// `cgroup.procs` of each of the run's v1 cgroups, to write `0` into.
    pub(crate) join: Vec<OwnedFd>,
    /// Start a PID namespace whose init dies with the script: every process the
    /// script starts lives in it and dies with it (needs CAP_SYS_ADMIN).
    pub(crate) pid_namespace: Option<NamespaceInit>,
    pub(crate) credentials: Option<Credentials>,
    /// Keep orphaned descendants as the script's children (the fallback
    /// where no cgroup and no PID namespace can hold the run).
    pub(crate) subreaper: bool,
    /// The runner's process id: the child's parent must still be it once the
    /// parent-death signal is set, or the runner died before and the child stops.
    pub(crate) runner_pid: c_int,
    /// The run folder, entered again after the user switch: the script's paths
    /// are absolute, so the user must be able to reach it, not only be in it.
    pub(crate) run_dir: CString,
}

/// What the PID namespace's init runs (see `sandbox::image`), so that the init
/// holds none of the runner's memory (a fork that never `exec`s would keep a
/// copy-on-write snapshot of it for the whole run).
#[derive(Debug)]
pub(crate) struct NamespaceInit {
    /// The image's memfd, -1 if `sleep` is run instead.
    pub(crate) image: c_int,
    /// The `sleep` binary where there is no image.
    pub(crate) sleep: Option<CString>,
    /// The init's stack until its `exec`; it shares the child's memory then.
    pub(crate) stack: Vec<u8>,
    /// A pidfd of the child (the script-to-be), set in the child; -1 if none.
    pub(crate) script: AtomicI32,
}

impl NamespaceInit {
    pub(crate) fn new(program: &InitProgram) -> NamespaceInit {
        NamespaceInit {
            image: program.image_fd(),
            sleep: program.binary().cloned(),
            stack: vec![0; INIT_STACK],
            script: AtomicI32::new(-1),
        }
    }
}

/// The user, group and supplementary groups the script runs as.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) uid: libc::uid_t,
    pub(crate) gid: libc::gid_t,
    pub(crate) groups: Vec<libc::gid_t>,
}

/// The steps of [`ChildSetup`], as reported back when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    Signals = 1,
    Stdio,
    ProcessGroup,
    WorkingDir,
    JoinCgroup,
    CoreLimit,
    PidNamespace,
    Groups,
    Group,
    User,
    RunFolder,
    NoNewPrivileges,
    ParentDeathSignal,
    RunnerGone,
    Subreaper,
    NamespaceInit,
    Descriptors,
    Exec,
}

impl Step {
    fn from_byte(byte: u8) -> Option<Step> {
        use Step::*;
        [
            Signals,
            Stdio,
            ProcessGroup,
            WorkingDir,
            JoinCgroup,
            CoreLimit,
            PidNamespace,
            Groups,
            Group,
            User,
            RunFolder,
            NoNewPrivileges,
            ParentDeathSignal,
            RunnerGone,
            Subreaper,
            NamespaceInit,
            Descriptors,
            Exec,
        ]
        .into_iter()
        .find(|s| *s as u8 == byte)
    }

    /// What the child was doing, for the start error.
    pub(crate) fn doing(self) -> &'static str {
        match self {
            Step::Signals => "resetting signals",
            Step::Stdio => "connecting stdin, stdout and stderr",
            Step::ProcessGroup => "making the run's process group",
            Step::WorkingDir => "entering the run folder",
            Step::JoinCgroup => "joining the run's cgroup",
            Step::CoreLimit => "turning core dumps off",
            Step::PidNamespace => "making the run's PID namespace",
            Step::Groups => "setting the run user's groups",
            Step::Group => "switching to the run user's group",
            Step::User => "switching to the run user",
            Step::RunFolder => "entering the run folder as the run user",
            Step::NoNewPrivileges => "setting no_new_privs",
            Step::ParentDeathSignal => "tying the script's life to the runner",
            Step::RunnerGone => "starting (the runner was already gone)",
            Step::Subreaper => "making the script keep its orphans",
            Step::NamespaceInit => "starting the PID namespace's init",
            Step::Descriptors => "closing inherited descriptors",
            Step::Exec => "starting the program",
        }
    }
}

/// What the child writes on its report pipe when a step fails: the step's
/// byte, then `errno` (native byte order). One write of less than
/// `PIPE_BUF` bytes, so the parent reads all of it or nothing.
pub(crate) const REPORT_LEN: usize = 5;

/// A step of the child that failed, and the system's error.
#[derive(Debug)]
pub(crate) struct ChildFailure {
    /// `None` when the report named no known step.
    pub(crate) step: Option<Step>,
    pub(crate) error: io::Error,
}

impl ChildFailure {
    pub(crate) fn decode(report: [u8; REPORT_LEN]) -> ChildFailure {
        let [step, a, b, c, d] = report;
        ChildFailure {
            step: Step::from_byte(step),
            error: io::Error::from_raw_os_error(i32::from_ne_bytes([a, b, c, d])),
        }
    }
}
