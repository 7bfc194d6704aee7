//! Runners as they are deployed: real `execgov runner` processes talking HTTP
//! to a real `execgov serve` process, on both backends.

use super::served::*;
use super::*;
use std::io::Read;

use std::process::Command;
use std::time::Duration;

fn expected_lines(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

both_backends!(
    runners_get_only_runs_they_have_every_tag_for_and_a_run_for_nobody_waits,
    |backend| async move {
        let s = Served::start(backend, "").await;
        let _db = s.runner("db1", &["db-host"], 2);
        let _eu = s.runner("eu1", &["eu"], 2);
        let mut db_runs = Vec::new();
        let mut eu_runs = Vec::new();
        for _ in 0..4 {
            db_runs.push(s.ask("on-db", "2", "0").await);
            eu_runs.push(s.ask("on-eu", "2", "0").await);
        }
        let gpu = s.ask("on-gpu", "1", "0").await;
        for (ids, runner) in [(&db_runs, "db1"), (&eu_runs, "eu1")] {
            for id in ids.iter() {
                let run = s
                    .wait(*id, Duration::from_secs(60), |st| st.is_final())
                    .await;
                assert_eq!(run.state, RunState::Succeeded, "run {id}: {:?}", run.error);
                assert_eq!(
                    run.worker.as_deref(),
                    Some(runner),
                    "run {id} went to {runner}"
                );
                assert_eq!(s.log(*id).await, expected_lines(2), "run {id}'s log, once");
            }
        }
        let run = s.engine.store().get_run(gpu).await.unwrap();
        assert_eq!(run.state, RunState::Queued, "nobody has the gpu tag");
        let status = execgov::engine::run_summary(&run, &[], false, None);
        assert!(
            status.contains("waiting for a runner with tags gpu"),
            "its status says so: {status}"
        );
    }
);

both_backends!(
    two_runners_sharing_a_tag_run_200_runs_each_exactly_once,
    |backend| async move {
        let s = Served::start(backend, "").await;
        let tally = s.env.path().join("tally.txt");
        let tally_arg = tally.display().to_string();
        let _a = s.runner("pool-a", &["pool"], 4);
        let _b = s.runner("pool-b", &["pool"], 4);
        let n = 200;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(s.ask("tally", &tally_arg, "0").await);
        }
        let mut workers = std::collections::BTreeSet::new();
        for id in &ids {
            let run = s
                .wait(*id, Duration::from_secs(180), |st| st.is_final())
                .await;
            assert_eq!(run.state, RunState::Succeeded, "run {id}: {:?}", run.error);
            workers.insert(run.worker.unwrap_or_default());
        }
        let text = std::fs::read_to_string(&tally).unwrap();
        let mut seen: Vec<i64> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
        assert_eq!(
            seen.len(),
            n,
            "{} runs of the script for {n} runs",
            seen.len()
        );
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n, "no run ran twice");
        assert_eq!(
            workers.into_iter().collect::<Vec<_>>(),
            ["pool-a", "pool-b"],
            "both runners took work"
        );
    }
);

/// Whether any process's command line holds `needle` (a run's unique argument).
fn process_with_arg(needle: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let mut cmdline = Vec::new();
        std::fs::File::open(e.path().join("cmdline"))
            .and_then(|mut f| f.read_to_end(&mut cmdline))
            .is_ok()
            && cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == needle.as_bytes())
    })
}

