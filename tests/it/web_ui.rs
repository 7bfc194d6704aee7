//! The web UI: every page renders for a signed-in person; sign-in links from chat
//! work once, only for configured people, and are never stored raw; a person sees
//! only the runs `Engine::may_view` allows (others look exactly like missing runs);
//! forms without the session's CSRF token are refused; runs started and approved
//! from the web go through the engine's rules; dev login is loopback-only; and
//! `/metrics` is Prometheus text whose counters move when runs happen.

use crate::both_backends;
use crate::helpers::*;
use crate::web_support::*;
use execgov::engine::ReplyKind;
use execgov::types::{RunId, RunState};
use std::collections::BTreeMap;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_links_work_once_for_configured_people_and_are_stored_hashed() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    let link = app.login_link("alice").await;
    let mut c = app.client();
    c.follow_sign_in_link(&link).await;
    assert_eq!(c.get("/runs").await.status, 200, "signed in");
    let session = c.cookies["execgov_session"].clone();

    let mut again = app.client();
    let path = &link[link.find("/login/").unwrap()..];
    let page = again.get(path).await;
    assert_eq!(page.status, 403, "a used link does not open: {}", page.body);
    let token = path.trim_start_matches("/login/");
    let form = again.input_or_fresh_form_token().await;
    let r = again
        .post_form("/login", &[("csrf", &form), ("token", token)])
        .await;
    assert_eq!(r.status, 403, "nor sign in again");

    // Only configured people: an unknown Slack account, or `--as`, get no link.
    let unknown = execgov::types::Actor::Unknown {
        via: execgov::types::PlatformUser {
            platform: execgov::types::Platform::Slack,
            id: "UNOBODY".into(),
        },
    };
    let reply = execgov::web::login::issue_login_link(&app.engine, &unknown)
        .await
        .unwrap();
    assert_eq!(reply.kind, ReplyKind::Error, "{}", reply.text);
    let mut as_bob = person("bob");
    if let execgov::types::Actor::Person {
        impersonated_by, ..
    } = &mut as_bob
    {
        *impersonated_by = Some("root".into());
    }
    let reply = execgov::web::login::issue_login_link(&app.engine, &as_bob)
        .await
        .unwrap();
    assert_eq!(
        reply.kind,
        ReplyKind::Error,
        "no link through impersonation: {}",
        reply.text
    );

    // An expired link.
    let raw = "expired-link-token";
    let now = app.engine.now();
    let hash = execgov::web::auth::token_hash(raw);
    app.engine
        .store()
        .create_login_token(&hash, "alice", now - 20 * 60_000, now - 1)
        .await
        .unwrap();
    assert_eq!(
        app.client().get(&format!("/login/{raw}")).await.status,
        403,
        "an expired link"
    );

    // Signing out ends the session.
    let csrf = c.csrf().await;
    assert_eq!(c.post_form("/logout", &[("csrf", &csrf)]).await.status, 303);
    let mut stale = app.client();
    stale
        .cookies
        .insert("execgov_session".into(), session.clone());
    assert_eq!(
        stale.get("/runs").await.status,
        303,
        "the old cookie no longer works"
    );

    // Nothing raw in the database: no login token, session or API token.
    let api = {
        let mut c = app.sign_in("alice").await;
        let csrf = c.csrf().await;
        c.post_form("/account/tokens", &[("csrf", &csrf), ("name", "ci")])
            .await
            .body
    };
    let api_token = api
        .split("id=\"new-token\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let dump = table_dump(&app, &["web_login_tokens", "web_sessions", "api_tokens"]).await;
    let link_token = link.rsplit('/').next().unwrap();
    for (what, raw) in [
        ("login link", link_token),
        ("session", session.as_str()),
        ("API token", api_token.as_str()),
    ] {
        assert!(!dump.contains(raw), "the {what} token is not stored raw");
    }
    assert!(
        dump.contains(&execgov::web::auth::token_hash(link_token)),
        "its hash is"
    );
    let audit = actions_all(&app).await;
    assert!(
        audit.contains(&"web.login_link".to_string())
            && audit.contains(&"web.signed_in".to_string()),
        "{audit:?}"
    );
}

