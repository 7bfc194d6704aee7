//! A process that left the script's process group and session (`setsid()`)
//! and ignores SIGTERM still dies at the timeout and at a cancel: checked in
//! `/proc`, with the mechanism this host gives (cgroup v2 `cgroup.kill`, the v1
//! freezer, the run's PID namespace) and with the subreaper fallback.

use execgov::runner::{Avoid, StopMechanism};

use super::host_table::{Column, missing};
use super::*;

/// Starts a grandchild in a session of its own that ignores SIGTERM (an
/// ignored signal stays ignored across `exec`), reports both pids, waits.
const ESCAPES: &str = "setsid sh -c 'trap \"\" TERM; exec sleep 300' & \
                       echo \"::progress 0 started $$ $!\"; sleep 300";

/// Waits for the script's report, then until the grandchild has its own
/// session; returns (script, grandchild).
async fn escaped(rx: &mut mpsc::Receiver<Progress>) -> (i32, i32) {
    let first = rx.recv().await.expect("the script reports that it started");
    let pids: Vec<i32> = first
        .text
        .strip_prefix("started ")
        .map(|t| t.split(' ').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    let [script, grandchild] = pids[..] else {
        panic!("unexpected progress {first:?}")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while session_of(grandchild) != Some(grandchild) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grandchild {grandchild} never left the script's session"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_ne!(
        session_of(script),
        Some(grandchild),
        "the grandchild is in a session of its own"
    );
    (script, grandchild)
}

/// The timeout case on `runner`: both processes are gone afterwards.
async fn timeout_kills_the_escaped_grandchild(runner: &Runner) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = spec(dir.path(), &["/bin/sh", "-c", ESCAPES]);
    spec.timeout = Duration::from_secs(1);
    spec.kill_grace = Duration::from_millis(300);
    let (tx, mut rx) = mpsc::channel(8);
    let run = runner.clone();
    let running =
        tokio::spawn(async move { run.execute(spec, CancellationToken::new(), tx).await });
    let (script, grandchild) = escaped(&mut rx).await;

    let outcome = running.await.expect("execute does not panic");
    assert_eq!(outcome.kind, ExitKind::TimedOut, "the 1 s timeout fired");
    assert_dead(
        &[script, grandchild],
        &format!("after a timeout, stopping by {:?}", runner.host().stop),
    )
    .await;
}

#[tokio::test]
async fn a_setsid_grandchild_dies_at_the_timeout() {
    let runner = runner();
    timeout_kills_the_escaped_grandchild(&runner).await;
    if runner.host().stop == StopMechanism::Subreaper {
        missing(
            runner.host(),
            Column::SetsidKilled,
            "cgroup or PID namespace",
        );
    }
}

#[tokio::test]
async fn a_setsid_grandchild_dies_at_a_cancel() {
    let runner = runner();
    let dir = tempfile::tempdir().expect("temp dir");
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(8);
    let spec = spec(dir.path(), &["/bin/sh", "-c", ESCAPES]);
    let (run, stop) = (runner.clone(), cancel.clone());
    let running = tokio::spawn(async move { run.execute(spec, stop, tx).await });
    let (script, grandchild) = escaped(&mut rx).await;

    cancel.cancel();
    let outcome = running.await.expect("execute does not panic");
    assert_eq!(outcome.kind, ExitKind::Cancelled);
    assert_dead(&[script, grandchild], "after a cancel").await;
}

/// Each mechanism on its own, where this host has it.
async fn only(avoid: Avoid, expected: StopMechanism) {
    let runner = runner_with(RunnerOptions {
        scope: "it-contain".into(),
        avoid,
        ..RunnerOptions::default()
    });
    if runner.host().stop != expected {
        println!(
            "note: {expected:?} is not available on this host ({}); the other mechanisms are tested",
            runner.host()
        );
        return;
    }
    timeout_kills_the_escaped_grandchild(&runner).await;
}

