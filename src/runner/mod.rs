//! The runner's execution core lives in its own crate, `execgov-runner` (no
//! chat SDK, no database driver: what a host that runs scripts needs). This
//! module re-exports what the rest of ExecGov uses, converts its ids, and
//! builds the service's local runner from `[runner]`.

pub use execgov_runner::{
    Artifact, Avoid, CgroupSetup, ExecOutcome, ExecSpec, ExitKind, Host, Leftover, LimitReached,
    Limits, Progress, RunUser, Runner, RunnerDeath, RunnerOptions, StartError, StopMechanism,
    child_env, not_started,
};

mod local;

pub use local::{Local, LocalOptions};

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::types::RunId;

impl From<RunId> for execgov_runner::RunId {
    fn from(id: RunId) -> Self {
        execgov_runner::RunId(id.0)
    }
}

impl From<execgov_runner::RunId> for RunId {
    fn from(id: execgov_runner::RunId) -> Self {
        RunId(id.0)
    }
}

/// The service's own runner, built from the config: its scope is the data
/// folder (a restarted service finds what its predecessor's runs left), its
/// user `[runner] user`. One that could not start refuses every run with the
/// reason; `execgov serve` refuses to start instead (see `app`).
#[derive(Debug, Clone)]
pub struct LocalRunner(Result<Runner, Arc<str>>);

impl LocalRunner {
    pub fn from_config(config: &Config) -> LocalRunner {
        let options = RunnerOptions {
            scope: config.data_dir.display().to_string(),
            user: config.runner.user.clone(),
            avoid: Avoid::default(),
        };
        LocalRunner(Runner::start(options).map_err(|e| {
            let why = format!("the runner cannot start: {e}");
            tracing::error!("{why}");
            Arc::from(why)
        }))
    }

    /// The runner, or why it could not start.
    pub fn runner(&self) -> Result<&Runner, &str> {
        self.0.as_ref().map_err(|why| &**why)
    }

    /// Runs one script (see [`Runner::execute`]); refused when the runner
    /// could not start.
    pub async fn execute(
        &self,
        spec: ExecSpec,
        cancel: CancellationToken,
        progress: mpsc::Sender<Progress>,
    ) -> ExecOutcome {
        match &self.0 {
            Ok(runner) => runner.execute(spec, cancel, progress).await,
            Err(why) => not_started(&spec, why),
        }
    }
}
