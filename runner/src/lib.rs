//! ExecGov's runner core: scripts as child processes, governed.
//!
//! A [`Runner`] is set up once per process that runs scripts (the service's
//! local runner, `execgov runner`) and then runs any number of scripts at
//! once. Each child gets a fresh run folder (its working directory and
//! `HOME`), an environment cleared down to what [`child_env`] lists, no
//! descriptor but 0, 1 and 2, no new privileges, no core dumps, and, where the
//! host allows, a cgroup and a PID namespace of its own and another user. A
//! timeout or a cancel stops it and everything it started, `setsid()` or not;
//! so does the runner's own death. Its stdout and stderr go to a capped log
//! with secrets masked; `::progress` lines are forwarded; its result file and
//! output folder are picked up at the end. [`Host`] says what this host
//! guarantees.
//!
//! This crate is what a host that runs scripts needs: it depends on no chat
//! SDK and no database driver.
//!
//! # Layout
//! - `runner`: the long-lived [`Runner`]: set-up, leftovers, one `execute` per run.
//! - `host`: what the host gives ([`Host`]), probed once.
//! - `spec`: what to run ([`ExecSpec`]) and what came of it ([`ExecOutcome`]).
//! - `execute`: one run from start to outcome: run folder, cgroup, timeout, cancel.
//! - `contain`: everything that holds a run's processes, and stopping all of them.
//! - `cgroup`: the runner's and each run's cgroups (v2, v1, hybrid).
//! - `leftovers`: killing what a dead runner's runs left behind.
//! - `reaper`: the child-subreaper fallback for hosts without cgroups or root.
//! - `spawner`: the thread every script is forked from (parent-death signal).
//! - `setup`: what the child does before `exec`, prepared by the parent; its steps.
//! - `sandbox`: the fork (into the run's cgroup) and those steps up to `exec` (the only `unsafe`).
//! - `child`: the started script: its pipes, waiting for it, killing it.
//! - `user`: the run user, handing the run folder to it and back.
//! - `spawn`: the environment, finding the program, start errors, the process group.
//! - `output`: reading both pipes line by line into the log, the tail and progress.
//! - `mask`: replacing secret values with `***`, also across reads.
//! - `log`: the log file with its size cap and `[execgov]` notes.
//! - `artifacts`: the result JSON and the hashed output files.
//! - [`protocol`]: the messages a runner and the service exchange over HTTP.
//! - [`client`]: the runner's side of that protocol: polls, runs, delivers.

mod artifacts;
mod cgroup;
mod child;
pub mod client;
mod contain;
mod execute;
mod host;
mod leftovers;
mod log;
mod mask;
mod output;
pub mod protocol;
mod reaper;
mod runner;
mod sandbox;
mod setup;
mod spawn;
mod spawner;
mod spec;
mod user;

pub use execute::{child_env, not_started};
pub use host::{CgroupSetup, Host, RunnerDeath, StopMechanism};
pub use leftovers::Leftover;
pub use output::parse_progress;
pub use runner::{Avoid, Runner, RunnerOptions, StartError};
pub use spec::{
    Artifact, ExecOutcome, ExecSpec, ExitKind, LimitReached, Limits, Progress, RunId, size,
};
pub use user::{RunUser, UserError};
