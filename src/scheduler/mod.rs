//! The scheduler: fires each manifest's `[[schedule]]` at its cron times, in its
//! timezone, as a run requested by `schedule:<script>/<name>` through the engine,
//! so policy, approvals and the audit chain apply as to any request.
//!
//! Exactly once: a fire's run carries `schedule_key = "<script>/<name>@<fire ms>"`,
//! UNIQUE in the store, so any number of processes sharing one database can tick
//! the same schedules and each fire is recorded once; the loser of the race sees a
//! unique violation and moves on. Time comes from the engine's clock, never the
//! wall clock, so a `ManualClock` drives it in tests.
//!
//! - `mod.rs`: the loop, one tick over every schedule, what a tick reports.
//! - `fire.rs`: one schedule in one tick: what is due, catch-up, overlap, firing.
//! - `times.rs`: cron in a timezone, with explicit daylight-saving rules.
//! - `reload.rs`: reloading manifests on SIGHUP, folder changes and `execgov reload`.

mod fire;
pub mod reload;
pub mod times;

pub use reload::{reload_manifests, reload_until_stopped};
pub use times::FireTimes;

use crate::engine::Engine;
use crate::manifest::{Catalog, Manifest, Schedule};
use crate::store::Run;
use crate::types::{Place, Platform, RunId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the loop looks at the engine's clock.
pub const TICK: Duration = Duration::from_millis(500);

/// A fire handled within this long of its time is on time; later, it counts as
/// missed (the scheduler was down) and the schedule's `catch_up` decides.
pub const GRACE_MS: i64 = 60_000;

/// Fires of an `overlap = "queue"` schedule that may wait behind its running run;
/// when more came while it ran, the oldest are given up (audited `schedule.skipped`).
pub const MAX_QUEUED: usize = 10;

/// On-time fires one schedule may start in one tick (a per-second schedule after
/// a one-minute stall); older ones are missed.
const MAX_FIRES_PER_TICK: usize = 60;

/// Fires each schedule of the engine's current manifests (a reload takes effect at
/// the next tick).
#[derive(Debug)]
pub struct Scheduler {
    engine: Arc<Engine>,
    /// When this scheduler was made: a schedule with no stored state at the first
    /// tick starts here, so what came due since `new` still fires.
    started_at: i64,
    ticked: bool,
}

/// What one tick did, by schedule key (`<script>/<name>@<fire ms>`).
#[derive(Debug, Default, Clone)]
pub struct TickReport {
    /// Fires recorded as runs, with the run.
    pub fired: Vec<(String, RunId)>,
    /// Fires dropped because the schedule's previous run was still going (`overlap = "skip"`),
    /// or because more than [`MAX_QUEUED`] waited behind it (`overlap = "queue"`).
    pub skipped: Vec<String>,
    /// The oldest fire of each `overlap = "queue"` schedule that waits for the
    /// schedule's previous run to end; it runs, in order, once that run has ended.
    pub queued: Vec<String>,
    /// The latest missed fire of each schedule that did not catch up (`catch_up = "skip"`,
    /// older than one period, or superseded by an on-time fire).
    pub missed: Vec<String>,
    /// Fires another process (or an earlier tick) had already handled.
    pub elsewhere: Vec<String>,
    /// Schedules that failed this tick, and why; they are tried again next tick.
    pub errors: Vec<String>,
}

impl TickReport {
    pub fn is_empty(&self) -> bool {
        self.fired.is_empty()
            && self.skipped.is_empty()
            && self.queued.is_empty()
            && self.missed.is_empty()
            && self.elsewhere.is_empty()
            && self.errors.is_empty()
    }
}

impl Scheduler {
    pub fn new(engine: Arc<Engine>) -> Scheduler {
        let started_at = engine.now();
        Scheduler {
            engine,
            started_at,
            ticked: false,
        }
    }

    /// Ticks every [`TICK`] until `shutdown`. A failing tick (the database is away)
    /// is logged and retried with a doubling delay up to 30 s.
    pub async fn run_until_stopped(mut self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = TICK;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            match self.tick().await {
                Ok(report) => {
                    backoff = TICK;
                    for e in &report.errors {
                        tracing::warn!(error = %e, "schedule tick");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), retry_in = ?backoff, "scheduler tick failed");
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// One pass over every schedule at the engine clock's now: fires what is due,
    /// records what is skipped or missed. Deterministic for a given clock and store,
    /// so tests call it after advancing a `ManualClock`.
    pub async fn tick(&mut self) -> anyhow::Result<TickReport> {
        let now = self.engine.now();
        let catalog = self.engine.catalog();
        let states: HashMap<String, _> = self
            .engine
            .store()
            .schedule_states()
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        // A schedule first seen later (a reload added it) starts from now.
        let start_at = if self.ticked {
            now
        } else {
            self.started_at.min(now)
        };
        let mut report = TickReport::default();
        for manifest in catalog.iter() {
            for schedule in &manifest.schedules {
                let one = fire::Due {
                    engine: &self.engine,
                    manifest,
                    schedule,
                    id: schedule_id(manifest, schedule),
                    now,
                };
                if let Err(e) = one.handle(states.get(&one.id), start_at, &mut report).await {
                    report.errors.push(format!("{}: {e:#}", one.id));
                }
            }
        }
        self.ticked = true;
        Ok(report)
    }
}

/// `<script>/<schedule name>`: the schedule's actor id and its runs' place channel.
pub fn schedule_id(manifest: &Manifest, schedule: &Schedule) -> String {
    format!("{}/{}", manifest.name, schedule.name)
}

/// The run key of one fire: `<script>/<schedule name>@<fire time in unix ms>`.
pub fn schedule_key(id: &str, fire_ms: i64) -> String {
    format!("{id}@{fire_ms}")
}

/// The place a schedule's runs are requested from.
pub fn schedule_place(id: &str) -> Place {
    Place::new(Platform::Schedule, id)
}

/// The manifest and schedule a scheduled run came from (its place is
/// `schedule:<script>/<name>`), if both are still in `catalog`. The notifier uses
/// it to find `post_to` and `notify_on_failure`.
pub fn schedule_for_run<'c>(
    catalog: &'c Catalog,
    run: &Run,
) -> Option<(&'c Manifest, &'c Schedule)> {
    let place = &run.place;
    if place.platform != Platform::Schedule {
        return None;
    }
    let (script, name) = place.channel.split_once('/')?;
    let manifest = catalog.get(script)?;
    let schedule = manifest.schedules.iter().find(|s| s.name == name)?;
    Some((manifest, schedule))
}
