//! When schedules fire: on time, once across schedulers, catch-up after a
//! restart, overlap skipped, daylight-saving days, and approval.

use super::*;

both_backends!(
    a_schedule_fires_at_its_times_and_its_runs_succeed,
    |b| async move {
        let t0 = utc(2026, 6, 1, 0, 0, 5);
        let m = echo_manifest(
            "tick",
            &[(
                "minutely",
                "* * * * *",
                "args = { note = \"from-cron\" }\npost_to = [\"oncall\"]",
            )],
        );
        let s = Sched::new(b, t0, &[("tick.toml", m)], true).await;
        let mut sched = Scheduler::new(s.engine.clone());
        assert!(
            tick(&mut sched).await.fired.is_empty(),
            "nothing is due at the start"
        );

        for i in 1..=3 {
            s.clock.set(t0 + i * MINUTE);
            let fire = utc(2026, 6, 1, 0, i as u32, 0);
            let r = tick(&mut sched).await;
            let keys: Vec<&str> = r.fired.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                keys,
                [format!("tick/minutely@{fire}")],
                "one fire per minute, keyed by its time"
            );
            let run = wait_final(&s.engine, r.fired[0].1).await;
            assert_eq!(
                run.state,
                RunState::Succeeded,
                "the scheduled run ran: {:?}",
                run.error
            );
            assert!(
                run.output_tail
                    .as_deref()
                    .unwrap_or("")
                    .contains("arg=[from-cron]"),
                "schedule args used: {:?}",
                run.output_tail
            );
            let again = tick(&mut sched).await;
            assert!(
                again.fired.is_empty() && again.elsewhere.is_empty(),
                "a fire is handled once: {again:?}"
            );
        }

        let runs = s.runs("tick").await;
        assert_eq!(runs.len(), 3, "three fires, three runs");
        for (i, run) in runs.iter().enumerate() {
            let fire = utc(2026, 6, 1, 0, i as u32 + 1, 0);
            assert_eq!(
                run.schedule_key.as_deref(),
                Some(format!("tick/minutely@{fire}").as_str())
            );
            assert_eq!(
                run.requester, "schedule:tick/minutely",
                "the schedule is the requester"
            );
            assert_eq!(run.place, Place::new(Platform::Schedule, "tick/minutely"));
            let catalog = s.engine.catalog();
            let (m, sch) =
                schedule_for_run(&catalog, run).expect("the run maps back to its schedule");
            assert_eq!((m.name.as_str(), sch.name.as_str()), ("tick", "minutely"));
            assert_eq!(sch.post_to, ["oncall"]);
        }
    }
);

both_backends!(
    two_schedulers_on_one_database_fire_each_time_once,
    |b| async move {
        let t0 = utc(2026, 6, 1, 0, 0, 3);
        let m = echo_manifest(
            "busy",
            &[("often", "*/10 * * * * *", "overlap = \"queue\"")],
        );
        let s = Sched::new(b, t0, &[("busy.toml", m)], true).await;
        let mut one = Some(Scheduler::new(s.engine.clone()));
        let mut two = Some(Scheduler::new(s.second_engine().await));
        let fires = 30;
        let (mut fired, mut elsewhere) = (0, 0);
        for _ in 0..fires {
            s.clock.advance(10_000);
            let go = |mut sched: Scheduler| {
                tokio::spawn(async move {
                    let r = sched.tick().await.expect("tick");
                    (sched, r)
                })
            };
            let (a, b2) = tokio::join!(go(one.take().unwrap()), go(two.take().unwrap()));
            let ((s1, r1), (s2, r2)) = (a.unwrap(), b2.unwrap());
            for r in [&r1, &r2] {
                assert!(r.errors.is_empty(), "{:?}", r.errors);
                fired += r.fired.len();
                elsewhere += r.elsewhere.len();
                // Each run ends before the next fire, which would otherwise wait for it.
                for (_, run) in &r.fired {
                    wait_final(&s.engine, *run).await;
                }
            }
            one = Some(s1);
            two = Some(s2);
        }
        let runs = s.runs("busy").await;
        let mut keys: Vec<String> = runs.iter().filter_map(|r| r.schedule_key.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            runs.len(),
            fires,
            "exactly one run per fire ({fired} fired, {elsewhere} seen as done elsewhere)"
        );
        assert_eq!(keys.len(), fires, "every fire has its own key");
        assert_eq!(
            fired, fires,
            "each fire reported as fired by exactly one scheduler"
        );
        let chain = s.engine.store().verify_chain().await.unwrap();
        assert!(
            matches!(chain, execgov::store::ChainCheck::Ok { .. }),
            "audit chain intact: {chain:?}"
        );
    }
);

