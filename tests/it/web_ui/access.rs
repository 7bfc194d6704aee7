//! Who gets in and what they may see and do: runs others may not see look
//! missing, sign-in links work once and are stored hashed, forms need the
//! session's CSRF token, runs from the web follow the engine's rules, and dev
//! login is loopback-only.

use super::*;

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
    let reply = app.engine.login_link(&unknown).await.unwrap();
    assert_eq!(reply.kind, ReplyKind::Error, "{}", reply.text);
    let mut as_bob = person("bob");
    if let execgov::types::Actor::Person {
        impersonated_by, ..
    } = &mut as_bob
    {
        *impersonated_by = Some("root".into());
    }
    let reply = app.engine.login_link(&as_bob).await.unwrap();
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
    let (_, confirmation) = bob.confirmation(risky.id).await;
    let r = bob
        .post_form(
            &decide,
            &[("decision", "approve"), ("confirm", &confirmation)],
        )
        .await;
    assert_eq!(r.status, 403, "a decision without a CSRF token");
    let r = bob
        .post_form(
            &decide,
            &[
                ("decision", "approve"),
                ("confirm", &confirmation),
                ("csrf", "0000"),
            ],
        )
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
    assert!(bad.body.contains("Required: fill this in."), "{}", bad.body);

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
    assert_eq!(
        run.place.platform,
        execgov::types::Platform::Web,
        "asked from the web"
    );
    assert_eq!(run.requester, "person:alice");

    // alice may not approve her own run, even by posting the form by hand with the
    // confirmation from an approver's page.
    let mut bob = app.sign_in("bob").await;
    let (bc, confirmation) = bob.confirmation(id).await;
    let r = alice
        .post_form(
            &format!("/runs/{id}/decision"),
            &[
                ("csrf", &csrf),
                ("decision", "approve"),
                ("confirm", &confirmation),
            ],
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
            &[
                ("csrf", &cc),
                ("decision", "approve"),
                ("confirm", &confirmation),
            ],
        )
        .await;
    assert_eq!(
        app.engine.store().get_run(id).await.unwrap().state,
        RunState::AwaitingApproval
    );

    let r = bob
        .post_form(
            &format!("/runs/{id}/decision"),
            &[
                ("csrf", &bc),
                ("decision", "approve"),
                ("confirm", &confirmation),
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