/// Every column of `tables`, as one string.
async fn table_dump(app: &WebApp, tables: &[&str]) -> String {
    let url = app.env.database_url.clone();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut out = String::new();
    for t in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {t}")))
            .fetch_all(&pool)
            .await
            .unwrap();
        use sqlx::{Column, Row};
        for r in rows {
            for (i, col) in r.columns().iter().enumerate() {
                let v: Option<String> = r.try_get(i).ok().flatten();
                let n: Option<i64> = r.try_get(i).ok().flatten();
                out.push_str(&format!("{}={:?}/{:?} ", col.name(), v, n));
            }
            out.push('\n');
        }
    }
    out
}

async fn actions_all(app: &WebApp) -> Vec<String> {
    app.engine
        .store()
        .audit_entries(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

impl Client {
    /// A pre-sign-in form token (from `/login`), for posting a sign-in by hand.
    pub async fn input_or_fresh_form_token(&mut self) -> String {
        self.get("/login").await;
        self.cookies
            .get("execgov_form")
            .cloned()
            .expect("the login page sets the form cookie")
    }
}

both_backends!(
    people_see_only_runs_they_may_and_nothing_of_the_rest,
    |backend| async move {
        let app = WebApp::start(backend, "").await;
        let mine = say(&app.engine, &person("alice"), "run echo-args note=private")
            .await
            .run
            .unwrap();
        let risky = say(&app.engine, &person("alice"), "run risky marker=/dev/null")
            .await
            .run
            .unwrap();
        wait_final(&app.engine, mine.id).await;

        // bob may approve `risky` (group leads) but has no business with alice's echo-args run.
        let mut bob = app.sign_in("bob").await;
        let hidden = bob.get(&format!("/runs/{}", mine.id)).await;
        let missing = bob.get("/runs/999999").await;
        assert_eq!((hidden.status, missing.status), (404, 404));
        assert_eq!(
            hidden.body.replace(&mine.id.to_string(), "N"),
            missing.body.replace("999999", "N"),
            "a run you may not see looks exactly like one that does not exist"
        );
        assert_eq!(bob.get(&format!("/runs/{}/log", mine.id)).await.status, 404);
        let list = bob.get("/runs").await;
        assert!(
            !list.body.contains(&format!("/runs/{}\"", mine.id)),
            "not in the list either"
        );
        assert!(
            list.body.contains(&format!("/runs/{}\"", risky.id)),
            "but the run bob may approve is"
        );
        let bob_page = bob.get(&format!("/runs/{}", risky.id)).await;
        assert!(
            bob_page.body.contains("id=\"approve\""),
            "bob gets the approve button"
        );
        let audit = bob.get("/audit").await;
        assert!(
            !audit.body.contains(&format!("href=\"/runs/{}\"", mine.id)),
            "nor its audit entries"
        );

        // alice requested `risky`: she sees it but may not approve it.
        let mut alice = app.sign_in("alice").await;
        let page = alice.get(&format!("/runs/{}", risky.id)).await;
        assert_eq!(page.status, 200);
        assert!(
            !page.body.contains("id=\"approve\""),
            "no approve button for the requester"
        );

        // dave is an admin: everything.
        let mut dave = app.sign_in("dave").await;
        assert_eq!(
            dave.get(&format!("/runs/{}", mine.id)).await.status,
            200,
            "admins see every run"
        );
        assert!(
            dave.get("/runs")
                .await
                .body
                .contains(&format!("/runs/{}\"", mine.id))
        );

        // A signed-in person with a bad token gets no more than without one.
        let bad = bob.get(&format!("/runs/{}?t=1.abcd", mine.id)).await;
        assert_eq!(bad.status, 404, "{}", bad.body);
        // A good link opens its run for anyone, and nothing else.
        let link = app
            .engine
            .audit_link(&app.engine.store().get_run(mine.id).await.unwrap());
        let token = link.split("t=").nth(1).unwrap();
        assert_eq!(
            app.client()
                .get(&format!("/runs/{}?t={token}", mine.id))
                .await
                .status,
            200
        );
        assert_eq!(
            app.client()
                .get(&format!("/runs/{}?t={token}", risky.id))
                .await
                .status,
            403,
            "other run"
        );
        assert_eq!(
            app.client().get("/runs").await.status,
            303,
            "a token is no sign-in"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    let risky = say(&app.engine, &person("alice"), "run risky marker=/dev/null")
        .await
        .run
        .unwrap();
    let mut alice = app.sign_in("alice").await;
    let mut bob = app.sign_in("bob").await;
    let bobs = bob.csrf().await;
    let alices = alice.csrf().await;
    assert_ne!(alices, bobs, "each session has its own token");

    let posts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/scripts/echo-args/run", vec![("note", "x")]),
        ("/account/tokens", vec![("name", "x")]),
        ("/logout", vec![]),
    ];
    for (path, fields) in &posts {
        let r = alice.post_form(path, fields).await;
        assert_eq!(r.status, 403, "{path} without a CSRF token: {}", r.body);
        let mut with_other = fields.clone();
        with_other.push(("csrf", bobs.as_str()));
        let r = alice.post_form(path, &with_other).await;
        assert_eq!(r.status, 403, "{path} with another session's token");
    }
    let decide = format!("/runs/{}/decision", risky.id);
    let r = bob.post_form(&decide, &[("decision", "approve")]).await;
    assert_eq!(r.status, 403, "a decision without a CSRF token");
    let r = bob
        .post_form(&decide, &[("decision", "approve"), ("csrf", "0000")])
        .await;
    assert_eq!(r.status, 403, "or a wrong one");
    let r = bob
        .post_form(&format!("/runs/{}/cancel", risky.id), &[])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        app.engine.store().get_run(risky.id).await.unwrap().state,
        RunState::AwaitingApproval,
        "nothing happened"
    );
    let runs = app
        .engine
        .store()
        .list_runs(&execgov::store::RunFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "no run was started");
    assert!(
        app.engine
            .store()
            .api_tokens("alice")
            .await
            .unwrap()
            .is_empty(),
        "no token was created"
    );

    // Sign-in forms use a double-submit cookie instead.
    let link = app.login_link("carol").await;
    let mut carol = app.client();
    let page = carol.get(&link[link.find("/login/").unwrap()..]).await;
    let token = page.input("token").unwrap();
    carol.cookies.remove("execgov_form");
    let r = carol
        .post_form(
            "/login",
            &[("token", &token), ("csrf", &page.input("csrf").unwrap())],
        )
        .await;
    assert_eq!(
        r.status, 403,
        "a sign-in POST without its form cookie (cross-site) is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_started_and_approved_from_the_web_under_the_engines_rules() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    let marker = app.env.path().join("marker");
    let mut alice = app.sign_in("alice").await;
    let csrf = alice.csrf().await;

    let bad = alice
        .post_form("/scripts/risky/run", &[("csrf", &csrf), ("marker", "")])
        .await;
    assert_eq!(
        bad.status, 400,
        "a missing required parameter re-shows the form"
    );
    assert!(
        bad.body.contains("missing required parameter `marker`"),
        "{}",
        bad.body
    );

    let r = alice
        .post_form(
            "/scripts/risky/run",
            &[("csrf", &csrf), ("marker", marker.to_str().unwrap())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap().to_string();
    let id = RunId::parse(to.trim_start_matches("/runs/")).unwrap();
    let page = alice.get(&to).await;
    assert!(
        page.body.contains("awaits approval"),
        "the engine's answer is shown: {}",
        page.body
    );
    let run = app.engine.store().get_run(id).await.unwrap();
    assert_eq!(run.state, RunState::AwaitingApproval);
    assert_eq!(run.place["platform"], "web", "asked from the web");
    assert_eq!(run.requester, "person:alice");

    // alice may not approve her own run, even by posting the form by hand.
    let r = alice
        .post_form(
            &format!("/runs/{id}/decision"),
            &[("csrf", &csrf), ("decision", "approve")],
        )
        .await;
    assert_eq!(r.status, 303);
    let page = alice.get(&format!("/runs/{id}")).await;
    assert!(
        page.body.contains("may not approve"),
        "the engine refused: {}",
        page.body
    );
    // carol (sre) may not approve at all.
    let mut carol = app.sign_in("carol").await;
    let cc = carol.csrf().await;
    carol
        .post_form(
            &format!("/runs/{id}/decision"),
            &[("csrf", &cc), ("decision", "approve")],
        )
        .await;
    assert_eq!(
        app.engine.store().get_run(id).await.unwrap().state,
        RunState::AwaitingApproval
    );

    let mut bob = app.sign_in("bob").await;
    let bc = bob.csrf().await;
    let r = bob
        .post_form(
            &format!("/runs/{id}/decision"),
            &[
                ("csrf", &bc),
                ("decision", "approve"),
                ("reason", "looks fine"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let run = wait_final(&app.engine, id).await;
    assert_eq!(run.state, RunState::Succeeded);
    assert!(marker.exists(), "the script ran");
    let page = bob.get(&format!("/runs/{id}")).await;
    assert!(
        page.body.contains("Approved by bob: looks fine"),
        "the timeline names the approver"
    );
    let acts = actions(&app.engine, id).await;
    assert!(
        acts.contains(&"approval.refused".to_string())
            && acts.contains(&"approval.approved".to_string()),
        "{acts:?}"
    );

    // Denying from the web.
    let r = alice
        .post_form(
            "/scripts/risky/run",
            &[("csrf", &csrf), ("marker", "/dev/null")],
        )
        .await;
    let id2 = RunId::parse(r.header("location").unwrap().trim_start_matches("/runs/")).unwrap();
    bob.post_form(
        &format!("/runs/{id2}/decision"),
        &[("csrf", &bc), ("decision", "deny"), ("reason", "not now")],
    )
    .await;
    let run = app.engine.store().get_run(id2).await.unwrap();
    assert_eq!(
        (run.state, run.reason.as_deref()),
        (RunState::Rejected, Some("not now"))
    );

    // A requester may cancel a run that has not started.
    let r = alice
        .post_form(
            "/scripts/risky/run",
            &[("csrf", &csrf), ("marker", "/dev/null")],
        )
        .await;
    let id3 = RunId::parse(r.header("location").unwrap().trim_start_matches("/runs/")).unwrap();
    alice
        .post_form(&format!("/runs/{id3}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(
        app.engine.store().get_run(id3).await.unwrap().state,
        RunState::Cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_login_is_for_loopback_only() {
    let env = TestEnv::new(Backend::Sqlite).await;
    web_config(&env, "dev_login = true");
    let mut config = env.config();
    config.web.listen = "0.0.0.0:8080".parse().unwrap();
    let engine = execgov::app::build_engine(
        std::sync::Arc::new(config),
        std::sync::Arc::new(execgov::clock::SystemClock),
    )
    .await
    .unwrap();
    let err = execgov::web::WebState::new(engine, execgov::web::Readiness::new()).unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");

    let app = WebApp::start(Backend::Sqlite, "dev_login = true").await;
    let mut c = app.client();
    let page = c.get("/login").await;
    assert!(page.body.contains("Development sign-in"));
    let csrf = page.input("csrf").unwrap();
    let r = c
        .post_form("/login/dev", &[("csrf", &csrf), ("person", "carol")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(c.get("/runs").await.body.contains("carol"));
    let r = app
        .client()
        .post_form("/login/dev", &[("person", "carol")])
        .await;
    assert_eq!(r.status, 403, "still CSRF-checked");

    let off = WebApp::start(Backend::Sqlite, "").await;
    let mut c = off.client();
    let page = c.get("/login").await;
    assert!(!page.body.contains("Development sign-in"));
    let csrf = page.input("csrf").unwrap_or_default();
    assert_eq!(
        c.post_form("/login/dev", &[("csrf", &csrf), ("person", "carol")])
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_registered_parts() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    app.readiness.set("slack", false);
    let (status, body) = http_get(app.addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("slack not ready") && body.contains("database ok"),
        "{body}"
    );
    app.readiness.set("slack", true);
    assert_eq!(http_get(app.addr, "/readyz").await.0, 200);
    assert_eq!(http_get(app.addr, "/healthz").await.0, 200);
}

/// Checks Prometheus text exposition line by line and returns every sample by its
/// `name{labels}`.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for (i, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or_default();
            assert!(name_ok(name), "{}", at("metric name"));
            match kind {
                "HELP" => assert!(
                    parts.next().is_some_and(|h| !h.is_empty()),
                    "{}",
                    at("HELP text")
                ),
                "TYPE" => {
                    let t = parts.next().unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "{}",
                        at("TYPE")
                    );
                    typed.insert(name.to_string(), t.to_string());
                }
                _ => panic!("{}", at("a comment that is neither HELP nor TYPE")),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("{}", at("sample without value")));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("{}", at("value"))),
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("{}", at("unclosed labels")));
                for pair in split_labels(labels) {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{}", at("label")));
                    assert!(name_ok(k), "{}", at("label name"));
                    assert!(
                        v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                        "{}",
                        at("label value")
                    );
                }
                name
            }
            None => series,
        };
        assert!(name_ok(name), "{}", at("sample name"));
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains_key(*f)))
            .unwrap_or(name);
        assert!(
            typed.contains_key(family) || typed.contains_key(name),
            "{}",
            at("a sample before its TYPE")
        );
        samples.insert(series.to_string(), value);
    }
    samples
}

/// Splits `a="x",b="y, z"` at the commas between labels.
fn split_labels(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_move_when_runs_happen() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    let scrape = || async {
        let (status, body) = http_get(app.addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        parse_prometheus(&body)
    };
    let before = scrape().await;
    for name in [
        "execgov_run_transitions_total{state=\"succeeded\"}",
        "execgov_adapter_errors_total{platform=\"slack\"}",
        "execgov_pool_size",
        "execgov_pool_busy",
        "execgov_workers_live",
        "execgov_runs_active{state=\"queued\"}",
    ] {
        assert!(
            before.contains_key(name),
            "{name} is exported: {:?}",
            before.keys().collect::<Vec<_>>()
        );
    }
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);

    let run = say(&app.engine, &person("alice"), "run echo-args")
        .await
        .run
        .unwrap();
    wait_final(&app.engine, run.id).await;
    let waiting = say(&app.engine, &person("alice"), "run risky marker=/dev/null")
        .await
        .run
        .unwrap();
    say(&app.engine, &person("bob"), &format!("deny {}", waiting.id)).await;
    execgov::web::metrics::adapter_error("slack");
    let moved = [
        (
            "execgov_run_transitions_total{state=\"succeeded\"}",
            "a run succeeded",
        ),
        (
            "execgov_run_transitions_total{state=\"rejected\"}",
            "a run was denied",
        ),
        (
            "execgov_run_duration_seconds_count{script=\"echo-args\",state=\"succeeded\"}",
            "its duration was observed",
        ),
        (
            "execgov_run_queue_wait_seconds_count{script=\"echo-args\"}",
            "and its queue wait",
        ),
        (
            "execgov_approval_wait_seconds_count{outcome=\"rejected\"}",
            "the approval wait of the denied run",
        ),
        (
            "execgov_adapter_errors_total{platform=\"slack\"}",
            "the adapter error hook counts",
        ),
        (
            "execgov_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}",
            "and HTTP requests",
        ),
    ];
    // The recorder follows engine events asynchronously: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let m = scrape().await;
        if moved.iter().all(|(s, _)| get(&m, s) > get(&before, s))
            || std::time::Instant::now() > deadline
        {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    for (series, why) in moved {
        assert!(
            get(&after, series) > get(&before, series),
            "{series} moved: {why}"
        );
    }
    let mut c = app.sign_in("dave").await;
    c.get("/runs").await;
    c.get(&format!("/runs/{}", run.id)).await;
    let last = scrape().await;
    assert!(
        get(
            &last,
            "execgov_http_requests_total{method=\"GET\",route=\"/runs/{id}\",status=\"200\"}"
        ) >= 1.0,
        "routes are labelled by pattern, not by id"
    );
}
