//! Limits: no shell, and no process of a run's group outlives it (timeout,
//! SIGTERM ignored, cancel, success); output past the cap costs no memory.

use super::*;

#[tokio::test]
async fn arguments_reach_the_script_literally_never_through_a_shell() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pwned = PathBuf::from(format!("/tmp/{}", unique("pwned")));
    let injection = format!("; touch {}", pwned.display());
    let script = script("echo_args.sh");
    let ran = run(spec(
        dir.path(),
        &[&script, &injection, "$(id)", "two words"],
    ))
    .await;

    assert!(
        ran.outcome.succeeded(),
        "the script ran: {:?}\n{}",
        ran.outcome.kind,
        ran.log
    );
    let expected = format!("argc=3\narg=[{injection}]\narg=[$(id)]\narg=[two words]\n");
    assert_eq!(
        ran.log, expected,
        "each argument arrives as one literal argument"
    );
    assert!(!pwned.exists(), "`; touch` in an argument ran nothing");
}

#[tokio::test]
async fn a_timeout_stops_the_script_and_its_grandchild() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = spec(dir.path(), &[&script("grandchild.sh")]);
    spec.timeout = Duration::from_secs(1);
    let (tx, mut rx) = mpsc::channel(8);
    let running = tokio::spawn(execute(spec, CancellationToken::new(), tx));
    let pgid = started_group(&mut rx).await;

    let outcome = running.await.expect("execute does not panic");
    assert_eq!(outcome.kind, ExitKind::TimedOut, "the 1 s timeout fired");
    assert!(
        outcome.duration < Duration::from_secs(5),
        "no wait on the grandchild's pipes: {:?}",
        outcome.duration
    );
    assert_group_gone(pgid, "after a timeout").await;
    let log = std::fs::read_to_string(dir.path().join("logs/run.log")).expect("log");
    assert!(
        log.contains("[execgov] timed out after 1s"),
        "the log says why it stopped:\n{log}"
    );
}

#[tokio::test]
async fn a_script_ignoring_sigterm_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = spec(dir.path(), &[&script("ignore_term.sh")]);
    spec.timeout = Duration::from_millis(300);
    spec.kill_grace = Duration::from_millis(300);
    let (tx, mut rx) = mpsc::channel(8);
    let running = tokio::spawn(execute(spec, CancellationToken::new(), tx));
    let pgid = started_group(&mut rx).await;

    let outcome = running.await.expect("execute does not panic");
    assert_eq!(outcome.kind, ExitKind::TimedOut);
    assert!(
        outcome.duration >= Duration::from_millis(600),
        "SIGKILL waited for the grace period"
    );
    assert_group_gone(pgid, "after SIGKILL").await;
}

#[tokio::test]
async fn cancel_stops_the_script_and_its_grandchild() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(8);
    let running = tokio::spawn(execute(
        spec(dir.path(), &[&script("grandchild.sh")]),
        cancel.clone(),
        tx,
    ));
    let pgid = started_group(&mut rx).await;

    cancel.cancel();
    let outcome = running.await.expect("execute does not panic");
    assert_eq!(outcome.kind, ExitKind::Cancelled);
    assert_group_gone(pgid, "after a cancel").await;
}

#[tokio::test]
async fn a_background_process_does_not_outlive_a_successful_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let argv = ["/bin/sh", "-c", "sleep 1000 & echo pgid=$$"];
    let ran = run(spec(dir.path(), &argv)).await;

    assert!(ran.outcome.succeeded(), "{:?}", ran.outcome.kind);
    assert!(
        ran.outcome.duration < Duration::from_secs(5),
        "the sleeping grandchild's pipes were not waited on"
    );
    let pgid: i32 = ran
        .log
        .lines()
        .find_map(|l| l.strip_prefix("pgid=")?.parse().ok())
        .expect("pgid line");
    assert_group_gone(pgid, "after success").await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .expect("VmRSS line")
}

#[tokio::test]
async fn output_past_the_cap_is_dropped_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let before = rss_kib();
    let ran = run(spec(dir.path(), &[&script("flood.sh")])).await;
    let grown_mib = rss_kib().saturating_sub(before) / 1024;

    assert!(ran.outcome.succeeded(), "{:?}", ran.outcome.kind);
    assert_eq!(
        ran.outcome.dropped_bytes,
        200_000_001 + "flood done\n".len() as u64 - MIB,
        "all output past the cap is counted"
    );
    let size = std::fs::metadata(dir.path().join("logs/run.log"))
        .expect("log")
        .len();
    assert_eq!(size, ran.outcome.log_bytes, "log_bytes is the log's size");
    assert!(
        size > MIB && size < MIB + 200,
        "log is the cap plus a note: {size}"
    );
    assert!(
        ran.log
            .ends_with("\n[execgov] output capped at 1.0 MiB; 189.7 MiB dropped\n"),
        "the note ends the log"
    );
    assert!(
        ran.outcome.tail.ends_with("xxx\nflood done\n"),
        "the tail is the end of the output, past the cap"
    );
    assert!(
        grown_mib < 50,
        "200 MB of output grew this process by {grown_mib} MiB"
    );
}
