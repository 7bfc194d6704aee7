//! The server's housekeeping: tables that only grow are cut back to what is
//! still needed. Today that is `inbound_events`, the ids of platform events
//! (and schedule records) kept to drop redeliveries, pruned past
//! `[store] inbound_retention` (default 7 days; platforms stop redelivering
//! after minutes).
//!
//! It also posts again break-glass runs nobody reviewed within `[access]
//! review_within` (`Engine::remind_unreviewed`).
//!
//! Every server sharing a database prunes; the delete is idempotent, so two
//! doing it at once only repeat each other.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::Engine;

/// How often a pass runs (the first at start).
pub const EVERY: Duration = Duration::from_secs(3600);

/// How often break-glass runs are looked at for an overdue review.
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

/// Prunes at start and then every [`EVERY`], and reminds of overdue
/// break-glass reviews every [`REMIND_EVERY`], until `shutdown`.
pub async fn housekeeping_until_stopped(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut remind = tokio::time::interval(REMIND_EVERY);
    remind.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = every.tick() => { prune_once(&engine).await; }
            _ = remind.tick() => {
                if let Err(e) = engine.remind_unreviewed().await {
                    tracing::warn!(error = format!("{e:#}"), "looking for overdue break-glass reviews failed; will retry");
                }
            }
        }
    }
}

/// One pass: forgets inbound event ids older than the retention. Failures are
/// logged and retried at the next pass.
pub async fn prune_once(engine: &Engine) -> Option<u64> {
    let retention = engine.config().store.inbound_retention;
    let before = engine.now() - retention.as_millis() as i64;
    match engine.store().forget_events_before(before).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(
                    pruned = n,
                    retention = %humantime::format_duration(retention),
                    "forgot old inbound event ids"
                );
            }
            Some(n)
        }
        Err(e) => {
            tracing::warn!(error = %e, "pruning inbound event ids failed; will retry");
            None
        }
    }
}
