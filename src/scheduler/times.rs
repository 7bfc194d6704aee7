//! Fire times: a schedule's cron expression evaluated on the wall clock of its
//! timezone, then mapped to instants with explicit rules for daylight-saving gaps
//! (a local time that does not exist) and folds (one that happens twice).
//!
//! # Why not `cron::Schedule::after(&DateTime<Tz>)` directly
//! cron 0.17 builds each candidate with `Tz::with_ymd_and_hms` and
//! - skips a local time that does not exist (`LocalResult::None` → `continue`): on the
//!   spring-forward day in Europe/Berlin, `0 30 2 * * *` has no fire at all;
//! - yields both instants of a local time that happens twice (`LocalResult::Ambiguous`
//!   → the earlier, then the later): on the fall-back day it fires twice, and an
//!   iterator started between the two yields the earlier one, before its own start.
//!
//! # What ExecGov does
//! It asks cron for local wall-clock times only (evaluated in UTC, which has neither
//! gaps nor folds) and maps each one to instants itself, by one of two rules:
//! - **At set hours** (the hour field is not `*`, e.g. `0 30 2 * * *`): once per local
//!   day. A time that does not exist fires when the gap ends (02:30 on the
//!   spring-forward day fires at 03:00 CEST, as Vixie cron does); a time that happens
//!   twice fires at its first occurrence only (02:30 CEST, not again at 02:30 CET).
//! - **Every hour** (the hour field is `*`, e.g. `0 */5 * * * *`): real time. A time
//!   in a gap is skipped, since the clock jumped over it and no real time was lost;
//!   a time in a fold fires at both occurrences, so a five-minute check never goes
//!   quiet for the repeated hour.
//!
//! Near a transition the candidates no longer map to instants in order, so the
//! searches below look [`FOLD_SLACK`] beyond their start and keep the best instant.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use cron::TimeUnitSpec;

use crate::manifest::Schedule;

/// Longer than any daylight-saving gap or fold in the tz database (2 h at most):
/// how far from its start a search looks when a transition is near.
const FOLD_SLACK: Duration = Duration::hours(3);

/// Candidates examined before giving up (a per-second schedule near a transition
/// needs some twenty thousand).
const MAX_CANDIDATES: usize = 100_000;

/// A schedule's fire times as instants (unix milliseconds).
#[derive(Debug, Clone)]
pub struct FireTimes {
    cron: cron::Schedule,
    tz: Tz,
    /// The hour field is `*`: gaps and folds follow real time (see the module doc).
    every_hour: bool,
}

impl FireTimes {
    pub fn new(cron: cron::Schedule, tz: Tz) -> FireTimes {
        let every_hour = cron.hours().is_all();
        FireTimes {
            cron,
            tz,
            every_hour,
        }
    }

    /// The fire times of a manifest's schedule (its cron was checked at load).
    pub fn of(schedule: &Schedule) -> Result<FireTimes, cron::error::Error> {
        Ok(FireTimes::new(schedule.cron_schedule()?, schedule.timezone))
    }

