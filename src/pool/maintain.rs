//! The pool's maintenance tick: heartbeat, approval expiry, lapsed leases.

use super::PoolOptions;
use crate::engine::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the tick runs.
pub const TICK: Duration = Duration::from_secs(1);

pub(super) async fn maintain_until_stopped(
    engine: Arc<Engine>,
    opts: Arc<PoolOptions>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = every.tick() => tick(&engine, &opts.worker_id).await,
        }
    }
}

/// One round: failures are logged and retried next tick, never fatal.
pub(super) async fn tick(engine: &Engine, worker_id: &str) {
    let store = engine.store();
    let now = engine.now();
    if let Err(e) = store.heartbeat(worker_id, now).await {
        tracing::warn!(error = %e, "heartbeat failed");
    }
    match store.expire_due(now).await {
        Ok(runs) => {
            for run in &runs {
                tracing::info!(run_id = %run.id, "approval request expired");
                engine.emit(run);
            }
        }
        Err(e) => tracing::warn!(error = %e, "expiring approval requests failed"),
    }
    match store.lapse_leases(now).await {
        Ok(runs) => {
            for run in &runs {
                tracing::warn!(run_id = %run.id, worker = ?run.worker, "run interrupted: its worker stopped renewing its lease");
                engine.emit(run);
            }
        }
        Err(e) => tracing::warn!(error = %e, "checking leases failed"),
    }
}
