//! The command line: `serve`, `check`, and the CLI as a local channel (`run`,
//! `approve`, `deny`, …) that goes through the same engine and rules as chat.
//!
//! - `mod.rs`: arguments and dispatch.
//! - `local.rs`: the CLI actor (OS user through `people.*.unix`, `--as`, the
//!   hint for an unmapped OS user), and running a local runner in this process
//!   when no server is running.
//! - `admin.rs`: `check`, `runs`, `show`, `list --json`, `explain --json`,
//!   `audit verify | key | checkpoint`.
//! - `prepare.rs`: `prepare`, the Python environments of `[python]` manifests.
//! - `runners.rs`: `runner` (a remote runner), `runners enrol | list | revoke`.
//! - `backup.rs`: `backup FILE`, a consistent copy of the SQLite database.
//! - [`logging`]: text or JSON log lines on stderr.
//! - `init.rs`: `init`, a manifest from a Python script's argparse parser.

mod admin;
mod backup;
mod init;
mod local;
pub mod logging;
mod prepare;
mod runners;
mod schedules;
mod two_factor;

use crate::command::Command;
use crate::config::Config;
use crate::types::RunId;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes (see `execgov --help`): 0 done / succeeded; a waited-for run
/// that ran to its end exits with the script's own code; otherwise codes a
/// script's own cannot be mistaken for (as `timeout(1)` and sysexits do).
pub const EXIT_RUN_FAILED: u8 = 1;
/// Refused (not allowed, the requester approving, no such run) or rejected.
pub const EXIT_REFUSED: u8 = 77;
/// The run timed out (as `timeout(1)`).
pub const EXIT_TIMED_OUT: u8 = 124;
/// The run expired, was cancelled or interrupted: try again.
pub const EXIT_TEMPFAIL: u8 = 75;

/// A refusal: `main` exits with [`EXIT_REFUSED`] for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The exit code of `execgov`'s error.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if e.is::<Refused>() {
        EXIT_REFUSED
    } else {
        EXIT_RUN_FAILED
    }
}

