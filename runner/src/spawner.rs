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

use tokio::sync::oneshot;

use crate::sandbox::{self, StartFailure, Started};
use crate::setup::{ChildSetup, Launch};

/// One fork request: what to start, how, and where to say how it went.
struct Job {
    launch: Launch,
    setup: ChildSetup,
    reply: oneshot::Sender<Result<Started, StartFailure>>,
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
                for job in queue {
                    // A panic must not end this thread: every running script
                    // would die with it.
                    let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        sandbox::start(&job.launch, &job.setup)
                    }))
                    .unwrap_or_else(|_| {
                        Err(StartFailure::Prepare(io::Error::other(
                            "spawning the script panicked",
                        )))
                    });
                    // `job.setup` (the cgroup handles, the namespace init's
                    // stack) is dropped here, after the child's `exec`.
                    let _ = job.reply.send(started);
                }
            })?;
        Ok(Spawner { jobs })
    }

    /// Forks the script from the spawner thread and waits for its `exec`.
    pub(crate) async fn spawn(
        &self,
        launch: Launch,
        setup: ChildSetup,
    ) -> Result<Started, StartFailure> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            launch,
            setup,
            reply,
        };
        let gone =
            || StartFailure::Prepare(io::Error::other("the runner's spawner thread is gone"));
        self.jobs.send(job).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
