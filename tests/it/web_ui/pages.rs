//! Every page renders for a signed-in person; a run's page shows its result
//! table, files and a clean log (no `::progress` lines), and reloads itself
//! while the run is queued or running, and not once it is final; a real CSV
//! tool's output read with `output = "csv"` is an HTML table there.

use super::*;

both_backends!(
    every_page_renders_for_a_signed_in_person,
    |backend| async move {
        let app = WebApp::start(backend, "").await;
        let alice = person("alice");
        let run = say(&app.engine, &alice, "run echo-args note=from-chat")
            .await
            .run
            .unwrap();
        let run = wait_final(&app.engine, run.id).await;
        let waiting = say(&app.engine, &alice, "run risky marker=/dev/null")
            .await
            .run
            .unwrap();
        let mut c = app.sign_in("alice").await;
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();

        let page = c.get("/runs").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains(&format!("href=\"/runs/{}\"", run.id)),
            "the list links the run"
        );
        assert!(page.body.contains("awaiting approval"), "and shows states");
        let filtered = c
            .get(&format!(
                "/runs?script=echo-args&person=alice&state=succeeded&from={today}&to={today}"
            ))
            .await;
        assert_eq!(filtered.status, 200, "{}", filtered.body);
        assert!(
            filtered.body.contains(&format!("/runs/{}\"", run.id)),
            "the filters keep the run"
        );
        assert!(
            !filtered.body.contains(&format!("/runs/{}\"", waiting.id)),
            "and drop the other script"
        );
        let yesterday = (chrono::Utc::now() - chrono::Duration::days(2))
            .format("%Y-%m-%d")
            .to_string();
        let old = c.get(&format!("/runs?to={yesterday}")).await;
        assert!(
            !old.body.contains(&format!("/runs/{}\"", run.id)),
            "a date range before the run excludes it"
        );
        let older = c.get(&format!("/runs?before={}", waiting.id)).await;
        assert!(
            older.body.contains(&format!("/runs/{}\"", run.id))
                && !older.body.contains(&format!("/runs/{}\"", waiting.id))
        );
        assert_eq!(
            c.get("/runs?state=bogus").await.status,
            400,
            "a bad filter says so"
        );

        let page = c.get(&format!("/runs/{}", run.id)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for want in [
            "note=from-chat",
            "person:alice",
            "slack:CONCALL",
            "Requested",
            "Started",
            "Finished: succeeded",
            "Exit code",
            "arg=[from-chat]",
        ] {
            assert!(page.body.contains(want), "the run page shows {want}");
        }
        let log = c.get(&format!("/runs/{}/log", run.id)).await;
        assert_eq!(log.status, 200);
        assert!(log.body.contains("arg=[from-chat]"));

        let page = c.get("/scripts").await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("echo-args")
                && page.body.contains("risky")
                && page.body.contains("group:leads")
        );
        let page = c.get("/scripts/risky").await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("name=\"marker\"") && page.body.contains("needs approval"),
            "a form from the params"
        );
        assert_eq!(c.get("/scripts/nope").await.status, 404);

        let page = c.get("/audit").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Chain verified"), "{}", page.body);
        assert!(page.body.contains("run.requested"));
        let page = c.get("/account/tokens").await;
        assert_eq!(page.status, 200);
        let page = c.get("/login").await;
        assert!(page.body.contains("signed in as"), "{}", page.body);

        let (status, body) = http_get(app.addr, "/readyz").await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = http_get(app.addr, "/runs").await;
        assert_eq!(status, 303, "pages need sign-in");
    }
);

