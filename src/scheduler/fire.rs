//! One schedule in one tick: which fires are due since the last one handled, which
//! of them run (on time; or the latest missed one, by `catch_up`), and for each run
//! the overlap rule, the exactly-once record and the engine request.
//!
//! # `overlap = "queue"`
//! The queue is not stored apart: it is the schedule's fires after the last one
//! handled (`last_fire_at`, in the store). While a run of the schedule goes, none of
//! them is handled, so they wait, across restarts and on every server alike. Once
//! that run has ended, the fires that came up to its end were queued behind it: the
//! oldest runs (at most [`MAX_QUEUED`] are kept, the newest), and only that one,
//! so the next waits for its run in turn. A fire that came after the previous run
//! had ended was never queued and follows `catch_up` like any other.

use super::times::FireTimes;
use super::{GRACE_MS, MAX_FIRES_PER_TICK, MAX_QUEUED, TickReport, schedule_key, schedule_place};
use crate::engine::Engine;
use crate::manifest::{CatchUp, Manifest, Overlap, Schedule};
use crate::store::StoreError;
use crate::store::schedules::{EventOutcome, ScheduleEvent, ScheduleState};
use crate::types::Actor;
use anyhow::Context;
use serde_json::json;

/// One schedule at one tick.
pub(super) struct Due<'a> {
    pub engine: &'a Engine,
    pub manifest: &'a Manifest,
    pub schedule: &'a Schedule,
    /// `<script>/<name>`.
    pub id: String,
    pub now: i64,
}

/// The cron expression and timezone a stored last fire time belongs to.
fn spec(s: &Schedule) -> String {
    format!("{} {}", s.cron, s.timezone)
}

