//! The CLI as a local channel: who is acting, and running the pool in this
//! process when no server is there to run what was asked.

use super::{As, EXIT_REFUSED};
use crate::app::{self, Application};
use crate::clock::SystemClock;
use crate::command::Command;
use crate::config::Config;
use crate::engine::{Engine, Request, run_summary};
use crate::runner::{Local, LocalOptions};
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
/// `--as`, the named person, audited as impersonation by the OS user. A
/// refused `--as` is audited (`cli.as_refused`) before its error is returned.
pub(super) async fn cli_actor(engine: &Engine, who: &As) -> anyhow::Result<Actor> {
    let os_user = os_user();
    let via = PlatformUser {
        platform: Platform::Cli,
        id: os_user.clone(),
    };
    let Some(name) = &who.person else {
        return Ok(engine.actor_for(&via));
    };
    let config = engine.config();
    let refusal = if !config.cli.impersonation {
        Some(format!(
            "--as is not allowed by this config; set [cli] impersonation = true (demo configs only) in {}",
            config_path_text(config)
        ))
    } else if !config.people.contains_key(&PersonId(name.clone())) {
        let known: Vec<&str> = config.people.keys().map(|p| p.as_str()).collect();
        Some(format!(
            "--as {name}: no such person in the config (people: {})",
            known.join(", ")
        ))
    } else {
        None
    };
    if let Some(reason) = refusal {
        let details = serde_json::json!({ "as": name, "os_user": os_user, "reason": reason });
        engine
            .store()
            .audit(
                &engine.actor_for(&via).audit_name(),
                "cli.as_refused",
                None,
                details,
                engine.now(),
            )
            .await
            .context("recording the refused --as in the audit log")?;
        return Err(super::Refused(reason).into());
    }
    Ok(Actor::Person {
        person: PersonId(name.clone()),
        via,
        impersonated_by: Some(os_user),
    })
}

/// The login name of the OS user running this process (`uid<N>` when it has none).
fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{}", nix::unistd::getuid()))
}

/// The config file this process read, as a path to point people at.
fn config_path_text(config: &Config) -> String {
    config
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "execgov.toml (no config file was read; create it)".into())
}

/// For an OS user who maps to no configured person: the two ways to act as one.
pub(super) fn unmapped_hint(config: &Config, actor: &Actor) -> Option<String> {
    let Actor::Unknown { via } = actor else {
        return None;
    };
    let mut out = format!(
        "the OS user `{user}` is no configured person here; to act as one, add \
         `unix = \"{user}\"` to a person in {}",
        config_path_text(config),
        user = via.id
    );
    if config.cli.impersonation {
        out.push_str(", or pass `--as PERSON` (this config allows impersonation)");
    }
    Some(out)
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
    let actor = cli_actor(&engine, who).await?;
    let (command, files) = match read_files(&engine, command) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("error: {why}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let hint = unmapped_hint(engine.config(), &actor);
    let is_run = matches!(command, Command::Run { .. } | Command::BreakGlass { .. });
    let is_list = matches!(command, Command::List);
    // Only these can leave a run queued that nothing else would start.
    let makes_runnable = is_run || matches!(command, Command::Approve { .. });
    let reply = engine
        .handle(Request {
            actor,
            place: cli_place(),
            command,
            private: true,
            files,
        })
        .await;
    if reply.is_error() {
        eprintln!("{}", reply.text);
        if let Some(hint) = hint {
            eprintln!("{hint}");
        }
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    println!("{}", reply.text);
    if let Some(hint) = hint.filter(|_| is_list) {
        eprintln!("{hint}");
    }
    let Some(run) = reply.run else {
        return Ok(ExitCode::SUCCESS);
    };
    let must_run_here =
        makes_runnable && run.state == RunState::Queued && !server_running(&engine).await?;
    // `run --wait` follows the run to its end; an approval that made it
    // runnable (`approve` asks with `wait`) follows it too.
    let runnable = matches!(run.state, RunState::Queued | RunState::Running);
    let follow = (wait && makes_runnable && (is_run || runnable)) || must_run_here;
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
        run_summary(&end, &approvals, false, Some(&engine.audit_link(&end)))
    );
    Ok(ExitCode::from(super::run_exit_code(&end)))
}

/// `key=@PATH` for a file parameter: the file's bytes go with the request,
/// named by PATH's last part (which the argument then names).
fn read_files(
    engine: &Engine,
    command: Command,
) -> Result<(Command, Vec<execgov_chat::Attachment>), String> {
    let (script, args) = match &command {
        Command::Run { script, args } | Command::BreakGlass { script, args, .. } => (script, args),
        _ => return Ok((command, Vec::new())),
    };
    let Some(m) = engine.manifest(script) else {
        return Ok((command, Vec::new()));
    };
    let mut files = Vec::new();
    let mut named = Vec::with_capacity(args.len());
    for (k, v) in args {
        let is_file = m
            .params
            .iter()
            .any(|p| p.name == *k && matches!(p.kind, crate::manifest::ParamKind::File { .. }));
        match v.strip_prefix('@').filter(|_| is_file) {
            Some(path) => {
                let data = std::fs::read(path)
                    .map_err(|e| format!("{k}=@{path}: cannot read the file ({e})"))?;
                let name = std::path::Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| path.to_string());
                named.push((k.clone(), name.clone()));
                files.push(execgov_chat::Attachment { name, data });
            }
            None => named.push((k.clone(), v.clone())),
        }
    }
    let command = match command {
        Command::Run { script, .. } => Command::Run {
            script,
            args: named,
        },
        Command::BreakGlass { script, reason, .. } => Command::BreakGlass {
            script,
            args: named,
            reason,
        },
        other => other,
    };
    Ok((command, files))
}

