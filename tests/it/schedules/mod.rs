//! Scheduled runs, driven by a manual clock on SQLite and PostgreSQL: each fire runs
//! once (however many schedulers tick), missed fires follow `catch_up`, an overlapping
//! fire is skipped and audited once or queued behind the run it overlaps,
//! daylight-saving days fire once, crontab days mean what they mean in crontab, risky
//! schedules can require approval, and manifests reload without a restart.
//!
//! - `fires.rs`: when and how often a schedule fires;
//! - `crontab.rs`: crontab's meaning of days, and `execgov check` showing it;
//! - `queue.rs`: `overlap = "queue"`, fires waiting for the previous run;
//! - `reload.rs`: the CLI and reloading manifests.

use crate::both_backends;
use crate::helpers::*;
use chrono::TimeZone;
use execgov::clock::{Clock, ManualClock};
use execgov::engine::Engine;
use execgov::scheduler::{Scheduler, TickReport, schedule_for_run};
use execgov::store::{Run, RunFilter};
use execgov::types::{Place, Platform, RunId, RunState};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod crontab;
mod fires;
mod queue;
mod reload;

const MINUTE: i64 = 60_000;

/// Unix ms of a UTC time.
fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    chrono::Utc
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .timestamp_millis()
}

/// A test env with extra manifests, an engine on a manual clock and, if asked,
/// a pool whose leases outlast any clock jump of the test.
struct Sched {
    env: TestEnv,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    stop: CancellationToken,
}

impl Drop for Sched {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Sched {
    async fn new(b: Backend, start_ms: i64, manifests: &[(&str, String)], pool: bool) -> Sched {
        let env = TestEnv::new(b).await;
        let dir = env.path().join("manifests");
        for (name, text) in manifests {
            std::fs::write(dir.join(name), text).unwrap();
        }
        std::fs::write(
            dir.join("scripts/gate.sh"),
            "while [ ! -f \"$1\" ]; do sleep 0.05; done\necho released\n",
        )
        .unwrap();
        let clock = ManualClock::new(start_ms);
        let mut config = env.config();
        // Leases outlast any clock jump of the test.
        config.runner.lease = Duration::from_secs(24 * 3600);
        let engine = execgov::app::build_engine(Arc::new(config), clock.clone())
            .await
            .expect("engine builds");
        let names: Vec<&str> = manifests
            .iter()
            .map(|(n, _)| n.trim_end_matches(".toml"))
            .collect();
        for n in &names {
            assert!(engine.manifest(n).is_some(), "test manifest {n} loads");
        }
        let stop = CancellationToken::new();
        if pool {
            let opts = execgov::runner::LocalOptions::from_engine(&engine);
            tokio::spawn(
                execgov::runner::Local::new(engine.clone(), opts)
                    .run_until_stopped(None, stop.clone()),
            );
            tokio::spawn(execgov::runners::maintain_until_stopped(
                engine.clone(),
                stop.clone(),
            ));
        }
        Sched {
            env,
            engine,
            clock,
            stop,
        }
    }

    /// Another "process": its own engine (and connection pool) on the same database and clock.
    async fn second_engine(&self) -> Arc<Engine> {
        execgov::app::build_engine(Arc::new(self.env.config()), self.clock.clone())
            .await
            .expect("second engine")
    }

    async fn runs(&self, script: &str) -> Vec<Run> {
        let f = RunFilter {
            script: Some(script.into()),
            person: None,
            state: None,
            before_id: None,
            limit: 500,
        };
        let mut runs = self.engine.store().list_runs(&f).await.unwrap();
        runs.reverse();
        runs
    }

    async fn audit(&self, action: &str) -> Vec<serde_json::Value> {
        let all = self
            .engine
            .store()
            .audit_entries(None, 0, 1000)
            .await
            .unwrap();
        all.into_iter()
            .filter(|e| e.action == action)
            .map(|e| e.details)
            .collect()
    }
}

async fn tick(s: &mut Scheduler) -> TickReport {
    let r = s.tick().await.expect("tick");
    assert!(r.errors.is_empty(), "no schedule failed: {:?}", r.errors);
    r
}

/// One tick, then waits for every run it fired to end, so the next fire of an
/// `overlap = "queue"` schedule does not wait for it.
async fn tick_to_the_end(s: &Sched, sched: &mut Scheduler) -> TickReport {
    let r = tick(sched).await;
    for (key, run) in &r.fired {
        let done = wait_final(&s.engine, *run).await;
        assert_eq!(done.state, RunState::Succeeded, "{key}: {:?}", done.error);
    }
    r
}

/// A manifest running `echo_args.sh`, with one `[[schedule]]` per (name, cron, extra lines).
fn echo_manifest(name: &str, schedules: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "name = \"{name}\"\ndescription = \"scheduled echo\"\ncommand = [\"sh\", \"scripts/echo_args.sh\", \"{{note}}\"]\ntimeout = \"20s\"\n\
         [[param]]\nname = \"note\"\ntype = \"string\"\ndefault = \"hello\"\n[access]\nrun = [\"group:sre\"]\n"
    );
    for (sname, cron, extra) in schedules {
        text.push_str(&format!(
            "[[schedule]]\nname = \"{sname}\"\ncron = \"{cron}\"\n{extra}\n"
        ));
    }
    text
}
