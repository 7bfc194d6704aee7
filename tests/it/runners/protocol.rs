//! The service's side of the runner protocol, spoken by hand over real HTTP:
//! enrolment trades a one-time token for a credential; forged, used, expired
//! and revoked credentials get 401 (audited) and nothing is claimed; a runner
//! gets only runs it has every tag for; a log is stored once and in order, and
//! capped; a runner can report only on runs it holds; malformed bodies are
//! refused with a clear error, and the run's record stays intact.

use super::*;

both_backends!(
    enrolment_trades_a_one_time_token_for_a_credential,
    |backend| async move {
        let clock = ManualClock::new(T0);
        let app = WebApp::with_runners(backend, clock.clone()).await;
        let mut c = app.client();
        let token = enrolment(&app, "db1", &["db-host"]).await;

        let r = c
            .post_json_plain("/runner/v1/enrol", enrol_body(&token))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let credential = r.json()["credential"].as_str().unwrap().to_string();
        assert!(credential.starts_with("egrc_"), "{credential}");
        assert_eq!(r.json()["tags"], json!(["db-host"]));

        let again = c
            .post_json_plain("/runner/v1/enrol", enrol_body(&token))
            .await;
        assert_eq!(again.status, 401, "a token is used once: {}", again.body);

        let late = enrolment(&app, "db2", &[]).await;
        clock.advance(60 * MINUTE + 1);
        let r = c
            .post_json_plain("/runner/v1/enrol", enrol_body(&late))
            .await;
        assert_eq!(r.status, 401, "a token lasts one hour: {}", r.body);

        let actions = audit_actions(&app).await;
        for want in [
            "runner.enrolment_issued",
            "runner.enrolled",
            "runner.refused",
        ] {
            assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
        }
        let hashes = app
            .engine
            .store()
            .scalar_raw(&format!(
                "SELECT COUNT(*) FROM runners WHERE credential_hash = '{}'",
                execgov::links::token_hash(&credential)
            ))
            .await
            .unwrap();
        assert_eq!(hashes, Some(1), "the server keeps the credential's hash");
        let raw = app
            .engine
            .store()
            .scalar_raw(&format!(
                "SELECT COUNT(*) FROM runners WHERE credential_hash = '{credential}'"
            ))
            .await
            .unwrap();
        assert_eq!(raw, Some(0), "and never the credential itself");
    }
);

both_backends!(
    forged_and_revoked_credentials_are_refused_and_nothing_is_claimed,
    |backend| async move {
        let app = app_with_runners(backend).await;
        let db1 = runner(&app, "db1", &["db-host"]).await;
        let queued = ask(&app, "on-db", "one").await;

        let mut c = app.client();
        let forged = format!("egrc_{}", "0".repeat(64));
        let r = c
            .post_json("/runner/v1/poll", &forged, poll_body(4, &[]))
            .await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains("enrol"),
            "says what to do"
        );
        let r = c
            .send(
                "POST",
                "/runner/v1/poll",
                &[("Content-Type", "application/json")],
                Some("{}".into()),
            )
            .await;
        assert_eq!(r.status, 401, "no credential at all");
        assert_eq!(
            app.engine.store().get_run(queued).await.unwrap().state,
            RunState::Queued,
            "a refused call claims nothing"
        );

        // db1 takes the run, then is revoked while it runs.
        let jobs = poll(&mut c, &db1, 1, &[]).await;
        assert_eq!(jobs.len(), 1);
        let revoked = execgov::runners::revoke_runner(&app.engine, "db1", "person:dave")
            .await
            .unwrap();
        assert_eq!(revoked.len(), 1, "its running run is interrupted");
        let run = app.engine.store().get_run(queued).await.unwrap();
        assert_eq!(run.state, RunState::Interrupted);
        assert!(
            run.error.as_deref().unwrap().contains("revoked"),
            "{:?}",
            run.error
        );
        let r = c
            .post_json("/runner/v1/poll", &db1, poll_body(1, &[]))
            .await;
        assert_eq!(r.status, 401, "a revoked runner is refused: {}", r.body);
        let actions = audit_actions(&app).await;
        let refused = actions.iter().filter(|a| *a == "runner.refused").count();
        assert!(refused >= 3, "each refusal is audited: {actions:?}");
        assert!(actions.iter().any(|a| a == "runner.revoked"));
    }
);

both_backends!(
    a_runner_gets_only_runs_it_has_every_tag_for,
    |backend| async move {
        let app = app_with_runners(backend).await;
        let eu = runner(&app, "eu1", &["eu"]).await;
        let db = runner(&app, "db1", &["db-host", "eu"]).await;
        let id = ask(&app, "on-db", "x").await;
        let mut c = app.client();
        assert!(
            poll(&mut c, &eu, 4, &[]).await.is_empty(),
            "eu1 lacks db-host"
        );
        let run = app.engine.store().get_run(id).await.unwrap();
        assert_eq!(run.state, RunState::Queued);
        let status = execgov::engine::run_summary(&run, &[], false, None);
        assert!(
            status.contains("waiting for a runner with tags db-host"),
            "its status says what it waits for: {status}"
        );
        let jobs = poll(&mut c, &db, 4, &[]).await;
        assert_eq!(jobs.len(), 1, "db1 has every tag");
        assert_eq!(jobs[0]["run"], id.0);
        assert_eq!(jobs[0]["files"][0]["path"], "scripts/echo_args.sh");
        let r = c
            .post_json(
                "/runner/v1/poll",
                &db,
                json!({ "free_slots": 1, "holding": [], "tags": ["other"], "wait_ms": 0 }),
            )
            .await;
        assert_eq!(r.status, 403, "tags it was not enrolled with: {}", r.body);
        assert!(r.body.contains("--tags"), "{}", r.body);
    }
);

