//! A run's record on this host until the server has it, and the run as the
//! poll loop holds it: `{spool}/{run}.log` (the masked log) and, once the run
//! ended, `{spool}/{run}.json` (its outcome and files).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::protocol::Finish;

/// A run this runner holds, as the poll loop sees it.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) started: AtomicBool,
    /// The server asked to cancel it (or the runner is shutting down).
    pub(super) cancel: CancellationToken,
    /// The server says it is no longer ours: stop it and report nothing more.
    pub(super) lost: CancellationToken,
}

impl Held {
    pub(super) fn new(started: bool) -> Arc<Held> {
        Arc::new(Held {
            started: AtomicBool::new(started),
            cancel: CancellationToken::new(),
            lost: CancellationToken::new(),
        })
    }

    pub(super) fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }
}

/// What waits in the spool once a run ended: its finish and its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Ended {
    pub(super) finish: Finish,
    pub(super) files: Vec<(String, PathBuf)>,
}

pub(super) fn log_path(spool: &Path, run: i64) -> PathBuf {
    spool.join(format!("{run}.log"))
}

pub(super) fn ended_path(spool: &Path, run: i64) -> PathBuf {
    spool.join(format!("{run}.json"))
}
