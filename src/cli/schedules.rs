//! `execgov schedules` (every schedule and its next fires) and `execgov reload`
//! (ask every running server to reload its manifests).

use crate::app;
use crate::clock::{Clock, SystemClock, format_ms};
use crate::config::Config;
use crate::manifest::{self, CatchUp, Overlap};
use crate::scheduler::{FireTimes, schedule_id};
use crate::store::Store;
use anyhow::Context;
use std::process::ExitCode;

/// Fire times shown per schedule.
const NEXT: usize = 3;

/// `execgov schedules`: each schedule, its rules, and its next fires in its own
/// timezone and in UTC. Reads only the manifests; no database needed.
pub(super) fn list(config: &Config) -> ExitCode {
    let (catalog, problems) = manifest::load_catalog(&config.manifests, config);
    for p in &problems {
        eprintln!("warning: left out: {p}");
    }
    let now = SystemClock.now_ms();
    let mut any = false;
    for m in catalog.iter() {
        for s in &m.schedules {
            any = true;
            let catch_up = match s.catch_up {
                CatchUp::Skip => "skip",
                CatchUp::Latest => "latest",
            };
            let overlap = match s.overlap {
                Overlap::Skip => "skip",
                Overlap::Queue => "queue",
            };
            println!("{}", schedule_id(m, s));
            println!(
                "  cron \"{}\" in {}, catch_up = {catch_up}, overlap = {overlap}",
                s.cron, s.timezone
            );
            if !s.post_to.is_empty() {
                println!("  posts to {}", s.post_to.join(", "));
            }
            if m.approval
                .as_ref()
                .is_some_and(|a| a.scheduled == manifest::ScheduledApproval::Required)
                && m.risk == manifest::Risk::High
            {
                println!("  each run waits for approval");
            }
            match FireTimes::of(s) {
                Ok(times) => {
                    let next = times.upcoming(now, NEXT);
                    if next.is_empty() {
                        println!("  no future fires");
                    }
                    for t in next {
                        println!(
                            "  {}  ({})",
                            t.format("%Y-%m-%d %H:%M:%S %Z"),
                            format_ms(t.timestamp_millis())
                        );
                    }
                }
                Err(e) => println!("  bad cron expression: {e}"),
            }
        }
    }
    if !any {
        println!("no schedules in {}", config.manifests.display());
    }
    ExitCode::SUCCESS
}

/// `execgov reload`: bumps the reload request in the shared database; every server
/// using it reloads its manifests within a few seconds.
pub(super) async fn reload(config: Config) -> anyhow::Result<ExitCode> {
    let (catalog, problems) = manifest::load_catalog(&config.manifests, &config);
    for p in &problems {
        eprintln!("warning: {p}");
    }
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening the database {}",
                app::redact_url(&config.database_url)
            )
        })?;
    let by = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| format!("cli:{}", u.name))
        .unwrap_or_else(|| "cli".into());
    let generation = store.request_reload(&by, SystemClock.now_ms()).await?;
    println!(
        "reload requested (#{generation}): every server on this database reloads its manifests within a few seconds"
    );
    println!(
        "{}: {} manifest(s) load, {} problem(s)",
        config.manifests.display(),
        catalog.len(),
        problems.len()
    );
    Ok(ExitCode::SUCCESS)
}
