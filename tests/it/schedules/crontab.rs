//! Crontab as users write it: a weekday schedule, with or without a seconds field,
//! fires Monday to Friday at 09:00 local through a daylight-saving change, and
//! `execgov check` shows each schedule's next fires and names a bad field.

use super::*;
use chrono::{Datelike, NaiveDateTime, Timelike, Weekday};
use chrono_tz::Europe::Berlin;
use std::collections::HashMap;

both_backends!(
    weekday_schedules_fire_monday_to_friday_at_nine_in_berlin_over_a_fortnight_across_dst,
    |b| async move {
        let berlin = "timezone = \"Europe/Berlin\"";
        let m = echo_manifest(
            "weekdays",
            &[
                ("six", "0 0 9 * * 1-5", berlin),
                ("five", "0 9 * * 1-5", berlin),
            ],
        );
        // Sunday 22 March 2026 to Sunday 5 April; summer time starts on 29 March.
        let start = utc(2026, 3, 22, 0, 0, 0);
        let end = utc(2026, 4, 5, 23, 0, 0);
        let s = Sched::new(b, start, &[("weekdays.toml", m)], true).await;
        let mut sched = Scheduler::new(s.engine.clone());
        // Every quarter hour: a fire at any other minute would run late (catch_up =
        // "latest"), still keyed by its own time, so the keys show every fire there was.
        while s.clock.now_ms() < end {
            s.clock.advance(15 * MINUTE);
            let r = tick(&mut sched).await;
            assert!(
                r.skipped.is_empty() && r.missed.is_empty(),
                "each fire runs: {r:?}"
            );
            for (_, run) in &r.fired {
                let done = wait_final(&s.engine, *run).await;
                assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
            }
        }

        let mut fires: HashMap<String, Vec<i64>> = HashMap::new();
        for run in s.runs("weekdays").await {
            let key = run.schedule_key.expect("a scheduled run has a key");
            let (id, at) = key.split_once('@').unwrap();
            fires
                .entry(id.to_string())
                .or_default()
                .push(at.parse().unwrap());
        }
        let five = &fires["weekdays/five"];
        assert_eq!(
            &fires["weekdays/six"], five,
            "`0 0 9 * * 1-5` and `0 9 * * 1-5` fire alike"
        );
        let local: Vec<String> = five
            .iter()
            .map(|t| {
                chrono::DateTime::from_timestamp_millis(*t)
                    .unwrap()
                    .with_timezone(&Berlin)
                    .format("%a %F %T %Z")
                    .to_string()
            })
            .collect();
        assert_eq!(local.len(), 10, "ten weekdays in a fortnight: {local:#?}");
        for t in five {
            let at = chrono::DateTime::from_timestamp_millis(*t)
                .unwrap()
                .with_timezone(&Berlin);
            assert!(
                !matches!(at.weekday(), Weekday::Sat | Weekday::Sun),
                "Monday to Friday only: {local:#?}"
            );
            assert_eq!(
                (at.hour(), at.minute(), at.second()),
                (9, 0, 0),
                "09:00 local in winter and in summer time: {local:#?}"
            );
        }
        assert_eq!(
            (five[0], five[9]),
            (utc(2026, 3, 23, 8, 0, 0), utc(2026, 4, 3, 7, 0, 0)),
            "from Monday 09:00 CET to Friday 09:00 CEST: {local:#?}"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_shows_the_next_three_fires_in_the_schedules_timezone_and_names_a_bad_field() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let dir = env.path().join("manifests");
    let berlin = "timezone = \"Europe/Berlin\"";
    std::fs::write(
        dir.join("weekdays.toml"),
        echo_manifest(
            "weekdays",
            &[
                ("five", "0 9 * * MON-FRI", berlin),
                ("six", "0 0 9 * * 1-5", berlin),
            ],
        ),
    )
    .unwrap();

    let o = execgov(&env.config_path(), &["check"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "check passes: {out}");
    assert!(out.contains("ok: "), "the summary is still there: {out}");
    let lines: Vec<&str> = out.lines().collect();
    let next_of = |id: &str, cron: &str| -> Vec<String> {
        let head = format!("{id}: \"{cron}\" in Europe/Berlin");
        let at = lines
            .iter()
            .position(|l| *l == head)
            .unwrap_or_else(|| panic!("`{head}` is listed: {out}"));
        let next = lines[at + 1]
            .strip_prefix("  next ")
            .unwrap_or_else(|| panic!("next fires follow `{head}`: {out}"));
        next.split(", ").map(str::to_string).collect()
    };
    let five = next_of("weekdays/five", "0 9 * * MON-FRI");
    assert_eq!(five, next_of("weekdays/six", "0 0 9 * * 1-5"), "{out}");
    assert_eq!(five.len(), 3, "three fires: {out}");
    let mut previous = None;
    for shown in &five {
        let (local, zone) = shown.rsplit_once(' ').unwrap();
        assert!(
            zone == "CET" || zone == "CEST",
            "in the schedule's timezone: {out}"
        );
        let at = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(at.time().to_string(), "09:00:00", "at 09:00 local: {out}");
        assert!(
            !matches!(at.weekday(), Weekday::Sat | Weekday::Sun),
            "on a weekday: {out}"
        );
        assert!(previous < Some(at), "in order: {out}");
        previous = Some(at);
    }

    let bad = echo_manifest("bad", &[("typo", "0 9 * * 1-8", "")]);
    let line = bad.lines().position(|l| l.contains("1-8")).unwrap() + 1;
    std::fs::write(dir.join("bad.toml"), bad).unwrap();
    let o = execgov(&env.config_path(), &["check"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "check fails: {out}");
    let expected = format!(
        "bad.toml:{line}: key `schedule.cron`: bad cron expression `0 9 * * 1-8`: \
         day-of-week field `1-8`: 8 is more than 7; day-of-week accepts 0-7 (0 and 7 are Sunday) or SUN-SAT"
    );
    assert!(
        out.contains(&expected),
        "file:line, the field and what crontab accepts:\n{expected}\nin:\n{out}"
    );
    assert!(
        out.contains("weekdays/five: \"0 9 * * MON-FRI\""),
        "the manifests that load still show their fires: {out}"
    );
}
