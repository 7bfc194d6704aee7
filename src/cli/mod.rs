//! The command line: `serve`, `check`, and the CLI as a local channel (`run`,
//! `approve`, `deny`, …) that goes through the same engine and rules as chat.
//!
//! - `mod.rs`: arguments and dispatch.
//! - `local.rs`: the CLI actor (OS user through `people.*.unix`, `--as`), and
//!   running the pool in this process when no server is running.
//! - `admin.rs`: `check`, `runs`, `show`, `audit verify`.

mod admin;
mod local;
mod schedules;

use crate::command::Command;
use crate::config::Config;
use crate::types::RunId;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes: 0 done / succeeded, 1 a run ended badly or a check failed, 2 usage or refusal.
pub const EXIT_RUN_FAILED: u8 = 1;
pub const EXIT_REFUSED: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "execgov",
    version,
    about = "Governed execution of team scripts from Slack, Matrix and the CLI"
)]
pub struct Cli {
    /// Config file (else $EXECGOV_CONFIG, else ./execgov.toml, else defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the server: HTTP (audit links, health) and the worker pool.
    Serve,
    /// Run only a worker pool against the configured database (more capacity
    /// beside `serve`; PostgreSQL or one host's SQLite).
    Worker,
    /// Validate every manifest in DIR (default: the config's manifests folder).
    Check { dir: Option<PathBuf> },
    /// Ask for a run: `execgov run report-export month=2026-10 --wait`.
    Run {
        script: String,
        /// Arguments as key=value (quote values with spaces in your shell).
        args: Vec<String>,
        /// Wait for the run's end; exit 0 on success, non-zero otherwise.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        who: As,
    },
    /// Say who may run a script here and who must approve, without running it.
    Explain {
        script: String,
        args: Vec<String>,
        #[command(flatten)]
        who: As,
    },
    /// Approve a run that waits for approval.
    Approve {
        id: String,
        #[command(flatten)]
        who: As,
    },
    /// Deny a run that waits for approval.
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        who: As,
    },
    /// Cancel a run that has not finished.
    Cancel {
        id: String,
        #[command(flatten)]
        who: As,
    },
    /// List the scripts.
    List,
    /// List runs, newest first.
    Runs {
        #[arg(long)]
        script: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Show one run: state, approvals, result, output tail, audit link.
    Show { id: String },
    /// List every schedule with its next three fire times (its timezone and UTC).
    Schedules,
    /// Ask every server on the configured database to reload its manifests.
    Reload,
    /// The audit log.
    Audit {
        #[command(subcommand)]
        what: AuditCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain: `ok: N entries`, or the first entry that does not verify.
    Verify,
}

/// `--as PERSON`: act as a configured person (only where `[cli] impersonation = true`).
#[derive(Debug, Clone, clap::Args)]
pub struct As {
    #[arg(long = "as", value_name = "PERSON")]
    pub person: Option<String>,
}

/// Runs the parsed command line; errors are printed by `main` with their context chain.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Cmd::Serve => local::serve(config).await,
        Cmd::Worker => local::worker(config).await,
        Cmd::Check { dir } => Ok(admin::check(&config, dir)),
        Cmd::Run {
            script,
            args,
            wait,
            who,
        } => {
            let Some(args) = local::kv_args(&args) else {
                return Ok(ExitCode::from(EXIT_REFUSED));
            };
            local::handle(config, Command::Run { script, args }, &who, wait).await
        }
        Cmd::Explain { script, args, who } => {
            let Some(args) = local::kv_args(&args) else {
                return Ok(ExitCode::from(EXIT_REFUSED));
            };
            local::handle(config, Command::Explain { script, args }, &who, false).await
        }
        Cmd::Approve { id, who } => {
            local::handle(config, Command::Approve { run: run_id(&id)? }, &who, true).await
        }
        Cmd::Deny { id, reason, who } => {
            local::handle(
                config,
                Command::Deny {
                    run: run_id(&id)?,
                    reason,
                },
                &who,
                false,
            )
            .await
        }
        Cmd::Cancel { id, who } => {
            local::handle(config, Command::Cancel { run: run_id(&id)? }, &who, false).await
        }
        Cmd::List => local::handle(config, Command::List, &As { person: None }, false).await,
        Cmd::Runs {
            script,
            state,
            limit,
        } => admin::runs(config, script, state, limit).await,
        Cmd::Show { id } => admin::show(config, &id).await,
        Cmd::Audit {
            what: AuditCmd::Verify,
        } => admin::audit_verify(config).await,
        Cmd::Schedules => Ok(schedules::list(&config)),
        Cmd::Reload => schedules::reload(config).await,
    }
}

fn run_id(s: &str) -> anyhow::Result<RunId> {
    RunId::parse(s).map_err(anyhow::Error::msg)
}
