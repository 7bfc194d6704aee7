//! `overlap = "queue"`: a fire that comes while the schedule's previous run still
//! goes runs only after that run ends, in order, once, whichever scheduler (or a
//! restarted one) ticks; and the queue is bounded.

use super::*;

/// A manifest whose every-minute schedule runs `gate.sh`, which waits until the
/// file `gate` exists.
fn gated(gate: &std::path::Path) -> String {
    format!(
        "name = \"slow\"\ndescription = \"waits for a gate file\"\ncommand = [\"sh\", \"scripts/gate.sh\", \"{{gate}}\"]\ntimeout = \"60s\"\n\
         [[param]]\nname = \"gate\"\ntype = \"string\"\nrequired = true\n[access]\nrun = []\n\
         [[schedule]]\nname = \"every-minute\"\ncron = \"* * * * *\"\noverlap = \"queue\"\nargs = {{ gate = \"{}\" }}\n",
        gate.display()
    )
}

/// Ticks two schedulers at once and returns what either fired, and whether any
/// reported the fire `queued_key` as waiting.
async fn tick_both(
    one: &mut Scheduler,
    two: &mut Scheduler,
) -> (Vec<(String, RunId)>, Vec<String>) {
    let (r1, r2) = tokio::join!(one.tick(), two.tick());
    let (r1, r2) = (r1.expect("tick"), r2.expect("tick"));
    for r in [&r1, &r2] {
        assert!(r.errors.is_empty(), "no schedule failed: {:?}", r.errors);
        assert!(r.skipped.is_empty(), "nothing is dropped: {r:?}");
    }
    let fired = [r1.fired, r2.fired].concat();
    let queued = [r1.queued, r2.queued].concat();
    (fired, queued)
}

both_backends!(
    a_fire_while_the_previous_run_runs_waits_for_it_and_runs_after_it_in_order,
    |b| async move {
        let t0 = utc(2026, 6, 1, 0, 0, 5);
        let gates = tempfile::tempdir().unwrap();
        let gate = gates.path().join("gate");
        let s = Sched::new(b, t0, &[("slow.toml", gated(&gate))], true).await;
        let key = |minute: u32| format!("slow/every-minute@{}", utc(2026, 6, 1, 0, minute, 0));
        let mut one = Scheduler::new(s.engine.clone());
        let mut two = Scheduler::new(s.second_engine().await);
        tick_both(&mut one, &mut two).await;

        s.clock.set(t0 + MINUTE);
        let (fired, _) = tick_both(&mut one, &mut two).await;
        assert_eq!(fired.len(), 1, "the first fire runs: {fired:?}");
        let first = fired[0].1;
        wait_for(&s.engine, first, |st| st == RunState::Running).await;

        // 00:02 and 00:03 come while the first run goes: they wait.
        for minute in [2, 3] {
            s.clock.set(t0 + minute * MINUTE);
            let (fired, queued) = tick_both(&mut one, &mut two).await;
            assert!(
                fired.is_empty(),
                "nothing runs beside the first run: {fired:?}"
            );
            assert!(
                queued.contains(&key(2)),
                "the oldest waiting fire is 00:02: {queued:?}"
            );
        }
        for minute in [2, 3] {
            assert!(
                s.engine
                    .store()
                    .run_for_schedule_key(&key(minute))
                    .await
                    .unwrap()
                    .is_none(),
                "no run for {} yet",
                key(minute)
            );
        }

        // A restarted scheduler still knows the queue (it is in the database).
        drop(one);
        let mut one = Scheduler::new(s.second_engine().await);
        let (fired, _) = tick_both(&mut one, &mut two).await;
        assert!(fired.is_empty(), "still waiting after a restart: {fired:?}");

        // The first run ends: 00:02 runs, once, and 00:03 waits for it in turn.
        std::fs::write(&gate, "").unwrap();
        let first = wait_final(&s.engine, first).await;
        assert_eq!(first.state, RunState::Succeeded, "{:?}", first.error);
        std::fs::remove_file(&gate).unwrap();
        let (fired, _) = tick_both(&mut one, &mut two).await;
        let keys: Vec<&str> = fired.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [key(2)], "the oldest waiting fire runs, once");
        let second = fired[0].1;
        wait_for(&s.engine, second, |st| st == RunState::Running).await;
        let (fired, queued) = tick_both(&mut one, &mut two).await;
        assert!(fired.is_empty(), "00:03 waits for 00:02's run: {fired:?}");
        assert!(queued.contains(&key(3)), "{queued:?}");

        std::fs::write(&gate, "").unwrap();
        let second = wait_final(&s.engine, second).await;
        let (fired, _) = tick_both(&mut one, &mut two).await;
        let keys: Vec<&str> = fired.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [key(3)], "then 00:03");
        let third = wait_final(&s.engine, fired[0].1).await;
        let (fired, queued) = tick_both(&mut one, &mut two).await;
        assert!(
            fired.is_empty() && queued.is_empty(),
            "nothing else is due: {fired:?} {queued:?}"
        );

        let runs = s.runs("slow").await;
        let keys: Vec<&str> = runs
            .iter()
            .filter_map(|r| r.schedule_key.as_deref())
            .collect();
        assert_eq!(keys, [key(1), key(2), key(3)], "one run per fire, in order");
        let (first_end, second_end) = (first.finished_at.unwrap(), second.finished_at.unwrap());
        assert!(
            second.created_at >= first_end && third.created_at >= second_end,
            "each run was requested only after the previous one ended: {runs:#?}"
        );
        assert!(
            s.audit("schedule.skipped").await.is_empty(),
            "no fire was dropped"
        );
    }
);

