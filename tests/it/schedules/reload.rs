//! Schedules as operators see them: the CLI, and manifests reloaded without a
//! restart (on request, on SIGHUP, on folder changes).

use super::*;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_schedules_checks_them_and_requests_a_reload() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let dir = env.path().join("manifests");
    let berlin = echo_manifest(
        "nightly",
        &[("night", "30 2 * * *", "timezone = \"Europe/Berlin\"")],
    );
    std::fs::write(dir.join("nightly.toml"), berlin).unwrap();

    let o = execgov(&env.config_path(), &["schedules"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("nightly/night") && out.contains("Europe/Berlin"),
        "{out}"
    );
    let fires: Vec<&str> = out.lines().filter(|l| l.contains("02:30:00 CE")).collect();
    assert_eq!(fires.len(), 3, "next three fires in Berlin time: {out}");
    assert!(
        fires.iter().all(|l| l.contains(":30:00 UTC)")),
        "each also in UTC: {out}"
    );

    let o = execgov(&env.config_path(), &["reload"]);
    assert!(o.status.success(), "{}", text(&o));
    let engine = env.engine().await;
    assert_eq!(
        engine.store().reload_generation().await.unwrap(),
        1,
        "the request is in the store for servers to see"
    );

    std::fs::write(
        dir.join("bad.toml"),
        echo_manifest(
            "bad",
            &[
                ("a", "0 66 * * *", ""),
                ("b", "0 6 * * *", "timezone = \"Mars/Olympus\""),
                ("c", "0 6 * * *", "args = { nope = 1 }"),
            ],
        ),
    )
    .unwrap();
    let o = execgov(&env.config_path(), &["check"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "check fails: {out}");
    for fragment in [
        "bad cron expression `0 66 * * *`: hour field `66`",
        "unknown timezone `Mars/Olympus`",
        "nope",
    ] {
        assert!(out.contains(fragment), "check names `{fragment}`: {out}");
    }
}

both_backends!(
    manifests_reload_on_request_on_sighup_and_on_folder_changes,
    |b| async move {
        let env = TestEnv::new(b).await;
        let engine = env.engine().await;
        // Our own handler first, so a SIGHUP never takes the default action (exit).
        let mut hup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(execgov::scheduler::reload_until_stopped(
            engine.clone(),
            stop.clone(),
        ));
        let digest = || engine.manifest("echo-args").unwrap().digest;
        let script = env.path().join("manifests/scripts/echo_args.sh");

        // First a new manifest: seen by the folder poll (and proof that the loop runs).
        let late = echo_manifest("late", &[("soon", "* * * * *", "")]);
        std::fs::write(env.path().join("manifests/late.toml"), late).unwrap();
        wait_until("the folder change", || {
            engine
                .manifest("late")
                .is_some_and(|m| m.schedules.len() == 1)
        })
        .await;

        // A script is outside the watched folder; its digest changes only on a reload.
        let before = digest();
        std::fs::write(&script, "echo changed once\n").unwrap();
        engine.store().request_reload("test", 0).await.unwrap();
        wait_until("execgov reload", || digest() != before).await;

        let before = digest();
        std::fs::write(&script, "echo changed twice\n").unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGHUP).unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), hup.recv()).await;
        wait_until("SIGHUP", || digest() != before).await;

        // A manifest broken mid-edit keeps its loaded version and its schedules.
        std::fs::write(
            env.path().join("manifests/late.toml"),
            "name = \"late\"\ncommand = [",
        )
        .unwrap();
        let loaded = execgov::scheduler::reload_manifests(&engine);
        assert_eq!(loaded.kept, ["late"], "kept: {loaded:?}");
        assert!(engine.manifest("late").is_some(), "still scheduled");
        stop.cancel();
    }
);

/// Polls `done` (a reload lands within the 2 s poll) for up to 20 s.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload after {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
