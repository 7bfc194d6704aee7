//! The manifest's `memory` and `max_processes`, enforced by the run's cgroup
//! where the host has one: a 1 GiB allocation under 256 MiB fails and the
//! outcome says "memory limit 256MiB reached" (from the kernel's OOM-kill
//! counter); forks past `max_processes` fail and it says "process limit 8 reached".

use execgov::runner::LimitReached;

use super::host_table::{Column, missing};
use super::*;

#[tokio::test]
async fn a_1gib_allocation_under_a_256mib_limit_fails_and_says_so() {
    let runner = runner();
    if !runner.host().memory_limit {
        missing(runner.host(), Column::MemoryLimit, "memory cgroup");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // dd allocates its 1 GiB buffer and fills it from /dev/zero.
    let script =
        "echo allocating; dd if=/dev/zero of=/dev/null bs=1G count=1; echo \"dd exited $?\"";
    let mut spec = spec(dir.path(), &["/bin/sh", "-c", script]);
    spec.limits.memory = Some(256 * MIB);
    let ran = run_on(&runner, spec).await;

    assert_eq!(
        ran.outcome.limits_reached,
        [LimitReached::Memory(256 * MIB)],
        "the kernel's OOM killer stopped the allocation:\n{}",
        ran.log
    );
    assert_eq!(
        ran.outcome.limit_error().as_deref(),
        Some("memory limit 256MiB reached"),
        "the run's error"
    );
    assert!(
        ran.log.contains("dd exited 137"),
        "dd was killed (128 + SIGKILL), the script went on:\n{}",
        ran.log
    );
    assert!(
        ran.log
            .contains("[execgov] memory limit 256MiB reached: the kernel stopped the run"),
        "the log says why:\n{}",
        ran.log
    );
}

#[tokio::test]
async fn the_same_allocation_without_a_limit_is_not_reported() {
    let runner = runner();
    let dir = tempfile::tempdir().expect("temp dir");
    let script = "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo \"dd exited $?\"";
    let mut spec = spec(dir.path(), &["/bin/sh", "-c", script]);
    spec.limits.memory = Some(256 * MIB);
    let ran = run_on(&runner, spec).await;
    assert!(
        ran.outcome.succeeded(),
        "{:?}\n{}",
        ran.outcome.kind,
        ran.log
    );
    assert!(
        ran.log.contains("dd exited 0"),
        "64 MiB fits in 256 MiB:\n{}",
        ran.log
    );
    assert!(
        ran.outcome.limits_reached.is_empty(),
        "a limit that was not reached is not reported: {:?}",
        ran.outcome.limits_reached
    );
}

#[tokio::test]
async fn forks_past_max_processes_fail_and_say_so() {
    let runner = runner();
    if !runner.host().process_limit {
        missing(runner.host(), Column::ProcessLimit, "pids cgroup");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // Twenty background sleeps under a limit of 8: dash gives up at the first refused fork.
    let script = "i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done; echo all started";
    let mut spec = spec(dir.path(), &["/bin/sh", "-c", script]);
    spec.limits.processes = Some(8);
    let ran = run_on(&runner, spec).await;

    assert_eq!(
        ran.outcome.limits_reached,
        [LimitReached::Processes(8)],
        "a fork was refused at the limit:\n{}",
        ran.log
    );
    assert_eq!(
        ran.outcome.limit_error().as_deref(),
        Some("process limit 8 reached")
    );
    assert!(
        !ran.log.contains("all started"),
        "the script could not start all twenty:\n{}",
        ran.log
    );
}

#[tokio::test]
async fn a_limit_the_host_cannot_enforce_is_named_in_the_log() {
    let runner = runner_with(RunnerOptions {
        scope: "it-unenforced".into(),
        avoid: execgov::runner::Avoid {
            cgroup_v2: true,
            cgroup_v1: true,
            pid_namespace: false,
        },
        ..RunnerOptions::default()
    });
    assert!(!runner.host().memory_limit, "no cgroup, no memory limit");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = spec(dir.path(), &["true"]);
    spec.limits = Limits {
        memory: Some(512 * MIB),
        processes: Some(256),
    };
    let ran = run_on(&runner, spec).await;
    assert!(ran.outcome.succeeded(), "{:?}", ran.outcome.kind);
    assert!(
        ran.log
            .contains("[execgov] memory = 512MiB is not enforced")
            && ran
                .log
                .contains("[execgov] max_processes = 256 is not enforced"),
        "no silent limits:\n{}",
        ran.log
    );
}

/// A manifest asking for 256MiB, from `execgov check` to the run's recorded error.
const GREEDY: &str = r#"name = "greedy"
description = "Allocates 1 GiB"
command = ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=1G count=1"]
timeout = "30s"
memory = "256MiB"
[access]
run = ["anyone"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_recorded_error_names_the_memory_limit() {
    use crate::helpers::{Backend, TestEnv, person, say, wait_final};
    use execgov::types::RunState;

    let env = TestEnv::new(Backend::Sqlite).await;
    std::fs::write(env.path().join("manifests/greedy.toml"), GREEDY).expect("manifest");
    let engine = env.engine().await;
    let opts = execgov::runner::LocalOptions::from_engine(&engine);
    let host = opts
        .runner
        .runner()
        .expect("the runner starts")
        .host()
        .clone();
    if !host.memory_limit {
        missing(&host, Column::MemoryLimit, "memory cgroup");
        return;
    }
    let stop = CancellationToken::new();
    let pool = tokio::spawn(
        execgov::runner::Local::new(engine.clone(), opts).run_until_stopped(None, stop.clone()),
    );
    let reply = say(&engine, &person("alice"), "run greedy").await;
    let run = reply
        .run
        .unwrap_or_else(|| panic!("run accepted: {}", reply.text));
    let done = wait_final(&engine, run.id).await;
    stop.cancel();
    pool.await.expect("the pool stops");

    assert_eq!(done.state, RunState::Failed, "dd was killed");
    assert_eq!(
        done.error.as_deref(),
        Some("memory limit 256MiB reached"),
        "the run's error says why, not just an exit code"
    );
}
