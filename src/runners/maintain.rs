//! The service's own sweeps: approval requests nobody answered in time
//! expire, and runs whose runner stopped renewing its lease are interrupted.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::Engine;

/// How often the sweeps run.
pub const TICK: Duration = Duration::from_secs(1);

/// Sweeps every [`TICK`] until `shutdown`. Leases are not lapsed during the
/// first lease after start: runners that lost this server while it was down
/// get one lease to renew before their runs are written off.
pub async fn maintain_until_stopped(engine: Arc<Engine>, shutdown: CancellationToken) {
    let lease_ms = engine.config().runner.lease.as_millis() as i64;
    let started = engine.now();
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let store = engine.store();
        let now = engine.now();
        match store.expire_due(now).await {
            Ok(runs) => {
                for run in &runs {
                    tracing::info!(run_id = %run.id, "approval request expired");
                    engine.emit(run);
                }
            }
            Err(e) => tracing::warn!(error = %e, "expiring approval requests failed"),
        }
        if now - started < lease_ms {
            continue;
        }
        match store.lapse_leases(now).await {
            Ok(runs) => {
                for run in &runs {
                    tracing::warn!(run_id = %run.id, worker = ?run.worker, "run interrupted: its runner stopped renewing its lease");
                    engine.emit(run);
                }
            }
            Err(e) => tracing::warn!(error = %e, "checking leases failed"),
        }
    }
}