/// How a waited-for run's end reads as an exit code.
pub fn run_exit_code(run: &crate::store::Run) -> u8 {
    use crate::types::RunState;
    match run.state {
        RunState::Succeeded => 0,
        RunState::Failed => match run.exit_code {
            Some(code) if (1..=255).contains(&code) => code as u8,
            _ => EXIT_RUN_FAILED,
        },
        RunState::TimedOut => EXIT_TIMED_OUT,
        RunState::Rejected => EXIT_REFUSED,
        RunState::Expired | RunState::Cancelled | RunState::Interrupted => EXIT_TEMPFAIL,
        _ => EXIT_RUN_FAILED,
    }
}
/// A command that cannot do what was asked as asked (sysexits' `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "execgov",
    version,
    about = "Governed execution of team scripts from Slack, Matrix and the CLI",
    disable_help_subcommand = true,
    after_help = "Exit codes: 0 done; `run --wait` exits with the script's own code when it ran \
to its end (1 when it failed without one), 124 timed out, 77 refused or rejected, 75 expired, \
cancelled or interrupted, 64 usage error."
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
    /// Run the server: HTTP (web, chat, audit links, runner protocol, health)
    /// and its local runner.
    Serve,
    /// Run scripts for a server, on this host: `execgov runner --server URL
    /// --token-file F --tags db-host`. Never opens the database.
    Runner(runners::RunnerArgs),
    /// Validate every manifest in DIR (default: the config's manifests folder).
    Check { dir: Option<PathBuf> },
    /// Build (or find) the Python environment of SCRIPT (default: every
    /// `[python]` manifest) under the local runner's envs folder.
    Prepare { script: Option<String> },
    /// Write a manifest from a Python script's argparse parser (without running
    /// its main work): `execgov init scripts/report.py --run group:analysts`.
    Init(init::InitArgs),
    /// Ask for a run: `execgov run report-export month=2026-10 --wait`.
    Run {
        script: String,
        /// Arguments as key=value (quote values with spaces in your shell).
        args: Vec<String>,
        /// Wait for the run's end; exit 0 on success, non-zero otherwise.
        #[arg(long)]
        wait: bool,
        /// Break glass: start without waiting for the approval the run needs,
        /// for this reason ([access] break_glass; approvers review it after).
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
        #[command(flatten)]
        who: As,
    },
    /// Review a break-glass run (an approver of it, not its requester).
    Review {
        id: String,
        /// What was checked (optional).
        note: Vec<String>,
        #[command(flatten)]
        who: As,
    },
    /// Say who may run a script here and who must approve, without running it.
    Explain {
        script: String,
        args: Vec<String>,
        /// One JSON document (may, why not, approval, argv, runners, timeout).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: As,
    },
    /// Approve a run that waits for approval (a critical run: with `--code`).
    Approve {
        id: String,
        /// Your authenticator's 6-digit code (`risk = "critical"`; `2fa enrol` first).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
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
    /// List the scripts, marking those you may not run here.
    List {
        /// One JSON document.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: As,
    },
    /// How to run SCRIPT (its parameters, risk and approval), as in chat;
    /// without SCRIPT, this command line's help.
    Help {
        script: Option<String>,
        #[command(flatten)]
        who: As,
    },
    /// A run's state, as in chat (`status 42`).
    Status {
        id: String,
        #[command(flatten)]
        who: As,
    },
    /// List runs, newest first: every run, or with `--as` those that person
    /// may see (as on the web).
    Runs {
        #[arg(long)]
        script: Option<String>,
        #[arg(long)]
        state: Option<String>,
        /// At most this many (1 to 500).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// One JSON document (an array of runs).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: As,
    },
    /// Show one run: state, approvals, result, output tail, audit link (with
    /// `--as`, only a run that person may see).
    Show {
        id: String,
        /// The run (with its result, approvals, files, timeline) as one JSON document.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: As,
    },
    /// Write one run's evidence bundle for an auditor (request, approvals,
    /// digests, log, result, chain entries to a signed checkpoint; signed), or
    /// `evidence verify FILE --key ed25519:…` to check one offline.
    #[command(args_conflicts_with_subcommands = true)]
    Evidence {
        #[command(subcommand)]
        verify: Option<EvidenceCmd>,
        /// The run (`42` or `#42`).
        run: Option<String>,
        /// Write the bundle to FILE (whole or not at all); default: stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// List every schedule with its next three fire times (its timezone and UTC).
    Schedules {
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Ask every server on the configured database to reload its manifests.
    Reload,
    /// Copy the SQLite database into FILE, consistently, while `serve` runs
    /// (never overwrites FILE). On PostgreSQL: prints the pg_dump command.
    Backup { file: PathBuf },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        what: AuditCmd,
    },
    /// Your second factor for approving critical runs: enrol, confirm; reset (admins).
    #[command(name = "2fa")]
    TwoFactor {
        #[command(subcommand)]
        what: two_factor::TwoFactorCmd,
    },
    /// Runners: enrol, list, revoke (on the server).
    Runners {
        #[command(subcommand)]
        what: RunnersCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunnersCmd {
    /// A one-time enrolment token (valid 1 h) for a new runner, alone on the last line.
    Enrol {
        name: String,
        /// The runner's tags, comma-separated (`--tags db-host,eu`).
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
    },
    /// Every runner: tags, slots, runs going, last seen.
    List,
    /// Refuse a runner from now on; its running runs become interrupted.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCmd {
    /// Check a bundle without the database: its signature, its checkpoint's,
    /// the chain's links, the run's entries and the log's sha256.
    Verify {
        file: PathBuf,
        /// The service's public key, `ed25519:<base64>` as `audit key` prints it.
        #[arg(long, value_name = "ed25519:…")]
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain with the audit key: `ok: N entries`, or the first
    /// entry that does not verify. With `--checkpoints FILE`, also that the chain
    /// still holds every head a signed checkpoint saw.
    Verify {
        /// A checkpoint file (JSON lines, as `audit checkpoint` and `serve` write).
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
        /// The public key the checkpoints were signed with (`ed25519:<base64>`,
        /// as `audit key` prints); default: this config's signing key.
        #[arg(long, value_name = "ed25519:…", requires = "checkpoints")]
        key: Option<String>,
    },
    /// Print the public key checkpoints are signed with, as one token `ed25519:<base64>`.
    Key,
    /// Sign a checkpoint of the chain's head now and append it to the checkpoint file.
    Checkpoint,
    /// Write the audit entries of a time range as JSON lines (schema
    /// `execgov.audit/1`, docs/audit.md), streamed in chain order.
    Export {
        /// From this UTC day (`2026-11-01`) or RFC 3339 time, inclusive.
        #[arg(long, value_name = "DATE")]
        since: String,
        /// Through this UTC day (`2026-11-30`, the whole day) or up to this RFC
        /// 3339 time; default: now.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Write to FILE (whole or not at all) instead of stdout; progress goes to stderr.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `--as PERSON`: act as a configured person (only where `[cli] impersonation = true`).
#[derive(Debug, Clone, clap::Args)]
pub struct As {
    /// Act as this configured person (where `[cli] impersonation = true`;
    /// audited as impersonation by your OS user).
    #[arg(long = "as", value_name = "PERSON")]
    pub person: Option<String>,
}

/// Runs the parsed command line; errors are printed by `main` with their context chain.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // A runner host has no service config and never opens the database.
    if let Cmd::Runner(args) = cli.command {
        return runners::runner(args).await;
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Cmd::Serve => local::serve(config).await,
        Cmd::Runner(_) => unreachable!("handled before the config loads"),
        Cmd::Check { dir } => Ok(admin::check(&config, dir)),
        Cmd::Prepare { script } => prepare::prepare(&config, script).await,
        Cmd::Init(args) => init::init(&config, args).await,
        Cmd::Run {
            script,
            args,
            wait,
            break_glass,
            who,
        } => {
            let Some(args) = local::kv_args(&args) else {
                return Ok(ExitCode::from(EXIT_USAGE));
            };
            let command = match break_glass {
                None => Command::Run { script, args },
                Some(reason) => Command::BreakGlass {
                    script,
                    args,
                    reason,
                },
            };
            local::handle(config, command, &who, wait).await
        }
        Cmd::Review { id, note, who } => {
            let note = Some(note.join(" ")).filter(|n| !n.trim().is_empty());
            let command = Command::Review {
                run: run_id(&id)?,
                note,
            };
            local::handle(config, command, &who, false).await
        }
        Cmd::Explain {
            script,
            args,
            json,
            who,
        } => {
            let Some(args) = local::kv_args(&args) else {
                return Ok(ExitCode::from(EXIT_USAGE));
            };
            if json {
                return admin::explain_json(config, &script, &args, &who).await;
            }
            local::handle(config, Command::Explain { script, args }, &who, false).await
        }
        Cmd::Approve { id, code, who } => {
            let command = Command::Approve {
                run: run_id(&id)?,
                code,
            };
            local::handle(config, command, &who, true).await
        }
        Cmd::TwoFactor { what } => two_factor::run(config, what).await,
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
        Cmd::List { json: false, who } => local::handle(config, Command::List, &who, false).await,
        Cmd::List { json: true, who } => admin::list_json(config, &who).await,
        Cmd::Help { script: None, .. } => {
            <Cli as clap::CommandFactory>::command().print_help()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Help { script, who } => {
            local::handle(config, Command::Help { script }, &who, false).await
        }
        Cmd::Status { id, who } => {
            local::handle(config, Command::Status { run: run_id(&id)? }, &who, false).await
        }
        Cmd::Runs {
            script,
            state,
            limit,
            json,
            who,
        } => {
            let filter = admin::RunsArgs {
                script,
                state,
                limit,
                json,
            };
            admin::runs(config, filter, &who).await
        }
        Cmd::Show { id, json, who } => admin::show(config, &id, json, &who).await,
        Cmd::Evidence { verify, run, out } => match (verify, run) {
            (Some(EvidenceCmd::Verify { file, key }), _) => admin::evidence_verify(&file, &key),
            (None, Some(run)) => admin::evidence(config, &run, out).await,
            (None, None) => Err(anyhow::anyhow!(
                "name a run (`execgov evidence 42 --out run-42.evidence`) or verify a bundle \
                 (`execgov evidence verify FILE --key ed25519:…`)"
            )),
        },
        Cmd::Audit { what } => match what {
            AuditCmd::Verify { checkpoints, key } => {
                admin::audit_verify(config, checkpoints, key).await
            }
            AuditCmd::Key => admin::audit_key(&config),
            AuditCmd::Checkpoint => admin::audit_checkpoint(config).await,
            AuditCmd::Export { since, until, out } => {
                admin::audit_export(config, &since, until.as_deref(), out).await
            }
        },
        Cmd::Runners { what } => match what {
            RunnersCmd::Enrol { name, tags } => runners::enrol(config, &name, &tags).await,
            RunnersCmd::List => runners::list(config).await,
            RunnersCmd::Revoke { name } => runners::revoke(config, &name).await,
        },
        Cmd::Schedules { json } => Ok(schedules::list(&config, json)),
        Cmd::Reload => schedules::reload(config).await,
        Cmd::Backup { file } => backup::backup(&config, &file).await,
    }
}

fn run_id(s: &str) -> anyhow::Result<RunId> {
    RunId::parse(s).map_err(anyhow::Error::msg)
}