    /// The first fire strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let slack = self.slack_near(after_ms)?;
        let start = self.local(after_ms)? - slack;
        let mut best: Option<(i64, NaiveDateTime)> = None;
        for local in self
            .cron
            .after(&Utc.from_utc_datetime(&start))
            .take(MAX_CANDIDATES)
        {
            let local = local.naive_utc();
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
        // `rev()` walks back from strictly before its start.
        let start = self.local(at_ms)? + slack + Duration::seconds(1);
        let mut best: Option<(i64, NaiveDateTime)> = None;
        for local in self
            .cron
            .after(&Utc.from_utc_datetime(&start))
            .rev()
            .take(MAX_CANDIDATES)
        {
            let local = local.naive_utc();
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
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use chrono_tz::Europe::Berlin;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn show(ms: i64) -> String {
        let t = DateTime::from_timestamp_millis(ms).unwrap();
        format!(
            "{} = {}",
            t.format("%F %T UTC"),
            t.with_timezone(&Berlin).format("%F %T %Z")
        )
    }

    fn daily_0230() -> FireTimes {
        FireTimes::new("0 30 2 * * *".parse().unwrap(), Berlin)
    }

    /// What cron 0.17 itself does around Berlin's 2026 transitions; if an upgrade
    /// changes it, the module doc (and the README's "Schedules") need a look.
    #[test]
    fn cron_alone_skips_the_gap_and_fires_twice_in_the_fold() {
        let cron: cron::Schedule = "0 30 2 * * *".parse().unwrap();
        let from = Berlin.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let spring: Vec<String> = cron.after(&from).take(2).map(|t| t.to_rfc3339()).collect();
        assert_eq!(
            spring,
            ["2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"],
            "cron 0.17 has no fire on the spring-forward day"
        );
        let from = Berlin.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
        let autumn: Vec<String> = cron.after(&from).take(3).map(|t| t.to_rfc3339()).collect();
        assert_eq!(
            autumn,
            [
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-26T02:30:00+01:00"
            ],
            "cron 0.17 fires twice on the fall-back day"
        );
        // Started between the two 02:30s, it yields the first one, before its start.
        let between = Berlin
            .timestamp_millis_opt(utc(2026, 10, 25, 1, 15))
            .unwrap();
        let next = cron.after(&between).next().unwrap();
        assert_eq!(
            next.to_rfc3339(),
            "2026-10-25T02:30:00+02:00",
            "cron 0.17 goes back in time here"
        );
    }

    #[test]
    fn spring_forward_day_fires_once_when_the_gap_ends() {
        let fires = daily_0230().between(utc(2026, 3, 27, 12, 0), utc(2026, 3, 31, 12, 0), 10);
        let shown: Vec<String> = fires.iter().map(|t| show(*t)).collect();
        assert_eq!(
            fires,
            [
                utc(2026, 3, 28, 1, 30), // 02:30 CET
                utc(2026, 3, 29, 1, 0),  // 02:30 does not exist: 03:00 CEST, when the gap ends
                utc(2026, 3, 30, 0, 30), // 02:30 CEST
                utc(2026, 3, 31, 0, 30),
            ],
            "one fire per day: {shown:#?}"
        );
    }

    #[test]
    fn fall_back_day_fires_once_at_the_first_0230() {
        let t = daily_0230();
        let fires = t.between(utc(2026, 10, 23, 12, 0), utc(2026, 10, 27, 12, 0), 10);
        let shown: Vec<String> = fires.iter().map(|t| show(*t)).collect();
        assert_eq!(
            fires,
            [
                utc(2026, 10, 24, 0, 30), // 02:30 CEST
                utc(2026, 10, 25, 0, 30), // the first 02:30 (CEST); the second (CET) does not fire
                utc(2026, 10, 26, 1, 30), // 02:30 CET
                utc(2026, 10, 27, 1, 30),
            ],
            "one fire per day: {shown:#?}"
        );
        // From between the two 02:30s the next fire is the next day's, never the past one.
        assert_eq!(
            t.next_after(utc(2026, 10, 25, 1, 15)),
            Some(utc(2026, 10, 26, 1, 30))
        );
        assert_eq!(
            t.next_after(utc(2026, 10, 25, 0, 30)),
            Some(utc(2026, 10, 26, 1, 30))
        );
        assert_eq!(
            t.latest_at_or_before(utc(2026, 10, 25, 1, 45)),
            Some(utc(2026, 10, 25, 0, 30))
        );
    }

    #[test]
    fn latest_at_or_before_walks_back_across_both_transitions() {
        let t = daily_0230();
        assert_eq!(
            t.latest_at_or_before(utc(2026, 3, 29, 0, 59)),
            Some(utc(2026, 3, 28, 1, 30))
        );
        assert_eq!(
            t.latest_at_or_before(utc(2026, 3, 29, 1, 0)),
            Some(utc(2026, 3, 29, 1, 0))
        );
        assert_eq!(
            t.latest_at_or_before(utc(2026, 3, 29, 5, 0)),
            Some(utc(2026, 3, 29, 1, 0))
        );
        assert_eq!(
            t.latest_at_or_before(utc(2026, 10, 25, 0, 29)),
            Some(utc(2026, 10, 24, 0, 30))
        );
    }

    #[test]
    fn every_hour_schedules_fire_once_per_real_hour_through_both_transitions() {
        let t = FireTimes::new("0 0 * * * *".parse().unwrap(), Berlin);
        let spring = t.between(utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 3, 30), 10);
        // Local 01:00 CET, 03:00 CEST (02:00 does not exist: every hour skips it), 04:00, 05:00.
        assert_eq!(
            spring,
            [
                utc(2026, 3, 29, 0, 0),
                utc(2026, 3, 29, 1, 0),
                utc(2026, 3, 29, 2, 0),
                utc(2026, 3, 29, 3, 0)
            ]
        );
        // At :30 every hour: no extra fire when the gap ends, one every real hour.
        let half = FireTimes::new("0 30 * * * *".parse().unwrap(), Berlin);
        let fires = half.between(utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 2, 0), 10);
        assert_eq!(
            fires,
            [
                utc(2026, 3, 28, 23, 30),
                utc(2026, 3, 29, 0, 30),
                utc(2026, 3, 29, 1, 30)
            ]
        );
        let autumn = t.between(utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 3, 30), 10);
        // Local 02:00 CEST, 02:00 CET (every hour: both occurrences), 03:00 CET, 04:00 CET.
        assert_eq!(
            autumn,
            [
                utc(2026, 10, 25, 0, 0),
                utc(2026, 10, 25, 1, 0),
                utc(2026, 10, 25, 2, 0),
                utc(2026, 10, 25, 3, 0)
            ]
        );
    }

    #[test]
    fn times_are_strictly_after_and_at_or_before() {
        let t = FireTimes::new("0 */10 * * * *".parse().unwrap(), chrono_tz::UTC);
        let at = utc(2026, 6, 1, 12, 0);
        assert_eq!(t.next_after(at), Some(at + 600_000), "strictly after");
        assert_eq!(t.next_after(at - 1), Some(at), "a millisecond before");
        assert_eq!(t.latest_at_or_before(at), Some(at), "at counts");
        assert_eq!(t.latest_at_or_before(at - 1), Some(at - 600_000));
        assert_eq!(t.between(at, at + 1_800_000, 2).len(), 2, "limit holds");
    }
}
