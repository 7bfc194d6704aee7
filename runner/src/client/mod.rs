//! The runner's side of the protocol (see `docs/runners.md`): a loop that
//! keeps a long poll open to the service, starts the runs it is handed, stops
//! the ones it is told to cancel, and delivers every log byte and outcome once,
//! however long the service is away. `execgov runner` runs it on a remote host;
//! `execgov serve` runs the same loop in-process as its local runner.
//!
//! - `mod.rs`: options and the poll loop (slots, leases, cancels, shutdown).
//! - `job.rs`: one run: digests checked, environment, run, outcome spooled.
//! - `inputs.rs`: the files sent with a request, fetched, checked, placed.
//! - `spool.rs`: a held run, and its log and outcome on disk until delivered.
//! - `deliver.rs`: the log streamed while it runs; files and finish delivered.
//! - `credential.rs`: trading an enrolment token for the runner's credential.
//! - `http.rs`: the HTTP(S) calls.
//! - `pyenv.rs`: Python environments, found or built where the run executes.

mod credential;
mod deliver;
mod http;
mod inputs;
mod job;
pub mod pyenv;
mod spool;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use credential::{TokenSource, write_private};
pub use http::{CallError, Http};
pub use job::PYTHON_MODULE;
pub use job::envs_dir;

use crate::Runner;
use crate::protocol::{HeldRun, PollRequest, PollResponse};
use spool::Held;

/// How long the runner asks the server to hold a poll (the server holds it at
/// most a third of the lease).
const POLL_WAIT: Duration = Duration::from_secs(25);
/// Beyond the poll's wait, how long an answer may take before the runner
/// takes the server as away.
const POLL_SLACK: Duration = Duration::from_secs(15);
/// At most this many polls open at once: one that watches for cancels while
/// every slot is busy, and one that asks for work once a slot frees up.
const MAX_POLLS: usize = 2;

/// A value for `secret_env` that this runner holds (`--secret NAME=…`).
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// `file:PATH`: the file's contents, without a trailing newline.
    File(PathBuf),
    /// `env:OTHER`: another variable of the runner's environment.
    Env(String),
}

impl SecretSource {
    /// `NAME=file:PATH` or `NAME=env:OTHER`.
    pub fn parse(spec: &str) -> Result<(String, SecretSource), String> {
        let bad = || format!("--secret `{spec}`: write NAME=file:PATH or NAME=env:OTHER_VARIABLE");
        let (name, source) = spec.split_once('=').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        let source = if let Some(path) = source.strip_prefix("file:") {
            SecretSource::File(PathBuf::from(path))
        } else if let Some(var) = source.strip_prefix("env:") {
            SecretSource::Env(var.to_string())
        } else {
            return Err(bad());
        };
        Ok((name.to_string(), source))
    }

    pub(crate) fn resolve(&self) -> Result<String, String> {
        match self {
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("reading secret file {}: {e}", path.display())),
            SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| format!("the runner's environment has no {var} for a secret")),
        }
    }
}

/// How a runner client runs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The service's base URL (`https://execgov.example.org`).
    pub server: String,
    pub token: TokenSource,
    /// The tags it was enrolled with (`--tags`); checked by the server.
    pub tags: Vec<String>,
    /// Runs at once.
    pub slots: u32,
    /// Where the script files are on this host (the service's manifests folder
    /// as deployed here); a job's files are relative to it.
    pub scripts: PathBuf,
    /// Run folders (`runs/{id}`).
    pub runs_dir: PathBuf,
    /// Logs and outcomes not yet delivered (private to the runner's user).
    pub spool: PathBuf,
    /// `secret_env` values this runner holds.
    pub secrets: Vec<(String, SecretSource)>,
    /// Values masked in every log besides a run's own secrets.
    pub mask: Vec<String>,
    /// On shutdown, how long running runs may go on before they are cancelled.
    pub drain: Duration,
}

/// What every task of a client shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) opts: ClientOptions,
    pub(crate) http: Http,
    pub(crate) runner: Runner,
}

