//! The thread every script is forked from.
//!
//! A child's parent-death signal fires when the *thread* that forked it exits,
//! not the process. Async tasks run on whichever runtime thread is free, and
//! runtimes end threads they no longer need, so scripts forked from there
//! would be killed at random. This thread lives as long as the runner (every
//! clone of it), so its children die exactly when the runner does.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// One fork request: the command, the runtime that will watch the child.
struct Job {
    cmd: Command,
    runtime: Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// Sends fork requests to the spawner thread; the thread ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Spawner {
    jobs: mpsc::Sender<Job>,
}

impl Spawner {
    pub(crate) fn start() -> io::Result<Spawner> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("execgov-spawner".into())
            .spawn(move || {
                for mut job in queue {
                    // The child is registered with the caller's runtime, which
                    // reaps it and wakes `wait()`. A panic must not end this
                    // thread: every running script would die with it.
                    let spawned = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        let _runtime = job.runtime.enter();
                        job.cmd.spawn()
                    }))
                    .unwrap_or_else(|_| Err(io::Error::other("spawning the script panicked")));
                    let _ = job.reply.send(spawned);
                }
            })?;
        Ok(Spawner { jobs })
    }

    /// Forks `cmd` from the spawner thread; must be called inside a Tokio runtime.
    pub(crate) async fn spawn(&self, cmd: Command) -> io::Result<Child> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            cmd,
            runtime: Handle::current(),
            reply,
        };
        let gone = || io::Error::other("the runner's spawner thread is gone");
        self.jobs.send(job).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
