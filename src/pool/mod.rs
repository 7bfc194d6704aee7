//! The worker pool: claims queued runs from the store (atomically, so several
//! processes can share one database), runs each through [`crate::runner`], and
//! records the outcome. A maintenance tick keeps this worker's heartbeat,
//! expires unanswered approval requests and marks runs whose worker died.
//!
//! - `mod.rs`: the claim loop and its shutdown.
//! - `execute.rs`: one run, from claim to its final state.
//! - `maintain.rs`: heartbeat, expiry, lapsed leases.

mod execute;
mod maintain;

use crate::engine::Engine;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How a pool runs; built from the config by [`PoolOptions::from_engine`].
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Unique per process: written on claimed runs and in the heartbeat.
    pub worker_id: String,
    pub pool_size: usize,
    /// A running run's lease; renewed every third of it.
    pub lease_ms: i64,
    /// How often the pool looks for work when nothing woke it (runs queued by other processes).
    pub poll: Duration,
    /// Per-run working folders are made under `data_dir/runs`, logs under `data_dir/logs`.
    pub data_dir: PathBuf,
    pub log_cap: u64,
    pub kill_grace: Duration,
    /// How long shutdown waits for running runs before cancelling them.
    pub drain: Duration,
}

impl PoolOptions {
    pub fn from_engine(engine: &Engine) -> PoolOptions {
        let c = engine.config();
        PoolOptions {
            worker_id: format!(
                "{}:{}:{}",
                nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "host".into()),
                std::process::id(),
                hex::encode(rand::random::<[u8; 3]>())
            ),
            pool_size: c.runner.pool_size.max(1),
            lease_ms: 30_000,
            poll: Duration::from_millis(500),
            data_dir: c.data_dir.clone(),
            log_cap: c.runner.log_cap,
            kill_grace: c.runner.kill_grace,
            drain: Duration::from_secs(30),
        }
    }
}

/// A worker pool bound to one engine.
#[derive(Debug)]
pub struct Pool {
    engine: Arc<Engine>,
    opts: PoolOptions,
}

impl Pool {
    pub fn new(engine: Arc<Engine>, opts: PoolOptions) -> Pool {
        Pool { engine, opts }
    }

    /// Claims and runs work until `shutdown`, then drains: running runs get
    /// `drain` to finish before they are cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        let engine = self.engine;
        let opts = Arc::new(self.opts);
        let sem = Arc::new(Semaphore::new(opts.pool_size));
        let wake = engine.wake_handle();
        let stop_runs = CancellationToken::new();
        let mut tasks = JoinSet::new();

        // Heartbeat first, so a CLI sees a live worker as soon as we claim.
        maintain::tick(&engine, &opts.worker_id).await;
        let maint = tokio::spawn(maintain::maintain_until_stopped(
            engine.clone(),
            opts.clone(),
            shutdown.clone(),
        ));

        let mut backoff = Duration::from_millis(100);
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                p = sem.clone().acquire_owned() => p.expect("semaphore never closes"),
            };
            let now = engine.now();
            match engine
                .store()
                .claim_next(&opts.worker_id, opts.lease_ms, now)
                .await
            {
                Ok(Some(run)) => {
                    backoff = Duration::from_millis(100);
                    let (e, o, stop) = (engine.clone(), opts.clone(), stop_runs.child_token());
                    tasks.spawn(async move {
                        execute::run_one(&e, &o, run, stop).await;
                        drop(permit);
                        e.wake_handle().notify_one();
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(opts.poll) => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %e, retry_in = ?backoff, "claiming a run failed");
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }

        if !tasks.is_empty() {
            tracing::info!(
                running = tasks.len(),
                "pool stopping; waiting for running runs"
            );
            let all_done = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(opts.drain, all_done).await.is_err() {
                tracing::warn!("runs still going after the drain limit; cancelling them");
                stop_runs.cancel();
                while tasks.join_next().await.is_some() {}
            }
        }
        maint.abort();
    }
}
