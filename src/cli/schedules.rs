//! `execgov schedules` (every schedule and its next fires) and `execgov reload`
//! (ask every running server to reload its manifests).

use crate::clock::{Clock, SystemClock, format_ms};
use crate::config::Config;
use crate::manifest::{self, Catalog, CatchUp, Overlap};
use crate::scheduler::{FireTimes, schedule_id};
use std::process::ExitCode;

/// Fire times shown per schedule.
const NEXT: usize = 3;

/// `execgov schedules`: each schedule, its rules, and its next fires in its own
/// timezone and in UTC. Reads only the manifests; no database needed.
pub(super) fn list(config: &Config, json: bool) -> ExitCode {
    let (catalog, problems) = manifest::load_catalog(&config.manifests, config);
    for p in &problems {
        eprintln!("warning: left out: {p}");
    }
    let now = SystemClock.now_ms();
    if json {
        let all: Vec<serde_json::Value> = catalog
            .iter()
            .flat_map(|m| m.schedules.iter().map(move |s| (m, s)))
            .map(|(m, s)| {
                let next: Vec<String> = FireTimes::of(s)
                    .upcoming(now, NEXT)
                    .iter()
                    .map(|t| t.to_rfc3339())
                    .collect();
                serde_json::json!({
                    "id": schedule_id(m, s),
                    "script": m.name,
                    "cron": s.cron,
                    "timezone": s.timezone.name(),
                    "args": s.args,
                    "post_to": s.post_to,
                    "next": next,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&all).expect("JSON serializes")
        );
        return ExitCode::SUCCESS;
    }
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
                && m.risk.needs_approval()
            {
                println!("  each run waits for approval");
            }
            let next = FireTimes::of(s).upcoming(now, NEXT);
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
    }
    if !any {
        println!("no schedules in {}", config.manifests.display());
    }
    ExitCode::SUCCESS
}

/// For `execgov check`: each schedule in `catalog`, its expression and timezone, and
/// its next [`NEXT`] fire times after `now` in its timezone.
pub(super) fn print_next_fires(catalog: &Catalog, now: i64) {
    for m in catalog.iter() {
        for s in &m.schedules {
            println!("{}: \"{}\" in {}", schedule_id(m, s), s.cron, s.timezone);
            let next: Vec<String> = FireTimes::of(s)
                .upcoming(now, NEXT)
                .iter()
                .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
                .collect();
            if next.is_empty() {
                println!("  no future fires");
            } else {
                println!("  next {}", next.join(", "));
            }
        }
    }
}

/// `execgov reload`: bumps the reload request in the shared database; every server
/// using it reloads its manifests within a few seconds.
pub(super) async fn reload(config: Config) -> anyhow::Result<ExitCode> {
    let (catalog, problems) = manifest::load_catalog(&config.manifests, &config);
    for p in &problems {
        eprintln!("warning: {p}");
    }
    // The reload request is audited: the store needs the audit key.
    let store = crate::audit::open_store(&config).await?;
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