/// Why a client stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Setup(String),
    /// The server refuses the credential or the tags: a person must act.
    #[error("{0}")]
    Refused(String),
}

type HeldMap = Arc<Mutex<HashMap<i64, Arc<Held>>>>;

/// Runs `runner`'s client until `shutdown`: polls, runs, delivers. On
/// shutdown it takes no new run, lets running ones go on for `drain`, cancels
/// what is left and delivers every outcome before it returns.
pub async fn run_until_stopped(
    runner: Runner,
    opts: ClientOptions,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    let anonymous = Http::new(&opts.server, "").map_err(ClientError::Setup)?;
    let credential = credential::credential(&anonymous, &opts.token)
        .await
        .map_err(ClientError::Setup)?;
    let http = anonymous.with_credential(&credential);
    private_dir(&opts.spool).map_err(ClientError::Setup)?;
    let shared = Arc::new(Shared { opts, http, runner });
    Loop::new(shared).run(shutdown).await
}

/// Creates `dir` (mode 0700) if needed.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| format!("making the spool folder {}: {e}", dir.display()))
}

struct Loop {
    shared: Arc<Shared>,
    held: HeldMap,
    /// Scripts running now (a run being delivered holds no slot).
    running: Arc<AtomicU32>,
    slot_freed: Arc<Notify>,
    tasks: JoinSet<()>,
    polls: JoinSet<(u32, Result<PollResponse, CallError>)>,
    /// Slots offered by the polls open now.
    promised: u32,
    retry_at: Option<Instant>,
    backoff: Duration,
    away_since: Option<Instant>,
}

impl Loop {
    fn new(shared: Arc<Shared>) -> Loop {
        Loop {
            shared,
            held: Arc::default(),
            running: Arc::default(),
            slot_freed: Arc::default(),
            tasks: JoinSet::new(),
            polls: JoinSet::new(),
            promised: 0,
            retry_at: None,
            backoff: Duration::from_millis(100),
            away_since: None,
        }
    }

