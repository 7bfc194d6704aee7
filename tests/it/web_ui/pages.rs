//! Every page renders for a signed-in person, and a run's page shows its
//! result table, files and a clean log.

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