both_backends!(
    missed_fires_follow_catch_up_after_a_restart,
    |b| async move {
        // Friday 2026-06-05, 00:10 UTC.
        let t0 = utc(2026, 6, 5, 0, 10, 0);
        let m = echo_manifest(
            "hourly",
            &[
                (
                    "skip",
                    "0 * * * *",
                    "catch_up = \"skip\"\noverlap = \"queue\"",
                ),
                ("latest", "0 * * * *", "overlap = \"queue\""),
                ("weekdays", "0 9 * * Mon-Fri", "overlap = \"queue\""),
            ],
        );
        let s = Sched::new(b, t0, &[("hourly.toml", m)], true).await;
        let mut first = Scheduler::new(s.engine.clone());
        assert!(
            tick(&mut first).await.is_empty(),
            "nothing due at the start"
        );
        drop(first);

        // Down until 03:30: fires at 01:00, 02:00 and 03:00 were missed.
        s.clock.set(utc(2026, 6, 5, 3, 30, 0));
        let mut restarted = Scheduler::new(s.second_engine().await);
        let r = tick_to_the_end(&s, &mut restarted).await;
        let three = utc(2026, 6, 5, 3, 0, 0);
        let fired: Vec<&str> = r.fired.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            fired,
            [format!("hourly/latest@{three}")],
            "`latest` runs the most recent missed fire, once"
        );
        assert_eq!(
            r.missed,
            [format!("hourly/skip@{three}")],
            "`skip` runs none"
        );
        assert_eq!(s.runs("hourly").await.len(), 1, "one run in all");
        let missed = s.audit("schedule.missed").await;
        assert_eq!(
            missed.len(),
            1,
            "the skipped catch-up is audited: {missed:?}"
        );
        assert_eq!(missed[0]["first_missed"], utc(2026, 6, 5, 1, 0, 0));
        assert_eq!(missed[0]["latest_missed"], three);
        assert!(
            tick_to_the_end(&s, &mut restarted).await.is_empty(),
            "a second tick changes nothing"
        );

        // Down over the weekend until Monday 07:30: Friday's 09:00 is more than a period old.
        s.clock.set(utc(2026, 6, 8, 7, 30, 0));
        let r = tick_to_the_end(&s, &mut restarted).await;
        let seven = utc(2026, 6, 8, 7, 0, 0);
        let friday = utc(2026, 6, 5, 9, 0, 0);
        let fired: Vec<&str> = r.fired.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(fired, [format!("hourly/latest@{seven}")]);
        let mut missed = r.missed.clone();
        missed.sort();
        assert_eq!(
            missed,
            [
                format!("hourly/skip@{seven}"),
                format!("hourly/weekdays@{friday}")
            ],
            "a stale fire is not caught up"
        );

        // Back to normal: on-time fires run whatever catch_up says.
        s.clock.set(utc(2026, 6, 8, 8, 0, 2));
        let mut fired: Vec<String> = tick_to_the_end(&s, &mut restarted)
            .await
            .fired
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        fired.sort();
        let eight = utc(2026, 6, 8, 8, 0, 0);
        assert_eq!(
            fired,
            [
                format!("hourly/latest@{eight}"),
                format!("hourly/skip@{eight}")
            ]
        );
    }
);

both_backends!(
    a_fire_while_the_previous_run_runs_is_skipped_and_audited_once,
    |b| async move {
        let t0 = utc(2026, 6, 1, 0, 0, 5);
        let gates = tempfile::tempdir().unwrap();
        let gate = gates.path().join("gate");
        let m = format!(
            "name = \"slow\"\ndescription = \"waits for a gate file\"\ncommand = [\"sh\", \"scripts/gate.sh\", \"{{gate}}\"]\ntimeout = \"60s\"\n\
         [[param]]\nname = \"gate\"\ntype = \"string\"\nrequired = true\n[access]\nrun = []\n\
         [[schedule]]\nname = \"every-minute\"\ncron = \"* * * * *\"\nargs = {{ gate = \"{}\" }}\n",
            gate.display()
        );
        let s = Sched::new(b, t0, &[("slow.toml", m)], true).await;
        let mut one = Scheduler::new(s.engine.clone());
        let mut two = Scheduler::new(s.second_engine().await);
        tick(&mut one).await;
        tick(&mut two).await;

        s.clock.set(t0 + MINUTE);
        let r = tick(&mut one).await;
        assert_eq!(r.fired.len(), 1, "first fire runs: {r:?}");
        let first = r.fired[0].1;
        wait_for(&s.engine, first, |st| st == RunState::Running).await;

        s.clock.set(t0 + 2 * MINUTE);
        let second_key = format!("slow/every-minute@{}", utc(2026, 6, 1, 0, 2, 0));
        let (r1, r2) = tokio::join!(one.tick(), two.tick());
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        assert!(
            r1.fired.is_empty() && r2.fired.is_empty(),
            "no second run while the first runs: {r1:?} {r2:?}"
        );
        assert!(
            r1.skipped.contains(&second_key) || r2.skipped.contains(&second_key),
            "the fire is reported skipped"
        );
        let skipped = s.audit("schedule.skipped").await;
        assert_eq!(
            skipped.len(),
            1,
            "skipped once, however many schedulers saw it: {skipped:?}"
        );
        assert_eq!(skipped[0]["schedule_key"], second_key.as_str());
        assert_eq!(skipped[0]["running"], first.0, "names the run still going");

        std::fs::write(&gate, "").unwrap();
        let done = wait_final(&s.engine, first).await;
        assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
        s.clock.set(t0 + 3 * MINUTE);
        let r = tick(&mut one).await;
        assert_eq!(
            r.fired.len(),
            1,
            "the next fire runs once the previous run ended: {r:?}"
        );
        assert_eq!(s.runs("slow").await.len(), 2, "two runs for three fires");
    }
);