both_backends!(
    csv_output_of_a_real_tool_is_a_table_on_the_run_page,
    |backend| async move {
        let app = WebApp::start(backend, "").await;
        let m = app.env.path().join("manifests");
        let csvstat = crate::python_init::venv().join("bin/csvstat");
        std::fs::write(
            m.join("csv-stats.toml"),
            format!(
                "name = \"csv-stats\"\ncommand = [{:?}, {:?}, \"--csv\", \"{{file}}\"]\noutput = \"csv\"\n\
                 [[param]]\nname = \"file\"\n[access]\nrun = [\"person:alice\"]\n",
                crate::python_init::python(),
                csvstat.display().to_string()
            ),
        )
        .unwrap();
        let input = app.env.path().join("sales.csv");
        std::fs::write(&input, "region,amount\nnorth,10\nsouth,32\n").unwrap();
        let (catalog, problems) = execgov::manifest::load_catalog(&m, app.engine.config());
        assert!(problems.is_empty(), "{problems:?}");
        app.engine.replace_catalog(catalog);
        let line = format!("run csv-stats file={}", input.display());
        let run = say(&app.engine, &person("alice"), &line).await.run.unwrap();
        let run = wait_final(&app.engine, run.id).await;
        assert_eq!(run.state, RunState::Succeeded, "{run:?}");
        let result = run.result.expect("the printed CSV is the result");
        assert_eq!(result["table"]["rows"][1][1], "amount", "{result:#}");

        let mut c = app.sign_in("alice").await;
        let page = c.get(&format!("/runs/{}", run.id)).await;
        assert!(
            page.body.contains(
                "<thead><tr><th scope=\"col\">column_id</th><th scope=\"col\">column_name</th>"
            ),
            "the columns head an HTML table: {}",
            page.body
        );
        assert!(
            page.body
                .contains("<td>2</td><td>amount</td><td>Number</td>"),
            "each printed row is a table row: {}",
            page.body
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_page_has_a_result_table_files_and_a_clean_log() {
    let env_extra = "";
    let app = WebApp::start(Backend::Sqlite, env_extra).await;
    let m = app.env.path().join("manifests");
    std::fs::write(
        m.join("scripts/report.sh"),
        "printf '\\033[31mred\\033[0m plain\\n'\necho '{\"rows\": 3, \"region\": \"eu\"}' > \"$EXECGOV_RESULT\"\necho data > \"$EXECGOV_OUTPUT_DIR/out.csv\"\n",
    )
    .unwrap();
    std::fs::write(
        m.join("report.toml"),
        "name = \"report\"\ndescription = \"A report\"\ncommand = [\"sh\", \"scripts/report.sh\"]\n[access]\nrun = [\"person:alice\"]\n",
    )
    .unwrap();
    let (catalog, problems) = execgov::manifest::load_catalog(&m, app.engine.config());
    assert!(problems.is_empty(), "{problems:?}");
    app.engine.replace_catalog(catalog);
    let run = say(&app.engine, &person("alice"), "run report")
        .await
        .run
        .unwrap();
    let run = wait_final(&app.engine, run.id).await;
    assert_eq!(run.state, RunState::Succeeded);

    let mut c = app.sign_in("alice").await;
    let page = c.get(&format!("/runs/{}", run.id)).await;
    assert!(
        page.body.contains("<th>rows</th><td>3</td>"),
        "the result as a table: {}",
        page.body
    );
    assert!(
        page.body.contains("red plain") && !page.body.contains('\u{1b}'),
        "ANSI stripped"
    );
    assert!(
        page.body
            .contains(&format!("/runs/{}/artifacts/out.csv", run.id))
    );
    let file = c.get(&format!("/runs/{}/artifacts/out.csv", run.id)).await;
    assert_eq!((file.status, file.body.trim()), (200, "data"));
    assert!(
        file.header("content-disposition")
            .unwrap()
            .contains("attachment")
    );

    // The audit link view renders the same page, its links carrying the token.
    let link = app.engine.audit_link(&run);
    let path = &link[link.find("/runs/").unwrap()..];
    let page = app.client().get(path).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<th>rows</th><td>3</td>"),
        "one rendering for both views"
    );
    assert!(
        page.body
            .contains(&format!("/runs/{}/artifacts/out.csv?t=", run.id)),
        "files open with the token"
    );
    assert!(
        !page.body.contains("Sign out") && !page.body.contains("name=\"csrf\""),
        "read-only, no session"
    );
}

/// A manifest `hold` whose script reports progress, prints a long number and then
/// waits until the file named by its `gate` argument exists.
fn install_hold(app: &WebApp) {
    let m = app.env.path().join("manifests");
    std::fs::write(
        m.join("scripts/hold.sh"),
        "echo '::progress 40 Exporting rows'\necho 'rows 1234567890 exported'\n\
         while [ ! -e \"$1\" ]; do sleep 0.05; done\necho done\n",
    )
    .unwrap();
    std::fs::write(
        m.join("hold.toml"),
        "name = \"hold\"\ndescription = \"Wait for a gate\"\ncommand = [\"sh\", \"scripts/hold.sh\", \"{gate}\"]\n\
         timeout = \"60s\"\n[[param]]\nname = \"gate\"\ntype = \"string\"\nrequired = true\n[access]\nrun = [\"person:alice\"]\n",
    )
    .unwrap();
    let (catalog, problems) = execgov::manifest::load_catalog(&m, app.engine.config());
    assert!(problems.is_empty(), "{problems:?}");
    app.engine.replace_catalog(catalog);
}

/// Waits on the engine's events until run `id` has reported progress.
async fn wait_progress(app: &WebApp, id: RunId) {
    let mut events = app.engine.subscribe();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while app
        .engine
        .store()
        .get_run(id)
        .await
        .unwrap()
        .progress_pct
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} reported no progress"
        );
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), events.recv()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_runs_page_refreshes_itself_and_a_final_one_does_not() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    install_hold(&app);
    let gate = app.env.path().join("gate");
    let run = say(
        &app.engine,
        &person("alice"),
        &format!("run hold gate={}", gate.display()),
    )
    .await
    .run
    .unwrap();
    wait_for(&app.engine, run.id, |s| s == RunState::Running).await;
    wait_progress(&app, run.id).await;
    let refresh = "<meta http-equiv=\"refresh\" content=\"5\">";

    let mut alice = app.sign_in("alice").await;
    let running = alice.get(&format!("/runs/{}", run.id)).await;
    assert!(
        running.body.contains(refresh),
        "a running run's page reloads itself: {}",
        running.body
    );
    assert!(
        running.body.contains("<progress max=\"100\" value=\"40\"")
            && running.body.contains("Exporting rows"),
        "the progress shows as progress: {}",
        running.body
    );
    let link = app.engine.audit_link(&run);
    let by_link = app
        .client()
        .get(&link[link.find("/runs/").unwrap()..])
        .await;
    assert!(by_link.body.contains(refresh), "through the audit link too");

    std::fs::write(&gate, "open").unwrap();
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded);
    let finished = alice.get(&format!("/runs/{}", run.id)).await;
    assert!(
        !finished.body.contains("http-equiv=\"refresh\""),
        "a final run's page stays put: {}",
        finished.body
    );
    assert!(
        !finished.body.contains("<progress"),
        "no progress once final"
    );
    assert!(
        !finished.body.contains("::progress") && finished.body.contains("rows 1234567890 exported"),
        "the log view leaves the progress line out and keeps the rest: {}",
        finished.body
    );
    assert!(
        finished.body.contains("1 progress line is left out here"),
        "{}",
        finished.body
    );
    let plain = alice.get(&format!("/runs/{}/log", run.id)).await;
    assert!(
        plain.body.contains("::progress 40"),
        "the plain-text log stays whole: {}",
        plain.body
    );

    let waiting = say(&app.engine, &person("alice"), "run risky marker=/dev/null")
        .await
        .run
        .unwrap();
    let mut bob = app.sign_in("bob").await;
    let page = bob.get(&format!("/runs/{}", waiting.id)).await;
    assert!(
        !page.body.contains("http-equiv=\"refresh\""),
        "a run awaiting approval does not reload under a deny reason being typed"
    );
}