both_backends!(
    kill_9_of_a_runner_interrupts_its_run_within_the_lease_and_the_script_dies_with_it,
    |backend| async move {
        let s = Served::start(backend, "lease = \"3s\"").await;
        let mut db = s.runner("db1", &["db-host"], 1);
        // 600 lines, one every 0.1 s: a minute, unless stopped. The count is unique.
        let id = s.ask("on-db", "601", "0.1").await;
        s.wait(id, Duration::from_secs(30), |st| st == RunState::Running)
            .await;
        // Until its first line is on the server, the script has surely started.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !s.log(id).await.contains("line 1\n") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log streams while the run runs"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(process_with_arg("601"), "the script runs");
        db.kill9();
        // lease (3 s) + 5 s.
        let run = s.wait(id, Duration::from_secs(8), |st| st.is_final()).await;
        assert_eq!(run.state, RunState::Interrupted, "{:?}", run.error);
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains("may have run partly"),
            "the thread is told it had started: {error}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while process_with_arg("601") {
            assert!(
                std::time::Instant::now() < deadline,
                "the script died with its runner"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // It never runs again: a new runner with the same tag takes nothing.
        let _db2 = s.runner("db2", &["db-host"], 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let run = s.engine.store().get_run(id).await.unwrap();
        assert_eq!(run.state, RunState::Interrupted);
        assert_eq!(run.worker.as_deref(), Some("db1"));
    }
);

both_backends!(
    a_server_away_for_10s_mid_run_gets_the_whole_log_once_after,
    |backend| async move {
        let mut s = Served::start(backend, "").await;
        let _db = s.runner("db1", &["db-host"], 1);
        // 80 lines over ~16 s.
        let id = s.ask("on-db", "80", "0.2").await;
        s.wait(id, Duration::from_secs(30), |st| st == RunState::Running)
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !s.log(id).await.contains("line 3\n") {
            assert!(tokio::time::Instant::now() < deadline, "the log streams");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.serve.kill9();
        tokio::time::sleep(Duration::from_secs(10)).await;
        s.serve = Proc(Some(spawn_serve(&s.env)));
        wait_listening(s.port).await;
        let run = s
            .wait(id, Duration::from_secs(60), |st| st.is_final())
            .await;
        assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
        assert_eq!(
            s.log(id).await,
            expected_lines(80),
            "every line, once, in order"
        );
        assert_eq!(run.log_bytes as usize, expected_lines(80).len());
    }
);

both_backends!(
    a_revoked_runner_is_refused_and_its_run_interrupted,
    |backend| async move {
        let s = Served::start(backend, "").await;
        let mut db = s.runner("db1", &["db-host"], 1);
        let id = s.ask("on-db", "602", "0.1").await;
        s.wait(id, Duration::from_secs(30), |st| st == RunState::Running)
            .await;
        let out = Command::new(env!("CARGO_BIN_EXE_execgov"))
            .args(["--config", s.env.config_path().to_str().unwrap()])
            .args(["runners", "revoke", "db1"])
            .env_remove("EXECGOV_DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = s.wait(id, Duration::from_secs(5), |st| st.is_final()).await;
        assert_eq!(run.state, RunState::Interrupted);
        assert!(run.error.unwrap_or_default().contains("revoked"));
        let status = db
            .wait_exit(Duration::from_secs(40))
            .expect("the runner stops once refused");
        assert!(!status.success(), "a refused runner exits with an error");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while process_with_arg("602") {
            assert!(
                std::time::Instant::now() < deadline,
                "the revoked runner's script is stopped"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let actions = actions(&s.engine, id).await;
        assert!(
            actions.iter().any(|a| a == "run.interrupted"),
            "{actions:?}"
        );
    }
);

both_backends!(
    a_script_file_that_differs_on_the_runner_is_refused_and_audited,
    |backend| async move {
        let s = Served::start(backend, "").await;
        // The runner's copy of the scripts differs from the approved one.
        let theirs = s.env.path().join("runner-scripts");
        std::fs::create_dir_all(theirs.join("scripts")).unwrap();
        std::fs::write(theirs.join("scripts/lines.sh"), "echo tampered\n").unwrap();
        let token = s.enrol("db1", &["db-host"]);
        let _db = Proc(Some(
            Command::new(env!("CARGO_BIN_EXE_execgov"))
                .args(["runner", "--server", &s.url()])
                .args(["--token-file", token.to_str().unwrap(), "--tags", "db-host"])
                .args(["--scripts", theirs.to_str().unwrap()])
                .args(["--data", s.runner_dir("db1").to_str().unwrap()])
                .env("EXECGOV_LOG", "warn")
                .spawn()
                .unwrap(),
        ));
        let id = s.ask("on-db", "1", "0").await;
        let run = s
            .wait(id, Duration::from_secs(30), |st| st.is_final())
            .await;
        assert_eq!(run.state, RunState::Failed);
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains("differs from the approved one") && error.contains("lines.sh"),
            "the file is named: {error}"
        );
        assert!(!s.log(id).await.contains("tampered"), "nothing ran");
        let actions = actions(&s.engine, id).await;
        assert!(
            actions.iter().any(|a| a == "run.refused_by_runner"),
            "{actions:?}"
        );
    }
);

both_backends!(
    a_cancel_reaches_a_remote_runner_and_secrets_never_leave_it,
    |backend| async move {
        let s = Served::start(backend, "").await;
        let m = s.env.path().join("manifests");
        let r = say(&s.engine, &person("alice"), "run secret").await;
        let id = r.run.unwrap_or_else(|| panic!("{}", r.text)).id;
        let value = "s3cr3t-value-on-the-runner";
        let secret_file = s.env.path().join("api-token");
        std::fs::write(&secret_file, format!("{value}\n")).unwrap();
        let token = s.enrol("db1", &["db-host"]);
        let _db = Proc(Some(
            Command::new(env!("CARGO_BIN_EXE_execgov"))
                .args(["runner", "--server", &s.url()])
                .args(["--token-file", token.to_str().unwrap(), "--tags", "db-host"])
                .args(["--scripts", m.to_str().unwrap()])
                .args(["--data", s.runner_dir("db1").to_str().unwrap()])
                .args([
                    "--secret",
                    &format!("API_TOKEN=file:{}", secret_file.display()),
                ])
                .env("EXECGOV_LOG", "warn")
                .spawn()
                .unwrap(),
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !s.log(id).await.contains("token is") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the run starts and prints"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reply = say(&s.engine, &person("alice"), &format!("cancel {id}")).await;
        assert!(reply.text.contains("cancelling"), "{}", reply.text);
        let run = s
            .wait(id, Duration::from_secs(10), |st| st.is_final())
            .await;
        assert_eq!(run.state, RunState::Cancelled, "{:?}", run.error);
        let log = s.log(id).await;
        assert!(log.contains("token is ***"), "masked on the runner: {log}");
        assert!(!log.contains(value));
        assert!(!run.output_tail.unwrap_or_default().contains(value));
        for entry in s
            .engine
            .store()
            .audit_entries(Some(id), 0, 1000)
            .await
            .unwrap()
        {
            assert!(
                !entry.details.to_string().contains(value),
                "the server never sees it"
            );
        }
    }
);

both_backends!(
    a_line_printed_on_a_runner_process_shows_on_the_run_page,
    |backend| async move {
        let app = app_with_runners(backend).await;
        let token = enrolment(&app, "db1", &["db-host"]).await;
        let file = app.env.path().join("db1.token");
        std::fs::write(&file, token).unwrap();
        let _db = Proc(Some(
            Command::new(env!("CARGO_BIN_EXE_execgov"))
                .args(["runner", "--server", &format!("http://{}", app.addr)])
                .args(["--token-file", file.to_str().unwrap(), "--tags", "db-host"])
                .args([
                    "--scripts",
                    app.env.path().join("manifests").to_str().unwrap(),
                ])
                .args([
                    "--data",
                    app.env.path().join("runner-db1").to_str().unwrap(),
                ])
                .env("EXECGOV_LOG", "warn")
                .spawn()
                .unwrap(),
        ));
        let id = ask(&app, "on-db", "printed-on-the-runner-42").await;
        let run = wait_for(&app.engine, id, |s| s.is_final()).await;
        assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
        assert_eq!(run.worker.as_deref(), Some("db1"));
        let mut alice = app.sign_in("alice").await;
        let page = alice.get(&format!("/runs/{id}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("printed-on-the-runner-42"),
            "the runner's log is on the server's run page"
        );
    }
);
