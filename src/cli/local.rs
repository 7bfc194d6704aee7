//! The CLI as a local channel: who is acting, and running the pool in this
//! process when no server is there to run what was asked.

use super::{As, EXIT_REFUSED, EXIT_RUN_FAILED};
use crate::app::{self, Application};
use crate::clock::SystemClock;
use crate::command::Command;
use crate::config::Config;
use crate::engine::{Engine, Request, run_summary};
use crate::pool::{Pool, PoolOptions};
use crate::types::{Actor, PersonId, Place, Platform, PlatformUser, RunId, RunState};
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A worker whose heartbeat is older than this is taken as gone.
const LIVE_WINDOW_MS: i64 = 5_000;

pub(super) async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let app = Application::build(config).await?;
    let shutdown = CancellationToken::new();
    app::cancel_on_signals(shutdown.clone());
    app.run_until_stopped(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn worker(config: Config) -> anyhow::Result<ExitCode> {
    let engine = app::build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
    let opts = PoolOptions::from_engine(&engine);
    tracing::info!(worker = %opts.worker_id, pool_size = opts.pool_size, "worker started");
    let shutdown = CancellationToken::new();
    app::cancel_on_signals(shutdown.clone());
    Pool::new(engine, opts).run_until_stopped(shutdown).await;
    Ok(ExitCode::SUCCESS)
}

/// `key=value` words from the shell (already split by it: no re-splitting).
pub(super) fn kv_args(words: &[String]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => {
                eprintln!("error: argument `{w}` is not key=value; write e.g. month=2026-10");
                return None;
            }
        }
    }
    Some(out)
}

/// The OS user running this process, mapped through `people.*.unix`; with
/// `--as`, the named person, audited as impersonation by the OS user.
fn cli_actor(engine: &Engine, who: &As) -> anyhow::Result<Actor> {
    let os_user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{}", nix::unistd::getuid()));
    let via = PlatformUser {
        platform: Platform::Cli,
        id: os_user.clone(),
    };
    let Some(name) = &who.person else {
        return Ok(engine.actor_for(&via));
    };
    let config = engine.config();
    if !config.cli.impersonation {
        anyhow::bail!(
            "--as is not allowed by this config; set [cli] impersonation = true (demo configs only) in {}",
            config
                .source
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "execgov.toml".into())
        );
    }
    let person = PersonId(name.clone());
    if !config.people.contains_key(&person) {
        let known: Vec<&str> = config.people.keys().map(|p| p.as_str()).collect();
        anyhow::bail!(
            "--as {name}: no such person in the config (people: {})",
            known.join(", ")
        );
    }
    Ok(Actor::Person {
        person,
        via,
        impersonated_by: Some(os_user),
    })
}

/// Sends one command through the engine, prints the answer, and where the
/// command made a run runnable (or `wait` asks for it) waits for its end.
pub(super) async fn handle(
    config: Config,
    command: Command,
    who: &As,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let engine = app::build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
    let actor = cli_actor(&engine, who)?;
    let is_run = matches!(command, Command::Run { .. });
    let reply = engine
        .handle(Request {
            actor,
            place: Place::new(Platform::Cli, "local"),
            command,
        })
        .await;
    if reply.is_error() {
        eprintln!("{}", reply.text);
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    println!("{}", reply.text);
    let Some(run) = reply.run else {
        return Ok(ExitCode::SUCCESS);
    };
    let must_run_here = run.state == RunState::Queued && !server_running(&engine).await?;
    let follow = (is_run && wait) || must_run_here;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    if must_run_here {
        eprintln!("no ExecGov server is running here; running it in this process");
    }
    let end = wait_for_end(&engine, run.id).await?;
    let approvals = engine.store().approvals(end.id).await?;
    println!(
        "{}",
        run_summary(&end, &approvals, Some(&engine.audit_link(&end)))
    );
    Ok(if end.state == RunState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUN_FAILED)
    })
}

async fn server_running(engine: &Engine) -> anyhow::Result<bool> {
    Ok(engine
        .store()
        .live_workers(engine.now() - LIVE_WINDOW_MS)
        .await?
        > 0)
}

/// Waits until the run is final, running a pool here while no server is up.
/// Progress lines go to stderr.
async fn wait_for_end(engine: &Arc<Engine>, id: RunId) -> anyhow::Result<crate::store::Run> {
    let mut events = engine.subscribe();
    let mut pool: Option<(CancellationToken, tokio::task::JoinHandle<()>, String)> = None;
    let mut last_progress = String::new();
    let mut announced_wait = false;
    let end = loop {
        let run = engine
            .store()
            .get_run(id)
            .await
            .context("reading the run")?;
        if run.state.is_final() {
            break run;
        }
        if run.state == RunState::AwaitingApproval && !announced_wait {
            eprintln!("waiting for approval of run {id} …");
            announced_wait = true;
        }
        if pool.is_none() && run.state == RunState::Queued && !server_running(engine).await? {
            let opts = PoolOptions::from_engine(engine);
            let worker = opts.worker_id.clone();
            let stop = CancellationToken::new();
            let task =
                tokio::spawn(Pool::new(engine.clone(), opts).run_until_stopped(stop.clone()));
            pool = Some((stop, task, worker));
        }
        let progress = format!(
            "{}{}",
            run.progress_pct
                .map(|p| format!("{p}% "))
                .unwrap_or_default(),
            run.progress_text.clone().unwrap_or_default()
        );
        if !progress.is_empty() && progress != last_progress {
            eprintln!("progress: {progress}");
            last_progress = progress;
        }
        let _ = tokio::time::timeout(Duration::from_millis(250), async {
            while let Ok(e) = events.recv().await {
                if e.run == id {
                    break;
                }
            }
        })
        .await;
    };
    if let Some((stop, task, worker)) = pool {
        stop.cancel();
        let _ = task.await;
        // Leave no heartbeat behind: the next CLI must not think a server is up.
        engine.store().heartbeat(&worker, 0).await.ok();
    }
    Ok(end)
}
