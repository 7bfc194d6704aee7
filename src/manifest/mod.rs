//! Script manifests: one TOML file per script saying how it runs, what arguments it
//! takes, who may run it where, who approves it, and when it runs on its own.
//!
//! Layout: `schema` reads one file (every problem with its line; its `[[param]]`s
//! in `param_schema`) and `check` the
//! sections that name people, groups and channels of the config; `crontab` parses a
//! schedule's cron expression; `params` turns user input into typed [`Args`];
//! `template` is the argv template; `rules` reads `[[rule]]` and applies the
//! one that holds for a request; `python` reads `[python]` (script,
//! requirements, PEP 723); `files` binds a request's files to `type = "file"`
//! parameters; `exec` builds argv and the digest; `catalog`
//! loads a folder into a [`Catalog`].

mod catalog;
mod check;
mod crontab;
mod exec;
mod files;
mod param_schema;
mod params;
mod python;
mod rules;
mod schema;
mod template;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::types::{PersonId, ScriptName};

pub use crate::types::FileInput;
pub use crate::types::{ArgValue, Args, Risk};
pub use catalog::{Catalog, Diagnostic, load_catalog};
pub use crontab::{Crontab, CrontabError, Field as CronField};
pub use param_schema::MAX_FILE_SIZE;
pub use params::{ArgError, Param, ParamKind};
pub use python::{InlineMetadata, Python, Requirements, parse_requirements, pep723};
pub use rules::{Condition, Rule, Test};
pub use template::ArgTemplate;

/// One script, as its manifest declares it, fully checked.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: ScriptName,
    pub description: String,
    /// The argv template; see [`Manifest::argv`].
    pub command: Vec<ArgTemplate>,
    /// Wall-clock limit of one run (default 10m).
    pub timeout: Duration,
    pub risk: Risk,
    /// Runs of this script at once (default 4, at least 1).
    pub max_concurrent: u32,
    /// `memory = "512MiB"`: bytes the run's processes may use together,
    /// enforced where the runner's host has a memory cgroup.
    pub memory: Option<u64>,
    /// `max_processes = 256`: processes (and threads) the run may have at
    /// once, enforced where the runner's host has a pids cgroup.
    pub max_processes: Option<u32>,
    /// `runs_on = ["db-host"]`: only a runner with every one of these tags may
    /// run it; empty: the service's own local runner.
    pub runs_on: Vec<String>,
    /// Environment variables passed through from the server.
    pub env: Vec<String>,
    /// Passed through too, and their values masked in logs.
    pub secret_env: Vec<String>,
    pub params: Vec<Param>,
    /// `output = "json" | "csv"`: stdout is read as the run's result when it
    /// finishes (docs/results.md); `text` (default): it is only the log.
    pub output: OutputFormat,
    pub access: Access,
    /// Present for every high-risk script (the check insists).
    pub approval: Option<Approval>,
    pub schedules: Vec<Schedule>,
    /// `[[rule]]`s, first match wins (see [`Manifest::governed`]).
    pub rules: Vec<Rule>,
    /// `[python]`: the script runs in an environment built from its
    /// requirements; `command` is then `["python3", script, args…]`.
    pub python: Option<Python>,
    /// The manifest file.
    pub path: PathBuf,
    /// Its folder, absolute; relative script paths in `command` resolve against it.
    pub dir: PathBuf,
    /// sha256 hex over the manifest bytes and every script file `command` names, so an
    /// approval can be tied to exactly what will run.
    pub digest: String,
}

/// How a run's stdout is read when it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The log, nothing more.
    #[default]
    Text,
    /// One JSON document: an object is the result, anything else `{"value": …}`.
    Json,
    /// CSV with a header line: the result's `table`.
    Csv,
}

/// Someone named in `access.run`, `approval.approvers` or `notify_on_failure`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// `anyone`: every actor, including accounts that map to no configured person.
    Anyone,
    /// `person:alice`
    Person(PersonId),
    /// `group:sre`
    Group(String),
}

