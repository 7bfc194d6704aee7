//! Fire times: a schedule's crontab evaluated on the wall clock of its timezone,
//! then mapped to instants with explicit rules for daylight-saving gaps (a local time
//! that does not exist) and folds (one that happens twice).
//!
//! # Why not croner's own time-zone evaluation
//! croner evaluated on a `DateTime<Tz>` has rules of its own for gaps and folds, by
//! job type: a "fixed time" job (one value each in the seconds, minute and hour
//! fields) fires at the end of a gap and once in a fold, and any other job skips a
//! gap and fires twice in a fold. So `30 2,14 * * *` in Europe/Berlin has no 02:30
//! fire on the spring-forward day (see the test
//! `croner_alone_skips_the_gap_for_two_set_hours`), while `30 2 * * *` has one.
//! ExecGov's rule depends only on the hour field, as below.
//!
//! # What ExecGov does
//! It asks croner for local wall-clock times only (evaluated on `NaiveDateTime`,
//! which has neither gaps nor folds) and maps each one to instants itself, by one of
//! two rules:
//! - **At set hours** (the hour field does not match every hour, e.g. `30 2 * * *`):
//!   once per local day. A time that does not exist fires when the gap ends (02:30 on
//!   the spring-forward day fires at 03:00 CEST, as Vixie cron does); a time that
//!   happens twice fires at its first occurrence only (02:30 CEST, not again at
//!   02:30 CET).
//! - **Every hour** (the hour field is `*`, e.g. `*/5 * * * *`): real time. A time
//!   in a gap is skipped, since the clock jumped over it and no real time was lost;
//!   a time in a fold fires at both occurrences, so a five-minute check never goes
//!   quiet for the repeated hour.
//!
//! Near a transition the candidates no longer map to instants in order, so the
//! searches below look [`FOLD_SLACK`] beyond their start and keep the best instant.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::manifest::{Crontab, Schedule};

/// Longer than any daylight-saving gap or fold in the tz database (2 h at most):
/// how far from its start a search looks when a transition is near.
const FOLD_SLACK: Duration = Duration::hours(3);

/// Candidates examined before giving up (a per-second schedule near a transition
/// needs some twenty thousand).
const MAX_CANDIDATES: usize = 100_000;

/// A schedule's fire times as instants (unix milliseconds).
#[derive(Debug, Clone)]
pub struct FireTimes {
    cron: croner::Cron,
    tz: Tz,
    /// The hour field matches every hour: gaps and folds follow real time (see the
    /// module doc).
    every_hour: bool,
}

impl FireTimes {
    pub fn new(cron: &Crontab, tz: Tz) -> FireTimes {
        FireTimes {
            cron: cron.croner().clone(),
            tz,
            every_hour: cron.every_hour(),
        }
    }

    /// The fire times of a manifest's schedule.
    pub fn of(schedule: &Schedule) -> FireTimes {
        FireTimes::new(&schedule.cron, schedule.timezone)
    }

    /// The first fire strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let slack = self.slack_near(after_ms)?;
        let start = self.local(after_ms)? - slack;
        let mut best: Option<(i64, NaiveDateTime)> = None;
        for local in self.cron.iter_after(start).take(MAX_CANDIDATES) {
            if best.is_some_and(|(_, at)| local > at + slack) {
                break;
            }
            for t in self.instants(local).into_iter().flatten() {
                if t > after_ms && best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, self.local(t)?));
                }
            }
        }
        best.map(|(t, _)| t)
    }

    /// The last fire at or before `at_ms`.
    pub fn latest_at_or_before(&self, at_ms: i64) -> Option<i64> {
        let slack = self.slack_near(at_ms)?;
        // `iter_before` walks back from strictly before its start.
        let start = self.local(at_ms)? + slack + Duration::seconds(1);
        let mut best: Option<(i64, NaiveDateTime)> = None;
        for local in self.cron.iter_before(start).take(MAX_CANDIDATES) {
            if best.is_some_and(|(_, at)| local < at - slack) {
                break;
            }
            for t in self.instants(local).into_iter().flatten() {
                if t <= at_ms && best.is_none_or(|(b, _)| t > b) {
                    best = Some((t, self.local(t)?));
                }
            }
        }
        best.map(|(t, _)| t)
    }

    /// Fires in `(from_ms, to_ms]`, oldest first, at most `limit`.
    pub fn between(&self, from_ms: i64, to_ms: i64, limit: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = from_ms;
        while out.len() < limit {
            match self.next_after(at) {
                Some(t) if t <= to_ms => {
                    out.push(t);
                    at = t;
                }
                _ => break,
            }
        }
        out
    }

    /// The next `n` fires after `after_ms`, each in the schedule's timezone.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<DateTime<Tz>> {
        let mut out = Vec::with_capacity(n);
        let mut at = after_ms;
        while out.len() < n {
            let Some(t) = self.next_after(at) else { break };
            out.extend(DateTime::from_timestamp_millis(t).map(|u| u.with_timezone(&self.tz)));
            at = t;
        }
        out
    }

    /// [`FOLD_SLACK`] when the UTC offset changes within it of `ms`, else zero: away
    /// from transitions local times map to instants in order and a search can stop
    /// at its first hit.
    fn slack_near(&self, ms: i64) -> Option<Duration> {
        let offset = |t: DateTime<Utc>| self.tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let at = DateTime::from_timestamp_millis(ms)?;
        let near = offset(at - FOLD_SLACK) != offset(at + FOLD_SLACK);
        Some(if near { FOLD_SLACK } else { Duration::zero() })
    }

    /// The wall-clock time of an instant, to the second.
    fn local(&self, ms: i64) -> Option<NaiveDateTime> {
        let utc = DateTime::from_timestamp(ms.div_euclid(1000), 0)?;
        Some(utc.with_timezone(&self.tz).naive_local())
    }

    /// The instants (unix ms) a wall-clock time fires at, by the rules in the module doc.
    pub fn instants(&self, local: NaiveDateTime) -> [Option<i64>; 2] {
        let ms = |t: DateTime<Tz>| Some(t.timestamp_millis());
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => [ms(t), None],
            LocalResult::Ambiguous(first, second) if self.every_hour => [ms(first), ms(second)],
            LocalResult::Ambiguous(first, _) => [ms(first), None],
            LocalResult::None if self.every_hour => [None, None],
            LocalResult::None => [self.gap_end(local).map(|t| t.timestamp_millis()), None],
        }
    }

    /// The first instant after the daylight-saving gap that `local` falls in: the
    /// first valid whole minute after it, then back to the exact second the gap ends.
    fn gap_end(&self, local: NaiveDateTime) -> Option<DateTime<Tz>> {
        let valid = |t: NaiveDateTime| self.tz.from_local_datetime(&t).earliest();
        let minute = local - Duration::seconds(i64::from(chrono::Timelike::second(&local)));
        // Gaps last an hour, sometimes two; Samoa skipped a whole day in 2011.
        let mut end = (1..=2 * 24 * 60)
            .map(|m| minute + Duration::minutes(m))
            .find(|t| valid(*t).is_some())?;
        for _ in 0..60 {
            let before = end - Duration::seconds(1);
            if valid(before).is_none() {
                break;
            }
            end = before;
        }
        valid(end)
    }
}

#[cfg(test)]
mod tests;
