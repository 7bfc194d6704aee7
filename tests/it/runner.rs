//! The runner keeps scripts in their box: arguments are never shell-parsed, the
//! environment holds only what is allowed, no process of a run's group outlives
//! it (timeout, cancel or success), output is capped in bounded memory, secrets
//! never reach the log, the tail or progress, and results and artifacts come back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use execgov::runner::{ExecOutcome, ExecSpec, ExitKind, Progress, child_env, execute};
use execgov::types::RunId;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1024 * 1024;

fn script(name: &str) -> String {
    format!(
        "{}/tests/fixtures/scripts/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn spec(dir: &Path, argv: &[&str]) -> ExecSpec {
    ExecSpec {
        run_id: RunId(7),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        run_dir: dir.join("run"),
        pass_env: Vec::new(),
        secrets: Vec::new(),
        timeout: Duration::from_secs(30),
        kill_grace: Duration::from_secs(2),
        log_path: dir.join("logs/run.log"),
        log_cap: MIB,
    }
}

/// What one run left: the outcome, the progress updates sent, the log's text.
struct Ran {
    outcome: ExecOutcome,
    progress: Vec<Progress>,
    log: String,
}

async fn run(spec: ExecSpec) -> Ran {
    let log_path = spec.log_path.clone();
    let (tx, mut rx) = mpsc::channel(64);
    let outcome = execute(spec, CancellationToken::new(), tx).await;
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

/// Run in a child process by the test below, with `EXECGOV_TEST_SENTINEL=leak`
/// set (setting it here would need `unsafe`).
#[tokio::test]
#[ignore = "run by child_environment_holds_only_the_allowed_variables"]
async fn env_probe_in_a_child_process() {
    assert_eq!(
        std::env::var("EXECGOV_TEST_SENTINEL").as_deref(),
        Ok("leak"),
        "the sentinel is set in this process"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = spec(dir.path(), &["env"]);
    spec.pass_env = vec![("REPORT_BUCKET".into(), "s3://reports".into())];
    let allowed: BTreeMap<String, String> = child_env(&spec).into_iter().collect();
    let ran = run(spec).await;

    assert!(
        ran.outcome.succeeded(),
        "env ran: {:?}\n{}",
        ran.outcome.kind,
        ran.log
    );
    let seen: BTreeMap<String, String> = ran
        .log
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    assert!(
        !seen.contains_key("EXECGOV_TEST_SENTINEL"),
        "the sentinel leaked into the child"
    );
    assert_eq!(seen, allowed, "the child sees exactly child_env()");
    let names: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "EXECGOV_OUTPUT_DIR",
            "EXECGOV_RESULT",
            "EXECGOV_RUN_ID",
            "HOME",
            "LANG",
            "PATH",
            "REPORT_BUCKET"
        ],
        "only the allowed variables"
    );
    let run_dir = dir.path().join("run");
    assert_eq!(
        seen["HOME"],
        run_dir.to_string_lossy(),
        "HOME is the run folder"
    );
    assert_eq!(seen["EXECGOV_RUN_ID"], "7");
    assert_eq!(
        seen["EXECGOV_OUTPUT_DIR"],
        run_dir.join("output").to_string_lossy()
    );
}

#[test]
fn child_environment_holds_only_the_allowed_variables() {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "runner::env_probe_in_a_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("EXECGOV_TEST_SENTINEL", "leak")
        .output()
        .expect("run the probe");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the probe failed:\n{report}");
    assert!(report.contains("1 passed"), "the probe ran:\n{report}");
}

#[tokio::test]
async fn secrets_are_masked_in_log_tail_and_progress() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = "tok-9f8e7d6c5b4a";
    let mut spec = spec(dir.path(), &[&script("secrets.sh")]);
    spec.pass_env = vec![("SECRET_TOKEN".into(), secret.into())];
    spec.secrets = vec![secret.into(), "abc".into(), String::new()];
    let ran = run(spec).await;

    assert!(
        ran.outcome.succeeded(),
        "{:?}\n{}",
        ran.outcome.kind,
        ran.log
    );
    for (place, text) in [("log", &ran.log), ("tail", &ran.outcome.tail)] {
        assert!(
            !text.contains("tok-9f"),
            "no part of the secret in the {place}:\n{text}"
        );
        assert!(
            text.contains("token is ***\n"),
            "stdout masked in the {place}"
        );
        assert!(
            text.contains("stderr sees *** too\n"),
            "stderr masked in the {place}"
        );
        assert!(
            text.contains("halves: *** end\n"),
            "a secret written in two halves is masked in the {place}"
        );
    }
    assert_eq!(
        ran.progress,
        [Progress {
            percent: Some(50),
            text: "using ***".into()
        }],
        "progress text is masked"
    );
}

