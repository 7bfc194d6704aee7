//! Fire times around daylight-saving changes (once per local day at set hours, real
//! time every hour) and crontab's meaning of days: weekdays, Sunday as 0 or 7,
//! day-of-month OR day-of-week, nicknames, and an optional seconds field.

use super::*;
use chrono::{Datelike, NaiveDate, Timelike, Weekday};
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

fn cron(text: &str) -> Crontab {
    Crontab::parse(text).unwrap_or_else(|e| panic!("`{text}` parses: {e}"))
}

fn daily_0230() -> FireTimes {
    FireTimes::new(&cron("30 2 * * *"), Berlin)
}

/// What croner itself does with a time zone on Berlin's 2026 spring-forward day:
/// one set hour fires when the gap ends, two set hours skip it. ExecGov's rule (the
/// module doc) fires both once that day. If an upgrade changes croner here, the
/// module doc needs a look.
#[test]
fn croner_alone_skips_the_gap_for_two_set_hours() {
    let from = Berlin.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
    let rfc = |c: &Crontab, n| -> Vec<String> {
        c.croner()
            .iter_after(from)
            .take(n)
            .map(|t| t.to_rfc3339())
            .collect()
    };
    assert_eq!(
        rfc(&cron("30 2 * * *"), 2),
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        "croner: a fixed time in the gap fires when it ends"
    );
    let two = cron("30 2,14 * * *");
    assert_eq!(
        rfc(&two, 3),
        [
            "2026-03-28T14:30:00+01:00",
            "2026-03-29T14:30:00+02:00",
            "2026-03-30T02:30:00+02:00"
        ],
        "croner: two set hours have no 02:30 fire on 29 March"
    );
    let ours =
        FireTimes::new(&two, Berlin).between(utc(2026, 3, 28, 12, 0), utc(2026, 3, 30, 12, 0), 10);
    assert_eq!(
        ours,
        [
            utc(2026, 3, 28, 13, 30),
            utc(2026, 3, 29, 1, 0), // 02:30 does not exist: 03:00 CEST
            utc(2026, 3, 29, 12, 30),
            utc(2026, 3, 30, 0, 30),
        ],
        "ExecGov: once per set hour per local day"
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
    let t = FireTimes::new(&cron("0 * * * *"), Berlin);
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
    let half = FireTimes::new(&cron("30 * * * *"), Berlin);
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
    let t = FireTimes::new(&cron("*/10 * * * *"), chrono_tz::UTC);
    let at = utc(2026, 6, 1, 12, 0);
    assert_eq!(t.next_after(at), Some(at + 600_000), "strictly after");
    assert_eq!(t.next_after(at - 1), Some(at), "a millisecond before");
    assert_eq!(t.latest_at_or_before(at), Some(at), "at counts");
    assert_eq!(t.latest_at_or_before(at - 1), Some(at - 600_000));
    assert_eq!(t.between(at, at + 1_800_000, 2).len(), 2, "limit holds");
}

/// The fires of `text` in UTC in `(from, to]`, as `YYYY-MM-DD Ddd HH:MM:SS` in UTC.
fn fires_utc(text: &str, from: i64, to: i64) -> Vec<String> {
    FireTimes::new(&cron(text), chrono_tz::UTC)
        .between(from, to, 100)
        .into_iter()
        .map(|t| {
            DateTime::from_timestamp_millis(t)
                .unwrap()
                .format("%F %a %T")
                .to_string()
        })
        .collect()
}

#[test]
fn weekdays_at_nine_fire_monday_to_friday_over_a_fortnight_across_spring_forward() {
    // Sunday 22 March to Sunday 5 April 2026; Berlin goes to summer time on 29 March.
    let (from, to) = (utc(2026, 3, 22, 0, 0), utc(2026, 4, 5, 23, 0));
    let six = FireTimes::new(&cron("0 0 9 * * 1-5"), Berlin).between(from, to, 100);
    let five = FireTimes::new(&cron("0 9 * * 1-5"), Berlin).between(from, to, 100);
    assert_eq!(six, five, "seconds first or not, the same fires");
    let shown: Vec<String> = five.iter().map(|t| show(*t)).collect();
    assert_eq!(five.len(), 10, "ten weekdays in a fortnight: {shown:#?}");
    for t in &five {
        let local = DateTime::from_timestamp_millis(*t)
            .unwrap()
            .with_timezone(&Berlin);
        assert!(
            !matches!(local.weekday(), Weekday::Sat | Weekday::Sun),
            "never at the weekend: {shown:#?}"
        );
        assert_eq!(
            (local.hour(), local.minute(), local.second()),
            (9, 0, 0),
            "09:00 local, in winter and in summer time: {shown:#?}"
        );
    }
    assert_eq!(five[0], utc(2026, 3, 23, 8, 0), "Monday 09:00 CET");
    assert_eq!(five[5], utc(2026, 3, 30, 7, 0), "Monday 09:00 CEST");
}

#[test]
fn sunday_is_0_or_7_and_names_mean_their_numbers() {
    let (from, to) = (utc(2026, 7, 1, 0, 0), utc(2026, 7, 15, 0, 0));
    let sundays = ["2026-07-05 Sun 09:00:00", "2026-07-12 Sun 09:00:00"];
    for text in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN", "0 9 * * sun"] {
        assert_eq!(fires_utc(text, from, to), sundays, "`{text}` is Sunday");
    }
    let weekdays = fires_utc("0 9 * * 1-5", from, to);
    assert_eq!(weekdays.len(), 10);
    assert_eq!(
        fires_utc("0 9 * * MON-FRI", from, to),
        weekdays,
        "MON-FRI is 1-5"
    );
    assert_eq!(
        fires_utc("0 9 * * FRI-SUN", from, to),
        fires_utc("0 9 * * 5-7", from, to),
        "a range may end on Sunday"
    );
    assert_eq!(
        fires_utc(
            "0 9 1 JAN,JUL *",
            utc(2026, 6, 1, 0, 0),
            utc(2027, 6, 1, 0, 0)
        ),
        ["2026-07-01 Wed 09:00:00", "2027-01-01 Fri 09:00:00"],
        "month names"
    );
}