impl Principal {
    pub fn parse(s: &str) -> Result<Principal, String> {
        match s.split_once(':') {
            None if s == "anyone" => Ok(Principal::Anyone),
            Some(("person", name)) if !name.is_empty() => {
                Ok(Principal::Person(PersonId(name.to_string())))
            }
            Some(("group", name)) if !name.is_empty() => Ok(Principal::Group(name.to_string())),
            _ => Err(format!(
                "`{s}` is not a principal; write \"anyone\", \"person:NAME\" or \"group:NAME\""
            )),
        }
    }

    /// Whether `person` (None for an unknown actor) is among those this names.
    pub fn includes(&self, person: Option<&PersonId>, config: &Config) -> bool {
        match (self, person) {
            (Principal::Anyone, _) => true,
            (Principal::Person(p), Some(who)) => p == who,
            (Principal::Group(g), Some(who)) => config.group(g).is_some_and(|m| m.contains(who)),
            (_, None) => false,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Anyone => f.write_str("anyone"),
            Principal::Person(p) => write!(f, "person:{p}"),
            Principal::Group(g) => write!(f, "group:{g}"),
        }
    }
}

/// `[access]`: who may ask, and where.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Who may request a run. Empty means nobody (schedules only): be explicit.
    pub run: Vec<Principal>,
    /// Channel names (config `[channels]`) where it may be asked; empty = anywhere.
    pub channels: Vec<String>,
}

/// `[approval]`: who must say yes before a run starts.
#[derive(Debug, Clone)]
pub struct Approval {
    pub approvers: Vec<Principal>,
    /// Channel name the approval request is posted to; None = where it was asked.
    pub channel: Option<String>,
    /// Distinct approvers needed (default 1).
    pub quorum: u32,
    /// An undecided request expires after this (default 1h).
    pub expires: Duration,
    /// Whether the requester's own approval counts (default false).
    pub self_approval: bool,
    pub scheduled: ScheduledApproval,
    /// `preview = ["--dry-run"]`: before the request is posted, the script runs
    /// once with these arguments appended (its own run, never approved) and
    /// its outcome is shown on the request (docs/preview.md). Empty: none.
    pub preview: Vec<String>,
}

/// Whether a schedule's runs of a high-risk script wait for approval too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScheduledApproval {
    /// The schedule itself was reviewed with the manifest (default).
    #[default]
    NotRequired,
    /// `scheduled = "required"`: every scheduled run waits for approvers.
    Required,
}

/// One `[[schedule]]`.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Unique within the manifest: `name`, else "default" (a lone schedule) or
    /// "schedule-N" (1-based position).
    pub name: String,
    /// Crontab, optionally with a leading seconds field; checked at load.
    pub cron: Crontab,
    pub timezone: chrono_tz::Tz,
    /// Checked against the params at load, defaults filled in.
    pub args: Args,
    /// Channel names results are posted to.
    pub post_to: Vec<String>,
    /// Told when a scheduled run fails.
    pub notify_on_failure: Vec<Principal>,
    pub catch_up: CatchUp,
    pub overlap: Overlap,
}

/// What to do about firings missed while ExecGov was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// Forget them.
    Skip,
    /// Run once for the most recent missed firing (default).
    #[default]
    Latest,
}

/// What to do when a firing comes while the previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Drop this firing (default).
    #[default]
    Skip,
    /// Run it after the running one ends: fires wait, and run one at a time, oldest
    /// first (at most `scheduler::MAX_QUEUED` wait; see `scheduler/fire.rs`).
    Queue,
}

impl Manifest {
    /// Reads and checks one manifest against `config`. `path` names the file in
    /// diagnostics and anchors relative script paths.
    pub fn from_toml(
        text: &str,
        path: &Path,
        config: &Config,
    ) -> Result<Manifest, Vec<Diagnostic>> {
        schema::read(text, path, config)
            .map(|(m, _)| m)
            .map_err(|problems| Diagnostic::from_problems(path, problems))
    }
}
