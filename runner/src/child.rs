//! The script's process once started: its output pipes, waiting for its exit,
//! killing it. What `tokio::process::Child` gives, for a child that `sandbox`
//! forked itself.
//!
//! A thread of its own waits for the exit (`waitid` with `WNOWAIT`, so the
//! process stays a zombie holding its pid), then reaps it under a lock that
//! [`ScriptProcess::start_kill`] takes too: a kill never reaches another
//! process that was given the same pid after the reaping. This works on every
//! kernel (no pidfd needed) and never reaps another child of the runner.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use crate::sandbox::Started;

/// Stack of the thread that waits for one script (it only makes system calls).
const WAITER_STACK: usize = 64 * 1024;

/// A running (or ended, not yet waited for) script. Dropped before its exit
/// was seen, it kills the script (the way `kill_on_drop` does).
#[derive(Debug)]
pub(crate) struct ScriptProcess {
    pid: Pid,
    pub(crate) stdout: Option<pipe::Receiver>,
    pub(crate) stderr: Option<pipe::Receiver>,
    /// True once the waiter reaped it: its pid is no longer ours to signal.
    reaped: Arc<Mutex<bool>>,
    exit: oneshot::Receiver<io::Result<ExitStatus>>,
    status: Option<ExitStatus>,
}

impl ScriptProcess {
    /// Takes over a started script; must be called inside a Tokio runtime.
    pub(crate) fn new(started: Started) -> io::Result<ScriptProcess> {
        let pid = Pid::from_raw(started.pid);
        let reaped = Arc::new(Mutex::new(false));
        let (tell, exit) = oneshot::channel();
        let waiter = {
            let reaped = reaped.clone();
            std::thread::Builder::new()
                .name("execgov-wait".into())
                .stack_size(WAITER_STACK)
                .spawn(move || {
                    let _ = tell.send(wait_and_reap(pid, &reaped));
                })
        };
        let pipes =
            (|| Ok::<_, io::Error>((receiver(started.stdout)?, receiver(started.stderr)?)))();
        let mut process = ScriptProcess {
            pid,
            stdout: None,
            stderr: None,
            reaped,
            exit,
            status: None,
        };
        // On either error, dropping `process` kills the script; a waiter
        // that could not start leaves it to the run's cgroup and group kill.
        waiter?;
        let (stdout, stderr) = pipes?;
        process.stdout = Some(stdout);
        process.stderr = Some(stderr);
        Ok(process)
    }

    /// Waits for the script's exit; may be called again after that, or after
    /// a wait that was dropped before it ended.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = (&mut self.exit)
            .await
            .map_err(|_| io::Error::other("the thread waiting for the script ended"))??;
        self.status = Some(status);
        Ok(status)
    }

    /// SIGKILL to the script, unless it was already reaped.
    pub(crate) fn start_kill(&self) -> io::Result<()> {
        let reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if *reaped {
            return Err(io::Error::other("the script has already exited"));
        }
        match kill(self.pid, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for ScriptProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.start_kill();
        }
    }
}

/// A pipe's read end for Tokio.
fn receiver(fd: OwnedFd) -> io::Result<pipe::Receiver> {
    pipe::Receiver::from_owned_fd(fd)
}

/// Waits until `pid` exits without reaping it, then reaps it with `reaped`
/// held and set.
fn wait_and_reap(pid: Pid, reaped: &Mutex<bool>) -> io::Result<ExitStatus> {
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => break,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut reaped = reaped.lock().unwrap_or_else(PoisonError::into_inner);
    let status = loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => {}
            other => break other,
        }
    };
    *reaped = true;
    match status? {
        WaitStatus::Exited(_, code) => Ok(ExitStatus::from_raw(code << 8)),
        WaitStatus::Signaled(_, signal, core) => Ok(ExitStatus::from_raw(
            signal as i32 | if core { 0x80 } else { 0 },
        )),
        other => Err(io::Error::other(format!(
            "unexpected wait status {other:?}"
        ))),
    }
}
