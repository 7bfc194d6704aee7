//! `execgov runners enrol | list | revoke`: managing runners on the server.

use std::process::ExitCode;
use std::sync::Arc;

use crate::app;
use crate::clock::{SystemClock, format_ms};
use crate::config::Config;
use crate::engine::Engine;
use crate::types::{Actor, Platform, PlatformUser};

/// The OS user running this command, as the audit log names it.
fn operator(engine: &Engine) -> Actor {
    let os_user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{}", nix::unistd::getuid()));
    engine.actor_for(&PlatformUser {
        platform: Platform::Cli,
        id: os_user,
    })
}

async fn engine(config: Config) -> anyhow::Result<Arc<Engine>> {
    app::build_engine(Arc::new(config), Arc::new(SystemClock)).await
}

/// Prints what to do with the token, then the token alone on the last line.
pub(super) async fn enrol(config: Config, name: &str, tags: &[String]) -> anyhow::Result<ExitCode> {
    let public_url = config.web.public_url.clone();
    let engine = engine(config).await?;
    let actor = operator(&engine).audit_name();
    let token = crate::runners::enrolment_token(&engine, name, tags, &actor).await?;
    engine.store().close().await;
    println!(
        "Runner `{name}` (tags: {}) may enrol with the one-time token below, valid for 1 hour.",
        if tags.is_empty() {
            "none".to_string()
        } else {
            tags.join(", ")
        }
    );
    println!("On its host, put it in a file only the runner can read, and start the runner:");
    println!("  umask 077; echo TOKEN > /etc/execgov/runner.token");
    println!(
        "  execgov runner --server {public_url} --token-file /etc/execgov/runner.token{}",
        if tags.is_empty() {
            String::new()
        } else {
            format!(" --tags {}", tags.join(","))
        }
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn list(config: Config) -> anyhow::Result<ExitCode> {
    let engine = engine(config).await?;
    let runners = crate::runners::list_runners(&engine).await?;
    engine.store().close().await;
    if runners.is_empty() {
        println!("no runners; `execgov runners enrol NAME --tags a,b` adds one");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<20} {:>5} {:>7}  {:<24} state",
        "name", "tags", "slots", "running", "last seen"
    );
    for r in runners {
        let state = match (r.revoked_at, r.enrolled_at) {
            (Some(at), _) => format!("revoked {}", format_ms(at)),
            (None, None) => "waiting for its enrolment".to_string(),
            (None, Some(_)) if r.local => "local".to_string(),
            (None, Some(_)) => "enrolled".to_string(),
        };
        println!(
            "{:<24} {:<20} {:>5} {:>7}  {:<24} {state}",
            r.name,
            if r.tags.is_empty() {
                "-".to_string()
            } else {
                r.tags.join(",")
            },
            r.slots,
            r.running,
            r.last_seen.map(format_ms).unwrap_or_else(|| "never".into()),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn revoke(config: Config, name: &str) -> anyhow::Result<ExitCode> {
    let engine = engine(config).await?;
    let actor = operator(&engine).audit_name();
    let interrupted = crate::runners::revoke_runner(&engine, name, &actor).await;
    engine.store().close().await;
    let interrupted = interrupted?;
    println!("revoked runner `{name}`: its next call is refused");
    for run in &interrupted {
        println!("  run {} ({}) is interrupted", run.id, run.script);
    }
    Ok(ExitCode::SUCCESS)
}

/// `execgov runner`: runs scripts for a server, on this host.
#[derive(Debug, Clone, clap::Args)]
pub struct RunnerArgs {
    /// The server's URL, as its users reach it (`https://execgov.example.org`).
    #[arg(long, env = "EXECGOV_SERVER", value_name = "URL")]
    server: String,
    /// The file with the enrolment token (`execgov runners enrol` on the server);
    /// on first start the runner replaces it with its own credential (mode 0600).
    #[arg(long, value_name = "FILE", required_unless_present = "token")]
    token_file: Option<std::path::PathBuf>,
    /// The token itself, from the environment (kept in memory only).
    #[arg(
        long,
        env = "EXECGOV_RUNNER_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    token: Option<String>,
    /// The tags it was enrolled with, comma-separated (`--tags db-host,eu`).
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Runs at once.
    #[arg(long, default_value_t = 2)]
    slots: u32,
    /// Where the scripts are on this host: the server's manifests folder as
    /// deployed here. A run's script files are checked against their approved digests.
    #[arg(long, value_name = "DIR", default_value = "manifests")]
    scripts: std::path::PathBuf,
    /// The runner's own folder: run folders and the spool of logs and outcomes
    /// not yet delivered.
    #[arg(long, value_name = "DIR", default_value = "execgov-runner")]
    data: std::path::PathBuf,
    /// Run scripts as this OS user (the runner must run as root).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// A `secret_env` value this runner holds: NAME=file:PATH or NAME=env:OTHER.
    #[arg(long = "secret", value_name = "NAME=SOURCE")]
    secrets: Vec<String>,
    /// On SIGTERM, seconds running runs may go on before they are cancelled.
    #[arg(long, default_value_t = 30)]
    drain: u64,
}

pub(super) async fn runner(args: RunnerArgs) -> anyhow::Result<ExitCode> {
    use execgov_runner::client::{self, ClientOptions, SecretSource, TokenSource};
    let token = match (&args.token_file, &args.token) {
        (Some(file), _) => TokenSource::File(file.clone()),
        (None, Some(token)) => TokenSource::Value(token.clone()),
        (None, None) => anyhow::bail!("give --token-file FILE or set EXECGOV_RUNNER_TOKEN"),
    };
    let secrets = args
        .secrets
        .iter()
        .map(|s| SecretSource::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    app::secure_data_dir(&args.data)?;
    let data = std::path::absolute(&args.data)?;
    let runner = crate::runner::Runner::start(crate::runner::RunnerOptions {
        scope: data.display().to_string(),
        user: args.user.clone(),
        avoid: Default::default(),
    })?;
    let opts = ClientOptions {
        server: args.server.clone(),
        token,
        tags: args.tags.clone(),
        slots: args.slots.max(1),
        scripts: std::path::absolute(&args.scripts)?,
        runs_dir: data.join("runs"),
        spool: data.join("spool"),
        secrets,
        mask: Vec::new(),
        drain: std::time::Duration::from_secs(args.drain),
    };
    tracing::info!(server = %args.server, tags = ?args.tags, slots = opts.slots, "runner starting");
    let shutdown = tokio_util::sync::CancellationToken::new();
    app::cancel_on_signals(shutdown.clone());
    client::run_until_stopped(runner, opts, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