/// Where CLI commands come from.
pub(super) fn cli_place() -> Place {
    Place::new(Platform::Cli, "local")
}

async fn server_running(engine: &Engine) -> anyhow::Result<bool> {
    Ok(engine
        .store()
        .live_workers(engine.now() - LIVE_WINDOW_MS)
        .await?
        > 0)
}

/// Waits until the run is final, running a pool here while no server is up.
/// Every `::progress` line of its log goes to stderr, in order.
async fn wait_for_end(engine: &Arc<Engine>, id: RunId) -> anyhow::Result<crate::store::Run> {
    let mut events = engine.subscribe();
    let mut local: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
    let mut log_read = 0;
    let mut announced_wait = false;
    let end = loop {
        let run = engine
            .store()
            .get_run(id)
            .await
            .context("reading the run")?;
        log_read = print_progress(engine, id, log_read, run.state.is_final()).await?;
        if run.state.is_final() {
            break run;
        }
        if run.state == RunState::AwaitingApproval && !announced_wait {
            eprintln!("waiting for approval of run {id} …");
            announced_wait = true;
        }
        if local.is_none() && run.state == RunState::Queued && !server_running(engine).await? {
            let opts = LocalOptions::from_engine(engine);
            let stop = CancellationToken::new();
            let runner = Local::new(engine.clone(), opts).run_until_stopped(None, stop.clone());
            local = Some((stop, tokio::spawn(runner)));
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
    if let Some((stop, task)) = local {
        stop.cancel();
        let _ = task.await;
    }
    Ok(end)
}

/// Prints the `::progress` lines of the run's stored log from byte `from` as
/// `progress: 40% Exporting rows`, and returns where the next read starts: after
/// the last whole line, or, once the run is `over`, after everything.
async fn print_progress(engine: &Engine, id: RunId, from: u64, over: bool) -> anyhow::Result<u64> {
    let bytes = engine
        .store()
        .log_bytes(id, from, u64::MAX)
        .await
        .context("reading the run's log")?;
    let whole = if over {
        bytes.len()
    } else {
        bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
    };
    for line in bytes[..whole].split(|b| *b == b'\n') {
        if let Some(p) = execgov_runner::parse_progress(line) {
            let pct = p.percent.map(|n| format!("{n}% ")).unwrap_or_default();
            eprintln!("{}", format!("progress: {pct}{}", p.text).trim_end());
        }
    }
    Ok(from + whole as u64)
}
