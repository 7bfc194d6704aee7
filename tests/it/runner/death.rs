//! kill -9 of the process that runs scripts leaves no process of its runs:
//! with a PID namespace all of them die at once; without one, the script dies
//! at once (parent-death signal) and a restarted runner of the same scope
//! kills what it started in another session, and names the run.

use execgov::runner::{Avoid, CgroupSetup};
use execgov::types::RunId;

use super::host_table::{Column, missing};
use super::*;

/// The run the child process starts.
const RUN: RunId = RunId(4242);

/// Writes "script-pid grandchild-pid" to `$1/pids` once the grandchild (own
/// session, SIGTERM ignored) is started, then waits for ever.
const SCRIPT: &str = "setsid sh -c 'trap \"\" TERM; exec sleep 300' & \
                      echo \"$$ $!\" > \"$1/pids.tmp\" && mv \"$1/pids.tmp\" \"$1/pids\"; sleep 300";

/// Run in a child process that the tests below kill with SIGKILL mid-run.
#[tokio::test]
#[ignore = "run and killed by the tests of runner::death"]
async fn runner_process() {
    let dir = std::env::var("EXECGOV_TEST_DEATH_DIR").expect("EXECGOV_TEST_DEATH_DIR");
    let scope = std::env::var("EXECGOV_TEST_DEATH_SCOPE").expect("EXECGOV_TEST_DEATH_SCOPE");
    let avoid = Avoid {
        pid_namespace: std::env::var("EXECGOV_TEST_DEATH_NO_PIDNS").is_ok(),
        ..Avoid::default()
    };
    let runner = runner_with(RunnerOptions {
        scope,
        avoid,
        ..RunnerOptions::default()
    });
    let mut spec = spec(Path::new(&dir), &["/bin/sh", "-c", SCRIPT, "sh", &dir]);
    spec.run_id = RUN.into();
    spec.timeout = Duration::from_secs(600);
    let (tx, _rx) = mpsc::channel(8);
    let outcome = runner.execute(spec, CancellationToken::new(), tx).await;
    panic!("the run was meant to be killed with its runner, but ended: {outcome:?}");
}

/// Starts the runner process, waits until its run's grandchild left the
/// session, kills the runner process with SIGKILL; returns (script, grandchild).
async fn kill_runner_mid_run(dir: &Path, scope: &str, pid_namespace: bool) -> (i32, i32) {
    let mut env = vec![
        (
            "EXECGOV_TEST_DEATH_DIR",
            dir.to_str().expect("utf-8 temp dir"),
        ),
        ("EXECGOV_TEST_DEATH_SCOPE", scope),
    ];
    if !pid_namespace {
        env.push(("EXECGOV_TEST_DEATH_NO_PIDNS", "1"));
    }
    let mut runner_process = child_test("runner::death::runner_process", &env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the runner process");
    let pids_file = dir.join("pids");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let pids = loop {
        if let Ok(text) = std::fs::read_to_string(&pids_file) {
            break text;
        }
        assert!(
            runner_process.try_wait().expect("poll").is_none(),
            "the runner process ended before its script started"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the script never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let pids: Vec<i32> = pids
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let [script, grandchild] = pids[..] else {
        panic!("unexpected pids file {pids:?}")
    };
    while session_of(grandchild) != Some(grandchild) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grandchild never left the session"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    runner_process.kill().expect("SIGKILL the runner process");
    runner_process.wait().expect("reap the runner process");
    (script, grandchild)
}

#[tokio::test]
async fn kill_9_of_the_runner_kills_every_process_of_its_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scope = unique("death");
    let host = runner().host().clone();
    let (script, grandchild) = kill_runner_mid_run(dir.path(), &scope, true).await;

    if !host.pid_namespace {
        missing(&host, Column::DieWithRunner, "PID namespace");
        // The restart path below (or nothing, documented) is what is left.
        let _ = runner_with(RunnerOptions {
            scope,
            ..RunnerOptions::default()
        });
        return;
    }
    assert_dead(
        &[script, grandchild],
        "after kill -9 of the runner (PID namespace)",
    )
    .await;
}

#[tokio::test]
async fn without_a_pid_namespace_a_restarted_runner_kills_what_was_left_and_names_the_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scope = unique("restart");
    let (script, grandchild) = kill_runner_mid_run(dir.path(), &scope, false).await;
    assert_dead(&[script], "the script, by its parent-death signal").await;

    if runner().host().cgroups == CgroupSetup::None {
        let restarted = runner_with(RunnerOptions {
            scope,
            ..RunnerOptions::default()
        });
        missing(restarted.host(), Column::DieWithRunner, "cgroup");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(grandchild),
            nix::sys::signal::Signal::SIGKILL,
        );
        return;
    }
    assert!(
        alive(grandchild),
        "without a PID namespace the grandchild outlives the runner until a restart"
    );

    let restarted = runner_with(RunnerOptions {
        scope: scope.clone(),
        ..RunnerOptions::default()
    });
    let named: Vec<RunId> = restarted
        .leftovers()
        .iter()
        .map(|l| l.run_id.into())
        .collect();
    assert_eq!(
        named,
        [RUN],
        "the restarted runner names the run it found still running"
    );
    assert!(
        restarted.leftovers()[0].killed >= 1,
        "it killed the grandchild: {:?}",
        restarted.leftovers()
    );
    assert_dead(&[grandchild], "after the restarted runner's sweep").await;

    let again = runner_with(RunnerOptions {
        scope,
        ..RunnerOptions::default()
    });
    assert!(
        again.leftovers().is_empty(),
        "a run is named once: {:?}",
        again.leftovers()
    );
}