#[tokio::test]
async fn progress_lines_arrive_stay_in_the_log_and_leave_the_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ran = run(spec(dir.path(), &[&script("progress.sh")])).await;

    assert!(ran.outcome.succeeded(), "{:?}", ran.outcome.kind);
    let got: Vec<(Option<u8>, &str)> = ran
        .progress
        .iter()
        .map(|p| (p.percent, p.text.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some(10), "Reading input"),
            (Some(50), "Half way"),
            (None, "Writing report")
        ]
    );
    assert!(
        ran.log.contains("::progress 10 Reading input\n"),
        "progress lines are still logged"
    );
    assert!(
        !ran.outcome.tail.contains("::progress ")
            && ran.outcome.tail.contains("::progressive is not progress"),
        "the chat tail shows output, not progress lines: {:?}",
        ran.outcome.tail
    );
}

#[tokio::test]
async fn result_and_artifacts_are_picked_up_with_their_hashes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ran = run(spec(dir.path(), &[&script("results.sh")])).await;

    assert!(
        ran.outcome.succeeded(),
        "{:?}\n{}",
        ran.outcome.kind,
        ran.log
    );
    assert_eq!(
        ran.outcome.result,
        Some(serde_json::json!({"rows": 42, "status": "ok"}))
    );
    let names: Vec<&str> = ran
        .outcome
        .artifacts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["report.txt", "zeros.bin"],
        "regular files only: no symlink, no folder"
    );
    let report = &ran.outcome.artifacts[0];
    assert_eq!(report.size, 15);
    assert_eq!(
        report.sha256,
        hex::encode(Sha256::digest(b"hello artifact\n")),
        "sha256 of report.txt"
    );
    assert_eq!(report.path, dir.path().join("run/output/report.txt"));
    let zeros = &ran.outcome.artifacts[1];
    assert_eq!(
        (zeros.size, zeros.sha256.clone()),
        (100_000, hex::encode(Sha256::digest(vec![0u8; 100_000])))
    );
}

#[tokio::test]
async fn an_invalid_result_is_ignored_with_a_note() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ran = run(spec(dir.path(), &[&script("bad_result.sh")])).await;

    assert_eq!(ran.outcome.kind, ExitKind::Exited(3));
    assert!(!ran.outcome.succeeded());
    assert_eq!(ran.outcome.result, None);
    assert!(
        ran.log
            .contains("[execgov] EXECGOV_RESULT is not valid JSON"),
        "the log says why:\n{}",
        ran.log
    );
}

#[tokio::test]
async fn a_program_that_cannot_start_says_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ran = run(spec(dir.path(), &["pyhton3-execgov-test"])).await;
    let ExitKind::SpawnFailed(why) = &ran.outcome.kind else {
        panic!("a missing program fails to start: {:?}", ran.outcome.kind)
    };
    assert!(
        why.starts_with("program `pyhton3-execgov-test` not found in PATH="),
        "{why}"
    );
    assert!(why.ends_with("; check the manifest's command"), "{why}");
    assert!(
        ran.log.contains(why.as_str()),
        "the reason is in the log too"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let ran = run(spec(dir.path(), &[&script("not_executable.sh")])).await;
    let ExitKind::SpawnFailed(why) = &ran.outcome.kind else {
        panic!(
            "a file without x bit fails to start: {:?}",
            ran.outcome.kind
        )
    };
    assert!(
        why.contains("is not executable") && why.contains("chmod +x"),
        "{why}"
    );
}

#[tokio::test]
async fn a_run_folder_that_exists_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("run")).expect("pre-existing run folder");
    let ran = run(spec(dir.path(), &["true"])).await;
    let ExitKind::SpawnFailed(why) = &ran.outcome.kind else {
        panic!("an existing run folder is refused: {:?}", ran.outcome.kind)
    };
    assert!(why.contains("already exists"), "{why}");
}