both_backends!(
    a_log_is_stored_once_in_order_and_the_finish_waits_for_it,
    |backend| async move {
        let app = app_with_runners(backend).await;
        let db = runner(&app, "db1", &["db-host"]).await;
        let id = ask(&app, "on-db", "x").await;
        let mut c = app.client();
        assert_eq!(poll(&mut c, &db, 1, &[]).await.len(), 1);
        let log = |at: u64| format!("/runner/v1/runs/{id}/log?at={at}");

        let r = send_log(&mut c, &db, &log(0), b"hello ").await;
        assert_eq!((r.status, r.json()["stored"].as_u64()), (200, Some(6)));
        let r = send_log(&mut c, &db, &log(0), b"hello ").await;
        assert_eq!(r.json()["stored"], 6, "a re-sent chunk is stored once");
        let r = send_log(&mut c, &db, &log(10), b"later").await;
        assert_eq!(r.status, 409, "a gap is refused: {}", r.body);
        assert_eq!(r.json()["expected_at"], 6, "and says where the log goes on");
        let r = send_log(&mut c, &db, &log(3), b"lo world\n").await;
        assert_eq!(r.json()["stored"], 12, "an overlap keeps only the new part");

        let mut finish = finish_body(0, 20);
        let r = c
            .post_json(&format!("/runner/v1/runs/{id}/finish"), &db, finish.clone())
            .await;
        assert_eq!(
            r.status, 409,
            "the finish waits for the whole log: {}",
            r.body
        );
        assert_eq!(r.json()["expected_at"], 12);
        finish["log_bytes"] = json!(12);
        let r = c
            .post_json(&format!("/runner/v1/runs/{id}/finish"), &db, finish.clone())
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let again = c
            .post_json(&format!("/runner/v1/runs/{id}/finish"), &db, finish)
            .await;
        assert_eq!(again.status, 200, "a repeated finish is answered the same");

        let run = app.engine.store().get_run(id).await.unwrap();
        assert_eq!(run.state, RunState::Succeeded);
        let stored = app.engine.store().log_bytes(id, 0, u64::MAX).await.unwrap();
        assert_eq!(stored, b"hello world\n", "the log as the runner wrote it");
        let finished = audit_actions(&app)
            .await
            .into_iter()
            .filter(|a| a == "run.succeeded")
            .count();
        assert_eq!(finished, 1, "one finish in the audit log");
    }
);

both_backends!(
    oversized_foreign_and_malformed_reports_are_refused_and_change_nothing,
    |backend| async move {
        let env = TestEnv::new(backend).await;
        let config = std::fs::read_to_string(env.config_path()).unwrap();
        std::fs::write(
            env.config_path(),
            config.replacen("[runner]\n", "[runner]\nlog_cap = \"64KiB\"\n", 1),
        )
        .unwrap();
        std::fs::write(env.path().join("manifests/on-db.toml"), ON_DB).unwrap();
        let app = WebApp::start_in(env, "", Arc::new(execgov::clock::SystemClock)).await;
        let db = runner(&app, "db1", &["db-host"]).await;
        let other = runner(&app, "db2", &["db-host"]).await;
        let id = ask(&app, "on-db", "x").await;
        let mut c = app.client();
        assert_eq!(poll(&mut c, &db, 1, &[]).await.len(), 1);
        let log = format!("/runner/v1/runs/{id}/log?at=0");

        let r = send_log(&mut c, &other, &log, b"not yours").await;
        assert_eq!(
            r.status, 404,
            "another runner's run looks missing: {}",
            r.body
        );
        let r = c
            .post_json(
                &format!("/runner/v1/runs/{id}/finish"),
                &other,
                finish_body(0, 0),
            )
            .await;
        assert_eq!(r.status, 404, "{}", r.body);

        let big = vec![b'x'; 2 << 20];
        let r = send_log(&mut c, &db, &log, &big).await;
        assert_eq!(r.status, 413, "a chunk over 1 MiB is refused");
        let mut at = 0;
        let chunk = vec![b'y'; 60 * 1024];
        let mut last = 0;
        for _ in 0..4 {
            let r = send_log(
                &mut c,
                &db,
                &format!("/runner/v1/runs/{id}/log?at={at}"),
                &chunk,
            )
            .await;
            last = r.status;
            if r.status != 200 {
                assert!(r.body.contains("cap"), "{}", r.body);
                break;
            }
            at += chunk.len();
        }
        assert_eq!(last, 413, "a log past its cap is refused");

        let r = c
            .send(
                "POST",
                &format!("/runner/v1/runs/{id}/finish"),
                &[
                    ("Authorization", &format!("Bearer {db}")),
                    ("Content-Type", "application/json"),
                ],
                Some("{\"kind\": \"exploded\"}".into()),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("docs/runners.md")
        );
        let run = app.engine.store().get_run(id).await.unwrap();
        assert_eq!(run.state, RunState::Running, "the run's record is intact");
        assert_eq!(run.worker.as_deref(), Some("db1"));
        assert!(matches!(
            app.engine.store().verify_chain().await.unwrap(),
            execgov::store::ChainCheck::Ok { .. }
        ));
    }
);