both_backends!(
    at_most_ten_fires_wait_and_the_oldest_beyond_are_given_up_once,
    |b| async move {
        let t0 = utc(2026, 6, 1, 0, 0, 5);
        let gates = tempfile::tempdir().unwrap();
        let gate = gates.path().join("gate");
        let s = Sched::new(b, t0, &[("slow.toml", gated(&gate))], true).await;
        let mut sched = Scheduler::new(s.engine.clone());
        tick(&mut sched).await;
        s.clock.set(t0 + MINUTE);
        let first = tick(&mut sched).await.fired[0].1;
        wait_for(&s.engine, first, |st| st == RunState::Running).await;

        // Thirteen more fires (00:02 to 00:14) while the first run goes.
        for minute in 2..=14 {
            s.clock.set(t0 + minute * MINUTE);
            let r = tick(&mut sched).await;
            assert!(r.fired.is_empty(), "waiting: {r:?}");
        }
        std::fs::write(&gate, "").unwrap();
        wait_final(&s.engine, first).await;

        // The newest ten run one after another; 00:02 to 00:04 are given up.
        let mut ran = Vec::new();
        loop {
            let r = tick(&mut sched).await;
            let Some((key, run)) = r.fired.first().cloned() else {
                break;
            };
            assert_eq!(r.fired.len(), 1, "one at a time: {r:?}");
            wait_final(&s.engine, run).await;
            ran.push(key);
        }
        let expected: Vec<String> = (5..=14)
            .map(|m| format!("slow/every-minute@{}", utc(2026, 6, 1, 0, m, 0)))
            .collect();
        assert_eq!(ran, expected, "the ten newest, oldest first");
        let skipped = s.audit("schedule.skipped").await;
        assert_eq!(
            skipped.len(),
            1,
            "one entry for the fires given up: {skipped:?}"
        );
        assert_eq!(skipped[0]["reason"], "queue full");
        assert_eq!(skipped[0]["first_skipped"], utc(2026, 6, 1, 0, 2, 0));
        assert_eq!(skipped[0]["latest_skipped"], utc(2026, 6, 1, 0, 4, 0));
    }
);
