//! What a script sees and leaves: only the allowed environment, secrets masked
//! everywhere, progress lines, results and artifacts, and start-up errors.

use super::*;

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
            "runner::env::env_probe_in_a_child_process",
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