    async fn run(mut self, shutdown: CancellationToken) -> Result<(), ClientError> {
        self.recover();
        let mut accepting = true;
        let mut drain_until: Option<Instant> = None;
        loop {
            while self.tasks.try_join_next().is_some() {}
            if !accepting && self.tasks.is_empty() {
                self.polls.abort_all();
                return Ok(());
            }
            self.open_polls(accepting);
            let retry_at = self.retry_at;
            tokio::select! {
                _ = shutdown.cancelled(), if accepting => {
                    accepting = false;
                    drain_until = Some(Instant::now() + self.shared.opts.drain);
                    tracing::info!(running = self.tasks.len(), "runner stopping: no new runs; waiting for running ones");
                }
                _ = sleep_until(drain_until), if drain_until.is_some() => {
                    drain_until = None;
                    tracing::warn!("runs still going after the drain time; cancelling them");
                    for h in self.held.lock().expect("held").values() {
                        h.cancel.cancel();
                    }
                }
                Some(answer) = self.polls.join_next() => {
                    let Ok((offered, answer)) = answer else { continue };
                    self.promised -= offered;
                    self.on_answer(answer)?;
                }
                _ = self.slot_freed.notified() => {}
                _ = sleep_until(retry_at), if retry_at.is_some() => self.retry_at = None,
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
        }
    }

    /// Keeps a poll open at all times (leases, cancels), and one more that asks
    /// for work when slots are free that no open poll has offered.
    fn open_polls(&mut self, accepting: bool) {
        if self.retry_at.is_some() || self.polls.len() >= MAX_POLLS {
            return;
        }
        let free = if accepting {
            self.shared
                .opts
                .slots
                .saturating_sub(self.running.load(Ordering::Relaxed))
        } else {
            0
        };
        let offer = free.saturating_sub(self.promised);
        if !self.polls.is_empty() && offer == 0 {
            return;
        }
        let holding: Vec<HeldRun> = self
            .held
            .lock()
            .expect("held")
            .iter()
            .map(|(run, h)| HeldRun {
                run: *run,
                started: h.started(),
            })
            .collect();
        let req = PollRequest {
            free_slots: offer,
            holding,
            tags: self.shared.opts.tags.clone(),
            wait_ms: POLL_WAIT.as_millis() as u64,
        };
        self.promised += offer;
        let http = self.shared.http.clone();
        self.polls.spawn(async move {
            let answer = http.post_json("/poll", &req, POLL_WAIT + POLL_SLACK).await;
            (offer, answer)
        });
    }

    fn on_answer(&mut self, answer: Result<PollResponse, CallError>) -> Result<(), ClientError> {
        let resp = match answer {
            Ok(resp) => resp,
            Err(CallError::Unreachable(why)) => {
                if self.away_since.is_none() {
                    tracing::warn!(%why, "the server is away; running runs go on and their outcomes wait in the spool");
                    self.away_since = Some(Instant::now());
                }
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
                return Ok(());
            }
            Err(
                e @ CallError::Refused {
                    status: 401 | 403, ..
                },
            ) => {
                for h in self.held.lock().expect("held").values() {
                    h.lost.cancel();
                    h.cancel.cancel();
                }
                return Err(ClientError::Refused(format!(
                    "{e}. If the runner was revoked, enrol it again (`execgov runners enrol NAME`)"
                )));
            }
            Err(e) => {
                tracing::warn!(error = %e, "poll refused; trying again");
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
                return Ok(());
            }
        };
        if let Some(since) = self.away_since.take() {
            tracing::info!(after = ?since.elapsed(), "the server answers again");
        }
        self.backoff = Duration::from_millis(100);
        {
            let held = self.held.lock().expect("held");
            for run in &resp.cancel {
                if let Some(h) = held.get(run) {
                    tracing::info!(run_id = run, "cancel asked");
                    h.cancel.cancel();
                }
            }
            for run in &resp.lost {
                if let Some(h) = held.get(run) {
                    tracing::warn!(
                        run_id = run,
                        "the server no longer counts this run as ours; stopping it"
                    );
                    h.lost.cancel();
                    h.cancel.cancel();
                }
            }
        }
        for job in resp.jobs {
            let run = job.run;
            tracing::info!(run_id = run, script = %job.script, "run claimed");
            let held = Held::new(false);
            self.held.lock().expect("held").insert(run, held.clone());
            self.running.fetch_add(1, Ordering::Relaxed);
            let (running, freed) = (self.running.clone(), self.slot_freed.clone());
            let slot_done = move || {
                running.fetch_sub(1, Ordering::Relaxed);
                freed.notify_one();
            };
            let (shared, map) = (self.shared.clone(), self.held.clone());
            self.tasks.spawn(async move {
                job::run(shared, job, held, slot_done).await;
                map.lock().expect("held").remove(&run);
            });
        }
        Ok(())
    }

    /// Delivers what an earlier runner of this spool left undelivered: runs
    /// that ended, and runs whose scripts it left running (stopped when this
    /// runner started, so they may have run partly).
    fn recover(&mut self) {
        let spool = self.shared.opts.spool.clone();
        let Ok(entries) = std::fs::read_dir(&spool) else {
            return;
        };
        let mut runs: Vec<i64> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".log").or(name.strip_suffix(".json"))?;
                stem.parse().ok()
            })
            .collect();
        runs.sort_unstable();
        runs.dedup();
        for run in runs {
            let ended = job::read_kept(&spool, run)
                .unwrap_or_else(|| job::abandoned(&spool::log_path(&spool, run)));
            tracing::info!(
                run_id = run,
                "delivering what an earlier runner left in the spool"
            );
            let held = Held::new(true);
            self.held.lock().expect("held").insert(run, held.clone());
            let (shared, map) = (self.shared.clone(), self.held.clone());
            self.tasks.spawn(async move {
                deliver::deliver(&shared, run, &held, ended, 0).await;
                map.lock().expect("held").remove(&run);
            });
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
