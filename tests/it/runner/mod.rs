//! The runner keeps scripts in their box: arguments are never shell-parsed, the
//! environment holds only what is allowed, no process of a run outlives it
//! (timeout, cancel, success, the runner's own death), output is capped in
//! bounded memory, secrets never reach the log, the tail or progress, results
//! and artifacts come back, limits hold, and a run user cannot read the service.
//!
//! - `limits.rs`: literal arguments, process-group cleanup, the output cap;
//! - `env.rs`: environment, secrets, progress, results and artifacts, start errors;
//! - `contain.rs`: `setsid()` descendants die at timeout and cancel, on every mechanism;
//! - `death.rs`: kill -9 of the runner's process leaves no process of its runs;
//! - `resources.rs`: the manifest's memory and process limits;
//! - `hardening.rs`: no inherited descriptor or variable, no_new_privs, no core;
//! - `user.rs`: scripts as `[runner] user` cannot read the database, the secret, /proc;
//! - `host_table.rs`: what the README's host table promises for this host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use execgov::runner::{
    ExecOutcome, ExecSpec, ExitKind, Limits, Progress, Runner, RunnerOptions, child_env,
};
use execgov::types::RunId;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod contain;
mod death;
mod env;
mod hardening;
mod host_table;
mod limits;
mod resources;
mod user;

const MIB: u64 = 1024 * 1024;

fn script(name: &str) -> String {
    format!(
        "{}/tests/fixtures/scripts/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn spec(dir: &Path, argv: &[&str]) -> ExecSpec {
    ExecSpec {
        run_id: RunId(7).into(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        run_dir: dir.join("run"),
        pass_env: Vec::new(),
        secrets: Vec::new(),
        timeout: Duration::from_secs(30),
        kill_grace: Duration::from_secs(2),
        log_path: dir.join("logs/run.log"),
        log_cap: MIB,
        limits: Limits::default(),
        inputs: Vec::new(),
    }
}

/// A runner as the service starts one, with what this host gives.
fn runner_with(options: RunnerOptions) -> Runner {
    Runner::start(options).expect("the runner starts")
}

fn runner() -> Runner {
    runner_with(RunnerOptions {
        scope: "it-runner".into(),
        ..RunnerOptions::default()
    })
}

/// Runs `spec` on a fresh runner.
async fn execute(
    spec: ExecSpec,
    cancel: CancellationToken,
    progress: mpsc::Sender<Progress>,
) -> ExecOutcome {
    runner().execute(spec, cancel, progress).await
}

/// What one run left: the outcome, the progress updates sent, the log's text.
struct Ran {
    outcome: ExecOutcome,
    progress: Vec<Progress>,
    log: String,
}

async fn run(spec: ExecSpec) -> Ran {
    run_on(&runner(), spec).await
}

async fn run_on(runner: &Runner, spec: ExecSpec) -> Ran {
    let log_path = spec.log_path.clone();
    let (tx, mut rx) = mpsc::channel(64);
    let outcome = runner.execute(spec, CancellationToken::new(), tx).await;
    let mut progress = Vec::new();
    while let Ok(p) = rx.try_recv() {
        progress.push(p);
    }
    let log = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
    Ran {
        outcome,
        progress,
        log,
    }
}

/// The process is there and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// A killed process takes a moment to die, and its death is no event this
/// process can await, so poll `/proc` briefly.
async fn assert_dead(pids: &[i32], what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: processes {left:?} are still alive"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The session a process is in (`/proc/PID/stat`, field 6).
fn session_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Runs the `#[ignore]`d test `name` of this binary in a child process with
/// `env`, and returns that process (tests that must kill it, or must not
/// share this process: a child subreaper, a leaked descriptor).
fn child_test(name: &str, env: &[(&str, &str)]) -> std::process::Command {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([name, "--exact", "--ignored", "--nocapture"])
        .envs(env.iter().copied());
    cmd
}

/// Runs [`child_test`] to its end and asserts it passed.
fn run_child_test(name: &str, env: &[(&str, &str)]) -> String {
    let out = child_test(name, env).output().expect("run the child test");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the child test {name} failed:\n{report}"
    );
    assert!(
        report.contains("1 passed"),
        "the child test {name} ran:\n{report}"
    );
    report
}

/// Processes (not zombies) whose process group is `pgid`, from `/proc`.
fn live_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the `(comm)`: state, ppid, pgrp, …
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or("", |(_, r)| r)
                .split_whitespace()
                .collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2].parse() == Ok(pgid)
        })
        .collect()
}

/// A killed process takes a moment to die, and its death is no event this
/// process can await, so poll `/proc` briefly.
async fn assert_group_gone(pgid: i32, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let left = live_members(pgid);
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: processes {left:?} of group {pgid} are still alive"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts a script that reports `::progress 0 started <pgid>`; waits for that
/// line and checks the grandchild is really there before returning the pgid.
async fn started_group(rx: &mut mpsc::Receiver<Progress>) -> i32 {
    let first = rx.recv().await.expect("the script reports that it started");
    let pgid: i32 = first
        .text
        .strip_prefix("started ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected progress {first:?}"));
    assert!(
        live_members(pgid).len() >= 2,
        "the script and its background grandchild run in group {pgid}"
    );
    pgid
}

fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{tag}-{}-{nanos}", std::process::id())
}