impl Due<'_> {
    /// Handles every fire of this schedule that is due at `now`. `state` is the
    /// stored state, if any; a schedule without one (or whose cron or timezone
    /// changed) starts from `start_at`.
    pub(super) async fn handle(
        &self,
        state: Option<&ScheduleState>,
        start_at: i64,
        report: &mut TickReport,
    ) -> anyhow::Result<()> {
        let store = self.engine.store();
        let times = FireTimes::of(self.schedule);
        let spec = spec(self.schedule);
        let last = match state {
            Some(s) if s.spec == spec => s.last_fire_at,
            _ => {
                store
                    .init_schedule(&self.id, &spec, start_at, self.now)
                    .await?
                    .last_fire_at
            }
        };
        let Some(first_due) = times.next_after(last).filter(|t| *t <= self.now) else {
            return Ok(());
        };
        let queue = self.schedule.overlap == Overlap::Queue;
        if queue && self.queued(&times, last, first_due, report).await? {
            return Ok(());
        }
        let on_time_after = last.max(self.now - GRACE_MS);
        let on_time = times.between(on_time_after, self.now, MAX_FIRES_PER_TICK);
        if first_due <= on_time_after {
            // Fires were missed (nobody ticked for a while): at most the latest runs.
            let latest = times
                .latest_at_or_before(on_time_after)
                .unwrap_or(first_due);
            let catch_up = match (self.schedule.catch_up, on_time.is_empty()) {
                (_, false) => Err("an on-time fire supersedes it"),
                (CatchUp::Skip, true) => Err("catch_up = \"skip\""),
                (CatchUp::Latest, true) if !within_one_period(&times, latest, self.now) => {
                    Err("it is more than one period old")
                }
                (CatchUp::Latest, true) => Ok(()),
            };
            match catch_up {
                Ok(()) => {
                    self.fire(latest, true, report).await?;
                    if queue {
                        return Ok(()); // the on-time fires wait for its run
                    }
                }
                Err(why) => self.missed(first_due, latest, why, report).await?,
            }
        }
        for fire_ms in on_time {
            self.fire(fire_ms, false, report).await?;
            if queue {
                break; // the next waits for this one's run
            }
        }
        Ok(())
    }

    /// `overlap = "queue"` (see the module doc), with `first_due` the oldest fire not
    /// handled yet. Returns whether the queue decided this tick: `first_due` waits for
    /// a run still going, or a fire queued behind the previous run was started.
    async fn queued(
        &self,
        times: &FireTimes,
        last: i64,
        first_due: i64,
        report: &mut TickReport,
    ) -> anyhow::Result<bool> {
        let store = self.engine.store();
        let key = schedule_key(&self.id, first_due);
        if let Some(running) = store
            .active_schedule_run(self.manifest.name.as_str(), &self.id, &key)
            .await?
        {
            tracing::debug!(schedule = %self.id, fire_at = first_due, run_id = %running, "fire waits for the previous run");
            report.queued.push(key);
            return Ok(true);
        }
        // The run of the last fire handled is the one that was going (fires are
        // handled only while none is): when did it end?
        let ended = match store
            .run_for_schedule_key(&schedule_key(&self.id, last))
            .await?
        {
            Some(run) => store.get_run(run).await?.finished_at,
            None => None,
        };
        let Some(ended) = ended.filter(|e| first_due <= *e) else {
            return Ok(false);
        };
        // The newest MAX_QUEUED fires in (last, ended] run; older ones are given up.
        let mut oldest_kept = times.latest_at_or_before(ended).unwrap_or(first_due);
        for _ in 1..MAX_QUEUED {
            match times.latest_at_or_before(oldest_kept - 1) {
                Some(t) if t > last => oldest_kept = t,
                _ => break,
            }
        }
        if oldest_kept > first_due {
            let latest = times
                .latest_at_or_before(oldest_kept - 1)
                .unwrap_or(first_due);
            self.queue_full(first_due, latest, report).await?;
        }
        self.fire(oldest_kept, oldest_kept < self.now - GRACE_MS, report)
            .await?;
        Ok(true)
    }

    /// Gives up the queued fires from `first` to `latest`, with one audit entry.
    async fn queue_full(
        &self,
        first: i64,
        latest: i64,
        report: &mut TickReport,
    ) -> anyhow::Result<()> {
        let key = schedule_key(&self.id, latest);
        let ev = ScheduleEvent {
            key: format!("schedule.skipped:{key}"),
            actor: self.actor().audit_name(),
            action: "schedule.skipped".into(),
            details: json!({
                "schedule": self.id,
                "schedule_key": key,
                "first_skipped": first,
                "latest_skipped": latest,
                "reason": "queue full",
                "overlap": "queue",
                "max_queued": MAX_QUEUED,
            }),
            while_active: None,
            now: self.now,
        };
        self.engine.store().record_schedule_event(ev).await?;
        tracing::warn!(schedule = %self.id, first_skipped = first, latest_skipped = latest, "queued fires given up: more than {MAX_QUEUED} waited");
        report.skipped.push(key);
        Ok(())
    }

    /// Records the fire at `fire_ms` once: as a run, or as skipped while the
    /// previous run still goes (`overlap = "skip"`). `late`: a catch-up after downtime.
    async fn fire(&self, fire_ms: i64, late: bool, report: &mut TickReport) -> anyhow::Result<()> {
        let store = self.engine.store();
        let key = schedule_key(&self.id, fire_ms);
        let skipped_key = format!("schedule.skipped:{key}");
        if store.run_for_schedule_key(&key).await?.is_some() {
            report.elsewhere.push(key);
            return self.advance(fire_ms).await;
        }
        if self.schedule.overlap == Overlap::Skip
            && let Some(running) = store
                .active_schedule_run(self.manifest.name.as_str(), &self.id, &key)
                .await?
        {
            let ev = ScheduleEvent {
                key: skipped_key.clone(),
                actor: self.actor().audit_name(),
                action: "schedule.skipped".into(),
                details: json!({
                    "schedule": self.id,
                    "schedule_key": key,
                    "fire_at": fire_ms,
                    "reason": "overlap",
                    "overlap": "skip",
                    "running": running,
                }),
                while_active: Some(running),
                now: self.now,
            };
            match store.record_schedule_event(ev).await? {
                EventOutcome::Recorded | EventOutcome::AlreadyRecorded => {
                    tracing::info!(schedule = %self.id, fire_at = fire_ms, run_id = %running, "fire skipped: the previous run is still going");
                    report.skipped.push(key);
                    return self.advance(fire_ms).await;
                }
                // It finished meanwhile: fire after all.
                EventOutcome::NoLongerActive => {}
            }
        }
        // Checked after the overlap check: a process that recorded this fire as
        // skipped did so while the previous run was going, so if that run is seen
        // finished above, the skip (if any) is visible here.
        if store.schedule_event_recorded(&skipped_key).await? {
            report.skipped.push(key);
            return self.advance(fire_ms).await;
        }
        let args = self.schedule.args.clone();
        let place = schedule_place(&self.id);
        match self
            .engine
            .request_typed(
                &self.actor(),
                &place,
                self.manifest,
                args,
                Some(key.clone()),
                crate::store::Durability::Relaxed,
            )
            .await
        {
            Ok(reply) => {
                let run = reply.run.context("the engine recorded no run")?;
                tracing::info!(schedule = %self.id, fire_at = fire_ms, late, run_id = %run.id, state = %run.state, "schedule fired");
                report.fired.push((key, run.id));
            }
            Err(e) => match e.downcast_ref::<StoreError>() {
                // Another process recorded this fire first.
                Some(se) if se.is_unique_violation() => report.elsewhere.push(key),
                Some(se) if se.is_transient() => return Err(e.context("recording the run")),
                _ => {
                    // Permanent (the script file is gone, …): say so once, move on.
                    tracing::error!(schedule = %self.id, error = format!("{e:#}"), "schedule could not fire");
                    let ev = ScheduleEvent {
                        key: format!("schedule.failed:{key}"),
                        actor: self.actor().audit_name(),
                        action: "schedule.failed".into(),
                        details: json!({ "schedule": self.id, "schedule_key": key, "fire_at": fire_ms, "error": format!("{e:#}") }),
                        while_active: None,
                        now: self.now,
                    };
                    store.record_schedule_event(ev).await?;
                    report.errors.push(format!("{key}: {e:#}"));
                }
            },
        }
        self.advance(fire_ms).await
    }

    /// Gives up the missed fires from `first` to `latest`, with one audit entry.
    async fn missed(
        &self,
        first: i64,
        latest: i64,
        why: &str,
        report: &mut TickReport,
    ) -> anyhow::Result<()> {
        let key = schedule_key(&self.id, latest);
        let ev = ScheduleEvent {
            key: format!("schedule.missed:{key}"),
            actor: self.actor().audit_name(),
            action: "schedule.missed".into(),
            details: json!({
                "schedule": self.id,
                "first_missed": first,
                "latest_missed": latest,
                "catch_up": match self.schedule.catch_up { CatchUp::Skip => "skip", CatchUp::Latest => "latest" },
                "reason": why,
            }),
            while_active: None,
            now: self.now,
        };
        self.engine.store().record_schedule_event(ev).await?;
        tracing::info!(schedule = %self.id, first_missed = first, latest_missed = latest, why, "missed fires not run");
        report.missed.push(key);
        self.advance(latest).await
    }

    async fn advance(&self, fire_ms: i64) -> anyhow::Result<()> {
        self.engine
            .store()
            .advance_schedule(&self.id, fire_ms, self.now)
            .await?;
        Ok(())
    }

    fn actor(&self) -> Actor {
        Actor::Schedule {
            id: self.id.clone(),
        }
    }
}

/// Whether a missed fire is recent enough to run late: `now` is within the interval
/// that led up to it (the one before it, else the one after it, e.g. weekdays at 9:
/// Friday's fire is still run on Friday evening, not on Sunday).
fn within_one_period(times: &FireTimes, fire_ms: i64, now: i64) -> bool {
    let period = match times.latest_at_or_before(fire_ms - 1) {
        Some(prev) => fire_ms - prev,
        None => match times.next_after(fire_ms) {
            Some(next) => next - fire_ms,
            None => return true,
        },
    };
    now - fire_ms <= period
}