#[test]
fn day_of_month_or_day_of_week_when_both_are_restricted() {
    // July 2026: the 1st is a Wednesday; Mondays are the 6th, 13th, 20th and 27th.
    let (from, to) = (utc(2026, 7, 1, 0, 0), utc(2026, 8, 1, 0, 0));
    assert_eq!(
        fires_utc("0 9 1 * MON", from, to),
        [
            "2026-07-01 Wed 09:00:00",
            "2026-07-06 Mon 09:00:00",
            "2026-07-13 Mon 09:00:00",
            "2026-07-20 Mon 09:00:00",
            "2026-07-27 Mon 09:00:00"
        ],
        "the 1st, and every Monday"
    );
    assert_eq!(
        fires_utc("0 9 */2 * MON", from, to),
        ["2026-07-13 Mon 09:00:00", "2026-07-27 Mon 09:00:00"],
        "a day field starting with `*` makes them AND, as Vixie cron: odd days that are Mondays"
    );
    assert_eq!(
        fires_utc("0 9 1 * *", from, to),
        ["2026-07-01 Wed 09:00:00"],
        "day-of-month alone"
    );
}

#[test]
fn nicknames_fire_as_the_fields_they_stand_for() {
    let (from, to) = (utc(2026, 7, 1, 0, 30), utc(2026, 7, 3, 0, 30));
    assert_eq!(
        fires_utc("@daily", from, to),
        ["2026-07-02 Thu 00:00:00", "2026-07-03 Fri 00:00:00"]
    );
    assert_eq!(
        fires_utc("@midnight", from, to),
        fires_utc("@daily", from, to)
    );
    let hourly = fires_utc("@hourly", from, to);
    assert_eq!(hourly.len(), 48, "every hour for two days");
    assert_eq!(hourly[0], "2026-07-01 Wed 01:00:00");
    assert_eq!(
        fires_utc("@weekly", from, utc(2026, 7, 20, 0, 0)),
        [
            "2026-07-05 Sun 00:00:00",
            "2026-07-12 Sun 00:00:00",
            "2026-07-19 Sun 00:00:00"
        ]
    );
    assert_eq!(
        fires_utc("@monthly", from, utc(2026, 9, 1, 0, 0)),
        ["2026-08-01 Sat 00:00:00", "2026-09-01 Tue 00:00:00"]
    );
    assert_eq!(
        fires_utc("@yearly", from, utc(2028, 1, 1, 0, 0)),
        ["2027-01-01 Fri 00:00:00", "2028-01-01 Sat 00:00:00"]
    );
}

#[test]
fn a_leading_seconds_field_fires_at_that_second() {
    let (from, to) = (utc(2026, 7, 1, 0, 0), utc(2026, 7, 3, 0, 0));
    assert_eq!(
        fires_utc("30 0 9 * * *", from, to),
        ["2026-07-01 Wed 09:00:30", "2026-07-02 Thu 09:00:30"]
    );
    assert_eq!(
        fires_utc("*/20 * * * * *", from, from + 60_000),
        [
            "2026-07-01 Wed 00:00:20",
            "2026-07-01 Wed 00:00:40",
            "2026-07-01 Wed 00:01:00"
        ]
    );
    assert_eq!(
        fires_utc("0 9 * * *", from, to),
        ["2026-07-01 Wed 09:00:00", "2026-07-02 Thu 09:00:00"],
        "five fields: at second 0"
    );
}