#[tokio::test]
async fn cgroup_kill_alone_stops_the_escaped_grandchild() {
    let avoid = Avoid {
        cgroup_v1: true,
        pid_namespace: true,
        ..Avoid::default()
    };
    only(avoid, StopMechanism::CgroupKill).await;
}

#[tokio::test]
async fn the_v1_freezer_alone_stops_the_escaped_grandchild() {
    let avoid = Avoid {
        cgroup_v2: true,
        pid_namespace: true,
        ..Avoid::default()
    };
    only(avoid, StopMechanism::CgroupFreezer).await;
}

#[tokio::test]
async fn the_pid_namespace_alone_stops_the_escaped_grandchild() {
    let avoid = Avoid {
        cgroup_v2: true,
        cgroup_v1: true,
        ..Avoid::default()
    };
    only(avoid, StopMechanism::PidNamespace).await;
}

/// Run in a child process by the test below: it makes that process a child
/// subreaper, which must not leak into the other tests.
#[tokio::test]
#[ignore = "run by the_subreaper_fallback_stops_the_escaped_grandchild"]
async fn subreaper_probe_in_a_child_process() {
    let avoid = Avoid {
        cgroup_v2: true,
        cgroup_v1: true,
        pid_namespace: true,
    };
    let runner = runner_with(RunnerOptions {
        scope: "it-subreaper".into(),
        avoid,
        ..RunnerOptions::default()
    });
    assert_eq!(runner.host().stop, StopMechanism::Subreaper);
    timeout_kills_the_escaped_grandchild(&runner).await;

    // At the end of a run that succeeded, its orphans die too.
    let dir = tempfile::tempdir().expect("temp dir");
    let escaping = "setsid sleep 300 & echo \"escaped $!\"";
    let ran = run_on(&runner, spec(dir.path(), &["/bin/sh", "-c", escaping])).await;
    assert!(
        ran.outcome.succeeded(),
        "{:?}\n{}",
        ran.outcome.kind,
        ran.log
    );
    let orphan: i32 = ran
        .log
        .lines()
        .find_map(|l| l.strip_prefix("escaped ")?.parse().ok())
        .expect("the orphan's pid");
    assert_dead(&[orphan], "after the run ended, in the subreaper fallback").await;
}

#[test]
fn the_subreaper_fallback_stops_the_escaped_grandchild() {
    run_child_test("runner::contain::subreaper_probe_in_a_child_process", &[]);
}

/// Where the host stops runs by cgroup v2 `cgroup.kill`, the script is in its
/// run's cgroup from its start (created in it, or moved before `exec`), and
/// in no v1 freezer cgroup of the run, which that host does not need.
#[tokio::test]
async fn the_script_starts_in_its_runs_cgroup() {
    let runner = runner_with(RunnerOptions {
        scope: "it-contain".into(),
        ..RunnerOptions::default()
    });
    if runner.host().stop != StopMechanism::CgroupKill {
        println!("note: this host has no cgroup.kill ({})", runner.host());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(8);
    let outcome = runner
        .execute(
            spec(dir.path(), &["/bin/cat", "/proc/self/cgroup"]),
            CancellationToken::new(),
            tx,
        )
        .await;
    assert_eq!(outcome.kind, ExitKind::Exited(0), "{}", outcome.tail);
    let unified = outcome
        .tail
        .lines()
        .find(|l| l.starts_with("0::"))
        .unwrap_or_else(|| panic!("no cgroup v2 line in {}", outcome.tail));
    let leaf = unified.rsplit('/').next().unwrap();
    assert!(leaf.starts_with("run-7-"), "the script is in {unified}");
    let freezer = outcome.tail.lines().find(|l| l.contains(":freezer:"));
    assert!(
        freezer.is_none_or(|l| !l.contains("/run-")),
        "the run joined a v1 freezer cgroup it does not need: {freezer:?}"
    );
}
