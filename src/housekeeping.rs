//! The server's housekeeping: tables that only grow are cut back to what is
//! still needed: `inbound_events`, the ids of platform events (and schedule
//! records) kept to drop redeliveries, pruned past `[store] inbound_retention`
//! (default 7 days; platforms stop redelivering after minutes); and the
//! payloads of finished runs past `[retention]` (`crate::retention`, off by
//! default).
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

/// What one pass removed; `None` where that part failed (it is logged and
/// retried at the next pass).
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// Inbound event ids forgotten.
    pub events: Option<u64>,
    /// Payloads of finished runs removed by `[retention]`.
    pub retention: Option<crate::retention::Pruned>,
}

/// One pass: forgets inbound event ids older than their retention, and
/// removes the payloads of finished runs past `[retention]` in small batches.
pub async fn prune_once(engine: &Engine) -> PassReport {
    prune_once_with(engine, &crate::retention::Pass::default()).await
}

/// [`prune_once`] with the retention's batches shaped by `pass`.
pub async fn prune_once_with(engine: &Engine, pass: &crate::retention::Pass) -> PassReport {
    let retention = engine.config().store.inbound_retention;
    let before = engine.now() - retention.as_millis() as i64;
    let events = match engine.store().forget_events_before(before).await {
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
    };
    let retention = if engine.config().retention.is_set() {
        match crate::retention::prune(engine, pass).await {
            Ok(p) => {
                tracing::info!(
                    runs = p.runs,
                    logs = p.logs,
                    log_bytes = p.log_bytes,
                    files = p.files,
                    outputs = p.outputs,
                    batches = p.batches,
                    "retention pass: removed the payloads of finished runs past their retention"
                );
                Some(p)
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "retention pass failed; will retry"
                );
                None
            }
        }
    } else {
        None
    };
    PassReport { events, retention }
}