both_backends!(
    a_daily_0230_in_berlin_fires_once_on_both_dst_days,
    |b| async move {
        let m = echo_manifest(
            "nightly",
            &[(
                "night",
                "30 2 * * *",
                "timezone = \"Europe/Berlin\"\ncatch_up = \"skip\"\noverlap = \"queue\"",
            )],
        );
        let spring = utc(2026, 3, 29, 0, 0, 0);
        let s = Sched::new(b, spring, &[("nightly.toml", m)], true).await;
        let mut sched = Scheduler::new(s.engine.clone());
        // Every 30 s through the night the clocks go forward (02:00 CET → 03:00 CEST at 01:00 UTC).
        while s.clock.now_ms() < utc(2026, 3, 29, 3, 0, 0) {
            tick_to_the_end(&s, &mut sched).await;
            s.clock.advance(30_000);
        }
        let keys: Vec<String> = s
            .runs("nightly")
            .await
            .into_iter()
            .filter_map(|r| r.schedule_key)
            .collect();
        let gap_end = utc(2026, 3, 29, 1, 0, 0);
        assert_eq!(
            keys,
            [format!("nightly/night@{gap_end}")],
            "02:30 does not exist: fires once, at 03:00 CEST"
        );

        // The night the clocks go back (03:00 CEST → 02:00 CET at 01:00 UTC): 02:30 happens twice.
        s.clock.set(utc(2026, 10, 25, 0, 0, 0));
        while s.clock.now_ms() < utc(2026, 10, 25, 3, 0, 0) {
            tick_to_the_end(&s, &mut sched).await;
            s.clock.advance(30_000);
        }
        let keys: Vec<String> = s
            .runs("nightly")
            .await
            .into_iter()
            .filter_map(|r| r.schedule_key)
            .collect();
        let first_0230 = utc(2026, 10, 25, 0, 30, 0);
        assert_eq!(
            keys,
            [
                format!("nightly/night@{gap_end}"),
                format!("nightly/night@{first_0230}")
            ],
            "fires once, at the first 02:30 (CEST)"
        );
    }
);

both_backends!(
    a_risky_schedule_can_require_approval_and_then_expires,
    |b| async move {
        let risky = |name: &str, scheduled: &str| {
            format!(
                "name = \"{name}\"\ndescription = \"touch a marker\"\ncommand = [\"sh\", \"scripts/risky.sh\", \"{{marker}}\"]\nrisk = \"high\"\n\
             [[param]]\nname = \"marker\"\ntype = \"string\"\nrequired = true\n[access]\nrun = [\"group:sre\"]\n\
             [approval]\napprovers = [\"group:leads\"]\nchannel = \"approvals\"\nexpires = \"10m\"\n{scheduled}\n\
             [[schedule]]\ncron = \"0 * * * *\"\nargs = {{ marker = \"MARKER-{name}\" }}\n"
            )
        };
        let t0 = utc(2026, 6, 1, 0, 59, 30);
        let manifests = [
            ("gated.toml", risky("gated", "scheduled = \"required\"")),
            ("trusted.toml", risky("trusted", "")),
        ];
        let s = Sched::new(b, t0, &manifests, true).await;
        let mut sched = Scheduler::new(s.engine.clone());
        tick(&mut sched).await;
        s.clock.set(utc(2026, 6, 1, 1, 0, 5));
        let r = tick(&mut sched).await;
        assert_eq!(r.fired.len(), 2, "both schedules fired: {r:?}");
        let run_of = |script: &str| {
            r.fired
                .iter()
                .find(|(k, _)| k.starts_with(script))
                .unwrap()
                .1
        };

        let trusted = wait_final(&s.engine, run_of("trusted/")).await;
        assert_eq!(
            trusted.state,
            RunState::Succeeded,
            "a risky schedule needs no approval by default: {:?}",
            trusted.error
        );
        let gated = s.engine.store().get_run(run_of("gated/")).await.unwrap();
        assert_eq!(
            gated.state,
            RunState::AwaitingApproval,
            "scheduled = \"required\": the fire waits for approvers"
        );
        assert_eq!(gated.quorum, 1);
        let eligible = &gated.approvers.eligible;
        assert_eq!(eligible.len(), 2, "bob and dave may approve: {eligible:?}");

        s.clock.advance(11 * MINUTE);
        let expired = wait_final(&s.engine, gated.id).await;
        assert_eq!(
            expired.state,
            RunState::Expired,
            "nobody decided within 10 minutes"
        );
        assert!(expired.started_at.is_none(), "an expired fire never ran");
        assert!(
            actions(&s.engine, gated.id)
                .await
                .iter()
                .any(|a| a == "run.expired")
        );
    }
);
